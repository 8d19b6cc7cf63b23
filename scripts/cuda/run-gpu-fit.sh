#!/usr/bin/env bash
# Runs the `neurosbi` program built with feature `cuda` (scripts/cuda/build-gpu-tests.sh) on a
# GPU machine: `neurosbi fit FIT --device cuda`, then the same fit with `--device cpu` (same
# seed; the simulations run on the CPU in both). Prints both summary tables and wall times, and
# fails unless, in every run, each parameter's 95 % interval (summary.json: q025..q975) covers
# the synthetic truth. From the repository root (the fit file names its model relative to it):
#   bash scripts/cuda/run-gpu-fit.sh [FOLDER]
# FOLDER defaults to .device/cuda-tests (the program is FOLDER/cli/neurosbi[.xz]).
# Environment: FIT (examples/hh_c_synthetic.toml), SEED (1), DEVICES ("cuda cpu"),
# FIT_TIMEOUT (seconds per fit, 240).
set -uo pipefail
DIR=${1:-.device/cuda-tests}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=gpu-env.sh
. "$HERE/gpu-env.sh"
FIT=${FIT:-examples/hh_c_synthetic.toml}
SEED=${SEED:-1}
DEVICES=${DEVICES:-cuda cpu}
[ -e "$DIR/cli/neurosbi.xz" ] || [ -x "$DIR/cli/neurosbi" ] ||
  { echo "no $DIR/cli/neurosbi: build with scripts/cuda/build-gpu-tests.sh" >&2; exit 2; }
[ -f "$FIT" ] || { echo "no fit file $FIT: run from the repository root" >&2; exit 2; }
case " $DEVICES " in *" cuda"*) require_gpu ;; esac
cuda_lib_path "$DIR"
unpack_all "$DIR/cli"
BIN="$DIR/cli/neurosbi"
echo "=== $BIN"
libs_resolve "$BIN" || exit 1

WORK=$(mktemp -d)
status=0
walls=""
for dev in $DEVICES; do
  out="$WORK/$dev"
  echo "=== neurosbi fit $FIT --device $dev --out $out --seed $SEED"
  start=$(date +%s.%N)
  timeout "${FIT_TIMEOUT:-240}" "$BIN" fit "$FIT" --device "$dev" --out "$out" --seed "$SEED"
  rc=$?
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "wall time, --device $dev: $wall s (exit $rc)"
  walls="$walls --device $dev: $wall s (exit $rc);"
  if [ "$rc" != 0 ]; then
    echo "FAILED: neurosbi fit --device $dev exited with $rc" >&2
    status=1
    continue
  fi
  [ -f "$out/training.csv" ] && echo "epochs trained: $(($(wc -l < "$out/training.csv") - 1))"
  python3 - "$out/summary.json" "$dev" <<'PY' || status=1
import json, sys
path, dev = sys.argv[1], sys.argv[2]
rows = json.load(open(path))
bad = []
if not rows:
    bad.append("summary.json lists no parameter")
for r in rows:
    t, lo, hi = r.get("truth"), r["q025"], r["q975"]
    if t is None:
        bad.append(f"{r['name']}: no truth in summary.json (fit file without [synthetic]?)")
        continue
    ok = lo <= t <= hi
    print(f"  {dev}: {r['name']}: truth {t:g}, 95 % interval [{lo:.4g}, {hi:.4g}] {r['unit']}"
          f" (mean {r['mean']:.4g}, std {r['std']:.3g}): {'ok' if ok else 'NOT COVERED'}")
    if not ok:
        bad.append(f"{r['name']}: truth {t:g} outside the 95 % interval [{lo:.4g}, {hi:.4g}]")
if bad:
    sys.exit(f"FAILED (--device {dev}, {path}): " + "; ".join(bad))
PY
done
echo "neurosbi fit wall times:$walls"
echo "run-gpu-fit: exit $status"
rm -rf "$WORK"
exit $status
