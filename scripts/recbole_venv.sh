#!/usr/bin/env bash
# Build the venv bench/recbole_check.py trains RecBole in, apart from kgenrich's own (RecBole
# 1.2.1 needs numpy<2 and an older pandas/scipy/scikit-learn than kgenrich uses).
# usage: bash scripts/recbole_venv.sh       (RECBOLE_VENV=... elsewhere, PYTHON=... to build it)
# Pins, as measured (issue 11): recbole 1.2.1 with numpy<2 pandas<2.3 scipy<1.14
# scikit-learn<1.6; setuptools<70 because ray imports pkg_resources. torch goes in first, so
# pip takes the CPU wheel it finds locally (find-links), and stays pinned after: torch 2.13
# declares setuptools>=77, so resolving it together with setuptools<70 makes pip fall back to
# an older CUDA torch from PyPI (5 GB). setuptools<70 therefore goes in last, --no-deps (pip
# then warns about torch's setuptools pin; torch needs setuptools only to build extensions).
# RecBole's checkpoint reload needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 under torch >= 2.6; the
# check script sets it. KGAT would also need dgl, which is not installed.
set -euo pipefail
venv=${RECBOLE_VENV:-$HOME/.cache/kgenrich/recbole-venv}
py=${PYTHON:-python3.11}
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" "recbole==1.2.1" "numpy<2" "pandas<2.3" "scipy<1.14" "scikit-learn<1.6" \
  "torch==2.13.0"
"${pip[@]}" --no-deps "setuptools<70"
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$venv/bin/python" -c \
  'import recbole, torch, numpy; print("recbole", recbole.__version__, "torch", torch.__version__, "numpy", numpy.__version__)'
echo "$venv"
