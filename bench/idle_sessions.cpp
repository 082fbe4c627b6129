// Sessions are opened `concurrency` at a time by as many opener coroutines;
// each open session keeps one read pending, so that the server's pings are
// answered (an idle session must not be closed as idle while it is measured)
// and a close by the server is noticed. All on one io_context run by one
// thread; main only polls counters and reads /proc.

#include "idle_sessions.hpp"

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "process_stats.hpp"

namespace bench {

namespace {

using steady = std::chrono::steady_clock;

// An idle session reads little: a small buffer, so that 15,000 of them stay cheap.
constexpr std::size_t idle_buffer_bytes = 1024;

struct idle_session {
  explicit idle_session(asio::io_context& ioc) : ws(ioc, idle_buffer_bytes) {}
  wire_client ws;
  bool open = false;
};

class idle_client {
 public:
  explicit idle_client(const idle_options& o) : o_(o) {
    if (o.sources > 0 && !o.target.endpoints.empty() &&
        o.target.endpoints.front().address().is_v4() &&
        o.target.endpoints.front().address().is_loopback()) {
      for (unsigned i = 0; i < o.sources; ++i)
        sources_.push_back(asio::ip::address_v4(0x7f000001u + i));
    }
    sessions_.reserve(o.sessions);
    for (std::uint64_t i = 0; i < o.sessions; ++i)
      sessions_.push_back(std::make_unique<idle_session>(ioc_));
  }

