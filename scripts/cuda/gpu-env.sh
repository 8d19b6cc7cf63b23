# Sourced by run-gpu-tests.sh and run-gpu-fit.sh (bash): checks that this machine has an
# NVIDIA driver, puts the CUDA libraries on LD_LIBRARY_PATH and unpacks xz-compressed binaries.

# Fails (status 2) with the reason when no NVIDIA GPU / driver is visible.
require_gpu() {
  [ -n "${GPU_ENV_CHECKED:-}" ] && return 0
  if command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
    nvidia-smi || true
    export GPU_ENV_CHECKED=1
    return 0
  fi
  echo "no NVIDIA GPU here: \`nvidia-smi -L\` lists none (or is missing); these checks need a" \
    "machine with a CUDA GPU and its driver (libcuda.so.1)" >&2
  exit 2
}

# LD_LIBRARY_PATH: FOLDER/lib first, then the driver's libcuda.so.1 and cuBLAS / cuRAND /
# NVRTC 13 from a CUDA install or pip's nvidia-* wheels (this workplace's GPU image has both;
# cuBLASLt alone is 515 MB, too large to carry). `ldd` shows what resolves.
cuda_lib_path() {
  local search d
  search="$(cd "$1" && pwd)/lib"
  case "${LD_LIBRARY_PATH:-}" in "$search" | "$search":*) return 0 ;; esac
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/local/cuda/lib64 \
    /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import glob, site
roots = site.getsitepackages() + [site.getusersitepackages()]
print(" ".join(sorted({p for r in roots for p in glob.glob(r + "/nvidia/*/lib")})))' 2>/dev/null); do
    [ -d "$d" ] && search="$search:$d"
  done
  export LD_LIBRARY_PATH="$search${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}

# Unpacks every FILE.xz in the given folder next to itself (xz, or Python's lzma).
unpack_all() {
  local z t
  for z in "$1"/*.xz; do
    [ -e "$z" ] || continue
    t="${z%.xz}"
    if [ ! -x "$t" ] || [ "$z" -nt "$t" ]; then
      xz -dc "$z" > "$t" 2>/dev/null ||
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$z" "$t" ||
        { echo "cannot unpack $z" >&2; exit 2; }
      chmod +x "$t"
    fi
  done
}

# Succeeds when every library of the binary resolves; prints the CUDA ones.
libs_resolve() {
  ldd "$1" | grep -E 'cuda|cublas|curand|nvrtc|not found'
  if ldd "$1" | grep -q 'not found'; then
    echo "missing libraries for $(basename "$1")" >&2
    return 1
  fi
}
