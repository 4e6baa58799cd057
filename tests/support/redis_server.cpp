#include "redis_server.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace test_support {
namespace {

using Clock = std::chrono::steady_clock;

std::string tail_of(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    return s.size() > 600 ? s.substr(s.size() - 600) : s;
}

}  // namespace

RedisServer::RedisServer(std::string dir)
    : dir_(std::move(dir)), socket_(dir_ + "/redis.sock"), log_(dir_ + "/redis.log") {}

RedisServer::~RedisServer() { stop(); }

std::string RedisServer::start(std::chrono::milliseconds within) {
    if (running()) return "";
    const char* env = std::getenv("REDIS_SERVER");
    std::string binary = env != nullptr && *env != '\0' ? env : "redis-server";
    std::vector<std::string> args = {binary, "--port", "0", "--unixsocket", socket_, "--unixsocketperm", "700",
                                     "--save", "", "--appendonly", "no", "--dir", dir_, "--daemonize", "no",
                                     "--loglevel", "warning"};
    pid_t pid = ::fork();
    if (pid < 0) return std::string("fork: ") + std::strerror(errno);
    if (pid == 0) {
        int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
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
    pid_ = pid;
    auto deadline = Clock::now() + within;
    while (Clock::now() < deadline) {
        if (answers_ping()) return "";
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return "redis-server exited at start: " + tail_of(log_);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    stop();
    return "redis-server did not answer PING within " + std::to_string(within.count()) + " ms: " + tail_of(log_);
}

void RedisServer::stop() {
    if (!running()) return;
    ::kill(pid_, SIGTERM);
    auto deadline = Clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (Clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    ::unlink(socket_.c_str());
}

bool RedisServer::answers_ping() const {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_.c_str(), sizeof address.sun_path - 1);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::write(fd, "PING\r\n", 6) == 6) {
        pollfd p{fd, POLLIN, 0};
        char reply[16] = {};
        if (::poll(&p, 1, 1000) == 1 && ::read(fd, reply, sizeof reply - 1) >= 5) {
            ok = std::strncmp(reply, "+PONG", 5) == 0;
        }
    }
    ::close(fd);
    return ok;
}

}  // namespace test_support
