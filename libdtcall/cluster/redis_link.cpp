#include "cluster/redis_link.hpp"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>

namespace dtcall::cluster {
namespace {

RedisReply copy_reply(const redisReply* r) {
    RedisReply out;
    switch (r->type) {
    case REDIS_REPLY_STRING: out.type = RedisReply::Type::string; break;
    case REDIS_REPLY_STATUS: out.type = RedisReply::Type::status; break;
    case REDIS_REPLY_ERROR: out.type = RedisReply::Type::error; break;
    case REDIS_REPLY_INTEGER: out.type = RedisReply::Type::integer; break;
    case REDIS_REPLY_NIL: out.type = RedisReply::Type::nil; break;
    case REDIS_REPLY_ARRAY: out.type = RedisReply::Type::array; break;
    default: out.type = RedisReply::Type::error; out.text = "unknown reply type"; return out;
    }
    if (r->str != nullptr) out.text.assign(r->str, r->len);
    out.integer = r->integer;
    // hiredis's reader bounds the nesting (7 levels), so this recursion is bounded too.
    for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
    return out;
}

timeval to_timeval(std::chrono::milliseconds ms) {
    return timeval{long(ms.count() / 1000), long(ms.count() % 1000 * 1000)};
}

std::string seconds_text(std::chrono::steady_clock::duration d) {
    auto tenths = std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 100;
    return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}

}  // namespace

RedisLink::RedisLink(event_base* base, Options options)
    : base_(base), options_(std::move(options)), retry_(options_.first_retry) {
    timer_ = evtimer_new(base_, &RedisLink::on_timer, this);
}

RedisLink::~RedisLink() {
    stop();
    if (timer_ != nullptr) event_free(timer_);
}

void RedisLink::log(LogLevel level, const std::string& line) const {
    if (options_.log) options_.log(level, options_.name + " (" + options_.address.text() + "): " + line);
}

void RedisLink::start() {
    if (state_ != State::idle) return;
    connect_now();
}

void RedisLink::stop() {
    state_ = State::stopped;
    if (timer_ != nullptr) evtimer_del(timer_);
    if (context_ != nullptr) {
        // Callbacks run by the free (pending replies with NULL) see no link and
        // only release their handlers. Inside a hiredis callback the free is
        // deferred by hiredis until that callback returns; data is null by then.
        redisAsyncContext* ac = context_;
        context_ = nullptr;
        ac->data = nullptr;
        redisAsyncFree(ac);
    }
}

void RedisLink::stop_politely(std::chrono::milliseconds limit) {
    if (state_ == State::closing) return;
    if (state_ != State::connected || context_ == nullptr) return stop();
    state_ = State::closing;
    evtimer_del(timer_);
    timeval bound = to_timeval(limit);
    evtimer_add(timer_, &bound);
    redisAsyncContext* ac = context_;
    // Out now, as far as the socket takes it without waiting: the loop may
    // not run again (a process that is exiting).
    redisAsyncHandleWrite(ac);
    // Closes once the replies are in (at once when none is due): on_disconnect.
    if (context_ != nullptr) redisAsyncDisconnect(ac);
}

void RedisLink::connect_now() {
    redisAsyncContext* ac = options_.address.is_unix()
                                ? redisAsyncConnectUnix(options_.address.unix_path.c_str())
                                : redisAsyncConnect(options_.address.host.c_str(), options_.address.port);
    if (ac == nullptr) return lost("out of memory");
    if (ac->err != 0) {
        std::string why = ac->errstr;
        redisAsyncFree(ac);
        return lost(why);
    }
    ac->data = this;
    if (redisLibeventAttach(ac, base_) != REDIS_OK) {
        ac->data = nullptr;
        redisAsyncFree(ac);
        return lost("cannot attach to the event loop");
    }
    redisAsyncSetConnectCallback(ac, &RedisLink::on_connect);
    redisAsyncSetDisconnectCallback(ac, &RedisLink::on_disconnect);
    context_ = ac;
    state_ = State::connecting;
    timeval timeout = to_timeval(options_.connect_timeout);
    evtimer_add(timer_, &timeout);
}

void RedisLink::on_timer(int, short, void* arg) {
    auto* self = static_cast<RedisLink*>(arg);
    if (self->state_ == State::waiting_to_retry) {
        self->connect_now();
    } else if (self->state_ == State::closing) {
        self->stop();  // the replies did not come in time
    } else if (self->state_ == State::connecting && self->context_ != nullptr) {
        // Not inside a hiredis callback: freeing here is immediate, and a
        // context that never connected calls no callback.
        redisAsyncContext* ac = self->context_;
        self->context_ = nullptr;
        ac->data = nullptr;
        redisAsyncFree(ac);
        self->lost("no connection within " + std::to_string(self->options_.connect_timeout.count()) + " ms");
    }
}

void RedisLink::on_connect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisLink*>(ac->data);
    if (self == nullptr || self->state_ != State::connecting) return;
    evtimer_del(self->timer_);
    if (status != REDIS_OK) {
        self->context_ = nullptr;  // hiredis frees it after this callback
        return self->lost(ac->errstr);
    }
    self->state_ = State::connected;
    ++self->connects_;
    self->retry_ = self->options_.first_retry;
    if (!self->options_.address.is_unix()) (void)redisEnableKeepAlive(&self->context_->c);  // half-open TCP
    if (self->failed_attempts_ > 0) {
        self->log(LogLevel::info, "connected again after " + std::to_string(self->failed_attempts_) +
                                      " failed attempts (" +
                                      seconds_text(std::chrono::steady_clock::now() - self->outage_began_) + ")");
    } else {
        self->log(LogLevel::info, "connected");
    }
    self->failed_attempts_ = 0;
    for (const auto& entry : self->subscriptions_) self->send_subscribe(entry.first);
    if (self->options_.on_connected) self->options_.on_connected();
}

