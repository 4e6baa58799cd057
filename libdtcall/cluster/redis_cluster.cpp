#include "cluster/redis_cluster.hpp"

#include "cluster/redis_address.hpp"
#include "io/timeval.hpp"

#include <event2/event.h>

namespace dtcall::cluster {
namespace {

std::uint64_t wall_ms() {
    return std::uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count());
}

std::string key_bytes(const PublicKey& key) { return std::string(key.bytes.begin(), key.bytes.end()); }

// An "arrived" blob: the user's key, then "k" when the login was keepudp.
bool arrived_key(const std::string& blob, PublicKey& key, bool& keepudp) {
    keepudp = blob.size() == key.bytes.size() + 1 && blob.back() == 'k';
    if (blob.size() != key.bytes.size() + (keepudp ? 1 : 0)) return false;
    std::copy(blob.begin(), blob.begin() + long(key.bytes.size()), key.bytes.begin());
    return true;
}

// The node a control message's bytes claim to be from, when they decode that
// far and the name is valid (so safe in a log line); unauthenticated.
std::string claimed_sender(std::string_view bytes) {
    auto b = reinterpret_cast<const std::uint8_t*>(bytes.data());
    if (bytes.size() < 5 || b[0] != magic[0] || b[1] != magic[1] || b[2] != format_version) return {};
    std::size_t n = b[4];
    if (bytes.size() < 5 + n) return {};
    std::string name(bytes.substr(5, n));
    return valid_node_name(name) ? name : std::string();
}

// Both parties free: claim both for this call, atomically.
const char* claim_script =
    "if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[2]) == 1 then return 0 end "
    "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[2]) return 1";
// Only what this call claimed: a key another call set since stays.
const char* release_script =
    "for i, k in ipairs(KEYS) do if redis.call('get', k) == ARGV[1] then redis.call('del', k) end end return 1";

}  // namespace

RedisCluster::RedisCluster(event_base* base, Options options)
    : base_(base), options_(std::move(options)), keys_(ClusterKeys::derive(options_.key)),
      commands_(base, RedisLink::Options{options_.redis, "redis", options_.first_retry, std::chrono::milliseconds(5000),
                                         std::chrono::milliseconds(2000), options_.log,
                                         [this] { resync(); },
                                         [this] { disconnected(); }}),
      subscriber_(base, RedisLink::Options{options_.redis, "redis subscriber", options_.first_retry,
                                           std::chrono::milliseconds(5000), std::chrono::milliseconds(2000), {},
                                           [this] { resync(); },
                                           [this] { disconnected(); }}),
      receiver_(keys_.control) {
    subscriber_.subscribe(key("presence"), [this](std::string_view m) { received(m); });
    subscriber_.subscribe(key("to:") + options_.node, [this](std::string_view m) { received(m); });
}

RedisCluster::~RedisCluster() { stop(); }

void RedisCluster::start() {
    commands_.start();
    subscriber_.start();
    heartbeat_ = event_new(base_, -1, EV_PERSIST, &RedisCluster::on_heartbeat, this);
    timeval every = to_timeval(options_.ttl / 3);
    event_add(heartbeat_, &every);
}

void RedisCluster::stop() {
    if (heartbeat_) event_free(heartbeat_);
    heartbeat_ = nullptr;
    if (commands_.connected() && announced_) {
        command({"DEL", key("users:") + options_.node, key("alive:") + options_.node});
        command({"SREM", key("nodes"), options_.node});
        publish(key("presence"), make(MessageType::node_bye));
    }
    // The goodbye leaves before the connection closes: written to the socket
    // now (Redis runs what it received); replies are awaited only while the
    // loop still runs, a second at most (dtcalld stops its link after its
    // loop has ended: written, not awaited).
    commands_.stop_politely(std::chrono::milliseconds(1000));
    subscriber_.stop();
    users_.clear();
    nodes_.clear();
}

void RedisCluster::abandon() {
    if (heartbeat_) event_free(heartbeat_);
    heartbeat_ = nullptr;
    commands_.stop();
    subscriber_.stop();
    users_.clear();
    nodes_.clear();
}

void RedisCluster::log(LogLevel level, const std::string& line) const {
    if (options_.log) options_.log(level, "cluster: " + line);
}

