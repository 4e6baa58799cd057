#include "call_driver.hpp"

#include "media_generator.hpp"

#include "wire/commands.hpp"
#include "wire/messages.hpp"
#include "wire/reply.hpp"

#include <event2/event.h>

#include <sodium.h>

#include <sys/socket.h>

#include <cstring>

namespace dtbench {
namespace {

timeval to_timeval(std::chrono::microseconds us) {
    return timeval{static_cast<decltype(timeval::tv_sec)>(us.count() / 1000000),
                   static_cast<decltype(timeval::tv_usec)>(us.count() % 1000000)};
}

constexpr std::chrono::milliseconds retry_pause{500};
constexpr std::chrono::milliseconds hang_up_limit{5000};
// After the hold, media stops this long before `end`, so that packets still
// in flight are not counted as lost when the relay forgets the call.
constexpr std::chrono::milliseconds media_drain{200};
constexpr int max_setup_attempts = 3;  // relay: per pair

}  // namespace

struct CallDriver::Pair {
    enum class Phase { logging_in, idle, calling, up, held_drain, hanging_up, recovering, dead };
    enum class Timer { none, call_timeout, hold, drain, hang_up, retry };

    CallDriver* driver = nullptr;
    std::size_t index = 0;
    Phone* a = nullptr;
    Phone* b = nullptr;
    SharedKey voice_box{};  // A's secret with B's public == B's secret with A's public
    Phase phase = Phase::logging_in;
    Timer purpose = Timer::none;
    event* timer = nullptr;
    event* media_a = nullptr;
    event* media_b = nullptr;
    bool a_started = false, b_started = false, b_direct = false;
    int attempts = 0;
    std::uint32_t sequence[2] = {0, 0};
    Clock::time_point called_at{};

