// switchboard_bench: a load client for a running Switchboard server (or any
// server that speaks PROTOCOL.md sections 2 and 3), or with --protocol seed
// for the original design (SEND frames forwarded as they are, nothing else).
//
//   switchboard_bench --url 127.0.0.1:8080 [--pairs 50] [--window 128] [--size 64]
//                     [--duration 10] [--warmup 1] [--receipts] [--pid PID]
//                     [--receiver-url HOST:PORT] [--pid2 PID] [--redis-pid PID]
//                     [--threads 1] [--base-id N] [--rate 0] [--format table|kv]
//                     [--window-by delivery|receipt|both] [--batch W/8] [--drain 5]
//                     [--protocol switchboard|seed] [--notify [--read]] [--syscalls]
//   switchboard_bench --url 127.0.0.1:8080 --idle 15000 --pid PID [--sources 4]
//                     [--settle 2] [--protocol switchboard|seed]
//   switchboard_bench --url 127.0.0.1:8080 --group-members N --api-key-file PATH
//                     [--group-senders 10] [--window W] [--pid PID] [--redis-pid PID]
//
// It opens P sender/receiver pairs (users base-id+2i and base-id+2i+1): the
// senders on --url, the receivers on --receiver-url (by default the same
// server; in a cluster another node, so every message crosses nodes). Each
// sender keeps at most W messages in flight to its receiver: sent and not yet
// delivered; with --receipts, by default, sent and not yet both delivered and
// receipted (--window-by receipt counts receipts only, but then nothing bounds
// the server's backlog towards the receivers: delivery latency then measures
// that backlog, not the relay). It refills its
// window once at least --batch slots are free, and writes a whole refill in
// one socket write (below). Content is exactly --size bytes:
// "<run nonce>.<pair>.<k>.<send time ns>." padded with 'x', so the receiver
// measures delivery latency and checks per pair that k and the server's seq
// both increase by exactly one (with --protocol seed, which has no seq and no
// welcome, k alone; its SENDs carry `sender`, which that server passes
// through, so misrouting is still seen). After --warmup seconds, it counts for
// --duration seconds, then stops sending and waits up to --drain seconds for
// everything in flight; what has not arrived by then is lost.
//
// Output: delivered messages/s; delivery latency (SEND written to the frame
// read at the receiver) and, with --receipts, receipt latency (SEND written to
// the RECEIVE receipt read at the sender), p50/p90/p99/p99.9; lost,
// duplicated, reordered, misrouted, corrupted messages and seq gaps; the
// server's CPU time per delivered message (--pid, from /proc/PID/stat) and the
// client's own (getrusage), which must stay well below the server's or the
// benchmark measures itself; the same for a second server (--pid2, the
// receivers' node in a cluster) and for Redis (--redis-pid), each under keys
// of its own. --syscalls (with --pid) counts the server's system calls over
// the measured seconds, in total and for the calls of a relay one by one, per
// delivered message (syscall_count.hpp: the kernel's tracepoints, as
// `perf stat -p` reads them). Exit code 0, 1 if any message was lost,
// duplicated, reordered, misrouted or corrupted, 2 for a bad option, 3 if it
// could not connect.
//
// The connections are `wire_client`s (wire_client.hpp), WebSocket written
// directly on the socket: a sender appends a whole window refill and writes it
// with one send(); a receiver handles every frame one read brought without
// suspending. A Beast stream cost more per message than the servers measured.
// Each --threads thread runs its own io_context and owns whole pairs, so the
// pairs' state is never shared between threads.
//
// --notify (with --receipts) puts "notify":true on every SEND (PROTOCOL.md
// section 11): each sender counts the STATUS frames it gets, checks that each
// covers more than the last of its state, and waits at the end for the one
// that covers its last message (the highest receiver seq its receipts gave);
// a pair without it is counted in status_missing and the exit code is 1.
// --read: each receiver also sends a READ for its last seq after every batch
// of frames it read, and the "read" STATUS is waited for as well.
//
// --idle N is another mode (idle_sessions.hpp): N idle sessions of distinct
// users, and the server's resident memory per session (--pid).
//
// --group-members N is a third (group_load.hpp): N members PUT into a new
// group through the membership API (`Authorization: Bearer` with the content
// of --api-key-file, the file the server was given), --group-senders of them
// sending group messages with ids, --window each in flight (freed once
// receipted and at every other member); checks every copy (seq, gseq,
// per-sender order) and reports group messages/s, copies/s, and the server's
// CPU per group message and per copy.

