// dtcall-bench smoke test: every mode runs in-process with tiny parameters
// and its figures are checked for sanity (things happened, percentages are
// percentages, the JSON has the keys a script would read) — never for speed:
// timings depend on the machine and on whatever else runs beside the test.
#include "bench.hpp"
#include "histogram.hpp"
#include "modes.hpp"
#include "options.hpp"
#include "proc_stats.hpp"
#include "report.hpp"
#include "temp_dir.hpp"

#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

namespace {

dtbench::Report run_ok(const std::vector<std::string>& args) {
    auto options = dtbench::parse_options(args);
    REQUIRE_MESSAGE(options.ok(), options.error());
    auto report = dtbench::run(*options);
    REQUIRE_MESSAGE(report.ok(), report.error());
    return *report;
}

double value(const dtbench::Report& report, const std::string& key) {
    const dtbench::Metric* m = report.find(key);
    REQUIRE_MESSAGE(m != nullptr, "no metric " << key);
    return m->value;
}

// A strict little JSON reader: true when `text` is one well-formed value.
class JsonChecker {
public:
    explicit JsonChecker(const std::string& text) : s_(text) {}
    bool valid() {
        skip();
        if (!value(0)) return false;
        skip();
        return i_ == s_.size();
    }

private:
    bool value(int depth) {
        if (depth > 32 || i_ >= s_.size()) return false;
        char c = s_[i_];
        if (c == '{') return object(depth);
        if (c == '[') return array(depth);
        if (c == '"') return string();
        if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return number();
        for (const char* word : {"true", "false", "null"})
            if (s_.compare(i_, std::char_traits<char>::length(word), word) == 0) {
                i_ += std::char_traits<char>::length(word);
                return true;
            }
        return false;
    }
    bool object(int depth) {
        ++i_;
        skip();
        if (peek('}')) return ++i_, true;
        for (;;) {
            skip();
            if (!string()) return false;
            skip();
            if (!peek(':')) return false;
            ++i_;
            skip();
            if (!value(depth + 1)) return false;
            skip();
            if (peek('}')) return ++i_, true;
            if (!peek(',')) return false;
            ++i_;
        }
    }
    bool array(int depth) {
        ++i_;
        skip();
        if (peek(']')) return ++i_, true;
        for (;;) {
            skip();
            if (!value(depth + 1)) return false;
            skip();
            if (peek(']')) return ++i_, true;
            if (!peek(',')) return false;
            ++i_;
        }
    }
    bool string() {
        if (!peek('"')) return false;
        for (++i_; i_ < s_.size(); ++i_) {
            if (s_[i_] == '\\') {
                ++i_;
                continue;
            }
            if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
            if (s_[i_] == '"') return ++i_, true;
        }
        return false;
    }
    bool number() {
        std::size_t start = i_;
        if (peek('-')) ++i_;
        while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == 'e' ||
                                  s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
            ++i_;
        return i_ > start;
    }
    bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
    void skip() {
        while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    }

    const std::string& s_;
    std::size_t i_ = 0;
};

bool has_key(const std::string& json, const std::string& key) {
    return json.find("\"" + key + "\":") != std::string::npos;
}

}  // namespace

