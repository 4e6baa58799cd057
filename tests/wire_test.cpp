// Frame reassembly, command parsing and building, server messages and their
// pacing rule, replies and the UDP registration (PROTOCOL.md sections 2-9).
#include <doctest/doctest.h>

#include "wire/commands.hpp"
#include "wire/messages.hpp"
#include "wire/registration.hpp"
#include "wire/reply.hpp"
#include "wire/wire.hpp"

#include <cstring>

#include "vectors.hpp"

using namespace dtcall;
using namespace dtcall::wire;

namespace {

Bytes frame_of(const std::string& text, const Bytes& key) { return seal_secret_frame(key.data(), text); }

std::vector<std::string> drain(FrameDecoder& d, const Bytes& key, FrameDecoder::Status* last = nullptr) {
    std::vector<std::string> out;
    Bytes f;
    for (;;) {
        auto s = d.next(f);
        if (last) *last = s;
        if (s != FrameDecoder::Status::frame) break;
        auto t = open_secret_frame(key.data(), f.data(), f.size());
        out.push_back(t ? *t : "<forged>");
    }
    return out;
}

const std::time_t now = 1700000000;

const auto& V() {
    static const auto v = test_support::load_vectors();
    return v;
}
Bytes vec(const std::string& name) { return test_support::hex(V().at(name)); }
SecretKey secret(const std::string& name) { return SecretKey(vec(name).data()); }
PublicKey pub(const std::string& name) {
    PublicKey k;
    std::memcpy(k.bytes.data(), vec(name).data(), key_size);
    return k;
}
Nonce nonce(const std::string& name) {
    Nonce n;
    std::memcpy(n.data(), vec(name).data(), nonce_size);
    return n;
}
KeyPair server_pair() { return KeyPair::from_secret(secret("server_secret")); }

}  // namespace

TEST_CASE("decoder: one frame at once, then split byte by byte") {
    Bytes key(32, 1);
    Bytes f = frame_of("1700000000|login1|alice", key);
    FrameDecoder d(512);
    d.feed(f.data(), f.size());
    CHECK(drain(d, key) == std::vector<std::string>{"1700000000|login1|alice"});
    CHECK(d.buffered() == 0);
    for (std::size_t i = 0; i < f.size(); ++i) {
        d.feed(&f[i], 1);
        auto got = drain(d, key);
        CHECK(got.size() == (i + 1 == f.size() ? 1u : 0u));
    }
}

TEST_CASE("decoder: coalesced frames come out one by one, with a split tail") {
    Bytes key(32, 2);
    Bytes all;
    for (std::string t : {"a|b|c", "D", "1|2|3|4|5"}) {
        Bytes f = frame_of(t, key);
        all.insert(all.end(), f.begin(), f.end());
    }
    FrameDecoder d(512);
    d.feed(all.data(), all.size() - 3);
    CHECK(drain(d, key) == std::vector<std::string>{"a|b|c", "D"});
    d.feed(all.data() + all.size() - 3, 3);
    CHECK(drain(d, key) == std::vector<std::string>{"1|2|3|4|5"});
}

TEST_CASE("decoder: an announced length over the limit fails before any allocation") {
    Bytes header(28, 0);
    header[24] = 0x7f;  // ~2 GiB announced
    FrameDecoder d(512);
    d.feed(header.data(), header.size());
    Bytes f;
    CHECK(d.next(f) == FrameDecoder::Status::too_large);
    CHECK(d.buffered() == 28);
}

TEST_CASE("decoder: L = 0 is refused; a short header waits") {
    Bytes header(28, 0);
    FrameDecoder d(512);
    d.feed(header.data(), 27);
    Bytes f;
    CHECK(d.next(f) == FrameDecoder::Status::need_more);
    d.feed(header.data(), 1);
    CHECK(d.next(f) == FrameDecoder::Status::empty_frame);
}

TEST_CASE("decoder: the limit can be raised after login") {
    Bytes key(32, 3);
    Bytes f = frame_of(std::string(1000, 'a'), key);
    FrameDecoder d(512);
    d.feed(f.data(), f.size());
    Bytes out;
    CHECK(d.next(out) == FrameDecoder::Status::too_large);
    d.set_max_plaintext(2048);
    CHECK(d.next(out) == FrameDecoder::Status::frame);
}

