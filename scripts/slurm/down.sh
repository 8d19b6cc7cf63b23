#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by scripts/slurm/up.sh and remove its directory.
#
# Usage: sudo scripts/slurm/down.sh [DIR]   (DIR defaults to $NEUROSBI_SLURM_DIR or /tmp/neurosbi-slurm)
#
# Cancels any jobs still known to the controller, stops slurmd, slurmctld and munged by the pid
# files up.sh left in DIR/run, and deletes DIR (set NEUROSBI_SLURM_KEEP=1 to keep its logs).
# The Debian packages stay installed. Safe to call when nothing is running.
set -uo pipefail

DIR=${1:-${NEUROSBI_SLURM_DIR:-/tmp/neurosbi-slurm}}
CONF="$DIR/etc/slurm.conf"

log() { echo "slurm/down: $*" >&2; }

case "$DIR" in
    /*) ;;
    *) log "ERROR: DIR must be an absolute path, got '$DIR'"; exit 1 ;;
esac
if [ ! -d "$DIR" ]; then
    log "nothing to do: $DIR does not exist"
    exit 0
fi

pid_of() { # name -> pid from DIR/run/NAME.pid if that process is alive
    local f="$DIR/run/$1.pid" pid
    [ -s "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop() { # names: SIGTERM to all at once (each takes ~2 s to exit), wait up to 10 s, then SIGKILL
    local name pid i pids=() names=()
    for name in "$@"; do
        pid=$(pid_of "$name") || continue
        kill -TERM "$pid" 2>/dev/null
        pids+=("$pid")
        names+=("$name")
    done
    for i in "${!pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "${pids[$i]}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null
        else
            log "stopped ${names[$i]} (pid ${pids[$i]})"
        fi
    done
    return 0
}

# Jobs first, while the controller and slurmd can still clean up their job steps.
if [ -f "$CONF" ] && pid_of slurmctld >/dev/null; then
    export SLURM_CONF="$CONF"
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086 # one job id per word
        timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 50); do
            [ -z "$(timeout 5 squeue -h -o '%A' 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

stop slurmd slurmctld
# munged last: the SLURM daemons authenticate their last messages through it.
stop munged

if [ ! -f "$DIR/.neurosbi-slurm" ]; then
    log "daemons stopped; $DIR has no .neurosbi-slurm marker, so it is left in place"
elif [ "${NEUROSBI_SLURM_KEEP:-0}" = "1" ]; then
    rm -rf "$DIR/run" "$DIR/munge" "$DIR/state" "$DIR/spool"
    log "daemons stopped; logs kept in $DIR/log"
else
    rm -rf "$DIR"
    log "daemons stopped; removed $DIR"
fi
