// The cluster's messages (libdtcall/cluster/): the cluster key file, the
// node-to-node media datagram, the control messages published through Redis,
// and the receivers that drop forged, malformed and replayed ones, counting
// each. Pure: no sockets, no Redis; times are arguments.
#include "cluster/cluster_key.hpp"
#include "cluster/messages.hpp"
#include "cluster/receiver.hpp"

#include <dtcall/keys.hpp>

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/stat.h>
#include <vector>

using namespace dtcall::cluster;
using Bytes = std::vector<std::uint8_t>;

namespace {

ClusterKey fixed_key(std::uint8_t fill) {
    std::uint8_t bytes[cluster_key_size];
    std::fill(std::begin(bytes), std::end(bytes), fill);
    return ClusterKey(bytes);
}

Bytes media(const ClusterKey& key, std::string_view sender, std::uint64_t seq, std::string_view target,
            std::string_view payload) {
    Bytes out(media_overhead(sender.size(), target.size()) + payload.size());
    std::size_t n = encode_media(key, sender, seq, target, reinterpret_cast<const std::uint8_t*>(payload.data()),
                                 payload.size(), out.data(), out.size());
    out.resize(n);
    return out;
}

DecodeError decode(const ClusterKey& key, const Bytes& b, MediaDatagram& m) {
    return decode_media(key, b.data(), b.size(), m);
}

ControlMessage notice(std::uint64_t now_ms) {
    ControlMessage m = make_control(MessageType::notice, "node-2", now_ms);
    m.kind = "call";
    m.user = "bob";
    m.other = "alice";
    m.blob = std::string("\0\1binary\xff", 9);
    return m;
}

}  // namespace

TEST_CASE("cluster key file: header + 96 digits, 0600, wiped reader, refused when exposed") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    std::string text = cluster_key_file_text(key);
    CHECK(text.size() == 19 + 96);
    CHECK(text.rfind("DTCALL CLUSTER KEY\n", 0) == 0);
    auto back = parse_cluster_key_file(text);
    REQUIRE(back.ok());
    CHECK(std::equal(key.data(), key.data() + 32, back->data()));
    CHECK(parse_cluster_key_file(text + "\n").ok());
    CHECK(parse_cluster_key_file(text + "\r\n").ok());
    CHECK(parse_cluster_key_file("SODIUM PRIVATE KEY\n" + text.substr(19)).error() ==
          "does not start with \"DTCALL CLUSTER KEY\" on its own line");
    CHECK(parse_cluster_key_file(text.substr(0, 100)).error() ==
          "key must be exactly 96 digits after the header, found 81 characters");
    std::string letter = text;
    letter[19 + 4] = 'x';
    CHECK(parse_cluster_key_file(letter).error() == "key character 5 of 96 is not a digit");
    std::string big = text;
    big.replace(19, 3, "256");
    CHECK(parse_cluster_key_file(big).error() == "key byte 1 is a triple above 255");

    test_support::TempDir dir;
    const std::string path = dir / "cluster.key";
    REQUIRE(write_cluster_key_file(key, path).ok());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(write_cluster_key_file(key, path).error() == path + ": already exists, not overwriting");
    auto read = read_cluster_key_file(path);
    REQUIRE(read.ok());
    CHECK(std::equal(key.data(), key.data() + 32, read->data()));
    REQUIRE(::chmod(path.c_str(), 0604) == 0);
    CHECK(read_cluster_key_file(path).error() ==
          path + ": readable by group or others (mode 0604); run: chmod 600 " + path);
    REQUIRE(::chmod(path.c_str(), 0620) == 0);
    CHECK(read_cluster_key_file(path).error() ==
          path + ": writable by group or others (mode 0620); run: chmod 600 " + path);
    CHECK_FALSE(read_cluster_key_file(dir / "missing").ok());

    // Derived keys: one per use, none equal to the master or each other.
    ClusterKeys keys = ClusterKeys::derive(key);
    CHECK_FALSE(std::equal(key.data(), key.data() + 32, keys.media.data()));
    CHECK_FALSE(std::equal(key.data(), key.data() + 32, keys.control.data()));
    CHECK_FALSE(std::equal(keys.media.data(), keys.media.data() + 32, keys.control.data()));
    ClusterKeys again = ClusterKeys::derive(key);
    CHECK(std::equal(keys.media.data(), keys.media.data() + 32, again.media.data()));
}