TEST_CASE("decoder: a forged frame is delimited but does not open") {
    Bytes key(32, 4);
    Bytes f = frame_of("1|2|3", key);
    f[30] ^= 0xff;
    Bytes g = frame_of("4|5|6", key);
    f.insert(f.end(), g.begin(), g.end());
    FrameDecoder d(512);
    d.feed(f.data(), f.size());
    CHECK(drain(d, key) == std::vector<std::string>{"<forged>", "4|5|6"});
}

TEST_CASE("charset: only 0-9 A-Z a-z + - |") {
    CHECK(allowed_command_text("1700000000|login1|alice+-B9"));
    for (std::string bad : std::vector<std::string>{" ", "a b", "a\nb", "a_b", "a.b", std::string("a\0b", 3), "é", "a;b"})
        CHECK_FALSE(allowed_command_text(bad));
    CHECK(valid_user_name("alice"));
    CHECK_FALSE(valid_user_name(""));
    CHECK_FALSE(valid_user_name("a|b"));
    CHECK_FALSE(valid_user_name(std::string(65, 'a')));
}

TEST_CASE("parse: heartbeat, fields, timestamps") {
    CHECK(parse_command("D", now, 300).status == ParseStatus::heartbeat);
    auto ok = parse_command("1700000000|call|bob|SK", now, 300);
    REQUIRE(ok.status == ParseStatus::ok);
    CHECK(ok.command.name() == "call");
    CHECK(ok.command.last() == "SK");
    CHECK(ok.command.size() == 4);
    CHECK(parse_command("1700000000|a", now, 300).status == ParseStatus::bad_fields);
    CHECK(parse_command("1700000000|a|b|c|d|e", now, 300).status == ParseStatus::bad_fields);
    CHECK(parse_command("1700000000||b", now, 300).status == ParseStatus::bad_fields);
    CHECK(parse_command("1700000000|a|b|", now, 300).status == ParseStatus::bad_fields);
    CHECK(parse_command("|1700000000|a|b", now, 300).status == ParseStatus::bad_fields);
    CHECK(parse_command("1700000000|a b|c", now, 300).status == ParseStatus::bad_charset);
    CHECK(parse_command("", now, 300).status == ParseStatus::bad_charset);
    CHECK(parse_command("17000000x0|a|b", now, 300).status == ParseStatus::bad_timestamp);
    CHECK(parse_command("1700000300|a|b", now, 300).status == ParseStatus::ok);
    CHECK(parse_command("1699999700|a|b", now, 300).status == ParseStatus::ok);
    CHECK(parse_command("1700000301|a|b", now, 300).status == ParseStatus::bad_timestamp);
    CHECK(parse_command("1699999699|a|b", now, 300).status == ParseStatus::bad_timestamp);
    CHECK(parse_command("99999999999999999999999|a|b", now, 300).status == ParseStatus::bad_timestamp);
    CHECK(parse_command("+1700000000|a|b", now, 300).status == ParseStatus::bad_timestamp);
    CHECK(parse_command("-1|a|b", now, 300).status == ParseStatus::bad_timestamp);
}

