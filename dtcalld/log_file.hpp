// dtcalld's log: one line per event, appended to a file in the log directory.
// A new file is started every 24 hours (and on request, for logrotate), so an
// operator can delete old days without stopping the server. Every line is
// censored (censor.hpp). Writing never throws and never stops the server: a
// full disk must cost the log, not the calls.
#pragma once

#include <dtcall/result.hpp>
#include <dtcall/server.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace dtcalld {

using TimePoint = std::chrono::system_clock::time_point;
// Injected so that tests can live through a day in no time.
using Clock = std::function<TimePoint()>;

// Where log lines are copied besides the file.
enum class Echo {
    none,
    terminal,  // full lines on stderr
    journal,   // stderr read by systemd-journald: it adds its own time, so lines
               // carry an sd-daemon "<N>" priority prefix instead
};
// journal when JOURNAL_STREAM names our stderr, terminal when stderr is a
// tty, else none.
Echo echo_from_environment();

constexpr std::chrono::hours log_file_lifetime{24};

// "dtcalld-YYYYMMDD-HHMMSS.log", local time.
std::string log_file_name(TimePoint opened);
// "YYYY-MM-DD HH:MM:SS level message", local time, censored, no newline.
// The level is padded to five characters so messages line up.
std::string format_log_line(TimePoint when, dtcall::LogLevel level, std::string_view message);
const char* level_name(dtcall::LogLevel level);

class LogFile {
public:
    LogFile(std::string dir, Echo echo, Clock clock = std::chrono::system_clock::now);
    ~LogFile();
    LogFile(const LogFile&) = delete;
    LogFile& operator=(const LogFile&) = delete;

    // Opens the first file. The error names the directory (a wrong --log is
    // better reported at start than discovered when the logs are needed).
    dtcall::Status open();
    // Appends one line; lines below the minimum level are dropped.
    void write(dtcall::LogLevel level, std::string_view message) noexcept;
    // Starts a new file now (SIGUSR1). On failure the current file stays.
    void reopen() noexcept;

    void set_min_level(dtcall::LogLevel level) { min_level_ = level; }
    Echo echo() const { return echo_; }
    // The file being written, or empty before open().
    const std::string& path() const { return path_; }

private:
    bool open_file(TimePoint now) noexcept;
    void echo_line(dtcall::LogLevel level, const std::string& line) noexcept;

    std::string dir_;
    Echo echo_;
    Clock clock_;
    dtcall::LogLevel min_level_ = dtcall::LogLevel::info;
    int fd_ = -1;
    std::string path_;
    TimePoint opened_at_{};
    // After a failed rotation, when to try again (not on every line).
    TimePoint retry_at_{};
};

}  // namespace dtcalld
