#!/usr/bin/env bash
# Debian packages the test suite needs: SLURM (slurmctld, slurmd, client) and munge for the
# one-node test cluster, Chromium for the leaderboard page, cmake and g++ to build llama-cpp-python,
# git (the test hub's repositories), iproute2 and util-linux (`unshare --net` for the offline run). Idempotent; needs root (CI runs as root).
set -euo pipefail
PACKAGES="slurmctld slurmd slurm-client munge chromium cmake g++ git iproute2 util-linux"
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-system: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-system: installed$missing"