TEST_CASE("media datagram: the bytes, byte for byte") {
    ClusterKey key = fixed_key(7);
    Bytes b = media(key, "n1", 0x0102030405060708ull, "bob", "XYZ");
    const Bytes header = {0xD7, 0xC1, 0x01, 0x01, 2, 'n', '1', 1, 2, 3, 4, 5, 6, 7, 8, 3, 'b', 'o', 'b', 'X', 'Y', 'Z'};
    REQUIRE(b.size() == header.size() + tag_size);
    CHECK(Bytes(b.begin(), b.begin() + long(header.size())) == header);
    std::uint8_t tag[tag_size];
    crypto_generichash(tag, sizeof tag, b.data(), header.size(), key.data(), 32);
    CHECK(std::memcmp(tag, b.data() + header.size(), tag_size) == 0);
    CHECK(media_overhead(2, 3) == 30 + 2 + 3);
}

TEST_CASE("media datagram: round trip, in place, and every rule of the fields") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    std::string payload(1400, 'p');
    payload[0] = '\0';
    Bytes b = media(key, "node-1", 42, "alice", payload);
    REQUIRE_FALSE(b.empty());
    MediaDatagram m;
    REQUIRE(decode(key, b, m) == DecodeError::none);
    CHECK(m.sender == "node-1");
    CHECK(m.sequence == 42);
    CHECK(m.target == "alice");
    CHECK(m.payload == payload);

    // In place: the client's datagram already sits where the payload goes.
    Bytes buffer(2048);
    std::size_t offset = media_overhead(6, 5) - tag_size;
    std::memcpy(buffer.data() + offset, payload.data(), payload.size());
    std::size_t n = encode_media(key, "node-1", 42, "alice", buffer.data() + offset, payload.size(), buffer.data(),
                                 buffer.size());
    buffer.resize(n);
    CHECK(buffer == b);

    std::uint8_t out[4096];
    const auto* p = reinterpret_cast<const std::uint8_t*>("x");
    CHECK(encode_media(key, "", 1, "bob", p, 1, out, sizeof out) == 0);
    CHECK(encode_media(key, std::string(65, 'n'), 1, "bob", p, 1, out, sizeof out) == 0);
    CHECK(encode_media(key, "no de", 1, "bob", p, 1, out, sizeof out) == 0);
    CHECK(encode_media(key, "n", 1, "", p, 1, out, sizeof out) == 0);
    CHECK(encode_media(key, "n", 1, "b.b", p, 1, out, sizeof out) == 0);
    CHECK(encode_media(key, "n", 1, "bob", p, 0, out, sizeof out) == 0);
    CHECK(encode_media(key, "n", 1, "bob", p, 1, out, media_overhead(1, 3)) == 0);  // no room
    CHECK(encode_media(key, "n", 1, "bob", p, 1, out, media_overhead(1, 3) + 1) == media_overhead(1, 3) + 1);
    CHECK(encode_media(key, std::string(64, 'n'), 1, std::string(64, 'u'), p, 1, out, sizeof out) != 0);
}

TEST_CASE("media datagram: wrong key, any flipped bit, any truncation, control bytes: an error, never a message") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    Bytes b = media(key, "node-1", 7, "bob", "hello");
    MediaDatagram m;
    CHECK(decode(ClusterKey::generate(), b, m) == DecodeError::bad_tag);
    for (std::size_t i = 0; i < b.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            Bytes copy = b;
            copy[i] ^= std::uint8_t(1u << bit);
            CAPTURE(i);
            CHECK(decode(key, copy, m) != DecodeError::none);
        }
    }
    for (std::size_t n = 0; n < b.size(); ++n) {
        Bytes cut(b.begin(), b.begin() + long(n));
        CAPTURE(n);
        CHECK(decode(key, cut, m) != DecodeError::none);
    }
    Bytes longer = b;
    longer.push_back(0);
    CHECK(decode(key, longer, m) == DecodeError::bad_tag);  // the tag is the last 16 bytes

    CHECK(decode(key, Bytes{0xD7}, m) == DecodeError::too_short);
    CHECK(decode(key, Bytes{0xD7, 0xC2, 1, 1}, m) == DecodeError::bad_magic);
    CHECK(decode(key, Bytes{0xD7, 0xC1, 2, 1}, m) == DecodeError::bad_version);
    Bytes control = encode_control(key, notice(1000));
    CHECK(decode(key, control, m) == DecodeError::bad_type);
    Bytes big(media_overhead(64, 64) + max_media_payload + 1, 0);
    big[0] = 0xD7, big[1] = 0xC1, big[2] = 1, big[3] = 1;
    CHECK(decode(key, big, m) == DecodeError::too_long);
    // A name length that runs past the end.
    Bytes past = b;
    past[4] = 200;
    CHECK(decode(key, past, m) == DecodeError::bad_field);
    CHECK(std::string(to_string(DecodeError::bad_tag)) == "bad_tag");
}

