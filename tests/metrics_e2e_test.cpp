// The metrics endpoint on a real Server, scraped over HTTP while things
// happen: a login, a failed login, a call with media, its end. The harness
// runs the server's loop in this thread; each scrape is a blocking HTTP
// client in a helper thread while this one pumps the loop.
#include "harness.hpp"

#include "metrics/collect.hpp"
#include "metrics/http.hpp"
#include "metrics/observer.hpp"
#include "metrics/render.hpp"

#include <doctest/doctest.h>

#include "http_get.hpp"
#include "promtool.hpp"

#include <atomic>
#include <thread>

using namespace test_support;
using dtcall::Bytes;
namespace m = dtcalld::metrics;

namespace {

// A Server with the daemon's metrics wiring: the observer added before
// start() (TestServer starts it in its constructor, so counts begin at
// zero anyway here) and evhttp on the server's base.
struct MetricsServer {
    TestServer s;
    m::MetricsObserver observer;
    m::MetricsHttp http;

    MetricsServer()
        : http(s.base, [this] { return m::render_metrics(m::collect(*s.server, observer)); }) {
        s.server->add_observer(&observer);
        auto bound = http.listen(*m::parse_endpoint("127.0.0.1:0"));
        REQUIRE_MESSAGE(bound.ok(), bound.error());
    }

    HttpAnswer get(const std::string& path, const std::string& method = "GET") {
        HttpAnswer answer;
        std::atomic<bool> done{false};
        std::thread client([&] {
            answer = http_get(http.port(), path, method);
            done = true;
        });
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!done && std::chrono::steady_clock::now() < deadline) s.pump(5ms);
        client.join();
        return answer;
    }
    std::string metrics() {
        HttpAnswer answer = get("/metrics");
        CHECK(answer.status == 200);
        return answer.body;
    }
};

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("scraped during a call: gauges, logins, media, then the end reason and setup time") {
    MetricsServer ms;
    std::string fresh = ms.metrics();
    CHECK(has_line(fresh, "dtcall_connections 0"));
    CHECK(has_line(fresh, "dtcall_logins_total{result=\"ok\"} 0"));
    CHECK(has_line(fresh, "dtcall_login_failures_total{reason=\"unknown_user\"} 0"));
    check_with_promtool(fresh);
    auto health = ms.get("/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == "ok");
    CHECK(ms.get("/favicon.ico").status == 404);
    CHECK(ms.get("/metrics", "PUT").status == 405);

    // A failed login: a name not in the directory.
    {
        RawPeer mallory(ms.s);
        CHECK(mallory.login("mallory").empty());
    }
    std::string after_failure = ms.metrics();
    CHECK_MESSAGE(has_line(after_failure, "dtcall_logins_total{result=\"failed\"} 1"), after_failure);
    CHECK(has_line(after_failure, "dtcall_login_failures_total{reason=\"unknown_user\"} 1"));

    // A call with media: alice calls bob, both register, alice sends 3 datagrams.
    CallPair call(ms.s);
    REQUIRE(call.established);
    for (int i = 0; i < 3; ++i) {
        call.alice_media.send(Bytes(100, std::uint8_t(i)));
        REQUIRE(call.bob_media.receive() == Bytes(100, std::uint8_t(i)));
    }
    std::string during = ms.metrics();
    CHECK_MESSAGE(has_line(during, "dtcall_connections 2"), during);
    CHECK(has_line(during, "dtcall_users_online 2"));
    CHECK(has_line(during, "dtcall_calls{phase=\"in_call\"} 1"));
    CHECK(has_line(during, "dtcall_calls{phase=\"ringing\"} 0"));
    CHECK(has_line(during, "dtcall_logins_total{result=\"ok\"} 2"));
    CHECK(has_line(during, "dtcall_media_packets_relayed_total 3"));
    CHECK(has_line(during, "dtcall_media_bytes_relayed_total 300"));
    CHECK(has_line(during, "dtcall_media_registered_users 2"));
    CHECK(has_line(during, "dtcall_calls_total{end_reason=\"hangup\"} 0"));
    CHECK(has_line(during, "dtcall_call_setup_seconds_count 0"));
    check_with_promtool(during);

    // alice hangs up: the call counts as hangup, with one setup time.
    call.alice.command("end|bob|" + call.alice.sk);
    REQUIRE(call.bob.next_body() == "end|alice");
    std::string after = ms.metrics();
    CHECK_MESSAGE(has_line(after, "dtcall_calls_total{end_reason=\"hangup\"} 1"), after);
    CHECK(has_line(after, "dtcall_calls{phase=\"in_call\"} 0"));
    CHECK(has_line(after, "dtcall_call_setup_seconds_count 1"));
    CHECK(has_line(after, "dtcall_call_setup_seconds_bucket{le=\"+Inf\"} 1"));
    CHECK(has_line(after, "dtcall_call_setup_seconds_bucket{le=\"120\"} 1"));
    check_with_promtool(after);
}