#include <algorithm>
#include <atomic>
#include <bit>
#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/program_options.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "content.hpp"
#include "frames.hpp"
#include "group_load.hpp"
#include "histogram.hpp"
#include "idle_sessions.hpp"
#include "process_stats.hpp"
#include "syscall_count.hpp"
#include "wire_client.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using bench::frame_view;
using bench::histogram;
using bench::protocol;
using bench::wire_client;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------
// Options

struct options {
  std::string host;  // --url: the senders' server
  std::string port;
  std::string receiver_host;  // --receiver-url: the receivers' server (default: --url)
  std::string receiver_port;
  unsigned pairs = 50;
  unsigned window = 128;
  unsigned batch = 0;  // 0: max(1, window / 8)
  std::size_t size = 64;
  double duration = 10;
  double warmup = 1;
  double drain = 5;
  double rate = 0;  // messages per second over all pairs; 0: as fast as the window allows
  bool receipts = false;
  bool notify = false;  // every SEND asks for STATUS notifications (PROTOCOL.md section 11)
  bool read = false;    // receivers send READ for what they got
  enum class window_by { delivery, receipt, both } frees = window_by::delivery;
  long pid = 0;
  long pid2 = 0;          // the second server (the receivers' node in a cluster)
  long redis_pid = 0;     // the Redis server behind a cluster
  bool syscalls = false;  // count --pid's system calls (syscall_count.hpp)
  unsigned threads = 1;
  std::uint64_t base_id = 0;
  bool kv = false;
  protocol speaks = protocol::switchboard;
  // --idle mode.
  std::uint64_t idle = 0;  // sessions; 0: the relay load
  unsigned sources = 4;
  double settle = 2;
  // --group-members mode.
  std::uint64_t group_members = 0;  // 0: not this mode
  unsigned group_senders = 10;
  std::string api_key;  // from --api-key-file
};