bool RedisCluster::command(std::vector<std::string> args, RedisLink::ReplyHandler handler) {
    if (!handler) handler = [](const RedisReply&) {};
    bool sent = commands_.command(args, std::move(handler));
    if (sent) ++commands_sent_;
    return sent;
}

ControlMessage RedisCluster::make(MessageType type) const { return make_control(type, options_.node, wall_ms()); }

std::string RedisCluster::encode(const ControlMessage& message) const {
    std::vector<std::uint8_t> bytes = encode_control(keys_.control, message);
    return std::string(bytes.begin(), bytes.end());  // empty: a field out of its rules, never from our own users
}

void RedisCluster::publish(const std::string& channel, const ControlMessage& message, RedisLink::ReplyHandler handler) {
    std::string bytes = encode(message);
    if (!bytes.empty()) command({"PUBLISH", channel, bytes}, std::move(handler));
}

// A stored value (a hash entry, the alive key): authenticated with the
// control key, from `node`, of `type`. The tag only: stored values are old by
// design, so the receivers' timestamp and replay window does not apply.
bool RedisCluster::stored(const RedisReply& value, MessageType type, const std::string& node,
                          ControlMessage& out) const {
    if (value.type != RedisReply::Type::string) return false;
    auto data = reinterpret_cast<const std::uint8_t*>(value.text.data());
    if (decode_control(keys_.control, data, value.text.size(), out) != DecodeError::none) return false;
    return out.type == type && out.from == node;
}

const ClusterLink::RemoteUser* RedisCluster::remote(const std::string& user) const {
    auto it = users_.find(user);
    return it == users_.end() ? nullptr : &it->second;
}

const std::string* RedisCluster::node_address(const std::string& node) const {
    auto it = nodes_.find(node);
    return it == nodes_.end() || it->second.address.empty() ? nullptr : &it->second.address;
}

void RedisCluster::announce(const std::string& user, const PublicKey& key, bool keepudp) {
    left_offline_.erase(user);
    if (!commands_.connected()) arrived_offline_[user] = key;
    ControlMessage m = make(MessageType::notice);
    m.kind = "arrived";
    m.user = user;
    m.blob = key_bytes(key) + (keepudp ? "k" : "");
    // The same authenticated bytes, stored and published: a reader checks
    // them as it checks a message.
    std::string bytes = encode(m);
    if (bytes.empty()) return;
    local_[user] = bytes;
    command({"HSET", this->key("users:") + options_.node, user, bytes});
    command({"PUBLISH", this->key("presence"), bytes});
}

void RedisCluster::withdraw(const std::string& user) {
    local_.erase(user);
    arrived_offline_.erase(user);
    if (!commands_.connected()) left_offline_.insert(user);
    command({"HDEL", key("users:") + options_.node, user});
    ControlMessage m = make(MessageType::user_left);
    m.user = user;
    publish(key("presence"), m);
}

void RedisCluster::send(const std::string& node, const std::string& kind, const std::string& user,
                        const std::string& other, const std::string& blob) {
    ControlMessage m = make(MessageType::notice);
    m.kind = kind;
    m.user = user;
    m.other = other;
    m.blob = blob;
    // Through the queue, in order after what waits there.
    if (queue_.size() >= max_queued) {
        queue_.pop_front();
        ++queue_dropped_;
    }
    queue_.push_back(Queued{node, std::move(m), std::chrono::steady_clock::now()});
    flush_queue();
}

// What waits for Redis goes out in order, stamped now (the receivers accept
// 30 s); one its node did not hear (no subscriber: that node's link is not
// back yet) waits for the next heartbeat, until the node is forgotten.
void RedisCluster::flush_queue() {
    auto now = std::chrono::steady_clock::now();
    while (!queue_.empty() && now - queue_.front().since > max_queued_age) {
        queue_.pop_front();
        ++queue_dropped_;
    }
    if (!commands_.connected()) return;
    std::deque<Queued> going;
    going.swap(queue_);
    std::weak_ptr<RedisCluster*> alive = alive_;
    for (Queued& q : going) {
        ControlMessage fresh = make(q.message.type);
        q.message.timestamp_ms = fresh.timestamp_ms;
        q.message.nonce = fresh.nonce;
        auto waiting = std::make_shared<Queued>(q);
        publish(key("to:") + q.node, q.message, [this, alive, waiting](const RedisReply& reply) {
            if (alive.expired()) return;
            // Not heard (no subscriber yet), or lost with the connection
            // (it may have gone out: the receiver drops a copy it saw).
            bool unheard = (reply.type == RedisReply::Type::integer && reply.integer == 0) ||
                           reply.type == RedisReply::Type::lost;
            if (!unheard || nodes_.count(waiting->node) == 0) return;
            if (queue_.size() >= max_queued) {
                ++queue_dropped_;
                return;
            }
            queue_.push_back(std::move(*waiting));
        });
    }
}

