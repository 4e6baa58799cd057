#include "plot.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sstream>

namespace dtbench {
namespace {

// gnuplot reads its script from a file we name; quotes in paths are escaped for it.
std::string quoted(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
}

}  // namespace

std::string find_gnuplot() {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        if (dir.empty()) continue;
        std::string candidate = dir + "/gnuplot";
        if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

std::string write_plot(const Report& report, const std::string& png_path) {
    std::string gnuplot = find_gnuplot();
    if (gnuplot.empty()) return "gnuplot is not installed (not found on PATH); no plot written";
    bool any = false;
    for (auto& series : report.series) any = any || series.second.count() > 0;
    if (!any) return "no latency samples to plot";

    char dir_template[] = "/tmp/dtcall-bench-plot.XXXXXX";
    if (!mkdtemp(dir_template)) return "cannot make a temporary directory";
    std::string dir = dir_template;
    std::vector<std::string> files;
    std::ostringstream script;
    script << "set terminal pngcairo size 1000,600\n"
           << "set output " << quoted(png_path) << "\n"
           << "set title " << quoted(report.title.substr(0, 120)) << " noenhanced\n"
           << "set logscale x\nset grid\nset key bottom right noenhanced\n"
           << "set xlabel " << quoted(report.series_label + " (microseconds)") << "\n"
           << "set ylabel 'fraction of samples at or below'\n"
           << "plot ";
    for (std::size_t i = 0; i < report.series.size(); ++i) {
        std::string file = dir + "/series" + std::to_string(i) + ".dat";
        std::ofstream data(file);
        for (auto& [ns, fraction] : report.series[i].second.cumulative())
            data << double(ns) / 1e3 << ' ' << fraction << '\n';
        files.push_back(file);
        script << (i ? ", " : "") << quoted(file) << " using 1:2 with steps title " << quoted(report.series[i].first);
    }
    script << "\n";
    std::string script_path = dir + "/plot.gp";
    std::ofstream(script_path) << script.str();

    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, STDOUT_FILENO);
        execl(gnuplot.c_str(), "gnuplot", script_path.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    if (pid > 0) waitpid(pid, &status, 0);
    for (auto& f : files) unlink(f.c_str());
    unlink(script_path.c_str());
    rmdir(dir.c_str());
    if (pid < 0) return "cannot start gnuplot";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "gnuplot failed (exit status " + std::to_string(WEXITSTATUS(status)) + ")";
    return {};
}

}  // namespace dtbench