TEST_CASE("control messages: each type round trips; bodies follow their rules") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    ControlMessage n = notice(1700000000123);
    Bytes b = encode_control(key, n);
    REQUIRE_FALSE(b.empty());
    CHECK(b[0] == 0xD7);
    CHECK(b[3] == 0x10);
    ControlMessage got;
    REQUIRE(decode_control(key, b.data(), b.size(), got) == DecodeError::none);
    CHECK(got.type == MessageType::notice);
    CHECK(got.from == "node-2");
    CHECK(got.timestamp_ms == 1700000000123);
    CHECK(got.nonce == n.nonce);
    CHECK(got.kind == "call");
    CHECK(got.user == "bob");
    CHECK(got.other == "alice");
    CHECK(got.blob == n.blob);

    ControlMessage left = make_control(MessageType::user_left, "n1", 5);
    left.user = "carol";
    ControlMessage hello = make_control(MessageType::node_hello, "n1", 5);
    hello.address = "[fd00::5]:1962";
    ControlMessage bye = make_control(MessageType::node_bye, "n1", 5);
    for (const ControlMessage& m : {left, hello, bye}) {
        Bytes bytes = encode_control(key, m);
        REQUIRE_FALSE(bytes.empty());
        ControlMessage d;
        REQUIRE(decode_control(key, bytes.data(), bytes.size(), d) == DecodeError::none);
        CHECK(d.type == m.type);
        CHECK(d.user == m.user);
        CHECK(d.address == m.address);
        CHECK(d.from == "n1");
    }
    // bye: the smallest control message.
    CHECK(encode_control(key, bye).size() == 4 + 1 + 2 + 8 + 16 + 16);

    ControlMessage bad = n;
    bad.kind = "Call";
    CHECK(encode_control(key, bad).empty());
    bad = n;
    bad.other = "not valid";
    CHECK(encode_control(key, bad).empty());
    bad = n;
    bad.other.clear();  // allowed: a notice about no one else
    CHECK_FALSE(encode_control(key, bad).empty());
    bad = n;
    bad.blob.assign(max_blob_size + 1, 'b');
    CHECK(encode_control(key, bad).empty());
    bad = n;
    bad.blob.assign(max_blob_size, 'b');
    Bytes largest = encode_control(key, bad);
    CHECK_FALSE(largest.empty());
    CHECK(decode_control(key, largest.data(), largest.size(), got) == DecodeError::none);
    bad = hello;
    bad.address = "host.example:1";
    CHECK(encode_control(key, bad).empty());
    bad = n;
    bad.type = MessageType::media;
    CHECK(encode_control(key, bad).empty());
    bad = n;
    bad.from = "";
    CHECK(encode_control(key, bad).empty());
}

TEST_CASE("control messages: forged, damaged, truncated, media bytes: typed errors") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    Bytes b = encode_control(key, notice(1000));
    ControlMessage got;
    CHECK(decode_control(ClusterKey::generate(), b.data(), b.size(), got) == DecodeError::bad_tag);
    for (std::size_t i = 0; i < b.size(); ++i) {
        Bytes copy = b;
        copy[i] ^= 0x40;
        CAPTURE(i);
        CHECK(decode_control(key, copy.data(), copy.size(), got) != DecodeError::none);
    }
    for (std::size_t n = 0; n < b.size(); ++n) {
        CAPTURE(n);
        CHECK(decode_control(key, b.data(), n, got) != DecodeError::none);
    }
    // A blob length far past the end: bad_field, no allocation of 4 GiB.
    Bytes huge = b;
    std::size_t blob_length_at = 4 + 1 + 6 + 8 + 16 + 1 + 4 + 1 + 3 + 1 + 5;
    huge[blob_length_at] = 0xff;
    CHECK(decode_control(key, huge.data(), huge.size(), got) == DecodeError::bad_field);
    // Bytes between the body and the tag (re-tagged so only that is wrong).
    Bytes bye = encode_control(key, make_control(MessageType::node_bye, "n1", 5));
    bye.insert(bye.end() - long(tag_size), std::uint8_t(0));
    compute_tag(key, bye.data(), bye.size() - tag_size, bye.data() + bye.size() - tag_size);
    CHECK(decode_control(key, bye.data(), bye.size(), got) == DecodeError::trailing_bytes);
    Bytes m = media(key, "n1", 1, "bob", "x");
    CHECK(decode_control(key, m.data(), m.size(), got) == DecodeError::bad_type);
    Bytes unknown = b;
    unknown[3] = 0x14;
    CHECK(decode_control(key, unknown.data(), unknown.size(), got) == DecodeError::bad_type);
    Bytes too_long(max_control_size + 1, 0);
    too_long[0] = 0xD7, too_long[1] = 0xC1, too_long[2] = 1, too_long[3] = 0x10;
    CHECK(decode_control(key, too_long.data(), too_long.size(), got) == DecodeError::too_long);
}

