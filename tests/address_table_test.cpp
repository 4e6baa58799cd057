// The relay's flat address table: binary keys, probing, deletion.
#include <doctest/doctest.h>

#include "relay/address_table.hpp"

#include <arpa/inet.h>
#include <map>
#include <random>

using namespace dtcall;

namespace {

AddressKey v4(std::uint32_t ip, std::uint16_t port) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(ip);
    in.sin_port = htons(port);
    AddressKey key;
    REQUIRE(make_address_key(reinterpret_cast<sockaddr*>(&in), key));
    return key;
}

}  // namespace

TEST_CASE("an IPv4 address and its IPv4-mapped IPv6 form are one key") {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    in6.sin6_port = htons(5000);
    AddressKey mapped;
    REQUIRE(make_address_key(reinterpret_cast<sockaddr*>(&in6), mapped));
    CHECK(mapped == v4(0x7f000001, 5000));
    CHECK_FALSE(mapped == v4(0x7f000001, 5001));
    sockaddr unknown{};
    unknown.sa_family = AF_UNIX;
    AddressKey k;
    CHECK_FALSE(make_address_key(&unknown, k));
}

TEST_CASE("insert, find, overwrite, erase") {
    AddressTable table;
    CHECK(table.find(v4(1, 1)) == AddressTable::none);
    table.insert(v4(1, 1), 10);
    table.insert(v4(1, 2), 20);
    CHECK(table.find(v4(1, 1)) == 10);
    CHECK(table.find(v4(1, 2)) == 20);
    table.insert(v4(1, 1), 11);
    CHECK(table.find(v4(1, 1)) == 11);
    CHECK(table.size() == 2);
    table.erase(v4(1, 1));
    table.erase(v4(9, 9));
    CHECK(table.find(v4(1, 1)) == AddressTable::none);
    CHECK(table.find(v4(1, 2)) == 20);
    CHECK(table.size() == 1);
}

TEST_CASE("agrees with std::map under random inserts and erases") {
    AddressTable table;
    std::map<std::pair<std::uint32_t, std::uint16_t>, std::uint32_t> model;
    std::mt19937 rng(42);
    for (int step = 0; step < 200000; ++step) {
        std::uint32_t ip = rng() % 300;
        std::uint16_t port = std::uint16_t(rng() % 7);
        if (rng() % 3) {
            table.insert(v4(ip, port), std::uint32_t(step));
            model[{ip, port}] = std::uint32_t(step);
        } else {
            table.erase(v4(ip, port));
            model.erase({ip, port});
        }
        if (step % 1000 == 0) {
            REQUIRE(table.size() == model.size());
            for (auto& [k, v] : model) REQUIRE(table.find(v4(k.first, k.second)) == v);
        }
    }
    for (std::uint32_t ip = 0; ip < 300; ++ip)
        for (std::uint16_t port = 0; port < 7; ++port) {
            auto it = model.find({ip, port});
            CHECK(table.find(v4(ip, port)) == (it == model.end() ? AddressTable::none : it->second));
        }
}

#include "relay/source_limiter.hpp"

TEST_CASE("source limiter: a budget per source per second, in fixed memory") {
    SourceLimiter limiter(5);
    int allowed = 0;
    for (int i = 0; i < 100; ++i) allowed += limiter.take(v4(0x7f000002, 1000), 1000);
    CHECK(allowed == 5);
    CHECK(limiter.take(v4(0x7f000003, 1000), 1000));  // another source (almost surely another bucket)
    CHECK_FALSE(limiter.take(v4(0x7f000002, 1000), 1100));
    CHECK(limiter.take(v4(0x7f000002, 1000), 1300));  // 0.3 s later: 1.5 tokens back
    for (std::uint32_t ip = 0; ip < 100000; ++ip) limiter.take(v4(ip, 9), 2000);
    CHECK(sizeof(limiter) < 100 * 1024);
}
