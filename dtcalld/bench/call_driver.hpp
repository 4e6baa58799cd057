// CallDriver: pairs of phones placing calls the way the clients do, for the
// calls mode (again and again) and for relay (once, then the call stays up).
// Phone 2k calls phone 2k+1:
//
//   A: call|B ──> B: incoming → accept|A ──> both: prepare (key checked)
//   A: passthrough (voice key boxed to B) ──> B: direct (opened and checked)
//   both: UDP registration → ack → ready ──> both: start      [A: latency]
//   calls: hold (media at --rate) → A: end|B ──> B: end → next call
//
// A call that does not reach `start` within the timeout, gets `invalid` or an
// unexpected `end`, or whose registration is never acked, counts as failed;
// both sides then hang up and the pair tries again after a pause.
#pragma once

#include "event_loop.hpp"
#include "histogram.hpp"
#include "key_material.hpp"
#include "phone.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dtbench {

struct CallSettings {
    bool repeat = true;  // false: set each call up once and keep it (relay)
    std::chrono::milliseconds hold{0};
    double media_rate = 0;  // packets/s per party while a call is held
    std::size_t media_size = 100;
    std::chrono::milliseconds call_timeout{10000};
    unsigned logins_in_flight = 32;
};

struct CallStats {
    std::uint64_t logins = 0;
    std::uint64_t login_failures = 0;
    std::uint64_t connections_lost = 0;
    std::uint64_t calls_up = 0;
    std::uint64_t calls_failed = 0;
    std::map<std::string, std::uint64_t> failure_reasons;
    Histogram setup_latency;  // call sent → start received, at the caller, ns
    std::uint64_t media_sent = 0;
    std::uint64_t media_received = 0;
    Histogram media_latency;
};

class CallDriver final : public PhoneListener {
public:
    CallDriver(PhoneContext& context, const std::vector<BenchUser>& users, std::size_t pairs, CallSettings settings);
    ~CallDriver() override;
    CallDriver(const CallDriver&) = delete;
    CallDriver& operator=(const CallDriver&) = delete;

    void start();            // logs everybody in; each pair calls once both are in
    bool logins_done() const;  // every phone logged in or given up
    void begin_calling();    // calls start only from here (setup is not timed)
    void stop_calling();     // no new calls; calls in progress finish
    bool quiet() const;      // no call in progress
    bool setup_done() const; // relay: every live pair has its call up
    std::vector<std::pair<Phone*, Phone*>> pairs_up();
    void hang_up_all();
    const CallStats& stats() const { return stats_; }
    std::size_t live_pairs() const;
    std::size_t phone_count() const { return phones_.size(); }
    Phone& phone(std::size_t index) { return *phones_[index]; }

    // PhoneListener
    void logged_in(Phone& phone) override;
    void failed(Phone& phone, const std::string& why) override;
    void message(Phone& phone, const std::vector<std::string_view>& fields) override;
    void media_acked(Phone& phone) override;
    void media_failed(Phone& phone) override;
    void media_datagram(Phone& phone, const std::uint8_t* data, std::size_t size) override;

    struct Pair;

private:
    void launch_logins();
    void begin_call(Pair& pair);
    void check_up(Pair& pair);
    void hang_up(Pair& pair);
    void fail_call(Pair& pair, const std::string& why);
    void start_media(Pair& pair);
    void stop_media(Pair& pair);
    void send_passthrough(Pair& pair);
    void on_timer(Pair& pair);
    void send_media(Pair& pair, int side);
    static void timer_fired(int, short, void* arg);
    static void media_tick_a(int, short, void* arg);
    static void media_tick_b(int, short, void* arg);

    PhoneContext& context_;
    CallSettings settings_;
    std::vector<std::unique_ptr<Phone>> phones_;
    std::vector<std::unique_ptr<Pair>> pairs_;
    std::vector<bool> ever_logged_in_;
    std::size_t next_login_ = 0;
    unsigned logins_in_flight_ = 0;
    std::size_t logins_finished_ = 0;
    bool calling_ = false;
    CallStats stats_;
    std::vector<std::uint8_t> packet_;
};

}  // namespace dtbench