TEST_CASE("per-command field counts (D6, D7)") {
    auto cmd = [](std::string t) { return parse_command(t, now, 300).command; };
    CHECK(fields_fit(Verb::login1, cmd("1700000000|login1|alice")));
    CHECK_FALSE(fields_fit(Verb::login1, cmd("1700000000|login1|alice|x")));
    CHECK_FALSE(fields_fit(Verb::login2, cmd("1700000000|login2|alice")));  // D6
    CHECK(fields_fit(Verb::login2, cmd("1700000000|login2|alice|chal")));
    CHECK(fields_fit(Verb::login2, cmd("1700000000|login2|alice|chal|keepudp")));
    CHECK_FALSE(fields_fit(Verb::login2, cmd("1700000000|login2|alice|chal|other")));
    CHECK_FALSE(fields_fit(Verb::passthrough, cmd("1700000000|passthrough|bob")));  // D7
    CHECK_FALSE(fields_fit(Verb::passthrough, cmd("1700000000|passthrough|bob|sk")));
    CHECK(fields_fit(Verb::passthrough, cmd("1700000000|passthrough|bob|123|sk")));
    for (Verb v : {Verb::call, Verb::accept, Verb::ready, Verb::end}) {
        CHECK(fields_fit(v, cmd("1700000000|x|bob|sk")));
        CHECK_FALSE(fields_fit(v, cmd("1700000000|x|bob")));
        CHECK_FALSE(fields_fit(v, cmd("1700000000|x|bob|sk|more")));
    }
    CHECK(verb_of("passthrough") == Verb::passthrough);
    CHECK(verb_of("LOGIN1") == Verb::unknown);
}

TEST_CASE("format_message puts the server time first") {
    CHECK(format_message(now, {"login2resp", "SK"}) == "1700000000|login2resp|SK");
    CHECK(format_message(now, {"invalid"}) == "1700000000|invalid");
}

// --- server messages (messages.hpp) ------------------------------------------

TEST_CASE("every message kind has its name, and back") {
    for (MessageKind k : {MessageKind::login1resp, MessageKind::login2resp, MessageKind::invalid,
                          MessageKind::available, MessageKind::incoming, MessageKind::prepare, MessageKind::direct,
                          MessageKind::start, MessageKind::end}) {
        REQUIRE(message_kind(name_of(k)));
        CHECK(*message_kind(name_of(k)) == k);
    }
    CHECK(name_of(MessageKind::login1resp) == "login1resp");
    CHECK_FALSE(message_kind("LOGIN1RESP"));
    CHECK_FALSE(message_kind("call"));
}

TEST_CASE("pacing: only login1resp and login2resp can be proven read") {
    CHECK(read_proof(MessageKind::login1resp) == ReadProof::challenge);
    CHECK(read_proof(MessageKind::login2resp) == ReadProof::session_key);
    for (MessageKind k : {MessageKind::invalid, MessageKind::available, MessageKind::incoming, MessageKind::prepare,
                          MessageKind::direct, MessageKind::start, MessageKind::end})
        CHECK(read_proof(k) == ReadProof::none);
}

TEST_CASE("format stamps a message with the server time") {
    CHECK(format(now, {MessageKind::invalid, {}}) == "1700000000|invalid");
    CHECK(format(now, {MessageKind::login2resp, {"SK"}}) == "1700000000|login2resp|SK");
}

TEST_CASE("notices become the messages of PROTOCOL.md section 6") {
    auto text = [](NoticeKind k, std::string blob = {}, std::optional<PublicKey> key = std::nullopt) {
        return format(now, notice_message(k, "bob", blob, key));
    };
    CHECK(text(NoticeKind::available) == "1700000000|available|bob");
    CHECK(text(NoticeKind::incoming) == "1700000000|incoming|bob");
    CHECK(text(NoticeKind::start) == "1700000000|start|bob");
    CHECK(text(NoticeKind::end) == "1700000000|end|bob");
    CHECK(text(NoticeKind::direct, "123456") == "1700000000|direct|123456|bob");
    // prepare: the key file exactly as the vectors hold it (header, newline, 96 digits).
    std::string key_file = test_support::read_file(test_support::vectors_dir() + "/alice_public.na");
    CHECK(text(NoticeKind::prepare, {}, pub("alice_public")) == "1700000000|prepare|" + key_file + "|bob");
    CHECK(text(NoticeKind::prepare) == "1700000000|prepare||bob");  // unknown key: the field stays empty
    CHECK(read_proof(notice_message(NoticeKind::end, "bob", {}, std::nullopt).kind) == ReadProof::none);
}

