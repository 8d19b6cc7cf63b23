#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on localhost for CI, without systemd or cgroups.
#
# Usage: sudo scripts/slurm/up.sh [DIR]     (DIR defaults to $NEUROSBI_SLURM_DIR or /tmp/neurosbi-slurm)
#
# Everything the cluster writes (config, munge key and socket, state, spool, logs, pid files)
# lives under DIR, so it never touches a system-wide SLURM or munge installation. On success the
# last lines on stdout are shell `export` statements; `eval "$(scripts/slurm/up.sh)"` applies them.
# Progress and errors go to stderr. Ports can be moved with NEUROSBI_SLURMCTLD_PORT (default 6817)
# and NEUROSBI_SLURMD_PORT (default 6818); the wait for an idle node is bounded by
# NEUROSBI_SLURM_TIMEOUT seconds (default 60).
set -euo pipefail

DIR=${1:-${NEUROSBI_SLURM_DIR:-/tmp/neurosbi-slurm}}
CTLD_PORT=${NEUROSBI_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${NEUROSBI_SLURMD_PORT:-6818}
TIMEOUT=${NEUROSBI_SLURM_TIMEOUT:-60}

log() { echo "slurm/up: $*" >&2; }
die() { echo "slurm/up: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, starts munged as the munge user and slurmd as root)"
case "$DIR" in
    *[[:space:]]*) die "DIR must not contain whitespace (slurm.conf cannot quote it), got '$DIR'" ;;
    /?*) ;;
    *) die "DIR must be an absolute path below /, got '$DIR'" ;;
esac