TEST_CASE("options: modes, defaults, and errors that name the flag") {
    auto o = dtbench::parse_options({"relay", "--pairs=3", "--rate", "0", "--size", "200"});
    REQUIRE(o.ok());
    CHECK(o->mode == dtbench::Mode::relay);
    CHECK(o->pairs == 3);
    CHECK(o->rate == 0);
    CHECK(o->in_process);
    CHECK(dtbench::with_mode_defaults(*o).duration == 10);

    struct Bad {
        std::vector<std::string> args;
        const char* names;
    };
    for (const Bad& bad : std::vector<Bad>{
             {{}, "no mode"},
             {{"dance"}, "dance"},
             {{"login", "--pairs", "x"}, "--pairs"},
             {{"login", "--pairs"}, "--pairs"},
             {{"relay", "--size", "19"}, "--size"},
             {{"login", "--duration", "0"}, "--duration"},
             {{"login", "--frobnicate"}, "--frobnicate"},
             {{"login", "--host", "127.0.0.1"}, "--server-key"},
             {{"login", "--users", "/tmp"}, "--users"},
             {{"login", "--server-cpu", "1", "--generator-cpu", "1"}, "--server-cpu"},
             {{"login", "--json=yes"}, "--json"},
             {{"summary", "--pairs", "3"}, "--pairs"},
             {{"login", "--host", "127.0.0.1", "--server-key", "k", "--users", "u", "--media-threads", "2"},
              "--media-threads"},
             {{"calls", "--nodes", "9"}, "--nodes"},
             {{"login", "--nodes", "2"}, "--nodes"},
             {{"calls", "--nodes", "2", "--host", "127.0.0.1", "--server-key", "k", "--users", "u"}, "--nodes"},
         }) {
        auto parsed = dtbench::parse_options(bad.args);
        REQUIRE_FALSE(parsed.ok());
        CHECK_MESSAGE(parsed.error().find(bad.names) != std::string::npos, parsed.error());
    }
    CHECK(dtbench::parse_options({"--help"})->help);
    CHECK(dtbench::usage_text().find("--pairs") != std::string::npos);
}

TEST_CASE("histogram percentiles are within a bucket of the truth") {
    dtbench::Histogram h;
    CHECK(h.percentile(0.5) == 0);
    for (int i = 1; i <= 1000; ++i) h.record(std::int64_t(i) * 1000);
    CHECK(h.count() == 1000);
    CHECK(h.max() == 1000000);
    CHECK(h.percentile(0.5) == doctest::Approx(500000).epsilon(0.02));
    CHECK(h.percentile(0.99) == doctest::Approx(990000).epsilon(0.02));
    CHECK(h.percentile(1.0) <= h.max());
    h.record(-5);  // a clock oddity is clamped, not a crash
    CHECK(h.count() == 1001);
    CHECK(h.cumulative().back().second == doctest::Approx(1.0));
}

TEST_CASE("login: logins happen and the libsodium bound is measured") {
    auto r = run_ok({"login", "--duration", "1", "--concurrency", "2", "--quiet"});
    CHECK(value(r, "logins") > 0);
    CHECK(value(r, "logins_per_s") > 0);
    CHECK(value(r, "failed_logins") == 0);
    CHECK(value(r, "latency_p50_ms") > 0);
    CHECK(value(r, "latency_p99_ms") >= value(r, "latency_p50_ms"));
    CHECK(value(r, "sodium_us_per_login") > 0);
    CHECK(value(r, "percent_of_bound") > 0);
    CHECK(value(r, "server_cpu_us_per_login") > 0);
    CHECK(r.failures.empty());
    std::string json = dtbench::render_json(r);
    CHECK(JsonChecker(json).valid());
    for (const char* key : {"mode", "metrics", "logins_per_s", "latency_p99_ms", "sodium_bound_logins_per_s"})
        CHECK_MESSAGE(has_key(json, key), key);
}

TEST_CASE("idle: sessions are held and memory per session is measured") {
    auto r = run_ok({"idle", "--count", "40", "--duration", "0.2", "--quiet"});
    CHECK(value(r, "held") == 40);
    CHECK(value(r, "held_at_end") == 40);
    CHECK(value(r, "server_rss_after_bytes") > 0);
    CHECK(r.find("server_bytes_per_session") != nullptr);
    // dtcalld's /metrics body, built in the server with the sessions held.
    CHECK(value(r, "metrics_scrape_ms") > 0);
    CHECK(value(r, "metrics_scrape_ms") < 50);
    CHECK(r.failures.empty());
    CHECK(JsonChecker(dtbench::render_json(r)).valid());
}

TEST_CASE("calls: calls come up with a measured set-up latency") {
    auto r = run_ok({"calls", "--pairs", "2", "--duration", "1", "--quiet"});
    CHECK(value(r, "calls_up") > 0);
    CHECK(value(r, "calls_failed") == 0);
    CHECK(value(r, "setup_p50_ms") > 0);
    CHECK(r.failures.empty());
}

