#include "daemon.hpp"

#include "call_report_log.hpp"
#include "cluster_node.hpp"
#include "lifecycle.hpp"
#include "control/control_socket.hpp"
#include "log_file.hpp"
#include "metrics/collect.hpp"
#include "metrics/process_figures.hpp"
#include "metrics/http.hpp"
#include "metrics/observer.hpp"
#include "metrics/render.hpp"
#include "open_files.hpp"
#include "settings.hpp"
#include "signals.hpp"
#include "sqlite_user_directory.hpp"

#include "crypto/crypto.hpp"
#include <dtcall/server.hpp>
#include <dtcall/user_directory.hpp>
#include <dtcall/version.hpp>

#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <unistd.h>

namespace dtcalld {
namespace {

using dtcall::LogLevel;

// A reason to give up, to the log and to stderr. The log echoes to stderr only
// on a terminal or under systemd; otherwise the one-line reason is printed
// here, so that whoever started us always sees it.
int fail(LogFile* log, const std::string& reason) {
    if (log != nullptr) log->write(LogLevel::error, reason);
    if (log == nullptr || log->echo() == Echo::none) std::fprintf(stderr, "dtcalld: %s\n", reason.c_str());
    return 1;
}

// Before any socket exists: raise the soft open-files limit to the hard one
// and say whether max_connections fits. A shortfall is a warning, not fatal:
// a small server never gets near its max_connections.
void check_open_files(const Settings& settings, LogFile& log) {
    auto limit = raise_open_files_limit();
    if (!limit) {
        log.write(LogLevel::warning, limit.error());
        return;
    }
    if (limit->unlimited) {
        log.write(LogLevel::info, "open files limit: unlimited");
        return;
    }
    std::string raised = limit->now != limit->before ? " (raised from " + std::to_string(limit->before) + ")" : "";
    log.write(LogLevel::info, "open files limit: " + std::to_string(limit->now) + raised);
    std::string where = settings.max_connections_line > 0
                            ? settings.conf_path + ":" + std::to_string(settings.max_connections_line) + ": "
                            : settings.conf_path + ": (default) ";
    std::string warning = connection_limit_warning(settings.config.max_connections, limit->now, where);
    if (!warning.empty()) log.write(LogLevel::warning, warning);
}

// `metrics = ADDRESS:PORT`: evhttp on the server's loop. A scrape reads
// server.stats() and the observer's counts, nothing per user or call.
// A cluster node adds the dtcall_cluster_* families (`cluster` outlives the
// endpoint: declared before the server).
dtcall::Result<std::unique_ptr<metrics::MetricsHttp>> start_metrics(const metrics::Endpoint& endpoint,
                                                                     const dtcall::Server& server,
                                                                     const metrics::MetricsObserver& observer,
                                                                     const ClusterNode* cluster, LogFile& log) {
    auto http = std::make_unique<metrics::MetricsHttp>(server.base(), [&server, &observer, cluster] {
        return metrics::render_metrics(cluster ? metrics::collect(server, observer, cluster->stats())
                                               : metrics::collect(server, observer));
    });
    if (auto bound = http->listen(endpoint); !bound) return dtcall::Error{bound.failure()};
    log.write(LogLevel::info, "metrics on http://" + endpoint.with_port(http->port()) + "/metrics");
    return http;
}

// server.start()'s errors begin with what failed: "command: TCP ... port
// N: cannot bind: ...", "media: UDP ...", "node_address 10.0.0.11:1962:
// cannot bind UDP: ...", "listen: ...". Name the conf line that set it (or
// "(default)"), as the parser does; anything else is passed on as it is.
std::string start_error(const Settings& settings, const std::string& what) {
    struct Source { const char* prefix; const char* key; int line; };
    const Source sources[] = {{"command: ", "command", settings.command_line},
                              {"media: ", "media", settings.media_line},
                              {"listen: ", "listen", settings.listen_line},
                              {"node_address: ", "node_address", settings.node_address_line},
                              {"node_address ", "node_address", settings.node_address_line}};
    for (const Source& source : sources) {
        if (what.rfind(source.prefix, 0) != 0) continue;
        std::string rest = what;
        // "node_address ADDRESS: ..." reads "node_address: ADDRESS: ..." once the key leads.
        if (std::string_view(source.prefix) == "node_address ") rest.erase(0, std::strlen(source.prefix));
        return conf_error(settings, source.line, source.key, rest);
    }
    return what;
}

}  // namespace

int run_daemon(const Options& options) {
    auto started_at = std::chrono::system_clock::now();
    metrics::process_start_time();  // process_start_time_seconds, worked out once
    // A client vanishing mid-write must cost that client, not the process.
    std::signal(SIGPIPE, SIG_IGN);

    LogFile log(options.log_dir, echo_from_environment());
    if (auto opened = log.open(); !opened) return fail(nullptr, opened.error());
    if (!dtcall::crypto_init()) return fail(&log, "libsodium cannot start (no entropy source?)");

    auto settings = load_settings(options.settings_dir);
    if (!settings) return fail(&log, settings.error());
    log.set_min_level(settings->log_level);
    log.write(LogLevel::info, std::string("dtcalld ") + dtcall::version() + " starting (pid " +
                                  std::to_string(::getpid()) + "), settings from " + settings->conf_path);
    for (const std::string& warning : settings->warnings) log.write(LogLevel::warning, warning);
    check_open_files(*settings, log);
    std::optional<dtcall::UsersFile> users_file;
    std::unique_ptr<SqliteUserDirectory> users_db;
    dtcall::UserDirectory* users = nullptr;
    if (!settings->users_db_path.empty()) {
        auto opened = SqliteUserDirectory::open(settings->users_db_path,
                                                [&log](LogLevel level, const std::string& line) { log.write(level, line); });
        // Unreadable, damaged, or not ours: refuse to start rather than let nobody in.
        if (!opened) {
            std::string why = opened.error();
            if (opened.code() == dtcall::ErrorCode::not_found) {
                why += "; create it with dtcall-users --db " + settings->users_db_path + " add|import";
            }
            return fail(&log, conf_error(*settings, settings->users_db_line, "users_db", why));
        }
        users_db = std::move(*opened);
        log.write(LogLevel::info, users_db->path() + ": " + std::to_string(users_db->size()) + " users");
        users = users_db.get();
    } else {
        users_file.emplace(settings->users_path);
        std::vector<std::string> warnings;
        auto loaded = users_file->reload(warnings);
        // A bad user line costs that user only; an unreadable users file is fatal.
        for (const std::string& warning : warnings) log.write(LogLevel::warning, warning);
        if (!loaded) return fail(&log, loaded.error());
        log.write(LogLevel::info, users_file->path() + ": " + std::to_string(users_file->size()) + " users");
        users = &*users_file;
    }

    metrics::MetricsObserver metrics_observer;  // outlives the server
    std::unique_ptr<ClusterNode> cluster;       // outlives the server: it is the server's link (cluster_node.hpp)
    dtcall::Server server(std::move(settings->config), *users);
    server.set_log([&log](LogLevel level, const std::string& line) { log.write(level, line); });
    server.add_observer(&metrics_observer);  // before start(): its counts cover the whole run
    // The directory answers through the server's event_base: it leaves it
    // before the server (and the base) go, however this function returns.
    struct Detach {
        SqliteUserDirectory* directory;
        ~Detach() {
            if (directory) directory->stop();
        }
    } detach{users_db.get()};
    if (users_db) {
        if (auto started = users_db->start(server.base()); !started) return fail(&log, started.error());
    }
    // The Redis link runs on the server's event_base, which ~Server frees:
    // it is closed before the server goes, however this function returns.
    struct CloseCluster {
        std::unique_ptr<ClusterNode>& node;
        ~CloseCluster() {
            if (node) node->close();
        }
    } close_cluster{cluster};
    if (settings->cluster) {
        auto made = ClusterNode::make(*settings->cluster, server,
                                      [&log](LogLevel level, const std::string& line) { log.write(level, line); });
        if (!made) return fail(&log, conf_error(*settings, settings->cluster->redis_line, "cluster_redis", made.error()));
        cluster = std::move(*made);
        settings->cluster.reset();  // the link has its copy of the key; this one is wiped now, not at exit
    }
    CallReportLog call_reports(log);
    server.add_observer(&call_reports);

    // systemd (NOTIFY_SOCKET) and /healthz hear of ready, reload and stop.
    Lifecycle lifecycle(server, log);
    SignalHandlers signals(server, users_file ? &*users_file : nullptr, log, lifecycle);
    if (auto installed = signals.install(); !installed) return fail(&log, installed.error());
    // Declared after the server: closed (and its file removed) before the server goes.
    control::ControlSocket control(server, users_file ? &*users_file : nullptr, log, lifecycle, started_at);
    if (!settings->control_path.empty()) {
        if (auto opened = control.open(settings->control_path, settings->control_group); !opened) {
            bool group = opened.error().rfind("control_group: ", 0) == 0;
            return fail(&log, group ? conf_error(*settings, settings->control_group_line, "control_group", opened.error())
                                    : conf_error(*settings, settings->control_line, "control", opened.error()));
        }
        log.write(LogLevel::info, "control socket " + settings->control_path +
                                      (settings->control_group.empty() ? " (mode 0600)"
                                                                       : " (mode 0660, group " + settings->control_group + ")"));
    }
    if (auto started = server.start(); !started) return fail(&log, start_error(*settings, started.error()));
    if (cluster) cluster->start();  // Redis away is no reason to stop: logged once, retried
    std::unique_ptr<metrics::MetricsHttp> metrics_http;  // freed before the server
    if (settings->metrics) {
        auto served = start_metrics(*settings->metrics, server, metrics_observer, cluster.get(), log);
        if (!served) return fail(&log, conf_error(*settings, settings->metrics_line, "metrics", served.error()));
        metrics_http = std::move(*served);
        lifecycle.set_metrics(metrics_http.get());
    }
    log.write(LogLevel::info, "ready: command port " + std::to_string(server.command_port()) +
                                  " (TCP), media port " + std::to_string(server.media_port()) + " (UDP)");
    lifecycle.ready();

    server.run();
    if (cluster) cluster->close();
    log.write(LogLevel::info, "stopped");
    return 0;
}

}  // namespace dtcalld
