#!/bin/sh
# The Prometheus examples of dtcalld/dist/prometheus, checked by Prometheus
# itself: the scrape config and the alert rules parse, and the alerts fire on
# the made-up series of dtcall.rules.test.yml. Exit 77 (skipped) when
# promtool is not on PATH (Debian: apt-get install prometheus).
set -u
command -v promtool >/dev/null 2>&1 || { echo "SKIP: promtool not on PATH (Debian: apt-get install prometheus)"; exit 77; }
cd "$PROMETHEUS_DIR" || exit 1
status=0
promtool check config prometheus.yml || status=1
promtool check rules dtcall.rules.yml || status=1
promtool test rules dtcall.rules.test.yml || status=1
exit $status
