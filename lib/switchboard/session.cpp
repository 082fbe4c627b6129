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
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
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

struct coroutine_mark;

// One session: everything it keeps between wake-ups (docs/architecture.md,
// "An idle session holds no coroutine"). Held by std::shared_ptr, and only
// by what runs or waits for the session: the readability wait's handler, a
// reader or writer coroutine, the closing coroutine. Only ever touched on
// the session's I/O thread. Its handle points here (session_handle::state()),
// and a debugger finds every one through the thread lists below.
struct session_state : std::enable_shared_from_this<session_state> {
  session_state(transport io, session_ptr handle, services& s);
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

  transport io;  // the connection: owned here, for the session's whole life
  session_ptr handle;
  services& s;
  ws::frame_reader frames;  // what was read and not yet handled (a partial frame)
  token_bucket bucket;      // --rate-limit
  // Store requests the store's queue could not take at once, in order: the
  // reader awaits them (a coroutine) before it reads again.
  std::vector<store::store_request> pending;
  // The writer's view of the inbox, kept while it is parked: it replays
  // from `position` up to `target` by pages, then tells the hub, which
  // switches it to live frames once nothing newer was stored meanwhile
  // (docs/architecture.md, "replay"). `unacked`: written under ack=auto,
  // the cursor not yet moved.
  store::seq_t position = 0;
  store::seq_t target = 0;
  store::seq_t unacked = 0;
  clock::time_point last_activity = clock::now();  // any byte from the client
  // Set when a close frame went out without the reader's close handshake
  // (abort_session, the writer's CLOSE): cuts the connection
  // --handshake-timeout later if the client does not answer. Only
  // allocated then: idle sessions do not pay for it.
  std::unique_ptr<asio::steady_timer> cutoff;

  // The sweeper's: this thread's sessions, pings and idleness.
  // The list of the thread that built it, kept alive by its sessions: a
  // session destroyed at shutdown may be destroyed after that thread ended.
  std::shared_ptr<thread_sessions> list;
  session_state* prev = nullptr;
  session_state* next = nullptr;
  clock::time_point next_ping;  // set by start()

  // Where each half is (docs/architecture.md): the reader parked on a
  // readability wait, the writer parked on its handle's flag.
  enum class half : std::uint8_t { parked, running, ended };
  half reader = half::running;  // running: the opening, then a handler or a coroutine
  half writer = half::running;  // running: the opening, then a coroutine
  bool started = false;         // the welcome is out: the sweeper may post to the writer
  bool idle_notified = false;
  bool close_sent = false;    // a close frame was appended: nothing may follow it
  bool replay_first = false;  // the writer's first run asks the store for a page
  bool drained = false;       // the reader's last read took less than it could
  // What the reader and the writer await now (GET /api/sessions, sb sessions).
  session_wait reader_waits = session_wait::running;
  session_wait writer_waits = session_wait::running;
  // The reader's and the writer's coroutine while one runs, for a debugger
  // (tools/gdb: sb async-bt): a local of that coroutine, which names it.
  const coroutine_mark* reader_coroutine = nullptr;
  const coroutine_mark* writer_coroutine = nullptr;
};

