#define BOOST_TEST_MODULE cluster_soak
#include <boost/test/unit_test.hpp>

// The soak of the cluster issue: two nodes on one Redis, bench-like load
// across the nodes for SWITCHBOARD_SOAK_SECONDS (default 30), with Redis
// killed (SIGKILL) in the middle and started again on its append-only file
// (appendfsync always: what it acknowledged survives the kill). In the end
// every receipted message was delivered to its receiver exactly once, in seq
// order, and nothing else was.
//
// - 20 pairs: the sender on node A, the receiver on node B (ack=auto); and 3
//   pairs the other way, whose receivers on node A use ack=manual and
//   acknowledge as they go (RECEIVE every 100 ms).
// - Each sender keeps at most `window` messages unreceipted (in flight, or
//   refused and waiting to be resent) and sends, with ids, as fast as that
//   allows. ERROR unavailable is expected while Redis is down: the message
//   is resent with the same id after 250 ms, as a real client would, until
//   it is receipted. A batch whose reply the kill took (with SIGKILL and
//   appendfsync always it happens in most runs, Redis dying between its
//   fsync and its replies) is run again by its node, not refused
//   (docs/cluster.md, "Faults"): counted from /metrics. A resend whose
//   receipt has a `ts` older than the resend got the original receipt:
//   counted; de-duplication must have kept it from being stored or
//   delivered twice.
// - After the soak, senders only finish their resends; then every receiver
//   must catch up, a quiet second must bring nothing more, and a fresh
//   session of each receiver (on the other node) must be welcomed with the
//   last seq and replayed nothing: the cursors moved, also across the outage.
//
// The client is one thread running one io_context with a coroutine per
// socket direction, so that it takes little of the machine's two cores from
// the nodes and Redis; it only collects what it sees, and the checks run on
// the test thread afterwards. Every wait has a deadline (a watchdog closes
// every socket). A summary goes to stdout. (The nodes' log lines on stderr
// all carry the tag of the last node started: it is per process.)
//
// ctest runs every integration file with --threads 1 and 2. One soak of
// 30 s is enough for CI time: it runs with SWITCHBOARD_TEST_THREADS=2 (two
// I/O threads per node, more interleavings) and skips itself with 1.

#include <fcntl.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include "support/redis_server.hpp"
#include "support/test_support.hpp"

using namespace switchboard::test;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using ws_stream = websocket::stream<tcp::socket>;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct soak_params {
  std::chrono::seconds duration{30};
  unsigned pairs = 20;        // sender on A -> receiver on B, ack=auto
  unsigned manual_pairs = 3;  // sender on B -> receiver on A, ack=manual
  std::size_t window = 8;     // unreceipted messages per sender
  milliseconds resend_after{250};
  // false: a refused message is given up (the sender only pauses for
  // resend_after), to check that it is never delivered.
  bool resend_refused = true;
  milliseconds outage{2000};  // from the kill to the restart
};

std::int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_between(steady::time_point a, steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// An id as the server echoes it: a string of digits or a number.
std::optional<std::uint64_t> id_number(const json::object& f) {
  const auto* v = f.if_contains("id");
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) {
    const auto& s = v->get_string();
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::uint64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
  }
  boost::system::error_code ec;
  const auto n = v->to_number<std::uint64_t>(ec);
  if (ec) return std::nullopt;
  return n;
}

std::string content_of(std::uint64_t sender, std::uint64_t n) {
  // About 40 bytes, as a short chat message.
  return "soak " + std::to_string(sender) + "/" + std::to_string(n) + " lorem ipsum dolor";
}

enum class msg_state : std::uint8_t { in_flight, refused, receipted };

struct message {
  msg_state state = msg_state::in_flight;
  steady::time_point sent_at;        // the last attempt
  std::int64_t first_resend_ms = 0;  // wall clock of the first resend, 0 if none
  std::uint32_t resends = 0;
  std::uint64_t seq = 0;  // from the receipt
};

