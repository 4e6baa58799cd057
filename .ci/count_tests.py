#!/usr/bin/env python3
"""Sum test cases over meson test logs: doctest executables report their own
case counts; any other test counts as one case. --extra FILE adds lines of
the form 'fuzz NAME: ok' / 'fuzz NAME: FAILED' and 'soak: ok' / 'soak: FAILED'. Prints 'N passed, N failed'."""
import json
import re
import sys

SUMMARY = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")

args = sys.argv[1:]
extra = []
if "--extra" in args:
    i = args.index("--extra")
    extra = args[i + 1:i + 2]
    args = args[:i] + args[i + 2:]

passed = failed = 0
for path in args:
    try:
        with open(path) as log:
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
for path in extra:
    with open(path) as lines:
        for line in lines:
            if line.startswith(("fuzz ", "soak:")):
                if line.rstrip().endswith("FAILED"):
                    failed += 1
                else:
                    passed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
