#include "http.hpp"

#include "render.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <list>

namespace dtcalld::metrics {

struct MetricsHttp::Impl {
    Impl(event_base* b, Render r, Limits l) : base(b), render(std::move(r)), limits(l) {}
    event_base* base;
    Render render;
    Limits limits;
    evhttp* http = nullptr;
    std::uint16_t port = 0;
    bool serving = true;

    // Every connection evhttp accepts, through evhttp_set_bevcb: we make its
    // bufferevent and hold a reference, so we see when evhttp lets go of it
    // (bufferevent_free clears its callbacks) and can end it at its
    // deadline (shutdown(): evhttp reads EOF and frees the connection).
    // evhttp_set_timeout alone restarts with every byte read.
    struct Tracked {
        bufferevent* bev;
        std::chrono::steady_clock::time_point deadline;
        bool excess;  // over max_connections: ended on the next sweep
        bool ended = false;
    };
    std::list<Tracked> tracked;
    std::size_t open_connections = 0;  // not excess, not yet released by evhttp
    event* sweep = nullptr;

    static bufferevent* make_bev(event_base* base, void* arg) {
        auto* me = static_cast<Impl*>(arg);
        bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev == nullptr) return nullptr;  // evhttp makes its own, untracked
        bufferevent_incref(bev);
        bool excess = me->open_connections >= me->limits.max_connections;
        if (!excess) ++me->open_connections;
        me->tracked.push_back(Tracked{bev, std::chrono::steady_clock::now() + me->limits.deadline, excess});
        // evhttp sets the descriptor after this returns: end an excess one
        // on the next loop turn.
        if (excess) event_active(me->sweep, EV_TIMEOUT, 0);
        return bev;
    }

    static void on_sweep(evutil_socket_t, short, void* arg) { static_cast<Impl*>(arg)->sweep_now(); }

    void sweep_now() {
        auto now = std::chrono::steady_clock::now();
        for (auto it = tracked.begin(); it != tracked.end();) {
            void* owner = nullptr;
            bufferevent_getcb(it->bev, nullptr, nullptr, nullptr, &owner);
            if (owner == nullptr) {
                // evhttp freed the connection: our reference is the last.
                if (!it->excess) --open_connections;
                bufferevent_decref(it->bev);
                it = tracked.erase(it);
                continue;
            }
            if (!it->ended && (it->excess || now >= it->deadline)) {
                it->ended = true;
                evutil_socket_t fd = bufferevent_getfd(it->bev);
                if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
            }
            ++it;
        }
    }

    void release_all() {
        for (Tracked& t : tracked) bufferevent_decref(t.bev);
        tracked.clear();
        open_connections = 0;
    }

    static void handle(evhttp_request* request, void* arg) { static_cast<Impl*>(arg)->answer(request); }

    void reply(evhttp_request* request, int code, const char* reason, const char* type, const std::string& body) {
        evkeyvalq* headers = evhttp_request_get_output_headers(request);
        evhttp_add_header(headers, "Content-Type", type);
        if (code == 405) evhttp_add_header(headers, "Allow", "GET, HEAD");
        evbuffer* out = evbuffer_new();
        if (out == nullptr) {
            evhttp_send_error(request, 500, nullptr);
            return;
        }
        // HEAD: the length of what GET would send, and no body (evhttp
        // would send the buffer anyway).
        if (evhttp_request_get_command(request) == EVHTTP_REQ_HEAD) {
            evhttp_add_header(headers, "Content-Length", std::to_string(body.size()).c_str());
        } else {
            evbuffer_add(out, body.data(), body.size());
        }
        evhttp_send_reply(request, code, reason, out);
        evbuffer_free(out);
    }

    void answer(evhttp_request* request) {
        const char* plain = "text/plain; charset=utf-8";
        const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
        const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
        std::string path = raw_path != nullptr ? raw_path : "";
        if (path != "/metrics" && path != "/healthz") {
            reply(request, 404, "Not Found", plain, "not found\n");
            return;
        }
        evhttp_cmd_type method = evhttp_request_get_command(request);
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
            reply(request, 405, "Method Not Allowed", plain, "method not allowed\n");
            return;
        }
        if (path == "/healthz") {
            if (serving) reply(request, 200, "OK", plain, "ok");
            else reply(request, 503, "Service Unavailable", plain, "stopping");
            return;
        }
        reply(request, 200, "OK", content_type, render());
    }
};