struct sender {
  sender(asio::io_context& ctx, std::uint64_t u, std::uint64_t r, std::uint16_t p)
      : user(u), receiver(r), port(p), ws(ctx), wake(ctx) {}
  std::uint64_t user, receiver;
  std::uint16_t port;
  ws_stream ws;
  asio::steady_timer wake;        // cancelled by the reader when the window opens
  std::vector<message> messages;  // by id
  std::size_t in_flight = 0;
  std::deque<std::pair<steady::time_point, std::uint64_t>> refused;  // (resend at, id)
  steady::time_point pause_until;  // no new message before (after a refusal, when not resending)
  std::uint64_t receipted = 0, refusals = 0, resends = 0, original_receipts = 0;
  std::uint64_t max_seq = 0;
  bool done = false;
};

struct receiver {
  receiver(asio::io_context& ctx, std::uint64_t u, std::uint64_t s, std::uint16_t p, bool m)
      : user(u), sender_user(s), port(p), manual(m), ws(ctx) {}
  std::uint64_t user, sender_user;
  std::uint16_t port;
  bool manual;
  ws_stream ws;
  std::vector<std::uint64_t> seq_of;  // by id: the seq it was delivered with
  std::vector<std::uint32_t> times;   // by id: how many times it was delivered
  std::uint64_t last_seq = 0, acked = 0, delivered = 0;
};

// Everything the client thread saw go wrong, checked on the test thread.
struct findings {
  std::vector<std::string> items;
  std::size_t count = 0;
  void add(std::string what) {
    ++count;
    if (items.size() < 40) items.push_back(std::move(what));
  }
};

class soak_client {
 public:
  soak_client(soak_params p, std::uint16_t port_a, std::uint16_t port_b)
      : params_(p), port_a_(port_a), port_b_(port_b), watchdog_(ctx_) {
    for (unsigned i = 0; i < p.pairs; ++i) {
      senders_.push_back(std::make_unique<sender>(ctx_, 100 + i, 200 + i, port_a));
      receivers_.push_back(std::make_unique<receiver>(ctx_, 200 + i, 100 + i, port_b, false));
    }
    for (unsigned i = 0; i < p.manual_pairs; ++i) {
      senders_.push_back(std::make_unique<sender>(ctx_, 300 + i, 400 + i, port_b));
      receivers_.push_back(std::make_unique<receiver>(ctx_, 400 + i, 300 + i, port_a, true));
    }
  }