TEST_CASE("calls with --hold carry media both ways") {
    auto r = run_ok({"calls", "--pairs", "1", "--duration", "1", "--hold", "300", "--rate", "50",
                     "--quiet"});
    CHECK(value(r, "calls_up") > 0);
    CHECK(value(r, "media_received") > 0);
    CHECK(value(r, "media_loss_percent") <= 100);
}

TEST_CASE("relay: media goes through, and the baseline is beside it") {
    auto r = run_ok({"relay", "--pairs", "2", "--duration", "0.5", "--quiet"});
    CHECK(value(r, "pairs") == 2);
    CHECK(value(r, "delivered") > 0);
    CHECK(value(r, "sent") >= value(r, "delivered"));
    CHECK(value(r, "loss_percent") >= 0);
    CHECK(value(r, "loss_percent") <= 100);
    CHECK(value(r, "latency_p50_us") > 0);
    CHECK(value(r, "server_cpu_us_per_packet") > 0);
    REQUIRE(r.find("delivered")->baseline);
    CHECK(*r.find("delivered")->baseline > 0);
    CHECK(r.failures.empty());
    std::string json = dtbench::render_json(r);
    CHECK(JsonChecker(json).valid());
    for (const char* key : {"offered_pps", "delivered_pps", "loss_percent", "latency_p99_us", "latency_max_us",
                            "server_cpu_us_per_packet", "generator_cpu_percent", "baseline", "ratio"})
        CHECK_MESSAGE(has_key(json, key), key);
    std::string table = dtbench::render_table(r);
    CHECK(table.find("baseline") != std::string::npos);
}

TEST_CASE("relay open loop and baseline alone") {
    auto r = run_ok({"relay", "--pairs", "1", "--rate", "0", "--duration", "0.3", "--no-baseline", "--quiet"});
    CHECK(value(r, "delivered") > 0);
    CHECK(r.find("delivered")->baseline == std::nullopt);
    auto b = run_ok({"baseline", "--pairs", "1", "--duration", "0.3", "--quiet"});
    CHECK(b.subject == "baseline");
    CHECK(value(b, "delivered") > 0);
}

TEST_CASE("summary: every part runs and lands in one table, relay rows beside the baseline") {
    auto r = run_ok({"summary", "--duration", "0.3", "--count", "40", "--quiet"});
    CHECK(value(r, "login_1_logins_per_s") > 0);
    CHECK(value(r, "login_16_logins_per_s") > 0);
    CHECK(value(r, "login_16_percent_of_bound") > 0);
    CHECK(value(r, "calls_500_setup_p50_ms") > 0);  // calls that came up, even after the 0.3 s
    CHECK(value(r, "relay_500x50_delivered_pps") > 0);
    CHECK(r.find("relay_500x50_loss_percent")->baseline.has_value());
    CHECK(r.find("relay_saturated_server_cpu_us_per_packet")->baseline.has_value());
    CHECK(value(r, "idle_held") == 40);
    CHECK(value(r, "idle_projected_rss_bytes_100k") > 0);
    CHECK(r.failures.empty());
    std::string json = dtbench::render_json(r);
    CHECK(JsonChecker(json).valid());
}

// --nodes: the bench's own redis-server and two in-process nodes; figures
// beside the single-node run. Needs redis-server ($REDIS_SERVER or PATH).
namespace {

// The redis-server's directory named in a cluster report's title, which must
// be gone once the run returned.
std::string redis_dir_of(const dtbench::Report& r) {
    auto at = r.title.find("/tmp/dtcall-bench-redis.");
    if (at == std::string::npos) return "";
    auto end = r.title.find("/redis.sock", at);
    return end == std::string::npos ? "" : r.title.substr(at, end - at);
}

void check_cleaned_up(const dtbench::Report& r) {
    std::string dir = redis_dir_of(r);
    REQUIRE_MESSAGE(!dir.empty(), r.title);
    struct stat st {};
    CHECK_MESSAGE(stat(dir.c_str(), &st) != 0, dir << " is still there");
}

}  // namespace