void RedisCluster::claim_call(const std::string& caller, const std::string& callee, std::function<void(bool)> done) {
    std::string token = options_.node + "/" + std::to_string(++serial_);
    std::weak_ptr<RedisCluster*> alive = alive_;
    bool sent = command({"EVAL", claim_script, "2", key("call:") + caller, key("call:") + callee, token,
                         std::to_string(options_.ttl.count())},
                        [this, alive, caller, callee, token, done](const RedisReply& reply) {
                            if (alive.expired()) return;
                            bool claimed = reply.type == RedisReply::Type::integer && reply.integer == 1;
                            if (claimed) claims_[caller] = Claim{callee, token};
                            done(claimed);
                        });
    if (!sent) {
        // Not connected: answered from the loop, never from inside the call.
        auto* pending = new std::function<void()>([done] { done(false); });
        event_base_once(base_, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* arg) {
            std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(arg));
            (*f)();
        }, pending, nullptr);
    }
}

void RedisCluster::release_call(const std::string& caller, const std::string& callee) {
    auto it = claims_.find(caller);
    if (it == claims_.end() || it->second.callee != callee) return;
    command({"EVAL", release_script, "2", key("call:") + caller, key("call:") + callee, it->second.token});
    claims_.erase(it);
}

void RedisCluster::on_heartbeat(int, short, void* self) { static_cast<RedisCluster*>(self)->heartbeat(); }

// One round, whatever the number of users: the node's key, its users' hash,
// the calls it owns, and a hello for the others' caches.
void RedisCluster::heartbeat() {
    auto now = std::chrono::steady_clock::now();
    summarize_drops(now);
    // Only while Redis is here: losing it must not end the calls that are up
    // (resync gives every node a fresh start when it is back).
    if (available()) {
        for (auto it = nodes_.begin(); it != nodes_.end();) {
            auto next = std::next(it);
            if (now - it->second.heard > options_.ttl)
                forget_node(it->first, "not heard from for " + std::to_string(options_.ttl.count()) + " ms");
            it = next;
        }
    }
    if (!commands_.connected()) return;
    std::string ttl = std::to_string(options_.ttl.count());
    ControlMessage hello = make(MessageType::node_hello);
    hello.address = options_.node_address;
    std::string hello_bytes = encode(hello);
    command({"SET", key("alive:") + options_.node, hello_bytes, "PX", ttl});
    command({"PEXPIRE", key("users:") + options_.node, ttl});
    for (const auto& [caller, claim] : claims_) {
        command({"PEXPIRE", key("call:") + caller, ttl});
        command({"PEXPIRE", key("call:") + claim.callee, ttl});
    }
    command({"PUBLISH", key("presence"), hello_bytes});
    flush_queue();
}