TEST_CASE("login1resp: the challenge blob matches the vector, and the client opens it") {
    auto shared = SharedKey::derive(secret("server_secret"), pub("alice_public"));
    REQUIRE(shared);
    std::string blob = challenge_blob(*shared, V().at("challenge_text"), nonce("n4"));
    CHECK(blob == V().at("challenge_blob_digits"));
    std::string text = format(now, {MessageKind::login1resp, {blob}});
    auto reply = parse_reply(text, now, 300);
    REQUIRE(reply);
    CHECK(reply->is(MessageKind::login1resp, 3));
    auto challenge = open_challenge(reply->fields[2], secret("alice_secret"), pub("server_public"));
    REQUIRE(challenge);
    CHECK(*challenge == V().at("challenge_text"));
    auto precomputed = SharedKey::derive(secret("alice_secret"), pub("server_public"));
    REQUIRE(precomputed);
    CHECK(open_challenge(blob, precomputed->data()) == challenge);
    // Another user's key, broken digits, or a challenge that is no token: nothing.
    CHECK_FALSE(open_challenge(blob, secret("ephemeral_secret"), pub("server_public")));
    CHECK_FALSE(open_challenge(blob.substr(1), secret("alice_secret"), pub("server_public")));
    std::string not_token = challenge_blob(*shared, "abc|def", nonce("n4"));
    CHECK_FALSE(open_challenge(not_token, secret("alice_secret"), pub("server_public")));
}

// --- replies, on the client side (reply.hpp) ---------------------------------

TEST_CASE("replies: fields, names, window") {
    auto r = parse_reply("1700000000|prepare|SODIUM PUBLIC KEY\n001|bob", now, 300);
    REQUIRE(r);
    CHECK(r->is(MessageKind::prepare, 4));
    CHECK(r->fields[2] == "SODIUM PUBLIC KEY\n001");
    auto unknown = parse_reply("1700000000|hello|x", now, 300);
    REQUIRE(unknown);
    CHECK_FALSE(unknown->kind);
    CHECK(unknown->name() == "hello");
    CHECK(parse_reply("1700000000|invalid", now, 300)->is(MessageKind::invalid, 2));
    CHECK_FALSE(parse_reply("1700000000", now, 300));
    CHECK_FALSE(parse_reply("1700000000||bob", now, 300));
    CHECK_FALSE(parse_reply("1700000000|a|b|c|d|e", now, 300));
    CHECK_FALSE(parse_reply("1700000301|end|bob", now, 300));
    CHECK_FALSE(parse_reply("D", now, 300));
    CHECK(is_token("Ab3"));
    CHECK_FALSE(is_token(""));
    CHECK_FALSE(is_token("a-b"));
    CHECK_FALSE(is_token("a|b"));
    CHECK_FALSE(is_token("a b"));
}

// --- commands, on the client side (commands.hpp) -----------------------------

TEST_CASE("client commands: the vector's login1, and each command's layout") {
    CHECK(login1(now, "alice") == V().at("command_text"));
    Bytes frame = seal_secret_frame(vec("tcp_key").data(), login1(now, "alice"), nonce("n2"));
    CHECK(frame == vec("command_frame"));
    CHECK(seal_secret_frame(vec("tcp_key").data(), heartbeat, nonce("n3")) == vec("heartbeat_frame"));
    CHECK(login2(now, "alice", "CH", false) == "1700000000|login2|alice|CH");
    CHECK(login2(now, "alice", "CH", true) == "1700000000|login2|alice|CH|keepudp");
    CHECK(command(now, Verb::call, {"bob"}, "SK") == "1700000000|call|bob|SK");
    CHECK(command(now, Verb::passthrough, {"bob", "123"}, "SK") == "1700000000|passthrough|bob|123|SK");
    // What the client builds, the server's parser takes.
    for (Verb v : {Verb::call, Verb::accept, Verb::ready, Verb::end}) {
        auto parsed = parse_command(command(now, v, {"bob"}, "SK"), now, 300);
        REQUIRE(parsed.status == ParseStatus::ok);
        CHECK(verb_of(parsed.command.name()) == v);
        CHECK(fields_fit(v, parsed.command));
    }
    auto l2 = parse_command(login2(now, "alice", "CH", true), now, 300);
    CHECK(fields_fit(Verb::login2, l2.command));
}