TEST_CASE("sequence window: in order, reordered within 1024, copies and older ones dropped") {
    SequenceWindow w;
    CHECK(w.accept(10000) == Verdict::accepted);
    CHECK(w.accept(10000) == Verdict::replayed);
    CHECK(w.accept(10002) == Verdict::accepted);
    CHECK(w.accept(10001) == Verdict::accepted);  // late but inside the window
    CHECK(w.accept(10001) == Verdict::replayed);
    CHECK(w.accept(9999) == Verdict::accepted);
    CHECK(w.accept(10002 - 1023) == Verdict::accepted);
    CHECK(w.accept(10002 - 1024) == Verdict::stale);
    CHECK(w.accept(50000) == Verdict::accepted);  // a jump clears the window
    CHECK(w.accept(10002) == Verdict::stale);
    CHECK(w.accept(50000 - 1023) == Verdict::accepted);
    CHECK(w.accept(49999) == Verdict::accepted);
    CHECK(w.accept(49999) == Verdict::replayed);
    // Slots reused as the window slides are fresh again.
    SequenceWindow slide;
    for (std::uint64_t s = 0; s < 5000; ++s) REQUIRE(slide.accept(s) == Verdict::accepted);
    for (std::uint64_t s = 5000 - 1024; s < 5000; ++s) REQUIRE(slide.accept(s) == Verdict::replayed);
    CHECK(slide.accept(5000 - 1025) == Verdict::stale);
    CHECK(slide.accept(~std::uint64_t(0)) == Verdict::accepted);
    CHECK(slide.accept(~std::uint64_t(0)) == Verdict::replayed);
    // A restarted sender starts at the clock in ns: ahead of what it sent before.
    std::uint64_t first = initial_sequence();
    CHECK(initial_sequence() >= first);
    CHECK(first > 1700000000ull * 1000000000ull);
}

TEST_CASE("media receiver: accepts once per sequence per sender; forged, malformed, replayed counted") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    MediaReceiver rx(key, 2);
    MediaDatagram m;
    Bytes a1 = media(key, "a", 1, "bob", "one");
    CHECK(rx.receive(a1.data(), a1.size(), m) == Verdict::accepted);
    CHECK(m.payload == "one");
    CHECK(rx.receive(a1.data(), a1.size(), m) == Verdict::replayed);
    Bytes b1 = media(key, "b", 1, "bob", "other sender, same number");
    CHECK(rx.receive(b1.data(), b1.size(), m) == Verdict::accepted);
    Bytes c1 = media(key, "c", 1, "bob", "a third sender");
    CHECK(rx.receive(c1.data(), c1.size(), m) == Verdict::too_many);  // max_senders = 2
    Bytes forged = media(ClusterKey::generate(), "a", 2, "bob", "forged");
    CHECK(rx.receive(forged.data(), forged.size(), m) == Verdict::forged);
    CHECK(rx.last_error() == DecodeError::bad_tag);
    Bytes junk = {1, 2, 3};
    CHECK(rx.receive(junk.data(), junk.size(), m) == Verdict::malformed);
    Bytes a2 = media(key, "a", 2, "bob", "two");  // the forged 2 did not burn it
    CHECK(rx.receive(a2.data(), a2.size(), m) == Verdict::accepted);
    const ReceiveCounters& c = rx.counters();
    CHECK(c.accepted == 3);
    CHECK(c.replayed == 1);
    CHECK(c.forged == 1);
    CHECK(c.malformed == 1);
    CHECK(c.too_many == 1);
    CHECK(std::string(to_string(Verdict::forged)) == "forged");
}

