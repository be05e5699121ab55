#!/usr/bin/env bash
# Stops what scripts/slurm-start.sh started, by the pids it recorded; cancels remaining jobs first.
set -uo pipefail
BASE=${OCCI_SLURM_BASE:-/tmp/occi-slurm}
RUN=$BASE/run
if scontrol ping 2>/dev/null | grep -q "is UP"; then
    jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    [ -n "${jobs// }" ] && scancel $jobs && sleep 2
fi
for daemon in slurmd slurmctld munged; do
    file=$RUN/$daemon.pid
    [ -s "$file" ] || continue
    pid=$(tr -dc '0-9' < "$file")
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$daemon" ]; then
        kill -TERM "$pid"
        for _ in $(seq 100); do [ -e /proc/"$pid" ] && [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ] || break; sleep 0.1; done
        echo "[slurm-stop] stopped $daemon ($pid)"
    fi
    rm -f "$file"
done
exit 0
