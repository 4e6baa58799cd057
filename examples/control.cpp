// examples/control.cpp: running a dtcall::Server as a service. The program
// embeds a Server in its own libevent loop, with a user directory that
// answers asynchronously (as one behind a network would), and serves a small
// control API over HTTP on 127.0.0.1 with libevent's evhttp:
//
//   GET  /users            online users (Server::online_users) as JSON
//   GET  /calls            calls with their media figures (Server::calls)
//   POST /kick?user=NAME   close that user's connection (Server::kick)
//   POST /end?user=NAME    end that user's call for both parties (Server::end_call)
//
// To show it working without a network, it then drives itself: three phones
// (dtcall::Client) log in on the same loop, alice calls bob and says five
// words, and the program asks its own HTTP API for the users and calls (the
// call's figures show the five packets), ends the call and kicks carol,
// printing each answer. Exit status 0 when every step did what it
// should.
//
// Build against an installed libdtcall:
//   c++ -std=c++17 control.cpp $(pkg-config --cflags --libs dtcall libevent_extra) -o control
#include <dtcall/dtcall.hpp>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <netinet/in.h>
#include <vector>

namespace {

// --- a directory that answers later, as a database or a network store would.
// It keeps its users in an InMemoryUserDirectory and answers each lookup
// from a 5 ms timer. Answers are delivered on the loop thread, exactly once.
class SlowDirectory : public dtcall::UserDirectory {
public:
    explicit SlowDirectory(event_base* base) : base_(base) {}
    void add(const std::string& user, const dtcall::PublicKey& key) { users_.add(user, key); }

    void lookup(const std::string& user, Answer answer) override {
        auto pending = std::make_unique<Pending>();
        pending->directory = this;
        pending->user = user;
        pending->answer = std::move(answer);
        pending->timer.reset(evtimer_new(base_, &SlowDirectory::on_timer, pending.get()));
        timeval five_ms{0, 5000};
        evtimer_add(pending->timer.get(), &five_ms);
        pending_.push_back(std::move(pending));
    }

private:
    struct Pending {
        SlowDirectory* directory = nullptr;
        std::string user;
        Answer answer;
        std::unique_ptr<event, void (*)(event*)> timer{nullptr, event_free};
    };
    static void on_timer(evutil_socket_t, short, void* arg) {
        auto* pending = static_cast<Pending*>(arg);
        SlowDirectory* dir = pending->directory;
        for (auto it = dir->pending_.begin(); it != dir->pending_.end(); ++it) {
            if (it->get() != pending) continue;
            std::unique_ptr<Pending> done = std::move(*it);
            dir->pending_.erase(it);
            done->answer(dir->users_.find(done->user));  // exactly once, on the loop thread
            return;
        }
    }
    event_base* base_;
    dtcall::InMemoryUserDirectory users_;
    std::vector<std::unique_ptr<Pending>> pending_;
};

// --- JSON, just enough for these answers.
std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out + "\"";
}

long long unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string flow_json(const dtcall::MediaFlow& f) {
    return "{\"packets\":" + std::to_string(f.packets) + ",\"bytes\":" + std::to_string(f.bytes) +
           ",\"longest_gap_ms\":" + std::to_string(f.longest_gap.count()) + "}";
}

std::string users_json(const dtcall::Server& server) {
    std::string out = "[";
    for (const dtcall::OnlineUser& u : server.online_users()) {
        if (out.size() > 1) out += ",";
        out += "{\"user\":" + json_string(u.user) + ",\"address\":" + json_string(u.address) +
               ",\"since\":" + std::to_string(unix_seconds(u.since)) +
               ",\"keepudp_reconnects\":" + std::to_string(u.keepudp_reconnects) +
               ",\"phase\":" + json_string(dtcall::to_string(u.phase)) + ",\"peer\":" + json_string(u.peer) + "}";
    }
    return out + "]";
}

std::string calls_json(const dtcall::Server& server) {
    std::string out = "[";
    for (const dtcall::CallInfo& c : server.calls()) {
        if (out.size() > 1) out += ",";
        out += "{\"caller\":" + json_string(c.caller) + ",\"callee\":" + json_string(c.callee) +
               ",\"phase\":" + json_string(dtcall::to_string(c.phase)) +
               ",\"rung_at\":" + std::to_string(unix_seconds(c.rung_at)) +
               ",\"caller_to_callee\":" + flow_json(c.caller_to_callee) +
               ",\"callee_to_caller\":" + flow_json(c.callee_to_caller) +
               ",\"caller_media\":" + json_string(c.caller_media.address) +
               ",\"callee_media\":" + json_string(c.callee_media.address) + "}";
    }
    return out + "]";
}

// --- the HTTP control API.
class ControlApi {
public:
    ControlApi(event_base* base, dtcall::Server& server) : server_(server), http_(evhttp_new(base)) {
        evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        evhttp_set_max_body_size(http_, 1024);
        evhttp_set_timeout(http_, 5);
        evhttp_set_gencb(http_, &ControlApi::on_request, this);
    }
    ~ControlApi() { evhttp_free(http_); }