std::optional<options> parse_options(int argc, char** argv) {
  namespace po = boost::program_options;
  options o;
  std::string url;
  std::string receiver_url;
  std::string format = "table";
  std::string window_by;
  std::string speaks = "switchboard";
  std::string api_key_file;
  po::options_description desc("switchboard_bench options");
  // clang-format off
  desc.add_options()
    ("help,h", "print this help")
    ("url", po::value(&url)->required(), "server address HOST:PORT (ws:// optional)")
    ("receiver-url", po::value(&receiver_url),
     "the receivers' server HOST:PORT (default: --url; in a cluster, another node)")
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
    ("notify", po::bool_switch(&o.notify),
     "every SEND carries \"notify\":true (needs --receipts): count the STATUS frames the "
     "senders get and check that the last message's arrive")
    ("read", po::bool_switch(&o.read),
     "with --notify: each receiver sends a READ for the last seq of every batch it read")
    ("window-by", po::value(&window_by),
     "what frees a window slot: delivery, receipt or both "
     "(default: delivery; both with --receipts)")
    ("pid", po::value(&o.pid), "server process id: report its CPU time per message")
    ("pid2", po::value(&o.pid2),
     "a second server's process id (the receivers' node): its CPU time per message too")
    ("redis-pid", po::value(&o.redis_pid),
     "the Redis server's process id: its CPU time per message too")
    ("syscalls", po::bool_switch(&o.syscalls),
     "with --pid: count the server's system calls per message over the measured seconds "
     "(syscall tracepoints, root; else /proc/PID/io's read and write calls only)")
    ("threads", po::value(&o.threads)->default_value(o.threads), "client threads")
    ("base-id", po::value(&o.base_id), "first user id (default: derived from the clock)")
    ("format", po::value(&format)->default_value(format), "table or kv (key=value lines)")
    ("protocol", po::value(&speaks)->default_value(speaks),
     "switchboard, or seed: the original design (no welcome, seq or receipts)")
    ("idle", po::value(&o.idle),
     "open this many idle sessions and report the server's memory per session (--pid)")
    ("sources", po::value(&o.sources)->default_value(o.sources),
     "--idle: spread over this many source addresses 127.0.0.1.. (0: no bind)")
    ("settle", po::value(&o.settle)->default_value(o.settle),
     "--idle: seconds to wait after the last open before reading the memory")
    ("group-members", po::value(&o.group_members),
     "group fan-out: this many member sessions in one new group (PUT through the API), "
     "--group-senders of them sending group messages with ids, --window each in flight")
    ("group-senders", po::value(&o.group_senders)->default_value(o.group_senders),
     "--group-members: how many members send")
    ("api-key-file", po::value(&api_key_file),
     "--group-members: the file the server was given as --api-key-file");
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
  if (!bench::parse_address(url, o.host, o.port)) return fail("--url must be HOST:PORT");
  o.receiver_host = o.host;
  o.receiver_port = o.port;
  if (vm.count("receiver-url") &&
      !bench::parse_address(receiver_url, o.receiver_host, o.receiver_port))
    return fail("--receiver-url must be HOST:PORT");
  if (o.pid < 0 || o.pid2 < 0 || o.redis_pid < 0)
    return fail("--pid, --pid2 and --redis-pid must be process ids");
  if (o.syscalls && o.pid == 0) return fail("--syscalls needs --pid");
  if (o.pairs == 0) return fail("--pairs must be at least 1");
  if (o.window == 0) return fail("--window must be at least 1");
  if (o.threads == 0) return fail("--threads must be at least 1");
  if (!(o.duration > 0) || o.warmup < 0 || o.drain < 0 || o.rate < 0)
    return fail("--duration must be positive, --warmup, --drain and --rate not negative");
  if (format != "table" && format != "kv") return fail("--format must be table or kv");
  if (speaks == "switchboard")
    o.speaks = protocol::switchboard;
  else if (speaks == "seed")
    o.speaks = protocol::seed;
  else
    return fail("--protocol must be switchboard or seed");
  if (o.speaks == protocol::seed && o.receipts)
    return fail("--receipts needs --protocol switchboard: the seed design sends no receipts");
  if (o.settle < 0) return fail("--settle must not be negative");
  if (o.group_members) {
    if (api_key_file.empty()) return fail("--group-members needs --api-key-file");
    std::ifstream in(api_key_file, std::ios::binary);
    if (!in) return fail("cannot read --api-key-file");
    o.api_key.assign(std::istreambuf_iterator<char>(in), {});
    if (!o.api_key.empty() && o.api_key.back() == '\n') o.api_key.pop_back();
    if (o.speaks != protocol::switchboard)
      return fail("--group-members needs --protocol switchboard");
  }
  if (o.notify && !o.receipts)
    return fail("--notify needs --receipts: a sender matches STATUS frames through receipts");
  if (o.read && !o.notify) return fail("--read needs --notify");
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
  // The seed design parses the user id with Go's strconv.Atoi: at most 2^63-1.
  const std::uint64_t max_id = o.speaks == protocol::seed ? INT64_MAX : UINT64_MAX;
  const std::uint64_t users = o.idle ? o.idle : o.group_members ? o.group_members : 2ull * o.pairs;
  if (o.base_id == 0 || o.base_id > max_id - users)
    return fail(
        "--base-id must leave room for the user ids of this run in 1..2^64-1 (2^63-1 "
        "with --protocol seed)");
  return o;
}

// ---------------------------------------------------------------------------
// Run-wide state, written by main before the workers read it (through post).

struct run_state {
  options opt;
  bench::server_target target;           // the senders' server
  bench::server_target receiver_target;  // the receivers' (the same one by default)
  std::string nonce;                     // 8 hex digits, in every content of this run
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
  std::uint64_t sent_in_window = 0;  // what the client really offered, against --rate
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
  std::uint64_t rate_window_full = 0;  // --rate: times a sender was due but its window full
  std::int64_t max_window_wait_ns = 0;
  std::uint64_t timed_out_pairs = 0;
  // --notify: STATUS frames at the senders, READs sent by the receivers.
  std::uint64_t status_delivered = 0, status_read = 0;
  std::uint64_t status_backwards = 0;  // an upto not above the last of its state
  std::uint64_t status_missing = 0;    // pairs whose last message's STATUS never came
  std::uint64_t reads_sent = 0;
  std::map<std::string, std::uint64_t> errors;         // ERROR frames by code
  std::map<std::string, std::uint64_t> server_closes;  // sessions the server ended
  histogram delivery, receipt;