# ---------------------------------------------------------------------------------------------
# Packages
# ---------------------------------------------------------------------------------------------
need_install=0
for bin in munged slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" -eq 1 ]; then
    log "installing slurm-wlm and munge from Debian (apt-get)"
    # The packages' maintainer scripts would otherwise try to start the system-wide munge,
    # slurmctld and slurmd services; this cluster runs private daemons instead. policy-rc.d
    # returning 101 is Debian's documented way to say "do not start services".
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    install_rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2 &&
            apt-get install -y -q --no-install-recommends slurm-wlm munge >&2
    } || install_rc=$?
    if [ "$created_policy" -eq 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    [ "$install_rc" -eq 0 ] || die "apt-get failed (exit $install_rc)"
    for bin in munged slurmctld slurmd sinfo sbatch scontrol; do
        command -v "$bin" >/dev/null 2>&1 || die "'$bin' still missing after installing slurm-wlm and munge"
    done
fi
getent passwd munge >/dev/null || die "user 'munge' does not exist (the munge package creates it)"

CONF="$DIR/etc/slurm.conf"
MUNGE_DIR="$DIR/munge"
MUNGE_SOCKET="$MUNGE_DIR/munge.socket"

print_env() {
    # Kept on stdout so that callers can eval it.
    echo "export SLURM_CONF=$CONF"
    echo "export NEUROSBI_SLURM_DIR=$DIR"
}

pid_alive() { # pidfile
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Already up? (idempotence: a second call reports the running cluster instead of restarting it)
# ---------------------------------------------------------------------------------------------
if pid_alive "$DIR/run/munged.pid" && pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" &&
    SLURM_CONF="$CONF" timeout 10 sinfo -h -o '%T' 2>/dev/null | grep -Eqx 'idle|mixed|allocated|completing'; then
    log "cluster in $DIR is already up"
    print_env
    exit 0
fi
# Partially up (e.g. a previous run crashed): start from scratch.
if [ -d "$DIR/run" ]; then
    log "stale or partial cluster in $DIR: stopping it first"
    "$(dirname "$0")/down.sh" "$DIR" >&2 || true
fi

# down.sh deletes DIR, so never adopt a directory that holds something else.
if [ -d "$DIR" ] && [ ! -f "$DIR/.neurosbi-slurm" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR exists, is not empty and was not created by up.sh; give an empty or new directory"
fi

# Another SLURM (or anything else) on these ports would answer our clients in place of our
# controller; say so instead of waiting for a node that never registers.
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is already in use (another slurmctld/slurmd?); set NEUROSBI_SLURMCTLD_PORT / NEUROSBI_SLURMD_PORT"
    fi
done

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
NODE=$(hostname -s)
[ -n "$NODE" ] || die "hostname -s is empty"
CPUS=$(nproc)
# slurmd reports MemTotal; a configured RealMemory above what it reports marks the node invalid,
# so declare a little less (95%) than the machine has.
MEM_MB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.95 }' /proc/meminfo)
[ "$MEM_MB" -gt 0 ] || die "could not read MemTotal from /proc/meminfo"

mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$MUNGE_DIR"
# down.sh deletes DIR only when it finds this marker, so a mistyped DIR is never wiped.
echo "created by scripts/slurm/up.sh" >"$DIR/.neurosbi-slurm"
# slurmctld refuses a StateSaveLocation or spool it cannot own; the daemons run as root here.
chmod 0755 "$DIR" "$DIR/etc" "$DIR/log" "$DIR/run"
chmod 0700 "$DIR/state" "$DIR/spool"

cat >"$CONF" <<EOF
# Written by scripts/slurm/up.sh: a one-node test cluster on localhost. Not for production.
ClusterName=neurosbi-ci
# NAME(ADDR) so that neither daemon needs a name lookup for the controller.
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups and no systemd: track processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# The default /bin/mail is not installed; an invalid MailProg is logged as an error.
MailProg=/bin/true
SwitchType=switch/none
SchedulerType=sched/backfill
# The default batch_sched_delay=3 runs the scheduler only every 3 s after submissions and job
# ends; with 0 a dependent job starts within about a second of its dependency finishing.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# A dependent job whose afterok can never be satisfied is cancelled instead of pending forever.
DependencyParameters=kill_invalid_depend
# Keep finished jobs visible to 'scontrol show job' (there is no accounting database) for 10 min.
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

# With proctrack/linuxproc and task/none no cgroup plugin is loaded; this file only documents
# that (and keeps any component that looks for cgroup.conf next to slurm.conf from guessing).
cat >"$DIR/etc/cgroup.conf" <<EOF
# Written by scripts/slurm/up.sh: cgroups are not used by this cluster.
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainDevices=no
EOF

# ---------------------------------------------------------------------------------------------
# munge: private key, socket and logs, running as the munge user
# ---------------------------------------------------------------------------------------------
# A private socket (AuthInfo=socket=... below) instead of the default /run/munge, so a system
# munged, if any, is neither used nor disturbed, and nothing outside DIR is created.
if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
fi
chown -R munge:munge "$MUNGE_DIR"
# munged insists that every client can traverse the socket's directory; the key stays 0400.
chmod 0755 "$MUNGE_DIR"
chmod 0400 "$MUNGE_DIR/munge.key"

export SLURM_CONF="$CONF"

fail_with_logs() {
    echo "slurm/up: ERROR: $*" >&2
    for f in "$DIR/log/munged.out" "$MUNGE_DIR/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" "$DIR/log/slurmctld.out" "$DIR/log/slurmd.out"; do
        if [ -s "$f" ]; then
            echo "----- $f (last 40 lines) -----" >&2
            tail -n 40 "$f" >&2
        fi
    done
    "$(dirname "$0")/down.sh" "$DIR" >&2 || true
    exit 1
}

log "starting munged"
# munged daemonizes itself after the socket is ready, so the exit status says whether it started.
runuser -u munge -- munged \
    --key-file="$MUNGE_DIR/munge.key" \
    --socket="$MUNGE_SOCKET" \
    --pid-file="$MUNGE_DIR/munged.pid" \
    --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" \
    >"$DIR/log/munged.out" 2>&1 || fail_with_logs "munged did not start"
# Keep one place for all pid files (down.sh reads them); the munge user can only write its own dir.
cp "$MUNGE_DIR/munged.pid" "$DIR/run/munged.pid"
munge --socket="$MUNGE_SOCKET" -n </dev/null | unmunge --socket="$MUNGE_SOCKET" >/dev/null 2>&1 ||
    fail_with_logs "munge round trip through $MUNGE_SOCKET failed"

log "starting slurmctld"
# -c: start with no jobs from an earlier run of this cluster; -i: ignore state files it cannot read.
slurmctld -c -i -f "$CONF" >"$DIR/log/slurmctld.out" 2>&1 || fail_with_logs "slurmctld did not start"

log "starting slurmd"
slurmd -N "$NODE" -f "$CONF" >"$DIR/log/slurmd.out" 2>&1 || fail_with_logs "slurmd did not start"

log "waiting up to ${TIMEOUT}s for node $NODE to be idle"
deadline=$((SECONDS + TIMEOUT))
state=""
while :; do
    # A daemon that hit a fatal error (bad config, port taken meanwhile) never brings the node up.
    if grep -qs 'fatal:' "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; then
        fail_with_logs "a SLURM daemon stopped with a fatal error"
    fi
    # The daemons write their pid files just after detaching; only a written one can be checked.
    for p in slurmctld slurmd; do
        if [ -s "$DIR/run/$p.pid" ] && ! pid_alive "$DIR/run/$p.pid"; then
            fail_with_logs "$p exited while waiting for the node"
        fi
    done
    state=$(timeout 10 sinfo -h -n "$NODE" -o '%T' 2>/dev/null || true)
    [ "$state" = "idle" ] && break
    # A node that registered with a bad config goes down/drained; the reason says why.
    if [ $SECONDS -ge $deadline ]; then
        reason=$(timeout 10 sinfo -h -n "$NODE" -o '%E' 2>/dev/null || true)
        fail_with_logs "node $NODE not idle after ${TIMEOUT}s (state '${state:-no answer from slurmctld}', reason '${reason}')"
    fi
    sleep 0.5
done
log "cluster up in $DIR: node $NODE, $CPUS CPUs, ${MEM_MB} MB, controller port $CTLD_PORT (${SECONDS}s)"
print_env
