#include "settings.hpp"

#include "conf_file.hpp"

#include "crypto/crypto.hpp"
#include "io/read_bounded.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dtcalld {
namespace {

// A conf file is a few hundred bytes; a limit keeps a mistaken path
// (/dev/zero, a log file) from eating memory.
constexpr std::size_t max_conf_size = 1 << 20;

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

dtcall::Result<std::string> choose_conf_file(const std::string& dir, std::vector<std::string>& warnings) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return dtcall::Error{"settings directory " + dir + ": " + std::strerror(errno)};
    if (!S_ISDIR(st.st_mode)) return dtcall::Error{"settings directory " + dir + ": not a directory"};
    std::string ours = resolve_path(dir, "dtcalld.conf");
    std::string original = resolve_path(dir, "dtoperator.conf");
    if (exists(ours)) {
        if (exists(original)) warnings.push_back(original + ": ignored, " + ours + " is used");
        return ours;
    }
    if (exists(original)) return original;
    return dtcall::Error{dir + ": has neither dtcalld.conf nor dtoperator.conf"};
}

// Anyone who can read the private key can impersonate the server, and anyone
// who can write it can swap in their own: refuse to run on such a key rather
// than warn into a log nobody reads (cluster::check_owner_only; the cluster
// key gets the same check). Execute bits are odd but harmless.

// node_name's default. A host name that is not a valid node name (too long,
// odd characters) is an error asking for node_name rather than a mangled name.
dtcall::Result<std::string> host_node_name(const std::string& where) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) {
        return dtcall::Error{where + "the host name cannot be read (" + std::strerror(errno) + "); set node_name"};
    }
    if (!dtcall::cluster::valid_node_name(name)) {
        return dtcall::Error{where + "the host name \"" + std::string(name) +
                             "\" is not a node name (1-64 of 0-9 A-Z a-z . _ -); set node_name"};
    }
    return std::string(name);
}

dtcall::Result<ClusterSettings> load_cluster(const std::string& dir, const std::string& conf_path,
                                             const ConfValues::Cluster& conf) {
    ClusterSettings out;
    out.redis = *conf.redis;
    out.node_address = *conf.node_address;
    out.ttl = conf.ttl;
    out.redis_line = conf.redis_line;
    if (conf.node_name_line > 0) {
        out.node_name = conf.node_name;
    } else {
        auto name = host_node_name(conf_path + ": node_name: not set, and ");
        if (!name) return dtcall::Error{name.error()};
        out.node_name = *name;
    }
    out.key_path = resolve_path(dir, conf.key_path);
    auto key = dtcall::cluster::read_cluster_key_file(out.key_path);
    if (!key) {
        return dtcall::Error{conf_path + ":" + std::to_string(conf.key_line) + ": cluster_key: " + key.error()};
    }
    out.key = *key;
    return out;
}

}  // namespace

std::string resolve_path(const std::string& dir, const std::string& path) {
    if (!path.empty() && path.front() == '/') return path;
    if (dir.empty()) return path;
    if (dir.back() == '/') return dir + path;
    return dir + "/" + path;
}

std::string conf_error(const Settings& settings, int line, const std::string& key, std::string what) {
    const std::string prefix = key + ": ";
    if (what.rfind(prefix, 0) == 0) what.erase(0, prefix.size());
    if (line <= 0) return settings.conf_path + ": (default) " + prefix + what;
    return settings.conf_path + ":" + std::to_string(line) + ": " + prefix + what;
}

dtcall::Result<Settings> load_settings(const std::string& dir) {
    Settings out;
    auto conf_path = choose_conf_file(dir, out.warnings);
    if (!conf_path) return dtcall::Error{conf_path.error()};
    out.conf_path = *conf_path;
    out.users_path = resolve_path(dir, "users");

    auto text = dtcall::read_bounded(out.conf_path, max_conf_size, "conf file");
    if (!text) return dtcall::Error{text.error()};
    auto conf = parse_conf(*text, out.conf_path);
    if (!conf) return dtcall::Error{conf.error()};
    out.config = conf->config;
    out.max_connections_line = conf->max_connections_line;
    out.log_level = conf->log_level;
    out.metrics = conf->metrics;
    out.metrics_line = conf->metrics_line;
    out.users_db_line = conf->users_db_line;
    out.control_line = conf->control_line;
    out.control_group_line = conf->control_group_line;
    out.command_line = conf->command_line;
    out.media_line = conf->media_line;
    out.listen_line = conf->listen_line;
    out.node_address_line = conf->cluster.node_address_line;
    if (!conf->users_path.empty()) out.users_path = resolve_path(dir, conf->users_path);
    if (!conf->users_db_path.empty()) {
        out.users_db_path = resolve_path(dir, conf->users_db_path);
        out.users_path.clear();
    }
    if (!conf->control_path.empty()) out.control_path = resolve_path(dir, conf->control_path);
    out.control_group = conf->control_group;
    out.warnings.insert(out.warnings.end(), conf->warnings.begin(), conf->warnings.end());

    std::string at_private = out.conf_path + ":" + std::to_string(conf->private_key_line) + ": private_sodium: ";
    std::string at_public = out.conf_path + ":" + std::to_string(conf->public_key_line) + ": public_sodium: ";
    std::string private_path = resolve_path(dir, conf->private_key_path);
    std::string public_path = resolve_path(dir, conf->public_key_path);

    // Mode first: an exposed key is refused before its secret is even read.
    if (auto safe = dtcall::cluster::check_owner_only(private_path); !safe) return dtcall::Error{at_private + safe.error()};
    auto secret = dtcall::read_private_key_file(private_path);
    if (!secret) return dtcall::Error{at_private + secret.error()};
    auto pub = dtcall::read_public_key_file(public_path);
    if (!pub) return dtcall::Error{at_public + pub.error()};
    dtcall::KeyPair pair = dtcall::KeyPair::from_secret(*secret);
    if (pair.public_key != *pub) {
        return dtcall::Error{at_public + public_path + " is not the public half of " + private_path};
    }
    out.config.server_keys = pair;

    if (conf->cluster.any()) {
        auto cluster = load_cluster(dir, out.conf_path, conf->cluster);
        if (!cluster) return dtcall::Error{cluster.error()};
        out.cluster = std::move(*cluster);
    }
    return out;
}

}  // namespace dtcalld