TEST_CASE("hello is 80 bytes and opens to the ephemeral key") {
    Bytes h = hello(pub("server_public"), pub("ephemeral_public"));
    CHECK(h.size() == 80);
    auto opened = open_anonymous(server_pair(), h.data(), h.size());
    REQUIRE(opened);
    CHECK(*opened == vec("ephemeral_public"));
}

TEST_CASE("voice key blob: boxed from caller to callee, stringified") {
    SecretKey voice(vec("tcp_key").data());
    std::string blob = voice_key_blob(secret("alice_secret"), pub("server_public"), voice);
    CHECK(blob.size() == 3 * (frame_overhead + key_size));
    auto box = unstringify(blob);
    REQUIRE(box);
    auto key = open_box_frame(secret("server_secret"), pub("alice_public"), box->data(), box->size());
    REQUIRE(key);
    CHECK(test_support::as_text(vec("tcp_key")) == *key);
}

TEST_CASE("voice key blob with a precomputed key: the callee opens it, with its own precomputed key") {
    SecretKey voice(vec("tcp_key").data());
    auto caller_side = SharedKey::derive(secret("alice_secret"), pub("server_public"));
    auto callee_side = SharedKey::derive(secret("server_secret"), pub("alice_public"));
    REQUIRE(caller_side);
    REQUIRE(callee_side);
    std::string blob = voice_key_blob(caller_side->data(), voice);
    CHECK(blob.size() == 3 * (frame_overhead + key_size));
    auto opened = open_voice_key(blob, callee_side->data());
    REQUIRE(opened);
    CHECK(std::memcmp(opened->data(), voice.data(), key_size) == 0);
    // The long form opens the same way; garbage and a wrong key do not.
    CHECK(open_voice_key(voice_key_blob(secret("alice_secret"), pub("server_public"), voice), callee_side->data()));
    CHECK_FALSE(open_voice_key("123", callee_side->data()));
    auto stranger = SharedKey::derive(secret("server_secret"), pub("server_public"));
    REQUIRE(stranger);
    CHECK_FALSE(open_voice_key(blob, stranger->data()));
}

// --- UDP registration (registration.hpp) -------------------------------------

TEST_CASE("registration: 118 bytes for a 59-character key, opened and checked by the server") {
    std::string sk(59, 'k');
    Bytes d = registration_datagram(pub("server_public"), now, sk);
    CHECK(d.size() == 118);
    auto r = open_registration(server_pair(), d.data(), d.size(), now, 300);
    REQUIRE(r);
    CHECK(r->timestamp == 1700000000);
    CHECK(r->session_key == sk);
    CHECK_FALSE(open_registration(server_pair(), d.data(), d.size(), now + 301, 300));  // stale
    auto refused = [&](const std::string& key) {
        Bytes bad = registration_datagram(pub("server_public"), now, key);
        return !open_registration(server_pair(), bad.data(), bad.size(), now, 300);
    };
    CHECK(refused(sk + "|x"));  // three fields
    CHECK(refused(""));         // no key
    CHECK(refused("a b"));      // charset
    Bytes plain(d.begin(), d.end());
    plain[60] ^= 1;
    CHECK_FALSE(open_registration(server_pair(), plain.data(), plain.size(), now, 300));  // forged
}

TEST_CASE("registration ack matches the vector; media is no ack") {
    Bytes ack = registration_ack(vec("tcp_key").data(), now, nonce("n1"));
    CHECK(ack.size() == 54);
    CHECK(ack == vec("ack_frame"));
    auto ts = open_registration_ack(vec("tcp_key").data(), ack.data(), ack.size());
    REQUIRE(ts);
    CHECK(*ts == V().at("ack_text"));
    Bytes media = seal_secret_frame(vec("tcp_key").data(), std::string("\0\0\0\1opus", 8));
    CHECK_FALSE(open_registration_ack(vec("tcp_key").data(), media.data(), media.size()));
    Bytes other = registration_ack(vec("ephemeral_secret").data(), now);
    CHECK_FALSE(open_registration_ack(vec("tcp_key").data(), other.data(), other.size()));
}
