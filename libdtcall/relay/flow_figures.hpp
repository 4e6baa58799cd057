// What the relay knows of one user's media in a call: the direction it sends
// (packets, bytes, longest gap) and the address it registered from.
#pragma once

#include <dtcall/events.hpp>

namespace dtcall {

struct FlowFigures {
    MediaFlow flow;
    MediaEndpoint endpoint;
};

}  // namespace dtcall