  void merge(const stats& o) {
    delivered_in_window += o.delivered_in_window;
    sent_in_window += o.sent_in_window;
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
    rate_window_full += o.rate_window_full;
    max_window_wait_ns = std::max(max_window_wait_ns, o.max_window_wait_ns);
    timed_out_pairs += o.timed_out_pairs;
    status_delivered += o.status_delivered;
    status_read += o.status_read;
    status_backwards += o.status_backwards;
    status_missing += o.status_missing;
    reads_sent += o.reads_sent;
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
  asio::awaitable<std::optional<std::uint64_t>> open(wire_client& ws, std::uint64_t user,
                                                     const bench::server_target& target);
  asio::awaitable<void> reader(wire_client& ws, bool at_sender);
  void on_frame(std::string_view payload, bool at_sender);
  void on_delivery(const frame_view& frame, std::int64_t now);
  void on_receipt(const frame_view& frame, std::int64_t now);
  void on_server_frame(const frame_view& frame, bool at_sender);
  void on_status(const frame_view& frame);
  bool statuses_complete() const;
  void post_read();
  void on_slot_freed();
  void check_done();
  void finish();
  void reader_ended(const bench::end_reason& end);
  void build_frame(std::uint64_t k, std::int64_t send_ns);

  worker& w_;
  stats& st_;
  run_state& run_;
  const options& opt_;
  unsigned index_;
  std::uint64_t sender_id_, receiver_id_;
  std::string receiver_str_;
  std::string sender_field_;  // "sender":S, for --protocol seed
  wire_client sender_, receiver_;
  frame_view parser_;  // one per pair: its readers run on one thread, one frame at a time
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
  std::uint64_t max_receipt_seq_ = 0;  // the receiver's highest seq of this run
  std::uint64_t refused_ = 0;

  // --notify: the highest upto of each state, at the sender.
  std::uint64_t delivered_upto_ = 0, read_upto_ = 0;
  bool read_posted_ = false;
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
      sender_field_("\"sender\":" + std::to_string(sender_id_) + ","),
      sender_(w.ioc),
      receiver_(w.ioc),
      wake_(w.ioc) {
  if (opt_.receipts) {
    std::size_t ring = std::bit_ceil(std::size_t{4} * opt_.window);
    send_times_.assign(ring, {UINT64_MAX, 0});
  }
}

// The welcome's seq (0 without a welcome); nullopt if the session did not open.
asio::awaitable<std::optional<std::uint64_t>> pair_client::open(
    wire_client& ws, std::uint64_t user, const bench::server_target& target) {
  auto r = co_await ws.open(target, user);
  if (!r.ok) {
    if (!run_.error_taken.exchange(true)) run_.first_connect_error = r.error;
    co_return std::nullopt;
  }
  co_return r.welcome_seq;
}

asio::awaitable<void> pair_client::connect() {
  // The receiver first, so that nothing is sent to a user with no session.
  auto rseq = co_await open(receiver_, receiver_id_, run_.receiver_target);
  std::optional<std::uint64_t> sseq;
  if (rseq) sseq = co_await open(sender_, sender_id_, run_.target);
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
  asio::co_spawn(w_.ioc, reader(receiver_, false), log_exception);
  asio::co_spawn(w_.ioc, reader(sender_, true), log_exception);
}

void pair_client::build_frame(std::uint64_t k, std::int64_t send_ns) {
  frame_.clear();
  frame_ += R"({"type":1,)";
  // The seed design forwards the frame as it is: its receiver learns the
  // sender only from here. Switchboard stamps the sender itself.
  if (opt_.speaks == protocol::seed) frame_ += sender_field_;
  frame_ += R"("receiver":)";
  frame_ += receiver_str_;
  frame_ += R"(,"content":")";
  bench::append_content(frame_, run_.nonce, index_, k, static_cast<std::uint64_t>(send_ns),
                        opt_.size);
  frame_ += '"';
  if (opt_.receipts) {
    frame_ += R"(,"id":)";
    char num[24];
    auto r = std::to_chars(num, num + sizeof num, k);
    frame_.append(num, r.ptr);
  }
  if (opt_.notify) frame_ += R"(,"notify":true)";
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
      // Due, but the window is full: the server is not keeping up with the rate.
      if (due > 0 && free == 0 && now >= run_.t0_ns) ++st_.rate_window_full;
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
    if (!sender_.is_open()) break;
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint64_t k = sent_;
      std::int64_t t = now_ns();
      build_frame(k, t);
      if (opt_.receipts) send_times_[k & (send_times_.size() - 1)] = {k, t};
      ++sent_;
      ++in_flight_;
      ++st_.sent;
      if (t >= run_.t0_ns && t < run_.t1_ns) ++st_.sent_in_window;
      sender_.append_text(frame_);
    }
    sender_.flush();  // the whole refill in one socket write
  }
  sending_done_ = true;
  st_.socket_writes += sender_.socket_writes();
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
  if (!statuses_complete()) return;
  finish();
}

