// switchboard_bench: a load client for a running Switchboard server (or any
// server that speaks PROTOCOL.md sections 2 and 3).
//
//   switchboard_bench --url 127.0.0.1:8080 [--pairs 50] [--window 128] [--size 64]
//                     [--duration 10] [--warmup 1] [--receipts] [--pid PID]
//                     [--threads 1] [--base-id N] [--rate 0] [--format table|kv]
//                     [--window-by delivery|receipt|both] [--batch W/8] [--drain 5]
//
// It opens P sender/receiver pairs (users base-id+2i and base-id+2i+1). Each
// sender keeps at most W messages in flight to its receiver: sent and not yet
// delivered; with --receipts, by default, sent and not yet both delivered and
// receipted (--window-by receipt counts receipts only, but then nothing bounds
// the server's backlog towards the receivers: delivery latency then measures
// that backlog, not the relay). It refills its
// window once at least --batch slots are free, and writes a whole refill in
// one socket write (below). Content is exactly --size bytes:
// "<run nonce>.<pair>.<k>.<send time ns>." padded with 'x', so the receiver
// measures delivery latency and checks per pair that k and the server's seq
// both increase by exactly one. After --warmup seconds, it counts for
// --duration seconds, then stops sending and waits up to --drain seconds for
// everything in flight; what has not arrived by then is lost.
//
// Output: delivered messages/s; delivery latency (SEND written to the frame
// read at the receiver) and, with --receipts, receipt latency (SEND written to
// the RECEIVE receipt read at the sender), p50/p90/p99/p99.9; lost,
// duplicated, reordered, misrouted, corrupted messages and seq gaps; the
// server's CPU time per delivered message (--pid, from /proc/PID/stat) and the
// client's own (getrusage), which must stay well below the server's or the
// benchmark measures itself. Exit code 0, 1 if any message was lost,
// duplicated, reordered, misrouted or corrupted, 2 for a bad option, 3 if it
// could not connect.
//
// The clients are Beast websocket streams over `batching_socket`, a next
// layer that appends every write to one per-connection buffer and flushes it
// with one socket write per batch: a sender writes a whole window refill with
// one send(), and the pongs and close frames Beast writes from inside its read
// operation go through the same buffer, so frames never interleave.
// Each --threads thread runs its own io_context and owns whole pairs, so the
// pairs' state is never shared between threads.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using beast::error_code;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------
// Options

struct options {
  std::string host;
  std::string port;
  unsigned pairs = 50;
  unsigned window = 128;
  unsigned batch = 0;  // 0: max(1, window / 8)
  std::size_t size = 64;
  double duration = 10;
  double warmup = 1;
  double drain = 5;
  double rate = 0;  // messages per second over all pairs; 0: as fast as the window allows
  bool receipts = false;
  enum class window_by { delivery, receipt, both } frees = window_by::delivery;
  long pid = 0;
  unsigned threads = 1;
  std::uint64_t base_id = 0;
  bool kv = false;
};

std::optional<options> parse_options(int argc, char** argv) {
  namespace po = boost::program_options;
  options o;
  std::string url;
  std::string format = "table";
  std::string window_by;
  po::options_description desc("switchboard_bench options");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help")
    ("url", po::value(&url)->required(), "server address HOST:PORT (ws:// optional)")
    ("pairs,p", po::value(&o.pairs)->default_value(o.pairs), "sender/receiver pairs")
    ("window,w", po::value(&o.window)->default_value(o.window), "messages in flight per sender")
    ("batch", po::value(&o.batch)->default_value(0),
     "refill a sender's window once this many slots are free (0: max(1, window/8))")
    ("size", po::value(&o.size)->default_value(o.size), "content bytes per message")
    ("duration,d", po::value(&o.duration)->default_value(o.duration), "measured seconds")
    ("warmup", po::value(&o.warmup)->default_value(o.warmup), "seconds before measuring")
    ("drain", po::value(&o.drain)->default_value(o.drain),
     "seconds to wait for messages in flight after the run")
    ("rate", po::value(&o.rate)->default_value(o.rate),
     "offered messages/s over all pairs (0: as fast as the window allows)")
    ("receipts", po::bool_switch(&o.receipts), "give every SEND an id and time its receipt")
    ("window-by", po::value(&window_by),
     "what frees a window slot: delivery, receipt or both "
     "(default: delivery; both with --receipts)")
    ("pid", po::value(&o.pid), "server process id: report its CPU time per message")
    ("threads", po::value(&o.threads)->default_value(o.threads), "client threads")
    ("base-id", po::value(&o.base_id), "first user id (default: derived from the clock)")
    ("format", po::value(&format)->default_value(format), "table or kv (key=value lines)");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << "usage: switchboard_bench --url HOST:PORT [options]\n" << desc;
      std::exit(0);
    }
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "switchboard_bench: " << e.what() << "\n" << desc;
    return std::nullopt;
  }
  auto fail = [&](const char* what) -> std::optional<options> {
    std::cerr << "switchboard_bench: " << what << "\n";
    return std::nullopt;
  };
  if (url.starts_with("ws://")) url.erase(0, 5);
  if (auto slash = url.find('/'); slash != std::string::npos) url.erase(slash);
  auto colon = url.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == url.size())
    return fail("--url must be HOST:PORT");
  o.host = url.substr(0, colon);
  o.port = url.substr(colon + 1);
  if (o.host.size() > 2 && o.host.front() == '[' && o.host.back() == ']')
    o.host = o.host.substr(1, o.host.size() - 2);
  if (o.pairs == 0) return fail("--pairs must be at least 1");
  if (o.window == 0) return fail("--window must be at least 1");
  if (o.threads == 0) return fail("--threads must be at least 1");
  if (!(o.duration > 0) || o.warmup < 0 || o.drain < 0 || o.rate < 0)
    return fail("--duration must be positive, --warmup, --drain and --rate not negative");
  if (format != "table" && format != "kv") return fail("--format must be table or kv");
  o.kv = format == "kv";
  if (window_by.empty()) window_by = o.receipts ? "both" : "delivery";
  if (window_by == "delivery")
    o.frees = options::window_by::delivery;
  else if (window_by == "receipt")
    o.frees = options::window_by::receipt;
  else if (window_by == "both")
    o.frees = options::window_by::both;
  else
    return fail("--window-by must be delivery, receipt or both");
  if (o.frees != options::window_by::delivery && !o.receipts)
    return fail("--window-by receipt or both needs --receipts");
  if (o.batch == 0) o.batch = std::max(1u, o.window / 8);
  o.batch = std::min(o.batch, o.window);
  if (!vm.count("base-id")) {
    // Seconds since the epoch times 100000: runs a second apart never share a
    // user id unless one of them has more than 50000 pairs.
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    o.base_id = static_cast<std::uint64_t>(secs) * 100000;
  }
  if (o.base_id == 0 || o.base_id > UINT64_MAX - 2ull * o.pairs)
    return fail("--base-id must leave room for 2*pairs user ids in 1..2^64-1");
  return o;
}

