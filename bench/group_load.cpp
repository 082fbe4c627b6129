// Everything runs on one io_context and one thread: a copy's arrival at a
// member updates its sender's window, so the members' and the senders' state
// are shared, and one thread keeps that free of locks. main only polls
// counters and reads /proc. The client then costs about one frame read per
// copy: with 1000 members it may cost as much as the server, which the
// output says (client CPU per copy against the server's).

#include "group_load.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "content.hpp"
#include "frames.hpp"
#include "histogram.hpp"
#include "process_stats.hpp"

namespace bench {

namespace {

using steady = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

std::string fmt(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// One PUT /api/groups/G/members/U on a connection of its own; the status
// code, or 0 if the exchange failed.
int put_member(const server_target& t, const std::string& key, std::uint64_t group,
               std::uint64_t user, std::string& error) {
  asio::io_context ioc;
  tcp::socket s(ioc);
  error_code ec;
  for (const auto& ep : t.endpoints) {
    s.close();
    s.connect(ep, ec);
    if (!ec) break;
  }
  if (ec) {
    error = "connect: " + ec.message();
    return 0;
  }
  std::string req = "PUT /api/groups/" + std::to_string(group) + "/members/" +
                    std::to_string(user) + " HTTP/1.1\r\nHost: " + t.host + ":" + t.port +
                    "\r\nAuthorization: Bearer " + key +
                    "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(req), ec);
  if (ec) {
    error = "write: " + ec.message();
    return 0;
  }
  std::string resp;
  char buf[4096];
  for (;;) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    resp.append(buf, n);
    if (ec || resp.find("\r\n\r\n") != std::string::npos) break;
  }
  int code = 0;
  if (resp.size() > 12 && resp.starts_with("HTTP/1.1 "))
    std::from_chars(resp.data() + 9, resp.data() + 12, code);
  if (code == 0) error = "no HTTP answer: " + resp.substr(0, 80);
  return code;
}

struct member {
  member(asio::io_context& ioc, std::uint64_t id) : ws(ioc), id(id) {}
  wire_client ws;
  std::uint64_t id;
  std::uint64_t last_seq = 0;         // the welcome's, then the last copy's
  std::uint64_t last_gseq = 0;        // a fresh group: the first gseq is 1
  std::vector<std::uint64_t> next_k;  // per sender: the k expected next
  bool open = false;
  bool reading = false;
};

struct sender_state {
  explicit sender_state(asio::io_context& ioc) : wake(ioc) {}
  asio::steady_timer wake;
  bool waiting = false;
  std::uint64_t sent = 0, in_flight = 0, refused = 0, receipts = 0;
  // A ring over k: copies still to arrive, receipt seen, send time.
  std::vector<std::uint64_t> ring_k;
  std::vector<std::uint64_t> remaining;
  std::vector<std::uint8_t> receipted;
  std::vector<std::uint8_t> refused_k;  // an ERROR came for this k: no copy will come
  std::vector<std::int64_t> send_ns;
  std::string frame;
};

struct counts {
  std::uint64_t sent = 0, sent_in_window = 0;
  std::uint64_t copies = 0, copies_in_window = 0;  // distinct copies of this run
  std::uint64_t completed_in_window = 0;           // group messages at every member
  std::uint64_t receipts = 0, receipts_in_window = 0;
  std::uint64_t duplicated = 0, reordered = 0, misrouted = 0, corrupted = 0, stale = 0;
  std::uint64_t seq_gaps = 0, gseq_gaps = 0, receipt_unmatched = 0, receipt_no_gseq = 0;
  std::uint64_t refused = 0, other_frames = 0, socket_writes = 0;
  std::map<std::string, std::uint64_t> errors, server_closes;
  histogram delivery, receipt;
};

class group_client {
 public:
  explicit group_client(const group_options& o) : o_(o) {
    nonce_ = new_nonce();
    group_str_ = std::to_string(o_.group);
    for (std::uint64_t i = 0; i < o_.members; ++i) {
      members_.push_back(std::make_unique<member>(ioc_, o_.base_id + i));
      members_.back()->next_k.assign(o_.senders, 0);
    }
    const std::size_t ring = std::bit_ceil(std::size_t{4} * o_.window);
    for (unsigned s = 0; s < o_.senders; ++s) {
      auto st = std::make_unique<sender_state>(ioc_);
      st->ring_k.assign(ring, UINT64_MAX);
      st->remaining.assign(ring, 0);
      st->receipted.assign(ring, 0);
      st->refused_k.assign(ring, 0);
      st->send_ns.assign(ring, 0);
      senders_.push_back(std::move(st));
    }
  }