    void arm(Timer why, std::chrono::microseconds after) {
        purpose = why;
        timeval tv = to_timeval(after);
        evtimer_add(timer, &tv);
    }
    void disarm() {
        purpose = Timer::none;
        evtimer_del(timer);
    }
};

CallDriver::CallDriver(PhoneContext& context, const std::vector<BenchUser>& users, std::size_t pairs,
                       CallSettings settings)
    : context_(context), settings_(settings), packet_(std::max<std::size_t>(settings.media_size, media_header_size)) {
    for (std::size_t i = 0; i < pairs * 2 && i < users.size(); ++i)
        phones_.push_back(std::make_unique<Phone>(context_, users[i], *this, i));
    ever_logged_in_.assign(phones_.size(), false);
    for (std::size_t k = 0; k * 2 + 1 < phones_.size(); ++k) {
        auto pair = std::make_unique<Pair>();
        pair->driver = this;
        pair->index = k;
        pair->a = phones_[2 * k].get();
        pair->b = phones_[2 * k + 1].get();
        pair->voice_box = shared_key(pair->a->user().keys.secret_key, pair->b->user().keys.public_key);
        pair->timer = evtimer_new(context_.base, timer_fired, pair.get());
        pair->media_a = event_new(context_.base, -1, EV_PERSIST, media_tick_a, pair.get());
        pair->media_b = event_new(context_.base, -1, EV_PERSIST, media_tick_b, pair.get());
        pairs_.push_back(std::move(pair));
    }
}

CallDriver::~CallDriver() {
    for (auto& pair : pairs_) {
        if (pair->timer) event_free(pair->timer);
        if (pair->media_a) event_free(pair->media_a);
        if (pair->media_b) event_free(pair->media_b);
    }
    phones_.clear();  // before the events they might fire go
}

void CallDriver::start() { launch_logins(); }

void CallDriver::launch_logins() {
    while (logins_in_flight_ < settings_.logins_in_flight && next_login_ < phones_.size()) {
        ++logins_in_flight_;
        phones_[next_login_++]->connect();
    }
}

bool CallDriver::logins_done() const { return logins_finished_ == phones_.size(); }

std::size_t CallDriver::live_pairs() const {
    std::size_t n = 0;
    for (auto& pair : pairs_) n += pair->phase != Pair::Phase::dead;
    return n;
}

void CallDriver::begin_calling() {
    calling_ = true;
    for (auto& pair : pairs_)
        if (pair->phase == Pair::Phase::idle) begin_call(*pair);
}

void CallDriver::stop_calling() { calling_ = false; }

bool CallDriver::quiet() const {
    for (auto& pair : pairs_) {
        auto p = pair->phase;
        if (p != Pair::Phase::idle && p != Pair::Phase::dead && p != Pair::Phase::logging_in &&
            !(p == Pair::Phase::recovering && !calling_))
            return false;
    }
    return true;
}

bool CallDriver::setup_done() const {
    for (auto& pair : pairs_) {
        auto p = pair->phase;
        if (p != Pair::Phase::up && p != Pair::Phase::dead) return false;
    }
    return true;
}

std::vector<std::pair<Phone*, Phone*>> CallDriver::pairs_up() {
    std::vector<std::pair<Phone*, Phone*>> up;
    for (auto& pair : pairs_)
        if (pair->phase == Pair::Phase::up) up.emplace_back(pair->a, pair->b);
    return up;
}

void CallDriver::hang_up_all() {
    calling_ = false;
    for (auto& pair : pairs_) {
        if (pair->phase == Pair::Phase::up) {
            pair->a->command(dtcall::wire::Verb::end, {pair->b->user().name});
            pair->phase = Pair::Phase::idle;
            pair->disarm();
        }
    }
}

// ---- logins -------------------------------------------------------------

void CallDriver::logged_in(Phone& phone) {
    ever_logged_in_[phone.index()] = true;
    ++stats_.logins;
    ++logins_finished_;
    --logins_in_flight_;
    launch_logins();
    Pair& pair = *pairs_[phone.index() / 2];
    if (pair.phase == Pair::Phase::logging_in && pair.a->logged_in() && pair.b->logged_in()) {
        pair.phase = Pair::Phase::idle;
        if (calling_) begin_call(pair);
    }
}

void CallDriver::failed(Phone& phone, const std::string& why) {
    Pair& pair = *pairs_[phone.index() / 2];
    if (!ever_logged_in_[phone.index()]) {
        ++stats_.login_failures;
        ++logins_finished_;
        --logins_in_flight_;
        launch_logins();
    } else {
        ++stats_.connections_lost;
        auto p = pair.phase;
        if (p != Pair::Phase::idle && p != Pair::Phase::dead && p != Pair::Phase::logging_in) ++stats_.calls_failed;
    }
    ++stats_.failure_reasons[why];
    stop_media(pair);
    pair.disarm();
    pair.a->stop_registration();
    pair.b->stop_registration();
    // A pair that lost a phone stays out for the rest of the run; the other
    // phone keeps its connection.
    pair.phase = Pair::Phase::dead;
}

// ---- a call -------------------------------------------------------------

void CallDriver::begin_call(Pair& pair) {
    if (!calling_ || pair.phase == Pair::Phase::dead) {
        if (pair.phase != Pair::Phase::dead) pair.phase = Pair::Phase::idle;
        return;
    }
    if (!settings_.repeat && pair.attempts >= max_setup_attempts) {
        pair.phase = Pair::Phase::dead;
        return;
    }
    ++pair.attempts;
    pair.a_started = pair.b_started = pair.b_direct = false;
    pair.phase = Pair::Phase::calling;
    pair.called_at = Clock::now();
    pair.a->command(dtcall::wire::Verb::call, {pair.b->user().name});
    pair.arm(Pair::Timer::call_timeout, settings_.call_timeout);
}

void CallDriver::message(Phone& phone, const std::vector<std::string_view>& f) {
    Pair& pair = *pairs_[phone.index() / 2];
    bool is_a = &phone == pair.a;
    Phone& other = is_a ? *pair.b : *pair.a;
    using dtcall::wire::MessageKind;
    std::optional<MessageKind> kind =
        f.size() > 1 ? dtcall::wire::message_kind(f[1]) : std::optional<MessageKind>();
    if (pair.phase == Pair::Phase::dead || pair.phase == Pair::Phase::recovering) return;

    if (kind == MessageKind::end) {
        if (pair.phase == Pair::Phase::hanging_up && !is_a) {
            pair.disarm();
            pair.phase = Pair::Phase::idle;
            begin_call(pair);
        } else if (pair.phase != Pair::Phase::idle) {
            fail_call(pair, "the server ended the call (end|" + std::string(f.size() > 2 ? f[2] : "") + ")");
        }
        return;
    }
    if (kind == MessageKind::invalid) {
        if (pair.phase != Pair::Phase::idle) fail_call(pair, "the server answered invalid");
        return;
    }
    if (pair.phase != Pair::Phase::calling) return;

    if (kind == MessageKind::incoming && !is_a && f.size() == 3 && f[2] == pair.a->user().name) {
        phone.command(dtcall::wire::Verb::accept, {pair.a->user().name});
    } else if (kind == MessageKind::prepare && f.size() == 4 && f[3] == other.user().name) {
        auto key = dtcall::parse_public_key_file(f[2]);
        if (!key || *key != other.user().keys.public_key) return fail_call(pair, "prepare carried the wrong key");
        if (is_a) send_passthrough(pair);
        phone.register_media();
    } else if (kind == MessageKind::direct && !is_a && f.size() == 4 && f[3] == pair.a->user().name) {
        if (!dtcall::wire::open_voice_key(f[2], pair.voice_box.data()))
            return fail_call(pair, "direct did not carry the caller's voice key");
        pair.b_direct = true;
        check_up(pair);
    } else if (kind == MessageKind::start && f.size() == 3 && f[2] == other.user().name) {
        if (is_a) {
            pair.a_started = true;
            stats_.setup_latency.record(
                std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - pair.called_at).count());
        } else {
            pair.b_started = true;
        }
        check_up(pair);
    }
}

