// --plot FILE.png: the report's latency distributions as a cumulative plot,
// drawn by gnuplot when it is installed.
#pragma once

#include "report.hpp"

#include <string>

namespace dtbench {

// Empty on success; otherwise why no plot was written (gnuplot missing, no
// data, gnuplot failed). Never fails the run.
std::string write_plot(const Report& report, const std::string& png_path);

// The gnuplot executable on PATH, or empty.
std::string find_gnuplot();

}  // namespace dtbench
