#include "control_socket.hpp"

#include "format.hpp"
#include "request.hpp"
#include "response.hpp"

#include <dtcall/version.hpp>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace dtcalld::control {

using dtcall::LogLevel;

struct ControlSocket::Connection {
    ControlSocket* owner = nullptr;
    bufferevent* bev = nullptr;
    bool answered = false;
    bool eof = false;  // the client half-closed (shutdown(SHUT_WR))

    ~Connection() {
        if (bev != nullptr) bufferevent_free(bev);
    }

    static void on_read(bufferevent* bev, void* self);
    static void on_write(bufferevent* bev, void* self);
    static void on_event(bufferevent* bev, short what, void* self);
};

namespace {

std::string errno_text(const std::string& path, int error) { return path + ": " + std::strerror(error); }

bool fill_address(const std::string& path, sockaddr_un& address) {
    address = {};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path) return false;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return true;
}

// Whether a live process accepts connections on the socket file at `path`.
bool someone_listens(const sockaddr_un& address) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return live;
}

// A path free for our socket: nothing there, or a socket nobody answers on.
dtcall::Status clear_stale(const std::string& path, const sockaddr_un& address) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return dtcall::Done{};
        return dtcall::Error{dtcall::ErrorCode::permission, errno_text(path, errno)};
    }
    if (!S_ISSOCK(st.st_mode)) return dtcall::Error{dtcall::ErrorCode::other, path + ": exists and is not a socket"};
    if (someone_listens(address)) {
        return dtcall::Error{dtcall::ErrorCode::address_in_use, path + ": in use (is another dtcalld running?)"};
    }
    if (::unlink(path.c_str()) != 0) return dtcall::Error{dtcall::ErrorCode::permission, errno_text(path, errno)};
    return dtcall::Done{};
}

}  // namespace

ControlSocket::ControlSocket(dtcall::Server& server, const dtcall::UsersFile* users_file, LogFile& log,
                             Lifecycle& lifecycle,
                             std::chrono::system_clock::time_point started)
    : server_(server), users_file_(users_file), log_(log), lifecycle_(lifecycle), started_(started) {}

ControlSocket::~ControlSocket() {
    connections_.clear();
    if (resume_ != nullptr) event_free(resume_);
    if (drain_start_ != nullptr) event_free(drain_start_);
    if (listener_ != nullptr) {
        evconnlistener_free(listener_);
        ::unlink(path_.c_str());
    }
}

