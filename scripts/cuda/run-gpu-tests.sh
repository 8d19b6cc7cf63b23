#!/usr/bin/env bash
# Runs the CUDA test binaries built by scripts/cuda/build-gpu-tests.sh on a GPU machine that
# has the NVIDIA driver, then (when the folder has the program) run-gpu-fit.sh. From the
# repository root:
#   bash scripts/cuda/run-gpu-tests.sh [FOLDER]
# FOLDER defaults to .device/cuda-tests; the build script also copies this file, gpu-env.sh
# and run-gpu-fit.sh there. Set SKIP_FIT=1 to run the tests only; TEST_TIMEOUT (seconds, 240)
# bounds each test binary so that a hang leaves time for the fit.
set -uo pipefail
DIR=${1:-.device/cuda-tests}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=gpu-env.sh
. "$HERE/gpu-env.sh"
[ -d "$DIR/bin" ] || { echo "no $DIR/bin: build with scripts/cuda/build-gpu-tests.sh" >&2; exit 2; }
require_gpu
cuda_lib_path "$DIR"
unpack_all "$DIR/bin"

status=0
for t in "$DIR"/bin/*; do
  case "$t" in *.xz) continue ;; esac
  echo "=== $(basename "$t")"
  libs_resolve "$t" || { status=1; continue; }
  timeout "${TEST_TIMEOUT:-240}" "$t" --nocapture --test-threads 1
  rc=$?
  [ "$rc" = 0 ] || { echo "FAILED: $(basename "$t") (exit $rc)" >&2; status=1; }
done
echo "run-gpu-tests: tests exit $status"
if [ "${SKIP_FIT:-0}" != 1 ] && [ -e "$DIR/cli/neurosbi.xz" ]; then
  bash "$HERE/run-gpu-fit.sh" "$DIR" || status=1
fi
echo "run-gpu-tests: exit $status"
exit $status
