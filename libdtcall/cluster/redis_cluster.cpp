#include "cluster/redis_cluster.hpp"

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

bool key_from(const std::string& bytes, PublicKey& key) {
    if (bytes.size() != key.bytes.size()) return false;
    std::copy(bytes.begin(), bytes.end(), key.bytes.begin());
    return true;
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
                                         [this] { users_.clear(), nodes_.clear(); }}),
      subscriber_(base, RedisLink::Options{options_.redis, "redis subscriber", options_.first_retry,
                                           std::chrono::milliseconds(5000), std::chrono::milliseconds(2000), {},
                                           [this] { resync(); },
                                           [this] { users_.clear(), nodes_.clear(); }}),
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

void RedisCluster::publish(const std::string& channel, const ControlMessage& message) {
    std::vector<std::uint8_t> bytes = encode_control(keys_.control, message);
    if (bytes.empty()) return;  // a field out of its rules: never from our own users
    command({"PUBLISH", channel, std::string(bytes.begin(), bytes.end())});
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
    local_[user] = key;
    command({"HSET", this->key("users:") + options_.node, user, key_bytes(key)});
    ControlMessage m = make(MessageType::notice);
    m.kind = "arrived";
    m.user = user;
    m.blob = key_bytes(key) + (keepudp ? "k" : "");
    publish(this->key("presence"), m);
}

void RedisCluster::withdraw(const std::string& user) {
    local_.erase(user);
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
    publish(key("to:") + node, m);
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
    for (auto it = nodes_.begin(); it != nodes_.end();) {
        auto next = std::next(it);
        if (now - it->second.heard > options_.ttl)
            forget_node(it->first, "not heard from for " + std::to_string(options_.ttl.count()) + " ms");
        it = next;
    }
    if (!commands_.connected()) return;
    std::string ttl = std::to_string(options_.ttl.count());
    command({"SET", key("alive:") + options_.node, options_.node_address, "PX", ttl});
    command({"PEXPIRE", key("users:") + options_.node, ttl});
    for (const auto& [caller, claim] : claims_) {
        command({"PEXPIRE", key("call:") + caller, ttl});
        command({"PEXPIRE", key("call:") + claim.callee, ttl});
    }
    ControlMessage hello = make(MessageType::node_hello);
    hello.address = options_.node_address;
    publish(key("presence"), hello);
}

// (Re)connected: announce this node's users and calls again, and read the
// other nodes' users (pub/sub kept nothing while the link was down).
void RedisCluster::resync() {
    if (!commands_.connected()) return;
    std::string ttl = std::to_string(options_.ttl.count());
    command({"SADD", key("nodes"), options_.node});
    std::vector<std::string> hset{"HSET", key("users:") + options_.node};
    for (const auto& [user, k] : local_) {
        hset.push_back(user);
        hset.push_back(key_bytes(k));
    }
    if (hset.size() > 2) command(hset);
    for (const auto& [caller, claim] : claims_) {
        command({"SET", key("call:") + caller, claim.token, "PX", ttl});
        command({"SET", key("call:") + claim.callee, claim.token, "PX", ttl});
    }
    heartbeat();
    if (!subscriber_.connected()) return;
    command({"SMEMBERS", key("nodes")}, [this](const RedisReply& reply) {
        for (const RedisReply& node : reply.elements)
            if (node.type == RedisReply::Type::string && node.text != options_.node) read_node(node.text);
    });
}

void RedisCluster::read_node(const std::string& node) {
    command({"HGETALL", key("users:") + node}, [this, node](const RedisReply& reply) {
        if (reply.type != RedisReply::Type::array || reply.elements.empty()) return;
        nodes_[node].heard = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i + 1 < reply.elements.size(); i += 2) {
            RemoteUser user{node, {}};
            if (!key_from(reply.elements[i + 1].text, user.key)) continue;
            users_.emplace(reply.elements[i].text, user);  // a newer "arrived" wins
        }
    });
    // Its address, in case its next hello is a while off.
    command({"GET", key("alive:") + node}, [this, node](const RedisReply& reply) {
        if (reply.type != RedisReply::Type::string || !valid_node_address_text(reply.text)) return;
        Node& known = nodes_[node];  // alive: known from now, even without users
        if (known.address.empty()) known.address = reply.text;
        known.heard = std::chrono::steady_clock::now();
    });
}

void RedisCluster::forget_node(std::string node, const std::string& why) {
    // `node` by value: callers pass the map's own key, which the erase frees.
    if (!nodes_.erase(node)) return;
    receiver_.forget(node);  // its place among the 256 senders
    for (auto it = users_.begin(); it != users_.end();) it = it->second.node == node ? users_.erase(it) : std::next(it);
    log(LogLevel::warning, "node " + node + " " + why + "; its users are offline");
    if (host_) host_->node_lost(node);
}

void RedisCluster::received(std::string_view bytes) {
    ControlMessage m;
    Verdict verdict =
        receiver_.receive(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), wall_ms(), m);
    if (verdict != Verdict::accepted) {
        log(LogLevel::warning, std::string("dropped a control message: ") + to_string(verdict));
        return;
    }
    if (m.from == options_.node) return;  // our own, on the presence channel
    bool known = nodes_.count(m.from) != 0;
    nodes_[m.from].heard = std::chrono::steady_clock::now();
    // A node heard from for the first time: its users and its address (its
    // next hello may be a third of a ttl away).
    if (!known && m.type != MessageType::node_bye) read_node(m.from);
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
            bool keepudp = m.blob.size() == user.key.bytes.size() + 1 && m.blob.back() == 'k';
            if (!key_from(keepudp ? m.blob.substr(0, m.blob.size() - 1) : m.blob, user.key)) return;
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
