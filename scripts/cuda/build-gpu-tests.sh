#!/usr/bin/env bash
# Build the CUDA test binaries of neurosbi-flows and the `neurosbi` program (feature `cuda`) on
# a machine WITHOUT a GPU or a system CUDA install, and collect them (plus the CUDA shared
# libraries they load) in a folder that can be carried to a GPU machine that has only the
# NVIDIA driver. Not run by CI.
#
# Needs: a CUDA toolkit tree (nvcc, headers, nvvm, lib/ with libcudart, libcublas(Lt), libcurand,
# libnvrtc), e.g. unpacked from the pip wheels nvidia-cuda-nvcc, nvidia-cuda-runtime,
# nvidia-cublas, nvidia-curand, nvidia-cuda-nvrtc (all cu13) into one prefix. Its major version
# must match what the GPU's driver supports (driver 580 = CUDA 13.0).
#
# Usage (from anywhere inside the repository):
#   CUDA_TK=/path/to/cu13 OUT_DIR=/path/to/repo/.device/cuda-tests scripts/cuda/build-gpu-tests.sh
# Environment:
#   CUDA_TK           toolkit prefix        (default /work/scratch/cuda/tk/nvidia/cu13)
#   CUDA_COMPUTE_CAP  target GPU, e.g. 90   (default 90: H100/H200)
#   OUT_DIR           output folder         (default <repo root>/.device/cuda-tests)
#   CARGO_TARGET_DIR  cargo target dir      (default /work/target-cuda)
#   LINK_DIR          link-time helper dir  (default $CARGO_TARGET_DIR/cuda-link)
#   PROFILE           cargo profile         (default release)
#   COPY_LIBS         CUDA libs copied to OUT_DIR/lib: small | all | none (default small)
#   TESTS             integration-test targets to copy (default "cuda device")
#   STEPS             what to build and pack: tests, cli or both (default "tests cli");
#                     `clippy` lints neurosbi-flows with `cuda` (all targets, -D warnings)
# Then on the GPU machine, from the repository root:
#   bash .device/cuda-tests/run-gpu-tests.sh .device/cuda-tests
# which runs the tests and then (run-gpu-fit.sh) `neurosbi fit` on the GPU and on the CPU.
# (the folder must be git-ignored, e.g. `/.device/` in .git/info/exclude, and carried).
set -euo pipefail

ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
CUDA_TK=${CUDA_TK:-/work/scratch/cuda/tk/nvidia/cu13}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda}
OUT_DIR=${OUT_DIR:-$ROOT/.device/cuda-tests}
LINK_DIR=${LINK_DIR:-$CARGO_TARGET_DIR/cuda-link}
PROFILE=${PROFILE:-release}
COPY_LIBS=${COPY_LIBS:-small}
TESTS=${TESTS:-cuda device}
STEPS=${STEPS:-tests cli}

[ -x "$CUDA_TK/bin/nvcc" ] || { echo "no nvcc in $CUDA_TK/bin" >&2; exit 1; }
export PATH="$CUDA_TK/bin:$PATH"
# cudarc's build script reads the CUDA version from `nvcc --version` and adds $CUDA_HOME/lib
# (and lib/stubs) to the link search path; cudaforge (candle-kernels) finds nvcc on PATH.
export CUDA_HOME="$CUDA_TK" CUDA_PATH="$CUDA_TK" CUDA_ROOT="$CUDA_TK"

# Link-time helpers. The toolkit wheels ship only versioned sonames and no driver library, but
# candle links dynamically against -lcuda -lcublas -lcublasLt -lcurand -lnvrtc -lcudart.
mkdir -p "$LINK_DIR"
for pair in cudart:so.13 cublas:so.13 cublasLt:so.13 curand:so.10 nvrtc:so.13; do
  name=${pair%%:*} ver=${pair#*:}
  [ -e "$CUDA_TK/lib/lib$name.$ver" ] || { echo "missing $CUDA_TK/lib/lib$name.$ver" >&2; exit 1; }
  ln -sf "$CUDA_TK/lib/lib$name.$ver" "$LINK_DIR/lib$name.so"
  ln -sf "$CUDA_TK/lib/lib$name.$ver" "$LINK_DIR/lib$name.$ver"
done
# A stub libcuda.so (soname libcuda.so.1) defining every driver entry point cudarc declares, so
# the link resolves; at run time the loader binds the real driver's libcuda.so.1 instead. The
# stub is never carried to the GPU machine.
CUDARC_SRC=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 1 -mindepth 1 -type d \
  -exec find {} -maxdepth 1 -name 'cudarc-0.19.*' \; | sort -V | tail -1)