MetricsHttp::MetricsHttp(event_base* base, Render render, Limits limits)
    : impl_(std::make_unique<Impl>(base, std::move(render), limits)) {}

MetricsHttp::~MetricsHttp() {
    if (impl_->http != nullptr) evhttp_free(impl_->http);  // frees its connections
    impl_->release_all();
    if (impl_->sweep != nullptr) event_free(impl_->sweep);
}

std::size_t MetricsHttp::connections() const { return impl_->open_connections; }

std::uint16_t MetricsHttp::port() const { return impl_->port; }
void MetricsHttp::stopping() { impl_->serving = false; }

dtcall::Status MetricsHttp::listen(const Endpoint& endpoint) {
    const std::string where = "metrics: cannot listen on " + endpoint.text() + ": ";
    if (impl_->http != nullptr) return dtcall::Error{dtcall::ErrorCode::invalid_state, where + "already listening"};

    sockaddr_storage address{};
    socklen_t length = 0;
    if (endpoint.ipv6()) {
        auto* a6 = reinterpret_cast<sockaddr_in6*>(&address);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(endpoint.port);
        if (::inet_pton(AF_INET6, endpoint.host.c_str(), &a6->sin6_addr) != 1) {
            return dtcall::Error{dtcall::ErrorCode::bad_address, where + "not an IPv6 address"};
        }
        length = sizeof *a6;
    } else {
        auto* a4 = reinterpret_cast<sockaddr_in*>(&address);
        a4->sin_family = AF_INET;
        a4->sin_port = htons(endpoint.port);
        if (::inet_pton(AF_INET, endpoint.host.c_str(), &a4->sin_addr) != 1) {
            return dtcall::Error{dtcall::ErrorCode::bad_address, where + "not an IPv4 address"};
        }
        length = sizeof *a4;
    }

    int fd = ::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return dtcall::Error{where + std::strerror(errno)};
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (endpoint.ipv6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(fd, 64) != 0) {
        int error = errno;
        ::close(fd);
        auto code = error == EADDRINUSE ? dtcall::ErrorCode::address_in_use
                    : error == EACCES   ? dtcall::ErrorCode::permission
                                        : dtcall::ErrorCode::bad_address;
        return dtcall::Error{code, where + std::strerror(error)};
    }
    socklen_t bound_length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &bound_length) == 0) {
        impl_->port = ntohs(address.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&address)->sin6_port
                                                          : reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    }

    evhttp* http = evhttp_new(impl_->base);
    if (http == nullptr) {
        ::close(fd);
        return dtcall::Error{where + "evhttp_new failed"};
    }
    evhttp_set_max_body_size(http, ev_ssize_t(impl_->limits.max_body_bytes));
    evhttp_set_max_headers_size(http, ev_ssize_t(impl_->limits.max_header_bytes));
    evhttp_set_timeout(http, int(impl_->limits.timeout.count()));
    // Every method reaches answer(), which says 405 itself (evhttp's own
    // refusal would be 501).
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                         EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(http, &Impl::handle, impl_.get());
    impl_->sweep = event_new(impl_->base, -1, EV_PERSIST, &Impl::on_sweep, impl_.get());
    if (impl_->sweep == nullptr) {
        ::close(fd);
        evhttp_free(http);
        return dtcall::Error{where + "cannot create a timer"};
    }
    timeval quarter{0, 250000};
    event_add(impl_->sweep, &quarter);
    evhttp_set_bevcb(http, &Impl::make_bev, impl_.get());
    if (evhttp_accept_socket_with_handle(http, fd) == nullptr) {
        ::close(fd);
        evhttp_free(http);
        return dtcall::Error{where + "evhttp cannot accept on the socket"};
    }
    impl_->http = http;
    return dtcall::Done{};
}

}  // namespace dtcalld::metrics