  void start() {
    unsigned openers = static_cast<unsigned>(std::min<std::uint64_t>(o_.concurrency, o_.sessions));
    for (unsigned i = 0; i < openers; ++i)
      asio::co_spawn(ioc_, opener(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }

  // Closes every open session with a close handshake; the readers end.
  void close_all() {
    closing_ = true;
    asio::post(ioc_, [this] {
      for (auto& s : sessions_)
        if (s->open) s->ws.close();
    });
  }

  // Drops whatever is still open and stops the thread.
  void stop() {
    asio::post(ioc_, [this] {
      for (auto& s : sessions_)
        s->ws.abort();
      ioc_.stop();
    });
    // run() may have returned already, out of work: then nothing is left to stop.
    if (thread_.joinable()) thread_.join();
  }

  bool unused_sources() const { return o_.sources > 0 && sources_.empty(); }
  unsigned source_count() const { return static_cast<unsigned>(sources_.size()); }
  std::uint64_t opened() const { return opened_; }
  std::uint64_t failed() const { return failed_; }
  std::uint64_t ended() const { return ended_; }
  std::uint64_t closed_cleanly() const { return closed_cleanly_; }
  std::uint64_t ended_by_server() const { return ended_by_server_; }
  std::string first_error() {
    std::lock_guard lock(error_mutex_);
    return first_error_;
  }

 private:
  asio::awaitable<void> opener() {
    for (;;) {
      std::uint64_t i = next_++;
      if (i >= o_.sessions || closing_) co_return;
      auto& s = *sessions_[i];
      std::optional<asio::ip::address> source;
      if (!sources_.empty()) source = sources_[i % sources_.size()];
      auto r = co_await s.ws.open(o_.target, o_.base_id + i, source);
      if (!r.ok) {
        {
          std::lock_guard lock(error_mutex_);
          if (first_error_.empty()) first_error_ = r.error;
        }
        s.ws.abort();
        ++failed_;
        continue;
      }
      s.open = true;
      ++opened_;
      asio::co_spawn(ioc_, reader(s), asio::detached);
    }
  }

  // Keeps a read pending: pings are answered and the close seen from inside it.
  asio::awaitable<void> reader(idle_session& s) {
    auto end = co_await s.ws.read_loop([](std::string_view) {});
    if (!closing_) ++ended_by_server_;
    // Clean: the server answered our close frame with its own, then ended the connection.
    if (closing_ && end.code && end.ec == asio::error::eof) ++closed_cleanly_;
    s.ws.abort();
    ++ended_;
  }

  const idle_options& o_;
  asio::io_context ioc_{1};
  std::vector<asio::ip::address> sources_;
  std::vector<std::unique_ptr<idle_session>> sessions_;
  std::thread thread_;
  // Written by the io_context's thread, read by main.
  std::atomic<std::uint64_t> next_{0}, opened_{0}, failed_{0}, ended_{0};
  std::atomic<std::uint64_t> closed_cleanly_{0}, ended_by_server_{0};
  std::atomic<bool> closing_{false};
  std::mutex error_mutex_;
  std::string first_error_;
};

std::string fmt(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string opt_str(const std::optional<std::uint64_t>& v) {
  return v ? std::to_string(*v) : std::string("unreadable");
}

// (after - before) / n, or "unreadable".
std::string per_session(std::uint64_t before, std::uint64_t after, std::uint64_t n) {
  if (before == 0 || after == 0 || n == 0) return "unreadable";
  const double grown = static_cast<double>(after) - static_cast<double>(before);
  return fmt(grown / static_cast<double>(n), 0);
}

std::string kib(std::uint64_t bytes) {
  return bytes ? std::to_string(bytes / 1024) : std::string("unreadable");
}

bool wait_until(steady::time_point deadline, auto done) {
  while (!done()) {
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace

int run_idle(const idle_options& o) {
  // Each session holds one file here, and one in the server.
  const std::uint64_t limit = raise_file_limit();
  constexpr std::uint64_t spare_files = 64;
  if (o.sessions + spare_files > limit) {
    std::cerr << "switchboard_bench: --idle " << o.sessions << " needs " << o.sessions + spare_files
              << " open files, this process may hold " << limit
              << ": run several processes, each with --idle N and its own --base-id\n";
    return 2;
  }

  auto ns_of = [](double s) {
    return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s));
  };
  const std::uint64_t rss_before = o.pid ? resident_bytes(o.pid) : 0;
  const auto files_before = o.pid ? open_files(o.pid) : std::nullopt;

  idle_client client(o);
  const auto t0 = steady::now();
  client.start();
  const bool all_tried = wait_until(
      t0 + ns_of(o.open_timeout), [&] { return client.opened() + client.failed() >= o.sessions; });
  const double open_s = std::chrono::duration<double>(steady::now() - t0).count();
  const std::uint64_t opened = client.opened();

  // Let the server finish whatever follows the welcome, then read.
  std::this_thread::sleep_for(ns_of(o.settle));
  const std::uint64_t rss_after = o.pid ? resident_bytes(o.pid) : 0;
  const auto files_after = o.pid ? open_files(o.pid) : std::nullopt;
  const std::uint64_t ended_early = client.ended_by_server();

  client.close_all();
  const bool all_closed =
      wait_until(steady::now() + ns_of(o.close_timeout), [&] { return client.ended() >= opened; });
  const std::uint64_t clean = client.closed_cleanly();
  client.stop();

  struct row {
    const char* key;
    const char* label;
    std::string value;
  };
  std::vector<row> rows;
  rows.push_back({"idle_sessions", "idle sessions opened", std::to_string(opened)});
  rows.push_back({"idle_failed", "sessions that failed to open", std::to_string(client.failed())});
  rows.push_back({"idle_open_s", "time to open them all (s)", fmt(open_s, 2)});
  rows.push_back({"idle_sources", "source addresses used",
                  std::to_string(std::max(1u, client.source_count()))});
  rows.push_back({"server_rss_before_kib", "server VmRSS before (KiB)", kib(rss_before)});
  rows.push_back({"server_rss_after_kib", "server VmRSS with them open (KiB)", kib(rss_after)});
  if (o.pid)
    rows.push_back({"bytes_per_idle_session", "server bytes per idle session",
                    per_session(rss_before, rss_after, opened)});
  rows.push_back({"server_files_before", "server open files before", opt_str(files_before)});
  rows.push_back({"server_files_after", "server open files with them open", opt_str(files_after)});
  rows.push_back({"idle_ended_by_server", "sessions the server ended while measured",
                  std::to_string(ended_early)});
  rows.push_back(
      {"idle_closed_cleanly", "sessions closed with a close handshake", std::to_string(clean)});

  if (o.kv) {
    for (auto& r : rows) {
      std::string v = r.value;
      for (auto& c : v)
        if (c == ' ') c = '_';
      std::cout << r.key << "=" << v << "\n";
    }
  } else {
    std::cout << "switchboard_bench --idle " << o.sessions << " against " << o.target.host << ":"
              << o.target.port << ", users from " << o.base_id << "\n";
    std::size_t width = 0;
    for (auto& r : rows)
      width = std::max(width, std::string_view(r.label).size());
    for (auto& r : rows)
      std::cout << "  " << r.label << std::string(width - std::string_view(r.label).size() + 2, ' ')
                << r.value << "\n";
  }
  std::cout.flush();
  if (client.unused_sources())
    std::cerr << "switchboard_bench: --sources ignored: the server is not on 127.0.0.0/8 (IPv4)\n";
  if (!all_tried || opened < o.sessions) {
    std::cerr << "switchboard_bench: " << opened << " of " << o.sessions
              << " idle sessions opened; first error: "
              << (client.first_error().empty() ? "timed out" : client.first_error()) << "\n";
    return 3;
  }
  if (!all_closed)
    std::cerr << "switchboard_bench: " << opened - client.ended()
              << " idle sessions did not close in time\n";
  return 0;
}

}  // namespace bench