  // Runs the whole client on the calling thread.
  void run() {
    asio::co_spawn(ctx_, control(), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          problems_.add(std::string("client: ") + x.what());
        }
        abort_all();
      }
    });
    ctx_.run();
    finished = true;
    rusage usage{};
    ::getrusage(RUSAGE_THREAD, &usage);
    client_cpu_ = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                  static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }

  // Set by the client once the load starts, and when it is over; read by
  // the test thread.
  std::atomic<bool> started{false}, finished{false};
  // Set by the test thread, read by the client (steady clock, ns since its epoch).
  std::atomic<std::int64_t> killed_at{0}, restarted_at{0};

  const soak_params params_;
  std::uint16_t port_a_, port_b_;
  asio::io_context ctx_;
  std::vector<std::unique_ptr<sender>> senders_;
  std::vector<std::unique_ptr<receiver>> receivers_;
  findings problems_;

  steady::time_point start_, stop_sending_, senders_done_at_, caught_up_at_;
  std::optional<steady::time_point> first_refusal_, last_refusal_, first_receipt_after_restart_;
  double client_cpu_ = 0;
  std::vector<std::uint32_t> receipt_us_;  // latency of each receipted attempt
  milliseconds max_refusal_latency_{0};
  std::uint64_t replay_checked_ = 0;

 private:
  static steady::time_point from_ns(std::int64_t ns) {
    return steady::time_point(std::chrono::nanoseconds(ns));
  }

  void abort_all() {
    aborted_ = true;
    finishing_ = true;
    boost::system::error_code ignored;
    for (auto& s : senders_) {
      beast::get_lowest_layer(s->ws).close(ignored);
      s->wake.cancel();
    }
    for (auto& r : receivers_)
      beast::get_lowest_layer(r->ws).close(ignored);
    for (auto& ws : fresh_)
      beast::get_lowest_layer(*ws).close(ignored);
    watchdog_.cancel();
  }

  asio::awaitable<void> sleep(milliseconds d) {
    asio::steady_timer t(ctx_, d);
    co_await t.async_wait(use_tuple);
  }

  // Connects, upgrades and reads the welcome; throws on failure.
  asio::awaitable<json::object> open(ws_stream& ws, std::uint16_t port, const std::string& target) {
    auto& socket = beast::get_lowest_layer(ws);
    auto [ec] = co_await socket.async_connect({asio::ip::address_v4::loopback(), port}, use_tuple);
    if (ec) throw boost::system::system_error(ec, "connect");
    socket.set_option(tcp::no_delay(true));
    auto [hec] = co_await ws.async_handshake("127.0.0.1", target, use_tuple);
    if (hec) throw boost::system::system_error(hec, "handshake " + target);
    ws.text(true);
    beast::flat_buffer buffer;
    auto [rec, n] = co_await ws.async_read(buffer, use_tuple);
    if (rec) throw boost::system::system_error(rec, "welcome " + target);
    auto welcome = json::parse(beast::buffers_to_string(buffer.data())).as_object();
    if (type_of(welcome) != 0) throw std::runtime_error("no welcome on " + target);
    co_return welcome;
  }

  asio::awaitable<bool> write(ws_stream& ws, const std::string& text, std::uint64_t user) {
    auto [ec, n] = co_await ws.async_write(asio::buffer(text), use_tuple);
    if (ec) {
      if (!finishing_) problems_.add("user " + std::to_string(user) + ": write: " + ec.message());
      co_return false;
    }
    co_return true;
  }

  asio::awaitable<void> send_loop(sender& s) {
    const auto send_one = [&](std::uint64_t id) -> asio::awaitable<bool> {
      std::string text = R"({"type":1,"receiver":)" + std::to_string(s.receiver) +
                         R"(,"content":")" + content_of(s.user, id) + R"(","id":")" +
                         std::to_string(id) + R"("})";
      co_return co_await write(s.ws, text, s.user);
    };
    while (!aborted_) {
      const auto now = steady::now();
      while (!s.refused.empty() && s.refused.front().first <= now) {
        const auto id = s.refused.front().second;
        s.refused.pop_front();
        auto& m = s.messages[id];
        m.state = msg_state::in_flight;
        m.sent_at = steady::now();
        if (m.resends++ == 0) m.first_resend_ms = wall_ms();
        ++s.in_flight;
        ++s.resends;
        if (!co_await send_one(id)) co_return;
      }
      while (s.in_flight + s.refused.size() < params_.window && steady::now() < stop_sending_ &&
             steady::now() >= s.pause_until && !aborted_) {
        const auto id = s.messages.size();
        s.messages.push_back(message{msg_state::in_flight, steady::now()});
        ++s.in_flight;
        if (!co_await send_one(id)) co_return;
      }
      const bool sending = steady::now() < stop_sending_;
      if (!sending && s.in_flight == 0 && s.refused.empty()) break;
      auto until = sending ? stop_sending_ : hard_deadline_;
      if (!s.refused.empty()) until = std::min(until, s.refused.front().first);
      if (sending && s.pause_until > steady::now()) until = std::min(until, s.pause_until);
      s.wake.expires_at(until);
      co_await s.wake.async_wait(use_tuple);
    }
    s.done = true;
  }

  void on_sender_frame(sender& s, const json::object& f) {
    const auto now = steady::now();
    const auto who = "sender " + std::to_string(s.user) + ": ";
    const auto type = type_of(f);
    if (type != 2 && type != 4) {
      problems_.add(who + "unexpected frame " + json::serialize(f));
      return;
    }
    const auto id = id_number(f);
    if (!id || *id >= s.messages.size() || s.messages[*id].state != msg_state::in_flight) {
      problems_.add(who + "answer for no message in flight: " + json::serialize(f));
      return;
    }
    auto& m = s.messages[*id];
    --s.in_flight;
    s.wake.cancel();
    if (type == 2) {
      m.state = msg_state::receipted;
      m.seq = u64(f.at("seq"));
      if (u64(f.at("receiver")) != s.receiver)
        problems_.add(who + "receipt for another receiver: " + json::serialize(f));
      ++s.receipted;
      s.max_seq = std::max(s.max_seq, m.seq);
      receipt_us_.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - m.sent_at).count()));
      if (m.resends > 0 && f.at("ts").to_number<std::int64_t>() < m.first_resend_ms)
        ++s.original_receipts;
      const auto restarted = restarted_at.load();
      if (restarted != 0 && !first_receipt_after_restart_ && now > from_ns(restarted))
        first_receipt_after_restart_ = now;
      return;
    }
    // ERROR: only `unavailable`, and only while Redis is down or coming back.
    const auto code = f.at("code").is_string() ? str(f.at("code")) : std::string("?");
    if (code != "unavailable") problems_.add(who + "refused: " + json::serialize(f));
    const auto killed = killed_at.load(), restarted = restarted_at.load();
    if (killed == 0)
      problems_.add(who + "refused before Redis was killed: " + json::serialize(f));
    else if (restarted != 0 && now - from_ns(restarted) > 15s)
      problems_.add(who + "still refused 15 s after Redis was restarted: " + json::serialize(f));
    m.state = msg_state::refused;
    ++s.refusals;
    if (params_.resend_refused)
      s.refused.emplace_back(now + params_.resend_after, *id);
    else
      s.pause_until = now + params_.resend_after;
    if (!first_refusal_) first_refusal_ = now;
    last_refusal_ = now;
    max_refusal_latency_ =
        std::max(max_refusal_latency_, std::chrono::duration_cast<milliseconds>(now - m.sent_at));
  }

  void on_receiver_frame(receiver& r, const json::object& f) {
    const auto who = "receiver " + std::to_string(r.user) + ": ";
    if (type_of(f) != 1) {
      problems_.add(who + "unexpected frame " + json::serialize(f));
      return;
    }
    const auto id = id_number(f);
    const auto seq = u64(f.at("seq"));
    if (!id || u64(f.at("sender")) != r.sender_user || u64(f.at("receiver")) != r.user ||
        str(f.at("content")) != content_of(r.sender_user, *id)) {
      problems_.add(who + "not a message of its sender: " + json::serialize(f));
      return;
    }
    if (seq <= r.last_seq)
      problems_.add(who + "seq " + std::to_string(seq) + " after " + std::to_string(r.last_seq) +
                    " (duplicate or out of order), id " + std::to_string(*id));
    r.last_seq = std::max(r.last_seq, seq);
    if (*id >= r.times.size()) {
      r.times.resize(*id + 1, 0);
      r.seq_of.resize(*id + 1, 0);
    }
    if (++r.times[*id] == 1) r.seq_of[*id] = seq;
    ++r.delivered;
  }

  template <class Who, class Handler>
  asio::awaitable<void> read_loop(ws_stream& ws, Who& who, Handler handler) {
    beast::flat_buffer buffer;
    for (;;) {
      buffer.clear();
      auto [ec, n] = co_await ws.async_read(buffer, use_tuple);
      if (ec) {
        if (!finishing_)
          problems_.add("user " + std::to_string(who.user) + ": session ended: " + ec.message() +
                        (ws.reason().code ? " (close code " + std::to_string(ws.reason().code) + ")"
                                          : std::string()));
        co_return;
      }
      boost::system::error_code pec;
      auto v = json::parse(beast::buffers_to_string(buffer.data()), pec);
      if (pec || !v.is_object()) {
        problems_.add("user " + std::to_string(who.user) + ": not a JSON object");
        continue;
      }
      try {
        handler(who, v.as_object());
      } catch (const std::exception& e) {  // a field missing or of the wrong kind
        problems_.add("user " + std::to_string(who.user) + ": " + e.what() + " in " +
                      json::serialize(v));
      }
    }
  }

  asio::awaitable<void> ack_loop(receiver& r) {
    while (!finishing_) {
      co_await sleep(100ms);
      if (finishing_ || r.last_seq <= r.acked) continue;
      const auto upto = r.last_seq;
      if (!co_await write(r.ws, R"({"type":2,"seq":)" + std::to_string(upto) + "}", r.user))
        co_return;
      r.acked = upto;
    }
  }

  // Polls `done` every 50 ms until it holds or `until` passes.
  template <class Pred>
  asio::awaitable<bool> wait_for(Pred done, steady::time_point until) {
    while (!done()) {
      if (aborted_ || steady::now() > until) co_return false;
      co_await sleep(50ms);
    }
    co_return true;
  }

  bool caught_up() const {
    for (std::size_t i = 0; i < senders_.size(); ++i)
      if (receivers_[i]->last_seq < senders_[i]->max_seq) return false;
    return true;
  }

  asio::awaitable<void> control() {
    // Receivers first, so the senders' first messages are live for them.
    for (auto& r : receivers_) {
      const auto welcome = co_await open(
          r->ws, r->port, "/ws/" + std::to_string(r->user) + (r->manual ? "?ack=manual" : ""));
      if (u64(welcome.at("seq")) != 0)
        problems_.add("receiver " + std::to_string(r->user) + " welcomed with seq " +
                      std::to_string(u64(welcome.at("seq"))) + " on a fresh Redis");
    }
    for (auto& s : senders_)
      co_await open(s->ws, s->port, "/ws/" + std::to_string(s->user));

    start_ = steady::now();
    stop_sending_ = start_ + params_.duration;
    hard_deadline_ = stop_sending_ + 60s;  // resends after the soak, then catching up
    watchdog_.expires_at(hard_deadline_ + 20s);
    watchdog_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      problems_.add("watchdog: the soak did not end 80 s after the load stopped");
      abort_all();
    });
    started = true;

    const auto on_sender = [this](sender& s, const json::object& f) { on_sender_frame(s, f); };
    const auto on_receiver = [this](receiver& r, const json::object& f) {
      on_receiver_frame(r, f);
    };
    for (auto& r : receivers_) {
      asio::co_spawn(ctx_, read_loop(r->ws, *r, on_receiver), asio::detached);
      if (r->manual) asio::co_spawn(ctx_, ack_loop(*r), asio::detached);
    }
    for (auto& s : senders_) {
      asio::co_spawn(ctx_, read_loop(s->ws, *s, on_sender), asio::detached);
      asio::co_spawn(ctx_, send_loop(*s), asio::detached);
    }

    const bool sent = co_await wait_for(
        [&] {
          return std::all_of(senders_.begin(), senders_.end(), [](auto& s) { return s->done; });
        },
        hard_deadline_);
    senders_done_at_ = steady::now();
    if (!sent) {
      for (auto& s : senders_)
        if (s->in_flight != 0 || !s->refused.empty())
          problems_.add("sender " + std::to_string(s->user) + ": " + std::to_string(s->in_flight) +
                        " in flight and " + std::to_string(s->refused.size()) +
                        " refused, never receipted by the deadline");
    }
    if (!co_await wait_for([&] { return caught_up(); },
                           std::max(hard_deadline_, steady::now() + 30s)))
      for (std::size_t i = 0; i < senders_.size(); ++i)
        if (receivers_[i]->last_seq < senders_[i]->max_seq)
          problems_.add("receiver " + std::to_string(receivers_[i]->user) + " stuck at seq " +
                        std::to_string(receivers_[i]->last_seq) + " of " +
                        std::to_string(senders_[i]->max_seq));
    caught_up_at_ = steady::now();
    co_await sleep(1000ms);  // a duplicate or a stray message would come now
    co_await replay_check();
    abort_all();
  }

  // A new session of every receiver, on the other node, with ack=manual so
  // that it moves nothing: welcomed with the last seq, replayed nothing.
  asio::awaitable<void> replay_check() {
    if (aborted_) co_return;
    for (std::size_t i = 0; i < receivers_.size(); ++i) {
      auto& r = *receivers_[i];
      fresh_.push_back(std::make_unique<ws_stream>(ctx_));
      const auto port = r.port == port_a_ ? port_b_ : port_a_;
      const auto welcome =
          co_await open(*fresh_.back(), port, "/ws/" + std::to_string(r.user) + "?ack=manual");
      if (u64(welcome.at("seq")) != senders_[i]->max_seq)
        problems_.add("a new session of " + std::to_string(r.user) + " is welcomed with seq " +
                      std::to_string(u64(welcome.at("seq"))) + ", not " +
                      std::to_string(senders_[i]->max_seq));
      ++replay_checked_;
    }
    for (std::size_t i = 0; i < fresh_.size(); ++i)
      asio::co_spawn(
          ctx_,
          [this, ws = fresh_[i].get(), user = receivers_[i]->user]() -> asio::awaitable<void> {
            beast::flat_buffer buffer;
            auto [ec, n] = co_await ws->async_read(buffer, use_tuple);
            if (!ec)
              problems_.add("a new session of " + std::to_string(user) +
                            " was replayed what was acknowledged: " +
                            beast::buffers_to_string(buffer.data()));
          },
          asio::detached);
    co_await sleep(700ms);
    finishing_ = true;
    boost::system::error_code ignored;
    for (auto& ws : fresh_)
      beast::get_lowest_layer(*ws).close(ignored);
  }

  asio::steady_timer watchdog_;
  steady::time_point hard_deadline_;
  bool aborted_ = false;
  bool finishing_ = false;
  std::vector<std::unique_ptr<ws_stream>> fresh_;  // the replay check's sessions
};

double percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k] / 1000.0;
}

// The sockets of this process are not close-on-exec (Asio does not ask for
// it), and redis_server starts redis-server with posix_spawn: a Redis
// restarted while the clients and nodes run would inherit every one of them.
// A client socket closed here would then stay open in Redis: no FIN, so its
// session never ends and the nodes' drain waits out its --drain-timeout
// (test_cluster's restart case spends 10 s so). Hence, before a restart,
// everything open is marked close-on-exec.
void close_on_exec_everything() {
  std::vector<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    fds.push_back(std::atoi(entry.path().filename().c_str()));
  for (const int fd : fds) {
    const int flags = fd > 2 ? ::fcntl(fd, F_GETFD) : -1;
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

// The whole soak with `params`, its checks and its summary.
void run_soak(const soak_params& params) {
  redis_server_options persistent;
  persistent.append_only = true;
  redis_server redis(persistent);
  const auto node = [&](const char* name) {
    auto cfg = test_config();
    cfg.store = "redis://127.0.0.1:" + std::to_string(redis.port());
    cfg.node_id = name;
    return cfg;
  };
  test_server a(node("soak-a")), b(node("soak-b"));

  soak_client client(params, a.port(), b.port());
  std::thread client_thread([&] { client.run(); });

  // The outage, in the middle of the load, driven from this thread (a
  // restart blocks until Redis has loaded its file and answers).
  steady::time_point killed, restarted;
  {
    const auto wait_start = steady::now() + 60s;
    while (!client.started && !client.finished && steady::now() < wait_start)
      std::this_thread::sleep_for(10ms);
    if (client.started) {
      std::this_thread::sleep_for(params.duration / 2);
      killed = steady::now();
      client.killed_at = killed.time_since_epoch().count();
      redis.kill();
      std::this_thread::sleep_for(params.outage);
      close_on_exec_everything();
      redis.restart();
      restarted = steady::now();
      client.restarted_at = restarted.time_since_epoch().count();
    }
  }
  client_thread.join();
  // Batches whose reply the kill took, run again by their node instead of
  // refused (docs/cluster.md, "Faults").
  std::uint64_t reruns = 0;
  for (const auto port : {a.port(), b.port()}) {
    const auto metrics = http_get(port, "/metrics").body;
    const std::string series = "\nswitchboard_redis_append_reruns_total ";
    if (const auto at = metrics.find(series); at != std::string::npos)
      reruns += std::stoull(metrics.substr(at + series.size()));
  }

  BOOST_TEST_REQUIRE(client.started.load(), "the clients never connected");
  std::string first_problems;
  for (const auto& p : client.problems_.items)
    first_problems += "\n  " + p;
  BOOST_TEST(client.problems_.count == 0u,
             client.problems_.count << " problems, the first ones:" << first_problems);

  // Per pair: what was receipted against what was delivered.
  std::uint64_t receipted = 0, refusals = 0, resends = 0, originals = 0, delivered = 0, lost = 0,
                duplicated = 0, wrong_seq = 0, unreceipted = 0, refused_delivered = 0, gaps = 0;
  for (std::size_t i = 0; i < client.senders_.size(); ++i) {
    const auto& s = *client.senders_[i];
    const auto& r = *client.receivers_[i];
    receipted += s.receipted;
    refusals += s.refusals;
    resends += s.resends;
    originals += s.original_receipts;
    delivered += r.delivered;
    std::vector<bool> seq_seen(s.max_seq + 1, false);
    for (std::uint64_t id = 0; id < s.messages.size(); ++id) {
      const auto& m = s.messages[id];
      const auto times = id < r.times.size() ? r.times[id] : 0u;
      if (m.state == msg_state::receipted) {
        if (m.seq < seq_seen.size()) seq_seen[m.seq] = true;
        if (times == 0 && ++lost <= 5)
          BOOST_ERROR("receipted but never delivered: " << s.user << "/" << id << " seq " << m.seq);
        if (times > 1 && ++duplicated <= 5)
          BOOST_ERROR("delivered " << times << " times: " << s.user << "/" << id);
        if (times >= 1 && r.seq_of[id] != m.seq && ++wrong_seq <= 5)
          BOOST_ERROR("delivered with seq " << r.seq_of[id] << " but receipted with " << m.seq
                                            << ": " << s.user << "/" << id);
      } else if (times > 0 && m.state == msg_state::refused && m.resends == 0) {
        if (++refused_delivered <= 5)
          BOOST_ERROR("delivered but refused and never resent: " << s.user << "/" << id);
      } else if (times > 0 && ++unreceipted <= 5) {
        BOOST_ERROR("delivered but never receipted: " << s.user << "/" << id);
      }
    }
    for (std::uint64_t id = s.messages.size(); id < r.times.size(); ++id)
      if (r.times[id] > 0 && ++unreceipted <= 5)
        BOOST_ERROR("delivered but never sent: " << s.user << "/" << id);
    // Seqs have no gaps and each stored message was receipted (a refused
    // one that was stored all the same got its receipt on the resend; one
    // given up makes a gap here).
    for (std::uint64_t seq = 1; seq <= s.max_seq; ++seq)
      if (!seq_seen[seq] && ++gaps <= 5)
        BOOST_ERROR("receiver " << r.user << ": seq " << seq << " receipted to nobody");
  }
  const auto elapsed = seconds_between(client.start_, client.senders_done_at_);
  const auto load = std::chrono::duration<double>(params.duration).count();
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double process_cpu =
      static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
      static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  auto latencies = client.receipt_us_;
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  out << "cluster soak: " << client.senders_.size() << " senders (" << params.pairs
      << " A->B auto, " << params.manual_pairs << " B->A manual), window " << params.window << ", "
      << load << " s of load, Redis down " << seconds_between(killed, restarted) << " s at "
      << seconds_between(client.start_, killed) << " s\n"
      << "  receipted " << receipted << ", refused " << refusals << ", resent " << resends << " ("
      << originals << " got the original receipt)"
      << (params.resend_refused ? "" : " (refused ones given up)") << ", delivered " << delivered
      << "; batches run again after a lost reply " << reruns << "\n"
      << "  elapsed " << elapsed << " s (senders done), caught up "
      << seconds_between(client.start_, client.caught_up_at_) << " s; throughput "
      << static_cast<double>(receipted) / load << " msg/s\n"
      << "  receipt latency ms: p50 " << percentile(latencies, 0.5) << ", p99 "
      << percentile(latencies, 0.99) << ", max " << percentile(latencies, 1.0)
      << "; slowest refusal " << client.max_refusal_latency_.count() << " ms\n"
      << "  refusals from "
      << (client.first_refusal_ ? seconds_between(killed, *client.first_refusal_) : -1) << " s to "
      << (client.last_refusal_ ? seconds_between(killed, *client.last_refusal_) : -1)
      << " s after the kill; first receipt "
      << (client.first_receipt_after_restart_
              ? seconds_between(restarted, *client.first_receipt_after_restart_)
              : -1)
      << " s after the restart\n"
      << "  CPU: client thread " << client.client_cpu_ << " s, whole process (nodes and client) "
      << process_cpu << " s\n";
  std::cout << out.str() << std::flush;

  BOOST_TEST(lost == 0u);
  BOOST_TEST(duplicated == 0u);
  BOOST_TEST(wrong_seq == 0u);
  BOOST_TEST(unreceipted == 0u);
  BOOST_TEST(refused_delivered == 0u);  // PROTOCOL.md section 7: never delivered later
  BOOST_TEST(gaps == 0u);
  // The soak tested something: the outage refused SENDs or made a node run
  // a batch again, and receipts resumed within 15 s of the restart
  // (PROTOCOL.md section 7).
  BOOST_TEST(refusals + reruns > 0u);
  BOOST_TEST(client.first_receipt_after_restart_.has_value());
  if (client.first_receipt_after_restart_)
    BOOST_TEST(seconds_between(restarted, *client.first_receipt_after_restart_) < 15.0);
  BOOST_TEST(client.max_refusal_latency_ < 10s);
  BOOST_TEST(client.replay_checked_ == client.receivers_.size());
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_receipted_message_is_delivered_once_in_order_across_a_redis_restart,
                     *boost::unit_test::precondition(only_with_two_threads)) {
  soak_params params;
  params.duration = std::chrono::seconds(soak_seconds(30));
  params.outage = std::min<milliseconds>(2000ms, params.duration / 5);
  run_soak(params);
}

// PROTOCOL.md section 7: a SEND refused with ERROR unavailable is "never
// delivered later". Killing Redis under load (appendfsync always: Redis
// writes and fsyncs before it answers) often leaves a pipelined batch run
// and unanswered; the node runs it again once Redis is back and finds what
// was stored (docs/cluster.md, "Faults"). Here senders give a refused
// message up: none of those may reach its receiver.
BOOST_AUTO_TEST_CASE(a_refused_message_that_is_never_resent_is_never_delivered,
                     *boost::unit_test::precondition(only_with_two_threads)) {
  soak_params params;
  params.duration = std::chrono::seconds(std::min(soak_seconds(30), 10u));
  params.outage = std::min<milliseconds>(2000ms, params.duration / 5);
  params.resend_refused = false;
  run_soak(params);
}