// --notify: the STATUS frames cover the last message of this run (the
// highest receiver seq its receipts gave): delivered, and read with --read.
bool pair_client::statuses_complete() const {
  if (!opt_.notify) return true;
  if (delivered_upto_ < max_receipt_seq_) return false;
  return !opt_.read || read_upto_ >= max_receipt_seq_;
}

void pair_client::on_status(const frame_view& frame) {
  auto state = frame.str(frame_view::state);
  auto upto = frame.u64(frame_view::upto).value_or(0);
  if (frame.u64(frame_view::receiver) != receiver_id_) {
    ++st_.misrouted;
    return;
  }
  std::uint64_t* last = nullptr;
  if (state == "delivered") {
    ++st_.status_delivered;
    last = &delivered_upto_;
  } else if (state == "read") {
    ++st_.status_read;
    last = &read_upto_;
  } else {
    ++st_.other_frames;
    return;
  }
  if (upto <= *last) ++st_.status_backwards;  // cumulative: each covers more
  *last = std::max(*last, upto);
  check_done();
}

// --read: one READ for the receiver's last seq once the frames of this read
// are handled (posted: it runs after the batch).
void pair_client::post_read() {
  if (read_posted_) return;
  read_posted_ = true;
  asio::post(w_.ioc, [this] {
    read_posted_ = false;
    if (!receiver_.is_open() || receiver_.close_sent()) return;
    char b[64];
    int n = std::snprintf(b, sizeof b, R"({"type":6,"seq":%llu})",
                          static_cast<unsigned long long>(last_seq_));
    receiver_.append_text(std::string_view(b, static_cast<std::size_t>(n)));
    receiver_.flush();
    ++st_.reads_sent;
  });
}

// Ends both sessions with a close handshake.
void pair_client::finish() {
  if (finishing_) return;
  finishing_ = true;
  wake_.cancel();
  sender_.close();
  receiver_.close();
}

// The drain deadline passed: drop both connections.
void pair_client::force_close() {
  if (readers_running_ > 0 && !timed_out_) {
    timed_out_ = true;
    ++st_.timed_out_pairs;
  }
  finishing_ = true;
  wake_.cancel();
  sender_.abort();
  receiver_.abort();
}

void pair_client::reader_ended(const bench::end_reason& end) {
  if (!finishing_) {
    // The server ended this session before the run did.
    std::string what = end.protocol_error ? std::string("a frame no server may send")
                       : end.code         ? "close " + std::to_string(*end.code) + " " + end.reason
                                          : end.ec.message();
    ++st_.server_closes[what];
    // The pair cannot complete: end the other session too.
    finish();
  }
  if (--readers_running_ == 0) {
    if (!statuses_complete()) ++st_.status_missing;
    sending_done_ = true;
    ++run_.finished;
  }
}

void pair_client::on_server_frame(const frame_view& frame, bool at_sender) {
  auto type = frame.u64(frame_view::type);
  if (type == 4) {
    ++st_.errors[frame.text(frame_view::code)];
    if (at_sender) {
      // A refused SEND is neither delivered nor receipted.
      ++refused_;
      ++st_.refused;
      on_slot_freed();
    }
  } else if (type == 5 && at_sender) {
    on_status(frame);
  } else if (type == 3) {
    ++st_.server_closes["CLOSE " + frame.text(frame_view::code)];
  } else {
    ++st_.other_frames;
  }
}

// Reads one session's frames until it ends.
asio::awaitable<void> pair_client::reader(wire_client& ws, bool at_sender) {
  auto end = co_await ws.read_loop(
      [this, at_sender](std::string_view payload) { on_frame(payload, at_sender); });
  ws.abort();
  reader_ended(end);
}

