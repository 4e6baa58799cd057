// dtcall-keygen NAME [DIR]: a key pair in the key-file format of
// PROTOCOL.md section 1, for a user or for the server.
// dtcall-keygen --cluster-key FILE: the secret the nodes of a cluster share.
// See dtcall-keygen(1).
#include "cluster/cluster_key.hpp"
#include "crypto/crypto.hpp"
#include <dtcall/version.hpp>
#include "wire/wire.hpp"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace {

const char* const usage =
    "usage: dtcall-keygen NAME [DIR]\n"
    "       dtcall-keygen --cluster-key FILE\n"
    "       dtcall-keygen --help | --version\n"
    "\n"
    "Writes DIR/NAME_public.na and DIR/NAME_private.na (mode 0600), DIR being\n"
    "the current directory when omitted. NAME is a user name ([0-9A-Za-z+-])\n"
    "or the server's name. With --cluster-key, writes a new cluster key to\n"
    "FILE (mode 0600) for cluster_key in dtcalld.conf(5).\n"
    "Existing files are never overwritten.\n";

int fail(const std::string& reason) {
    std::fprintf(stderr, "dtcall-keygen: %s\n", reason.c_str());
    return 1;
}

// For the users-file line we print: absolute, as the original expects.
std::string absolute(const std::string& path) {
    char resolved[PATH_MAX];
    if (realpath(path.c_str(), resolved) == nullptr) return path;
    return resolved;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
        std::fputs(usage, stdout);
        return 0;
    }
    if (argc == 2 && (std::string(argv[1]) == "--version" || std::string(argv[1]) == "-V")) {
        std::printf("dtcall-keygen %s\n", dtcall::version());
        return 0;
    }
    if (argc >= 2 && std::string(argv[1]) == "--cluster-key") {
        if (argc != 3) {
            std::fputs(usage, stderr);
            return 2;
        }
        if (!dtcall::crypto_init()) return fail("libsodium cannot start (no entropy source?)");
        std::string path = argv[2];
        auto written = dtcall::cluster::write_cluster_key_file(dtcall::cluster::ClusterKey::generate(), path);
        if (!written) return fail(written.error());
        std::printf("wrote %s (mode 0600): copy it to every node, as cluster_key in dtcalld.conf\n", path.c_str());
        return 0;
    }
    if (argc < 2 || argc > 3 || std::string(argv[1]).rfind("--", 0) == 0) {  // an unknown option
        std::fputs(usage, stderr);
        return 2;
    }
    std::string name = argv[1];
    std::string dir = argc == 3 ? argv[2] : ".";
    if (!dtcall::wire::valid_user_name(name)) {
        return fail("\"" + name + "\" is not a valid name (use only 0-9 A-Z a-z + -)");
    }
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail(dir + ": not a directory");
    if (!dtcall::crypto_init()) return fail("libsodium cannot start (no entropy source?)");

    std::string base = dir.back() == '/' ? dir + name : dir + "/" + name;
    std::string public_path = base + "_public.na";
    std::string private_path = base + "_private.na";
    auto written = dtcall::write_key_files(dtcall::KeyPair::generate(), public_path, private_path);
    if (!written) return fail(written.error());
    std::printf("wrote %s\nwrote %s (mode 0600)\nusers file line: %s > %s\n", public_path.c_str(),
                private_path.c_str(), name.c_str(), absolute(public_path).c_str());
    return 0;
}