TEST_CASE("control receiver: timestamp window, nonce replay, forgetting, bounds") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    const std::uint64_t now = 1700000000000;
    ControlReceiver rx(key, 30000, 2, 3);
    ControlMessage got;
    Bytes b = encode_control(key, notice(now));
    CHECK(rx.receive(b.data(), b.size(), now + 5, got) == Verdict::accepted);
    CHECK(got.user == "bob");
    CHECK(rx.receive(b.data(), b.size(), now + 10, got) == Verdict::replayed);
    CHECK(rx.receive(b.data(), b.size(), now + 30001, got) == Verdict::stale);  // too old now
    Bytes future = encode_control(key, notice(now + 30001));
    CHECK(rx.receive(future.data(), future.size(), now, got) == Verdict::stale);
    Bytes edge = encode_control(key, notice(now - 30000));
    CHECK(rx.receive(edge.data(), edge.size(), now, got) == Verdict::accepted);
    // Same timestamp, another nonce: a different message.
    Bytes twin = encode_control(key, notice(now));
    CHECK(rx.receive(twin.data(), twin.size(), now, got) == Verdict::accepted);
    // max 3 nonces per sender remembered within the window.
    Bytes fourth = encode_control(key, notice(now));
    CHECK(rx.receive(fourth.data(), fourth.size(), now, got) == Verdict::too_many);
    // Later, the old ones left the window and room is back.
    Bytes later = encode_control(key, notice(now + 40000));
    CHECK(rx.receive(later.data(), later.size(), now + 40000, got) == Verdict::accepted);
    // A third sender is one too many (max_senders = 2).
    ControlMessage from_x = make_control(MessageType::node_bye, "x", now);
    ControlMessage from_y = make_control(MessageType::node_bye, "y", now);
    Bytes x = encode_control(key, from_x), y = encode_control(key, from_y);
    CHECK(rx.receive(x.data(), x.size(), now, got) == Verdict::accepted);
    CHECK(rx.receive(y.data(), y.size(), now, got) == Verdict::too_many);
    Bytes forged = encode_control(ClusterKey::generate(), notice(now));
    CHECK(rx.receive(forged.data(), forged.size(), now, got) == Verdict::forged);
    // The media key does not sign control messages.
    ClusterKeys keys = ClusterKeys::derive(key);
    ControlReceiver with_control_key(keys.control);
    Bytes signed_with_media = encode_control(keys.media, notice(now));
    CHECK(with_control_key.receive(signed_with_media.data(), signed_with_media.size(), now, got) == Verdict::forged);
    CHECK(rx.counters().accepted == 5);
    CHECK(rx.counters().replayed == 1);
    CHECK(rx.counters().stale == 2);
    CHECK(rx.counters().too_many == 2);
    CHECK(rx.counters().forged == 1);
}

TEST_CASE("receivers forget a sender: its place is free again, and what it sent before stays refused") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    const std::uint64_t now = 1700000000000;
    ControlReceiver rx(key, 30000, 2);
    ControlMessage got;
    auto hello = [](std::uint64_t at) {
        ControlMessage m = make_control(MessageType::node_hello, "x", at);
        m.address = "127.0.0.1:4000";
        return m;
    };
    Bytes x = encode_control(key, hello(now));
    Bytes y = encode_control(key, make_control(MessageType::node_bye, "y", now));
    Bytes z = encode_control(key, make_control(MessageType::node_bye, "z", now));
    CHECK(rx.receive(x.data(), x.size(), now, got) == Verdict::accepted);
    CHECK(rx.receive(y.data(), y.size(), now, got) == Verdict::accepted);
    CHECK(rx.receive(z.data(), z.size(), now, got) == Verdict::too_many);
    rx.forget("y");
    CHECK(rx.senders() == 1);
    CHECK(rx.receive(z.data(), z.size(), now, got) == Verdict::accepted);
    rx.forget("x");
    // x's old message is not new again; a newer one from x is.
    CHECK(rx.receive(x.data(), x.size(), now + 1, got) == Verdict::replayed);
    Bytes x2 = encode_control(key, hello(now + 2));
    CHECK(rx.receive(x2.data(), x2.size(), now + 2, got) == Verdict::accepted);

    MediaReceiver media(key, 1);
    Bytes buffer(200);
    std::uint8_t payload[4] = {1, 2, 3, 4};
    MediaDatagram datagram;
    auto wrap = [&](const char* sender, std::uint64_t sequence) {
        std::size_t n = encode_media(key, sender, sequence, "bob", payload, sizeof payload, buffer.data(), buffer.size());
        return Bytes(buffer.begin(), buffer.begin() + long(n));
    };
    Bytes a = wrap("a", 10), b = wrap("b", 10);
    CHECK(media.receive(a.data(), a.size(), datagram) == Verdict::accepted);
    CHECK(media.receive(b.data(), b.size(), datagram) == Verdict::too_many);
    media.forget("a");
    CHECK(media.receive(b.data(), b.size(), datagram) == Verdict::accepted);
    media.forget("b");
    CHECK(media.receive(b.data(), b.size(), datagram) == Verdict::stale);
    Bytes b2 = wrap("b", 11);
    CHECK(media.receive(b2.data(), b2.size(), datagram) == Verdict::accepted);
}