void CallDriver::send_passthrough(Pair& pair) {
    // The caller's voice key, boxed to the callee (the shared key is precomputed).
    std::uint8_t random[dtcall::key_size];
    randombytes_buf(random, sizeof random);
    dtcall::SecretKey voice(random);
    sodium_memzero(random, sizeof random);
    pair.a->command(dtcall::wire::Verb::passthrough,
                    {pair.b->user().name, dtcall::wire::voice_key_blob(pair.voice_box.data(), voice)});
}

void CallDriver::media_acked(Phone& phone) {
    Pair& pair = *pairs_[phone.index() / 2];
    if (pair.phase != Pair::Phase::calling) return;
    Phone& other = &phone == pair.a ? *pair.b : *pair.a;
    phone.command(dtcall::wire::Verb::ready, {other.user().name});
}

void CallDriver::media_failed(Phone& phone) {
    Pair& pair = *pairs_[phone.index() / 2];
    if (pair.phase == Pair::Phase::calling) fail_call(pair, "media registration never acked (10 attempts)");
}

void CallDriver::check_up(Pair& pair) {
    if (pair.phase != Pair::Phase::calling || !pair.a_started || !pair.b_started || !pair.b_direct) return;
    pair.disarm();
    pair.phase = Pair::Phase::up;
    pair.attempts = 0;
    ++stats_.calls_up;
    if (!settings_.repeat) return;
    if (settings_.hold.count() > 0) {
        start_media(pair);
        pair.arm(Pair::Timer::hold, settings_.hold);
    } else {
        hang_up(pair);
    }
}

