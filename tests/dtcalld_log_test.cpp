// dtcalld's log: the censor, the line format, and a new file every 24 hours,
// with an injected clock so that a day passes in no time. Runs with TZ=UTC.
#include "censor.hpp"
#include "log_file.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using dtcall::LogLevel;
using dtcalld::censor;
using namespace std::chrono_literals;

namespace {

// 2026-11-24 05:00:00 UTC
const dtcalld::TimePoint t0 = std::chrono::system_clock::from_time_t(1795496400);

using test_support::TempDir;

std::set<std::string> files_in(const std::string& dir) {
    std::set<std::string> names;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name != "." && name != "..") names.insert(name);
        }
        closedir(d);
    }
    return names;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

}  // namespace

TEST_CASE("censor: long token runs go, everything an operator needs stays") {
    std::string session_key(59, 'a');
    session_key[10] = '7';
    CHECK(censor("alice logged in with " + session_key + " from 127.0.0.1:5000") ==
          "alice logged in with [censored] from 127.0.0.1:5000");
    CHECK(censor(std::string(200, 'Z')) == "[censored]");
    CHECK(censor("blob " + std::string(732, '1') + "|end") == "blob [censored]|end");
    // 31 is below the threshold, 32 is at it.
    CHECK(censor(std::string(31, 'x')) == std::string(31, 'x'));
    CHECK(censor(std::string(32, 'x')) == "[censored]");
    // Separators split runs: two halves of 20 are both kept.
    CHECK(censor(std::string(20, 'a') + "-" + std::string(20, 'b')) == std::string(20, 'a') + "-" + std::string(20, 'b'));
    CHECK(censor("call alice -> bob ended: hangup") == "call alice -> bob ended: hangup");
    CHECK(censor("") == "");
}

TEST_CASE("censor: one event stays one line") {
    CHECK(censor("a\nb\rc\x1b[0m") == "a?b?c?[0m");
    CHECK(censor(std::string("x\0y", 3)) == "x?y");
}

TEST_CASE("line format: time, padded level, censored message") {
    CHECK(dtcalld::format_log_line(t0, LogLevel::info, "hello") == "2026-11-24 05:00:00 info  hello");
    CHECK(dtcalld::format_log_line(t0, LogLevel::warning, "w") == "2026-11-24 05:00:00 warn  w");
    CHECK(dtcalld::format_log_line(t0, LogLevel::error, "e") == "2026-11-24 05:00:00 error e");
    CHECK(dtcalld::format_log_line(t0, LogLevel::debug, std::string(40, 'k')) == "2026-11-24 05:00:00 debug [censored]");
    CHECK(dtcalld::log_file_name(t0) == "dtcalld-20261124-050000.log");
}

TEST_CASE("a new file every 24 hours, checked at each write") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile log(dir.path, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(log.open().ok());
    CHECK(log.path() == dir.path + "/dtcalld-20261124-050000.log");

    log.write(LogLevel::info, "first");
    now += 23h + 59min + 59s;
    log.write(LogLevel::info, "still the first day");
    CHECK(files_in(dir.path).size() == 1);

    now = t0 + 24h;
    log.write(LogLevel::info, "second day");
    CHECK(files_in(dir.path) == std::set<std::string>{"dtcalld-20261124-050000.log", "dtcalld-20261125-050000.log"});
    CHECK(read_file(dir.path + "/dtcalld-20261124-050000.log") ==
          "2026-11-24 05:00:00 info  first\n2026-11-25 04:59:59 info  still the first day\n");
    CHECK(read_file(dir.path + "/dtcalld-20261125-050000.log") == "2026-11-25 05:00:00 info  second day\n");

    // The 24 hours count from when the file was opened, not from midnight.
    now += 12h;
    log.write(LogLevel::info, "x");
    CHECK(files_in(dir.path).size() == 2);
    now += 12h;
    log.write(LogLevel::info, "y");
    CHECK(files_in(dir.path).size() == 3);
}

TEST_CASE("a clock set back by a day still rotates") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile log(dir.path, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(log.open().ok());
    now -= 25h;
    log.write(LogLevel::info, "back in time");
    CHECK(files_in(dir.path).size() == 2);
}

TEST_CASE("reopen (SIGUSR1) starts a new file at once") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile log(dir.path, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(log.open().ok());
    log.write(LogLevel::info, "a");
    now += 10s;
    log.reopen();
    log.write(LogLevel::info, "b");
    CHECK(log.path() == dir.path + "/dtcalld-20261124-050010.log");
    CHECK(read_file(log.path()) == "2026-11-24 05:00:10 info  b\n");
    // Reopening within the same second appends instead of truncating.
    log.reopen();
    log.write(LogLevel::info, "c");
    CHECK(read_file(log.path()) == "2026-11-24 05:00:10 info  b\n2026-11-24 05:00:10 info  c\n");
}