dtcall::Status ControlSocket::open(const std::string& path, const std::string& group) {
    sockaddr_un address{};
    if (!fill_address(path, address)) {
        return dtcall::Error{dtcall::ErrorCode::bad_config,
                             "control: \"" + path + "\" is not a usable socket path (1-107 bytes)"};
    }
    gid_t gid = 0;
    if (!group.empty()) {
        struct group* found = ::getgrnam(group.c_str());
        if (found == nullptr) return dtcall::Error{dtcall::ErrorCode::bad_config, "control_group: no group \"" + group + "\""};
        gid = found->gr_gid;
    }
    if (auto cleared = clear_stale(path, address); !cleared) return dtcall::Error{cleared.code(), "control: " + cleared.error()};

    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return dtcall::Error{"control: socket: " + std::string(std::strerror(errno))};
    // Born 0600: nobody else can connect in the moment before chmod/chown.
    mode_t old_mask = ::umask(0177);
    int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    int bind_error = errno;
    ::umask(old_mask);
    if (bound != 0) {
        ::close(fd);
        auto code = bind_error == EACCES || bind_error == EPERM ? dtcall::ErrorCode::permission : dtcall::ErrorCode::io;
        std::string why = "control: " + errno_text(path, bind_error);
        if (bind_error == ENOENT) {
            std::string::size_type slash = path.rfind('/');
            std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
            why += "; the directory " + dir +
                   " must exist (dtcalld does not create it; under systemd, RuntimeDirectory=dtcalld makes /run/dtcalld)";
        }
        return dtcall::Error{code, why};
    }
    if (!group.empty() && (::chown(path.c_str(), uid_t(-1), gid) != 0 || ::chmod(path.c_str(), 0660) != 0)) {
        int error = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return dtcall::Error{dtcall::ErrorCode::permission, "control_group: " + errno_text(path, error)};
    }
    if (::listen(fd, 16) != 0) {
        int error = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return dtcall::Error{"control: listen: " + errno_text(path, error)};
    }
    listener_ = evconnlistener_new(server_.base(), &ControlSocket::on_accept, this,
                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (listener_ == nullptr) {
        ::close(fd);
        ::unlink(path.c_str());
        return dtcall::Error{"control: cannot listen on " + path};
    }
    path_ = path;
    evconnlistener_set_error_cb(listener_, &ControlSocket::on_accept_error);
    resume_ = evtimer_new(server_.base(), &ControlSocket::on_resume, this);
    drain_start_ = evtimer_new(server_.base(), &ControlSocket::on_drain_start, this);
    if (resume_ == nullptr || drain_start_ == nullptr) return dtcall::Error{"control: cannot create timers"};
    return dtcall::Done{};
}

void ControlSocket::on_accept(evconnlistener*, int fd, sockaddr*, int, void* self) {
    auto* me = static_cast<ControlSocket*>(self);
    if (me->connections_.size() >= max_connections) {
        // Best effort: the line fits any fresh socket buffer.
        std::string line = format_error("too many control connections");
        [[maybe_unused]] auto sent = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::close(fd);
        return;
    }
    auto connection = std::make_unique<Connection>();
    connection->owner = me;
    connection->bev = bufferevent_socket_new(me->server_.base(), fd, BEV_OPT_CLOSE_ON_FREE);
    if (connection->bev == nullptr) {
        ::close(fd);
        return;
    }
    timeval timeout{static_cast<time_t>(io_timeout.count()), 0};
    bufferevent_set_timeouts(connection->bev, &timeout, &timeout);
    // Reading stops at the limit; on_read then sees a full buffer without a newline.
    bufferevent_setwatermark(connection->bev, EV_READ, 0, max_request_size);
    bufferevent_setcb(connection->bev, &Connection::on_read, &Connection::on_write, &Connection::on_event,
                      connection.get());
    bufferevent_enable(connection->bev, EV_READ);
    me->connections_.push_back(std::move(connection));
}

void ControlSocket::on_accept_error(evconnlistener* listener, void* self) {
    auto* me = static_cast<ControlSocket*>(self);
    int error = EVUTIL_SOCKET_ERROR();
    me->log_.write(LogLevel::warning, "control: accept: " + std::string(std::strerror(error)) + "; pausing 1 s");
    evconnlistener_disable(listener);
    timeval second{1, 0};
    evtimer_add(me->resume_, &second);
}

void ControlSocket::on_resume(int, short, void* self) {
    auto* me = static_cast<ControlSocket*>(self);
    if (me->listener_ != nullptr) evconnlistener_enable(me->listener_);
}

// The drain a request asked for, one loop turn later: whether its client
// read the answer or hung up at once does not matter.
void ControlSocket::on_drain_start(int, short, void* self) {
    auto* me = static_cast<ControlSocket*>(self);
    if (!me->drain_limit_) return;
    std::chrono::seconds seconds = *me->drain_limit_;
    me->drain_limit_.reset();
    if (me->server_.draining()) return;
    std::string limit = std::to_string(seconds.count());
    // A drain ends in an exit: systemd and load balancers hear it now.
    me->lifecycle_.stopping("draining; calls left after " + limit + " s are ended");
    LogFile& log = me->log_;
    me->server_.drain(seconds, [&log] { log.write(LogLevel::info, "control: drained"); });
}

void ControlSocket::close(Connection* connection) {
    connections_.remove_if([connection](const std::unique_ptr<Connection>& c) { return c.get() == connection; });
}

void ControlSocket::Connection::on_read(bufferevent* bev, void* self) {
    auto* connection = static_cast<Connection*>(self);
    if (connection->answered) return;
    evbuffer* input = bufferevent_get_input(bev);
    size_t length = 0;
    char* line = evbuffer_readln(input, &length, EVBUFFER_EOL_LF);
    if (line == nullptr) {
        // `drain 0` with no newline, then the client's EOF.
        if (connection->eof && evbuffer_get_length(input) > 0) {
            connection->owner->answer(*connection, dtcall::Error{"request without a final newline"});
            return;
        }
        if (evbuffer_get_length(input) >= max_request_size) {
            connection->owner->answer(*connection, dtcall::Error{"request too long (at most 1 KiB, one line)"});
        }
        return;
    }
    std::string text(line, length);
    std::free(line);
    connection->owner->answer(*connection, parse_request(text));
}

void ControlSocket::Connection::on_write(bufferevent*, void* self) {
    auto* connection = static_cast<Connection*>(self);
    if (!connection->answered) return;
    connection->owner->close(connection);  // frees `connection`
}

void ControlSocket::Connection::on_event(bufferevent* bev, short what, void* self) {
    auto* connection = static_cast<Connection*>(self);
    // The client half-closed after a request without its newline: that
    // unfinished line gets an error line, not silence.
    if ((what & BEV_EVENT_EOF) != 0 && !connection->answered &&
        evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        connection->eof = true;
        on_read(bev, self);  // always answers now (and may free `connection`)
        return;
    }
    // EOF, an error, or a timeout (no request, or an answer nobody reads).
    connection->owner->close(connection);
}

// Parses and carries out one request; the answer goes out, then the
// connection closes (on_write).
void ControlSocket::answer(Connection& connection, const dtcall::Result<Request>& request) {
    connection.answered = true;
    bufferevent_disable(connection.bev, EV_READ);
    std::string out;
    if (!request) {
        out = format_error(request.error());
    } else {
        const Request& r = *request;
        auto now = std::chrono::system_clock::now();
        auto done = [&](const dtcall::Status& status, const std::string& message) {
            out = status ? format_ok(format_message(message, r.json)) : format_error(status.error());
        };
        switch (r.command) {
        case Command::status: {
            StatusView view;
            view.version = dtcall::version();
            view.uptime = std::chrono::duration_cast<std::chrono::seconds>(now - started_);
            view.draining = server_.draining();
            view.stats = server_.stats();
            out = format_ok(format_status(view, r.json));
            break;
        }
        case Command::users: out = format_ok(format_users(server_.online_users(), now, r.json)); break;
        case Command::calls: out = format_ok(format_calls(server_.calls(), now, r.json)); break;
        case Command::kick: {
            auto status = server_.kick(r.user);
            if (status) log_.write(LogLevel::info, "control: kicked " + r.user);
            done(status, "kicked " + r.user);
            break;
        }
        case Command::end: {
            auto status = server_.end_call(r.user);
            if (status) log_.write(LogLevel::info, "control: ended the call of " + r.user);
            done(status, "ended the call of " + r.user);
            break;
        }
        case Command::reload: {
            if (!users_file_) {
                done(dtcall::Done{}, "users_db: changes apply by themselves; nothing to reload");
                break;
            }
            log_.write(LogLevel::info, "control: reloading " + users_file_->path());
            lifecycle_.reloading();
            auto status = server_.reload_users();
            lifecycle_.reloaded();
            std::string count = std::to_string(users_file_->size()) + " users";
            if (status) log_.write(LogLevel::info, users_file_->path() + ": " + count);
            done(status, "reloaded " + users_file_->path() + ": " + count);
            break;
        }
        case Command::drain: {
            if (server_.draining()) {
                // A second drain can only shorten the time left.
                server_.drain(r.drain_limit);
                log_.write(LogLevel::info, "control: drain again, limit " + std::to_string(r.drain_limit.count()) +
                                               " s (the shorter limit applies)");
                done(dtcall::Done{}, "draining (the shorter of the limits applies)");
                break;
            }
            done(dtcall::Done{}, "draining");
            if (drain_limit_) break;
            std::string limit = std::to_string(r.drain_limit.count());
            log_.write(LogLevel::info, "control: draining; calls left after " + limit + " s are ended");
            // The drain (and STOPPING=1) starts on the next loop turn, from
            // a timer of ours, whatever the client does with its answer.
            drain_limit_ = r.drain_limit;
            timeval now{0, 0};
            event_add(drain_start_, &now);
            // The answer goes out now: a drain with no calls stops the loop
            // soon, maybe before the socket would be writable again.
            auto sent = ::send(bufferevent_getfd(connection.bev), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent > 0) out.erase(0, std::size_t(sent));
            if (out.empty() || (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                close(&connection);  // frees `connection`; nothing more to say
                return;
            }
            break;
        }
        case Command::log_reopen:
            log_.reopen();
            log_.write(LogLevel::info, "control: started a new log file");
            done(dtcall::Done{}, "started a new log file: " + log_.path());
            break;
        }
    }
    bufferevent_write(connection.bev, out.data(), out.size());
}

}  // namespace dtcalld::control
