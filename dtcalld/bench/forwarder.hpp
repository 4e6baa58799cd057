// The baseline: the least a UDP relay can do on this machine. One socket,
// recvmmsg/sendmmsg in batches of 32 (as dtcalld), a fixed table from source
// address to peer address, no crypto, no call state, no libevent. Parties
// register with a plain "REG PAIR SIDE" datagram and get "ACK PAIR SIDE";
// once both sides of a pair registered, datagrams from one go to the other.
// Whatever dtcalld achieves is read against this.
#pragma once

#include <cstddef>
#include <string>

namespace dtbench {

// The ChildProcess body: serves on `address` (an IPv4 literal) port 0 until
// the request pipe closes; "ready PORT" once bound; answers "stats" in the
// format of parse_server_counters().
int run_forwarder_child(const std::string& address, int requests, int answers);

// The registration datagram and its ack.
std::string forwarder_registration(std::size_t pair, int side);
std::string forwarder_ack(std::size_t pair, int side);

}  // namespace dtbench