[ -n "$CUDARC_SRC" ] || { echo "cudarc 0.19 sources not found (run cargo fetch first)" >&2; exit 1; }
grep -oE '^ *fn (cu[A-Za-z0-9_]+)\(' "$CUDARC_SRC/src/driver/sys/mod.rs" \
  | sed -E 's/^ *fn ([A-Za-z0-9_]+)\(/\1/' | sort -u \
  | awk '{ printf "int %s(void) { return 999; }\n", $1 }' > "$LINK_DIR/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK_DIR/libcuda.so" "$LINK_DIR/cuda_stub.c"
export LIBRARY_PATH="$LINK_DIR${LIBRARY_PATH:+:$LIBRARY_PATH}"
# ld resolves the DT_NEEDED entries of linked libraries (libcublas -> libcublasLt) via this.
export LD_LIBRARY_PATH="$LINK_DIR:$CUDA_TK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cd "$ROOT"
# Thin LTO with one codegen unit (the workspace release profile) takes far longer on a small
# build machine and buys nothing for these checks.
build() {
  nice -n 15 cargo "$@" --profile "$PROFILE" -j 2 \
    --config profile.release.lto=false --config profile.release.codegen-units=16 \
    --message-format=json-render-diagnostics
}
# Copies the executables of the wanted targets (kind: test or bin) named in cargo's JSON log.
pick() {
  python3 - "$@" <<'PY'
import json, shutil, sys, os
log, kind, dest, wanted = sys.argv[1], sys.argv[2], sys.argv[3], set(sys.argv[4:])
found = set()
for line in open(log):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    if m["target"]["kind"] == [kind] and m["target"]["name"] in wanted:
        shutil.copy2(m["executable"], os.path.join(dest, m["target"]["name"]))
        found.add(m["target"]["name"])
missing = wanted - found
if missing:
    sys.exit(f"{kind} binaries not built: {sorted(missing)}")
PY
}
case " $STEPS " in *" clippy "*)
  nice -n 15 cargo clippy -p neurosbi-flows --features cuda --all-targets --profile "$PROFILE" \
    -j 2 --config profile.release.lto=false --config profile.release.codegen-units=16 \
    -- -D warnings
  ;;
esac
case " $STEPS " in *" tests "* | *" cli "*) ;; *) exit 0 ;; esac
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
mkdir -p "$OUT_DIR/bin" "$OUT_DIR/cli" "$OUT_DIR/lib"
rm -rf "$OUT_DIR"/lib/*
# ~54 MB each (candle's PTX and quantised-matmul cubins); xz brings one to ~6 MB, so the
# folder fits the 64 MiB that travels to the GPU machine. run-gpu-tests.sh unpacks them.
case " $STEPS " in *" tests "*)
  build test -p neurosbi-flows --features cuda --no-run > "$LOG"
  rm -rf "$OUT_DIR"/bin/*
  # Only the integration tests that matter on a GPU: tests/cuda.rs and tests/device.rs.
  pick "$LOG" test "$OUT_DIR/bin" $TESTS
  strip --strip-debug "$OUT_DIR"/bin/*
  echo "NEEDED by the test binaries:"
  readelf -d "$OUT_DIR"/bin/* | grep NEEDED | sort -u
  xz -T2 -6 "$OUT_DIR"/bin/*
  ;;
esac
# The program, for `neurosbi fit ... --device cuda` on the GPU machine (run-gpu-fit.sh).
case " $STEPS " in *" cli "*)
  build build -p neurosbi --features cuda --bin neurosbi > "$LOG"
  rm -rf "$OUT_DIR"/cli/*
  pick "$LOG" bin "$OUT_DIR/cli" neurosbi
  strip "$OUT_DIR/cli/neurosbi"
  echo "NEEDED by neurosbi:"
  readelf -d "$OUT_DIR/cli/neurosbi" | grep NEEDED | sort -u
  xz -T2 -6 "$OUT_DIR/cli/neurosbi"
  ;;
esac
cp "$ROOT"/scripts/cuda/{run-gpu-tests.sh,run-gpu-fit.sh,gpu-env.sh} "$OUT_DIR/"

# The binaries need libcudart, libcublas(Lt), libcurand (and libnvrtc if linked) 13.x. The
# large ones (cuBLASLt 515 MB, cuRAND 101 MB, NVRTC 105 MB, cuBLAS 52 MB) are in this
# workplace's GPU image (pip wheels of PyTorch's cu130 build), so only libcudart travels by
# default; COPY_LIBS=all copies them all for a machine that lacks them (far over 64 MiB).
case "$COPY_LIBS" in
  small) libs="libcudart.so.13" ;;
  all) libs="libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libnvrtc-builtins.so.13.0" ;;
  none) libs="" ;;
  *) echo "COPY_LIBS must be small, all or none" >&2; exit 1 ;;
esac
for f in $libs; do cp -L "$CUDA_TK/lib/$f" "$OUT_DIR/lib/"; done

du -sh "$OUT_DIR"/bin/* "$OUT_DIR"/cli/* "$OUT_DIR"/lib/* 2>/dev/null
du -sh --apparent-size "$OUT_DIR"
