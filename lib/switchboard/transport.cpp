#include "switchboard/transport.hpp"

#include <algorithm>
#include <cstring>

#include <boost/asio/write.hpp>

namespace switchboard {

namespace {
// Output buffers above this are given back once written: a burst to one
// session must not hold its memory while the session idles.
constexpr std::size_t kept_capacity = 16 * 1024;
}  // namespace

transport::transport(socket_type socket)
    : socket_(std::move(socket)), out_(std::make_shared<output>()) {
  out_->owner = this;
}

transport::transport(socket_type socket, asio::ssl::context& tls)
    : socket_(socket.get_executor()),
      tls_(std::make_shared<tls_stream>(std::move(socket), tls)),
      out_(std::make_shared<output>()) {
  out_->owner = this;
}

transport::transport(std::shared_ptr<memory_link> link)
    : socket_(link->executor_), mem_(std::move(link)), out_(std::make_shared<output>()) {
  out_->owner = this;
}

transport::transport(transport&& other) noexcept
    : socket_(std::move(other.socket_)),
      tls_(std::move(other.tls_)),
      mem_(std::move(other.mem_)),
      out_(std::move(other.out_)),
      rest_hint_(other.rest_hint_) {
  if (out_) out_->owner = this;
}

transport::~transport() {
  if (!out_) return;  // moved from
  out_->owner = nullptr;
  if (mem_) mem_->close();  // as destroying a socket closes it
  // A write still in flight keeps the TLS stream alive (start_write); closing
  // the socket makes it end now instead of whenever the peer reads.
  if (tls_ && out_->in_flight) close();
}

void transport::close() {
  if (mem_) return mem_->close();
  boost::system::error_code ignored;
  socket().shutdown(socket_type::shutdown_both, ignored);
  socket().close(ignored);
}

void transport::shutdown_send() {
  if (mem_) return mem_->shutdown_send();
  boost::system::error_code ignored;
  socket().shutdown(socket_type::shutdown_send, ignored);
}

void transport::append_frame(std::uint8_t opcode, std::string_view payload) {
  auto& out = *out_;
  if (out.error) return;  // the connection is gone: nothing will be written
  const std::size_t n = payload.size();
  char header[10];
  std::size_t header_size = 2;
  header[0] = static_cast<char>(0x80 | opcode);  // FIN, the opcode
  if (n < 126) {
    header[1] = static_cast<char>(n);
  } else if (n <= 0xffff) {
    header[1] = 126;
    header[2] = static_cast<char>(n >> 8);
    header[3] = static_cast<char>(n);
    header_size = 4;
  } else {
    header[1] = 127;
    for (int i = 0; i < 8; ++i)
      header[2 + i] = static_cast<char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
    header_size = 10;
  }
  out.pending.append(header, header_size);
  out.pending.append(payload);
  sync_held();
}

void transport::append_close_frame(std::uint16_t code, std::string_view reason) {
  char payload[125];
  payload[0] = static_cast<char>(code >> 8);
  payload[1] = static_cast<char>(code & 0xff);
  const std::size_t n = std::min<std::size_t>(reason.size(), sizeof payload - 2);
  if (n != 0) std::memcpy(payload + 2, reason.data(), n);  // an empty view may hold null
  append_frame(0x8, std::string_view(payload, 2 + n));
}

// Owns the output state for the socket write in flight. If the write's
// handler is destroyed without running (the io_context shut down with the
// write queued), it destroys the flush waiters too: each owns a suspended
// coroutine whose frame owns the transport, which owns this output; nothing
// else would break that cycle, and the whole session would leak.
class transport::write_owner {
 public:
  explicit write_owner(std::shared_ptr<output> out) : out_(std::move(out)) {}
  write_owner(write_owner&&) noexcept = default;
  write_owner& operator=(write_owner&&) = delete;
  ~write_owner() {
    if (!out_) return;  // moved from, or ran
    auto waiters = std::move(out_->waiters);
    out_->waiters.clear();
  }
  // The write completed: hands the output over.
  std::shared_ptr<output> take() { return std::move(out_); }
  transport::output& out() { return *out_; }

