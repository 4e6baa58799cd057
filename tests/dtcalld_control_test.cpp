// The control socket's pure parts: the request line (and dtcall-ctl's command
// line that makes one), the answer's status line, the tables and JSON of
// status/users/calls, and the per-call report log line. No sockets.
#include "call_report_log.hpp"
#include "control/format.hpp"
#include "control/request.hpp"
#include "control/response.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace dtcalld::control;
using namespace std::chrono_literals;

namespace {

// 2024-05-01 12:00:00 UTC (the tests run with TZ=UTC).
const TimePoint noon = std::chrono::system_clock::from_time_t(1714564800);

Request parsed(const std::string& line) {
    auto r = parse_request(line);
    REQUIRE_MESSAGE(r.ok(), r.error());
    return *r;
}

std::string refused(const std::string& line) {
    auto r = parse_request(line);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().find('\n') == std::string::npos);
    return r.error();
}

dtcall::CallInfo sample_call() {
    dtcall::CallInfo c;
    c.caller = "alice";
    c.callee = "bob";
    c.phase = dtcall::CallPhase::in_call;
    c.rung_at = noon - 65s;
    c.started_at = noon - 62s;
    c.caller_to_callee = {250, 32000, 40ms};
    c.callee_to_caller = {248, 31744, 60ms};
    c.caller_media = {"127.0.0.1:40000", 0};
    c.callee_media = {"127.0.0.1:40002", 1};
    return c;
}

}  // namespace

TEST_CASE("requests: every command, its argument and the json flag") {
    CHECK(parsed("status").command == Command::status);
    CHECK_FALSE(parsed("status").json);
    CHECK(parsed("status json").json);
    CHECK(parsed("users\r").command == Command::users);
    CHECK(parsed("  calls   json ").json);
    CHECK(parsed("reload").command == Command::reload);
    CHECK(parsed("log-reopen").command == Command::log_reopen);

    Request kick = parsed("kick alice");
    CHECK(kick.command == Command::kick);
    CHECK(kick.user == "alice");
    CHECK_FALSE(kick.json);
    CHECK(parsed("end +49-170 json").user == "+49-170");
    CHECK(parsed("end +49-170 json").json);
    // A user may be called "json".
    CHECK(parsed("kick json").user == "json");
    CHECK_FALSE(parsed("kick json").json);
    CHECK(parsed("kick json json").json);
    CHECK(parsed("kick " + std::string(64, 'a')).user.size() == 64);

    CHECK(parsed("drain").drain_limit == default_drain_limit);
    CHECK(parsed("drain 0").drain_limit == 0s);
    CHECK(parsed("drain 60 json").drain_limit == 60s);
    CHECK(parsed("drain json").json);
}

TEST_CASE("requests: what is refused, with a one-line reason") {
    CHECK(refused("") == "empty request");
    CHECK(refused("   ") == "empty request");
    CHECK(refused("bogus") == "unknown command \"bogus\"");
    CHECK(refused("STATUS") == "unknown command \"STATUS\"");
    CHECK(refused("status now") == "status takes no argument");
    CHECK(refused("kick") == "kick needs one user name");
    CHECK(refused("kick a b") == "kick needs one user name");
    CHECK(refused("kick al_ice").find("is not a user name") != std::string::npos);
    CHECK(refused("kick " + std::string(65, 'a')).find("is not a user name") != std::string::npos);
    CHECK(refused("end a\x01").find("control") != std::string::npos);
    CHECK(refused("kick \xc3\xa9").find("non-ASCII") != std::string::npos);
    CHECK(refused("drain -1").find("not a number of seconds") != std::string::npos);
    CHECK(refused("drain 1e3").find("not a number of seconds") != std::string::npos);
    CHECK(refused("drain 99999999999").find("not a number of seconds") != std::string::npos);
    CHECK(refused("drain 1 2") == "drain takes at most one number of seconds");
    CHECK(refused(std::string(2000, 'a')) == "request too long");
}

TEST_CASE("format_request gives back what parse_request reads") {
    for (const char* line : {"status", "users json", "kick alice", "end bob json", "drain 300", "drain 5 json",
                             "log-reopen", "reload json", "kick json json"}) {
        CAPTURE(line);
        Request r = parsed(line);
        std::string text = format_request(r);
        REQUIRE(text.back() == '\n');
        Request again = parsed(text.substr(0, text.size() - 1));
        CHECK(again.command == r.command);
        CHECK(again.user == r.user);
        CHECK(again.json == r.json);
        CHECK(again.drain_limit == r.drain_limit);
    }
    CHECK(format_request(parsed("drain")) == "drain 300\n");
}

