// A real redis-server for tests: on a Unix socket in a temp dir, port 0 (no
// TCP), no persistence. Started and waited for (PING answered), stopped with
// SIGTERM and waitpid, and restartable mid-test on the same socket path.
// Every wait is bounded; the destructor stops it.
//
// The binary is $REDIS_SERVER, else redis-server on the PATH (Debian package
// redis-server; ./quickstart installs it).
#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>

namespace test_support {

class RedisServer {
public:
    // dir: an existing directory (a TempDir) for the socket and the log.
    explicit RedisServer(std::string dir);
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    // Starts it and waits up to `within` for PING; "" on success, else why
    // (with the end of its log).
    std::string start(std::chrono::milliseconds within = std::chrono::seconds(10));
    // SIGTERM, then SIGKILL after 5 s; reaps it. Nothing when not running.
    void stop();
    std::string restart() {
        stop();
        return start();
    }
    bool running() const { return pid_ > 0; }
    const std::string& socket_path() const { return socket_; }
    // Blocking PING over the socket, up to 1 s: true on +PONG.
    bool answers_ping() const;

private:
    std::string dir_;
    std::string socket_;
    std::string log_;
    pid_t pid_ = -1;
};

}  // namespace test_support
