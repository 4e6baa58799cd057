// login: N loops, each connecting, doing the handshake and login, closing,
// and starting over, for --duration seconds. Next to the measured rate goes
// the rate libsodium allows one core (sodium_bound.hpp).
#include "event_loop.hpp"
#include "key_material.hpp"
#include "modes.hpp"
#include "phone.hpp"
#include "child_process.hpp"
#include "sodium_bound.hpp"
#include "target.hpp"

#include <event2/event.h>

#include <algorithm>
#include <map>
#include <memory>

namespace dtbench {
namespace {

class LoginLoops final : public PhoneListener {
public:
    LoginLoops(PhoneContext& context, const std::vector<BenchUser>& users, unsigned concurrency) {
        for (unsigned i = 0; i < concurrency; ++i) {
            auto slot = std::make_unique<Slot>();
            slot->loops = this;
            slot->phone = std::make_unique<Phone>(context, users[i % users.size()], *this, i);
            slot->retry = evtimer_new(context.base, on_retry, slot.get());
            slots_.push_back(std::move(slot));
        }
    }
    ~LoginLoops() override {
        for (auto& slot : slots_) {
            slot->phone.reset();
            event_free(slot->retry);
        }
    }

    void start() {
        running_ = true;
        for (auto& slot : slots_) slot->phone->connect();
    }
    void stop() {
        running_ = false;
        for (auto& slot : slots_) {
            evtimer_del(slot->retry);
            slot->phone->close();
        }
    }

    void logged_in(Phone& phone) override {
        if (!running_) return;
        ++logins;
        latency.record(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - phone.connect_started()).count());
        phone.close();
        phone.connect();
    }

    void failed(Phone& phone, const std::string& why) override {
        if (!running_) return;
        ++failures;
        ++reasons[why];
        // A pause, so that a server refusing everything is not hammered in a tight loop.
        timeval pause{0, 20 * 1000};
        evtimer_add(slots_[phone.index()]->retry, &pause);
    }

    std::uint64_t logins = 0;
    std::uint64_t failures = 0;
    std::map<std::string, std::uint64_t> reasons;
    Histogram latency;

private:
    struct Slot {
        LoginLoops* loops;
        std::unique_ptr<Phone> phone;
        event* retry;
    };
    static void on_retry(int, short, void* arg) {
        auto* slot = static_cast<Slot*>(arg);
        if (slot->loops->running_) slot->phone->connect();
    }

    std::vector<std::unique_ptr<Slot>> slots_;
    bool running_ = false;
};

}  // namespace