// (Re)connected: announce this node's users and calls again, and read the
// other nodes' users (pub/sub kept nothing while the link was down).
void RedisCluster::resync() {
    if (!commands_.connected()) return;
    // Every known node gets a ttl from now to be heard from again.
    auto now = std::chrono::steady_clock::now();
    for (auto& entry : nodes_) entry.second.heard = now;
    std::string ttl = std::to_string(options_.ttl.count());
    if (!announced_) {
        // A process restarted within the ttl finds its predecessor's users:
        // gone, and the others told (they end calls with them), before this
        // one announces its own.
        announced_ = true;
        std::weak_ptr<RedisCluster*> alive = alive_;
        command({"GET", key("alive:") + options_.node}, [this, alive](const RedisReply& reply) {
            ControlMessage hello;
            if (alive.expired() || !stored(reply, MessageType::node_hello, options_.node, hello)) return;
            if (hello.address != options_.node_address)
                log(LogLevel::error, "another process seems to use node_name " + options_.node + " (at " +
                                         hello.address + "; this one is at " + options_.node_address +
                                         "): two nodes with one name take each other's users and calls");
        });
        command({"DEL", key("users:") + options_.node});
        publish(key("presence"), make(MessageType::node_bye));
    }
    command({"SADD", key("nodes"), options_.node});
    std::vector<std::string> hset{"HSET", key("users:") + options_.node};
    for (const auto& [user, arrived] : local_) {
        hset.push_back(user);
        hset.push_back(arrived);
    }
    if (hset.size() > 2) command(hset);
    // Who came and went meanwhile, told again (fresh messages: the others
    // may have read this node before its HSET above).
    for (const std::string& user : left_offline_) withdraw(user);
    left_offline_.clear();
    auto arrived = std::move(arrived_offline_);
    arrived_offline_.clear();
    for (const auto& [user, key] : arrived)
        if (local_.count(user)) announce(user, key);
    for (const auto& [caller, claim] : claims_) {
        command({"SET", key("call:") + caller, claim.token, "PX", ttl});
        command({"SET", key("call:") + claim.callee, claim.token, "PX", ttl});
    }
    heartbeat();
    if (!subscriber_.connected()) return;
    std::weak_ptr<RedisCluster*> alive = alive_;
    command({"SMEMBERS", key("nodes")}, [this, alive](const RedisReply& reply) {
        if (alive.expired()) return;
        std::size_t read = 0;
        for (const RedisReply& node : reply.elements) {
            bool valid = node.type == RedisReply::Type::string && valid_node_name(node.text);
            if (valid && node.text == options_.node) continue;
            if (!valid || read == max_nodes) {
                ++stored_rejected_;
                continue;
            }
            ++read;
            read_node(node.text);
        }
    });
}

// Only what `node` itself stored, authenticated: its "arrived" messages as
// the hash values, its hello as the alive key (anyone who can write to Redis
// could otherwise give a user another key, or a node another address).
// The others' users look offline while Redis is away; the nodes stay known
// (calls with their users go on), to be read again when next heard from.
void RedisCluster::disconnected() {
    users_.clear();
    read_.clear();
    reading_.clear();
}

// Read until its alive key is found: a node whose key had expired (Redis
// away longer than a ttl) is read again when next heard from.
void RedisCluster::read_node(const std::string& node) {
    if (!reading_.insert(node).second) return;
    std::weak_ptr<RedisCluster*> alive = alive_;
    command({"HGETALL", key("users:") + node}, [this, alive, node](const RedisReply& reply) {
        if (alive.expired() || reply.type != RedisReply::Type::array) return;
        std::size_t taken = 0;
        for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
            const std::string& name = reply.elements[i].text;
            ControlMessage m;
            RemoteUser user{node, {}};
            bool keepudp = false;
            bool good = taken < max_users_per_node && stored(reply.elements[i + 1], MessageType::notice, node, m) &&
                        m.kind == "arrived" && m.user == name && arrived_key(m.blob, user.key, keepudp);
            if (!good) {
                ++stored_rejected_;
                continue;
            }
            ++taken;
            users_.emplace(name, user);  // a newer "arrived" wins
        }
        if (taken > 0) nodes_[node].heard = std::chrono::steady_clock::now();
    });
    // Its address, in case its next hello is a while off.
    command({"GET", key("alive:") + node}, [this, alive, node](const RedisReply& reply) {
        if (alive.expired()) return;
        reading_.erase(node);
        if (reply.type == RedisReply::Type::nil) return;
        ControlMessage hello;
        if (!stored(reply, MessageType::node_hello, node, hello)) {
            ++stored_rejected_;
            return;
        }
        read_.insert(node);
        Node& known = nodes_[node];  // alive: known from now, even without users
        if (known.address.empty()) known.address = hello.address;
        known.heard = std::chrono::steady_clock::now();
    });
}

