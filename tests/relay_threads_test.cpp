// Optional relay threads (Config::media_threads): the table they read, the
// hand-off queue to the event-loop thread, and whole calls relayed by them.
// Also built under ThreadSanitizer by .ci/run.
#include <doctest/doctest.h>

#include "harness.hpp"
#include "relay/forward_table.hpp"
#include "relay/relay_thread.hpp"

#include "crypto/crypto.hpp"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <unistd.h>
#include <atomic>
#include <thread>

using namespace test_support;
using namespace dtcall;

namespace {

AddressKey key_of_port(std::uint16_t port) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    AddressKey key;
    make_address_key(reinterpret_cast<const sockaddr*>(&in), key);
    return key;
}

// Table number n maps ports 1..n, each to a target whose socket_index is n.
std::shared_ptr<const ForwardTable> numbered_table(unsigned n) {
    auto table = std::make_shared<ForwardTable>();
    for (unsigned port = 1; port <= n; ++port) {
        table->by_source.insert(key_of_port(std::uint16_t(port)), std::uint32_t(table->targets.size()));
        table->targets.push_back({CompactAddress{}, n, nullptr});
    }
    return table;
}

TestServer threaded_server(std::vector<std::string> names, unsigned threads) {
    return TestServer(std::move(names), [threads](Config& c) { c.media_threads = threads; });
}

std::vector<std::string> user_names(int count) {
    std::vector<std::string> names;
    for (int i = 0; i < count; ++i) names.push_back("user" + std::to_string(i));
    return names;
}

Bytes numbered_payload(int pair, int direction, int sequence) {
    Bytes payload(60 + sequence);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = std::uint8_t(pair * 7 + direction * 101 + sequence + i);
    return payload;
}

}  // namespace

TEST_CASE("readers see whole tables, newer and newer, while the publisher replaces them") {
    ForwardTablePublication publication;
    publication.publish(numbered_table(0));
    constexpr unsigned last = 300;
    std::atomic<int> inconsistent{0}, backwards{0};
    auto read = [&] {
        ForwardTablePublication::Reader reader(publication);
        unsigned seen = 0;
        // Bounded: the publisher finishes in well under this many rounds.
        for (int round = 0; round < 50000000 && seen < last; ++round) {
            reader.refresh();
            const ForwardTable* table = reader.table();
            unsigned n = unsigned(table->targets.size());
            if (n < seen) ++backwards;
            seen = n;
            // Every entry of table n says n, and port n is in it.
            for (const auto& target : table->targets)
                if (target.socket_index != n) ++inconsistent;
            if (n > 0 && table->find(key_of_port(std::uint16_t(n))) == nullptr) ++inconsistent;
        }
        return seen;
    };
    unsigned seen_a = 0, seen_b = 0;
    std::thread a([&] { seen_a = read(); });
    std::thread b([&] { seen_b = read(); });
    for (unsigned n = 1; n <= last; ++n) publication.publish(numbered_table(n));
    a.join();
    b.join();
    CHECK(inconsistent == 0);
    CHECK(backwards == 0);
    CHECK(seen_a == last);
    CHECK(seen_b == last);
}

TEST_CASE("a reader keeps its table alive after the publisher replaced it") {
    ForwardTablePublication publication;
    publication.publish(numbered_table(3));
    ForwardTablePublication::Reader reader(publication);
    reader.refresh();
    const ForwardTable* held = reader.table();
    publication.publish(numbered_table(5));
    CHECK(held->targets.size() == 3);  // still readable: the reader's shared_ptr holds it
    reader.refresh();
    CHECK(reader.table()->targets.size() == 5);
}