TEST_CASE("the minimum level drops quieter lines") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile log(dir.path, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(log.open().ok());
    log.write(LogLevel::debug, "not by default");
    log.set_min_level(LogLevel::warning);
    log.write(LogLevel::info, "dropped");
    log.write(LogLevel::warning, "kept");
    CHECK(read_file(log.path()) == "2026-11-24 05:00:00 warn  kept\n");
}

TEST_CASE("secrets never reach the file") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile log(dir.path, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(log.open().ok());
    std::string challenge(200, 'Q');
    log.write(LogLevel::info, "challenge " + challenge + "\nforged line");
    std::string text = read_file(log.path());
    CHECK(text.find(challenge) == std::string::npos);
    CHECK(text == "2026-11-24 05:00:00 info  challenge [censored]?forged line\n");
}

TEST_CASE("an unusable log directory is reported at open, and writing never throws") {
    TempDir dir;
    dtcalld::LogFile log(dir.path + "/missing", dtcalld::Echo::none);
    auto opened = log.open();
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().find(dir.path + "/missing") == 0);
    CHECK(log.path().empty());
    log.write(LogLevel::error, "goes nowhere");  // must simply not crash
    log.reopen();

    // The directory vanishes under a running log: writes carry on quietly.
    std::string gone = dir.path + "/gone";
    REQUIRE(mkdir(gone.c_str(), 0700) == 0);
    dtcalld::TimePoint now = t0;
    dtcalld::LogFile live(gone, dtcalld::Echo::none, [&now] { return now; });
    REQUIRE(live.open().ok());
    std::string command = "rm -rf '" + gone + "'";
    REQUIRE(std::system(command.c_str()) == 0);
    now += 25h;
    live.write(LogLevel::info, "rotation fails, the old descriptor is kept");
    now += 1s;
    live.write(LogLevel::info, "and no retry storm");
    CHECK(files_in(dir.path).empty());
}

namespace {

// Runs `body` with stderr sent to a file, and returns what was written.
template <class Body>
std::string capture_stderr(const std::string& file, Body body) {
    int saved = dup(STDERR_FILENO);
    REQUIRE(saved >= 0);
    {
        std::ofstream touch(file);
    }
    int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC);
    REQUIRE(fd >= 0);
    dup2(fd, STDERR_FILENO);
    ::close(fd);
    body();
    dup2(saved, STDERR_FILENO);
    ::close(saved);
    return read_file(file);
}

}  // namespace

TEST_CASE("the journal gets a priority prefix instead of our time; a terminal gets the full line") {
    TempDir dir;
    dtcalld::TimePoint now = t0;
    std::string out = capture_stderr(dir.path + "/stderr", [&] {
        dtcalld::LogFile journal(dir.path, dtcalld::Echo::journal, [&now] { return now; });
        REQUIRE(journal.open().ok());
        journal.write(LogLevel::warning, "careful");
        journal.write(LogLevel::info, "fine");
        dtcalld::LogFile terminal(dir.path, dtcalld::Echo::terminal, [&now] { return now; });
        REQUIRE(terminal.open().ok());
        terminal.write(LogLevel::error, "bad");
    });
    CHECK(out == "<4>warn  careful\n<6>info  fine\n2026-11-24 05:00:00 error bad\n");
}

TEST_CASE("JOURNAL_STREAM counts only when it names our stderr") {
    TempDir dir;
    std::string file = dir.path + "/stderr";
    const char* old = std::getenv("JOURNAL_STREAM");
    std::string saved = old ? old : "";
    dtcalld::Echo matching = dtcalld::Echo::none;
    dtcalld::Echo other = dtcalld::Echo::none;
    capture_stderr(file, [&] {
        struct stat st {};
        REQUIRE(fstat(STDERR_FILENO, &st) == 0);
        std::string value = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
        setenv("JOURNAL_STREAM", value.c_str(), 1);
        matching = dtcalld::echo_from_environment();
        setenv("JOURNAL_STREAM", "1:2", 1);
        other = dtcalld::echo_from_environment();
    });
    if (old) setenv("JOURNAL_STREAM", saved.c_str(), 1);
    else unsetenv("JOURNAL_STREAM");
    CHECK(matching == dtcalld::Echo::journal);
    CHECK(other == dtcalld::Echo::none);  // a file is not a terminal either
}