void RedisCluster::forget_node(std::string node, const std::string& why) {
    // `node` by value: callers pass the map's own key, which the erase frees.
    read_.erase(node);
    reading_.erase(node);
    if (!nodes_.erase(node)) return;
    receiver_.forget(node);  // its place among the 256 senders
    for (auto it = queue_.begin(); it != queue_.end();) it = it->node == node ? queue_.erase(it) : std::next(it);
    for (auto it = users_.begin(); it != users_.end();) it = it->second.node == node ? users_.erase(it) : std::next(it);
    log(LogLevel::warning, "node " + node + " " + why + "; its users are offline");
    if (host_) host_->node_lost(node);
}

void RedisCluster::received(std::string_view bytes) {
    ControlMessage m;
    Verdict verdict =
        receiver_.receive(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), wall_ms(), m);
    if (verdict != Verdict::accepted) return dropped(verdict, bytes);
    if (m.from == options_.node) return;  // our own, on the presence channel
    // The goodbye of a node not known here (a first start's clean-up):
    // nothing to forget but its place among the senders.
    if (m.type == MessageType::node_bye && nodes_.count(m.from) == 0) return receiver_.forget(m.from);
    Node& node = nodes_[m.from];
    node.heard = std::chrono::steady_clock::now();
    // A node heard from for the first time, or first since Redis was lost:
    // its users and its address (its next hello may be a third of a ttl away).
    if (read_.count(m.from) == 0 && m.type != MessageType::node_bye) read_node(m.from);
    switch (m.type) {
    case MessageType::node_hello: nodes_[m.from].address = m.address; break;
    case MessageType::node_bye: forget_node(m.from, "left the cluster"); break;
    case MessageType::user_left: {
        auto it = users_.find(m.user);
        if (it != users_.end() && it->second.node == m.from) users_.erase(it);
        break;
    }
    case MessageType::notice:
        if (m.kind == "arrived") {
            RemoteUser user{m.from, {}};
            bool keepudp = false;
            if (!arrived_key(m.blob, user.key, keepudp)) return;
            users_[m.user] = user;
            if (host_) host_->remote_arrival(m.user, m.from, keepudp);
        } else if (host_) {
            host_->node_message(m.from, m.kind, m.user, m.other, m.blob);
        }
        break;
    case MessageType::media: break;
    }
}

}  // namespace dtcall::cluster

namespace dtcall::cluster {
namespace {

const char* stale_hint = " (stale: a timestamp more than 30 s from this node's clock, usually clocks that far apart: "
                         "nodes need NTP)";

}  // namespace

// Anyone who can PUBLISH can send junk, and a node with another cluster key
// is dropped at each of its heartbeats: the first drop of each verdict is
// logged, then one summary a minute.
void RedisCluster::dropped(Verdict verdict, std::string_view bytes) {
    std::string claimed = claimed_sender(bytes);
    if (!claimed.empty()) last_claimed_ = claimed;
    auto index = std::size_t(verdict);
    if (index >= verdicts) return;
    if (drop_logged_[index]) {
        ++drops_[index];
        return;
    }
    drop_logged_[index] = true;
    log(LogLevel::warning, std::string("dropped a control message: ") + to_string(verdict) +
                               (claimed.empty() ? "" : ", claimed to be from node " + claimed) +
                               (verdict == Verdict::stale ? stale_hint : "") +
                               "; more drops are summed up once a minute");
}

void RedisCluster::summarize_drops(std::chrono::steady_clock::time_point now) {
    if (now - drops_since_ < std::chrono::minutes(1)) return;
    drops_since_ = now;
    std::uint64_t total = 0;
    std::string parts;
    for (std::size_t i = 0; i < verdicts; ++i) {
        if (drops_[i] == 0) continue;
        total += drops_[i];
        parts += std::string(parts.empty() ? "" : ", ") + to_string(Verdict(i)) + " " + std::to_string(drops_[i]);
    }
    bool stale = drops_[std::size_t(Verdict::stale)] != 0;
    drops_.fill(0);
    std::string claimed;
    claimed.swap(last_claimed_);
    if (total == 0) return;
    log(LogLevel::warning, "dropped " + std::to_string(total) + " control messages in the last minute: " + parts +
                               (claimed.empty() ? "" : "; the last claimed to be from node " + claimed) +
                               (stale ? stale_hint : ""));
}

}  // namespace dtcall::cluster
