// System calls of another process (a server), counted by the kernel while
// the bench measures: the figure behind "system calls per relayed message"
// (docs/performance.md, issue 14).
//
// The counters are the kernel's syscall tracepoints, the ones
// `perf stat -e raw_syscalls:sys_enter,syscalls:sys_enter_NAME -p PID`
// reads, opened here with perf_event_open(2) on every thread of the process
// so that the count covers exactly the bench's measured seconds (no perf
// binary needed; tracepoints need root or perf_event_paranoid <= -1, and
// tracefs mounted). Threads the process starts after the counters were
// opened are not counted, as with `perf stat -p`.
//
// When the kernel refuses tracepoints, /proc/PID/io is the fallback: its
// syscr and syscw count only the read(2) and write(2) family (read, readv,
// write, writev, ...), not recvfrom, sendto, recvmsg or sendmsg, nor
// epoll_*: a lower bound that cannot be compared with the tracepoint figure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

class syscall_counter {
 public:
  // The system calls counted one by one besides the total; the rest is
  // "other" (the total less these).
  static const std::vector<std::string_view>& names();

  // Opens the counters on every thread of `pid` now; counting starts at once.
  explicit syscall_counter(long pid);
  ~syscall_counter();
  syscall_counter(const syscall_counter&) = delete;
  syscall_counter& operator=(const syscall_counter&) = delete;

  // "tracepoints", "proc_io" (the fallback above) or "none" (neither could be read).
  std::string_view source() const;

  struct sample {
    std::uint64_t total = 0;                       // every system call (raw_syscalls:sys_enter)
    std::map<std::string, std::uint64_t> by_name;  // tracepoints only: names(), each
  };
  // The counts since the counters were opened; nullopt if unreadable.
  std::optional<sample> read() const;

 private:
  struct counter {
    int fd;
    std::string name;  // empty: the total
  };
  long pid_;
  std::vector<counter> counters_;
  bool proc_io_ = false;
  std::uint64_t proc_io_start_ = 0;
};

}  // namespace bench
