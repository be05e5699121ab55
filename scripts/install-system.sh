#!/usr/bin/env bash
# System packages the test suite needs (Debian). Nothing yet beyond Python itself; later stages
# add theirs here (chromium for the leaderboard page, slurm for the cluster tests).
set -euo pipefail
exit 0