void RedisLink::on_disconnect(const redisAsyncContext* ac, int status) {
    auto* self = static_cast<RedisLink*>(ac->data);
    if (self == nullptr || self->state_ == State::stopped) return;
    self->context_ = nullptr;  // hiredis frees it after this callback
    if (self->state_ == State::closing) {
        self->state_ = State::stopped;
        evtimer_del(self->timer_);
        return;
    }
    self->lost(status == REDIS_OK ? "closed" : ac->errstr);
}

// Once per outage: the first failure is logged, the retries are not, and the
// reconnection says how long it took (on_connect).
void RedisLink::lost(const std::string& why) {
    bool was_connected = state_ == State::connected;
    if (failed_attempts_ == 0) {
        outage_began_ = std::chrono::steady_clock::now();
        log(LogLevel::warning, std::string(was_connected ? "connection lost" : "cannot connect") + " (" + why +
                                   "); retrying in the background, every " +
                                   std::to_string(options_.max_retry.count()) + " ms at most");
    }
    ++failed_attempts_;
    schedule_retry();
    if (was_connected && options_.on_disconnected) options_.on_disconnected();
}

void RedisLink::schedule_retry() {
    state_ = State::waiting_to_retry;
    timeval delay = to_timeval(retry_);
    evtimer_add(timer_, &delay);
    retry_ = std::min(retry_ * 2, options_.max_retry);
}

bool RedisLink::command(const std::vector<std::string>& args, ReplyHandler handler) {
    if (state_ != State::connected || context_ == nullptr || !subscriptions_.empty() || args.empty()) return false;
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const std::string& a : args) {
        argv.push_back(a.data());
        lengths.push_back(a.size());
    }
    auto* pending = new Pending{std::move(handler), std::chrono::steady_clock::now()};
    if (redisAsyncCommandArgv(context_, &RedisLink::on_reply, pending, int(argv.size()), argv.data(),
                              lengths.data()) != REDIS_OK) {
        delete pending;
        return false;
    }
    return true;
}

void RedisLink::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
    std::unique_ptr<Pending> pending(static_cast<Pending*>(privdata));
    auto* self = static_cast<RedisLink*>(ac->data);
    if (self == nullptr) return;  // the link is going away
    if (reply != nullptr) self->round_trips_.observe(std::chrono::steady_clock::now() - pending->sent);
    if (!pending->handler) return;
    RedisReply copy = reply != nullptr ? copy_reply(static_cast<redisReply*>(reply)) : RedisReply{};
    pending->handler(copy);
}

void RedisLink::subscribe(const std::string& channel, MessageHandler handler) {
    bool fresh = subscriptions_.count(channel) == 0;
    subscriptions_[channel] = std::move(handler);
    if (fresh && state_ == State::connected) send_subscribe(channel);
}

void RedisLink::send_subscribe(const std::string& channel) {
    auto it = subscriptions_.find(channel);
    const char* argv[] = {"SUBSCRIBE", channel.data()};
    const std::size_t lengths[] = {9, channel.size()};
    (void)redisAsyncCommandArgv(context_, &RedisLink::on_message, &it->second, 2, argv, lengths);
}

// Every reply on a subscribed channel: ["subscribe", channel, count] once,
// then ["message", channel, payload] per message. NULL when the context goes.
void RedisLink::on_message(redisAsyncContext* ac, void* reply, void* privdata) {
    if (ac->data == nullptr || reply == nullptr) return;
    auto* r = static_cast<redisReply*>(reply);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply* kind = r->element[0];
    const redisReply* payload = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || std::string_view(kind->str, kind->len) != "message") return;
    if (payload->type != REDIS_REPLY_STRING) return;
    auto* handler = static_cast<MessageHandler*>(privdata);
    if (*handler) (*handler)(std::string_view(payload->str, payload->len));
}

}  // namespace dtcall::cluster
