// The ceiling libsodium puts on logins: the X25519 work one login costs the
// server (open the sealed hello, box the TCP key, box the challenge), timed on
// this core. dtcalld cannot log users in faster than this per core.
#pragma once

#include <chrono>

namespace dtbench {

struct SodiumBound {
    double microseconds_per_login = 0;
    double logins_per_second = 0;  // 1e6 / microseconds_per_login
    // The same with the user's crypto_box key precomputed (2 X25519), as
    // dtcalld does for a user whose key it has cached.
    double microseconds_per_repeat_login = 0;
    int iterations = 0;
    bool ok = true;  // every box opened/sealed (false would mean a libsodium fault)
};

// Runs for about `budget`: five rounds of each kind (at least 10 iterations
// each), reporting the fastest round of each.
SodiumBound measure_login_crypto(std::chrono::milliseconds budget);

}  // namespace dtbench
