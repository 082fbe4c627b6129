#include "switchboard/session.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "switchboard/clock.hpp"
#include "switchboard/config.hpp"
#include "switchboard/hub.hpp"
#include "switchboard/log.hpp"
#include "switchboard/log_throttle.hpp"
#include "switchboard/metrics.hpp"
#include "switchboard/protocol.hpp"
#include "switchboard/session_info.hpp"
#include "switchboard/spawn.hpp"
#include "switchboard/store/store.hpp"
#include "switchboard/ws_frames.hpp"

namespace switchboard {

namespace {

using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// The writer stops taking frames for a batch once this much is buffered.
constexpr std::size_t max_batch_bytes = 256 * 1024;
// ...or after yielding this many times to other handlers for more frames.
constexpr int max_yields = 4;

// Unique per session across restarts: a random prefix drawn at start, then a counter.
std::string next_session_id() {
  static const std::uint64_t prefix = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  static std::atomic<std::uint64_t> counter{0};
  char text[40];
  std::snprintf(text, sizeof text, "%016llx-%llx", static_cast<unsigned long long>(prefix),
                static_cast<unsigned long long>(counter.fetch_add(1) + 1));
  return text;
}

// --rate-limit: a token bucket that starts full with a burst of `rate`.
class token_bucket {
 public:
  explicit token_bucket(std::uint64_t rate)
      : rate_(static_cast<double>(rate)), tokens_(rate_), last_(clock::now()) {}
  bool take() {
    if (rate_ == 0) return true;
    const auto now = clock::now();
    tokens_ = std::min(rate_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  double rate_;
  double tokens_;
  clock::time_point last_;
};

struct thread_sessions;

}  // namespace

// What the reader, the writer and the sweeper share. All of them run on the
// session's I/O thread. Its handle points here (session_handle::state()),
// and a debugger finds every one through the thread lists below.
struct session_state {
  session_state(transport& io, session_ptr handle, services& s);
  ~session_state();
  session_state(const session_state&) = delete;
  session_state& operator=(const session_state&) = delete;

  // The welcome is out: idleness counts from now, the first ping is due
  // one --ping-interval later.
  void start() {
    started = true;
    last_activity = clock::now();
    next_ping = last_activity + std::chrono::duration_cast<clock::duration>(s.cfg.ping_interval);
  }

  transport& io;
  session_ptr handle;
  services& s;
  clock::time_point last_activity = clock::now();  // any byte from the client
  bool close_sent = false;  // a close frame was appended: nothing may follow it
  bool reader_ended = false;
  // Waited on by whoever must not outlive the reader; cancelled when it ends.
  asio::steady_timer reader_exit;
  // Set when the session was aborted (abort_session): cuts the connection
  // --handshake-timeout later if the close frames could not go out. Only
  // allocated then: idle sessions do not pay for it.
  std::unique_ptr<asio::steady_timer> cutoff;

  // The sweeper's: this thread's sessions, pings and idleness.
  // The list of the thread that built it, kept alive by its sessions: a
  // frame still queued at shutdown may be destroyed after that thread ended.
  std::shared_ptr<thread_sessions> list;
  session_state* prev = nullptr;
  session_state* next = nullptr;
  clock::time_point next_ping;  // set by start()
  bool started = false;         // the welcome is out: the sweeper may post to the writer
  bool idle_notified = false;
  // What the reader and the writer await now (GET /api/sessions, sb sessions).
  session_wait reader_waits = session_wait::running;
  session_wait writer_waits = session_wait::running;
  // The reader's frame parser, a local of reader() while it runs: what it
  // has buffered, and where a debugger finds the reader's coroutine frame
  // (tools/gdb: sb async-bt). The writer's is found from this state, which
  // lives in run_session's frame.
  const ws::frame_reader* reader_frames = nullptr;
};

namespace {

// Pings and idle checks for every session of one I/O thread, from one timer,
// rather than a coroutine and a timer per session: those were about a
// kilobyte of every idle session (docs/performance.md). A session stays on
// its thread for its whole life, so the list is the thread's own.
//
// The lists are also linked to one another from a global, for a debugger
// (tools/gdb: sb sessions), which can neither read another thread's
// thread_local nor find a session from any stack: every I/O thread waits in
// epoll_wait. Linked and unlinked under a mutex, once per thread.
struct thread_sessions {
  thread_sessions();
  ~thread_sessions();
  thread_sessions(const thread_sessions&) = delete;
  thread_sessions& operator=(const thread_sessions&) = delete;

