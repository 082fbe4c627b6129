#include "syscall_count.hpp"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bench {

namespace {

// The tracepoint's id, from tracefs (either mount point); nullopt if absent
// or unreadable (no tracefs, or not allowed).
std::optional<std::uint64_t> tracepoint_id(const std::string& event) {
  for (const char* root : {"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"}) {
    std::ifstream in(root + event + "/id");
    std::uint64_t id = 0;
    if (in >> id) return id;
  }
  return std::nullopt;
}

int open_tracepoint(std::uint64_t id, long tid) {
  perf_event_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_TRACEPOINT;
  attr.config = id;
  attr.exclude_hv = 1;
  return static_cast<int>(
      ::syscall(SYS_perf_event_open, &attr, static_cast<pid_t>(tid), -1, -1, PERF_FLAG_FD_CLOEXEC));
}

std::vector<long> threads_of(long pid) {
  std::vector<long> tids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/task", ec), end;
       !ec && it != end; it.increment(ec)) {
    try {
      tids.push_back(std::stol(it->path().filename().string()));
    } catch (const std::exception&) {
    }
  }
  return tids;
}

// syscr + syscw of /proc/PID/io; nullopt if unreadable.
std::optional<std::uint64_t> proc_io_calls(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/io");
  std::string key;
  std::uint64_t value = 0, sum = 0;
  int found = 0;
  while (in >> key >> value) {
    if (key == "syscr:" || key == "syscw:") {
      sum += value;
      ++found;
    }
  }
  if (found != 2) return std::nullopt;
  return sum;
}

}  // namespace

const std::vector<std::string_view>& syscall_counter::names() {
  static const std::vector<std::string_view> list = {
      "recvfrom", "recvmsg",    "read",        "sendto",    "sendmsg",        "write",
      "writev",   "epoll_wait", "epoll_pwait", "epoll_ctl", "io_uring_enter", "futex"};
  return list;
}

syscall_counter::syscall_counter(long pid) : pid_(pid) {
  std::vector<std::pair<std::uint64_t, std::string>> events;
  if (auto id = tracepoint_id("raw_syscalls/sys_enter")) {
    events.emplace_back(*id, "");
    for (auto name : names())
      if (auto each = tracepoint_id("syscalls/sys_enter_" + std::string(name)))
        events.emplace_back(*each, std::string(name));
  }
  bool ok = !events.empty();
  for (long tid : ok ? threads_of(pid) : std::vector<long>{}) {
    for (auto& [id, name] : events) {
      const int fd = open_tracepoint(id, tid);
      if (fd < 0) {
        // A thread that ended meanwhile is harmless; anything else (not
        // allowed) means no tracepoints at all.
        if (errno == ESRCH) break;
        ok = false;
        break;
      }
      counters_.push_back({fd, name});
    }
    if (!ok) break;
  }
  if (ok && !counters_.empty()) return;
  for (auto& c : counters_)
    ::close(c.fd);
  counters_.clear();
  if (auto calls = proc_io_calls(pid)) {
    proc_io_ = true;
    proc_io_start_ = *calls;
  }
}

syscall_counter::~syscall_counter() {
  for (auto& c : counters_)
    ::close(c.fd);
}

std::string_view syscall_counter::source() const {
  if (!counters_.empty()) return "tracepoints";
  if (proc_io_) return "proc_io";
  return "none";
}

std::optional<syscall_counter::sample> syscall_counter::read() const {
  sample s;
  if (!counters_.empty()) {
    for (auto name : names())
      s.by_name[std::string(name)] = 0;
    for (auto& c : counters_) {
      std::uint64_t value = 0;
      if (::read(c.fd, &value, sizeof value) != sizeof value) return std::nullopt;
      if (c.name.empty())
        s.total += value;
      else
        s.by_name[c.name] += value;
    }
    return s;
  }
  if (proc_io_) {
    auto calls = proc_io_calls(pid_);
    if (!calls) return std::nullopt;
    s.total = *calls - proc_io_start_;
    return s;
  }
  return std::nullopt;
}

}  // namespace bench
