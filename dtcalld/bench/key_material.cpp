#include "key_material.hpp"

#include "wire/wire.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <dirent.h>

namespace dtbench {

SharedKey shared_key(const dtcall::SecretKey& mine, const dtcall::PublicKey& theirs) {
    SharedKey key{};
    // A low-order public key gives no key; the box that needs it then fails
    // to open and the run counts the failure.
    if (crypto_box_beforenm(key.data(), theirs.bytes.data(), mine.data()) != 0) key.fill(0);
    return key;
}

std::vector<BenchUser> make_users(std::size_t count, const dtcall::PublicKey& server, const std::string& prefix) {
    std::vector<BenchUser> users(count);
    for (std::size_t i = 0; i < count; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%06zu", i + 1);
        users[i].name = prefix + name;
        users[i].keys = dtcall::KeyPair::generate();
        users[i].with_server = shared_key(users[i].keys.secret_key, server);
    }
    return users;
}

dtcall::Result<std::vector<BenchUser>> load_users(const std::string& dir, const dtcall::PublicKey& server) {
    const std::string suffix = "_private.na";
    DIR* d = opendir(dir.c_str());
    if (!d) return dtcall::Error{"--users " + dir + ": cannot open the directory"};
    std::vector<std::string> names;
    while (dirent* entry = readdir(d)) {
        std::string file = entry->d_name;
        if (file.size() > suffix.size() && file.compare(file.size() - suffix.size(), suffix.size(), suffix) == 0)
            names.push_back(file.substr(0, file.size() - suffix.size()));
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    std::vector<BenchUser> users;
    for (const std::string& name : names) {
        std::string path = dir + "/" + name + suffix;
        if (!dtcall::wire::valid_user_name(name))
            return dtcall::Error{path + ": \"" + name + "\" is not a user name the protocol can carry"};
        auto secret = dtcall::read_private_key_file(path);
        if (!secret) return dtcall::Error{secret.error()};
        BenchUser user;
        user.name = name;
        user.keys = dtcall::KeyPair::from_secret(*secret);
        user.with_server = shared_key(user.keys.secret_key, server);
        users.push_back(std::move(user));
    }
    if (users.empty()) return dtcall::Error{"--users " + dir + ": no NAME_private.na files"};
    return users;
}

HelloPool::HelloPool(const dtcall::PublicKey& server, std::size_t size) : hellos_(std::max<std::size_t>(size, 1)) {
    for (Hello& hello : hellos_) {
        dtcall::KeyPair ephemeral = dtcall::KeyPair::generate();
        crypto_box_seal(hello.sealed.data(), ephemeral.public_key.bytes.data(), dtcall::key_size,
                        server.bytes.data());
        hello.reply_key = shared_key(ephemeral.secret_key, server);
    }
}

const Hello& HelloPool::next() {
    const Hello& hello = hellos_[next_];
    next_ = (next_ + 1) % hellos_.size();
    return hello;
}

}  // namespace dtbench