    // Listens on 127.0.0.1, port 0 (any free one); returns the port or 0.
    std::uint16_t listen() {
        evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http_, "127.0.0.1", 0);
        if (!bound) return 0;
        sockaddr_in address{};
        socklen_t length = sizeof address;
        getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&address), &length);
        return ntohs(address.sin_port);
    }

private:
    static void on_request(evhttp_request* request, void* self) {
        static_cast<ControlApi*>(self)->handle(request);
    }

    void handle(evhttp_request* request) {
        const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
        std::string path = evhttp_uri_get_path(uri) ? evhttp_uri_get_path(uri) : "";
        std::string user = query_value(uri, "user");
        bool get = evhttp_request_get_command(request) == EVHTTP_REQ_GET;
        if (get && path == "/users") return reply(request, HTTP_OK, users_json(server_));
        if (get && path == "/calls") return reply(request, HTTP_OK, calls_json(server_));
        if (!get && (path == "/kick" || path == "/end")) {
            dtcall::Status done = path == "/kick" ? server_.kick(user) : server_.end_call(user);
            if (done) return reply(request, HTTP_OK, "{\"ok\":true}");
            int status = done.code() == dtcall::ErrorCode::not_found ? HTTP_NOTFOUND : HTTP_BADREQUEST;
            return reply(request, status, "{\"error\":" + json_string(done.error()) + "}");
        }
        reply(request, HTTP_NOTFOUND, "{\"error\":\"no such resource\"}");
    }

    static std::string query_value(const evhttp_uri* uri, const char* key) {
        const char* query = evhttp_uri_get_query(uri);
        if (!query) return {};
        evkeyvalq params;
        if (evhttp_parse_query_str(query, &params) != 0) return {};
        const char* value = evhttp_find_header(&params, key);
        std::string out = value ? value : "";
        evhttp_clear_headers(&params);
        return out;
    }

    static void reply(evhttp_request* request, int status, const std::string& body) {
        evbuffer* out = evbuffer_new();
        evbuffer_add(out, body.data(), body.size());
        evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", "application/json");
        evhttp_send_reply(request, status, nullptr, out);
        evbuffer_free(out);
    }

    dtcall::Server& server_;
    evhttp* http_;
};

// --- asking our own API, as an operator's tool would.
class HttpAsk {
public:
    using Done = std::function<void(int status, const std::string& body)>;
    HttpAsk(event_base* base, std::uint16_t port)
        : connection_(evhttp_connection_base_new(base, nullptr, "127.0.0.1", port)) {}
    ~HttpAsk() { evhttp_connection_free(connection_); }

    void ask(evhttp_cmd_type method, const std::string& path, Done done) {
        auto* pending = new Done(std::move(done));
        evhttp_request* request = evhttp_request_new(&HttpAsk::on_answer, pending);
        evhttp_add_header(evhttp_request_get_output_headers(request), "Host", "127.0.0.1");
        if (evhttp_make_request(connection_, request, method, path.c_str()) != 0) {
            (*pending)(0, "request failed");
            delete pending;
        }
    }

private:
    static void on_answer(evhttp_request* request, void* arg) {
        std::unique_ptr<Done> done(static_cast<Done*>(arg));
        if (!request) return (*done)(0, "no answer");
        evbuffer* in = evhttp_request_get_input_buffer(request);
        std::string body(evbuffer_get_length(in), '\0');
        evbuffer_remove(in, body.data(), body.size());
        (*done)(evhttp_request_get_response_code(request), body);
    }
    evhttp_connection* connection_;
};

}  // namespace