TEST_CASE("dtcall-ctl's arguments") {
    auto args = [](std::vector<std::string> a) { return parse_ctl_arguments(a); };
    auto status = args({"status"});
    REQUIRE(status.ok());
    CHECK(status->control_path == "/run/dtcalld/control");
    CHECK(status->request.command == Command::status);

    auto kick = args({"--control", "/tmp/c", "kick", "alice", "--json"});
    REQUIRE(kick.ok());
    CHECK(kick->control_path == "/tmp/c");
    CHECK(kick->request.user == "alice");
    CHECK(kick->request.json);
    CHECK(args({"--json", "--control=/x", "drain", "10"})->request.drain_limit == 10s);
    CHECK(args({"--help"})->action == CtlOptions::Action::help);
    CHECK(args({"--version"})->action == CtlOptions::Action::version);

    CHECK(args({}).error() == "no command (try --help)");
    CHECK(args({"--control"}).error() == "--control needs a path");
    CHECK(args({"--bogus", "status"}).error() == "unknown option \"--bogus\" (try --help)");
    CHECK(args({"bogus"}).error() == "unknown command \"bogus\"");
    CHECK(args({"kick", "al ice"}).error() == "bad argument \"al ice\"");
    CHECK(args({"kick"}).error() == "kick needs one user name");
    CHECK(args({"drain", "-5"}).error().find("not a number of seconds") != std::string::npos);
}

TEST_CASE("answers: a status line, then the body") {
    CHECK(format_ok("x\n") == "ok\nx\n");
    CHECK(format_error("user bob is not online") == "error user bob is not online\n");
    CHECK(format_error("a\nb") == "error a?b\n");
    Response r;
    REQUIRE(parse_response("ok\nline 1\nline 2\n", r));
    CHECK(r.ok);
    CHECK(r.body == "line 1\nline 2\n");
    REQUIRE(parse_response("error no such thing\n", r));
    CHECK_FALSE(r.ok);
    CHECK(r.message == "no such thing");
    CHECK_FALSE(parse_response("", r));
    CHECK_FALSE(parse_response("ok", r));
    CHECK_FALSE(parse_response("maybe\n", r));
    CHECK_FALSE(parse_response("error \n", r));
}

TEST_CASE("durations, times and JSON strings") {
    CHECK(format_duration(0ms) == "0s");
    CHECK(format_duration(45999ms) == "45s");
    CHECK(format_duration(185s) == "3m05s");
    CHECK(format_duration(2h + 3min) == "2h03m00s");
    CHECK(format_duration(24h * 3 + 4h + 5min + 6s) == "3d04h05m");
    CHECK(format_duration(-5s) == "0s");
    CHECK(utc_time(noon) == "2024-05-01T12:00:00Z");
    CHECK(local_time(noon) == "2024-05-01 12:00:00");
    CHECK(json_string("a\"b\\c\n") == "\"a\\\"b\\\\c\\u000a\"");
}

TEST_CASE("status as a table and as JSON") {
    StatusView view;
    view.version = "0.1.0";
    view.uptime = 3723s;
    view.stats.connections = 3;
    view.stats.logged_in = 2;
    view.stats.calls_ringing = 1;
    view.stats.calls_in_progress = 4;
    CHECK(format_status(view, false) ==
          "version       0.1.0\n"
          "uptime        1h02m03s\n"
          "state         serving\n"
          "connections   3\n"
          "users online  2\n"
          "calls         ringing 1, accepted 0, in call 4\n");
    view.draining = true;
    CHECK(format_status(view, true) ==
          "{\"version\":\"0.1.0\",\"uptime_seconds\":3723,\"state\":\"draining\",\"connections\":3,"
          "\"users_online\":2,\"calls\":{\"ringing\":1,\"accepted\":0,\"in_call\":4}}\n");
}

TEST_CASE("users as a table and as JSON") {
    std::vector<dtcall::OnlineUser> users(2);
    users[0].user = "alice";
    users[0].address = "127.0.0.1:5000";
    users[0].since = noon - 90s;
    users[0].phase = dtcall::CallPhase::in_call;
    users[0].peer = "bob";
    users[1].user = "carol";
    users[1].address = "[::1]:6000";
    users[1].since = noon;
    CHECK(format_users(users, noon, false) ==
          "USER   NODE  ADDRESS         SINCE                CALL\n"
          "alice  -     127.0.0.1:5000  2024-05-01 11:58:30  in_call bob\n"
          "carol  -     [::1]:6000      2024-05-01 12:00:00  -\n");
    CHECK(format_users(users, noon, true) ==
          "{\"users\":[{\"user\":\"alice\",\"node\":null,\"address\":\"127.0.0.1:5000\","
          "\"since\":\"2024-05-01T11:58:30Z\",\"online_seconds\":90,\"phase\":\"in_call\",\"peer\":\"bob\"},"
          "{\"user\":\"carol\",\"node\":null,\"address\":\"[::1]:6000\",\"since\":\"2024-05-01T12:00:00Z\","
          "\"online_seconds\":0,\"phase\":\"idle\",\"peer\":null}]}\n");
    CHECK(format_users({}, noon, false) == "USER  NODE  ADDRESS  SINCE  CALL\n");
    CHECK(format_users({}, noon, true) == "{\"users\":[]}\n");

    // In a cluster: the node each user is logged in on.
    users[0].node = "node1";
    users[1].node = "eu-west-2";
    CHECK(format_users(users, noon, false) ==
          "USER   NODE       ADDRESS         SINCE                CALL\n"
          "alice  node1      127.0.0.1:5000  2024-05-01 11:58:30  in_call bob\n"
          "carol  eu-west-2  [::1]:6000      2024-05-01 12:00:00  -\n");
    std::string json = format_users(users, noon, true);
    CHECK(json.find("{\"user\":\"alice\",\"node\":\"node1\",\"address\":") != std::string::npos);
    CHECK(json.find("{\"user\":\"carol\",\"node\":\"eu-west-2\",\"address\":") != std::string::npos);
}