// The media leg's cost: one encode on the sending node and one verify (with
// the replay window) on the receiving one, per packet, for a typical voice
// datagram. Printed for the README; the bound only catches a disaster.
TEST_CASE("cost per packet: encode + receive of a 200-byte datagram") {
    REQUIRE(dtcall::crypto_init());
    ClusterKey key = ClusterKey::generate();
    MediaReceiver rx(key);
    std::uint8_t payload[200];
    randombytes_buf(payload, sizeof payload);
    std::uint8_t buffer[512];
    const int rounds = 200000;
    std::uint64_t seq = initial_sequence();
    MediaDatagram m;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i) {
        std::size_t n = encode_media(key, "node-1", seq++, "alice", payload, sizeof payload, buffer, sizeof buffer);
        REQUIRE(rx.receive(buffer, n, m) == Verdict::accepted);
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / rounds;

    // For comparison: HMAC-SHA-512-256 (crypto_auth) over the same bytes, twice
    // (sign and verify), without the framing.
    std::uint8_t auth_key[crypto_auth_KEYBYTES], mac[crypto_auth_BYTES];
    crypto_auth_keygen(auth_key);
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i) {
        buffer[0] = std::uint8_t(i);
        crypto_auth(mac, buffer, 242, auth_key);
        REQUIRE(crypto_auth_verify(mac, buffer, 242, auth_key) == 0);
    }
    double hmac_ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / rounds;
    MESSAGE("cluster media: encode + receive (keyed BLAKE2b-128, replay window) " << ns
            << " ns per 200-byte packet; HMAC-SHA-512-256 sign + verify alone: " << hmac_ns << " ns");
    CHECK(ns < 20000);
    CHECK(rx.counters().accepted == std::uint64_t(rounds));
}

// The fuzz seeds were written by an independent encoder (Python's
// hashlib.blake2b(key=..., digest_size=16)) from the format in messages.hpp,
// with the key 32 x 0x2A: they must decode here, so the format is what the
// header says and not only what this code happens to do.
TEST_CASE("the fuzz seeds, made from the documented format by another encoder, decode") {
    const char* root = std::getenv("DTCALL_SOURCE_ROOT");
    REQUIRE(root != nullptr);
    const std::string dir = std::string(root) + "/tests/fuzz/corpus/cluster_message/";
    auto read = [&](const std::string& name) {
        std::ifstream in(dir + name, std::ios::binary);
        REQUIRE_MESSAGE(in.good(), (dir + name));
        return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    ClusterKey key = fixed_key(0x2A);
    MediaDatagram m;
    Bytes seed = read("media");  // m views into it
    REQUIRE(decode(key, seed, m) == DecodeError::none);
    CHECK(m.sender == "node-1");
    CHECK(m.sequence == 42);
    CHECK(m.target == "alice");
    CHECK(m.payload == std::string("\0voice datagram\xff", 16));
    CHECK(decode(key, read("media_long_names"), m) == DecodeError::none);
    CHECK(decode(key, read("forged_media"), m) == DecodeError::bad_tag);
    for (const char* name : {"notice", "notice_no_other", "user_left", "node_hello", "node_bye"}) {
        CAPTURE(name);
        Bytes b = read(name);
        ControlMessage c;
        REQUIRE(decode_control(key, b.data(), b.size(), c) == DecodeError::none);
        CHECK(c.timestamp_ms == 1700000000000);
        CHECK(encode_control(key, c) == b);
    }
    Bytes n = read("notice");
    ControlMessage c;
    REQUIRE(decode_control(key, n.data(), n.size(), c) == DecodeError::none);
    CHECK(c.kind == "call");
    CHECK(c.user == "bob");
    CHECK(c.other == "alice");
    CHECK(c.blob == "blob!");
}
