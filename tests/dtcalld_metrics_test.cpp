// dtcalld's metrics endpoint: the text format line by line, promtool's
// verdict on it, the observer's counting, /proc parsing, the address syntax,
// and evhttp answering on a real loopback socket (paths, methods, limits).
#include "metrics/collect.hpp"
#include "metrics/endpoint.hpp"
#include "metrics/http.hpp"
#include "metrics/observer.hpp"
#include "metrics/process_figures.hpp"
#include "metrics/render.hpp"

#include <doctest/doctest.h>

#include "http_get.hpp"
#include "promtool.hpp"

#include <event2/event.h>

#include <atomic>
#include <chrono>
#include <sstream>
#include <thread>

#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <vector>

using namespace dtcalld::metrics;
using namespace std::chrono_literals;

namespace {

bool has_line(const std::string& text, const std::string& line) {
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

MetricsSnapshot sample_snapshot() {
    MetricsSnapshot s;
    s.version = "0.1.0";
    s.server.connections = 7;
    s.server.logged_in = 5;
    s.server.calls_ringing = 1;
    s.server.calls_accepted = 2;
    s.server.calls_in_progress = 3;
    s.server.media_registered = 6;
    s.server.logins = 40;
    s.server.login_failures = 4;
    s.server.commands_replayed = 2;
    s.server.media_packets_relayed = 1000;
    s.server.media_packets_relayed_by_threads = 10;
    s.server.media_bytes_relayed = 160000;
    s.server.media_rate_limited = 1;
    s.server.media_too_large = 2;
    s.server.media_unroutable = 3;
    s.server.registrations_refused = 4;
    s.server.registrations_replayed = 5;
    s.server.media_packets_dropped = 15;
    s.server.registrations_acked = 9;
    s.server.limit_hits[std::size_t(dtcall::Limit::failed_logins)] = 3;
    s.server.limit_hits[std::size_t(dtcall::Limit::unregistered_datagrams)] = 8;
    s.observed.login_failed[0] = 3;  // unknown_user
    s.observed.login_failed[1] = 1;  // bad_response
    s.observed.calls_ended[0] = 11;  // hangup
    s.observed.calls_ended[4] = 2;   // peer_vanished
    observe_setup(s.observed.setup, 300ms);
    observe_setup(s.observed.setup, 4000ms);
    observe_setup(s.observed.setup, 500s);
    s.process.cpu_seconds = 1.25;
    s.process.resident_bytes = 12345678;
    s.process.virtual_bytes = 98765432;
    s.process.open_fds = 12;
    s.process.max_fds = 65536;
    s.process.start_time_seconds = 1732450000.5;
    return s;
}

}  // namespace

TEST_CASE("render_metrics: exact lines of every family") {
    std::string text = render_metrics(sample_snapshot());
    const char* lines[] = {
        "# HELP dtcall_build_info Always 1; the version of dtcalld in a label.",
        "# TYPE dtcall_build_info gauge",
        "dtcall_build_info{version=\"0.1.0\"} 1",
        "# TYPE dtcall_connections gauge",
        "dtcall_connections 7",
        "dtcall_users_online 5",
        "# TYPE dtcall_calls gauge",
        "dtcall_calls{phase=\"ringing\"} 1",
        "dtcall_calls{phase=\"accepted\"} 2",
        "dtcall_calls{phase=\"in_call\"} 3",
        "dtcall_media_registered_users 6",
        "# TYPE dtcall_logins_total counter",
        "dtcall_logins_total{result=\"ok\"} 40",
        "dtcall_logins_total{result=\"failed\"} 4",
        "dtcall_login_failures_total{reason=\"unknown_user\"} 3",
        "dtcall_login_failures_total{reason=\"bad_response\"} 1",
        "dtcall_login_failures_total{reason=\"rate_limited\"} 0",
        "dtcall_login_failures_total{reason=\"unusable_key\"} 0",
        "dtcall_login_failures_total{reason=\"directory_error\"} 0",
        "dtcall_login_failures_total{reason=\"refused\"} 0",
        "dtcall_calls_total{end_reason=\"hangup\"} 11",
        "dtcall_calls_total{end_reason=\"peer_vanished\"} 2",
        "dtcall_calls_total{end_reason=\"server_stopping\"} 0",
        "dtcall_calls_total{end_reason=\"ended_by_server\"} 0",
        "# TYPE dtcall_call_setup_seconds histogram",
        "dtcall_call_setup_seconds_bucket{le=\"0.25\"} 0",
        "dtcall_call_setup_seconds_bucket{le=\"0.5\"} 1",
        "dtcall_call_setup_seconds_bucket{le=\"2.5\"} 1",
        "dtcall_call_setup_seconds_bucket{le=\"5\"} 2",
        "dtcall_call_setup_seconds_bucket{le=\"120\"} 2",
        "dtcall_call_setup_seconds_bucket{le=\"+Inf\"} 3",
        "dtcall_call_setup_seconds_sum 504.3",
        "dtcall_call_setup_seconds_count 3",
        "dtcall_commands_replayed_total 2",
        "dtcall_media_packets_relayed_total 1000",
        "dtcall_media_bytes_relayed_total 160000",
        "dtcall_media_packets_relayed_by_threads_total 10",
        "dtcall_media_packets_dropped_total{reason=\"rate_limited\"} 1",
        "dtcall_media_packets_dropped_total{reason=\"too_large\"} 2",
        "dtcall_media_packets_dropped_total{reason=\"unroutable\"} 3",
        "dtcall_media_packets_dropped_total{reason=\"registration_refused\"} 4",
        "dtcall_media_packets_dropped_total{reason=\"registration_replayed\"} 5",
        "dtcall_media_registrations_acked_total 9",
        "dtcall_limit_hits_total{limit=\"connections\"} 0",
        "dtcall_limit_hits_total{limit=\"unauthenticated_per_source\"} 0",
        "dtcall_limit_hits_total{limit=\"failed_logins\"} 3",
        "dtcall_limit_hits_total{limit=\"unregistered_datagrams\"} 8",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 1.25",
        "process_resident_memory_bytes 12345678",
        "process_virtual_memory_bytes 98765432",
        "process_open_fds 12",
        "process_max_fds 65536",
        "process_start_time_seconds 1732450000.5",
    };
    for (const char* line : lines) CHECK_MESSAGE(has_line(text, line), line << "\n---\n" << text);
    // One HELP and one TYPE per family, and the text ends with a newline.
    CHECK(count_of(text, "# HELP ") == count_of(text, "# TYPE "));
    CHECK(text.back() == '\n');
}

TEST_CASE("render_metrics: a single node has no dtcall_cluster_* family; a cluster node has all, exact lines") {
    MetricsSnapshot s = sample_snapshot();
    CHECK(render_metrics(s).find("dtcall_cluster_") == std::string::npos);

    s.server.node_packets_sent = 500;
    s.server.node_packets_received = 400;
    s.server.node_packets_forged = 3;
    s.server.node_packets_dropped = 7;
    dtcall::cluster::ClusterStats c;
    c.commands_connected = true;
    c.subscriber_connected = true;
    c.round_trips.observe(80us);
    c.round_trips.observe(300us);
    c.round_trips.observe(2ms);
    c.round_trips.observe(3s);
    c.commands_sent = 42;
    c.remote_users = 12;
    c.nodes = 2;
    c.control.accepted = 30;
    c.control.malformed = 1;
    c.control.forged = 2;
    c.control.replayed = 3;
    c.control.stale = 4;
    c.control.too_many = 5;
    s.cluster = c;
    std::string text = render_metrics(s);
    const char* lines[] = {
        "# TYPE dtcall_cluster_redis_connected gauge",
        "dtcall_cluster_redis_connected 1",
        "# HELP dtcall_cluster_redis_round_trip_seconds Time from sending a Redis command to its reply.",
        "# TYPE dtcall_cluster_redis_round_trip_seconds histogram",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.0001\"} 1",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.00025\"} 1",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.0005\"} 2",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.001\"} 2",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"0.0025\"} 3",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"1\"} 3",
        "dtcall_cluster_redis_round_trip_seconds_bucket{le=\"+Inf\"} 4",
        "dtcall_cluster_redis_round_trip_seconds_count 4",
        "# TYPE dtcall_cluster_redis_commands_total counter",
        "dtcall_cluster_redis_commands_total 42",
        "dtcall_cluster_nodes 2",
        "dtcall_cluster_remote_users 12",
        "dtcall_cluster_control_messages_total 30",
        "dtcall_cluster_node_packets_total{direction=\"sent\"} 500",
        "dtcall_cluster_node_packets_total{direction=\"received\"} 400",
        "dtcall_cluster_forged_total{leg=\"media\"} 3",
        "dtcall_cluster_forged_total{leg=\"control\"} 2",
        "dtcall_cluster_dropped_total{leg=\"media\",reason=\"other\"} 7",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"malformed\"} 1",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"replayed\"} 3",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"stale\"} 4",
        "dtcall_cluster_dropped_total{leg=\"control\",reason=\"too_many\"} 5",
    };
    for (const char* line : lines) CHECK_MESSAGE(has_line(text, line), line << "\n---\n" << text);
    // 3.00238 give or take the last binary digit.
    CHECK(text.find("\ndtcall_cluster_redis_round_trip_seconds_sum 3.0023") != std::string::npos);
    CHECK(count_of(text, "# HELP ") == count_of(text, "# TYPE "));
    test_support::check_with_promtool(text);

    c.subscriber_connected = false;  // one link down is enough to be cut off
    s.cluster = c;
    CHECK(has_line(render_metrics(s), "dtcall_cluster_redis_connected 0"));
}

TEST_CASE("render_metrics: a fresh server has every labelled series at 0, and passes promtool") {
    MetricsSnapshot fresh;
    fresh.version = "0.1.0";
    std::string text = render_metrics(fresh);
    CHECK(count_of(text, "dtcall_login_failures_total{") == 6);
    CHECK(count_of(text, "dtcall_calls_total{") == 9);
    CHECK(count_of(text, "dtcall_limit_hits_total{") == 6);
    CHECK(count_of(text, "dtcall_media_packets_dropped_total{") == 5);
    CHECK(has_line(text, "dtcall_call_setup_seconds_sum 0"));
    // No /proc figures: the process_* families are left out, not zero.
    CHECK(text.find("process_") == std::string::npos);
    test_support::check_with_promtool(text);
}

TEST_CASE("render_metrics: promtool accepts a busy snapshot and this process's real figures") {
    test_support::check_with_promtool(render_metrics(sample_snapshot()));
    MetricsSnapshot live = sample_snapshot();
    live.process = read_process_figures();
    live.version = "0.1.0-dev \"odd\"\\";  // escaped, still valid
    test_support::check_with_promtool(render_metrics(live));
}

TEST_CASE("format_value: integers plainly, fractions shortest") {
    CHECK(format_value(0) == "0");
    CHECK(format_value(120) == "120");
    CHECK(format_value(0.25) == "0.25");
    CHECK(format_value(2.5) == "2.5");
    CHECK(format_value(1732450000.5) == "1732450000.5");
    CHECK(format_value(0.0001) == "0.0001");  // not 1e-04: a bucket's le label
    CHECK(format_value(0.00025) == "0.00025");
    CHECK(format_value(1e30) == "1e+30");
    CHECK(format_value(-0.5) == "-0.5");
}

TEST_CASE("MetricsObserver counts end reasons, login failures and setup of started calls only") {
    MetricsObserver observer;
    observer.login_failed("mallory", "127.0.1.1:5", dtcall::LoginFailure::unknown_user);
    observer.login_failed("mallory", "127.0.1.1:5", dtcall::LoginFailure::unknown_user);
    observer.login_failed("alice", "127.0.1.2:5", dtcall::LoginFailure::refused);

    dtcall::CallReport rung;  // declined while ringing: no setup time
    rung.reason = dtcall::EndReason::declined;
    observer.call_ended(rung);

    dtcall::CallReport talked;
    talked.reason = dtcall::EndReason::hangup;
    talked.call.started_at = std::chrono::system_clock::now();
    talked.setup_time = 1500ms;
    observer.call_ended(talked);

    const ObservedCounts& c = observer.counts();
    CHECK(c.login_failed[0] == 2);  // unknown_user
    CHECK(c.login_failed[5] == 1);  // refused
    CHECK(c.calls_ended[0] == 1);   // hangup
    CHECK(c.calls_ended[1] == 1);   // declined
    CHECK(c.setup.count == 1);
    CHECK(c.setup.sum_seconds == doctest::Approx(1.5));
    CHECK(c.setup.buckets[3] == 1);  // le 2.5

    MetricsSnapshot s;
    s.observed = c;
    std::string text = render_metrics(s);
    CHECK(has_line(text, "dtcall_login_failures_total{reason=\"unknown_user\"} 2"));
    CHECK(has_line(text, "dtcall_calls_total{end_reason=\"declined\"} 1"));
    CHECK(has_line(text, "dtcall_call_setup_seconds_bucket{le=\"1\"} 0"));
    CHECK(has_line(text, "dtcall_call_setup_seconds_bucket{le=\"2.5\"} 1"));
}

TEST_CASE("/proc/self/stat parsing: a name with blanks and parentheses, and garbage") {
    // proc(5): utime (14) = 250, stime (15) = 150, starttime (22) = 1000,
    // vsize (23) = 4096000, rss (24) = 300 pages.
    std::string stat = "4242 (dt calld) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 3 0 1000 "
                       "4096000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    ProcessFigures p;
    parse_proc_stat(stat, 100, 4096, 1700000000.0, p);
    REQUIRE(p.cpu_seconds);
    CHECK(*p.cpu_seconds == doctest::Approx(4.0));
    REQUIRE(p.start_time_seconds);
    CHECK(*p.start_time_seconds == doctest::Approx(1700000010.0));
    CHECK(p.virtual_bytes == std::optional<std::uint64_t>(4096000));
    CHECK(p.resident_bytes == std::optional<std::uint64_t>(300 * 4096));

    ProcessFigures none;
    parse_proc_stat("", 100, 4096, 1.0, none);
    parse_proc_stat("12 (x) S 1 2", 100, 4096, std::nullopt, none);
    CHECK_FALSE(none.cpu_seconds);
    CHECK_FALSE(none.resident_bytes);
    CHECK_FALSE(none.start_time_seconds);

    ProcessFigures no_boot;
    parse_proc_stat(stat, 100, 4096, std::nullopt, no_boot);
    CHECK(no_boot.cpu_seconds);
    CHECK_FALSE(no_boot.start_time_seconds);  // omitted, not wrong

}

TEST_CASE("the boot time from CLOCK_REALTIME - CLOCK_BOOTTIME, no /proc/stat; the start time stays put") {
    timespec realtime{1700000500, 250000000}, boottime{500, 0};
    CHECK(dtcalld::metrics::boot_time_from_clocks(realtime, boottime) == doctest::Approx(1700000000.25));
    timespec later_real{1700000600, 750000000}, later_boot{600, 500000000};
    CHECK(dtcalld::metrics::boot_time_from_clocks(later_real, later_boot) == doctest::Approx(1700000000.25));
    auto first = dtcalld::metrics::process_start_time();
    REQUIRE(first);
    CHECK(dtcalld::metrics::process_start_time() == first);
}

TEST_CASE("the open-fds count is reused for open_fds_cache_time, then listed again") {
    auto t0 = std::chrono::steady_clock::now() + 1h;  // after any earlier count
    auto before = dtcalld::metrics::cached_open_fds(t0);
    REQUIRE(before);
    int extra = ::dup(0);
    REQUIRE(extra >= 0);
    CHECK(dtcalld::metrics::cached_open_fds(t0 + 1s) == before);
    CHECK(dtcalld::metrics::cached_open_fds(t0 + dtcalld::metrics::open_fds_cache_time) == *before + 1);
    ::close(extra);
}

TEST_CASE("read_process_figures of this process") {
    ProcessFigures p = read_process_figures();
    CHECK(p.cpu_seconds);
    REQUIRE(p.resident_bytes);
    CHECK(*p.resident_bytes > 100000);
    REQUIRE(p.open_fds);
    CHECK(*p.open_fds >= 3);
    CHECK(p.max_fds);
    REQUIRE(p.start_time_seconds);
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    CHECK(*p.start_time_seconds <= now + 1);
    CHECK(*p.start_time_seconds > now - 3600);
}

TEST_CASE("parse_endpoint: IPv4:port, [IPv6]:port, port 0; mistakes explained") {
    auto v4 = parse_endpoint("127.0.0.1:9641");
    REQUIRE(v4.ok());
    CHECK(v4->host == "127.0.0.1");
    CHECK(v4->port == 9641);
    CHECK(v4->text() == "127.0.0.1:9641");
    auto v6 = parse_endpoint("[::1]:9641");
    REQUIRE(v6.ok());
    CHECK(v6->host == "::1");
    CHECK(v6->text() == "[::1]:9641");
    CHECK(v6->with_port(80) == "[::1]:80");
    CHECK(parse_endpoint("0.0.0.0:0")->port == 0);

    CHECK_FALSE(parse_endpoint("127.0.0.1").ok());
    CHECK_FALSE(parse_endpoint(":9641").ok());
    CHECK_FALSE(parse_endpoint("localhost:9641").ok());
    CHECK_FALSE(parse_endpoint("127.0.0.1:65536").ok());
    CHECK_FALSE(parse_endpoint("127.0.0.1:").ok());
    CHECK_FALSE(parse_endpoint("127.0.0.1:96x").ok());
    CHECK_FALSE(parse_endpoint("[127.0.0.1]:9641").ok());
    auto bare6 = parse_endpoint("::1:9641");
    REQUIRE_FALSE(bare6.ok());
    CHECK(bare6.error().find("brackets") != std::string::npos);
}

namespace {

// A MetricsHttp on its own loop in a thread; the test talks to it with
// blocking sockets. The loop wakes every 10 ms to see whether to finish.
class HttpFixture {
public:
    explicit HttpFixture(MetricsHttp::Limits limits = {}) : base_(event_base_new()) {
        REQUIRE(base_ != nullptr);
        http_ = std::make_unique<MetricsHttp>(base_, [this] {
            ++scrapes;
            return render_metrics(snapshot);
        }, limits);
        auto bound = http_->listen(*parse_endpoint("127.0.0.1:0"));
        REQUIRE_MESSAGE(bound.ok(), bound.error());
        REQUIRE(http_->port() != 0);
        tick_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void* arg) {
            auto* self = static_cast<HttpFixture*>(arg);
            if (self->finish_) event_base_loopbreak(self->base_);
        }, this);
        timeval every{0, 10000};
        event_add(tick_, &every);
        thread_ = std::thread([this] { event_base_dispatch(base_); });
    }
    ~HttpFixture() {
        finish_ = true;
        thread_.join();
        http_.reset();
        event_free(tick_);
        event_base_free(base_);
    }
    std::uint16_t port() const { return http_->port(); }
    MetricsHttp& http() { return *http_; }