TEST_CASE("calls as a table and as JSON") {
    dtcall::CallInfo ringing;
    ringing.caller = "carol";
    ringing.callee = "dave";
    ringing.phase = dtcall::CallPhase::ringing;
    ringing.rung_at = noon - 2s;
    std::vector<dtcall::CallInfo> calls{sample_call(), ringing};
    CHECK(format_calls(calls, noon, false) ==
          "CALLER  CALLEE  NODE  PHASE    DURATION  PACKETS  BYTES        GAP(ms)  MOVES\n"
          "alice   bob     -     in_call  1m02s     250/248  32000/31744  40/60    0/1\n"
          "carol   dave    -     ringing  -         0/0      0/0          0/0      0/0\n");
    CHECK(format_calls({sample_call()}, noon, true) ==
          "{\"calls\":[{\"caller\":\"alice\",\"callee\":\"bob\",\"caller_node\":null,\"callee_node\":null,"
          "\"phase\":\"in_call\","
          "\"rung_at\":\"2024-05-01T11:58:55Z\",\"started_at\":\"2024-05-01T11:58:58Z\",\"duration_ms\":62000,"
          "\"caller_to_callee\":{\"packets\":250,\"bytes\":32000,\"longest_gap_ms\":40},"
          "\"callee_to_caller\":{\"packets\":248,\"bytes\":31744,\"longest_gap_ms\":60},"
          "\"caller_media\":{\"address\":\"127.0.0.1:40000\",\"moves\":0},"
          "\"callee_media\":{\"address\":\"127.0.0.1:40002\",\"moves\":1}}]}\n");
    CHECK(format_calls({ringing}, noon, true).find("\"started_at\":null,\"duration_ms\":0") != std::string::npos);

    // In a cluster: the caller's node / the callee's node.
    calls[0].caller_node = "node1";
    calls[0].callee_node = "node2";
    calls[1].caller_node = "node3";
    calls[1].callee_node = "node3";
    CHECK(format_calls(calls, noon, false) ==
          "CALLER  CALLEE  NODE         PHASE    DURATION  PACKETS  BYTES        GAP(ms)  MOVES\n"
          "alice   bob     node1/node2  in_call  1m02s     250/248  32000/31744  40/60    0/1\n"
          "carol   dave    node3/node3  ringing  -         0/0      0/0          0/0      0/0\n");
    CHECK(format_calls({calls[0]}, noon, true).find(
              "{\"caller\":\"alice\",\"callee\":\"bob\",\"caller_node\":\"node1\",\"callee_node\":\"node2\","
              "\"phase\":") != std::string::npos);
    calls[1].callee_node.clear();  // not expected, but readable
    CHECK(format_calls({calls[1]}, noon, false).find("node3/-  ") != std::string::npos);
}

TEST_CASE("messages of the actions") {
    CHECK(format_message("kicked alice", false) == "kicked alice\n");
    CHECK(format_message("draining", true) == "{\"result\":\"draining\"}\n");
}

TEST_CASE("the per-call report line") {
    dtcall::CallReport report;
    report.call = sample_call();
    report.reason = dtcall::EndReason::hangup;
    report.setup_time = 120ms;
    report.duration = 5002ms;
    CHECK(dtcalld::format_call_report(report) ==
          "call alice -> bob ended (hangup): setup 0.120 s, duration 5.002 s; "
          "alice -> bob 250 packets 32000 bytes longest gap 40 ms; "
          "bob -> alice 248 packets 31744 bytes longest gap 60 ms; media moves alice 0 bob 1");
    dtcall::CallReport declined;
    declined.call.caller = "a";
    declined.call.callee = "b";
    declined.reason = dtcall::EndReason::declined;
    CHECK(dtcalld::format_call_report(declined) ==
          "call a -> b ended (declined): setup 0.000 s, duration 0.000 s; a -> b 0 packets 0 bytes longest gap 0 ms; "
          "b -> a 0 packets 0 bytes longest gap 0 ms; media moves a 0 b 0");
}
