#include "process_stats.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {

namespace {
// utime + stime from one stat file of /proc (a process's or a thread's).
std::optional<double> stat_cpu_seconds(const std::filesystem::path& stat) {
  std::ifstream in(stat);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command (field 2) may hold spaces and parentheses: skip to its end.
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
}  // namespace

std::optional<double> process_cpu_seconds(long pid) {
  return stat_cpu_seconds("/proc/" + std::to_string(pid) + "/stat");
}

std::map<long, double> thread_cpu_seconds(long pid) {
  const std::string dir = pid ? "/proc/" + std::to_string(pid) + "/task" : "/proc/self/task";
  std::map<long, double> threads;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    // A thread that ended meanwhile has no file any more: left out.
    if (auto cpu = stat_cpu_seconds(it->path() / "stat"))
      threads[std::stol(it->path().filename().string())] = *cpu;
  }
  return threads;
}

std::optional<double> busiest_share(const std::map<long, double>& before,
                                    const std::map<long, double>& after) {
  double total = 0, busiest = 0;
  for (const auto& [tid, a] : after) {
    const auto b = before.find(tid);
    if (b == before.end()) continue;
    const double used = a - b->second;
    total += used;
    busiest = std::max(busiest, used);
  }
  if (total <= 0) return std::nullopt;
  return busiest / total;
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

std::optional<double> process_wait_seconds(long pid) {
  const std::string dir = pid ? "/proc/" + std::to_string(pid) + "/task" : "/proc/self/task";
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) return std::nullopt;
  unsigned long long total_ns = 0;
  bool any = false;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    std::ifstream in(it->path() / "schedstat");
    unsigned long long run_ns = 0, wait_ns = 0;
    if (in >> run_ns >> wait_ns) {  // a thread that ended meanwhile has no file
      total_ns += wait_ns;
      any = true;
    }
  }
  if (!any) return std::nullopt;
  return static_cast<double>(total_ns) / 1e9;
}

std::optional<machine_cpu> machine_cpu_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  // cpu user nice system idle iowait irq softirq steal ...
  unsigned long long v[8] = {};
  if (!(in >> cpu) || cpu != "cpu") return std::nullopt;
  for (auto& x : v)
    if (!(in >> x)) return std::nullopt;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  machine_cpu m;
  m.busy = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6]) / tick;
  m.steal = static_cast<double>(v[7]) / tick;
  return m;
}

std::uint64_t resident_bytes(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("VmRSS:")) continue;
    std::istringstream fields(line.substr(6));
    std::uint64_t kb = 0;
    if (fields >> kb) return kb * 1024;
    return 0;
  }
  return 0;
}

std::optional<std::uint64_t> open_files(long pid) {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec);
  if (ec) return std::nullopt;
  std::uint64_t n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++n;
  }
  return n;
}

std::uint64_t raise_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(rl.rlim_cur);
}

}  // namespace bench