dtcall::Result<Report> run_login(const RunContext& run) {
    const Options& o = run.options;
    if (o.concurrency + 64 > run.open_files)
        return dtcall::Error{"--concurrency " + std::to_string(o.concurrency) + " needs more file descriptors than the " +
                             std::to_string(run.open_files) + " this process may open"};

    // The bound on the core the server will use (when pinned: cores of a
    // shared VM differ), before and after the load; the faster counts. Half
    // a second each gives a stable figure; short (test) runs take less.
    auto bound_budget = std::chrono::milliseconds(std::int64_t(std::clamp(o.duration * 50.0, 50.0, 500.0)));
    auto measure_bound = [&] {
        if (run.server_cpu) pin_to_cpu(0, *run.server_cpu);
        SodiumBound measured = measure_login_crypto(bound_budget);
        if (run.generator_cpu) pin_to_cpu(0, *run.generator_cpu);
        return measured;
    };
    SodiumBound bound = measure_bound();

    auto target = open_target(o, o.concurrency, false, run.server_cpu);
    if (!target) return dtcall::Error{target.error()};
    Loop loop;
    if (!loop.ok()) return dtcall::Error{"cannot create an event loop"};
    // Distinct hellos for several rounds of every loop, so that consecutive
    // connections of one loop never reuse an ephemeral key back to back.
    HelloPool hellos((*target)->server_key, std::max<std::size_t>(64, std::size_t(o.concurrency) * 4));
    PhoneContext context;
    context.base = loop.base();
    context.server_key = (*target)->server_key;
    context.hellos = &hellos;
    context.heartbeat = std::chrono::milliseconds(0);  // connections live for milliseconds
    if (auto set = set_addresses(context, (*target)->host, (*target)->port, (*target)->media_port, "--host"); !set)
        return dtcall::Error{set.error()};

    LoginLoops loops(context, (*target)->users, o.concurrency);
    ServerProbe server((*target)->pid);
    Progress progress(!o.quiet && o.duration >= 3, "login");
    if (auto begun = server.begin(); !begun) return dtcall::Error{begun.error()};
    std::int64_t own_before = own_cpu_ns();
    auto start = Clock::now();
    loops.start();
    loop.run_until([] { return false; }, start + std::chrono::microseconds(std::int64_t(o.duration * 1e6)), [&] {
        double t = seconds_since(start);
        progress.update(format_number(t, 0) + "/" + format_number(o.duration, 0) + " s  " +
                        std::to_string(loops.logins) + " logins (" + format_number(double(loops.logins) / t, 0) +
                        "/s), " + std::to_string(loops.failures) + " failed");
    });
    double elapsed = seconds_since(start);
    auto server_cpu_read = server.cpu_ns();
    std::int64_t own_cpu = own_cpu_ns() - own_before;
    loops.stop();
    if (!server_cpu_read) return dtcall::Error{server_cpu_read.error()};
    std::optional<std::int64_t> server_cpu = *server_cpu_read;
    progress.finish();
    (*target)->stop();
    SodiumBound after = measure_bound();
    bound.iterations += after.iterations;
    bound.ok = bound.ok && after.ok;
    bound.microseconds_per_login = std::min(bound.microseconds_per_login, after.microseconds_per_login);
    bound.microseconds_per_repeat_login =
        std::min(bound.microseconds_per_repeat_login, after.microseconds_per_repeat_login);
    bound.logins_per_second = bound.microseconds_per_login > 0 ? 1e6 / bound.microseconds_per_login : 0;
    double repeat_logins_per_second =
        bound.microseconds_per_repeat_login > 0 ? 1e6 / bound.microseconds_per_repeat_login : 0;

    Report report;
    report.mode = "login";
    report.title = "dtcall-bench login: " + std::to_string(o.concurrency) + " concurrent login loop(s) for " +
                   format_number(o.duration, 1) + " s against the " + (*target)->description + run.placement;
    report.parameter("concurrency", o.concurrency);
    report.parameter("duration_s", o.duration);
    double rate = double(loops.logins) / elapsed;
    report.add("logins_per_s", "logins", "/s", rate, 0);
    report.add("latency_p50_ms", "login latency p50 (connect to login2resp)", "ms",
               double(loops.latency.percentile(0.50)) / 1e6, 3);
    report.add("latency_p99_ms", "login latency p99", "ms", double(loops.latency.percentile(0.99)) / 1e6, 3);
    report.add("latency_max_ms", "login latency max", "ms", double(loops.latency.max()) / 1e6, 3);
    report.add("logins", "logins completed", "", double(loops.logins), 0);
    report.add("failed_logins", "logins failed", "", double(loops.failures), 0);
    report.add("sodium_us_per_login", "libsodium work per login (3 X25519), one core", "us",
               bound.microseconds_per_login, 1);
    report.add("sodium_bound_logins_per_s", "libsodium bound (3 X25519, one core)", "/s", bound.logins_per_second, 0);
    report.add("percent_of_bound", "measured rate / libsodium bound", "%",
               bound.logins_per_second > 0 ? 100.0 * rate / bound.logins_per_second : 0, 1);
    report.add("sodium_us_per_repeat_login", "libsodium work per repeat login (2 X25519, cached key)", "us",
               bound.microseconds_per_repeat_login, 1);
    report.add("percent_of_repeat_bound", "measured rate / that bound", "%",
               repeat_logins_per_second > 0 ? 100.0 * rate / repeat_logins_per_second : 0, 1);
    if (server_cpu) {
        report.add("server_cpu_us_per_login", "server CPU per login", "us",
                   loops.logins ? double(*server_cpu) / 1e3 / double(loops.logins) : 0, 1);
        report.add("server_cpu_percent", "server CPU (of one core)", "%", 100.0 * double(*server_cpu) / 1e9 / elapsed, 1);
    }
    report.add("generator_cpu_percent", "generator CPU (of one core)", "%", 100.0 * double(own_cpu) / 1e9 / elapsed, 1);
    report.series.emplace_back("login", loops.latency);
    report.series_label = "login latency";
    report.notes.push_back("libsodium bound: one crypto_box_seal_open + two crypto_box_easy (the TCP key and the "
                           "200-character challenge), 3 X25519 operations, the fastest of 10 rounds (" +
                           std::to_string(bound.iterations) + " iterations in all) before and after the load, on " +
                           (run.server_cpu ? "the server's core" : "the generator's core"));
    report.notes.push_back("each of the " + std::to_string(o.concurrency) +
                           " loops logs in as its own user again and again: dtcalld keeps a user's crypto_box key "
                           "(up to 4096 users), so its repeat logins cost 2 X25519 operations, a first login 3");
    report.notes.push_back("the generator precomputes its own X25519 work (hellos, per-user shared keys), so its "
                           "cost per login is symmetric crypto only");
    for (auto& note : (*target)->notes) report.notes.push_back(note);
    if (!bound.ok) report.failures.push_back("libsodium micro-benchmark: a box did not open");
    for (auto& [why, n] : loops.reasons) report.failures.push_back(std::to_string(n) + " x login: " + why);
    if (loops.logins == 0) {
        report.failures.push_back("no login succeeded");
        report.measured_nothing = true;
    }
    return report;
}

}  // namespace dtbench
