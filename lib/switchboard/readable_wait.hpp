// Waiting until a TCP socket is readable without a system call per wait.
//
// The reader of a clear-text session waits for readability without holding
// a buffer, then reads what is there (session.cpp, transport.hpp). With
// socket.async_wait(wait_read), Asio's epoll reactor re-arms the descriptor
// with epoll_ctl(EPOLL_CTL_MOD) for every wait (epoll_reactor::start_op,
// the branch for operations that may not be tried speculatively): at an
// ordinary load, one epoll_ctl per message (issue 14, docs/performance.md,
// "System calls per message").
//
// The re-arm is not needed: the descriptor is registered once, edge
// triggered, for EPOLLIN, and the reactor already knows whether an edge may
// have been missed (its try_speculative_ flag for reads: set when epoll
// reports the descriptor). The operation here is a reactor read operation
// that reads nothing: started with speculation allowed, it completes at
// once if the descriptor was reported since the last wait ended (data may
// be waiting), else it is queued without any system call and completes on
// the next edge. Its "perform" says done_and_exhausted, which clears the
// flag, so that the next wait queues instead of completing at once again.
// Errors and hang-ups complete it too (epoll reports them with the read
// side), as they do async_wait.
//
// The contract that makes this correct: before waiting again, the caller
// has read everything the edge that woke it announced, including the
// peer's FIN. An edge is reported once; what came with it and was left
// unread is never reported again (the re-arm of async_wait would have
// reported it). Reading until a read fails with would_block satisfies it;
// the session's reader instead stops when the kernel says nothing is left
// (read_reporting_rest below: TCP_INQ, which counts a pending FIN as one
// byte left), because a read that stops short of its buffer is not enough:
// data followed by the peer's close in one edge (a client that sends and
// closes at once) left the session open, its descriptor and memory held,
// until its next ping (191 of 200 clients that sent half a frame and
// closed; test_abuse's attackers do that all the time, which is what kept
// its minute of abuse 8 MiB up, found 2026-12-01). A reset is not counted by
// TCP_INQ: a reset that came in the same edge as data is found in the
// events epoll reported with that edge (EPOLLERR | EPOLLHUP, which the
// reactor keeps in the descriptor's state), and read too (193 of 200 such
// clients stayed open without that).
//
// "Reported since the last wait" is not "readable": the reader may already
// have read what that edge announced, and a new socket counts as reported.
// Completing then would wake the reader for nothing, and a wake-up is not
// free: the reader prepares its buffer for the frame it is in the middle
// of (up to --max-message-bytes for a frame whose header announced that
// much). So when the reactor would complete the wait at once, the
// operation first asks poll(2) whether there is anything to read, and
// waits for the next edge if not: one system call, only in that case.
//
// This uses Asio's detail layer (the epoll reactor's operations), checked
// against Boost 1.81 only: with another version, or another reactor
// (io_uring), it is plain async_wait(wait_read), the former behaviour, and
// the reader reads as before (a short read ends its turn). Where the kernel
// refuses TCP_INQ (before Linux 4.18), transport.hpp does the same.
//
// Built unless -DSWITCHBOARD_READABLE_WAIT=OFF (CMakeLists.txt), which
// keeps plain async_wait.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>

#if defined(SWITCHBOARD_READABLE_WAIT) && BOOST_VERSION / 100 == 1081 &&             \
    defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(BOOST_ASIO_HAS_IOCP)
#define SWITCHBOARD_READABLE_WAIT_WITHOUT_REARM 1
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_tracking.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <cerrno>
#include <cstring>
#endif

#include "switchboard/net.hpp"

namespace switchboard {

#if defined(SWITCHBOARD_READABLE_WAIT_WITHOUT_REARM)
namespace readable_wait_detail {

namespace ad = asio::detail;

// The socket's reactor state: protected in basic_socket, reachable from a
// derived class (a pointer to the member, formed here, applies to any socket).
struct socket_access : asio::ip::tcp::socket {
  static auto& impl(asio::ip::tcp::socket& s) {
    return (s.*(&socket_access::impl_)).get_implementation();
  }
};

// reactive_wait_op (boost/asio/detail/reactive_wait_op.hpp) with another
// perform: see the comment at the top of this file.
template <class Handler, class IoExecutor>
class readable_op : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(readable_op);