TEST_CASE("the hand-off queue is bounded, wakes once, and refuses what cannot be a registration") {
    HandoffQueue queue;
    sockaddr_in from{};
    from.sin_family = AF_INET;
    std::uint8_t data[Handoff::max_size + 1] = {7};
    bool was_empty = false;
    CHECK(queue.push(data, 118, reinterpret_cast<sockaddr*>(&from), sizeof from, 0, was_empty));
    CHECK(was_empty);
    CHECK(queue.push(data, 118, reinterpret_cast<sockaddr*>(&from), sizeof from, 1, was_empty));
    CHECK_FALSE(was_empty);  // the first push's wake-up covers this one
    CHECK_FALSE(queue.push(data, Handoff::max_size + 1, reinterpret_cast<sockaddr*>(&from), sizeof from, 0,
                           was_empty));
    for (std::size_t i = 2; i < HandoffQueue::capacity; ++i)
        REQUIRE(queue.push(data, 60, reinterpret_cast<sockaddr*>(&from), sizeof from, 0, was_empty));
    CHECK_FALSE(queue.push(data, 60, reinterpret_cast<sockaddr*>(&from), sizeof from, 0, was_empty));
    std::vector<Handoff> taken;
    queue.take(taken);
    REQUIRE(taken.size() == HandoffQueue::capacity);
    CHECK(taken[0].size == 118);
    CHECK(taken[0].data[0] == 7);
    CHECK(taken[1].socket_index == 1);
    CHECK(queue.push(data, 60, reinterpret_cast<sockaddr*>(&from), sizeof from, 0, was_empty));
    CHECK(was_empty);
}

TEST_CASE("with two relay threads, eight calls relay every datagram to the right peer, unchanged") {
    constexpr int pairs = 8, per_direction = 20;
    TestServer s = threaded_server(user_names(2 * pairs), 2);
    std::vector<std::unique_ptr<CallPair>> calls;
    for (int p = 0; p < pairs; ++p) {
        calls.push_back(std::make_unique<CallPair>(s, "user" + std::to_string(2 * p), "user" + std::to_string(2 * p + 1)));
        REQUIRE(calls.back()->established);
    }
    for (int sequence = 0; sequence < per_direction; ++sequence) {
        for (int p = 0; p < pairs; ++p) {
            calls[p]->alice_media.send(numbered_payload(p, 0, sequence));
            calls[p]->bob_media.send(numbered_payload(p, 1, sequence));
        }
        for (int p = 0; p < pairs; ++p) {
            CHECK(calls[p]->bob_media.receive() == numbered_payload(p, 0, sequence));
            CHECK(calls[p]->alice_media.receive() == numbered_payload(p, 1, sequence));
        }
    }
    for (auto& call : calls) {
        CHECK(call->alice_media.receive(quiet) == std::nullopt);
        CHECK(call->bob_media.receive(quiet) == std::nullopt);
    }
    ServerStats stats = s.server->stats();
    CHECK(stats.media_packets_relayed == 2 * pairs * per_direction);
    // 16 peers spread by the kernel over 3 sockets: all on the event-loop
    // thread's has a chance of (1/3)^16.
    CHECK(stats.media_packets_relayed_by_threads > 0);
    CHECK(stats.media_packets_dropped == 0);
}

TEST_CASE("with relay threads, media stops at the end of the call") {
    TestServer s = threaded_server({"alice", "bob"}, 2);
    CallPair call(s);
    REQUIRE(call.established);
    call.alice_media.send(Bytes(40, 1));
    REQUIRE(call.bob_media.receive() == Bytes(40, 1));
    call.alice.command("end|bob|" + call.alice.sk);
    REQUIRE(call.bob.next_body() == "end|alice");
    for (int i = 0; i < 5; ++i) {
        call.alice_media.send(Bytes(40, 2));
        call.bob_media.send(Bytes(400, 3));
    }
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    CHECK(call.alice_media.receive(quiet) == std::nullopt);
    CHECK(s.server->stats().media_packets_relayed == 1);
}

TEST_CASE("the relay threads' counts stay in the totals after the server stops") {
    TestServer s = threaded_server(user_names(8), 2);
    std::vector<std::unique_ptr<CallPair>> calls;
    for (int p = 0; p < 4; ++p) {
        calls.push_back(std::make_unique<CallPair>(s, "user" + std::to_string(2 * p), "user" + std::to_string(2 * p + 1)));
        REQUIRE(calls.back()->established);
        calls.back()->alice_media.send(Bytes(20, 1));
        REQUIRE(calls.back()->bob_media.receive() == Bytes(20, 1));
        calls.back()->bob_media.send(Bytes(20, 2));
        REQUIRE(calls.back()->alice_media.receive() == Bytes(20, 2));
    }
    ServerStats before = s.server->stats();
    CHECK(before.media_packets_relayed == 8);
    s.server->stop();
    s.pump(200ms);
    ServerStats after = s.server->stats();
    CHECK(after.media_packets_relayed == before.media_packets_relayed);
    CHECK(after.media_packets_relayed_by_threads == before.media_packets_relayed_by_threads);
}