 private:
  std::shared_ptr<output> out_;
};

void transport::start_write() {
  auto& out = *out_;
  if (out.in_flight || out.error || out.pending.empty()) return;
  out.writing.swap(out.pending);
  out.in_flight = true;
  if (mem_) {
    memory_write(mem_, write_owner(out_), 0);
  } else if (tls_) {
    auto done = [owner = write_owner(out_), stream = tls_](
                    boost::system::error_code ec, std::size_t) mutable { wrote(owner.take(), ec); };
    asio::async_write(*tls_, asio::buffer(out.writing), std::move(done));
  } else {
    auto done = [owner = write_owner(out_)](boost::system::error_code ec, std::size_t) mutable {
      wrote(owner.take(), ec);
    };
    asio::async_write(socket_, asio::buffer(out.writing), std::move(done));
  }
}

void transport::wrote(const std::shared_ptr<output>& out, boost::system::error_code ec) {
  out->in_flight = false;
  out->writing.clear();
  if (out->writing.capacity() > kept_capacity) std::string().swap(out->writing);
  if (ec) out->pending.clear();  // nothing more will be written
  out->held.store(out->pending.size(), std::memory_order_relaxed);
  if (!out->owner) return;  // the transport is gone, and its socket with it
  if (ec) {
    out->error = ec;
  } else if (!out->pending.empty()) {
    out->owner->start_write();
    return;
  }
  // Everything was written, or nothing more can be: the flushes complete.
  auto waiters = std::move(out->waiters);
  out->waiters.clear();
  for (auto& waiter : waiters)
    std::move(waiter)(out->error);
}

void transport::memory_write(const std::shared_ptr<memory_link>& link, write_owner owner,
                             std::size_t offset) {
  auto complete = [&link, &owner](boost::system::error_code ec) {
    asio::post(link->executor_,
               [owner = std::move(owner), ec]() mutable { wrote(owner.take(), ec); });
  };
  if (link->closed_) return complete(asio::error::operation_aborted);
  const std::string& bytes = owner.out().writing;
  offset += link->accept(std::string_view(bytes).substr(offset));
  if (offset == bytes.size()) return complete({});
  // The window is full: the rest waits for the client to read.
  link->wait_room([link, owner = std::move(owner), offset]() mutable {
    memory_write(link, std::move(owner), offset);
  });
}

void transport::memory_read_some(
    asio::mutable_buffer buffer,
    asio::any_completion_handler<void(boost::system::error_code, std::size_t)> handler) {
  auto read_now = [link = mem_, buffer,
                   handler = std::move(handler)](boost::system::error_code ec) mutable {
    std::size_t n = 0;
    if (!ec) n = link->read(buffer.data(), buffer.size(), ec);
    std::move(handler)(ec, n);
  };
  if (mem_->readable())
    asio::post(mem_->executor_,
               beast::bind_front_handler(std::move(read_now), boost::system::error_code{}));
  else
    mem_->wait_readable(std::move(read_now));
}

// As over TCP: the close frames are out; send the FIN and read (and drop)
// until the client closes its side too.
void transport::memory_teardown(
    asio::any_completion_handler<void(boost::system::error_code)> handler) {
  mem_->shutdown_send();
  auto link = mem_;
  struct drain {
    std::shared_ptr<memory_link> link;
    asio::any_completion_handler<void(boost::system::error_code)> handler;
    void operator()(boost::system::error_code ec) {
      char sink[512];
      while (!ec)
        link->read(sink, sizeof sink, ec);
      if (ec == asio::error::would_block) return link->wait_readable(std::move(*this));
      link->close();
      std::move(handler)(ec == asio::error::eof ? boost::system::error_code{} : ec);
    }
  };
  if (link->readable())
    asio::post(link->executor_, beast::bind_front_handler(drain{link, std::move(handler)},
                                                          boost::system::error_code{}));
  else
    link->wait_readable(drain{link, std::move(handler)});
}

void memory_link::client_write(std::string_view bytes) {
  if (closed_ || client_eof_) return;
  inbound_.append(bytes);
  if (!bytes.empty() && on_readable_)
    asio::post(executor_,
               beast::bind_front_handler(std::move(on_readable_), boost::system::error_code{}));
}

void memory_link::client_shutdown() {
  client_eof_ = true;
  if (on_readable_)
    asio::post(executor_,
               beast::bind_front_handler(std::move(on_readable_), boost::system::error_code{}));
}

std::string memory_link::client_read() {
  std::string taken = std::move(outbound_);
  outbound_.clear();
  if (on_room_) asio::post(executor_, std::move(on_room_));
  return taken;
}

void memory_link::reset() {
  on_readable_ = nullptr;
  on_room_ = nullptr;
}

void memory_link::wait_readable(wait_handler handler) {
  if (readable()) {
    asio::post(executor_, beast::bind_front_handler(std::move(handler),
                                                    closed_ ? asio::error::operation_aborted
                                                            : boost::system::error_code{}));
    return;
  }
  handler.swap(on_readable_);  // not a move assignment: see wait_room
}

std::size_t memory_link::read(void* data, std::size_t size, boost::system::error_code& ec) {
  ec = {};
  if (closed_) {
    ec = asio::error::bad_descriptor;
    return 0;
  }
  if (inbound_.empty()) {
    if (client_eof_)
      ec = asio::error::eof;
    else
      ec = asio::error::would_block;
    return 0;
  }
  const std::size_t n = std::min(size, inbound_.size());
  std::memcpy(data, inbound_.data(), n);
  inbound_.erase(0, n);
  return n;
}

std::size_t memory_link::accept(std::string_view bytes) {
  const std::size_t room = window_ - std::min(window_, outbound_.size());
  const std::size_t n = std::min(room, bytes.size());
  outbound_.append(bytes.substr(0, n));
  return n;
}

// Like close() on a socket: the waiting operations end with operation_aborted.
void memory_link::close() {
  if (closed_) return;
  closed_ = true;
  inbound_.clear();
  if (on_readable_)
    asio::post(executor_, beast::bind_front_handler(
                              std::move(on_readable_),
                              boost::system::error_code(asio::error::operation_aborted)));
  if (on_room_) asio::post(executor_, std::move(on_room_));
}

void teardown(beast::role_type role, transport& t, boost::system::error_code& ec) {
  // Synchronous close: nothing buffered can be waited for.
  (void)role;
  t.close();
  ec = {};
}

}  // namespace switchboard