  session_state* head = nullptr;
  bool sweeping = false;                    // a sweep() coroutine runs on this thread
  const long thread = syscall(SYS_gettid);  // the thread's kernel id (gdb's LWP)
  thread_sessions* prev_list = nullptr;     // every thread's list: all_session_lists
  thread_sessions* next_list = nullptr;
};

std::mutex all_session_lists_mutex;
thread_sessions* all_session_lists = nullptr;  // read by tools/gdb/switchboard.py

thread_sessions::thread_sessions() {
  std::lock_guard lock(all_session_lists_mutex);
  next_list = all_session_lists;
  if (next_list != nullptr) next_list->prev_list = this;
  all_session_lists = this;
}

thread_sessions::~thread_sessions() {
  std::lock_guard lock(all_session_lists_mutex);
  if (prev_list != nullptr)
    prev_list->next_list = next_list;
  else
    all_session_lists = next_list;
  if (next_list != nullptr) next_list->prev_list = prev_list;
}

// Shared: sessions and the sweeper hold it, and may outlive the thread.
std::shared_ptr<thread_sessions>& this_thread_sessions() {
  thread_local auto list = std::make_shared<thread_sessions>();
  return list;
}

clock::duration sweep_period(const config& cfg) {
  const auto shortest = std::min(cfg.ping_interval, cfg.idle_timeout);
  return std::clamp<clock::duration>(std::chrono::duration_cast<clock::duration>(shortest) / 8,
                                     std::chrono::milliseconds(10), std::chrono::seconds(1));
}

void sweep_once(thread_sessions& list, clock::time_point now, clock::duration ping_interval,
                clock::duration idle_timeout) {
  for (auto* st = list.head; st != nullptr; st = st->next) {
    // Before the welcome the session's first event must be the welcome.
    if (!st->started || st->idle_notified) continue;
    if (now >= st->last_activity + idle_timeout) {
      SB_LOG(debug) << "session " << st->handle->id << " idle";
      st->idle_notified = true;
      if (!st->handle->post(event::close{close_reason::idle}))
        st->handle->abort(close_reason::idle);
    } else if (now >= st->next_ping) {
      st->handle->post(event::ping{});
      st->next_ping = now + ping_interval;
    }
  }
}

// Runs while this thread has sessions.
asio::awaitable<void> sweep(const config& cfg) {
  // The list is this thread's; a frame destroyed at shutdown may be
  // destroyed on another thread, after this one ended, hence the copy.
  struct running {
    std::shared_ptr<thread_sessions> list;
    ~running() { list->sweeping = false; }
  } guard{this_thread_sessions()};
  const auto ping_interval = std::chrono::duration_cast<clock::duration>(cfg.ping_interval);
  const auto idle_timeout = std::chrono::duration_cast<clock::duration>(cfg.idle_timeout);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (guard.list->head != nullptr) {
    timer.expires_after(sweep_period(cfg));
    auto [ec] = co_await timer.async_wait(use_tuple);
    if (ec) co_return;
    sweep_once(*guard.list, clock::now(), ping_interval, idle_timeout);
  }
}

}  // namespace

session_state::session_state(transport& io_, session_ptr handle_, services& s_)
    : io(io_),
      handle(std::move(handle_)),
      s(s_),
      reader_exit(io_.get_executor()),
      list(this_thread_sessions()) {
  next = list->head;
  if (next != nullptr) next->prev = this;
  list->head = this;
  if (!list->sweeping) {
    list->sweeping = true;
    asio::co_spawn(io.get_executor(), sweep(s.cfg), log_exception("session sweeper"));
  }
}

// Frames still queued at shutdown are destroyed on the thread that destroys
// the server: unlink from the list this session joined, not that thread's.
session_state::~session_state() {
  if (prev != nullptr)
    prev->next = next;
  else
    list->head = next;
  if (next != nullptr) next->prev = prev;
}

namespace {

// Appends a close frame, after which nothing else is written.
void append_close(session_state& st, std::uint16_t code, std::string_view reason) {
  st.io.append_close_frame(code, reason);
  st.close_sent = true;
  st.handle->mark_aborted();  // frames pushed from now on are refused, not queued
}

void send_error(session_state& st, protocol::error_code code, std::string_view text,
                const std::optional<store::message_id>& id) {
  st.s.stats.count_error(protocol::to_string(code));
  auto frame = std::make_shared<const std::string>(protocol::error_frame(code, text, id));
  if (!st.handle->push(std::move(frame))) abort_session(st, close_reason::slow_consumer);
}

// Store requests the store's queue could not take at once, in order.
using pending_requests = std::vector<store::store_request>;

// Queues `r` for the store, after anything already waiting.
void submit(session_state& st, pending_requests& pending, store::store_request& r) {
  if (!pending.empty() || !st.s.store.try_submit(r)) pending.push_back(std::move(r));
}

// One text message from the client: a frame of PROTOCOL.md section 2.
void on_text(session_state& st, token_bucket& bucket, pending_requests& pending,
             std::string_view text) {
  const auto user = st.handle->user;
  auto frame = protocol::parse_client_frame(text, user);
  if (auto* send = std::get_if<protocol::send_frame>(&frame)) {
    st.s.stats.messages_received_total.fetch_add(1, std::memory_order_relaxed);
    if (!bucket.take()) {
      send_error(st, protocol::error_code::rate_limited, "over --rate-limit; try again later",
                 send->id);
      return;
    }
    store::store_request append = store::request::append{
        store::append_request{user, send->receiver, std::move(send->content), unix_ms(),
                              std::move(send->id), send->group, send->notify},
        st.handle, clock::now()};
    submit(st, pending, append);
  } else if (auto* ack = std::get_if<protocol::receive_frame>(&frame)) {
    // Under ack=auto the cursor follows the socket; a RECEIVE is harmless.
    if (st.handle->ack == ack_mode::manual) {
      store::store_request advance = store::request::advance{user, ack->seq, st.handle->device};
      submit(st, pending, advance);
    }
  } else if (auto* read = std::get_if<protocol::read_frame>(&frame)) {
    // Moves no cursor; may bring STATUS entries to the senders (section 11).
    if (read->seq != 0) {
      store::store_request r = store::request::read{user, read->seq};
      submit(st, pending, r);
    }
  } else if (std::holds_alternative<protocol::close_frame>(frame)) {
    // Keep reading: the close handshake ends the reader.
    if (!st.handle->post(event::close{close_reason::bye})) abort_session(st, close_reason::bye);
  } else {
    auto& error = std::get<protocol::frame_error>(frame);
    if (error.is_send) st.s.stats.messages_received_total.fetch_add(1, std::memory_order_relaxed);
    send_error(st, error.code, error.message, error.id);
  }
}

// After the close frames: ends the connection the way RFC 6455 section
// 7.1.1 asks (transport::async_shutdown), within --handshake-timeout, so that
// the close frame is not lost to a reset and a TLS client sees close_notify.
asio::awaitable<void> finish(session_state& st) {
  st.reader_waits = session_wait::close_handshake;
  asio::steady_timer deadline(st.io.get_executor(), st.s.cfg.handshake_timeout);
  deadline.async_wait([&io = st.io](boost::system::error_code ec) {
    if (!ec) io.close();
  });
  co_await st.io.async_shutdown(use_tuple);
}

// Reads the socket and handles every frame each read completed before
// reading again (ws_frames.hpp).
asio::awaitable<void> reader(session_state& st) {
  ws::frame_reader frames(st.s.cfg.max_message_bytes);
  st.reader_frames = &frames;
  token_bucket bucket(st.s.cfg.rate_limit);
  pending_requests pending;
  const bool tls = st.io.is_tls();
  bool drained = false;  // the last read took less than it could: nothing was left
  for (;;) {
    std::size_t n = 0;
    if (tls) {
      st.reader_waits = session_wait::socket_readable;
      auto [ec, read] = co_await st.io.async_read_some(frames.prepare(), use_tuple);
      if (ec) co_return;
      n = read;
    } else {
      // Over TCP, wait for readability without a buffer (an idle session's
      // read buffer was half a kilobyte), then read what is there. Once a
      // read came back short the socket was empty: wait at once rather than
      // spend a system call on a read that would fail. Nothing can be
      // missed: Asio re-arms the socket in epoll when the wait starts, and
      // epoll then reports data that is already there (with
      // SWITCHBOARD_READABLE_WAIT, readable_wait.hpp's wait instead checks
      // what epoll reported since the last wait, without re-arming).
      if (drained) {
        frames.release_while_waiting();
        st.reader_waits = session_wait::socket_readable;
        auto [wait_ec] = co_await st.io.async_wait_readable(use_tuple);
        if (wait_ec) co_return;
      }
      boost::system::error_code ec;
      const auto room = frames.prepare();
      n = st.io.read_some_now(room, ec);
      if (ec == asio::error::would_block) {
        drained = true;
        continue;
      }
      if (ec) co_return;
      drained = n < room.size();
    }
    st.reader_waits = session_wait::running;
    frames.commit(n);
    st.last_activity = clock::now();
    for (;;) {
      auto in = frames.next();
      if (std::holds_alternative<std::monostate>(in)) break;
      if (auto* m = std::get_if<ws::input::message>(&in)) {
        // After our close frame nothing can be answered: the client's
        // frames are read (for its close frame) and dropped.
        if (st.close_sent) continue;
        if (m->text)
          on_text(st, bucket, pending, m->payload);
        else
          send_error(st, protocol::error_code::binary, "frames must be text holding JSON",
                     std::nullopt);
      } else if (auto* ping = std::get_if<ws::input::ping>(&in)) {
        if (st.close_sent) continue;
        // The pong, after what is buffered. It counts toward the session's
        // bound like every frame: a client that pings and never reads is a
        // slow consumer.
        if (!st.handle->has_room(ws::frame_bytes(ping->payload.size()))) {
          abort_session(st, close_reason::slow_consumer);
          continue;
        }
        st.io.append_frame(0xA, ping->payload);
        st.io.flush_soon();
      } else if (auto* close = std::get_if<ws::input::close>(&in)) {
        // Our close answered, or the client's to answer (with its code):
        // the session ends.
        if (!st.close_sent) {
          if (close->code == 0)
            st.io.append_frame(0x8, {});
          else
            st.io.append_close_frame(close->code, {});
          st.close_sent = true;
        }
        co_await finish(st);
        co_return;
      } else if (std::holds_alternative<ws::input::too_large>(in)) {
        if (st.close_sent) continue;
        SB_LOG(debug) << "session " << st.handle->id << ": message over --max-message-bytes";
        // The writer sends 1009 after what is queued; what follows is skipped.
        if (!st.handle->post(event::close{close_reason::too_large}))
          abort_session(st, close_reason::too_large);
      } else if (auto* failure = std::get_if<ws::input::failure>(&in)) {
        SB_LOG(debug) << "session " << st.handle->id << ": WebSocket protocol error, closing with "
                      << failure->code;
        if (!st.close_sent) append_close(st, failure->code, {});
        co_await finish(st);
        co_return;
      }
      // ws::input::pong: reading it was the activity.
    }
    // SENDs the store could not take at once wait here, in order; nothing
    // more is read meanwhile (backpressure).
    st.reader_waits = session_wait::store_queue;
    for (auto& r : pending)
      co_await st.s.store.submit(std::move(r));
    pending.clear();
    frames.release_if_idle();
    // A read that filled the buffer is followed at once by the next, which
    // never waits: a client that keeps its socket full (a flood) would keep
    // the I/O thread to itself. The other sessions of the thread run first.
    st.reader_waits = session_wait::other_handlers;
    if (!tls && !drained) co_await asio::post(st.io.get_executor(), asio::use_awaitable);
  }
}

// The writer's view of the inbox: it replays from `position` up to `target`
// by pages, then tells the hub, which switches it to live frames once
// nothing newer was stored meanwhile (docs/architecture.md, "replay").
class writer_state {
 public:
  writer_state(session_state& st, store::seq_t from, store::seq_t target)
      : position_(from), target_(target), st_(st) {}

