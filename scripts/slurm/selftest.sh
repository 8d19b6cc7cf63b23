#!/usr/bin/env bash
# Self-test of the localhost SLURM cluster: up, a 4-task array job, a dependent job that merges
# the tasks' output, a failing job whose afterok dependant must be cancelled, then down.
#
# Usage: sudo scripts/slurm/selftest.sh [DIR]   (cluster directory, as for up.sh)
#
# Exits 0 only if every check passed; the cluster is torn down on every exit path.
# NEUROSBI_SLURM_JOB_TIMEOUT bounds the wait for each job (seconds, default 120).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-${NEUROSBI_SLURM_DIR:-/tmp/neurosbi-slurm}}
JOB_TIMEOUT=${NEUROSBI_SLURM_JOB_TIMEOUT:-120}
WORK=$(mktemp -d /tmp/neurosbi-slurm-selftest.XXXXXX)
chmod 0755 "$WORK"
T0=$SECONDS

log() { echo "slurm/selftest: $*" >&2; }

failed=0
fail() {
    failed=1
    echo "slurm/selftest: FAILED: $*" >&2
    if [ -n "${SLURM_CONF:-}" ]; then
        echo "----- scontrol show jobs -----" >&2
        timeout 10 scontrol show jobs >&2 || true
    fi
    for f in "$WORK"/*.out "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        if [ -s "$f" ]; then
            echo "----- $f (last 30 lines) -----" >&2
            tail -n 30 "$f" >&2
        fi
    done
    exit 1
}

cleanup() {
    local rc=$?
    local t_down=$SECONDS
    "$HERE/down.sh" "$DIR" || true
    rm -rf "$WORK"
    log "down took $((SECONDS - t_down))s; total $((SECONDS - T0))s"
    if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
        log "PASSED"
    else
        log "FAILED (exit $rc)"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
log "bringing the cluster up in $DIR"
t=$SECONDS
env_lines=$("$HERE/up.sh" "$DIR") || fail "up.sh failed"
eval "$env_lines"
[ -n "${SLURM_CONF:-}" ] || fail "up.sh printed no SLURM_CONF"
log "up took $((SECONDS - t))s"
sinfo >&2

# Prints one JobState per line for a job id (an array job yields one line per task).
job_states() {
    timeout 10 scontrol -o show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'
}

# Waits until every record of job $1 has left the queue; fails unless all are $2 (default COMPLETED).
wait_job() {
    local id=$1 want=${2:-COMPLETED} deadline=$((SECONDS + JOB_TIMEOUT)) states
    while :; do
        states=$(job_states "$id" | sort -u | tr '\n' ' ')
        case " $states " in
            *" PENDING "* | *" RUNNING "* | *" CONFIGURING "* | *" COMPLETING "* | *" SUSPENDED "* | "  ") ;;
            *)
                [ "$states" = "$want " ] || fail "job $id ended in state(s) '$states', expected $want"
                return 0
                ;;
        esac
        [ $SECONDS -lt $deadline ] || fail "job $id not finished after ${JOB_TIMEOUT}s (states '$states')"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# Array job + afterok merge, the shape of a neurosbi simulate/merge round.
# The jobs find their files through --chdir rather than an exported variable: an explicit
# --export=ALL,VAR=... list made each job launch 0.3-1.3 s slower on this machine.
cat >"$WORK/task.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
echo "$SLURM_ARRAY_TASK_ID $SLURM_ARRAY_TASK_COUNT" >"task-$SLURM_ARRAY_TASK_ID.txt"
EOF
cat >"$WORK/merge.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
n=$(ls task-*.txt | wc -l)
for i in $(seq 0 $((n - 1))); do cat "task-$i.txt"; done >merged.txt
EOF
chmod +x "$WORK/task.sh" "$WORK/merge.sh"

t=$SECONDS
array_id=$(sbatch --parsable --array=0-3 --ntasks=1 --cpus-per-task=1 \
    --job-name=selftest-array --chdir="$WORK" --output="$WORK/array-%a.out" "$WORK/task.sh") ||
    fail "sbatch of the array job failed"
merge_id=$(sbatch --parsable --dependency=afterok:"$array_id" \
    --job-name=selftest-merge --chdir="$WORK" --output="$WORK/merge.out" "$WORK/merge.sh") ||
    fail "sbatch of the dependent job failed"
log "submitted array job $array_id and dependent job $merge_id"
wait_job "$array_id"
wait_job "$merge_id"
log "array + dependent job took $((SECONDS - t))s"

expected=$'0 4\n1 4\n2 4\n3 4'
[ -f "$WORK/merged.txt" ] || fail "the dependent job wrote no $WORK/merged.txt"
got=$(cat "$WORK/merged.txt")
[ "$got" = "$expected" ] || fail "merged output is '$got', expected '$expected'"
log "merged output correct: $(echo "$got" | tr '\n' ',')"

# ---------------------------------------------------------------------------------------------
# A failed job: its afterok dependant must be cancelled (DependencyParameters=kill_invalid_depend),
# not left pending forever, and 'sbatch --wait'-style callers must see FAILED, not success.
t=$SECONDS
bad_id=$(sbatch --parsable --job-name=selftest-fail --chdir="$WORK" --output="$WORK/fail.out" \
    --wrap 'exit 3') || fail "sbatch of the failing job failed"
dep_id=$(sbatch --parsable --job-name=selftest-never --chdir="$WORK" --output="$WORK/never.out" \
    --dependency=afterok:"$bad_id" --wrap "touch $WORK/must-not-exist") ||
    fail "sbatch of the job depending on the failing one failed"
wait_job "$bad_id" FAILED
wait_job "$dep_id" CANCELLED
[ ! -e "$WORK/must-not-exist" ] || fail "job $dep_id ran although its afterok dependency failed"
exit_code=$(timeout 10 scontrol -o show job "$bad_id" | sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p')
[ "$exit_code" = "3:0" ] || fail "failing job $bad_id has ExitCode '$exit_code', expected 3:0"
log "failed job $bad_id (ExitCode $exit_code) cancelled its dependant $dep_id ($((SECONDS - t))s)"
