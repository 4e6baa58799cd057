// Admission without sockets: given these connections and failures, when
// this source connects or this name tries to log in, then this limit says no.
#include <doctest/doctest.h>

#include "server/admission.hpp"

using namespace dtcall;
using Verdict = Admission::LoginVerdict;

namespace {
Config small_limits() {
    Config c;
    c.max_connections = 10;
    c.max_unauthenticated_per_ip = 2;
    c.failed_login_burst = 2;
    c.failed_logins_per_minute = 60;  // one a second back
    return c;
}
}  // namespace

TEST_CASE("per-source cap on connections that have not logged in") {
    Config c = small_limits();
    Admission a(c);
    CHECK_FALSE(a.admit("127.0.1.1", 0));
    CHECK_FALSE(a.admit("127.0.1.1", 1));
    CHECK(a.admit("127.0.1.1", 2) == Limit::unauthenticated_per_source);
    CHECK(a.first_refusal(Limit::unauthenticated_per_source, "127.0.1.1"));
    CHECK_FALSE(a.first_refusal(Limit::unauthenticated_per_source, "127.0.1.1"));  // one line while at the cap
    CHECK_FALSE(a.admit("127.0.1.2", 2));  // another source is not affected
    a.authenticated_or_closed("127.0.1.1");
    CHECK(a.unauthenticated("127.0.1.1") == 1);
    CHECK_FALSE(a.admit("127.0.1.1", 3));  // room again
    CHECK(a.admit("127.0.1.1", 4) == Limit::unauthenticated_per_source);
    CHECK(a.first_refusal(Limit::unauthenticated_per_source, "127.0.1.1"));  // a new stretch at the cap
}

TEST_CASE("the total connection cap comes first and logs once per stretch") {
    Config c = small_limits();
    Admission a(c);
    CHECK(a.admit("127.0.1.1", 10) == Limit::connections);
    CHECK(a.first_refusal(Limit::connections, "127.0.1.1"));
    CHECK_FALSE(a.first_refusal(Limit::connections, "127.0.1.9"));
    CHECK(a.unauthenticated("127.0.1.1") == 0);  // a refused connection is not counted
    CHECK_FALSE(a.admit("127.0.1.1", 9));
    CHECK(a.admit("127.0.1.1", 10) == Limit::connections);
    CHECK(a.first_refusal(Limit::connections, "127.0.1.1"));
}

TEST_CASE("failed logins: a source out of failures is refused for every name") {
    Config c = small_limits();
    Admission a(c);
    CHECK(a.may_try_login("127.0.1.1", "alice", 0) == Verdict::allowed);
    a.login_failed("127.0.1.1", "x1", 0);
    a.login_failed("127.0.1.1", "x2", 0);
    CHECK(a.may_try_login("127.0.1.1", "bob", 0) == Verdict::source_refused);
    CHECK(a.first_login_refusal(Verdict::source_refused, "127.0.1.1", "bob", 0));
    CHECK_FALSE(a.first_login_refusal(Verdict::source_refused, "127.0.1.1", "bob", 0.1));
    CHECK(a.may_try_login("127.0.1.2", "bob", 0) == Verdict::allowed);
    CHECK(a.may_try_login("127.0.1.1", "bob", 1.01) == Verdict::allowed);  // a token came back
}

TEST_CASE("failed logins for one name refuse only the sources that failed for it") {
    Config c = small_limits();
    Admission a(c);
    a.login_failed("127.0.1.1", "alice", 0);
    a.login_failed("127.0.1.2", "alice", 0);
    // The name is out of failures; both attackers failed for it themselves.
    CHECK(a.may_try_login("127.0.1.1", "alice", 0) == Verdict::user_refused);
    CHECK(a.may_try_login("127.0.1.2", "alice", 0) == Verdict::user_refused);
    // The real alice, from elsewhere, never failed: she may try.
    CHECK(a.may_try_login("127.0.2.7", "alice", 0) == Verdict::allowed);
    CHECK(a.first_login_refusal(Verdict::user_refused, "127.0.1.1", "alice", 0));
    CHECK_FALSE(a.first_login_refusal(Verdict::allowed, "127.0.2.7", "alice", 0));
}