void CallDriver::hang_up(Pair& pair) {
    stop_media(pair);
    pair.phase = Pair::Phase::hanging_up;
    pair.a->command(dtcall::wire::Verb::end, {pair.b->user().name});
    pair.arm(Pair::Timer::hang_up, hang_up_limit);
}

void CallDriver::fail_call(Pair& pair, const std::string& why) {
    ++stats_.calls_failed;
    ++stats_.failure_reasons[why];
    stop_media(pair);
    pair.a->stop_registration();
    pair.b->stop_registration();
    // Both hang up, whatever state the server has; stray replies (invalid,
    // end) are ignored while recovering.
    pair.a->command(dtcall::wire::Verb::end, {pair.b->user().name});
    pair.b->command(dtcall::wire::Verb::end, {pair.a->user().name});
    pair.phase = Pair::Phase::recovering;
    pair.arm(Pair::Timer::retry, retry_pause);
}

void CallDriver::timer_fired(int, short, void* arg) {
    auto& pair = *static_cast<Pair*>(arg);
    pair.driver->on_timer(pair);
}

void CallDriver::on_timer(Pair& pair) {
    Pair::Timer purpose = pair.purpose;
    pair.purpose = Pair::Timer::none;
    switch (purpose) {
    case Pair::Timer::none: break;
    case Pair::Timer::call_timeout:
        fail_call(pair, "no start within " + std::to_string(settings_.call_timeout.count()) + " ms");
        break;
    case Pair::Timer::hold:
        stop_media(pair);
        pair.phase = Pair::Phase::held_drain;
        pair.arm(Pair::Timer::drain, media_drain);
        break;
    case Pair::Timer::drain: hang_up(pair); break;
    case Pair::Timer::hang_up:
        ++stats_.failure_reasons["no end reached the callee within 5 s of the caller's end (dropped by the server?)"];
        ++stats_.calls_failed;
        pair.phase = Pair::Phase::idle;
        begin_call(pair);
        break;
    case Pair::Timer::retry:
        pair.phase = Pair::Phase::idle;
        begin_call(pair);
        break;
    }
}

// ---- media while a call is held (calls --hold) ------------------------------

void CallDriver::start_media(Pair& pair) {
    if (settings_.media_rate <= 0) return;
    timeval every = to_timeval(std::chrono::microseconds(std::int64_t(1e6 / settings_.media_rate)));
    if (every.tv_sec == 0 && every.tv_usec == 0) every.tv_usec = 1;
    event_add(pair.media_a, &every);
    event_add(pair.media_b, &every);
}

void CallDriver::stop_media(Pair& pair) {
    event_del(pair.media_a);
    event_del(pair.media_b);
}

void CallDriver::media_tick_a(int, short, void* arg) {
    auto& pair = *static_cast<Pair*>(arg);
    pair.driver->send_media(pair, 0);
}

void CallDriver::media_tick_b(int, short, void* arg) {
    auto& pair = *static_cast<Pair*>(arg);
    pair.driver->send_media(pair, 1);
}

void CallDriver::send_media(Pair& pair, int side) {
    Phone& from = side == 0 ? *pair.a : *pair.b;
    if (from.media_fd() < 0) return;
    stamp_media(packet_.data(), std::uint32_t(from.index()), ++pair.sequence[side], monotonic_ns());
    if (::send(from.media_fd(), packet_.data(), packet_.size(), MSG_DONTWAIT) == ssize_t(packet_.size()))
        ++stats_.media_sent;
}

void CallDriver::media_datagram(Phone& phone, const std::uint8_t* data, std::size_t size) {
    std::uint32_t sender;
    std::int64_t sent_ns;
    if (!read_media(data, size, sender, sent_ns)) return;
    Pair& pair = *pairs_[phone.index() / 2];
    Phone& other = &phone == pair.a ? *pair.b : *pair.a;
    if (sender != other.index()) return;
    ++stats_.media_received;
    stats_.media_latency.record(monotonic_ns() - sent_ns);
}

}  // namespace dtbench
