#!/usr/bin/env bash
# Starts a one-node SLURM cluster on this machine for the tests (Debian's slurmctld, slurmd, munge).
# Idempotent: installs what is missing, (re)writes /etc/slurm/slurm.conf only when it changes,
# starts the daemons that are not running and records their pids under $OCCI_SLURM_BASE/run for
# scripts/slurm-stop.sh. Needs root. No systemd.
set -euo pipefail
BASE=${OCCI_SLURM_BASE:-/tmp/occi-slurm}
RUN=$BASE/run
CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)
say() { echo "[slurm-start] $*"; }
[ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }

alive() {  # alive PIDFILE NAME: the recorded pid runs and is NAME
    local pid
    [ -s "$1" ] || return 1
    pid=$(tr -dc '0-9' < "$1")
    [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] && [ "$(awk '{print $3}' /proc/"$pid"/stat)" != Z ]
}

missing=""
for package in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    say "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

mkdir -p /etc/munge "$RUN" /run/munge "$BASE/state" "$BASE/spool" "$BASE/log"
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key; chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/munged.pid "$RUN/munged.pid"
    say "munged started"
fi

chown slurm:slurm "$BASE/state" "$BASE/log" "$RUN"
hardware=$(slurmd -C | head -n 1)
field() { echo "$hardware" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
cpus=$(field CPUs); memory=$(( $(field RealMemory) * 9 / 10 ))
new=$(mktemp)
cat > "$new" <<CONF
# written by occi's scripts/slurm-start.sh: a one-node test cluster
ClusterName=occi
SlurmctldHost=$NODE
SlurmUser=slurm
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( memory / cpus ))
SchedulerParameters=batch_sched_delay=0,kill_invalid_depend
# a requeued job waits for its launch credential to expire (120 s by default) before it may start
# again; on this one-node cluster 30 s is plenty, and the requeue test then waits 30 s, not 120
AuthInfo=cred_expire=30
MinJobAge=3600
JobRequeue=1
ReturnToService=2
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.log
NodeName=$NODE CPUs=$cpus Boards=$(field Boards) SocketsPerBoard=$(field SocketsPerBoard) CoresPerSocket=$(field CoresPerSocket) ThreadsPerCore=$(field ThreadsPerCore) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
if ! cmp -s "$new" "$CONF"; then
    install -D -m 0644 "$new" "$CONF"
    say "wrote $CONF"
    for daemon in slurmd slurmctld; do   # a running daemon must not keep the old config
        if alive "$RUN/$daemon.pid" "$daemon"; then kill -TERM "$(cat "$RUN/$daemon.pid")"; sleep 1; fi
    done
fi
rm -f "$new"

alive "$RUN/slurmctld.pid" slurmctld || { rm -f "$RUN/slurmctld.pid"; slurmctld; say "slurmctld started"; }
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q "is UP" && break; sleep 0.1; done
alive "$RUN/slurmd.pid" slurmd || { rm -f "$RUN/slurmd.pid"; slurmd; say "slurmd started"; }
for _ in $(seq 300); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
        idle|mixed|allocated) say "node $NODE is $state"; exit 0 ;;
        down*|drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
done
say "node $NODE did not become idle; see $BASE/log/"; exit 1
