#include "redis_process.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace dtbench {
namespace {

using Clock = std::chrono::steady_clock;

// What the signal handler needs to clean up: plain data, written only while
// the handler is not installed. One bench redis-server runs at a time.
struct SignalCleanup {
    volatile pid_t pid = -1;
    char socket[256] = {};
    char log[256] = {};
    char dump[256] = {};
    char dir[256] = {};
    struct sigaction old_int {};
    struct sigaction old_term {};
    bool installed = false;
};
SignalCleanup cleanup;  // the one global: a signal handler cannot be given state

void on_signal(int signal_number) {
    // Only async-signal-safe calls here.
    if (cleanup.pid > 0) {
        ::kill(cleanup.pid, SIGKILL);
        ::waitpid(cleanup.pid, nullptr, 0);
    }
    ::unlink(cleanup.socket);
    ::unlink(cleanup.log);
    ::unlink(cleanup.dump);
    ::rmdir(cleanup.dir);
    ::sigaction(SIGINT, &cleanup.old_int, nullptr);
    ::sigaction(SIGTERM, &cleanup.old_term, nullptr);
    ::raise(signal_number);
}

void copy_path(char (&to)[256], const std::string& from) {
    std::snprintf(to, sizeof to, "%s", from.c_str());
}

void install_cleanup(pid_t pid, const std::string& dir) {
    copy_path(cleanup.socket, dir + "/redis.sock");
    copy_path(cleanup.log, dir + "/redis.log");
    copy_path(cleanup.dump, dir + "/dump.rdb");
    copy_path(cleanup.dir, dir);
    cleanup.pid = pid;
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &cleanup.old_int);
    ::sigaction(SIGTERM, &action, &cleanup.old_term);
    cleanup.installed = true;
}

void remove_cleanup() {
    if (!cleanup.installed) return;
    ::sigaction(SIGINT, &cleanup.old_int, nullptr);
    ::sigaction(SIGTERM, &cleanup.old_term, nullptr);
    cleanup.installed = false;
    cleanup.pid = -1;
}

std::string tail_of(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s.size() > 400 ? s.substr(s.size() - 400) : s;
}

}  // namespace

dtcall::Result<std::unique_ptr<RedisProcess>> RedisProcess::start(std::chrono::milliseconds within) {
    const char* env = std::getenv("REDIS_SERVER");
    std::string binary = env != nullptr && *env != '\0' ? env : "redis-server";
    char dir_template[] = "/tmp/dtcall-bench-redis.XXXXXX";
    if (!::mkdtemp(dir_template))
        return dtcall::Error{std::string("redis-server: cannot make a temp dir in /tmp: ") + std::strerror(errno)};
    std::unique_ptr<RedisProcess> redis(new RedisProcess());
    redis->dir_ = dir_template;
    redis->socket_ = redis->dir_ + "/redis.sock";
    redis->log_ = redis->dir_ + "/redis.log";
    std::vector<std::string> args = {binary,  "--port",     "0",      "--unixsocket", redis->socket_, "--unixsocketperm",
                                     "700",   "--save",     "",       "--appendonly", "no",           "--dir",
                                     redis->dir_, "--daemonize", "no", "--loglevel",  "warning"};
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return dtcall::Error{std::string("redis-server: fork: ") + std::strerror(errno)};
    if (pid == 0) {
        // Never outlives the bench, even when the bench is killed.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        // Its own process group: a Ctrl-C reaches the bench, which stops it.
        ::setpgid(0, 0);
        int fd = ::open(redis->log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execvp(argv[0], argv.data());
        std::fprintf(stderr, "cannot run %s: %s (install redis-server, or set REDIS_SERVER)\n", argv[0],
                     std::strerror(errno));
        ::_exit(127);
    }
    redis->pid_ = pid;
    install_cleanup(pid, redis->dir_);
    auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
        auto pong = redis->ask("PING");
        if (pong && pong->compare(0, 5, "+PONG") == 0) return redis;
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            redis->pid_ = -1;
            std::string why = "redis-server (" + binary + ") exited at start: " + tail_of(redis->log_);
            redis->stop();
            return dtcall::Error{why};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string why = "redis-server (" + binary + ") did not answer PING on " + redis->socket_ + " within " +
                      std::to_string(within.count()) + " ms: " + tail_of(redis->log_);
    redis->stop();
    return dtcall::Error{why};
}

RedisProcess::~RedisProcess() { stop(); }

void RedisProcess::stop() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        auto deadline = Clock::now() + std::chrono::seconds(3);
        int status = 0;
        for (;;) {
            pid_t done = ::waitpid(pid_, &status, WNOHANG);
            if (done == pid_ || (done < 0 && errno != EINTR)) break;
            if (Clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
                }
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        pid_ = -1;
    }
    if (!dir_.empty()) {
        for (const char* name : {"/redis.sock", "/redis.log", "/dump.rdb"}) ::unlink((dir_ + name).c_str());
        ::rmdir(dir_.c_str());
        dir_.clear();
    }
    remove_cleanup();
}

dtcall::Result<std::string> RedisProcess::ask(const std::string& command) const {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return dtcall::Error{std::string("socket: ") + std::strerror(errno)};
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_.c_str());
    std::string line = command + "\r\n";
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::write(fd, line.data(), line.size()) != ssize_t(line.size())) {
        std::string why = std::strerror(errno);
        ::close(fd);
        return dtcall::Error{"cannot reach redis-server at " + socket_ + ": " + why};
    }
    // A simple reply ends with its first CRLF; a bulk one ("$LEN\r\n") after LEN + 2 more bytes.
    std::string reply;
    auto deadline = Clock::now() + std::chrono::seconds(2);
    for (;;) {
        auto header_end = reply.find("\r\n");
        if (header_end != std::string::npos) {
            if (reply[0] != '$') break;
            long length = std::strtol(reply.c_str() + 1, nullptr, 10);
            if (length < 0 || reply.size() >= header_end + 2 + std::size_t(length) + 2) break;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, int(left)) != 1) {
            ::close(fd);
            return dtcall::Error{"redis-server at " + socket_ + " did not answer " + command + " within 2 s"};
        }
        char chunk[4096];
        ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got <= 0) {
            ::close(fd);
            return dtcall::Error{"redis-server at " + socket_ + " closed the connection during " + command};
        }
        reply.append(chunk, std::size_t(got));
    }
    ::close(fd);
    return reply;
}

dtcall::Result<std::uint64_t> RedisProcess::used_memory() const {
    auto reply = ask("INFO memory");
    if (!reply) return dtcall::Error{reply.error()};
    auto at = reply->find("\nused_memory:");
    if (at == std::string::npos)
        return dtcall::Error{"redis-server's INFO memory has no used_memory: \"" + reply->substr(0, 80) + "\""};
    return std::uint64_t(std::strtoull(reply->c_str() + at + 13, nullptr, 10));
}

}  // namespace dtbench
