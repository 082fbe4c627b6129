#include "support/tcp_proxy.hpp"

#include <array>
#include <atomic>
#include <future>
#include <list>
#include <thread>

#include <boost/asio.hpp>

namespace switchboard::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct link {
  explicit link(asio::io_context& ctx) : client(ctx), upstream(ctx) {}
  tcp::socket client, upstream;

  void reset() {
    boost::system::error_code ignored;
    for (auto* s : {&client, &upstream}) {
      if (!s->is_open()) continue;
      s->set_option(asio::socket_base::linger(true, 0), ignored);
      s->close(ignored);
    }
  }
};

}  // namespace

struct tcp_proxy::impl {
  explicit impl(std::uint16_t upstream_port)
      : acceptor(ctx, {asio::ip::address_v4::loopback(), 0}),
        upstream({asio::ip::address_v4::loopback(), upstream_port}) {
    asio::co_spawn(ctx, accept(), asio::detached);
    thread = std::thread([this] { ctx.run(); });
  }

  ~impl() {
    asio::post(ctx, [this] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
      for (auto& weak : links)
        if (auto l = weak.lock()) l->reset();
      ctx.stop();
    });
    thread.join();
  }

  asio::awaitable<void> accept() {
    for (;;) {
      auto l = std::make_shared<link>(ctx);
      auto [ec] = co_await acceptor.async_accept(l->client, use_tuple);
      if (ec) co_return;
      auto [cec] = co_await l->upstream.async_connect(upstream, use_tuple);
      if (cec) {
        l->reset();
        continue;
      }
      links.remove_if([](const std::weak_ptr<link>& w) { return w.expired(); });
      links.push_back(l);
      asio::co_spawn(ctx, pump(l, l->client, l->upstream, mode::swallow_requests), asio::detached);
      asio::co_spawn(ctx, pump(l, l->upstream, l->client, mode::swallow_replies), asio::detached);
    }
  }

  // Copies `from` to `to` unless the mode swallows this direction; the
  // first error on either side ends the link.
  asio::awaitable<void> pump(std::shared_ptr<link> l, tcp::socket& from, tcp::socket& to,
                             mode swallowed_in) {
    std::array<char, 16384> buffer;
    for (;;) {
      auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer), use_tuple);
      if (ec) break;
      if (current.load() == swallowed_in) continue;
      auto [wec, written] =
          co_await asio::async_write(to, asio::buffer(buffer.data(), n), use_tuple);
      if (wec) break;
    }
    l->reset();
  }

  asio::io_context ctx;
  tcp::acceptor acceptor;
  tcp::endpoint upstream;
  std::list<std::weak_ptr<link>> links;
  std::atomic<mode> current{mode::pass};
  std::thread thread;
};

tcp_proxy::tcp_proxy(std::uint16_t upstream_port) : impl_(std::make_unique<impl>(upstream_port)) {}

tcp_proxy::~tcp_proxy() = default;

std::uint16_t tcp_proxy::port() const {
  return impl_->acceptor.local_endpoint().port();
}

void tcp_proxy::set_mode(mode m) {
  impl_->current.store(m);
}

void tcp_proxy::reset_all() {
  std::promise<void> done;
  asio::post(impl_->ctx, [this, &done] {
    for (auto& weak : impl_->links)
      if (auto l = weak.lock()) l->reset();
    impl_->links.clear();
    done.set_value();
  });
  done.get_future().get();
}

}  // namespace switchboard::test
