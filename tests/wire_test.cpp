// Frame reassembly and command parsing (PROTOCOL.md sections 2, 3, 5).
#include <doctest/doctest.h>

#include "wire/wire.hpp"

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
