#!/usr/bin/env bash
# Build (once) and install the llama-cpp-python wheel for this CPU.
#
# Why not a plain `pip install llama-cpp-python`: pip compiles it with -march=native
# and caches the wheel by the sdist's URL alone, so a wheel built on one CPU is
# reused on another. On CPUs that advertise AMX (Sapphire Rapids and later) the
# native build also compiles ggml's AMX kernels, which crash with SIGSEGV in
# ggml_backend_amx_mul_mat on the virtual machines we run on.
#
# So we build the same portable x86-64-v3 library as the images in deploy/docker
# (AVX2, FMA, F16C; no AVX-512, no AMX): it runs on any x86-64 CPU of the last ten
# years, and it re-lays out exactly the tensor types the planner assumes for a CPU
# (Q4_0, Q4_K, IQ4_NL; an AVX-512 build would also repack Q2_K). The wheel is cached
# under a key made of the version and the flags.
#
# Usage: deploy/llama-cpp-wheel.sh PYTHON   (CMAKE_ARGS in the environment wins)
set -euo pipefail
PY="${1:?usage: $0 PYTHON}"
here="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$here/requirements.txt")"
[ -n "$version" ] || { echo "requirements.txt pins no llama-cpp-python" >&2; exit 1; }

# GGML_NATIVE=OFF turns AVX, AVX2, BMI2, FMA and F16C on and leaves AVX-512 and AMX off.
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
export CMAKE_ARGS
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

key="$(printf '%s %s' "$version" "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/quantplan/wheels/llama-cpp-python-$version-$key"
wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  echo "Compiling llama-cpp-python $version (once, a few minutes): $CMAKE_ARGS"
  mkdir -p "$dir.tmp.$$"
  "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$dir.tmp.$$" "llama-cpp-python==$version"
  rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
  wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl | head -1)"
fi
# --force-reinstall: replace a wheel pip may have built natively before.
"$PY" -m pip install -q --no-deps --force-reinstall "$wheel"