// ---------------------------------------------------------------------------
// Latency histogram: log-linear buckets, 64 per power of two (1.6% precision).

class histogram {
 public:
  void add(std::int64_t ns) {
    std::uint64_t v = ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
    ++counts_[index(v)];
    ++total_;
  }
  void merge(const histogram& o) {
    for (std::size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  std::uint64_t count() const { return total_; }
  // The value at quantile q (0..1), in nanoseconds; 0 when empty.
  double quantile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return value(i);
    }
    return value(counts_.size() - 1);
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 128) return v;
    unsigned msb = 63 - static_cast<unsigned>(std::countl_zero(v));
    return (msb - 5) * 64 + ((v >> (msb - 6)) - 64);
  }
  static double value(std::size_t i) {
    if (i < 128) return static_cast<double>(i);
    unsigned msb = static_cast<unsigned>(i / 64) + 5;
    double width = std::ldexp(1.0, static_cast<int>(msb) - 6);
    return (static_cast<double>(i % 64) + 64) * width + width / 2;
  }
  std::array<std::uint64_t, 59 * 64> counts_{};
  std::uint64_t total_ = 0;
};

// ---------------------------------------------------------------------------
// batching_socket: a next layer for Beast's websocket stream that buffers
// every write and flushes with one socket write (see the top of the file).
// Outside a batch every write is flushed at once; one socket write at a time.

class batching_socket {
 public:
  using executor_type = tcp::socket::executor_type;
  using next_layer_type = tcp::socket;
  using lowest_layer_type = tcp::socket;

  explicit batching_socket(asio::io_context& ioc) : socket_(ioc) {}

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  tcp::socket& next_layer() noexcept { return socket_; }
  const tcp::socket& next_layer() const noexcept { return socket_; }

  template <class MutableBufferSequence, class ReadToken>
  auto async_read_some(const MutableBufferSequence& buffers, ReadToken&& token) {
    return socket_.async_read_some(buffers, std::forward<ReadToken>(token));
  }

  template <class ConstBufferSequence, class WriteToken>
  auto async_write_some(const ConstBufferSequence& buffers, WriteToken&& token) {
    return asio::async_initiate<WriteToken, void(error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& bufs) {
          error_code ec = error_;
          std::size_t n = 0;
          if (!ec) {
            for (auto b : beast::buffers_range_ref(bufs)) {
              pending_.append(static_cast<const char*>(b.data()), b.size());
              n += b.size();
            }
            if (!batching_) flush();
          }
          // Never complete inside the initiating function.
          asio::post(socket_.get_executor(), beast::bind_front_handler(std::move(handler), ec, n));
        },
        token, buffers);
  }

  void begin_batch() { batching_ = true; }
  void end_batch() {
    batching_ = false;
    flush();
  }
  std::uint64_t socket_writes() const { return writes_; }

 private:
  void flush() {
    if (writing_ || pending_.empty() || error_) return;
    writing_ = true;
    ++writes_;
    std::swap(pending_, in_flight_);
    asio::async_write(socket_, asio::buffer(in_flight_), [this](error_code ec, std::size_t) {
      writing_ = false;
      in_flight_.clear();
      if (ec) {
        error_ = ec;
        return;
      }
      if (!batching_) flush();
    });
  }

  tcp::socket socket_;
  std::string pending_;    // written by Beast, not yet handed to the socket
  std::string in_flight_;  // the socket write in progress
  bool batching_ = false;
  bool writing_ = false;
  error_code error_;
  std::uint64_t writes_ = 0;
};

// Found by argument-dependent lookup from Beast's close and read paths.
[[maybe_unused]] void teardown(beast::role_type role, batching_socket& s, error_code& ec) {
  websocket::teardown(role, s.next_layer(), ec);
}

template <class TeardownHandler>
void async_teardown(beast::role_type role, batching_socket& s, TeardownHandler&& handler) {
  websocket::async_teardown(role, s.next_layer(), std::forward<TeardownHandler>(handler));
}

