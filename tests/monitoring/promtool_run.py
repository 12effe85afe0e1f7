#!/usr/bin/env python3
"""Runs promtool with the given arguments (ctest monitoring.rules_check,
monitoring.rules_test, monitoring.config_check), or exits 77 (skipped) saying
why when promtool is not installed: a missing tool must not look like a pass.

Usage: promtool_run.py ARG... (e.g. `test rules monitoring/alerts_test.yml`).
PROMTOOL in the environment names the binary; default: promtool on PATH.
"""
import os
import shutil
import subprocess
import sys

SKIP = 77


def main():
    promtool = os.environ.get("PROMTOOL") or shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(promtool, os.X_OK):
        print("SKIP: promtool is not installed (%s; Debian package prometheus, in run's APT_PACKAGES)" % promtool)
        return SKIP
    rc = subprocess.run([promtool] + sys.argv[1:]).returncode
    # promtool's own exit codes are 0, 1 and 3; never let one read as a skip.
    return 1 if rc == SKIP else rc


if __name__ == "__main__":
    sys.exit(main())