  readable_op(Handler& handler, const IoExecutor& io_ex, int fd)
      : reactor_op(boost::system::error_code(), &readable_op::do_perform,
                   &readable_op::do_complete),
        handler_(std::move(handler)),
        work_(handler_, io_ex),
        fd_(fd) {}

  // True while the reactor's start_op runs: a perform then is the
  // speculative one (see the top of this file), not an edge's.
  bool starting_ = true;

  static status do_perform(reactor_op* base) {
    auto* o = static_cast<readable_op*>(base);
    if (o->starting_) {
      pollfd p{o->fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) == 0) return not_done;  // nothing yet: wait for the edge
    }
    return done_and_exhausted;
  }

  static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&,
                          std::size_t) {
    auto* o = static_cast<readable_op*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    BOOST_ASIO_HANDLER_COMPLETION((*o));
    ad::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    // The memory goes back before the upcall, which may start the next wait.
    ad::binder1<Handler, boost::system::error_code> handler(o->handler_, o->ec_);
    p.h = std::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      BOOST_ASIO_HANDLER_INVOCATION_BEGIN((handler.arg1_));
      w.complete(handler, handler.handler_);
      BOOST_ASIO_HANDLER_INVOCATION_END;
    }
  }

 private:
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
  int fd_;
};

// Whether epoll reported an error or a hang-up of the socket (a reset) in
// the last turn that reported it: the events the reactor keeps in its
// descriptor state (set_ready_events) until that state's perform_io runs,
// and after. descriptor_state derives privately from scheduler_operation,
// whose task_result_ holds them: the C-style cast reaches an inaccessible
// base, and the pointer to member is formed in a derived class, as for
// socket_access.
struct operation_access : ad::scheduler_operation {
  static unsigned int ready_events(ad::epoll_reactor::per_descriptor_data data) {
    auto* op = (ad::scheduler_operation*)data;  // NOLINT: the base is private
    return op->*(&operation_access::task_result_);
  }
};

inline bool hangup_reported(asio::ip::tcp::socket& socket) {
  auto data = socket_access::impl(socket).reactor_data_;
  return data != nullptr && (operation_access::ready_events(data) & (EPOLLERR | EPOLLHUP)) != 0;
}

// Per-operation cancellation, as async_wait has it.
class readable_cancellation {
 public:
  readable_cancellation(ad::epoll_reactor* r, ad::epoll_reactor::per_descriptor_data* d, int fd)
      : reactor_(r), data_(d), fd_(fd) {}
  void operator()(asio::cancellation_type_t type) {
    if (!!(type & (asio::cancellation_type::terminal | asio::cancellation_type::partial |
                   asio::cancellation_type::total)))
      reactor_->cancel_ops_by_key(fd_, *data_, ad::epoll_reactor::read_op, this);
  }

 private:
  ad::epoll_reactor* reactor_;
  ad::epoll_reactor::per_descriptor_data* data_;
  int fd_;
};

}  // namespace readable_wait_detail
#endif

