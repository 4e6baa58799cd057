#!/usr/bin/env python3
"""Sum test cases over a meson test log: doctest executables report their own
case counts; any other test counts as one case. Prints 'N passed, N failed'."""
import json
import re
import sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")

passed = failed = 0
try:
    with open(sys.argv[1]) as log:
        for line in log:
            entry = json.loads(line)
            ok = entry.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
            match = SUMMARY.search(entry.get("stdout", "") or "")
            if match:
                passed += int(match.group(2))
                failed += int(match.group(3))
                if not ok and int(match.group(3)) == 0:
                    failed += 1  # crashed or timed out after its summary
            elif ok:
                passed += 1
            else:
                failed += 1
except OSError as error:
    print(f"no test log: {error}")
    failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
