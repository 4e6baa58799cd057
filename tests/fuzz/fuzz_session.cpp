// A whole Session fed bytes over a socket pair. The first byte picks how far
// the harness takes the connection before the fuzz bytes follow:
//   0: nothing (raw bytes at the handshake)   1: after the handshake
//   2: after handshake + login; the rest is split at '\n' into commands, each
//      sealed as a proper frame, so the command and call paths are reached.
#include "session/session.hpp"

#include <event2/event.h>

#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

struct FakeHost : dtcall::Session::Host {
    dtcall::Config cfg;
    dtcall::KeyPair alice = dtcall::KeyPair::generate();
    bool closed = false;
    bool answer = true;
    const dtcall::Config& config() const override { return cfg; }
    // Answers at once, from inside the call, as the shipped directories do.
    void look_up_user(dtcall::Session& s, const std::string& user) override {
        std::optional<dtcall::PublicKey> key;
        if (user == "alice") key = alice.public_key;
        s.user_looked_up(user, dtcall::UserLookup(key));
    }
    const dtcall::SharedKey* user_box_key(const dtcall::PublicKey& key) override {
        box_key = dtcall::SharedKey::derive(cfg.server_keys.secret_key, key);
        return box_key ? &*box_key : nullptr;
    }
    std::optional<dtcall::SharedKey> box_key;
    void session_logged_in(dtcall::Session&, bool) override {}
    bool session_command(dtcall::Session& s, dtcall::wire::Verb, const dtcall::wire::Command&) override {
        if (!answer) s.send(dtcall::wire::Message{dtcall::wire::MessageKind::end, {"bob"}});
        return answer;
    }
    void session_closing(dtcall::Session&, dtcall::Session::CloseReason) override {}
    void session_closed(dtcall::Session&) override { closed = true; }
    void log(dtcall::LogLevel, const std::string&) override {}
    bool login_allowed(dtcall::Session&, const std::string&) override { return true; }
    void login_failed(dtcall::Session&, const std::string&, dtcall::LoginFailure) override {}
};

void pump(event_base* base) {
    for (int i = 0; i < 4; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
}

// Reads one frame the session sent (the harness's own reads are whole: the
// session never has two frames pending and the socket pair keeps them apart
// only by length, so read the header first).
dtcall::Bytes read_frame(int fd, event_base* base) {
    dtcall::Bytes out;
    for (int tries = 0; tries < 50; ++tries) {
        pump(base);
        std::uint8_t buffer[4096];
        ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n > 0) out.insert(out.end(), buffer, buffer + n);
        if (out.size() >= 28 && out.size() >= 44 + dtcall::wire::announced_length(out.data())) break;
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    dtcall::crypto_init();
    event_base* base = event_base_new();
    FakeHost host;
    host.cfg.server_keys = dtcall::KeyPair::generate();
    host.cfg.frame_gap = std::chrono::milliseconds(0);
    host.answer = data[0] & 0x80;
    int fds[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds);
    sockaddr_in fake{};
    fake.sin_family = AF_INET;
    fake.sin_addr.s_addr = htonl(0x7f000001);
    auto* session = new dtcall::Session(base, fds[0], reinterpret_cast<sockaddr*>(&fake), sizeof fake, host, 1);
    int mode = data[0] % 3;
    dtcall::Bytes tcp_key;
    const std::uint8_t* rest = data + 1;
    std::size_t rest_size = size - 1;
    if (mode >= 1) {
        dtcall::KeyPair eph = dtcall::KeyPair::generate();
        auto hello = dtcall::seal_anonymous(host.cfg.server_keys.public_key, eph.public_key.bytes.data(), 32);
        (void)!::write(fds[1], hello.data(), hello.size());
        auto reply = read_frame(fds[1], base);
        auto key = dtcall::open_box_frame(eph.secret_key, host.cfg.server_keys.public_key, reply.data(), reply.size());
        if (key) tcp_key.assign(key->begin(), key->end());
    }
    if (mode == 2 && tcp_key.size() == 32) {
        auto send = [&](const std::string& text) {
            auto frame = dtcall::seal_secret_frame(tcp_key.data(), text);
            (void)!::write(fds[1], frame.data(), frame.size());
        };
        send("1700000000|login1|alice");
        auto reply = read_frame(fds[1], base);
        auto text = dtcall::open_secret_frame(tcp_key.data(), reply.data(), reply.size());
        std::string ts = std::to_string(time(nullptr));
        if (text && text->find("|login1resp|") != std::string::npos) {
            auto blob = dtcall::unstringify(text->substr(text->find("|login1resp|") + 12));
            if (blob) {
                auto challenge = dtcall::open_box_frame(host.alice.secret_key, host.cfg.server_keys.public_key,
                                                        blob->data(), blob->size());
                if (challenge) send(ts + "|login2|alice|" + *challenge);
            }
        }
        pump(base);
        std::size_t start = 0;
        for (std::size_t i = 0; i <= rest_size; ++i) {
            if (i == rest_size || rest[i] == '\n') {
                if (i > start) send(std::string(reinterpret_cast<const char*>(rest + start), i - start));
                start = i + 1;
                pump(base);
                std::uint8_t sink[8192];
                while (::recv(fds[1], sink, sizeof sink, MSG_DONTWAIT) > 0) {}
            }
        }
    } else if (rest_size > 0) {
        (void)!::write(fds[1], rest, rest_size);
    }
    pump(base);
    delete session;
    ::close(fds[1]);
    event_base_free(base);
    return 0;
}