[[maybe_unused]] void beast_close_socket(batching_socket& s) {
  error_code ec;
  s.next_layer().close(ec);
}

using ws_stream = websocket::stream<batching_socket>;

// ---------------------------------------------------------------------------
// Frames from the server, parsed with a reused parser into a stack buffer.

class frame_parser {
 public:
  frame_parser() : resource_(storage_, sizeof storage_), parser_(json::storage_ptr(), {}, temp_) {}
  frame_parser(const frame_parser&) = delete;
  frame_parser& operator=(const frame_parser&) = delete;

  const json::object* parse(const beast::flat_buffer& buffer) {
    value_ = json::value();
    resource_.release();
    parser_.reset(&resource_);
    std::string_view text(static_cast<const char*>(buffer.data().data()), buffer.size());
    error_code ec;
    parser_.write(text, ec);
    if (ec) return nullptr;
    value_ = parser_.release();
    return value_.if_object();
  }

 private:
  alignas(16) unsigned char storage_[8192];
  unsigned char temp_[1024];
  json::monotonic_resource resource_;
  json::parser parser_;
  json::value value_;
};

std::optional<std::uint64_t> get_u64(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (const auto* u = v->if_uint64()) return *u;
  if (const auto* i = v->if_int64(); i && *i >= 0) return static_cast<std::uint64_t>(*i);
  if (const auto* s = v->if_string()) {
    std::uint64_t n = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), n);
    if (ec == std::errc() && p == s->data() + s->size()) return n;
  }
  return std::nullopt;
}

std::string get_string(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return {};
  if (const auto* s = v->if_string()) return std::string(s->data(), s->size());
  return json::serialize(*v);
}

// ---------------------------------------------------------------------------
// Run-wide state, written by main before the workers read it (through post).

struct run_state {
  options opt;
  std::string nonce;  // 8 hex digits, in every content of this run
  std::int64_t start_ns = 0, t0_ns = 0, t1_ns = 0;
  std::atomic<unsigned> connected{0};
  std::atomic<unsigned> connect_failed{0};
  std::atomic<unsigned> finished{0};  // pairs whose both sessions ended
  std::string first_connect_error;    // written once, by whoever fails first
  std::atomic<bool> error_taken{false};
};

// Counters and histograms of one worker thread; merged at the end.
struct stats {
  std::uint64_t delivered_in_window = 0;
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;  // distinct messages of this run received
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t misrouted = 0;
  std::uint64_t corrupted = 0;
  std::uint64_t stale = 0;  // frames from another run (another nonce)
  std::uint64_t seq_gaps = 0;
  std::uint64_t receipts = 0;
  std::uint64_t receipt_duplicates = 0;
  std::uint64_t receipt_unmatched = 0;
  std::uint64_t receipt_seq_gaps = 0;
  std::uint64_t refused = 0;  // SENDs answered with an ERROR
  std::uint64_t other_frames = 0;
  std::uint64_t socket_writes = 0;  // by senders, to compare with messages sent
  std::uint64_t window_waits_over_1s = 0;
  std::int64_t max_window_wait_ns = 0;
  std::uint64_t timed_out_pairs = 0;
  std::map<std::string, std::uint64_t> errors;         // ERROR frames by code
  std::map<std::string, std::uint64_t> server_closes;  // sessions the server ended
  histogram delivery, receipt;

  void merge(const stats& o) {
    delivered_in_window += o.delivered_in_window;
    sent += o.sent;
    delivered += o.delivered;
    duplicated += o.duplicated;
    reordered += o.reordered;
    misrouted += o.misrouted;
    corrupted += o.corrupted;
    stale += o.stale;
    seq_gaps += o.seq_gaps;
    receipts += o.receipts;
    receipt_duplicates += o.receipt_duplicates;
    receipt_unmatched += o.receipt_unmatched;
    receipt_seq_gaps += o.receipt_seq_gaps;
    refused += o.refused;
    other_frames += o.other_frames;
    socket_writes += o.socket_writes;
    window_waits_over_1s += o.window_waits_over_1s;
    max_window_wait_ns = std::max(max_window_wait_ns, o.max_window_wait_ns);
    timed_out_pairs += o.timed_out_pairs;
    for (auto& [k, v] : o.errors)
      errors[k] += v;
    for (auto& [k, v] : o.server_closes)
      server_closes[k] += v;
    delivery.merge(o.delivery);
    receipt.merge(o.receipt);
  }
};

// A growable set of message numbers.
class seen_set {
 public:
  // Returns whether k was already present, and adds it.
  bool test_and_set(std::uint64_t k) {
    std::size_t word = k / 64;
    if (word >= bits_.size()) bits_.resize(std::max(word + 1, bits_.size() * 2), 0);
    std::uint64_t mask = std::uint64_t{1} << (k % 64);
    bool was = bits_[word] & mask;
    bits_[word] |= mask;
    return was;
  }
  bool test(std::uint64_t k) const {
    std::size_t word = k / 64;
    return word < bits_.size() && (bits_[word] & (std::uint64_t{1} << (k % 64)));
  }

 private:
  std::vector<std::uint64_t> bits_;
};

struct worker;

// One sender and its receiver.
class pair_client {
 public:
  pair_client(worker& w, run_state& run, unsigned index);

  asio::awaitable<void> connect();
  asio::awaitable<void> send_loop();
  void start_readers();
  void force_close();