  asio::awaitable<void> ask_for_more() {
    st_.writer_waits = position_ < target_ ? session_wait::store_queue : session_wait::hub_mailbox;
    if (position_ < target_) {
      store::store_request fetch = store::request::fetch{st_.handle, position_};
      co_await st_.s.store.submit(std::move(fetch));
    } else {
      hub_message caught_up = hub_event::caught_up{st_.handle, position_};
      co_await st_.s.registry.send(std::move(caught_up));
    }
  }

  // Called once inbox entries up to `seq`, `count` message frames among
  // them (the rest STATUS frames), were handed to the kernel.
  void wrote(std::size_t count, store::seq_t seq) {
    st_.s.stats.messages_delivered_total.fetch_add(count, std::memory_order_relaxed);
    if (st_.handle->ack == ack_mode::automatic) unacked_ = std::max(unacked_, seq);
  }

  // Moves the cursor once per burst, not once per frame.
  asio::awaitable<void> flush_cursor() {
    if (unacked_ == 0) co_return;
    st_.writer_waits = session_wait::store_queue;
    store::store_request advance =
        store::request::advance{st_.handle->user, unacked_, st_.handle->device};
    co_await st_.s.store.submit(std::move(advance));
    unacked_ = 0;
  }

  store::seq_t position_;
  store::seq_t target_;