TEST_CASE("--nodes 2: calls cross nodes, beside the same load on one node") {
    auto r = run_ok({"calls", "--nodes", "2", "--pairs", "2", "--duration", "1", "--quiet"});
    CHECK(r.subject == "cross-node");
    CHECK(r.baseline_subject == "same-node");
    CHECK(value(r, "calls_up") > 0);
    CHECK(value(r, "calls_failed") == 0);
    CHECK(value(r, "setup_p50_ms") > 0);
    REQUIRE(r.find("setup_p99_ms")->baseline);
    CHECK(*r.find("setup_p99_ms")->baseline > 0);
    CHECK(value(r, "node1_cpu_percent") >= 0);
    CHECK(value(r, "node2_cpu_percent") >= 0);
    CHECK(r.find("redis_cpu_us_per_call") != nullptr);
    CHECK(r.failures.empty());
    std::string json = dtbench::render_json(r);
    CHECK(JsonChecker(json).valid());
    CHECK(json.find("\"baseline_subject\":\"same-node\"") != std::string::npos);
    check_cleaned_up(r);
}

TEST_CASE("--nodes 2: relay across nodes reports what crossed, and the extra hop when media crosses") {
    auto r = run_ok({"relay", "--nodes", "2", "--pairs", "2", "--duration", "0.3", "--quiet"});
    CHECK(value(r, "pairs") == 2);
    REQUIRE(r.find("delivered")->baseline);
    CHECK(*r.find("delivered")->baseline > 0);  // the same-node run
    CHECK_FALSE(r.measured_nothing);
    double crossed = value(r, "delivered");
    CHECK(value(r, "node1_packets") + value(r, "node2_packets") == doctest::Approx(2 * crossed));
    if (crossed > 0) {
        CHECK(std::isfinite(value(r, "added_latency_p99_us")));
        CHECK(value(r, "node1_cpu_us_per_packet") > 0);
    } else {
        // Before the nodes carry media to each other: 0 delivered, said clearly.
        CHECK(std::isnan(value(r, "added_latency_p99_us")));
        bool said = false;
        for (const std::string& f : r.failures) said = said || f.find("cross-node relay: no media packet") == 0;
        CHECK(said);
    }
    CHECK(JsonChecker(dtbench::render_json(r)).valid());
    check_cleaned_up(r);
}

TEST_CASE("--nodes 2: idle sessions spread over the nodes, with Redis memory per user") {
    auto r = run_ok({"idle", "--nodes", "2", "--count", "20", "--duration", "0.2", "--quiet"});
    CHECK(value(r, "held") == 20);
    CHECK(value(r, "node1_held") == 10);
    CHECK(value(r, "node2_held") == 10);
    CHECK(value(r, "node1_remote_users") == 10);
    CHECK(value(r, "node2_remote_users") == 10);
    CHECK(value(r, "redis_used_memory_after_bytes") > 0);
    CHECK(std::isfinite(value(r, "redis_bytes_per_user")));
    REQUIRE(r.find("held")->baseline);
    CHECK(*r.find("held")->baseline == 20);
    CHECK(r.failures.empty());
    check_cleaned_up(r);
}

// A pid no process can have: pid_max is at most 2^22, and pids stay below it.
// What a --server-pid looks like when /proc belongs to another PID namespace.
constexpr pid_t absent_pid = 4194304;

