// The group mode of switchboard_bench (--group-members N): fan-out of group
// messages (PROTOCOL.md section 10) at saturation.
#pragma once

#include <cstdint>
#include <string>

#include "wire_client.hpp"

namespace bench {

struct group_options {
  server_target target;
  std::uint64_t members = 10;  // N sessions, users base_id .. base_id+N-1, all in one group
  unsigned senders = 10;       // S: members 0..S-1 send
  unsigned window = 16;        // group messages in flight per sender
  unsigned batch = 2;          // refill once this many slots are free
  std::size_t size = 64;       // content bytes
  double duration = 5, warmup = 1, drain = 10;
  std::uint64_t base_id = 1;
  std::uint64_t group = 0;  // 0: base_id
  std::string api_key;      // the server's --api-key-file content
  long pid = 0, redis_pid = 0;
  bool kv = false;
};

// PUTs every member into the group through the membership API, opens the N
// sessions, runs S senders for warmup + duration seconds with at most
// `window` group messages each in flight (a slot is freed once the message
// is receipted and its copy reached every other member), drains, checks
// that every member got every copy once, in gseq order with no seq gap, and
// prints the rates and the server's CPU per group message and per copy.
// Returns the exit code: 0, 1 if a copy was lost, duplicated, reordered or
// misrouted, 3 if the setup failed.
int run_group(const group_options& o);

}  // namespace bench