 private:
  asio::awaitable<std::optional<std::uint64_t>> open(ws_stream& ws, std::uint64_t user);
  asio::awaitable<void> sender_reader();
  asio::awaitable<void> receiver_reader();
  void on_delivery(const json::object& frame, std::int64_t now);
  void on_receipt(const json::object& frame, std::int64_t now);
  void on_server_frame(const json::object& frame, bool at_sender);
  void on_slot_freed();
  void check_done();
  void finish();
  void reader_ended(ws_stream& ws, error_code ec);
  void build_frame(std::uint64_t k, std::int64_t send_ns);

  worker& w_;
  stats& st_;
  run_state& run_;
  const options& opt_;
  unsigned index_;
  std::uint64_t sender_id_, receiver_id_;
  std::string receiver_str_;
  ws_stream sender_, receiver_;
  asio::steady_timer wake_;
  bool sender_waiting_ = false;

  std::uint64_t sent_ = 0;
  std::uint64_t in_flight_ = 0;
  bool sending_done_ = false;
  bool finishing_ = false;
  bool timed_out_ = false;
  int readers_running_ = 0;
  std::string frame_;

  // Receiver side.
  std::uint64_t last_seq_ = 0;  // the welcome's seq, then the last seq of this run
  seen_set delivered_;
  std::uint64_t distinct_ = 0;
  std::uint64_t max_k_plus_1_ = 0;

  // Receipts.
  std::vector<std::pair<std::uint64_t, std::int64_t>> send_times_;  // (k, ns), ring
  seen_set receipted_;
  std::uint64_t receipts_ = 0;
  std::uint64_t last_receipt_seq_ = 0;
  std::uint64_t refused_ = 0;
};

struct worker {
  explicit worker(run_state& run) : run(run) {}
  run_state& run;
  asio::io_context ioc{1};
  stats st;
  std::vector<std::unique_ptr<pair_client>> pairs;  // destroyed before ioc
  std::thread thread;
};

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    std::cerr << "switchboard_bench: coroutine failed: " << x.what() << "\n";
  }
}

pair_client::pair_client(worker& w, run_state& run, unsigned index)
    : w_(w),
      st_(w.st),
      run_(run),
      opt_(run.opt),
      index_(index),
      sender_id_(run.opt.base_id + 2ull * index),
      receiver_id_(run.opt.base_id + 2ull * index + 1),
      receiver_str_(std::to_string(receiver_id_)),
      sender_(w.ioc),
      receiver_(w.ioc),
      wake_(w.ioc) {
  if (opt_.receipts) {
    std::size_t ring = std::bit_ceil(std::size_t{4} * opt_.window);
    send_times_.assign(ring, {UINT64_MAX, 0});
  }
}

// The seq of a CONNECT welcome; nullopt if the frame is something else.
std::optional<std::uint64_t> welcome_seq(const beast::flat_buffer& buffer) {
  frame_parser parser;
  const auto* frame = parser.parse(buffer);
  if (!frame || get_u64(*frame, "type") != 0u) return std::nullopt;
  return get_u64(*frame, "seq").value_or(0);
}

asio::awaitable<std::optional<std::uint64_t>> pair_client::open(ws_stream& ws, std::uint64_t user) {
  tcp::resolver resolver(w_.ioc);
  auto [rec, endpoints] = co_await resolver.async_resolve(opt_.host, opt_.port, use_tuple);
  auto fail = [&](const std::string& what, error_code e) {
    if (!run_.error_taken.exchange(true))
      run_.first_connect_error = what + " (user " + std::to_string(user) + "): " + e.message();
  };
  if (rec) {
    fail("resolve", rec);
    co_return std::nullopt;
  }
  auto& sock = ws.next_layer().next_layer();
  auto [cec, ep] = co_await asio::async_connect(sock, endpoints, use_tuple);
  if (cec) {
    fail("connect", cec);
    co_return std::nullopt;
  }
  sock.set_option(tcp::no_delay(true));
  websocket::stream_base::timeout timeouts{std::chrono::seconds(10), websocket::stream_base::none(),
                                           false};
  ws.set_option(timeouts);
  ws.secure_prng(false);
  ws.auto_fragment(false);
  ws.text(true);
  std::string target = "/ws/" + std::to_string(user);
  std::string host = opt_.host + ":" + opt_.port;
  auto [hec] = co_await ws.async_handshake(host, target, use_tuple);
  if (hec) {
    fail("handshake", hec);
    co_return std::nullopt;
  }
  beast::flat_buffer buffer;
  auto [rec2, n] = co_await ws.async_read(buffer, use_tuple);
  if (rec2) {
    fail("reading the welcome", rec2);
    co_return std::nullopt;
  }
  auto seq = welcome_seq(buffer);
  if (!seq) fail("the first frame is not a CONNECT welcome", error_code());
  co_return seq;
}

asio::awaitable<void> pair_client::connect() {
  // The receiver first, so that nothing is sent to a user with no session.
  auto rseq = co_await open(receiver_, receiver_id_);
  std::optional<std::uint64_t> sseq;
  if (rseq) sseq = co_await open(sender_, sender_id_);
  if (!rseq || !sseq) {
    force_close();
    ++run_.connect_failed;
    co_return;
  }
  last_seq_ = *rseq;
  start_readers();
  ++run_.connected;
}

void pair_client::start_readers() {
  readers_running_ = 2;
  asio::co_spawn(w_.ioc, receiver_reader(), log_exception);
  asio::co_spawn(w_.ioc, sender_reader(), log_exception);
}

