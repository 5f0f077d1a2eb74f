#!/usr/bin/env bash
# Lint: ruff over the checkout; mypy and the import-linter contracts (pyproject.toml) over
# .lint-tree/, the installed layout as hard links (kgenrich/kg from ./kg, ...), because both
# find subpackages by directory and ./kg is not ./kgenrich/kg; and no `sys.path` edits in the
# packages or bench/. Runs every check, reports each, exits 1 if any failed.
# usage: bash scripts/lint.sh          (PYTHON=... to use another interpreter than .venv's)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
# Absolute, since mypy and lint-imports run from inside .lint-tree/.
if [[ $PY == */* ]]; then PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
else PY=$(command -v "$PY") || { echo "lint: no $PYTHON"; exit 1; }; fi
failed=()

# The packages' folders in the checkout, from pyproject's package-dir (kgenrich, kg, ...).
tree_map=$("$PY" scripts/lint_tree.py .) || { echo "lint: cannot build .lint-tree"; exit 1; }
mapfile -t lines <<< "$tree_map"
dirs=() back=()
for line in "${lines[@]}"; do
  tree_path=${line%%$'\t'*} source=${line#*$'\t'}
  dirs+=("$source")
  # mypy reports tree paths (kgenrich/kg/x.py): print them as checkout paths (kg/x.py).
  [ "$tree_path" != "$source" ] && back+=(-e "s#^${tree_path}#${source}#")
done
to_checkout() { if [ ${#back[@]} -gt 0 ]; then sed -u "${back[@]}"; else cat; fi; }

echo "== ruff check ."
"$PY" -m ruff check . || failed+=(ruff)

echo "== mypy -p kgenrich (in .lint-tree)"
# From inside the tree, so mypy finds the tree's kgenrich before the checkout's ./kgenrich.
(cd .lint-tree && "$PY" -m mypy --config-file ../pyproject.toml --cache-dir ../.mypy_cache \
   -p kgenrich) 2>&1 | to_checkout
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(mypy)

echo "== lint-imports (in .lint-tree)"
(cd .lint-tree && "$PY" -c 'import sys; from importlinter.cli import lint_imports_command
sys.argv[0] = "lint-imports"; lint_imports_command()' --no-logo --no-cache ../pyproject.toml) \
  || failed+=(import-linter)

echo "== no sys.path edits in ${dirs[*]} bench"
if grep -rn --include='*.py' 'sys\.path' "${dirs[@]}" bench; then failed+=(sys.path); fi

if [ ${#failed[@]} -gt 0 ]; then echo "lint failed: ${failed[*]}"; exit 1; fi
echo "lint passed"
