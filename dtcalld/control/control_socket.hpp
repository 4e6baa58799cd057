// dtcalld's control socket (conf key `control`): a Unix stream socket on the
// Server's event loop that answers one request per connection, as
// dtcall-ctl(8) describes. Who may connect is decided by the file's mode:
// 0600 (the daemon's user), or 0660 with `control_group`.
//
// Limits: at most max_connections at once (more get an error line and are
// closed); a request must arrive within io_timeout and fit in
// max_request_size; a client that does not take its answer for io_timeout
// is cut off. A drain starts on the loop turn after its request, once its
// answer has been handed to the socket, whether or not the client reads it.
#pragma once

#include "request.hpp"
#include "lifecycle.hpp"
#include "log_file.hpp"

#include <dtcall/result.hpp>
#include <dtcall/server.hpp>
#include <dtcall/user_directory.hpp>

#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>

struct evconnlistener;
struct sockaddr;
struct event;

namespace dtcalld::control {

constexpr std::size_t max_connections = 4;
constexpr std::chrono::seconds io_timeout{5};

class ControlSocket {
public:
    // All must outlive this object; `started` is the daemon's start (uptime).
    // `users_file` is null when the users come from users_db (which needs no
    // reload: its changes apply by themselves).
    // `lifecycle` hears of reloads and of a drain (systemd, /healthz).
    ControlSocket(dtcall::Server& server, const dtcall::UsersFile* users_file, LogFile& log, Lifecycle& lifecycle,
                  std::chrono::system_clock::time_point started);
    // Closes every control connection, the listener, and removes the file.
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

    // Creates the socket file at `path` (a stale one, left by a dtcalld that
    // died, is replaced; one a live process answers on is an error), with
    // mode 0600, or 0660 and group `group` when that is not empty.
    dtcall::Status open(const std::string& path, const std::string& group);

    struct Connection;

private:
    static void on_accept(evconnlistener* listener, int fd, sockaddr* address, int length, void* self);
    static void on_accept_error(evconnlistener* listener, void* self);
    static void on_resume(int fd, short what, void* self);
    static void on_drain_start(int fd, short what, void* self);
    void close(Connection* connection);
    void answer(Connection& connection, const dtcall::Result<Request>& request);

    dtcall::Server& server_;
    const dtcall::UsersFile* users_file_;
    LogFile& log_;
    Lifecycle& lifecycle_;
    std::chrono::system_clock::time_point started_;
    std::string path_;
    evconnlistener* listener_ = nullptr;
    event* resume_ = nullptr;  // re-enables accepting after an accept error (EMFILE)
    event* drain_start_ = nullptr;                   // starts a requested drain, next loop turn
    std::optional<std::chrono::seconds> drain_limit_;  // the drain asked for, not yet started
    std::list<std::unique_ptr<Connection>> connections_;
};

}  // namespace dtcalld::control
