// The metrics endpoint: libevent's evhttp on the server's event_base,
// answering exactly two paths:
//   GET /metrics  the Prometheus text format, from the render function
//   GET /healthz  "ok" (200) while serving, "stopping" (503) after stopping()
// Any other path is 404; another method than GET or HEAD is 405. A request
// body over Limits::max_body_bytes, headers over max_header_bytes, or a
// client silent for Limits::timeout is cut off by evhttp itself. Beyond
// that, at most Limits::max_connections are open at once (more are closed at
// once) and each has Limits::deadline from its accept to finish (a client
// dribbling a byte a second is cut off), both checked every 250 ms.
// Everything runs on the event loop: a scrape costs one render() call.
#pragma once

#include "endpoint.hpp"

#include <dtcall/result.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

struct event_base;

namespace dtcalld::metrics {

class MetricsHttp {
public:
    struct Limits {
        std::size_t max_body_bytes = 1024;
        std::size_t max_header_bytes = 8192;
        std::chrono::seconds timeout{5};
        std::size_t max_connections = 16;
        std::chrono::milliseconds deadline{10000};
    };
    using Render = std::function<std::string()>;

    MetricsHttp(event_base* base, Render render, Limits limits);
    MetricsHttp(event_base* base, Render render) : MetricsHttp(base, std::move(render), Limits{}) {}
    ~MetricsHttp();
    MetricsHttp(const MetricsHttp&) = delete;
    MetricsHttp& operator=(const MetricsHttp&) = delete;

    // Binds and listens. The error names the address ("metrics: cannot
    // listen on 127.0.0.1:9641: Address already in use").
    dtcall::Status listen(const Endpoint& endpoint);
    std::uint16_t port() const;  // the bound port (useful with port 0)
    // /healthz answers 503 from now on; /metrics goes on answering.
    void stopping();
    // Connections open now, within max_connections (for tests).
    std::size_t connections() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace dtcalld::metrics