TEST_CASE("with relay threads, a media port somebody else holds is refused, not shared") {
    // Another SO_REUSEPORT socket of this user on the port: without the probe
    // the server's sockets would join its group and split the traffic with it.
    int squatter = ::socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    setsockopt(squatter, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    getsockname(squatter, reinterpret_cast<sockaddr*>(&address), &length);
    std::uint16_t port = ntohs(address.sin_port);
    std::string error;
    try {
        TestServer s({"alice"}, [port](Config& c) {
            c.media_threads = 2;
            c.media_port = port;
        });
    } catch (const std::runtime_error& e) {
        error = e.what();
    }
    ::close(squatter);
    CHECK(error.find("media") != std::string::npos);
    CHECK(error.find(std::to_string(port)) != std::string::npos);
}


namespace {

// Joins the server's media port group and attaches a classic BPF program
// that sends every datagram to socket `index` of the group: 0 is the
// event-loop thread's, 1 and up the relay threads' (the order they bound).
// The program stays with the group after this socket closes.
void steer_media(std::uint16_t port, std::uint32_t index) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    int one = 1;
    REQUIRE(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    sock_filter always[] = {BPF_STMT(BPF_RET | BPF_K, index)};
    sock_fprog program{1, always};
    REQUIRE(setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &program, sizeof program) == 0);
    ::close(fd);
}

}  // namespace

TEST_CASE("everything steered to one relay thread: registration, relay, a new address, the end") {
    TestServer s = threaded_server({"alice", "bob"}, 2);
    steer_media(s.server->media_port(), 1);
    CallPair call(s);  // both registrations come in on the thread and are handed over
    REQUIRE(call.established);
    call.alice_media.send(Bytes(50, 1));
    CHECK(call.bob_media.receive() == Bytes(50, 1));
    call.bob_media.send(Bytes(50, 2));
    CHECK(call.alice_media.receive() == Bytes(50, 2));

    // NAT rebinding: alice registers from a new port; the thread follows once
    // the new table reaches it (bounded wait: it is rebuilt after the change).
    RawMedia moved(s);
    REQUIRE(moved.register_with(call.alice));
    std::optional<Bytes> arrived;
    for (int attempt = 0; attempt < 40 && !arrived; ++attempt) {
        call.bob_media.send(Bytes(50, 3));
        arrived = moved.receive(25ms);
    }
    CHECK(arrived == Bytes(50, 3));
    moved.send(Bytes(50, 4));
    CHECK(call.bob_media.receive() == Bytes(50, 4));

    call.bob.command("end|alice|" + call.bob.sk);
    REQUIRE(call.alice.next_body() == "end|bob");
    s.pump(50ms);
    moved.send(Bytes(50, 5));
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    ServerStats stats = s.server->stats();
    CHECK(stats.media_packets_relayed >= 4);
    CHECK(stats.media_packets_relayed_by_threads == stats.media_packets_relayed);
}

TEST_CASE("steered to the event-loop thread's socket, the relay threads relay nothing") {
    TestServer s = threaded_server({"alice", "bob"}, 2);
    steer_media(s.server->media_port(), 0);
    CallPair call(s);
    REQUIRE(call.established);
    for (int i = 0; i < 5; ++i) {
        call.alice_media.send(Bytes(30, std::uint8_t(i)));
        CHECK(call.bob_media.receive() == Bytes(30, std::uint8_t(i)));
    }
    CHECK(s.server->stats().media_packets_relayed == 5);
    CHECK(s.server->stats().media_packets_relayed_by_threads == 0);
}

TEST_CASE("the threads' table is rebuilt when media may start, not on every ready") {
    TestServer s = threaded_server({"alice", "bob"}, 1);
    CallPair call(s);
    REQUIRE(call.established);
    s.pump(50ms);
    std::uint64_t publishes = s.server->stats().media_table_publishes;
    CHECK(publishes >= 1);
    for (int i = 0; i < 20; ++i) call.alice.command("ready|bob|" + call.alice.sk);  // changes nothing
    s.pump(100ms);
    CHECK(s.server->stats().media_table_publishes == publishes);
    call.alice.command("end|bob|" + call.alice.sk);
    s.pump(100ms);
    CHECK(s.server->stats().media_table_publishes > publishes);  // the call's routes are gone
}

