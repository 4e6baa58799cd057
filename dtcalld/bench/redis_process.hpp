// The bench's own redis-server for --nodes runs: on a Unix socket in a
// fresh temp dir, port 0 (no TCP), no persistence. The binary is
// $REDIS_SERVER, else redis-server on the PATH. Every wait is bounded;
// stop() (also the destructor) ends it and removes the dir. It dies with
// the bench (PDEATHSIG), and SIGINT/SIGTERM while it runs stop it and remove
// its dir before the bench ends as the signal says.
#pragma once

#include <dtcall/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <sys/types.h>

namespace dtbench {

class RedisProcess {
public:
    // Errors name what failed (the binary, the temp dir, the end of its log).
    static dtcall::Result<std::unique_ptr<RedisProcess>> start(std::chrono::milliseconds within);
    ~RedisProcess();
    RedisProcess(const RedisProcess&) = delete;
    RedisProcess& operator=(const RedisProcess&) = delete;

    const std::string& socket_path() const { return socket_; }
    pid_t pid() const { return pid_; }
    // `used_memory` of INFO memory, in bytes (a blocking request, at most 2 s).
    dtcall::Result<std::uint64_t> used_memory() const;
    // SIGTERM, SIGKILL after 3 s, reaped; the temp dir removed. Idempotent.
    void stop();

private:
    RedisProcess() = default;
    // One request in the inline protocol; the reply's text, or an error.
    dtcall::Result<std::string> ask(const std::string& command) const;

    std::string dir_;
    std::string socket_;
    std::string log_;
    pid_t pid_ = -1;
};

}  // namespace dtbench
