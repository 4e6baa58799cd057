#include "collect.hpp"

#include "process_figures.hpp"

#include <dtcall/version.hpp>

namespace dtcalld::metrics {

MetricsSnapshot collect(const dtcall::Server& server, const MetricsObserver& observer) {
    MetricsSnapshot snapshot;
    snapshot.server = server.stats();
    snapshot.observed = observer.counts();
    snapshot.process = read_process_figures();
    snapshot.version = dtcall::version();
    return snapshot;
}

MetricsSnapshot collect(const dtcall::Server& server, const MetricsObserver& observer,
                        const dtcall::cluster::ClusterStats& cluster) {
    MetricsSnapshot snapshot = collect(server, observer);
    snapshot.cluster = cluster;
    return snapshot;
}

}  // namespace dtcalld::metrics