// A local of a session's coroutine that says where its frame is, as long as
// it runs (tools/gdb finds the frame from the mark's address and the
// coroutine's name).
struct coroutine_mark {
  coroutine_mark(const coroutine_mark*& slot, const char* name) : slot_(slot), name_(name) {
    slot_ = this;
  }
  ~coroutine_mark() {
    if (slot_ == this) slot_ = nullptr;
  }
  coroutine_mark(const coroutine_mark&) = delete;
  coroutine_mark& operator=(const coroutine_mark&) = delete;
  const coroutine_mark*& slot_;
  const char* const name_;  // the coroutine's name in the anonymous namespace
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
    // Parked since the last sweep at least: its output buffers go back
    // (they are kept between bursts, or every burst would grow them anew).
    if (st->reader == session_state::half::parked && st->writer == session_state::half::parked)
      st->io.release_buffers();
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

session_state::session_state(transport io_, session_ptr handle_, services& s_)
    : io(std::move(io_)),
      handle(std::move(handle_)),
      s(s_),
      frames(s_.cfg.max_message_bytes),
      bucket(s_.cfg.rate_limit),
      list(this_thread_sessions()) {
  next = list->head;
  if (next != nullptr) next->prev = this;
  list->head = this;
  if (!list->sweeping) {
    list->sweeping = true;
    asio::co_spawn(io.get_executor(), sweep(s.cfg), log_exception("session sweeper"));
  }
}

// A session parked at shutdown is destroyed with its wait's handler, on the
// thread that destroys the server: unlink from the list this session
// joined, not that thread's.
session_state::~session_state() {
  if (handle->state() == this) handle->attach(nullptr);  // destroyed parked, at shutdown
  if (prev != nullptr)
    prev->next = next;
  else
    list->head = next;
  if (next != nullptr) next->prev = prev;
}

namespace {

using state_ptr = std::shared_ptr<session_state>;

// Appends a close frame, after which nothing else is written.
void append_close(session_state& st, std::uint16_t code, std::string_view reason) {
  st.io.append_close_frame(code, reason);
  st.close_sent = true;
  st.handle->mark_aborted();  // frames pushed from now on are refused, not queued
}

// After a close frame that the reader's close handshake does not follow:
// the reader ends when the client answers it; this ends the connection
// --handshake-timeout later if the client does not.
void arm_cutoff(session_state& st) {
  if (st.cutoff) return;
  st.cutoff =
      std::make_unique<asio::steady_timer>(st.io.get_executor(), st.s.cfg.handshake_timeout);
  // The timer dies with the session, which cancels this wait first.
  st.cutoff->async_wait([&io = st.io](boost::system::error_code ec) {
    if (!ec) io.close();
  });
}

void send_error(session_state& st, protocol::error_code code, std::string_view text,
                const std::optional<store::message_id>& id) {
  st.s.stats.count_error(protocol::to_string(code));
  auto frame = std::make_shared<const std::string>(protocol::error_frame(code, text, id));
  if (!st.handle->push(std::move(frame))) abort_session(st, close_reason::slow_consumer);
}

// Queues `r` for the store, after anything already waiting.
void submit(session_state& st, store::store_request& r) {
  if (!st.pending.empty() || !st.s.store.try_submit(r)) st.pending.push_back(std::move(r));
}

// One text message from the client: a frame of PROTOCOL.md section 2.
void on_text(session_state& st, std::string_view text) {
  const auto user = st.handle->user;
  auto frame = protocol::parse_client_frame(text, user);
  if (auto* send = std::get_if<protocol::send_frame>(&frame)) {
    st.s.stats.messages_received_total.fetch_add(1, std::memory_order_relaxed);
    if (!st.bucket.take()) {
      send_error(st, protocol::error_code::rate_limited, "over --rate-limit; try again later",
                 send->id);
      return;
    }
    store::store_request append = store::request::append{
        store::append_request{user, send->receiver, std::move(send->content), unix_ms(),
                              std::move(send->id), send->group, send->notify},
        st.handle, clock::now()};
    submit(st, append);
  } else if (auto* ack = std::get_if<protocol::receive_frame>(&frame)) {
    // Under ack=auto the cursor follows the socket; a RECEIVE is harmless.
    if (st.handle->ack == ack_mode::manual) {
      store::store_request advance = store::request::advance{user, ack->seq, st.handle->device};
      submit(st, advance);
    }
  } else if (auto* read = std::get_if<protocol::read_frame>(&frame)) {
    // Moves no cursor; may bring STATUS entries to the senders (section 11).
    if (read->seq != 0) {
      store::store_request r = store::request::read{user, read->seq};
      submit(st, r);
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

// Handles every frame the parser completed. True when the connection must
// end with the close handshake (finish): the client's close frame was
// answered, or the client broke the protocol.
bool handle_frames(session_state& st) {
  for (;;) {
    auto in = st.frames.next();
    if (std::holds_alternative<std::monostate>(in)) return false;
    if (auto* m = std::get_if<ws::input::message>(&in)) {
      // After our close frame nothing can be answered: the client's
      // frames are read (for its close frame) and dropped.
      if (st.close_sent) continue;
      if (m->text)
        on_text(st, m->payload);
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
      return true;
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
      return true;
    }
    // ws::input::pong: reading it was the activity.
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

void start_writer(state_ptr self);
void end_session(state_ptr self);

// --- The reader -------------------------------------------------------------
//
// Over TCP (and memory_link) the reader is a readability handler: it reads
// what the socket has and handles every frame without suspending, then
// waits again. It becomes a coroutine (reader()) only to await the store's
// queue or the close handshake. Over TLS it is a coroutine for the whole
// session (tls_reader()).

void run_reader(state_ptr self);

// The reader ended: the connection was read to its end, failed, or closed.
// A parked writer ends with it; a running one fails on the closed socket.
void reader_ended(state_ptr self) {
  auto& st = *self;
  st.reader = session_state::half::ended;
  st.reader_waits = session_wait::running;
  st.io.close();
  if (st.writer == session_state::half::parked) {
    // A wake may be on its way: it finds the writer ended.
    st.handle->unpark_writer();
    st.writer = session_state::half::ended;
  }
  if (st.writer == session_state::half::ended) end_session(std::move(self));
}

// Allocates with operator new, at the size asked. Asio otherwise takes an
// operation's memory from its per-thread cache of freed blocks, which hands
// a small wait the block of a large operation freed earlier (the upgrade's
// HTTP read): 357 bytes per parked session instead of about 150.
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(const exact_allocator&, const exact_allocator&) { return true; }
};

// Parks the reader: waits for readability with a plain handler, without a
// buffer and without a coroutine. The handler owns the session while it
// is idle. (readable_wait.hpp's wait checks what epoll reported since the
// last wait, without re-arming the socket, which is why the reader reads
// until nothing is left before it parks; with -DSWITCHBOARD_READABLE_WAIT=OFF,
// or where the kernel cannot say what is left, Asio's async_wait re-arms
// the socket in epoll when the wait starts, so data already there is
// reported.)
void park_reader(state_ptr self) {
  auto& st = *self;
  st.frames.release_while_waiting();
  st.reader = session_state::half::parked;
  st.reader_waits = session_wait::socket_readable;
  auto on_readable = [self = std::move(self)](boost::system::error_code ec) mutable {
    if (ec) return reader_ended(std::move(self));
    run_reader(std::move(self));
  };
  st.io.async_wait_readable(asio::bind_allocator(exact_allocator<void>{}, std::move(on_readable)));
}

// What the reader awaits, as a coroutine of its own while it does: the
// store's queue for requests it could not take at once (nothing more is
// read meanwhile: back-pressure), or the close handshake. Named like the
// reader it is (tools/gdb, docs/debugging.md).
asio::awaitable<bool> reader(state_ptr self, bool closing) {
  auto& st = *self;
  const coroutine_mark mark(st.reader_coroutine, "reader");
  if (closing) {
    co_await finish(st);
    co_return false;
  }
  st.reader_waits = session_wait::store_queue;
  for (auto& r : st.pending)
    co_await st.s.store.submit(std::move(r));
  st.pending.clear();
  st.reader_waits = session_wait::running;
  co_return true;
}

void spawn_reader(state_ptr self, bool closing) {
  const auto executor = self->io.get_executor();
  asio::co_spawn(executor, reader(self, closing),
                 [self](std::exception_ptr e, bool read_on) mutable {
                   if (e) log_exception("session reader")(e);
                   if (e || !read_on) return reader_ended(std::move(self));
                   self->frames.release_if_idle();
                   if (self->drained)
                     park_reader(std::move(self));
                   else
                     run_reader(std::move(self));
                 });
}

// Reads what the socket has and handles every frame that read completed.
void run_reader(state_ptr self) {
  auto& st = *self;
  st.reader = session_state::half::running;
  st.reader_waits = session_wait::running;
  boost::system::error_code ec;
  const auto room = st.frames.prepare();
  bool more = false;
  const std::size_t n = st.io.read_some_now(room, ec, more);
  // Nothing there (a wake without data): wait. Nothing can be missed: the
  // reads before said what was left (transport::read_some_now).
  if (ec == asio::error::would_block) return park_reader(std::move(self));
  if (ec) return reader_ended(std::move(self));
  // Once nothing is left (the kernel says so, or without that a read came
  // back short) the socket was empty: wait at once rather than spend a
  // system call on a read that would fail. A pending FIN counts as
  // something left: the next read finds the end.
  st.drained = !more;
  st.frames.commit(n);
  st.last_activity = clock::now();
  if (handle_frames(st)) return spawn_reader(std::move(self), true);
  if (!st.pending.empty()) return spawn_reader(std::move(self), false);
  st.frames.release_if_idle();
  if (st.drained) return park_reader(std::move(self));
  // A read that filled the buffer is followed by the next, which never
  // waits: a client that keeps its socket full (a flood) would keep the I/O
  // thread to itself. The other sessions of the thread run first.
  st.reader_waits = session_wait::other_handlers;
  const auto executor = st.io.get_executor();
  asio::post(executor, [self = std::move(self)]() mutable { run_reader(std::move(self)); });
}

// Over TLS a record may hold bytes the socket no longer shows as readable:
// the reader reads through the TLS stream, a coroutine with a buffer for the
// session's whole life (docs/architecture.md).
asio::awaitable<void> tls_reader(state_ptr self) {
  auto& st = *self;
  const coroutine_mark mark(st.reader_coroutine, "tls_reader");
  for (;;) {
    st.reader_waits = session_wait::socket_readable;
    auto [ec, n] = co_await st.io.async_read_some(st.frames.prepare(), use_tuple);
    if (ec) co_return;
    st.reader_waits = session_wait::running;
    st.frames.commit(n);
    st.last_activity = clock::now();
    if (handle_frames(st)) {
      co_await finish(st);
      co_return;
    }
    st.reader_waits = session_wait::store_queue;
    for (auto& r : st.pending)
      co_await st.s.store.submit(std::move(r));
    st.pending.clear();
    st.frames.release_if_idle();
  }
}

void start_reader(state_ptr self) {
  if (!self->io.is_tls()) return park_reader(std::move(self));
  self->reader = session_state::half::running;
  const auto executor = self->io.get_executor();
  asio::co_spawn(executor, tls_reader(self), [self](std::exception_ptr e) mutable {
    if (e) log_exception("session reader")(e);
    reader_ended(std::move(self));
  });
}

// --- The writer -------------------------------------------------------------

asio::awaitable<void> ask_for_more(session_state& st) {
  st.writer_waits = st.position < st.target ? session_wait::store_queue : session_wait::hub_mailbox;
  if (st.position < st.target) {
    store::store_request fetch = store::request::fetch{st.handle, st.position};
    co_await st.s.store.submit(std::move(fetch));
  } else {
    hub_message caught_up = hub_event::caught_up{st.handle, st.position};
    co_await st.s.registry.send(std::move(caught_up));
  }
}

// Called once inbox entries up to `seq`, `count` message frames among
// them (the rest STATUS frames), were handed to the kernel.
void wrote(session_state& st, std::size_t count, store::seq_t seq) {
  st.s.stats.messages_delivered_total.fetch_add(count, std::memory_order_relaxed);
  if (st.handle->ack == ack_mode::automatic) st.unacked = std::max(st.unacked, seq);
}

// Moves the cursor once per burst, not once per frame.
asio::awaitable<void> flush_cursor(session_state& st) {
  if (st.unacked == 0) co_return;
  st.writer_waits = session_wait::store_queue;
  store::store_request advance =
      store::request::advance{st.handle->user, st.unacked, st.handle->device};
  co_await st.s.store.submit(std::move(advance));
  st.unacked = 0;
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

// How a writer coroutine ended: parked (its queue was empty; the next
// event spawns another) or for good.
enum class writer_exit : std::uint8_t { parked, ended };

// Spawned when the session's queue has something and no writer runs; ends
// when the queue is empty (parks) or the session is closing.
asio::awaitable<writer_exit> writer(state_ptr self) {
  auto& st = *self;
  const coroutine_mark mark(st.writer_coroutine, "writer");
  auto& channel = st.handle->channel();
  auto& out = st.io;
  const auto executor = co_await asio::this_coro::executor;
  const auto take = [&](session_event& ev) {
    bool taken = false;  // a closed channel "receives" its error
    channel.try_receive([&](boost::system::error_code ec, session_event e) {
      if (ec) return;
      ev = std::move(e);
      taken = true;
    });
    return taken;
  };
  if (st.replay_first) {
    st.replay_first = false;
    co_await ask_for_more(st);
  }
  for (;;) {
    session_event ev;
    if (!take(ev)) {
      co_await flush_cursor(st);
      // The reader ended (the client went away) while this writer was busy.
      // (fuzz_session found it: corpus/fuzz_session/reader-ends-mid-flush.)
      if (st.reader == session_state::half::ended) co_return writer_exit::ended;
      if (!take(ev)) {
        if (st.handle->park_writer()) {
          // Parked from here: the next event spawns a writer anew, which
          // may start before this frame is gone.
          st.writer = session_state::half::parked;
          st.writer_waits = session_wait::session_queue;
          co_return writer_exit::parked;
        }
        continue;  // an event came meanwhile, and no wake was posted for it
      }
    }

    // Everything queued goes out in one socket write (docs/performance.md).
    st.writer_waits = session_wait::running;
    batch b;
    std::optional<event::close> close;
    int yields = 0;
    for (;;) {
      // A close frame was sent (the reader answered the client's, or the
      // session was aborted): nothing may follow it, and the reader's close
      // handshake or the cutoff ends the session.
      if (st.close_sent) co_return writer_exit::ended;
      if (auto* f = std::get_if<event::frame>(&ev)) {
        out.append_text_frame(*f->text);
        st.handle->taken(f->text->size(), f->seq);  // counted by the transport from now on
        if (f->seq != 0) {
          ++b.messages;
          if (f->status) ++b.statuses;
          b.top = std::max(b.top, f->seq);
          // Live frames move the replay position too: the hub may send the
          // session back to the inbox (a gap in a cluster) from here.
          st.position = std::max(st.position, f->seq);
        }
      } else if (auto* page = std::get_if<event::replay_page>(&ev)) {
        // An empty page below the target: the rest was evicted meanwhile.
        if (page->messages.empty()) st.position = st.target;
        for (const auto& m : page->messages) {
          if (m.seq <= st.position) continue;
          out.append_text_frame(protocol::entry_frame(m));
          ++b.messages;
          if (m.kind == store::entry_kind::status)
            ++b.statuses;
          else
            ++b.replayed;
          b.top = std::max(b.top, m.seq);
          st.position = m.seq;
        }
        b.ask_for_more = true;
      } else if (auto* more = std::get_if<event::replay_more>(&ev)) {
        st.target = std::max(st.target, more->target);
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
    if (ec || st.cutoff) co_return writer_exit::ended;
    if (b.messages != 0) wrote(st, b.messages - b.statuses, b.top);
    if (b.replayed != 0)
      st.s.stats.messages_replayed_total.fetch_add(b.replayed, std::memory_order_relaxed);
    if (b.ask_for_more) co_await ask_for_more(st);

    if (close) {
      co_await flush_cursor(st);
      st.s.stats.count_close(to_string(close->reason));
      const auto notice =
          protocol::close_frame_text(to_string(close->reason), describe(close->reason));
      // An oversized message gets the close code alone (PROTOCOL.md section 2).
      bool written = true;
      if (close->reason != close_reason::too_large) written = co_await write_text(st, notice);
      if (!written || st.close_sent) co_return writer_exit::ended;
      append_close(st, websocket_close_code(close->reason), to_string(close->reason));
      arm_cutoff(st);
      st.writer_waits = session_wait::socket_write;
      co_await out.async_flush(use_tuple);
      // The reader ends the session when the client's close frame comes,
      // or the cutoff when it does not.
      co_return writer_exit::ended;
    }
  }
}

// The writer ended for good. A reader still waiting is ended by closing the
// socket under it, unless a close frame went out: then the client's answer
// ends it, within the cutoff or finish()'s deadline.
void writer_ended(state_ptr self) {
  auto& st = *self;
  st.writer = session_state::half::ended;
  st.writer_waits = session_wait::running;
  if (st.reader != session_state::half::ended) {
    if (!st.close_sent) st.io.close();
    return;
  }
  end_session(std::move(self));
}

void start_writer(state_ptr self) {
  self->writer = session_state::half::running;
  self->writer_waits = session_wait::running;
  const auto executor = self->io.get_executor();
  asio::co_spawn(executor, writer(self), [self](std::exception_ptr e, writer_exit how) mutable {
    if (e) log_exception("session writer")(e);
    if (e || how == writer_exit::ended) writer_ended(std::move(self));
  });
}

}  // namespace

void wake_writer(session_state& st) {
  if (st.writer != session_state::half::parked) return;  // ended meanwhile
  start_writer(st.shared_from_this());
}

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
  arm_cutoff(st);
}

namespace {

// Asks the store to open the user's inbox and waits for its answer: the
// welcome, written to the client here, or a close; nullopt if the session
// ended meanwhile. A coroutine of its own, like unregister() below, so that
// what it needs is not kept in run_session's frame (memory per session,
// docs/performance.md).
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

// The one place a session ends, once both its halves ended: the session's
// memory goes at once; the store and the hub hear of it after.
asio::awaitable<void> close_session(state_ptr self) {
  auto handle = self->handle;
  auto& s = self->s;
  self->io.close();
  // Closed first, so a registration still on its way finds it closed.
  handle->channel().close();
  handle->attach(nullptr);
  self.reset();
  s.stats.frames_dropped_total.fetch_add(handle->dropped(), std::memory_order_relaxed);
  co_await unregister(s, handle);
  s.stats.sessions.fetch_sub(1, std::memory_order_relaxed);
  SB_LOG(debug).field("session", handle->id).field("user", handle->user)
      << "session " << handle->id << " of user " << handle->user << " ended";
}

void end_session(state_ptr self) {
  auto& s = self->s;
  const auto executor = self->io.get_executor();
  // The --max-connections slot is the session's until the hub forgot it.
  asio::co_spawn(executor, close_session(std::move(self)), [&s](std::exception_ptr e) {
    s.routes.release_slot();
    if (e) log_exception("session end")(e);
  });
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

// Opens the session, then hands it to its reader and writer and ends
// (docs/architecture.md, "An idle session holds no coroutine").
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
  auto self = std::make_shared<session_state>(std::move(io), handle, s);
  handle->attach(self.get());

  const auto first = co_await open_session(*self, request.since);
  if (const auto* welcome = first ? std::get_if<event::welcome>(&*first) : nullptr) {
    auto& st = *self;
    st.start();
    // A `since` above the highest seq counts as the highest (store.cpp, open).
    st.position =
        std::min(request.since.value_or(welcome->position.cursor), welcome->position.highest);
    st.target = welcome->position.highest;
    st.replay_first = !welcome->live;
    start_reader(self);
    if (st.replay_first || !handle->park_writer()) {
      start_writer(std::move(self));
    } else {
      st.writer = session_state::half::parked;
      st.writer_waits = session_wait::session_queue;
    }
    co_return;
  }
  if (const auto* close = first ? std::get_if<event::close>(&*first) : nullptr) {
    s.stats.count_close(to_string(close->reason));
    append_close(*self, websocket_close_code(close->reason), to_string(close->reason));
    co_await finish(*self);
  }
  self->reader = session_state::half::ended;
  self->writer = session_state::half::ended;
  end_session(std::move(self));
}

}  // namespace switchboard
