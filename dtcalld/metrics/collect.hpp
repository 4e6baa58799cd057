// One MetricsSnapshot from a running Server: its stats(), the observer's
// counts, this process's figures and the version. Nothing here walks the
// users or calls.
#pragma once

#include "observer.hpp"
#include "snapshot.hpp"

#include <dtcall/server.hpp>

namespace dtcalld::metrics {

MetricsSnapshot collect(const dtcall::Server& server, const MetricsObserver& observer);

}  // namespace dtcalld::metrics
