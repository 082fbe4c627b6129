#include "switchboard/redis/link.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

namespace switchboard::redis::detail {

std::string describe(const endpoint& ep) {
  return ep.host + ":" + std::to_string(ep.port);
}

std::string describe(const boost::system::error_code& ec) {
  if (ec == asio::error::eof) return "Redis closed the connection";
  return ec.message();
}

std::string describe(const std::exception& e) {
  // system_error's what() carries the source location of the throw: too much for a log line.
  if (auto* s = dynamic_cast<const boost::system::system_error*>(&e)) return describe(s->code());
  return e.what();
}

asio::awaitable<void> link::connect(const endpoint& ep) {
  close();
  decoder_.emplace();
  const auto endpoints =
      co_await resolver_.async_resolve(ep.host, std::to_string(ep.port), asio::use_awaitable);
  co_await asio::async_connect(socket_, endpoints, asio::use_awaitable);
  // Commands are written whole, one write per batch: Nagle would only delay them.
  socket_.set_option(asio::ip::tcp::no_delay(true));
}

asio::awaitable<reply> link::read() {
  for (;;) {
    if (auto r = decoder_->next()) co_return std::move(*r);
    const auto n = co_await socket_.async_read_some(asio::buffer(buffer_), asio::use_awaitable);
    decoder_->feed(buffer_.data(), n);
  }
}

asio::awaitable<void> link::write(std::string_view bytes) {
  co_await asio::async_write(socket_, asio::buffer(bytes), asio::use_awaitable);
}

void link::close() {
  resolver_.cancel();
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

}  // namespace switchboard::redis::detail
