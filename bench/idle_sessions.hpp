// The idle-session mode of switchboard_bench (--idle N): the server's
// resident memory per open, idle WebSocket session.
#pragma once

#include <cstdint>

#include "wire_client.hpp"

namespace bench {

struct idle_options {
  server_target target;
  std::uint64_t sessions = 0;  // N
  std::uint64_t base_id = 1;   // users base_id .. base_id+N-1, one session each
  long pid = 0;                // the server, for its VmRSS; 0: no memory figure
  unsigned sources = 0;        // source addresses 127.0.0.1.. to spread over; 0: no bind
  unsigned concurrency = 200;  // sessions being opened at once
  double settle = 2;           // seconds between the last open and reading the RSS
  double open_timeout = 120;   // seconds allowed for opening all N
  double close_timeout = 30;   // seconds allowed for closing them all
  bool kv = false;
};

// Opens N sessions, reads the server's VmRSS before and after, prints
// (after - before) / N, closes them all with a close handshake. Returns the
// process exit code: 0, 3 if not every session opened, 2 if the file limit
// is too low for N.
int run_idle(const idle_options& o);

}  // namespace bench
