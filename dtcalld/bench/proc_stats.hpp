// What the kernel says about a process and the machine: resident memory,
// CPU time, UDP drop counters, the open-files limit. Linux /proc readers;
// each returns an error naming what it could not read ("cannot read
// /proc/1234/status: No such file or directory": process gone, no
// permission, a /proc of another PID namespace, another OS), never throws.
#pragma once

#include <dtcall/result.hpp>

#include <cstdint>
#include <sys/types.h>

namespace dtbench {

// VmRSS of /proc/PID/status, in bytes.
dtcall::Result<std::uint64_t> resident_bytes(pid_t pid);

// CPU time a process used, all threads. `runtime_ns` comes from the
// scheduler (/proc/PID/task/*/schedstat, nanosecond resolution); user and
// system from /proc/PID/stat (clock ticks, 10 ms resolution).
struct CpuSample {
    std::int64_t runtime_ns = 0;
    std::int64_t user_ns = 0;
    std::int64_t system_ns = 0;
};
dtcall::Result<CpuSample> process_cpu(pid_t pid);

// This process's own CPU time (getrusage), user + system, in nanoseconds.
std::int64_t own_cpu_ns();

// Datagrams the kernel dropped at the UDP sockets bound to local `port`
// (the "drops" column of /proc/net/udp and udp6): a full receive buffer.
dtcall::Result<std::uint64_t> udp_socket_drops(std::uint16_t port);

// Slab memory of the whole machine (/proc/meminfo), in bytes: where socket
// structures live, which no process's RSS shows.
dtcall::Result<std::uint64_t> slab_bytes();

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
std::uint64_t raise_open_files_limit();

}  // namespace dtbench