 private:
  session_state& st_;
  store::seq_t unacked_ = 0;
};

// Once a close frame is out, the reader ends the session when the client
// answers it; this ends it after --handshake-timeout if the client does not.
asio::awaitable<void> wait_for_reader(session_state& st) {
  if (st.reader_ended) co_return;
  st.writer_waits = session_wait::reader_end;
  st.reader_exit.expires_after(st.s.cfg.handshake_timeout);
  co_await st.reader_exit.async_wait(use_tuple);
}

// Writes one text frame now, after whatever is buffered.
asio::awaitable<bool> write_text(session_state& st, std::string_view text) {
  auto& out = st.io;
  out.append_text_frame(text);
  st.writer_waits = session_wait::socket_write;
  auto [ec] = co_await out.async_flush(use_tuple);
  co_return !ec;
}

// What one batch of the writer wrote, accounted once the kernel took it.
struct batch {
  std::size_t messages = 0;  // inbox entries: message frames (type 1) and STATUS (type 5)
  std::size_t statuses = 0;  // STATUS frames among them (not messages in the metrics)
  store::seq_t top = 0;      // the highest seq among them
  std::size_t replayed = 0;
  bool ask_for_more = false;  // a replay step ended: ask for the next
};

asio::awaitable<void> writer(session_state& st, store::user_position position,
                             std::optional<store::seq_t> since, bool live) {
  // A `since` above the highest seq counts as the highest (store.cpp, open).
  writer_state w(st, std::min(since.value_or(position.cursor), position.highest), position.highest);
  auto& channel = st.handle->channel();
  auto& out = st.io;
  const auto executor = co_await asio::this_coro::executor;
  const auto take = [&](session_event& ev) {
    return channel.try_receive(
        [&](boost::system::error_code, session_event e) { ev = std::move(e); });
  };
  if (!live) co_await w.ask_for_more();
  for (;;) {
    session_event ev;
    if (!take(ev)) {
      co_await w.flush_cursor();
      // The reader ended (the client went away) while this writer was busy:
      // its channel().cancel() found no receive to cancel, and this one
      // would wait until the next frame for the user, or for ever.
      // (fuzz_session found it: corpus/fuzz_session/reader-ends-mid-flush.)
      if (st.reader_ended) co_return;
      st.writer_waits = session_wait::session_queue;
      auto [ec, e] = co_await channel.async_receive(use_tuple);
      if (ec) co_return;
      ev = std::move(e);
    }

    // Everything queued goes out in one socket write (docs/performance.md).
    st.writer_waits = session_wait::running;
    batch b;
    std::optional<event::close> close;
    int yields = 0;
    for (;;) {
      // A close frame was sent (the reader answered the client's): nothing
      // may follow it, and the reader ends the session.
      if (st.close_sent) {
        co_await wait_for_reader(st);
        co_return;
      }
      if (auto* f = std::get_if<event::frame>(&ev)) {
        out.append_text_frame(*f->text);
        st.handle->taken(f->text->size(), f->seq);  // counted by the transport from now on
        if (f->seq != 0) {
          ++b.messages;
          if (f->status) ++b.statuses;
          b.top = std::max(b.top, f->seq);
          // Live frames move the replay position too: the hub may send the
          // session back to the inbox (a gap in a cluster) from here.
          w.position_ = std::max(w.position_, f->seq);
        }
      } else if (auto* page = std::get_if<event::replay_page>(&ev)) {
        // An empty page below the target: the rest was evicted meanwhile.
        if (page->messages.empty()) w.position_ = w.target_;
        for (const auto& m : page->messages) {
          if (m.seq <= w.position_) continue;
          out.append_text_frame(protocol::entry_frame(m));
          ++b.messages;
          if (m.kind == store::entry_kind::status)
            ++b.statuses;
          else
            ++b.replayed;
          b.top = std::max(b.top, m.seq);
          w.position_ = m.seq;
        }
        b.ask_for_more = true;
      } else if (auto* more = std::get_if<event::replay_more>(&ev)) {
        w.target_ = std::max(w.target_, more->target);
        b.ask_for_more = true;
      } else if (std::holds_alternative<event::ping>(ev)) {
        out.append_frame(0x9, {});  // the ping, flushed with the batch
      } else if (auto* c = std::get_if<event::close>(&ev)) {
        close = *c;  // after everything queued before it
        break;
      }
      // The welcome was handled before the writer started.
      if (out.unwritten() >= max_batch_bytes) break;
      if (take(ev)) continue;
      // Let what is ready to run go first (readers, the store, the hub):
      // under load it brings more frames for this socket, which then share
      // its one write; when idle this costs one pass through the queue.
      if (yields == max_yields) break;
      ++yields;
      st.writer_waits = session_wait::other_handlers;
      co_await asio::post(executor, asio::use_awaitable);
      st.writer_waits = session_wait::running;
      if (!take(ev)) break;
    }

    st.writer_waits = session_wait::socket_write;
    auto [ec] = co_await out.async_flush(use_tuple);
    // Aborted meanwhile: what the batch appended may have been dropped, so
    // none of it moves the cursor (it is replayed to the next session).
    if (ec || st.cutoff) co_return;
    if (b.messages != 0) w.wrote(b.messages - b.statuses, b.top);
    if (b.replayed != 0)
      st.s.stats.messages_replayed_total.fetch_add(b.replayed, std::memory_order_relaxed);
    if (b.ask_for_more) co_await w.ask_for_more();

    if (close) {
      co_await w.flush_cursor();
      st.s.stats.count_close(to_string(close->reason));
      const auto notice =
          protocol::close_frame_text(to_string(close->reason), describe(close->reason));
      // An oversized message gets the close code alone (PROTOCOL.md section 2).
      bool written = true;
      if (close->reason != close_reason::too_large) written = co_await write_text(st, notice);
      if (!written || st.close_sent) co_return;
      append_close(st, websocket_close_code(close->reason), to_string(close->reason));
      st.writer_waits = session_wait::socket_write;
      auto [flush_ec] = co_await out.async_flush(use_tuple);
      if (flush_ec) co_return;
      // The reader ends the session when the client's close frame comes.
      co_await wait_for_reader(st);
      co_return;
    }
  }
}

}  // namespace

// session_handle::abort(), on this thread (the reader calls it directly):
// the session ends at once, even while the writer is blocked on the socket,
// and is told why if it can still hear it (PROTOCOL.md section 4): its
// queued frames are dropped, the CLOSE notice and the close frame follow
// what the kernel already holds, and the connection is cut
// --handshake-timeout later if they could not go out. Its unwritten messages
// stay in the inbox. Logged once; what is refused afterwards is counted.
void abort_session(session_state& st, close_reason reason) {
  if (st.cutoff || st.close_sent) return;  // already closing: the first reason stands
  st.handle->mark_aborted();
  // Once per session, and at most 20 a second for the whole server (a
  // client may open and overflow sessions in a loop): /metrics counts them all.
  static log_throttle throttle(20, std::chrono::seconds(1));
  if (std::uint64_t held = 0; throttle.allow(held))
    SB_LOG(info)
            .field("session", st.handle->id)
            .field("user", st.handle->user)
            .field("close", to_string(reason))
            .field("close_code", websocket_close_code(reason))
        << "session " << st.handle->id << " of user " << st.handle->user
        << " closed: " << to_string(reason) << held_back(held);
  st.s.stats.count_close(to_string(reason));
  if (!st.started) {
    // Before the welcome nothing else may be written: end now.
    st.io.close();
    return;
  }
  session_event dropped;
  while (st.handle->channel().try_receive(
      [&](boost::system::error_code, session_event e) { dropped = std::move(e); })) {
    if (auto* f = std::get_if<event::frame>(&dropped)) st.handle->taken(f->text->size(), f->seq);
  }
  st.io.discard_pending();
  if (reason != close_reason::too_large)
    st.io.append_text_frame(protocol::close_frame_text(to_string(reason), describe(reason)));
  append_close(st, websocket_close_code(reason), to_string(reason));
  st.io.flush_soon();
  st.cutoff =
      std::make_unique<asio::steady_timer>(st.io.get_executor(), st.s.cfg.handshake_timeout);
  // The timer dies with the session, which cancels this wait first.
  st.cutoff->async_wait([&io = st.io](boost::system::error_code ec) {
    if (!ec) io.close();
  });
}

namespace {

// Asks the store to open the user's inbox and waits for its answer: the
// welcome, written to the client here, or a close; nullopt if the session
// ended meanwhile. A coroutine of its own, like unregister() below, so that
// what it needs is not kept in run_session's frame for the whole session
// (memory per idle session, docs/performance.md).
asio::awaitable<std::optional<session_event>> open_session(session_state& st,
                                                           std::optional<store::seq_t> since) {
  store::store_request open = store::request::open{st.handle, since};
  co_await st.s.store.submit(std::move(open));
  auto [ec, first] = co_await st.handle->channel().async_receive(use_tuple);
  if (ec) co_return std::nullopt;
  if (auto* welcome = std::get_if<event::welcome>(&first)) {
    const auto text = protocol::welcome_frame(st.handle->user, welcome->position.highest,
                                              st.handle->id, st.handle->device.view());
    const bool written = co_await write_text(st, text);  // named: GCC 12 (debugging.md)
    if (!written) co_return std::nullopt;
  }
  co_return std::move(first);
}

asio::awaitable<void> unregister(services& s, session_ptr handle) {
  if (handle->store_opened.load(std::memory_order_relaxed)) {
    // A cluster counts the session until the store hears it ended.
    store::store_request close = store::request::close{handle};
    co_await s.store.submit(std::move(close));
  }
  hub_message unregistered = hub_event::unregistered{std::move(handle)};
  co_await s.registry.send(std::move(unregistered));
}

}  // namespace

std::string_view to_string(session_wait wait) {
  switch (wait) {
    case session_wait::running:
      return "running";
    case session_wait::socket_readable:
      return "socket_readable";
    case session_wait::store_queue:
      return "store_queue";
    case session_wait::hub_mailbox:
      return "hub_mailbox";
    case session_wait::session_queue:
      return "session_queue";
    case session_wait::socket_write:
      return "socket_write";
    case session_wait::other_handlers:
      return "other_handlers";
    case session_wait::reader_end:
      return "reader_end";
    case session_wait::close_handshake:
      return "close_handshake";
  }
  return "unknown";
}

std::optional<session_info> describe(const session_handle& handle) {
  const session_state* st = handle.state();
  if (st == nullptr) return std::nullopt;
  session_info info;
  info.session = handle.id;
  info.user = handle.user;
  info.device = std::string(handle.device.view());
  info.opened_ms = handle.opened_ms;
  info.thread = st->list->thread;
  info.manual_ack = handle.ack == ack_mode::manual;
  info.queued_bytes = handle.held_bytes();
  const auto queue = handle.queued();
  info.queued_frames = queue.frames;
  info.queue_bytes = queue.bytes;
  if (queue.first <= queue.last) {
    info.first_seq = queue.first;
    info.last_seq = queue.last;
  }
  const auto out = st->io.write_state();
  info.pending_bytes = out.pending;
  info.writing_bytes = out.writing;
  info.write_in_flight = out.in_flight;
  info.flush_waiters = out.waiters;
  info.reader = st->reader_waits;
  info.writer = st->writer_waits;
  if (const auto reason = handle.abort_reason())
    info.closing = to_string(*reason);
  else if (handle.closing())
    info.closing = "closing";
  return info;
}

asio::awaitable<void> run_session(transport io, session_request request, services& s) {
  auto executor = co_await asio::this_coro::executor;
  auto handle =
      std::make_shared<session_handle>(executor, request.user, next_session_id(), request.ack,
                                       s.cfg.send_queue_bytes, request.device);
  s.stats.sessions.fetch_add(1, std::memory_order_relaxed);
  s.stats.sessions_opened_total.fetch_add(1, std::memory_order_relaxed);
  // The channel's address names it in the trace preset's log (docs/debugging.md).
  SB_LOG(debug)
          .field("session", handle->id)
          .field("user", request.user)
          .field("channel", static_cast<const void*>(&handle->channel()))
      << "session " << handle->id << " of user " << request.user << " device \""
      << request.device.view() << "\" opened";

  handle->watch_transport(io.held());
  session_state st(io, handle, s);
  handle->attach(&st);

  const auto first = co_await open_session(st, request.since);
  if (const auto* welcome = first ? std::get_if<event::welcome>(&*first) : nullptr) {
    st.start();
    // The reader is a coroutine of its own; the writer runs in this one.
    // When the reader ends, its completion wakes the writer (a cancelled
    // receive) and ends the connection; when the writer ends first, the
    // socket is closed under the reader. This frame outlives both.
    asio::co_spawn(executor, reader(st), [&st](std::exception_ptr e) {
      if (e) log_exception("session reader")(e);
      st.reader_ended = true;
      st.reader_frames = nullptr;
      st.reader_exit.cancel();
      st.handle->channel().cancel();
      st.io.close();
    });
    try {
      co_await writer(st, welcome->position, request.since, welcome->live);
    } catch (const std::exception& e) {
      SB_LOG(error) << "session " << handle->id << " writer: " << e.what();
    }
    if (!st.reader_ended) {
      // Aborted: the reader ends when the client answers the close frame,
      // or when the cutoff closes the socket.
      if (!st.cutoff) st.io.close();
      st.reader_exit.expires_at(asio::steady_timer::time_point::max());
      co_await st.reader_exit.async_wait(use_tuple);
    }
  } else if (const auto* close = first ? std::get_if<event::close>(&*first) : nullptr) {
    s.stats.count_close(to_string(close->reason));
    append_close(st, websocket_close_code(close->reason), to_string(close->reason));
    co_await finish(st);
  }
  io.close();
  // Closed first, so a registration still on its way finds it closed.
  handle->channel().close();
  handle->attach(nullptr);
  s.stats.frames_dropped_total.fetch_add(handle->dropped(), std::memory_order_relaxed);
  co_await unregister(s, handle);
  s.stats.sessions.fetch_sub(1, std::memory_order_relaxed);
  SB_LOG(debug).field("session", handle->id).field("user", request.user)
      << "session " << handle->id << " of user " << request.user << " ended";
}

}  // namespace switchboard
