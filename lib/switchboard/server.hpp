// Wires the parts together and owns them: the I/O threads, the hub, the
// store worker, the router and the listener; and runs the shutdown sequence
// of PROTOCOL.md section 8.
#pragma once

#include <memory>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>

#include "switchboard/config.hpp"
#include "switchboard/io_threads.hpp"
#include "switchboard/net.hpp"

namespace switchboard {

namespace store {
struct backend_limits;
struct worker_limits;
}  // namespace store

// The store's bounds as the options set them: the backend's (retention,
// inbox and dedup limits, the memory store's total) and the worker's (a
// replay page is a quarter of --send-queue-bytes, --store-queue-bytes).
// Also used by the tests' in-memory server (test/support/memory_server.hpp).
store::backend_limits backend_limits_of(const config& cfg);
store::worker_limits worker_limits_of(const config& cfg);

// A file or a port that cannot be used at start: one line, exit code 1.
class startup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class server {
 public:
  // Opens the store and binds the port. Throws startup_error.
  explicit server(config cfg);
  ~server();

  asio::ip::tcp::endpoint endpoint() const;

  // Prints `listening on ADDR:PORT`, serves until SIGTERM or SIGINT, drains
  // and returns the exit code.
  int run();

  // Starts the same drain as SIGTERM, from any thread (tests use it).
  void stop();

 private:
  // Prints `listening on ADDR:PORT` (PROTOCOL.md section 8).
  void announce();

  struct parts;
  config config_;
  io_threads io_;  // built before the parts, destroyed after them
  std::unique_ptr<parts> parts_;
};

}  // namespace switchboard
