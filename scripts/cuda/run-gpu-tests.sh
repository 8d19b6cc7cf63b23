#!/usr/bin/env bash
# Runs the CUDA test binaries built by scripts/cuda/build-gpu-tests.sh on a GPU machine that
# has the NVIDIA driver. From the repository root:
#   bash scripts/cuda/run-gpu-tests.sh [FOLDER]
# FOLDER defaults to .device/cuda-tests; the build script also copies this file there.
# Libraries come from FOLDER/lib first, then from the machine: the driver's libcuda.so.1, and
# cuBLAS / cuRAND / NVRTC 13 from a CUDA install or pip's nvidia-* wheels (this workplace's
# GPU image has both; cuBLASLt alone is 515 MB, too large to carry). `ldd` shows what resolves.
set -uo pipefail
DIR=${1:-.device/cuda-tests}
[ -d "$DIR/bin" ] || { echo "no $DIR/bin: build with scripts/cuda/build-gpu-tests.sh" >&2; exit 2; }
nvidia-smi || echo "(nvidia-smi failed)"

search="$(cd "$DIR" && pwd)/lib"
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 \
  /usr/local/cuda/targets/x86_64-linux/lib \
  $(python3 -c 'import glob, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(" ".join(sorted({p for r in roots for p in glob.glob(r + "/nvidia/*/lib")})))' 2>/dev/null); do
  [ -d "$d" ] && search="$search:$d"
done
export LD_LIBRARY_PATH="$search${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

# The binaries travel xz-compressed; unpack with xz or, failing that, Python's lzma.
for z in "$DIR"/bin/*.xz; do
  [ -e "$z" ] || continue
  t="${z%.xz}"
  if [ ! -x "$t" ] || [ "$z" -nt "$t" ]; then
    xz -dc "$z" > "$t" 2>/dev/null ||
      python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$z" "$t" ||
      { echo "cannot unpack $z" >&2; exit 2; }
    chmod +x "$t"
  fi
done

status=0
for t in "$DIR"/bin/*; do
  case "$t" in *.xz) continue ;; esac
  echo "=== $(basename "$t")"
  ldd "$t" | grep -E 'cuda|cublas|curand|nvrtc|not found'
  if ldd "$t" | grep -q 'not found'; then
    echo "missing libraries for $(basename "$t")"
    status=1
    continue
  fi
  "$t" --nocapture --test-threads 1 || status=1
done
echo "run-gpu-tests: exit $status"
exit $status