void pair_client::build_frame(std::uint64_t k, std::int64_t send_ns) {
  frame_.clear();
  frame_ += R"({"type":1,"receiver":)";
  frame_ += receiver_str_;
  frame_ += R"(,"content":")";
  std::size_t content_start = frame_.size();
  char num[24];
  frame_ += run_.nonce;
  frame_ += '.';
  auto put = [&](std::uint64_t v) {
    auto r = std::to_chars(num, num + sizeof num, v);
    frame_.append(num, r.ptr);
    frame_ += '.';
  };
  put(index_);
  put(k);
  put(static_cast<std::uint64_t>(send_ns));
  std::size_t used = frame_.size() - content_start;
  if (used < opt_.size) frame_.append(opt_.size - used, 'x');
  frame_ += '"';
  if (opt_.receipts) {
    frame_ += R"(,"id":)";
    auto r = std::to_chars(num, num + sizeof num, k);
    frame_.append(num, r.ptr);
  }
  frame_ += '}';
}

asio::awaitable<void> pair_client::send_loop() {
  const double rate_per_pair = opt_.rate / opt_.pairs;
  // Pairs start their schedules spread over one interval, not all at once.
  const double phase = rate_per_pair > 0 ? (index_ * 1e9 / rate_per_pair) / opt_.pairs : 0;
  for (;;) {
    std::int64_t now = now_ns();
    if (now >= run_.t1_ns || finishing_) break;
    std::uint64_t free = opt_.window - std::min<std::uint64_t>(in_flight_, opt_.window);
    std::uint64_t n = free;
    std::int64_t next_due = run_.t1_ns;
    if (rate_per_pair > 0) {
      double elapsed = static_cast<double>(now - run_.start_ns) - phase;
      auto due_total =
          elapsed < 0 ? 0 : static_cast<std::uint64_t>(elapsed * rate_per_pair / 1e9) + 1;
      std::uint64_t due = due_total > sent_ ? due_total - sent_ : 0;
      n = std::min(n, due);
      if (due == 0) {
        next_due = run_.start_ns + static_cast<std::int64_t>(phase + sent_ * 1e9 / rate_per_pair);
        next_due = std::min(next_due, run_.t1_ns);
      }
    }
    bool wait = rate_per_pair > 0 ? n == 0 : n < opt_.batch;
    if (wait) {
      auto expiry = steady::time_point(std::chrono::nanoseconds(next_due));
      wake_.expires_at(expiry);
      sender_waiting_ = true;
      auto [ec] = co_await wake_.async_wait(use_tuple);
      (void)ec;  // cancelled: a slot was freed, or the run is ending
      sender_waiting_ = false;
      std::int64_t waited = now_ns() - now;
      if (free < opt_.batch && now_ns() < run_.t1_ns) {  // waited for the window
        st_.max_window_wait_ns = std::max(st_.max_window_wait_ns, waited);
        if (waited > 1'000'000'000) ++st_.window_waits_over_1s;
      }
      continue;
    }
    sender_.next_layer().begin_batch();
    bool failed = false;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t k = sent_;
      std::int64_t t = now_ns();
      build_frame(k, t);
      if (opt_.receipts) send_times_[k & (send_times_.size() - 1)] = {k, t};
      ++sent_;
      ++in_flight_;
      ++st_.sent;
      auto buf = asio::buffer(frame_);
      auto [ec, written] = co_await sender_.async_write(buf, use_tuple);
      if (ec) {
        failed = true;
        break;
      }
    }
    sender_.next_layer().end_batch();
    if (failed) break;
  }
  sending_done_ = true;
  st_.socket_writes += sender_.next_layer().socket_writes();
  check_done();
}

void pair_client::on_slot_freed() {
  if (in_flight_ > 0) --in_flight_;
  if (sender_waiting_ && opt_.window - in_flight_ >= opt_.batch && opt_.rate == 0) wake_.cancel();
  if (sender_waiting_ && opt_.rate > 0 && in_flight_ + 1 == opt_.window) wake_.cancel();
  check_done();
}

void pair_client::check_done() {
  if (!sending_done_ || finishing_) return;
  std::uint64_t expected = sent_ - refused_;
  if (distinct_ < expected) return;
  if (opt_.receipts && receipts_ < expected) return;
  finish();
}

// Ends both sessions with a close handshake.
void pair_client::finish() {
  if (finishing_) return;
  finishing_ = true;
  wake_.cancel();
  auto close = [](ws_stream& ws) -> asio::awaitable<void> {
    if (!ws.is_open()) co_return;
    websocket::close_reason reason(websocket::close_code::normal);
    auto [ec] = co_await ws.async_close(reason, use_tuple);
    (void)ec;
  };
  asio::co_spawn(w_.ioc, close(sender_), log_exception);
  asio::co_spawn(w_.ioc, close(receiver_), log_exception);
}

// The drain deadline passed: drop both connections.
void pair_client::force_close() {
  if (readers_running_ > 0 && !timed_out_) {
    timed_out_ = true;
    ++st_.timed_out_pairs;
  }
  finishing_ = true;
  wake_.cancel();
  error_code ec;
  sender_.next_layer().next_layer().close(ec);
  receiver_.next_layer().next_layer().close(ec);
}

void pair_client::reader_ended(ws_stream& ws, error_code ec) {
  if (!finishing_) {
    // The server ended this session before the run did.
    std::string what = ec == websocket::error::closed
                           ? "close " + std::to_string(ws.reason().code) + " " +
                                 std::string(ws.reason().reason.c_str())
                           : ec.message();
    ++st_.server_closes[what];
    // The pair cannot complete: end the other session too.
    finish();
  }
  if (--readers_running_ == 0) {
    sending_done_ = true;
    ++run_.finished;
  }
}

