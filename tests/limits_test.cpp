// The pure pieces behind the limits: token buckets, the replay guard, the
// notices kept for a client that is away.
#include <doctest/doctest.h>

#include "server/rate_limiter.hpp"
#include "session/replay_guard.hpp"

#include "presence/missed_notices.hpp"

#include <cstdint>
#include <cstring>

using namespace dtcall;

namespace {
std::uint8_t nonce_buf[24];
const std::uint8_t* nonce(std::uint64_t n) {
    std::memset(nonce_buf, 0, sizeof nonce_buf);
    std::memcpy(nonce_buf, &n, sizeof n);
    return nonce_buf;
}
}  // namespace

TEST_CASE("token bucket: burst, refill, per key") {
    RateLimiter limiter(3, 1);  // 3 at once, 1 per second back
    for (int i = 0; i < 3; ++i) CHECK(limiter.take("a", 0));
    CHECK_FALSE(limiter.take("a", 0));
    CHECK_FALSE(limiter.has_token("a", 0.5));
    CHECK(limiter.take("b", 0));  // other keys unaffected
    CHECK(limiter.take("a", 1.01));
    CHECK_FALSE(limiter.take("a", 1.02));
    CHECK(limiter.has_token("a", 100));
}

TEST_CASE("token bucket: one refusal line per window") {
    RateLimiter limiter(1, 1);
    CHECK(limiter.take("x", 0));
    CHECK(limiter.first_refusal("x", 0.1));
    CHECK_FALSE(limiter.first_refusal("x", 0.2));
    CHECK_FALSE(limiter.first_refusal("x", 0.3));
    CHECK(limiter.has_token("x", 2));  // refilled: the next dry spell logs again
    CHECK(limiter.take("x", 2));
    CHECK(limiter.first_refusal("x", 2.1));
}

TEST_CASE("token bucket: memory stays bounded under many keys") {
    RateLimiter limiter(2, 1, 100);
    for (int i = 0; i < 10000; ++i) limiter.take("k" + std::to_string(i), 0);
    CHECK(limiter.size() <= 100);
    for (int i = 0; i < 10000; ++i) limiter.take("k" + std::to_string(i), i * 10.0);
    CHECK(limiter.size() <= 100);
}

TEST_CASE("replay guard: same nonce refused, new nonces fine") {
    ReplayGuard guard(4);
    CHECK(guard.fresh(nonce(1), 1000, 300));
    CHECK_FALSE(guard.fresh(nonce(1), 1000, 300));
    CHECK(guard.fresh(nonce(2), 1000, 300));
    CHECK(guard.fresh(nonce(3), 999, 300));  // a little out of order is fine
}

TEST_CASE("replay guard: forgotten frames stay refused through the floor") {
    ReplayGuard guard(2);
    CHECK(guard.fresh(nonce(1), 1000, 300));
    CHECK(guard.fresh(nonce(2), 1001, 300));
    CHECK(guard.fresh(nonce(3), 1002, 300));  // forgets nonce 1 (ts 1000): floor 1000
    CHECK_FALSE(guard.fresh(nonce(1), 1000, 300));
    CHECK_FALSE(guard.fresh(nonce(9), 1000, 300));
    CHECK(guard.fresh(nonce(4), 1003, 300));  // forgets nonce 2: floor 1001
    CHECK_FALSE(guard.fresh(nonce(2), 1001, 300));
    CHECK_FALSE(guard.fresh(nonce(3), 1002, 300));  // still remembered
}

TEST_CASE("replay guard: nothing older than the window behind the newest") {
    ReplayGuard guard(64);
    CHECK(guard.fresh(nonce(1), 2000, 300));
    CHECK_FALSE(guard.fresh(nonce(2), 1699, 300));
    CHECK(guard.fresh(nonce(3), 1700, 300));
}

TEST_CASE("replay guard: a burst beyond its memory within one second is refused") {
    ReplayGuard guard(8);
    int accepted = 0;
    for (std::uint64_t i = 0; i < 20; ++i) accepted += guard.fresh(nonce(i + 1), 5000, 300);
    CHECK(accepted == 8);
    CHECK(guard.fresh(nonce(100), 5001, 300));  // the next second goes on
}

TEST_CASE("missed notices: a few per user, dropped when expired, swept when users never return") {
    dtcall::MissedNotices missed;
    dtcall::Notice start{dtcall::Notice::Kind::start, "bob", {}};
    for (int i = 0; i < 20; ++i) missed.keep("alice", start, 0, 1000);
    CHECK(missed.take("alice", 10).size() == dtcall::MissedNotices::per_user);
    CHECK(missed.take("alice", 10).empty());  // taken once
    missed.keep("alice", start, 0, 1000);
    CHECK(missed.take("alice", 1000).empty());  // expired
    // 1000 users who never come back: expired ones are swept as new ones arrive.
    for (int i = 0; i < 1000; ++i) missed.keep("user" + std::to_string(i), start, i, i + 10);
    CHECK(missed.users() < 100);
}

TEST_CASE("missed notices: once the call ended only its end is kept; of the voice keys only the latest") {
    using Kind = dtcall::Notice::Kind;
    dtcall::MissedNotices missed;
    for (int i = 0; i < 12; ++i) missed.keep("bob", {Kind::direct, "alice", "key" + std::to_string(i)}, 0, 1000);
    missed.keep("bob", {Kind::start, "alice", {}}, 0, 1000);
    auto kept = missed.take("bob", 10);
    REQUIRE(kept.size() == 2);
    CHECK(kept[0].kind == Kind::direct);
    CHECK(kept[0].blob == "key11");
    CHECK(kept[1].kind == Kind::start);

    for (int i = 0; i < 12; ++i) missed.keep("bob", {Kind::direct, "alice", "k"}, 0, 1000);
    missed.keep("bob", {Kind::end, "alice", {}}, 0, 1000);
    missed.keep("bob", {Kind::start, "alice", {}}, 0, 1000);  // after the end: ignored
    kept = missed.take("bob", 10);
    REQUIRE(kept.size() == 1);
    CHECK(kept[0].kind == Kind::end);

    // The first notice kept sets the expiry; later ones do not extend it.
    missed.keep("bob", {Kind::start, "alice", {}}, 0, 100);
    missed.keep("bob", {Kind::end, "alice", {}}, 90, 190);
    CHECK(missed.take("bob", 150).empty());
}

