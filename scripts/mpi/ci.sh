#!/usr/bin/env bash
# MPI test of neurosbi (built with `--features mpi`): `mpirun -np 2 neurosbi simulate FILE`
# must store exactly the simulations of a one-process `neurosbi simulate FILE`, chunk file for
# chunk file, and a rank that dies must fail the job with an error naming the rank, leaving
# the round incomplete (a rerun completes it, identical again). Then two rounds over MPI
# (examples/small_hh_two_rounds.toml) must give a one-process fit's samples byte for byte.
#
# Usage: scripts/mpi/ci.sh NEUROSBI [FIT_FILE]   (default examples/small_hh_noise.toml)
# Runs as root too (--allow-run-as-root); --oversubscribe lets 2 ranks share fewer cores.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:?usage: ci.sh NEUROSBI [FIT_FILE]}")
FIT=$(realpath "${2:-$ROOT/examples/small_hh_noise.toml}")
WORK=$(mktemp -d /tmp/neurosbi-mpi-ci.XXXXXX)
T0=$SECONDS
trap 'rm -rf "$WORK"' EXIT

log() { echo "mpi/ci: $*" >&2; }
fail() {
    echo "mpi/ci: FAILED: $*" >&2
    exit 1
}
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)
# Quiet Open MPI's warnings about missing high-speed networks in containers.
export OMPI_MCA_btl=self,vader,tcp OMPI_MCA_btl_vader_single_copy_mechanism=none

command -v mpirun >/dev/null || fail "mpirun not found (Debian: openmpi-bin)"
[ -x "$BIN" ] || fail "$BIN is not an executable"

same_store() {
    local a=$1/simulations b=$2/simulations
    local fa fb
    fa=$(cd "$a" && ls r*.chunk store.meta)
    fb=$(cd "$b" && ls r*.chunk store.meta)
    [ "$fa" = "$fb" ] || fail "the stores hold different files: $(echo $fa) vs $(echo $fb)"
    for f in $fa; do
        cmp -s "$a/$f" "$b/$f" || fail "$f differs between $a and $b"
    done
}

"$BIN" --quiet --threads 2 --out "$WORK/one" simulate "$FIT" || fail "one-process simulate failed"

t=$SECONDS
"${MPIRUN[@]}" "$BIN" --out "$WORK/mpi" simulate "$FIT" >"$WORK/mpi.log" 2>&1 ||
    { cat "$WORK/mpi.log" >&2; fail "mpirun -np 2 failed"; }
grep -q "by 2 MPI ranks" "$WORK/mpi.log" || { cat "$WORK/mpi.log" >&2; fail "the run did not use 2 ranks"; }
same_store "$WORK/one" "$WORK/mpi"
log "mpirun -np 2: store bit-identical to one process ($((SECONDS - t))s): $(tail -n 1 "$WORK/mpi.log")"

# A rank that dies: the job fails, names the rank, and the round stays incomplete.
if NEUROSBI_MPI_KILL_RANK=1 "${MPIRUN[@]}" -x NEUROSBI_MPI_KILL_RANK "$BIN" --quiet --out "$WORK/dead" \
    simulate "$FIT" >"$WORK/dead.log" 2>&1; then
    cat "$WORK/dead.log" >&2
    fail "the job succeeded although rank 1 died"
fi
# mpirun's own report, not the rank's last words.
grep -q "process rank 1 " "$WORK/dead.log" ||
    { cat "$WORK/dead.log" >&2; fail "the error does not name rank 1"; }
# Rank 1 died before its second chunk (chunk 3): the round must be incomplete.
[ ! -f "$WORK/dead/simulations/r0000_c00000003.chunk" ] || fail "the killed job left a complete round"
log "a dying rank fails the job: $(grep -m1 "process rank 1 " "$WORK/dead.log" | cut -c1-160)"
# Resuming (here without MPI) completes the round with the same data.
"$BIN" --quiet --out "$WORK/dead" simulate "$FIT" || fail "resuming after the dead rank failed"
same_store "$WORK/one" "$WORK/dead"
log "resumed run identical too"

# Two rounds: MPI round 0, `merge` (no shards: trains the proposal), MPI round 1, train; the
# posterior samples must equal a one-process fit's.
TWO=$ROOT/examples/small_hh_two_rounds.toml
"$BIN" --quiet --out "$WORK/two-one" fit "$TWO" || fail "one-process two-round fit failed"
"${MPIRUN[@]}" "$BIN" --quiet --out "$WORK/two-mpi" simulate "$TWO" --round 0 >"$WORK/two.log" 2>&1 &&
    "$BIN" --quiet --out "$WORK/two-mpi" merge "$TWO" >>"$WORK/two.log" 2>&1 &&
    "${MPIRUN[@]}" "$BIN" --quiet --out "$WORK/two-mpi" simulate "$TWO" --round 1 >>"$WORK/two.log" 2>&1 &&
    "$BIN" --quiet --out "$WORK/two-mpi" train "$TWO" >>"$WORK/two.log" 2>&1 ||
    { cat "$WORK/two.log" >&2; fail "the two-round MPI run failed"; }
cmp "$WORK/two-one/samples.npy" "$WORK/two-mpi/samples.npy" ||
    fail "two-round MPI samples differ from the one-process fit"
log "two rounds over MPI: samples byte-identical to the one-process fit; PASSED ($((SECONDS - T0))s)"
