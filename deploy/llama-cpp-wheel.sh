#!/usr/bin/env bash
# Build (once) and install the llama-cpp-python wheel for this CPU.
#
# Why not a plain `pip install llama-cpp-python`: pip compiles it with -march=native
# and caches the wheel by the sdist's URL alone, so a wheel built on one CPU is
# reused on another. On CPUs that advertise AMX (Sapphire Rapids and later) the
# native build also compiles ggml's AMX kernels, which crash with SIGSEGV in
# ggml_backend_amx_mul_mat on the virtual machines we run on.
#
# So the instruction sets are named: AVX2/FMA/F16C always (x86-64-v3, like the
# images in deploy/docker), AVX-512 where this CPU has it (prompt processing is
# ~1.5x faster with it here), AMX never. The wheel is cached under a key made of
# the version and those flags, so another CPU builds its own.
#
# Usage: deploy/llama-cpp-wheel.sh PYTHON   (CMAKE_ARGS in the environment wins)
set -euo pipefail
PY="${1:?usage: $0 PYTHON}"
here="$(cd "$(dirname "$0")/.." && pwd)"
version="$(sed -n 's/^llama-cpp-python==\([0-9.]*\).*/\1/p' "$here/requirements.txt")"
[ -n "$version" ] || { echo "requirements.txt pins no llama-cpp-python" >&2; exit 1; }

if [ -z "${CMAKE_ARGS:-}" ]; then
  # GGML_NATIVE=OFF turns AVX, AVX2, BMI2, FMA and F16C on; AVX-512 and AMX stay off.
  CMAKE_ARGS="-DGGML_NATIVE=OFF"
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true) "
  has() { case "$flags" in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
  if has avx512f && has avx512cd && has avx512bw && has avx512dq && has avx512vl; then
    CMAKE_ARGS+=" -DGGML_AVX512=ON"
    if has avx512vbmi; then CMAKE_ARGS+=" -DGGML_AVX512_VBMI=ON"; fi
    if has avx512_vnni; then CMAKE_ARGS+=" -DGGML_AVX512_VNNI=ON"; fi
    if has avx512_bf16; then CMAKE_ARGS+=" -DGGML_AVX512_BF16=ON"; fi
  fi
fi
export CMAKE_ARGS
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

key="$(printf '%s %s' "$version" "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/quantplan/wheels/llama-cpp-python-$version-$key"
sdist_name="llama_cpp_python-$version.tar.gz"
wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -1 || true)"
if [ -z "$wheel" ]; then
  echo "Compiling llama-cpp-python $version (once, a few minutes): $CMAKE_ARGS"
  mkdir -p "$dir.tmp.$$"
  # The sdist is kept beside the wheel: quantjobs/backends/gguf/llama_cpp_source.py
  # takes llama.cpp's converter (convert_hf_to_gguf.py, gguf-py) and tools from it,
  # so they come from the same llama.cpp commit as the compiled library.
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$dir.tmp.$$" \
    "llama-cpp-python==$version"
  "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$dir.tmp.$$" "$dir.tmp.$$/$sdist_name"
  rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
  wheel="$(ls "$dir"/llama_cpp_python-"$version"-*.whl | head -1)"
elif [ ! -f "$dir/$sdist_name" ]; then
  # A wheel cached before the sdist was kept: fetch the sdist alone (best effort;
  # without it the converter downloads it on first use).
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$dir" \
    "llama-cpp-python==$version" || echo "warning: could not download $sdist_name" >&2
fi
# --force-reinstall: replace a wheel pip may have built natively before.
"$PY" -m pip install -q --no-deps --force-reinstall "$wheel"