void pair_client::on_server_frame(const json::object& frame, bool at_sender) {
  auto type = get_u64(frame, "type");
  if (type == 4) {
    ++st_.errors[get_string(frame, "code")];
    if (at_sender) {
      // A refused SEND is neither delivered nor receipted.
      ++refused_;
      ++st_.refused;
      on_slot_freed();
    }
  } else if (type == 3) {
    ++st_.server_closes["CLOSE " + get_string(frame, "code")];
  } else {
    ++st_.other_frames;
  }
}

asio::awaitable<void> pair_client::sender_reader() {
  beast::flat_buffer buffer;
  frame_parser parser;
  for (;;) {
    auto [ec, n] = co_await sender_.async_read(buffer, use_tuple);
    if (ec) {
      reader_ended(sender_, ec);
      co_return;
    }
    std::int64_t now = now_ns();
    const auto* frame = parser.parse(buffer);
    buffer.consume(buffer.size());
    if (!frame) {
      ++st_.corrupted;
      continue;
    }
    if (get_u64(*frame, "type") == 2)
      on_receipt(*frame, now);
    else
      on_server_frame(*frame, true);
  }
}

void pair_client::on_receipt(const json::object& frame, std::int64_t now) {
  auto k = get_u64(frame, "id");
  if (!k) {
    ++st_.receipt_unmatched;
    return;
  }
  if (*k >= sent_ || receipted_.test_and_set(*k)) {
    ++st_.receipt_duplicates;
    return;
  }
  ++receipts_;
  ++st_.receipts;
  auto seq = get_u64(frame, "seq").value_or(0);
  if (last_receipt_seq_ != 0 && seq != last_receipt_seq_ + 1) ++st_.receipt_seq_gaps;
  last_receipt_seq_ = seq;
  const auto& slot = send_times_[*k & (send_times_.size() - 1)];
  if (slot.first != *k)
    ++st_.receipt_unmatched;
  else if (now >= run_.t0_ns && now < run_.t1_ns)
    st_.receipt.add(now - slot.second);
  if (opt_.frees == options::window_by::receipt ||
      (opt_.frees == options::window_by::both && delivered_.test(*k)))
    on_slot_freed();
  else
    check_done();
}

asio::awaitable<void> pair_client::receiver_reader() {
  beast::flat_buffer buffer;
  frame_parser parser;
  for (;;) {
    auto [ec, n] = co_await receiver_.async_read(buffer, use_tuple);
    if (ec) {
      reader_ended(receiver_, ec);
      co_return;
    }
    std::int64_t now = now_ns();
    const auto* frame = parser.parse(buffer);
    buffer.consume(buffer.size());
    if (!frame) {
      ++st_.corrupted;
      continue;
    }
    if (get_u64(*frame, "type") == 1)
      on_delivery(*frame, now);
    else
      on_server_frame(*frame, false);
  }
}

void pair_client::on_delivery(const json::object& frame, std::int64_t now) {
  const auto* cv = frame.if_contains("content");
  const auto* cs = cv ? cv->if_string() : nullptr;
  if (!cs) {
    ++st_.corrupted;
    return;
  }
  std::string_view content(cs->data(), cs->size());
  // "<nonce>.<pair>.<k>.<send ns>." then 'x' up to --size.
  std::uint64_t fields[3];
  std::string_view rest = content;
  if (!rest.starts_with(run_.nonce) || rest.size() <= run_.nonce.size() ||
      rest[run_.nonce.size()] != '.') {
    ++st_.stale;  // another run's, or not ours at all
    return;
  }
  rest.remove_prefix(run_.nonce.size() + 1);
  for (auto& f : fields) {
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), f);
    if (ec != std::errc() || p == rest.data() + rest.size() || *p != '.') {
      ++st_.corrupted;
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(p - rest.data()) + 1);
  }
  std::size_t header = content.size() - rest.size();
  std::size_t expected_size = std::max(header, opt_.size);
  if (content.size() != expected_size || rest.find_first_not_of('x') != std::string_view::npos) {
    ++st_.corrupted;
    return;
  }
  if (fields[0] != index_ || get_u64(frame, "sender") != sender_id_ ||
      get_u64(frame, "receiver") != receiver_id_) {
    ++st_.misrouted;
    return;
  }
  auto seq = get_u64(frame, "seq").value_or(0);
  if (seq != last_seq_ + 1) ++st_.seq_gaps;
  last_seq_ = seq;
  std::uint64_t k = fields[1];
  if (k >= sent_) {  // never sent by this pair in this run
    ++st_.corrupted;
    return;
  }
  if (delivered_.test_and_set(k)) {
    ++st_.duplicated;
    return;
  }
  if (k + 1 < max_k_plus_1_) ++st_.reordered;
  max_k_plus_1_ = std::max(max_k_plus_1_, k + 1);
  ++distinct_;
  ++st_.delivered;
  if (now >= run_.t0_ns && now < run_.t1_ns) {
    ++st_.delivered_in_window;
    st_.delivery.add(now - static_cast<std::int64_t>(fields[2]));
  }
  if (opt_.frees == options::window_by::delivery ||
      (opt_.frees == options::window_by::both && receipted_.test(k)))
    on_slot_freed();
  else
    check_done();
}

// ---------------------------------------------------------------------------
// CPU time

