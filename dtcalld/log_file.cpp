#include "log_file.hpp"

#include "censor.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcalld {
namespace {

constexpr std::chrono::minutes retry_interval{1};

std::string format_local(TimePoint when, const char* format) {
    std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm parts{};
    if (localtime_r(&t, &parts) == nullptr) return "0000-00-00 00:00:00";
    char text[64];
    std::size_t n = std::strftime(text, sizeof text, format, &parts);
    return std::string(text, n);
}

// sd-daemon(3) priorities, so journalctl -p works.
const char* journal_prefix(dtcall::LogLevel level) {
    switch (level) {
    case dtcall::LogLevel::debug: return "<7>";
    case dtcall::LogLevel::info: return "<6>";
    case dtcall::LogLevel::warning: return "<4>";
    case dtcall::LogLevel::error: return "<3>";
    }
    return "<6>";
}

// One write() per line so that lines from a crash-restarted twin never
// interleave mid-line; loops only for the rare short write.
bool write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += std::size_t(n);
    }
    return true;
}

std::chrono::system_clock::duration distance(TimePoint a, TimePoint b) {
    return a > b ? a - b : b - a;
}

}  // namespace

// systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it connected to
// stderr; a child whose stderr was redirected elsewhere inherits the variable,
// so the variable alone is not proof (systemd.exec(5)).
bool stderr_is_journal() {
    const char* value = std::getenv("JOURNAL_STREAM");
    if (value == nullptr || *value == '\0') return false;
    unsigned long long device = 0;
    unsigned long long inode = 0;
    if (std::sscanf(value, "%llu:%llu", &device, &inode) != 2) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) != 0) return false;
    return static_cast<unsigned long long>(st.st_dev) == device && static_cast<unsigned long long>(st.st_ino) == inode;
}

Echo echo_from_environment() {
    if (stderr_is_journal()) return Echo::journal;
    if (::isatty(STDERR_FILENO) == 1) return Echo::terminal;
    return Echo::none;
}

std::string log_file_name(TimePoint opened) {
    return "dtcalld-" + format_local(opened, "%Y%m%d-%H%M%S") + ".log";
}

const char* level_name(dtcall::LogLevel level) {
    switch (level) {
    case dtcall::LogLevel::debug: return "debug";
    case dtcall::LogLevel::info: return "info";
    case dtcall::LogLevel::warning: return "warn";
    case dtcall::LogLevel::error: return "error";
    }
    return "info";
}

std::string format_log_line(TimePoint when, dtcall::LogLevel level, std::string_view message) {
    std::string line = format_local(when, "%Y-%m-%d %H:%M:%S");
    line += ' ';
    std::string name = level_name(level);
    name.resize(5, ' ');
    line += name;
    line += ' ';
    line += censor(message);
    return line;
}

LogFile::LogFile(std::string dir, Echo echo, Clock clock)
    : dir_(std::move(dir)), echo_(echo), clock_(std::move(clock)) {}

LogFile::~LogFile() {
    if (fd_ >= 0) ::close(fd_);
}

dtcall::Status LogFile::open() {
    if (open_file(clock_())) return dtcall::Done{};
    int err = errno;
    return dtcall::Error{dir_ + ": cannot open a log file there: " + std::strerror(err)};
}

bool LogFile::open_file(TimePoint now) noexcept {
    try {
        std::string path = dir_ + "/" + log_file_name(now);
        // O_APPEND: a second open within the same second (two SIGUSR1s)
        // continues the same file instead of truncating it.
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (fd < 0) return false;
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
        path_ = std::move(path);
        opened_at_ = now;
        return true;
    } catch (...) {
        return false;
    }
}

void LogFile::reopen() noexcept {
    TimePoint now = clock_();
    if (!open_file(now)) retry_at_ = now + retry_interval;
}

void LogFile::write(dtcall::LogLevel level, std::string_view message) noexcept {
    if (level < min_level_) return;
    try {
        TimePoint now = clock_();
        // Either way round: a clock set back by a day must not stop rotation.
        bool due = fd_ < 0 || distance(now, opened_at_) >= log_file_lifetime;
        if (due && now >= retry_at_ && !open_file(now)) retry_at_ = now + retry_interval;
        std::string line = format_log_line(now, level, message);
        if (fd_ >= 0) (void)write_all(fd_, line + '\n');
        echo_line(level, line);
    } catch (...) {
        // Out of memory while formatting: losing one line is the right price.
    }
}

void LogFile::echo_line(dtcall::LogLevel level, const std::string& line) noexcept {
    try {
        switch (echo_) {
        case Echo::none: return;
        case Echo::terminal: (void)write_all(STDERR_FILENO, line + '\n'); return;
        case Echo::journal: {
            // The journal stamps its own time; skip ours ("YYYY-MM-DD HH:MM:SS ").
            std::string_view rest(line);
            rest.remove_prefix(std::min<std::size_t>(rest.size(), 20));
            (void)write_all(STDERR_FILENO, journal_prefix(level) + std::string(rest) + '\n');
            return;
        }
        }
    } catch (...) {
    }
}

}  // namespace dtcalld