TEST_CASE("proc stats of a process that does not exist: an error naming the file, not a crash") {
    auto rss = dtbench::resident_bytes(absent_pid);
    REQUIRE_FALSE(rss.ok());
    CHECK(rss.error() == "cannot read /proc/4194304/status: No such file or directory");
    auto cpu = dtbench::process_cpu(absent_pid);
    REQUIRE_FALSE(cpu.ok());
    CHECK(cpu.error() == "cannot read /proc/4194304/stat: No such file or directory");
    // This process's own figures are there.
    auto own = dtbench::resident_bytes(getpid());
    REQUIRE_MESSAGE(own.ok(), own.error());
    CHECK(*own > 0);
    REQUIRE(dtbench::process_cpu(getpid()).ok());

    dtbench::ServerProbe probe(absent_pid);
    auto begun = probe.begin();
    REQUIRE_FALSE(begun.ok());
    CHECK(begun.error() == "cannot read /proc/4194304/stat: No such file or directory");
    auto cpu_ns = probe.cpu_ns();
    CHECK_FALSE(cpu_ns.ok());
    auto probe_rss = probe.rss();
    REQUIRE_FALSE(probe_rss.ok());
    CHECK(probe_rss.error() == "cannot read /proc/4194304/status: No such file or directory");

    // No pid (an external server without --server-pid): no figures, no error.
    dtbench::ServerProbe blind(std::nullopt);
    CHECK(blind.begin().ok());
    auto blind_cpu = blind.cpu_ns();
    REQUIRE(blind_cpu.ok());
    CHECK_FALSE(blind_cpu->has_value());
    auto blind_rss = blind.rss();
    REQUIRE(blind_rss.ok());
    CHECK_FALSE(blind_rss->has_value());
}

TEST_CASE("summary: a figure a part did not report prints as n/a with a note") {
    dtbench::Report part;
    part.add("logins_per_s", "logins", "/s", 1234, 0);
    dtbench::Report summary;
    summary.title = "summary";
    dtbench::copy_part_metric(summary, part, "logins_per_s", "login_16", "logins, 16 at a time");
    dtbench::copy_part_metric(summary, part, "server_cpu_us_per_login", "login_16", "  server CPU per login");
    REQUIRE(summary.find("login_16_logins_per_s") != nullptr);
    CHECK(summary.find("login_16_logins_per_s")->value == 1234);
    const dtbench::Metric* missing = summary.find("login_16_server_cpu_us_per_login");
    REQUIRE(missing != nullptr);
    CHECK(std::isnan(missing->value));
    REQUIRE(summary.notes.size() == 1);
    CHECK(summary.notes[0].find("login_16: server_cpu_us_per_login: n/a") == 0);
    std::string table = dtbench::render_table(summary);
    CHECK(table.find("server CPU per login") != std::string::npos);
    CHECK(table.find("n/a") != std::string::npos);
    std::string json = dtbench::render_json(summary);
    CHECK(JsonChecker(json).valid());
    CHECK(json.find("\"login_16_server_cpu_us_per_login\":{\"value\":null") != std::string::npos);
}

TEST_CASE("summary and login with a --server-pid /proc does not know: the run fails naming the file") {
    // An external server that is never reached: the server's figures are read
    // before the first connection, and that read fails.
    test_support::TempDir dir;
    auto server = dtcall::KeyPair::generate();
    REQUIRE(dtcall::write_key_files(server, dir / "server_public.na", dir / "server_private.na").ok());
    REQUIRE(mkdir((dir / "users").c_str(), 0700) == 0);
    auto user = dtcall::KeyPair::generate();
    REQUIRE(dtcall::write_key_files(user, dir / "users/u1_public.na", dir / "users/u1_private.na").ok());
    for (const char* mode : {"login", "summary"}) {
        CAPTURE(mode);
        std::vector<std::string> args = {mode, "--host", "127.0.0.1", "--port", "9", "--server-key",
                                         dir / "server_public.na", "--users", dir / "users", "--server-pid",
                                         std::to_string(absent_pid), "--duration", "0.2", "--quiet"};
        if (std::string(mode) == "login") args.insert(args.end(), {"--concurrency", "1"});
        auto options = dtbench::parse_options(args);
        REQUIRE_MESSAGE(options.ok(), options.error());
        auto report = dtbench::run(*options);
        REQUIRE_FALSE(report.ok());
        CHECK(report.error() == std::string(mode == std::string("login") ? "" : "login_1: ") +
                                    "cannot read /proc/4194304/stat: No such file or directory");
    }
}