// Receipts (at the sender) and deliveries (at the receiver) go to their
// handlers, anything else is counted.
void pair_client::on_frame(std::string_view payload, bool at_sender) {
  std::int64_t now = now_ns();
  if (!parser_.parse(payload)) {
    ++st_.corrupted;
    return;
  }
  const std::uint64_t expected = at_sender ? 2 : 1;  // RECEIVE receipts, SEND deliveries
  if (parser_.u64(frame_view::type) != expected)
    on_server_frame(parser_, at_sender);
  else if (at_sender)
    on_receipt(parser_, now);
  else
    on_delivery(parser_, now);
}

void pair_client::on_receipt(const frame_view& frame, std::int64_t now) {
  auto k = frame.u64(frame_view::id);
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
  auto seq = frame.u64(frame_view::seq).value_or(0);
  if (last_receipt_seq_ != 0 && seq != last_receipt_seq_ + 1) ++st_.receipt_seq_gaps;
  last_receipt_seq_ = seq;
  max_receipt_seq_ = std::max(max_receipt_seq_, seq);
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

void pair_client::on_delivery(const frame_view& frame, std::int64_t now) {
  auto content_field = frame.str(frame_view::content);
  if (!content_field) {
    ++st_.corrupted;
    return;
  }
  std::string_view content = *content_field;
  bench::content_marks marks;
  switch (bench::read_content(content, run_.nonce, marks)) {
    case bench::content_read::stale:
      ++st_.stale;  // another run's, or not ours at all
      return;
    case bench::content_read::corrupted:
      ++st_.corrupted;
      return;
    case bench::content_read::ok:
      break;
  }
  const std::size_t expected_size = std::max(content.size() - marks.padding.size(), opt_.size);
  if (content.size() != expected_size ||
      marks.padding.find_first_not_of('x') != std::string_view::npos) {
    ++st_.corrupted;
    return;
  }
  if (marks.a != index_ || frame.u64(frame_view::sender) != sender_id_ ||
      frame.u64(frame_view::receiver) != receiver_id_) {
    ++st_.misrouted;
    return;
  }
  if (opt_.speaks == protocol::switchboard) {
    auto seq = frame.u64(frame_view::seq).value_or(0);
    if (seq != last_seq_ + 1) ++st_.seq_gaps;
    last_seq_ = seq;
  }
  const std::uint64_t k = marks.k;
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
  if (opt_.read) post_read();
  if (now >= run_.t0_ns && now < run_.t1_ns) {
    ++st_.delivered_in_window;
    st_.delivery.add(now - static_cast<std::int64_t>(marks.send_ns));
  }
  if (opt_.frees == options::window_by::delivery ||
      (opt_.frees == options::window_by::both && receipted_.test(k)))
    on_slot_freed();
  else
    check_done();
}

// ---------------------------------------------------------------------------
// CPU time

// CPU time and time waiting for a CPU of one other process (a server, Redis).
struct process_snapshot {
  std::optional<double> cpu, wait;
  std::map<long, double> threads;  // CPU time by thread id
};

process_snapshot snapshot_of(long pid) {
  process_snapshot s;
  if (pid) {
    s.cpu = bench::process_cpu_seconds(pid);
    s.wait = bench::process_wait_seconds(pid);
    s.threads = bench::thread_cpu_seconds(pid);
  }
  return s;
}

struct cpu_snapshot {
  std::int64_t at_ns = 0;
  double self = 0;
  std::optional<double> self_wait;  // runnable, waiting for a CPU
  process_snapshot server, server2, redis;
  std::optional<bench::machine_cpu> machine;  // every process, this one included
};

cpu_snapshot snapshot(const options& o) {
  cpu_snapshot s;
  s.at_ns = now_ns();
  s.self = bench::self_cpu_seconds();
  s.server = snapshot_of(o.pid);
  s.server2 = snapshot_of(o.pid2);
  s.redis = snapshot_of(o.redis_pid);
  s.self_wait = bench::process_wait_seconds(0);
  s.machine = bench::machine_cpu_seconds();
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
  auto resolve = [](bench::server_target& t, const std::string& host, const std::string& port,
                    protocol speaks) {
    t.host = host;
    t.port = port;
    t.speaks = speaks;
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    error_code ec;
    auto results = resolver.resolve(host, port, ec);
    if (ec || results.empty()) {
      std::cerr << "switchboard_bench: cannot resolve " << host << ":" << port << ": "
                << ec.message() << "\n";
      return false;
    }
    for (const auto& r : results)
      t.endpoints.push_back(r.endpoint());
    return true;
  };
  if (!resolve(run.target, opt.host, opt.port, opt.speaks) ||
      !resolve(run.receiver_target, opt.receiver_host, opt.receiver_port, opt.speaks))
    return 3;
  if (opt.idle) {
    bench::idle_options io;
    io.target = run.target;
    io.sessions = opt.idle;
    io.base_id = opt.base_id;
    io.pid = opt.pid;
    io.sources = opt.sources;
    io.settle = opt.settle;
    io.kv = opt.kv;
    return bench::run_idle(io);
  }
  if (opt.group_members) {
    bench::group_options g;
    g.target = run.target;
    g.members = opt.group_members;
    g.senders = opt.group_senders;
    g.window = opt.window;
    g.batch = opt.batch;
    g.size = opt.size;
    g.duration = opt.duration;
    g.warmup = opt.warmup;
    g.drain = opt.drain;
    g.base_id = opt.base_id;
    g.api_key = opt.api_key;
    g.pid = opt.pid;
    g.redis_pid = opt.redis_pid;
    g.kv = opt.kv;
    return bench::run_group(g);
  }
  run.nonce = bench::new_nonce();

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
              << (run.receiver_target.host == opt.host && run.receiver_target.port == opt.port
                      ? std::string()
                      : " (receivers: " + opt.receiver_host + ":" + opt.receiver_port + ")")
              << "; first error: " << (run.error_taken ? run.first_connect_error : "timed out")
              << "\n";
    post_all([](pair_client& p) { p.force_close(); });
    stop_and_join();
    std::fflush(stdout);
    std::_Exit(3);
  }
  // Opened once every connection is up, so that the server's threads exist;
  // only the difference between the two samples below is reported.
  std::optional<bench::syscall_counter> syscalls;
  if (opt.syscalls) syscalls.emplace(opt.pid);
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
  const auto syscalls_before = syscalls ? syscalls->read() : std::nullopt;
  std::this_thread::sleep_until(at(run.t1_ns));
  cpu_snapshot after = snapshot(opt);
  const auto syscalls_after = syscalls ? syscalls->read() : std::nullopt;

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
  row("sent_per_s", "sent messages/s",
      fmt(static_cast<double>(total.sent_in_window) / opt.duration, 0));
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
  if (opt.notify) {
    row("status_delivered", "STATUS delivered frames at the senders",
        std::to_string(total.status_delivered));
    row("status_read", "STATUS read frames at the senders", std::to_string(total.status_read));
    row("status_per_msg", "STATUS frames per message",
        fmt(static_cast<double>(total.status_delivered + total.status_read) /
                std::max<std::uint64_t>(1, total.delivered),
            3));
    row("reads_sent", "READ frames sent by the receivers", std::to_string(total.reads_sent));
    row("status_backwards", "STATUS frames not above the last of their state",
        std::to_string(total.status_backwards));
    row("status_missing", "pairs whose last message's STATUS never came",
        std::to_string(total.status_missing));
  }
  row("errors", "ERROR frames", join_map(total.errors));
  row("server_closes", "sessions ended by the server", join_map(total.server_closes));
  row("stale", "messages from other runs (ignored)", std::to_string(total.stale));
  row("timed_out_pairs", "pairs not drained in time", std::to_string(total.timed_out_pairs));
  if (opt.rate > 0)
    row("rate_window_full", "times a sender was due with its window full",
        std::to_string(total.rate_window_full));
  row("max_window_wait_ms", "longest wait for a window slot (ms)",
      fmt(static_cast<double>(total.max_window_wait_ns) / 1e6, 1));
  // CPU per delivered message of another process: KEY_cpu_us_per_msg, KEY_cpu_pct.
  auto cpu_rows = [&](long pid, const process_snapshot& b, const process_snapshot& a,
                      const std::string& key, const std::string& label) {
    if (b.cpu && a.cpu && msgs_in_snapshot > 0) {
      double cpu = *a.cpu - *b.cpu;
      row(key + "_cpu_us_per_msg", label + " CPU per message (us)",
          fmt(cpu / msgs_in_snapshot * 1e6, 2));
      row(key + "_cpu_pct", label + " CPU (% of one core)", fmt(cpu / window_s * 100, 0));
    } else if (pid) {
      row(key + "_cpu_us_per_msg", label + " CPU per message (us)", "unreadable");
    }
  };
  cpu_rows(opt.pid, before.server, after.server, "server", "server");
  // Issue 14 goal 4: how evenly the server's threads share its work.
  if (const auto share = bench::busiest_share(before.server.threads, after.server.threads))
    row("server_busiest_thread_pct", "server's busiest thread (% of the server's CPU)",
        fmt(*share * 100, 1));
  cpu_rows(opt.pid2, before.server2, after.server2, "server2", "second server (--pid2)");
  cpu_rows(opt.redis_pid, before.redis, after.redis, "redis", "Redis");
  if (syscalls) {
    row("server_syscalls_source", "server system calls counted by",
        std::string(syscalls->source()));
    if (syscalls_before && syscalls_after && msgs_in_snapshot > 0) {
      auto per_msg = [&](double b, double a) { return fmt((a - b) / msgs_in_snapshot, 3); };
      row("server_syscalls_per_msg", "server system calls per message",
          per_msg(syscalls_before->total, syscalls_after->total));
      double named_before = 0, named_after = 0;
      for (auto& [name, a] : syscalls_after->by_name) {
        const auto b = syscalls_before->by_name.at(name);
        named_before += b;
        named_after += a;
        row("server_sys_" + name + "_per_msg", "  " + name + " per message", per_msg(b, a));
      }
      if (!syscalls_after->by_name.empty())
        row("server_sys_other_per_msg", "  other system calls per message",
            per_msg(static_cast<double>(syscalls_before->total) - named_before,
                    static_cast<double>(syscalls_after->total) - named_after));
    } else {
      row("server_syscalls_per_msg", "server system calls per message", "unreadable");
    }
  }
  if (msgs_in_snapshot > 0) {
    double cpu = after.self - before.self;
    row("client_cpu_us_per_msg", "client CPU per message (us)",
        fmt(cpu / msgs_in_snapshot * 1e6, 2));
    row("client_cpu_pct", "client CPU (% of one core)", fmt(cpu / window_s * 100, 0));
  }
  // Time runnable but not running: other work on the machine holding a side back.
  auto wait_row = [&](const process_snapshot& b, const process_snapshot& a, const std::string& key,
                      const std::string& label) {
    if (b.wait && a.wait)
      row(key + "_wait_pct", label + " waiting for a CPU (% of the time, all threads)",
          fmt((*a.wait - *b.wait) / window_s * 100, 0));
  };
  wait_row(before.server, after.server, "server", "server");
  wait_row(before.server2, after.server2, "server2", "second server");
  wait_row(before.redis, after.redis, "redis", "Redis");
  if (before.self_wait && after.self_wait)
    row("client_wait_pct", "client waiting for a CPU (% of the time, all threads)",
        fmt((*after.self_wait - *before.self_wait) / window_s * 100, 0));
  // The whole machine: how busy it was, whatever ran, and the time a
  // hypervisor took from it.
  if (before.machine && after.machine) {
    row("machine_busy_pct", "machine busy (% of one CPU, summed over CPUs)",
        fmt((after.machine->busy - before.machine->busy) / window_s * 100, 0));
    row("machine_steal_pct", "machine CPU stolen by the hypervisor (% of one CPU)",
        fmt((after.machine->steal - before.machine->steal) / window_s * 100, 0));
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
    std::cout << "switchboard_bench " << opt.host << ":" << opt.port
              << (opt.receiver_host == opt.host && opt.receiver_port == opt.port
                      ? std::string()
                      : " (receivers on " + opt.receiver_host + ":" + opt.receiver_port + ")")
              << ": " << opt.pairs << " pairs, window " << opt.window << " (refill " << opt.batch
              << "), " << opt.size << "-byte content, "
              << (opt.receipts ? std::string("receipts, ") : std::string())
              << (opt.frees == options::window_by::delivery  ? "window freed by delivery, "
                  : opt.frees == options::window_by::receipt ? "window freed by receipt, "
                                                             : "window freed by delivery+receipt, ")
              << (opt.rate > 0 ? "offered " + fmt(opt.rate, 0) + " msgs/s, " : "")
              << (opt.speaks == protocol::seed ? "seed protocol, " : "") << opt.threads
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
  bool bad = lost || total.duplicated || total.reordered || total.misrouted || total.corrupted ||
             total.status_missing || total.status_backwards;
  if (hung) {
    std::cerr << "switchboard_bench: the client did not stop cleanly\n";
    std::_Exit(bad ? 1 : 0);
  }
  return bad ? 1 : 0;
}
