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
    if (::stat(dir.c_str(), &st) != 0) return dtcall::Error{dir + ": " + std::strerror(errno)};
    if (!S_ISDIR(st.st_mode)) return dtcall::Error{dir + ": not a directory"};
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
// than warn into a log nobody reads. Execute bits are odd but harmless. A file
// that cannot be stat()ed is left to the reader to report ("cannot open").
dtcall::Status check_private_key_mode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return dtcall::Done{};
    const mode_t readable = S_IRGRP | S_IROTH, writable = S_IWGRP | S_IWOTH;
    if ((st.st_mode & (readable | writable)) == 0) return dtcall::Done{};
    const char* what = (st.st_mode & readable) == 0   ? "writable"
                       : (st.st_mode & writable) == 0 ? "readable"
                                                      : "readable and writable";
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return dtcall::Error{path + ": " + what + " by group or others (mode " + mode + "); run: chmod 600 " + path};
}

}  // namespace

std::string resolve_path(const std::string& dir, const std::string& path) {
    if (!path.empty() && path.front() == '/') return path;
    if (dir.empty()) return path;
    if (dir.back() == '/') return dir + path;
    return dir + "/" + path;
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
    if (auto safe = check_private_key_mode(private_path); !safe) return dtcall::Error{at_private + safe.error()};
    auto secret = dtcall::read_private_key_file(private_path);
    if (!secret) return dtcall::Error{at_private + secret.error()};
    auto pub = dtcall::read_public_key_file(public_path);
    if (!pub) return dtcall::Error{at_public + pub.error()};
    dtcall::KeyPair pair = dtcall::KeyPair::from_secret(*secret);
    if (pair.public_key != *pub) {
        return dtcall::Error{at_public + public_path + " is not the public half of " + private_path};
    }
    out.config.server_keys = pair;
    return out;
}

}  // namespace dtcalld
