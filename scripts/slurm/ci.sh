#!/usr/bin/env bash
# The real SLURM test of neurosbi: on a one-node cluster on localhost (up.sh), `neurosbi slurm`
# writes the sbatch scripts of a small shipped model, `submit.sh` submits a 4-task array job
# (one shard each) and the dependent (--dependency=afterok) merge-and-train job; when they have
# finished, the posterior samples must be byte-identical to a one-process `neurosbi fit` with
# the same seed. The cluster is torn down on every exit path (down.sh, EXIT trap). A fit file
# with several rounds runs the whole chain (array job, merge and proposal, next array job, ...).
#
# Usage: sudo scripts/slurm/ci.sh NEUROSBI [FIT_FILE]
#   NEUROSBI  the neurosbi program to test (e.g. target/debug/neurosbi)
#   FIT_FILE  default examples/small_hh_noise.toml
# Environment: NEUROSBI_SLURM_DIR (cluster directory, default /tmp/neurosbi-slurm-ci),
# NEUROSBI_SLURM_JOB_TIMEOUT (seconds to wait for the whole chain, default 300).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:?usage: ci.sh NEUROSBI [FIT_FILE]}")
FIT=$(realpath "${2:-$ROOT/examples/small_hh_noise.toml}")
DIR=${NEUROSBI_SLURM_DIR:-/tmp/neurosbi-slurm-ci}
JOB_TIMEOUT=${NEUROSBI_SLURM_JOB_TIMEOUT:-300}
WORK=$(mktemp -d /tmp/neurosbi-slurm-ci.XXXXXX)
chmod 0755 "$WORK"
T0=$SECONDS

log() { echo "slurm/ci: $*" >&2; }

failed=0
fail() {
    failed=1
    echo "slurm/ci: FAILED: $*" >&2
    if [ -n "${SLURM_CONF:-}" ]; then
        echo "----- scontrol show jobs -----" >&2
        timeout 10 scontrol show jobs >&2 || true
    fi
    for f in "$WORK"/cluster/slurm/logs/*.out "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        if [ -s "$f" ]; then
            echo "----- $f (last 30 lines) -----" >&2
            tail -n 30 "$f" >&2
        fi
    done
    exit 1
}

cleanup() {
    local rc=$?
    "$HERE/down.sh" "$DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK"
    if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
        log "PASSED ($((SECONDS - T0))s)"
    else
        log "FAILED (exit $rc)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BIN" ] || fail "$BIN is not an executable"
[ -f "$FIT" ] || fail "$FIT not found"

log "bringing the cluster up in $DIR"
env_lines=$("$HERE/up.sh" "$DIR") || fail "up.sh failed"
eval "$env_lines"
[ -n "${SLURM_CONF:-}" ] || fail "up.sh printed no SLURM_CONF"

# The reference: one process, same file, same seed (runs while nothing is queued).
t=$SECONDS
"$BIN" --quiet --out "$WORK/one" fit "$FIT" || fail "one-process fit failed"
log "one-process fit took $((SECONDS - t))s"

"$BIN" --quiet --out "$WORK/cluster" slurm "$FIT" --array-size 4 --cpus 1 --train-cpus 1 \
    --time 00:10:00 --train-time 00:10:00 || fail "neurosbi slurm failed"
for s in round0.sbatch train.sbatch submit.sh; do
    [ -x "$WORK/cluster/slurm/$s" ] || fail "neurosbi slurm wrote no $s"
done
grep -q -- '--array=0-3' "$WORK/cluster/slurm/round0.sbatch" || fail "round0.sbatch is not a 4-task array"

t=$SECONDS
ids=$("$WORK/cluster/slurm/submit.sh") || fail "submit.sh failed"
log "submitted: $(echo "$ids" | tr '\n' ' ')"
# One array job per round (round0, round1, ...), merge jobs between rounds, train last.
array_ids=$(echo "$ids" | awk '$1 ~ /^round[0-9]+$/ {print $2}')
last_array=$(echo "$array_ids" | tail -n 1)
train_id=$(echo "$ids" | awk '$1 == "train" {print $2}')
[ -n "$last_array" ] && [ -n "$train_id" ] || fail "submit.sh printed no job ids"
dep=$(timeout 10 scontrol -o show job "$train_id" | sed -n 's/.* Dependency=\([^ ]*\).*/\1/p')
case "$dep" in afterok:"$last_array"* | "(null)") ;; *) fail "train job $train_id has Dependency=$dep" ;; esac

job_states() {
    timeout 10 scontrol -o show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}
wait_job() {
    local id=$1 deadline=$((SECONDS + JOB_TIMEOUT)) states
    while :; do
        states=$(job_states "$id" | sort -u | tr '\n' ' ')
        case " $states " in
            *" PENDING "* | *" RUNNING "* | *" CONFIGURING "* | *" COMPLETING "* | *" SUSPENDED "* | "  ") ;;
            *)
                [ "$states" = "COMPLETED " ] || fail "job $id ended in state(s) '$states'"
                return 0
                ;;
        esac
        [ $SECONDS -lt $deadline ] || fail "job $id not finished after ${JOB_TIMEOUT}s (states '$states')"
        sleep 0.5
    done
}
for id in $(echo "$ids" | awk '{print $2}'); do
    wait_job "$id"
done
for id in $array_ids; do
    n_tasks=$(job_states "$id" | wc -l)
    [ "$n_tasks" -eq 4 ] || fail "array job $id has $n_tasks tasks, expected 4"
done
log "array job + merge-and-train took $((SECONDS - t))s"

n_rounds=$(echo "$array_ids" | wc -l)
n_shards=$(ls "$WORK/cluster/simulations/shards/"*.shard | wc -l)
[ "$n_shards" -eq $((4 * n_rounds)) ] || fail "$n_shards shard files, expected $((4 * n_rounds))"
for f in samples.npy samples.csv; do
    [ -f "$WORK/cluster/$f" ] || fail "the cluster run wrote no $f"
    cmp "$WORK/one/$f" "$WORK/cluster/$f" || fail "$f differs from the one-process run"
done
log "posterior samples byte-identical to the one-process run ($(stat -c %s "$WORK/one/samples.npy") bytes)"