// utime + stime of a process, in seconds; nullopt when it cannot be read.
std::optional<double> process_cpu_seconds(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(paren + 1));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  // After the command: field 3 (state) ... field 14 utime, field 15 stime.
  for (int i = 3; i <= 15 && (fields >> f); ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

struct cpu_snapshot {
  std::int64_t at_ns = 0;
  double self = 0;
  std::optional<double> server;
};

cpu_snapshot snapshot(const options& o) {
  cpu_snapshot s;
  s.at_ns = now_ns();
  s.self = self_cpu_seconds();
  if (o.pid) s.server = process_cpu_seconds(o.pid);
  return s;
}

// ---------------------------------------------------------------------------
// Output

struct report_row {
  std::string key;    // for --format kv; empty: table only
  std::string label;  // for the table; empty: kv only
  std::string value;
};

std::string fmt(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string latency_cell(const histogram& h) {
  if (h.count() == 0) return "-";
  return fmt(h.quantile(0.5) / 1e3, 0) + " / " + fmt(h.quantile(0.9) / 1e3, 0) + " / " +
         fmt(h.quantile(0.99) / 1e3, 0) + " / " + fmt(h.quantile(0.999) / 1e3, 0);
}

std::string join_map(const std::map<std::string, std::uint64_t>& m) {
  if (m.empty()) return "none";
  std::string s;
  for (auto& [k, v] : m) {
    if (!s.empty()) s += ", ";
    s += k + ": " + std::to_string(v);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (!parsed) return 2;
  run_state run;
  run.opt = *parsed;
  const options& opt = run.opt;
  {
    std::random_device rd;
    char b[16];
    std::snprintf(b, sizeof b, "%08x", static_cast<unsigned>(rd()));
    run.nonce = b;
  }

  std::vector<std::unique_ptr<worker>> workers;
  for (unsigned t = 0; t < opt.threads; ++t)
    workers.push_back(std::make_unique<worker>(run));
  for (unsigned i = 0; i < opt.pairs; ++i) {
    auto& w = *workers[i % opt.threads];
    w.pairs.push_back(std::make_unique<pair_client>(w, run, i));
  }
  for (auto& w : workers) {
    for (auto& p : w->pairs)
      asio::co_spawn(w->ioc, p->connect(), log_exception);
    w->thread = std::thread([&ioc = w->ioc] { ioc.run(); });
  }
  auto post_all = [&](auto fn) {
    for (auto& w : workers)
      asio::post(w->ioc, [&w = *w, fn] {
        for (auto& p : w.pairs)
          fn(*p);
      });
  };
  auto stop_and_join = [&] {
    for (auto& w : workers)
      w->ioc.stop();
    for (auto& w : workers)
      w->thread.join();
  };

  // Connect everything, then start all senders at once.
  auto connect_deadline = steady::now() + std::chrono::seconds(30);
  while (run.connected + run.connect_failed < opt.pairs && steady::now() < connect_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (run.connected < opt.pairs) {
    std::cerr << "switchboard_bench: " << run.connected << " of " << opt.pairs
              << " pairs connected to " << opt.host << ":" << opt.port
              << "; first error: " << (run.error_taken ? run.first_connect_error : "timed out")
              << "\n";
    post_all([](pair_client& p) { p.force_close(); });
    stop_and_join();
    std::fflush(stdout);
    std::_Exit(3);
  }
  auto ns = [](double s) { return static_cast<std::int64_t>(s * 1e9); };
  run.start_ns = now_ns() + ns(0.01);
  run.t0_ns = run.start_ns + ns(opt.warmup);
  run.t1_ns = run.t0_ns + ns(opt.duration);
  for (auto& w : workers) {
    asio::post(w->ioc, [&w = *w] {
      for (auto& p : w.pairs)
        asio::co_spawn(w.ioc, p->send_loop(), log_exception);
    });
  }
  auto at = [](std::int64_t t) { return steady::time_point(std::chrono::nanoseconds(t)); };
  std::this_thread::sleep_until(at(run.t0_ns));
  cpu_snapshot before = snapshot(opt);
  std::this_thread::sleep_until(at(run.t1_ns));
  cpu_snapshot after = snapshot(opt);

  // Drain, then drop whatever is left.
  auto drain_deadline = at(run.t1_ns + ns(opt.drain));
  while (run.finished < opt.pairs && steady::now() < drain_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  bool hung = false;
  if (run.finished < opt.pairs) {
    post_all([](pair_client& p) { p.force_close(); });
    auto hard = steady::now() + std::chrono::seconds(3);
    while (run.finished < opt.pairs && steady::now() < hard)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    hung = run.finished < opt.pairs;
  }
  if (hung) {
    stop_and_join();
  } else {
    for (auto& w : workers)
      w->thread.join();
  }

  stats total;
  for (auto& w : workers)
    total.merge(w->st);

  const double window_s = static_cast<double>(after.at_ns - before.at_ns) / 1e9;
  const double msgs_per_s = static_cast<double>(total.delivered_in_window) / opt.duration;
  const double msgs_in_snapshot = msgs_per_s * window_s;
  std::uint64_t lost = total.sent - std::min(total.sent, total.delivered + total.refused);
  std::vector<report_row> rows;
  auto row = [&](std::string key, std::string label, std::string value) {
    rows.push_back({std::move(key), std::move(label), std::move(value)});
  };
  row("msgs_per_s", "delivered messages/s", fmt(msgs_per_s, 0));
  row("", "delivery latency p50/p90/p99/p99.9 (us)", latency_cell(total.delivery));
  row("delivery_p50_us", "", fmt(total.delivery.quantile(0.5) / 1e3, 1));
  row("delivery_p90_us", "", fmt(total.delivery.quantile(0.9) / 1e3, 1));
  row("delivery_p99_us", "", fmt(total.delivery.quantile(0.99) / 1e3, 1));
  row("delivery_p999_us", "", fmt(total.delivery.quantile(0.999) / 1e3, 1));
  if (opt.receipts) {
    row("", "receipt latency p50/p90/p99/p99.9 (us)", latency_cell(total.receipt));
    row("receipt_p50_us", "", fmt(total.receipt.quantile(0.5) / 1e3, 1));
    row("receipt_p90_us", "", fmt(total.receipt.quantile(0.9) / 1e3, 1));
    row("receipt_p99_us", "", fmt(total.receipt.quantile(0.99) / 1e3, 1));
    row("receipt_p999_us", "", fmt(total.receipt.quantile(0.999) / 1e3, 1));
  }
  row("sent", "", std::to_string(total.sent));
  row("delivered", "", std::to_string(total.delivered));
  row("", "messages sent / delivered", "");
  rows.back().value = std::to_string(total.sent) + " / " + std::to_string(total.delivered);
  row("", "lost / duplicated / reordered", "");
  rows.back().value = std::to_string(lost) + " / " + std::to_string(total.duplicated) + " / " +
                      std::to_string(total.reordered);
  row("lost", "", std::to_string(lost));
  row("duplicated", "", std::to_string(total.duplicated));
  row("reordered", "", std::to_string(total.reordered));
  row("", "misrouted / corrupted / seq gaps", "");
  rows.back().value = std::to_string(total.misrouted) + " / " + std::to_string(total.corrupted) +
                      " / " + std::to_string(total.seq_gaps);
  row("misrouted", "", std::to_string(total.misrouted));
  row("corrupted", "", std::to_string(total.corrupted));
  row("seq_gaps", "", std::to_string(total.seq_gaps));
  if (opt.receipts) {
    row("receipts", "", std::to_string(total.receipts));
    row("receipt_duplicates", "", std::to_string(total.receipt_duplicates));
    row("receipt_seq_gaps", "", std::to_string(total.receipt_seq_gaps));
    row("", "receipts / duplicate / unmatched / seq gaps", "");
    rows.back().value =
        std::to_string(total.receipts) + " / " + std::to_string(total.receipt_duplicates) + " / " +
        std::to_string(total.receipt_unmatched) + " / " + std::to_string(total.receipt_seq_gaps);
  }
  row("errors", "ERROR frames", join_map(total.errors));
  row("server_closes", "sessions ended by the server", join_map(total.server_closes));
  row("stale", "messages from other runs (ignored)", std::to_string(total.stale));
  row("timed_out_pairs", "pairs not drained in time", std::to_string(total.timed_out_pairs));
  row("max_window_wait_ms", "longest wait for a window slot (ms)",
      fmt(static_cast<double>(total.max_window_wait_ns) / 1e6, 1));
  if (before.server && after.server && msgs_in_snapshot > 0) {
    double cpu = *after.server - *before.server;
    row("server_cpu_us_per_msg", "server CPU per message (us)",
        fmt(cpu / msgs_in_snapshot * 1e6, 2));
    row("server_cpu_pct", "server CPU (% of one core)", fmt(cpu / window_s * 100, 0));
  } else if (opt.pid) {
    row("server_cpu_us_per_msg", "server CPU per message (us)", "unreadable");
  }
  if (msgs_in_snapshot > 0) {
    double cpu = after.self - before.self;
    row("client_cpu_us_per_msg", "client CPU per message (us)",
        fmt(cpu / msgs_in_snapshot * 1e6, 2));
    row("client_cpu_pct", "client CPU (% of one core)", fmt(cpu / window_s * 100, 0));
  }
  if (total.sent > 0) {
    row("msgs_per_send_call", "sender messages per socket write",
        fmt(static_cast<double>(total.sent) / std::max<std::uint64_t>(1, total.socket_writes), 1));
  }

  if (opt.kv) {
    for (auto& r : rows) {
      if (r.key.empty()) continue;
      std::string v = r.value;
      for (auto& c : v)
        if (c == ' ') c = '_';
      std::cout << r.key << "=" << v << "\n";
    }
  } else {
    std::cout << "switchboard_bench " << opt.host << ":" << opt.port << ": " << opt.pairs
              << " pairs, window " << opt.window << " (refill " << opt.batch << "), " << opt.size
              << "-byte content, " << (opt.receipts ? std::string("receipts, ") : std::string())
              << (opt.frees == options::window_by::delivery  ? "window freed by delivery, "
                  : opt.frees == options::window_by::receipt ? "window freed by receipt, "
                                                             : "window freed by delivery+receipt, ")
              << (opt.rate > 0 ? "offered " + fmt(opt.rate, 0) + " msgs/s, " : "") << opt.threads
              << " client thread" << (opt.threads > 1 ? "s" : "") << ", " << fmt(opt.duration, 1)
              << " s after " << fmt(opt.warmup, 1) << " s warm-up, users from " << opt.base_id
              << "\n";
    std::size_t width = 0;
    for (auto& r : rows)
      width = std::max(width, r.label.size());
    for (auto& r : rows) {
      if (r.label.empty()) continue;
      std::cout << "  " << r.label << std::string(width - r.label.size() + 2, ' ') << r.value
                << "\n";
    }
  }
  std::cout.flush();
  bool bad = lost || total.duplicated || total.reordered || total.misrouted || total.corrupted;
  if (hung) {
    std::cerr << "switchboard_bench: the client did not stop cleanly\n";
    std::_Exit(bad ? 1 : 0);
  }
  return bad ? 1 : 0;
}
