#include "daemon_process.hpp"

#include <dtcall/client.hpp>
#include "crypto/crypto.hpp"

#include <doctest/doctest.h>

#include <event2/event.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;

namespace daemon_process {

std::string env_or_fail(const char* name) {
    const char* value = std::getenv(name);
    REQUIRE_MESSAGE(value != nullptr, name << " is not set (run through meson test)");
    return value;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string read_logs(const std::string& dir) {
    std::string all;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            std::string name = e->d_name;
            if (name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0) all += read_file(dir + "/" + name);
        }
        closedir(d);
    }
    return all;
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

int lines_in(const std::string& text) {
    int n = 0;
    for (char c : text) n += c == '\n';
    return n;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return condition();
}

std::uint16_t free_port(int type) {
    int fd = ::socket(AF_INET, type, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

bool tcp_connects(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    ::close(fd);
    return ok;
}

ChildOutput ChildOutput::in_dir(const std::string& dir) { return {dir + "/stdout.txt", dir + "/stderr.txt"}; }

ChildOutput ChildOutput::with_prefix(const std::string& prefix) { return {prefix + ".out", prefix + ".err"}; }

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const ChildOutput& output,
                           std::optional<rlimit> open_files, const Environment& environment)
    : output_(output) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
        int out = ::open(output_.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = ::open(output_.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (out < 0 || err < 0) ::_exit(126);
        ::dup2(out, STDOUT_FILENO);
        ::dup2(err, STDERR_FILENO);
        // Under systemd the test runner has it; dtcalld would then echo
        // its log to stderr and the "one stderr line" checks would be moot.
        ::unsetenv("JOURNAL_STREAM");
        // Likewise systemd's notify socket: only a test that made one gives it.
        for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(name);
        for (const auto& [name, value] : environment) ::setenv(name.c_str(), value.c_str(), 1);
        if (open_files && ::setrlimit(RLIMIT_NOFILE, &*open_files) != 0) ::_exit(125);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& out_dir,
                           std::optional<rlimit> open_files, const Environment& environment)
    : ChildProcess(argv, ChildOutput::in_dir(out_dir), open_files, environment) {}

ChildProcess::~ChildProcess() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

void ChildProcess::signal(int number) const { REQUIRE(::kill(pid_, number) == 0); }

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds limit) {
    eventually([this] { return !running(); }, limit);
    if (!status_) return std::nullopt;
    if (WIFEXITED(*status_)) return WEXITSTATUS(*status_);
    return 128 + WTERMSIG(*status_);
}

bool ChildProcess::running() {
    if (status_) return false;
    int raw = 0;
    if (::waitpid(pid_, &raw, WNOHANG) == pid_) status_ = raw;
    return !status_;
}

SettingsDir::SettingsDir(const std::string& conf_name) {
    using test_support::write_file;
    settings = dir / "settings";
    logs = dir / "log";
    REQUIRE(::mkdir(settings.c_str(), 0700) == 0);
    REQUIRE(::mkdir(logs.c_str(), 0700) == 0);
    REQUIRE(dtcall::crypto_init());
    REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), settings + "/server_public.na",
                                    settings + "/server_private.na")
                .ok());
    for (const char* user : {"alice", "bob"}) {
        std::string base = settings + "/" + user;
        REQUIRE(dtcall::write_key_files(dtcall::KeyPair::generate(), base + "_public.na", base + "_private.na").ok());
    }
    // Line 2 is broken on purpose: a warning, never a reason to stop.
    write_file(settings + "/users",
               "alice > " + settings + "/alice_public.na\n"
               "this line is broken\n"
               "bob > " + settings + "/bob_public.na\n");
    command_port = free_port(SOCK_STREAM);
    media_port = free_port(SOCK_DGRAM);
    // The tests name conf lines by number: private_sodium is line 5.
    write_conf(conf_name,
               "# made by dtcalld_process_test\n"
               "command = " + std::to_string(command_port) + "\n"
               "media = " + std::to_string(media_port) + "   # UDP\n"
               "public_sodium = server_public.na\n"
               "private_sodium = " + settings + "/server_private.na\n"
               "listen = 127.0.0.1\n");
}

void SettingsDir::write_conf(const std::string& name, const std::string& text) const {
    test_support::write_file(settings + "/" + name, text);
}

std::vector<std::string> SettingsDir::argv() const {
    return {env_or_fail("DTCALLD"), "--settings", settings, "--log", logs};
}

std::string try_login(const SettingsDir& s, const std::string& user) {
    auto server_key = dtcall::read_public_key_file(s.settings + "/server_public.na");
    auto user_key = dtcall::read_private_key_file(s.settings + "/" + user + "_private.na");
    REQUIRE(server_key.ok());
    REQUIRE(user_key.ok());
    dtcall::ClientConfig config;
    config.host = "127.0.0.1";
    config.command_port = s.command_port;
    config.media_port = s.media_port;
    config.server_key = *server_key;
    config.user = user;
    config.user_key = *user_key;
    config.login_timeout = 3s;

    event_base* base = event_base_new();
    REQUIRE(base != nullptr);
    std::string outcome = "no answer within 5 s";
    dtcall::ClientEvents events;
    events.logged_in = [&] { outcome = "logged in"; event_base_loopexit(base, nullptr); };
    events.login_failed = [&](const std::string&) { outcome = "refused"; event_base_loopexit(base, nullptr); };
    events.closed = [&](const std::string& reason) { outcome = "closed: " + reason; event_base_loopexit(base, nullptr); };
    {
        dtcall::Client client(base, config, events);
        auto connected = client.connect();
        if (!connected) {
            outcome = connected.error();
        } else {
            timeval limit{5, 0};
            event_base_loopexit(base, &limit);
            event_base_dispatch(base);
        }
    }
    event_base_free(base);
    return outcome;
}

HeldLogin::HeldLogin(const SettingsDir& s, const std::string& user) : base_(event_base_new()) {
    REQUIRE(base_ != nullptr);
    dtcall::ClientConfig config;
    config.command_port = s.command_port;
    config.media_port = s.media_port;
    config.server_key = *dtcall::read_public_key_file(s.settings + "/server_public.na");
    config.user = user;
    config.user_key = *dtcall::read_private_key_file(s.settings + "/" + user + "_private.na");
    dtcall::ClientEvents events;
    events.logged_in = [this] { event_base_loopbreak(base_); };
    events.closed = [this](const std::string&) {
        closed_ = true;
        event_base_loopbreak(base_);
    };
    client_ = std::make_unique<dtcall::Client>(base_, config, events);
    REQUIRE(client_->connect());
    run_for(5s);
    REQUIRE(client_->is_logged_in());
}

HeldLogin::~HeldLogin() {
    client_.reset();
    if (base_) event_base_free(base_);
}

void HeldLogin::run_for(std::chrono::milliseconds time) {
    timeval limit{time_t(time.count() / 1000), suseconds_t(time.count() % 1000 * 1000)};
    event_base_loopexit(base_, &limit);
    event_base_dispatch(base_);
}

void expect_refusal(const SettingsDir& s, const std::string& expected) {
    ChildProcess dtcalld(s.argv(), s.dir.path);
    auto status = dtcalld.wait_exit();
    REQUIRE_MESSAGE(status.has_value(), "dtcalld did not exit");
    CHECK(*status == 1);
    std::string err = dtcalld.err();
    CHECK_MESSAGE(lines_in(err) == 1, err);
    CHECK_MESSAGE(contains(err, expected), err);
}

}  // namespace daemon_process