    MetricsSnapshot snapshot = sample_snapshot();
    std::atomic<int> scrapes{0};

private:
    event_base* base_;
    std::unique_ptr<MetricsHttp> http_;
    event* tick_ = nullptr;
    std::atomic<bool> finish_{false};
    std::thread thread_;
};

bool header(const test_support::HttpAnswer& a, const std::string& line) {
    return a.head.find("\r\n" + line + "\r\n") != std::string::npos ||
           (a.head.size() >= line.size() && a.head.compare(a.head.size() - line.size(), line.size(), line) == 0 &&
            a.head.find("\r\n" + line) != std::string::npos);
}

}  // namespace

TEST_CASE("MetricsHttp: /metrics and /healthz over a real socket; 404 and 405 for the rest") {
    HttpFixture fixture;
    using test_support::http_get;

    auto metrics = http_get(fixture.port(), "/metrics");
    CHECK(metrics.status == 200);
    CHECK_MESSAGE(header(metrics, "Content-Type: text/plain; version=0.0.4; charset=utf-8"), metrics.head);
    CHECK(metrics.body == render_metrics(fixture.snapshot));
    CHECK(fixture.scrapes == 1);
    test_support::check_with_promtool(metrics.body);

    auto query = http_get(fixture.port(), "/metrics?name[]=x");
    CHECK(query.status == 200);

    auto head = http_get(fixture.port(), "/metrics", "HEAD");
    CHECK(head.status == 200);
    CHECK(head.body.empty());
    CHECK_MESSAGE(header(head, "Content-Length: " + std::to_string(metrics.body.size())), head.head);

    auto health = http_get(fixture.port(), "/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == "ok");

    CHECK(http_get(fixture.port(), "/").status == 404);
    CHECK(http_get(fixture.port(), "/metrics/").status == 404);
    CHECK(http_get(fixture.port(), "/nope").status == 404);
    auto post = http_get(fixture.port(), "/metrics", "POST");
    CHECK(post.status == 405);
    CHECK_MESSAGE(header(post, "Allow: GET, HEAD"), post.head);
    CHECK(http_get(fixture.port(), "/healthz", "DELETE").status == 405);

    fixture.http().stopping();
    CHECK(http_get(fixture.port(), "/healthz").status == 503);
    CHECK(http_get(fixture.port(), "/metrics").status == 200);
}

TEST_CASE("MetricsHttp: a body over 1 KiB, huge headers and a silent client are cut off") {
    MetricsHttp::Limits limits;
    limits.timeout = 1s;
    HttpFixture fixture(limits);

    std::string big(4096, 'x');
    auto oversized = test_support::http_exchange(
        fixture.port(), "GET /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n" + big);
    CHECK_MESSAGE(oversized.status == 413, oversized.head);
    CHECK(oversized.closed);

    std::string long_header = "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Junk: " + std::string(20000, 'y') + "\r\n\r\n";
    auto headers = test_support::http_exchange(fixture.port(), long_header);
    CHECK(headers.status != 200);
    CHECK(headers.closed);

    // Half a request line, then silence: closed after the 1 s timeout.
    auto started = std::chrono::steady_clock::now();
    auto silent = test_support::http_exchange(fixture.port(), "GET /met", 4000ms);
    auto waited = std::chrono::steady_clock::now() - started;
    CHECK(silent.closed);
    CHECK(silent.status != 200);
    CHECK(waited < 3500ms);
    CHECK(fixture.scrapes == 0);
}

namespace {

int connect_loopback(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(port);
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
    timeval limit{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    return fd;
}

// Whether the server closed `fd` (EOF or reset) within `limit`.
bool closed_within(int fd, std::chrono::milliseconds limit) {
    auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0) {
            char c;
            ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
            if (n <= 0) return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("MetricsHttp: a client dribbling a byte a second is cut off at the deadline") {
    MetricsHttp::Limits limits;
    limits.timeout = 5s;  // never reached: a byte comes every second
    limits.deadline = 2500ms;
    HttpFixture fixture(limits);
    int fd = connect_loopback(fixture.port());
    auto started = std::chrono::steady_clock::now();
    std::string request = "GET /metrics HTTP/1.1\r\nHost: a\r\nX-Slow: abcdefgh";
    bool closed = false;
    for (char c : request) {
        if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1 || closed_within(fd, 1000ms)) {
            closed = true;
            break;
        }
    }
    auto waited = std::chrono::steady_clock::now() - started;
    ::close(fd);
    CHECK(closed);
    CHECK(waited >= 2s);
    CHECK(waited < 5s);
    CHECK(fixture.scrapes == 0);
}

TEST_CASE("MetricsHttp: connections beyond max_connections are closed at once; freed slots are reused") {
    MetricsHttp::Limits limits;
    limits.max_connections = 3;
    HttpFixture fixture(limits);
    std::vector<int> held;
    for (int i = 0; i < 3; ++i) held.push_back(connect_loopback(fixture.port()));
    for (int i = 0; i < 50 && fixture.http().connections() < 3; ++i) std::this_thread::sleep_for(20ms);
    CHECK(fixture.http().connections() == 3);
    int extra = connect_loopback(fixture.port());
    CHECK(closed_within(extra, 1000ms));
    ::close(extra);
    for (int fd : held) CHECK_FALSE(closed_within(fd, 10ms));
    for (int fd : held) ::close(fd);
    for (int i = 0; i < 100 && fixture.http().connections() > 0; ++i) std::this_thread::sleep_for(20ms);
    CHECK(fixture.http().connections() == 0);
    CHECK(test_support::http_get(fixture.port(), "/healthz").status == 200);
}

TEST_CASE("MetricsHttp: an address in use is an error naming it") {
    HttpFixture first;
    event_base* base = event_base_new();
    {
        MetricsHttp second(base, [] { return std::string(); });
        auto bound = second.listen(*parse_endpoint("127.0.0.1:" + std::to_string(first.port())));
        REQUIRE_FALSE(bound.ok());
        CHECK(bound.code() == dtcall::ErrorCode::address_in_use);
        CHECK(bound.error() == "metrics: cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                   ": Address already in use");
    }
    event_base_free(base);
}
