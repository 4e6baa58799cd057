// Makes a Server one node of a cluster (internal, not yet public: the tests
// and, in a later part, dtcalld use it). Call before start(); `link` must
// outlive the Server. Without it a Server is a single node, unchanged.
#pragma once

#include "cluster/cluster_link.hpp"

#include <dtcall/server.hpp>

namespace dtcall {

void attach_cluster(Server& server, ClusterLink& link);

}  // namespace dtcall