TEST_CASE("junk steered to a relay thread: dropped or handed over and refused, the call untouched") {
    TestServer s = threaded_server({"alice", "bob"}, 2);
    steer_media(s.server->media_port(), 2);
    CallPair call(s);
    REQUIRE(call.established);
    RawMedia stranger(s);
    stranger.send(Bytes{});                       // empty
    stranger.send(Bytes(2000, 0x41));             // too big to hand over, routes nowhere
    for (int i = 0; i < 100; ++i) stranger.send(Bytes(118, std::uint8_t(i)));  // registration-sized junk
    for (int i = 0; i < 50 && s.server->stats().media_packets_dropped < 102; ++i) s.pump(10ms);
    ServerStats stats = s.server->stats();
    CHECK(stats.media_packets_dropped >= 102);
    CHECK(stats.media_packets_relayed == 0);
    CHECK(stranger.receive(quiet) == std::nullopt);
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    call.alice_media.send(Bytes(40, 9));
    CHECK(call.bob_media.receive() == Bytes(40, 9));
    CHECK(s.server->stats().media_packets_relayed_by_threads == 1);
}

TEST_CASE("steered to a relay thread: per-call figures, the gap, a move and the drop counters come from the thread") {
    TestServer s({"alice", "bob"}, [](Config& c) {
        c.media_threads = 2;
        c.max_datagram = 1400;
    });
    steer_media(s.server->media_port(), 1);
    CallPair call(s);
    REQUIRE(call.established);
    s.pump(50ms);  // the thread has the call's table
    for (int i = 0; i < 4; ++i) {
        call.alice_media.send(Bytes(70, std::uint8_t(i)));
        CHECK(call.bob_media.receive() == Bytes(70, std::uint8_t(i)));
    }
    s.pump(300ms);
    call.alice_media.send(Bytes(30, 9));
    CHECK(call.bob_media.receive() == Bytes(30, 9));
    call.bob_media.send(Bytes(10, 1));
    CHECK(call.alice_media.receive() == Bytes(10, 1));
    call.alice_media.send(Bytes(1401, 1));  // too large: dropped by the thread
    CHECK(call.bob_media.receive(quiet) == std::nullopt);
    ServerStats stats = s.server->stats();
    CHECK(stats.media_packets_relayed_by_threads == 6);
    CHECK(stats.media_too_large == 1);
    CHECK(stats.media_packets_dropped == 1);
    auto calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].caller_to_callee.packets == 5);
    CHECK(calls[0].caller_to_callee.bytes == 4 * 70 + 30);
    CHECK(calls[0].caller_to_callee.longest_gap >= 250ms);
    CHECK(calls[0].callee_to_caller.packets == 1);
    CHECK(calls[0].callee_to_caller.bytes == 10);

    // alice moves; once the thread's table follows, its media counts on.
    RawMedia moved(s);
    REQUIRE(moved.register_with(call.alice));
    s.pump(50ms);
    moved.send(Bytes(25, 2));
    CHECK(call.bob_media.receive() == Bytes(25, 2));
    calls = s.server->calls();
    REQUIRE(calls.size() == 1);
    CHECK(calls[0].caller_media.moves == 1);
    CHECK(calls[0].caller_to_callee.packets == 6);
    CHECK(calls[0].caller_to_callee.bytes == 4 * 70 + 30 + 25);
    CHECK(s.server->stats().media_packets_relayed_by_threads == 7);
}

TEST_CASE("a source over the unregistered rate at a relay thread: counted there, one limit_hit for the observers") {
    struct Limits : ServerObserver {
        std::vector<std::string> hits;
        void limit_hit(Limit limit, const std::string& address) override {
            if (limit == Limit::unregistered_datagrams) hits.push_back(address);
        }
    } limits;
    TestServer s({"alice", "bob"}, [](Config& c) {
        c.media_threads = 2;
        c.unregistered_packets_per_second = 5;
    });
    s.server->add_observer(&limits);
    steer_media(s.server->media_port(), 2);
    RawMedia stranger(s);
    for (int i = 0; i < 30; ++i) stranger.send_unpumped(Bytes(40, std::uint8_t(i)));
    for (int i = 0; i < 100 && (limits.hits.empty() || s.server->stats().media_packets_dropped < 30); ++i)
        s.pump(10ms);
    ServerStats stats = s.server->stats();
    CHECK(stats.media_rate_limited == 25);
    CHECK(stats.media_unroutable == 5);  // handed over, not registration sized
    CHECK(stats.media_packets_dropped == 30);
    CHECK(stats.limit_hit(Limit::unregistered_datagrams) == 1);
    CHECK(limits.hits.size() == 1);
}