  void start_opening() {
    unsigned openers = static_cast<unsigned>(std::min<std::uint64_t>(200, o_.members));
    for (unsigned i = 0; i < openers; ++i)
      asio::co_spawn(ioc_, opener(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  void start_sending(std::int64_t start, std::int64_t t0, std::int64_t t1) {
    start_ns_ = start;
    t0_ns_ = t0;
    t1_ns_ = t1;
    asio::post(ioc_, [this] {
      for (unsigned s = 0; s < o_.senders; ++s)
        asio::co_spawn(ioc_, send_loop(s), asio::detached);
    });
  }

  void close_all() {
    asio::post(ioc_, [this] {
      closing_ = true;
      for (auto& s : senders_)
        s->wake.cancel();
      for (auto& m : members_)
        if (m->ws.is_open()) m->ws.close();
    });
  }

  void stop() {
    asio::post(ioc_, [this] {
      for (auto& m : members_)
        m->ws.abort();
      ioc_.stop();
    });
    if (thread_.joinable()) thread_.join();
  }

  std::atomic<std::uint64_t> opened{0}, open_failed{0}, readers_ended{0};
  std::atomic<unsigned> senders_done{0};
  std::atomic<bool> drained{false};
  std::string first_error;
  counts c;

 private:
  asio::awaitable<void> opener() {
    while (next_open_ < members_.size()) {
      member& m = *members_[next_open_++];
      auto r = co_await m.ws.open(o_.target, m.id);
      if (!r.ok) {
        if (first_error.empty()) first_error = r.error;
        ++open_failed;
        continue;
      }
      m.last_seq = r.welcome_seq;
      m.open = true;
      m.reading = true;
      asio::co_spawn(ioc_, reader(m), asio::detached);
      ++opened;
    }
  }

  asio::awaitable<void> reader(member& m) {
    frame_view parser;
    auto end = co_await m.ws.read_loop([&](std::string_view p) { on_frame(m, parser, p); });
    m.ws.abort();
    m.reading = false;
    if (!closing_) {
      std::string what = end.protocol_error ? std::string("a frame no server may send")
                         : end.code ? "close " + std::to_string(*end.code) + " " + end.reason
                                    : end.ec.message();
      ++c.server_closes[what];
    }
    ++readers_ended;
  }

  void build_frame(unsigned s, std::uint64_t k, std::int64_t t) {
    std::string& f = senders_[s]->frame;
    f.clear();
    f += R"({"type":1,"group":)";
    f += group_str_;
    f += R"(,"content":")";
    bench::append_content(f, nonce_, s, k, static_cast<std::uint64_t>(t), o_.size);
    f += R"(","id":)";
    char num[24];
    auto r = std::to_chars(num, num + sizeof num, k);
    f.append(num, r.ptr);
    f += '}';
  }

  asio::awaitable<void> send_loop(unsigned s) {
    sender_state& st = *senders_[s];
    wire_client& ws = members_[s]->ws;
    const std::size_t mask = st.ring_k.size() - 1;
    for (;;) {
      std::int64_t now = now_ns();
      if (now >= t1_ns_ || closing_ || !ws.is_open()) break;
      std::uint64_t free = o_.window - std::min<std::uint64_t>(st.in_flight, o_.window);
      if (free < o_.batch) {
        st.wake.expires_at(steady::time_point(std::chrono::nanoseconds(t1_ns_)));
        st.waiting = true;
        co_await st.wake.async_wait(asio::as_tuple(asio::use_awaitable));
        st.waiting = false;
        continue;
      }
      for (std::uint64_t i = 0; i < free; ++i) {
        std::uint64_t k = st.sent;
        std::int64_t t = now_ns();
        build_frame(s, k, t);
        st.ring_k[k & mask] = k;
        st.remaining[k & mask] = o_.members - 1;
        st.receipted[k & mask] = 0;
        st.refused_k[k & mask] = 0;
        st.send_ns[k & mask] = t;
        ++st.sent;
        ++st.in_flight;
        ++c.sent;
        if (t >= t0_ns_ && t < t1_ns_) ++c.sent_in_window;
        ws.append_text(st.frame);
      }
      ws.flush();
    }
    c.socket_writes += ws.socket_writes();
    ++senders_done;
    check_drained();
  }

  void slot_freed(sender_state& st) {
    if (st.in_flight > 0) --st.in_flight;
    if (st.waiting && o_.window - st.in_flight >= o_.batch) st.wake.cancel();
  }

  void check_drained() {
    if (senders_done < o_.senders || drained) return;
    std::uint64_t expected_msgs = c.sent - c.refused;
    if (c.receipts < expected_msgs) return;
    if (c.copies < expected_msgs * (o_.members - 1)) return;
    drained = true;
  }

  void on_frame(member& m, frame_view& f, std::string_view payload) {
    std::int64_t now = now_ns();
    if (!f.parse(payload)) {
      ++c.corrupted;
      return;
    }
    auto type = f.u64(frame_view::type);
    if (type == 1)
      on_copy(m, f, now);
    else if (type == 2 && m.id - o_.base_id < o_.senders)
      on_receipt(*senders_[m.id - o_.base_id], f, now);
    else if (type == 4) {
      ++c.errors[f.text(frame_view::code)];
      if (m.id - o_.base_id < o_.senders) {
        // A refused SEND (e.g. `unavailable`): nothing stored, no copy, no
        // receipt. Its id says which k the members will never see.
        sender_state& st = *senders_[m.id - o_.base_id];
        const std::size_t mask = st.ring_k.size() - 1;
        auto k = f.u64(frame_view::id);
        if (k && *k < st.sent && st.ring_k[*k & mask] == *k) {
          st.refused_k[*k & mask] = 1;
          st.remaining[*k & mask] = 0;
        }
        ++c.refused;
        slot_freed(st);
      }
    } else if (type == 3) {
      ++c.server_closes["CLOSE " + f.text(frame_view::code)];
    } else {
      ++c.other_frames;
    }
    check_drained();
  }

  void on_receipt(sender_state& st, const frame_view& f, std::int64_t now) {
    auto k = f.u64(frame_view::id);
    const std::size_t mask = st.ring_k.size() - 1;
    if (!k || *k >= st.sent || st.ring_k[*k & mask] != *k || st.receipted[*k & mask]) {
      ++c.receipt_unmatched;
      return;
    }
    if (!f.has(frame_view::gseq) || f.u64(frame_view::group) != o_.group) ++c.receipt_no_gseq;
    st.receipted[*k & mask] = 1;
    ++st.receipts;
    ++c.receipts;
    if (now >= t0_ns_ && now < t1_ns_) {
      ++c.receipts_in_window;
      c.receipt.add(now - st.send_ns[*k & mask]);
    }
    if (st.remaining[*k & mask] == 0) slot_freed(st);
  }

  void on_copy(member& m, const frame_view& f, std::int64_t now) {
    auto content_field = f.str(frame_view::content);
    if (!content_field) {
      ++c.corrupted;
      return;
    }
    content_marks marks;
    switch (read_content(*content_field, nonce_, marks)) {
      case content_read::stale:
        ++c.stale;
        return;
      case content_read::corrupted:
        ++c.corrupted;
        return;
      case content_read::ok:
        break;
    }
    const std::uint64_t s = marks.a, k = marks.k;
    if (s >= o_.senders || f.u64(frame_view::sender) != o_.base_id + s ||
        f.u64(frame_view::receiver) != m.id || f.u64(frame_view::group) != o_.group ||
        m.id == o_.base_id + s) {
      ++c.misrouted;
      return;
    }
    sender_state& st = *senders_[s];
    const std::size_t mask = st.ring_k.size() - 1;
    if (k >= st.sent || st.ring_k[k & mask] != k) {
      ++c.corrupted;
      return;
    }
    auto seq = f.u64(frame_view::seq).value_or(0);
    if (seq != m.last_seq + 1) ++c.seq_gaps;
    m.last_seq = seq;
    // Every member gets the group's messages in gseq order; one that sends
    // skips its own, the others must see every gseq.
    auto gseq = f.u64(frame_view::gseq).value_or(0);
    const bool sends = m.id - o_.base_id < o_.senders;
    if (gseq <= m.last_gseq || (!sends && gseq != m.last_gseq + 1)) ++c.gseq_gaps;
    m.last_gseq = gseq;
    std::uint64_t& next = m.next_k[s];
    if (k < next) {
      ++c.duplicated;
      return;
    }
    // Skipping k's is right only over SENDs the server refused.
    for (std::uint64_t j = next; j < k; ++j)
      if (st.ring_k[j & mask] != j || !st.refused_k[j & mask]) {
        ++c.reordered;  // one of this sender's copies skipped (lost, or later)
        break;
      }
    next = k + 1;
    ++c.copies;
    bool in_window = now >= t0_ns_ && now < t1_ns_;
    if (in_window) {
      ++c.copies_in_window;
      c.delivery.add(now - static_cast<std::int64_t>(marks.send_ns));
    }
    if (st.remaining[k & mask] > 0 && --st.remaining[k & mask] == 0) {
      if (in_window) ++c.completed_in_window;
      if (st.receipted[k & mask]) slot_freed(st);
    }
  }

  const group_options& o_;
  asio::io_context ioc_{1};
  std::vector<std::unique_ptr<member>> members_;
  std::vector<std::unique_ptr<sender_state>> senders_;
  std::size_t next_open_ = 0;
  std::string nonce_, group_str_;
  std::int64_t start_ns_ = 0, t0_ns_ = 0, t1_ns_ = 0;
  bool closing_ = false;
  std::thread thread_;
};

struct snap {
  std::int64_t at = 0;
  double self = 0;
  std::optional<double> self_wait, server, server_wait, redis, redis_wait;
  std::optional<machine_cpu> machine;
};

snap take(const group_options& o) {
  snap s;
  s.at = now_ns();
  s.self = self_cpu_seconds();
  s.self_wait = process_wait_seconds(0);
  if (o.pid) {
    s.server = process_cpu_seconds(o.pid);
    s.server_wait = process_wait_seconds(o.pid);
  }
  if (o.redis_pid) {
    s.redis = process_cpu_seconds(o.redis_pid);
    s.redis_wait = process_wait_seconds(o.redis_pid);
  }
  s.machine = machine_cpu_seconds();
  return s;
}

}  // namespace

int run_group(const group_options& in) {
  group_options o = in;
  if (o.group == 0) o.group = o.base_id;
  if (o.members < 2 || o.senders == 0 || o.senders > o.members) {
    std::cerr << "switchboard_bench: --group-members must be at least 2 and --group-senders "
                 "in 1..members\n";
    return 2;
  }
  std::uint64_t limit = raise_file_limit();
  if (limit < o.members + 64) {
    std::cerr << "switchboard_bench: " << o.members << " sessions need " << o.members + 64
              << " open files, the limit is " << limit << "\n";
    return 2;
  }
  // Membership first: a group SEND by a non-member is refused.
  auto t_put = steady::now();
  for (std::uint64_t i = 0; i < o.members; ++i) {
    std::string error;
    int code = put_member(o.target, o.api_key, o.group, o.base_id + i, error);
    if (code != 204) {
      std::cerr << "switchboard_bench: PUT /api/groups/" << o.group << "/members/" << o.base_id + i
                << ": " << (code ? "HTTP " + std::to_string(code) : error) << "\n";
      return 3;
    }
  }
  const double put_s = std::chrono::duration<double>(steady::now() - t_put).count();

  group_client g(o);
  g.start_opening();
  auto deadline = steady::now() + std::chrono::seconds(60);
  while (g.opened + g.open_failed < o.members && steady::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (g.opened < o.members) {
    std::cerr << "switchboard_bench: " << g.opened << " of " << o.members
              << " members connected; first error: " << g.first_error << "\n";
    g.stop();
    std::_Exit(3);
  }
  auto ns = [](double s) { return static_cast<std::int64_t>(s * 1e9); };
  auto at = [](std::int64_t t) { return steady::time_point(std::chrono::nanoseconds(t)); };
  const std::int64_t start = now_ns() + ns(0.01);
  const std::int64_t t0 = start + ns(o.warmup), t1 = t0 + ns(o.duration);
  g.start_sending(start, t0, t1);
  std::this_thread::sleep_until(at(t0));
  snap before = take(o);
  std::this_thread::sleep_until(at(t1));
  snap after = take(o);
  auto drain_deadline = at(t1 + ns(o.drain));
  while (!g.drained && steady::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const bool drained = g.drained;
  g.close_all();
  auto hard = steady::now() + std::chrono::seconds(5);
  while (g.readers_ended < o.members && steady::now() < hard)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  g.stop();

  const counts& c = g.c;
  const double window_s = static_cast<double>(after.at - before.at) / 1e9;
  const double copies_per_s = static_cast<double>(c.copies_in_window) / o.duration;
  const double fanout = static_cast<double>(o.members - 1);
  const double copies_in_snap = copies_per_s * window_s;
  const std::uint64_t expected = (c.sent - std::min(c.sent, c.refused)) * (o.members - 1);
  const std::uint64_t lost = expected - std::min(expected, c.copies);
  std::vector<std::pair<std::string, std::string>> rows;  // key, value
  auto row = [&](std::string k, std::string v) { rows.emplace_back(std::move(k), std::move(v)); };
  row("members", std::to_string(o.members));
  row("senders", std::to_string(o.senders));
  row("window", std::to_string(o.window));
  row("group_msgs_per_s", fmt(copies_per_s / fanout, 0));
  row("completed_msgs_per_s", fmt(static_cast<double>(c.completed_in_window) / o.duration, 0));
  row("copies_per_s", fmt(copies_per_s, 0));
  row("sent_per_s", fmt(static_cast<double>(c.sent_in_window) / o.duration, 0));
  row("receipts_per_s", fmt(static_cast<double>(c.receipts_in_window) / o.duration, 0));
  auto lat = [&](const std::string& k, const histogram& h) {
    row(k + "_p50_us", fmt(h.quantile(0.5) / 1e3, 1));
    row(k + "_p90_us", fmt(h.quantile(0.9) / 1e3, 1));
    row(k + "_p99_us", fmt(h.quantile(0.99) / 1e3, 1));
    row(k + "_p999_us", fmt(h.quantile(0.999) / 1e3, 1));
  };
  lat("delivery", c.delivery);
  lat("receipt", c.receipt);
  if (before.server && after.server && copies_in_snap > 0) {
    double cpu = *after.server - *before.server;
    row("server_cpu_us_per_group_msg", fmt(cpu / (copies_in_snap / fanout) * 1e6, 2));
    row("server_cpu_us_per_copy", fmt(cpu / copies_in_snap * 1e6, 3));
    row("server_cpu_pct", fmt(cpu / window_s * 100, 0));
  }
  if (before.server_wait && after.server_wait)
    row("server_wait_pct", fmt((*after.server_wait - *before.server_wait) / window_s * 100, 0));
  if (before.redis && after.redis && copies_in_snap > 0) {
    double cpu = *after.redis - *before.redis;
    row("redis_cpu_us_per_group_msg", fmt(cpu / (copies_in_snap / fanout) * 1e6, 2));
    row("redis_cpu_us_per_copy", fmt(cpu / copies_in_snap * 1e6, 3));
    row("redis_cpu_pct", fmt(cpu / window_s * 100, 0));
  }
  if (before.redis_wait && after.redis_wait)
    row("redis_wait_pct", fmt((*after.redis_wait - *before.redis_wait) / window_s * 100, 0));
  if (copies_in_snap > 0) {
    row("client_cpu_us_per_copy", fmt((after.self - before.self) / copies_in_snap * 1e6, 3));
    row("client_cpu_pct", fmt((after.self - before.self) / window_s * 100, 0));
  }
  if (before.self_wait && after.self_wait)
    row("client_wait_pct", fmt((*after.self_wait - *before.self_wait) / window_s * 100, 0));
  if (before.machine && after.machine) {
    row("machine_busy_pct", fmt((after.machine->busy - before.machine->busy) / window_s * 100, 0));
    row("machine_steal_pct",
        fmt((after.machine->steal - before.machine->steal) / window_s * 100, 0));
  }
  row("sent", std::to_string(c.sent));
  row("receipts", std::to_string(c.receipts));
  row("copies", std::to_string(c.copies));
  row("expected_copies", std::to_string(expected));
  row("lost", std::to_string(lost));
  row("duplicated", std::to_string(c.duplicated));
  row("reordered", std::to_string(c.reordered));
  row("misrouted", std::to_string(c.misrouted));
  row("corrupted", std::to_string(c.corrupted));
  row("seq_gaps", std::to_string(c.seq_gaps));
  row("gseq_gaps", std::to_string(c.gseq_gaps));
  row("receipt_unmatched", std::to_string(c.receipt_unmatched));
  row("receipt_without_gseq", std::to_string(c.receipt_no_gseq));
  row("stale", std::to_string(c.stale));
  row("other_frames", std::to_string(c.other_frames));
  auto join = [](const std::map<std::string, std::uint64_t>& m) {
    if (m.empty()) return std::string("none");
    std::string s;
    for (auto& [k, v] : m)
      s += (s.empty() ? "" : ",") + k + ":" + std::to_string(v);
    return s;
  };
  row("errors", join(c.errors));
  row("server_closes", join(c.server_closes));
  row("drained", drained ? "1" : "0");
  row("put_members_s", fmt(put_s, 2));
  row("msgs_per_send_call",
      fmt(static_cast<double>(c.sent) / std::max<std::uint64_t>(1, c.socket_writes), 1));
  if (!o.kv)
    std::cout << "switchboard_bench group " << o.group << " on " << o.target.host << ":"
              << o.target.port << ": " << o.members << " members, " << o.senders
              << " senders, window " << o.window << " (refill " << o.batch << "), " << o.size
              << "-byte content, " << fmt(o.duration, 1) << " s after " << fmt(o.warmup, 1)
              << " s warm-up, users from " << o.base_id << "\n";
  for (auto& [k, v] : rows) {
    std::string val = v;
    for (auto& ch : val)
      if (ch == ' ') ch = '_';
    if (o.kv)
      std::cout << k << "=" << val << "\n";
    else
      std::cout << "  " << k << std::string(k.size() < 30 ? 30 - k.size() : 1, ' ') << val << "\n";
  }
  std::cout.flush();
  bool bad = lost || c.duplicated || c.reordered || c.misrouted || c.corrupted || c.seq_gaps ||
             c.gseq_gaps || c.receipt_unmatched || c.receipt_no_gseq || !drained;
  std::_Exit(bad ? 1 : 0);  // the sessions' objects die with the process
}

}  // namespace bench
