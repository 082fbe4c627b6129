// What the bench reads about processes: CPU time (its own and the server's),
// the server's resident memory and open files, and its own file limit.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace bench {

// utime + stime of every thread of process `pid`, in seconds (/proc/PID/stat);
// nullopt when it cannot be read.
std::optional<double> process_cpu_seconds(long pid);

// utime + stime of each thread of process `pid` (0: this process), in
// seconds, keyed by thread id (/proc/PID/task/*/stat); empty when none can
// be read. Issue 14 goal 4 compares the busiest thread's share of the
// process's CPU over a measurement (busiest_share).
std::map<long, double> thread_cpu_seconds(long pid);

// The largest share (0..1) of the CPU time the threads present in both
// `before` and `after` used between them; nullopt if they used none.
std::optional<double> busiest_share(const std::map<long, double>& before,
                                    const std::map<long, double>& after);

// The CPU time of this process, user and system, in seconds.
double self_cpu_seconds();

// The time the threads of process `pid` (0: this process) spent runnable
// but waiting for a CPU, summed over its threads, in seconds (field 2 of
// /proc/PID/task/*/schedstat); nullopt when it cannot be read. On a shared
// machine this says how much a process was held back by the others.
std::optional<double> process_wait_seconds(long pid);

// CPU time of the whole machine, summed over its CPUs, in seconds (the
// first line of /proc/stat): `busy` is user, nice, system, irq and softirq;
// `steal` the time the hypervisor ran something else while a CPU of this
// machine wanted to run. nullopt when it cannot be read. Together with the
// CPU time of the processes measured, it says how much other work shared
// the machine during a measurement.
struct machine_cpu {
  double busy = 0;
  double steal = 0;
};
std::optional<machine_cpu> machine_cpu_seconds();

// VmRSS of process `pid` in bytes (/proc/PID/status); 0 if unreadable (no
// user process has nothing resident).
std::uint64_t resident_bytes(long pid);

// The number of entries in /proc/PID/fd; nullopt if unreadable.
std::optional<std::uint64_t> open_files(long pid);

// Raises this process's soft limit on open files to its hard limit and
// returns the soft limit now in force.
std::uint64_t raise_file_limit();

}  // namespace bench
