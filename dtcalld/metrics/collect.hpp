// One MetricsSnapshot from a running Server: its stats(), the observer's
// counts, this process's figures and the version; on a cluster node also
// the RedisCluster's stats(), which add the dtcall_cluster_* families:
//   metrics::collect(server, observer, cluster.stats())
// Nothing here walks the users or calls.
#pragma once

#include "observer.hpp"
#include "snapshot.hpp"

#include <dtcall/server.hpp>

namespace dtcalld::metrics {

MetricsSnapshot collect(const dtcall::Server& server, const MetricsObserver& observer);
MetricsSnapshot collect(const dtcall::Server& server, const MetricsObserver& observer,
                        const dtcall::cluster::ClusterStats& cluster);

}  // namespace dtcalld::metrics