int main() {
    if (!dtcall::crypto_init()) return 1;
    std::signal(SIGPIPE, SIG_IGN);
    event_base* base = event_base_new();
    int result = 1;
    {
        std::map<std::string, dtcall::KeyPair> keys;
        SlowDirectory users(base);
        for (const char* name : {"alice", "bob", "carol"}) {
            keys[name] = dtcall::KeyPair::generate();
            users.add(name, keys[name].public_key);
        }
        dtcall::Config config;
        config.listen_addresses = {"127.0.0.1"};
        config.command_port = 0;
        config.media_port = 0;
        config.server_keys = dtcall::KeyPair::generate();
        dtcall::Server server(config, users, base);
        server.set_log([](dtcall::LogLevel level, const std::string& line) {
            if (level >= dtcall::LogLevel::info) std::printf("[server] %s\n", line.c_str());
        });
        if (auto started = server.start(); !started) {
            std::fprintf(stderr, "control: %s\n", started.error().c_str());
            return 1;
        }
        ControlApi api(base, server);
        std::uint16_t port = api.listen();
        if (port == 0) {
            std::fprintf(stderr, "control: cannot listen for HTTP on 127.0.0.1\n");
            return 1;
        }
        std::printf("[control] HTTP API on http://127.0.0.1:%u\n", unsigned(port));
        HttpAsk http(base, port);

        // The script: each step checks its answer and starts the next.
        std::string failure;
        auto fail = [&](const std::string& why) {
            if (failure.empty()) failure = why;
            event_base_loopbreak(base);
        };
        auto expect = [&](int status, const std::string& body, int wanted, const std::string& needle) {
            std::printf("[control]   -> %d %s\n", status, body.c_str());
            if (status != wanted || body.find(needle) == std::string::npos) {
                fail("unexpected answer " + std::to_string(status) + " " + body);
                return false;
            }
            return true;
        };

        std::map<std::string, std::unique_ptr<dtcall::Client>> phones;
        int logged_in = 0, ended = 0, heard = 0;
        bool carol_closed = false;
        std::function<void()> after_call_ended;

        auto inspect_and_act = [&] {
            std::printf("[control] GET /users\n");
            http.ask(EVHTTP_REQ_GET, "/users", [&](int status, const std::string& body) {
                if (!expect(status, body, 200, "\"carol\"")) return;
                std::printf("[control] GET /calls\n");
                http.ask(EVHTTP_REQ_GET, "/calls", [&](int status, const std::string& body) {
                    if (!expect(status, body, 200, "\"caller_to_callee\":{\"packets\":5")) return;
                    std::printf("[control] POST /end?user=bob\n");
                    http.ask(EVHTTP_REQ_POST, "/end?user=bob", [&](int status, const std::string& body) {
                        expect(status, body, 200, "\"ok\"");
                    });
                });
            });
        };
        after_call_ended = [&] {
            std::printf("[control] POST /end?user=bob again (no call now)\n");
            http.ask(EVHTTP_REQ_POST, "/end?user=bob", [&](int status, const std::string& body) {
                if (!expect(status, body, 404, "has no call")) return;
                std::printf("[control] POST /kick?user=carol\n");
                http.ask(EVHTTP_REQ_POST, "/kick?user=carol", [&](int status, const std::string& body) {
                    if (!expect(status, body, 200, "\"ok\"")) return;
                    std::printf("[control] GET /users\n");
                    http.ask(EVHTTP_REQ_GET, "/users", [&](int status, const std::string& body) {
                        if (!expect(status, body, 200, "\"alice\"")) return;
                        if (body.find("\"carol\"") != std::string::npos) return fail("carol still online");
                        if (!carol_closed) return fail("carol's phone was not disconnected");
                        result = 0;
                        server.stop([base] { event_base_loopbreak(base); });
                    });
                });
            });
        };

        for (const char* name : {"alice", "bob", "carol"}) {
            dtcall::ClientConfig c;
            c.command_port = server.command_port();
            c.media_port = server.media_port();
            c.server_key = config.server_keys.public_key;
            c.user = name;
            c.user_key = keys[name].secret_key;
            dtcall::ClientEvents e;
            std::string me = name;
            e.logged_in = [&, me] {
                std::printf("[phone %s] logged in\n", me.c_str());
                if (++logged_in == 3) {
                    if (auto rang = phones["alice"]->call("bob"); !rang) fail(rang.error());
                }
            };
            e.login_failed = [&, me](const std::string& why) { fail(me + " could not log in: " + why); };
            e.incoming = [&](const std::string& caller) {
                if (auto accepted = phones["bob"]->accept(caller); !accepted) fail(accepted.error());
            };
            // Once the call is up alice says five words; when bob has heard
            // them, the operator looks at the call (its figures show them).
            e.started = [&, me](const std::string&) {
                std::printf("[phone %s] call started\n", me.c_str());
                if (me != "alice") return;
                for (int i = 0; i < 5; ++i)
                    if (auto sent = phones["alice"]->send_media("hello"); !sent) fail(sent.error());
            };
            e.media = [&, me](std::uint32_t, const std::string&) {
                if (me == "bob" && ++heard == 5) inspect_and_act();
            };
            e.ended = [&, me](const std::string&) {
                std::printf("[phone %s] call ended\n", me.c_str());
                if (++ended == 2) after_call_ended();
            };
            e.closed = [&, me](const std::string& reason) {
                std::printf("[phone %s] disconnected: %s\n", me.c_str(), reason.c_str());
                if (me == "carol") carol_closed = true;
                else fail(me + " was disconnected");
            };
            phones[me] = std::make_unique<dtcall::Client>(base, c, e);
        }
        for (auto& [name, phone] : phones)
            if (auto connected = phone->connect(); !connected) fail(name + ": " + connected.error());

        event* deadline = evtimer_new(base, [](evutil_socket_t, short, void* b) {
            std::fprintf(stderr, "control: timed out\n");
            event_base_loopbreak(static_cast<event_base*>(b));
        }, base);
        timeval ten_seconds{10, 0};
        evtimer_add(deadline, &ten_seconds);
        if (failure.empty()) event_base_dispatch(base);
        event_free(deadline);
        if (!failure.empty()) {
            std::fprintf(stderr, "control: %s\n", failure.c_str());
            result = 1;
        }
        phones.clear();
    }  // the Server and the HTTP API go before the base they live on
    event_base_free(base);
    std::printf("[control] %s\n", result == 0 ? "done" : "FAILED");
    return result;
}
