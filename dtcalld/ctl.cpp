// dtcall-ctl: asks a running dtcalld through its control socket. One request
// per connection; the answer's body goes to stdout. Exit 0 on "ok", 1 with one
// line on stderr otherwise (a wrong command line included). See dtcall-ctl(8).
#include "control/request.hpp"
#include "control/response.hpp"

#include <dtcall/version.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

using namespace dtcalld::control;

// Big enough for every user of a busy server in a table; a bound all the same.
constexpr std::size_t max_answer = 256u << 20;
constexpr int timeout_seconds = 10;

int fail(const std::string& message) {
    std::fprintf(stderr, "dtcall-ctl: %s\n", message.c_str());
    return 1;
}

std::string connect_error(const std::string& path, int error) {
    switch (error) {
    case ENOENT: return path + ": no such socket (is dtcalld running with control = " + path + "?)";
    case ECONNREFUSED: return path + ": connection refused (dtcalld is not running, or not a socket)";
    case EACCES:
    case EPERM: return path + ": permission denied";
    default: return path + ": " + std::strerror(error);
    }
}

int run(const CtlOptions& options) {
    const std::string& path = options.control_path;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof address.sun_path) return fail(path + ": path too long for a socket");
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
    timeval timeout{timeout_seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        int error = errno;
        ::close(fd);
        return fail(connect_error(path, error));
    }
    std::string request = format_request(options.request);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != ssize_t(request.size())) {
        int error = errno;
        ::close(fd);
        return fail(path + ": cannot send the request: " + std::strerror(error));
    }
    std::string answer;
    char buffer[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            int error = errno;
            ::close(fd);
            return fail(path + ": " + (error == EAGAIN || error == EWOULDBLOCK ? "no answer within 10 s"
                                                                                 : std::strerror(error)));
        }
        answer.append(buffer, std::size_t(n));
        if (answer.size() > max_answer) {
            ::close(fd);
            return fail(path + ": answer too large");
        }
    }
    ::close(fd);
    Response response;
    if (!parse_response(answer, response)) return fail(path + ": no answer (the connection closed)");
    if (!response.ok) return fail(response.message);
    std::fwrite(response.body.data(), 1, response.body.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGPIPE, SIG_IGN);
    auto options = parse_ctl_arguments(std::vector<std::string>(argv + 1, argv + argc));
    if (!options) {
        std::fprintf(stderr, "dtcall-ctl: %s\n", options.error().c_str());
        return 1;
    }
    switch (options->action) {
    case CtlOptions::Action::help: std::cout << ctl_usage_text(); return 0;
    case CtlOptions::Action::version: std::cout << "dtcall-ctl " << dtcall::version() << '\n'; return 0;
    case CtlOptions::Action::run: return run(*options);
    }
    return 1;
}