// Completes `handler(error_code)` once `socket` is readable (or has failed
// or been closed), like socket.async_wait(wait_read, handler), without
// epoll_ctl per wait where the epoll reactor allows it. A completion may be
// spurious (a read then finds nothing and the caller waits again), as with
// async_wait. Unlike async_wait, it reports only what came after the last
// edge: before waiting again the caller must have read until would_block,
// or until read_reporting_rest said nothing is left (top of this file).
template <class Handler>
void wait_until_readable(asio::ip::tcp::socket& socket, Handler&& handler) {
#if defined(SWITCHBOARD_READABLE_WAIT_WITHOUT_REARM)
  namespace rw = readable_wait_detail;
  using handler_type = std::decay_t<Handler>;
  using io_executor = asio::ip::tcp::socket::executor_type;
  using op = rw::readable_op<handler_type, io_executor>;
  handler_type h(std::forward<Handler>(handler));
  auto& impl = rw::socket_access::impl(socket);
  // Not cached: a context may be destroyed and another built at its address.
  auto& reactor = asio::use_service<rw::ad::epoll_reactor>(
      asio::query(socket.get_executor(), asio::execution::context));
  const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(h);
  auto slot = asio::get_associated_cancellation_slot(h);
  typename op::ptr p = {std::addressof(h), op::ptr::allocate(h), nullptr};
  p.p = new (p.v) op(h, socket.get_executor(), impl.socket_);
  BOOST_ASIO_HANDLER_CREATION(
      (reactor.context(), *p.p, "socket", &impl, impl.socket_, "async_wait_readable"));
  if (slot.is_connected())
    p.p->cancellation_key_ = &slot.template emplace<rw::readable_cancellation>(
        &reactor, &impl.reactor_data_, impl.socket_);
  op* started = p.p;
  p.v = p.p = nullptr;
  reactor.start_op(rw::ad::epoll_reactor::read_op, impl.socket_, impl.reactor_data_, started,
                   is_continuation, /*allow_speculative=*/true);
  // Queued or posted, the operation is still alive: its context runs on
  // this thread alone (io_threads.hpp), so nothing ran it meanwhile.
  started->starting_ = false;
#else
  socket.async_wait(asio::ip::tcp::socket::wait_read, std::forward<Handler>(handler));
#endif
}

#if defined(SWITCHBOARD_READABLE_WAIT_WITHOUT_REARM)
// Asks the kernel to say, with every read of `socket`, how much is left to
// read (TCP_INQ, Linux 4.18): false if it will not, and then the caller
// must not rely on read_reporting_rest's `left` (nor wait with
// wait_until_readable unless it reads until would_block).
inline bool report_what_is_left(asio::ip::tcp::socket& socket) {
  const int on = 1;
  return ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INQ, &on, sizeof on) == 0;
}

// One read of what `socket` has now, without waiting (would_block when
// nothing, eof at the peer's close), on a socket report_what_is_left was
// granted for. `left`: the kernel still holds bytes, or the peer's FIN,
// after this read: read again before waiting (see the top of this file).
// A recvmsg instead of a recvfrom: no system call more.
inline std::size_t read_reporting_rest(asio::ip::tcp::socket& socket, asio::mutable_buffer buffer,
                                       boost::system::error_code& ec, bool& left) {
  left = false;
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  for (;;) {
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    const ssize_t n = ::recvmsg(socket.native_handle(), &msg, MSG_DONTWAIT);
    if (n > 0) {
      ec = {};
      // No hint (not expected once TCP_INQ was granted): a full read says
      // there may be more, as without it.
      left = static_cast<std::size_t>(n) == buffer.size();
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ) {
          int inq = 0;
          std::memcpy(&inq, CMSG_DATA(c), sizeof inq);
          left = inq != 0;
        }
      // A reset that came with the data: TCP_INQ does not count it, epoll
      // reported it with the edge (EPOLLERR | EPOLLHUP), and the next read
      // finds it.
      if (!left) left = readable_wait_detail::hangup_reported(socket);
      return static_cast<std::size_t>(n);
    }
    if (n == 0) {
      ec = buffer.size() == 0 ? boost::system::error_code() : asio::error::eof;
      return 0;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      ec = asio::error::would_block;
    else
      ec = boost::system::error_code(errno, asio::error::get_system_category());
    return 0;
  }
}
#else
// Without the wait above, the reader reads as before (a short read ends its
// turn) and waits with async_wait.
inline bool report_what_is_left(asio::ip::tcp::socket&) {
  return false;
}
inline std::size_t read_reporting_rest(asio::ip::tcp::socket&, asio::mutable_buffer,
                                       boost::system::error_code& ec, bool& left) {
  left = false;
  ec = asio::error::operation_not_supported;
  return 0;
}
#endif

}  // namespace switchboard
