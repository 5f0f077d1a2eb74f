"""Build `.lint-tree/`, the installed layout of the package as hard links (kgenrich/kg from
./kg, ...), read from pyproject's [tool.setuptools.package-dir], so that mypy and grimp, which
find subpackages by directory, see `kgenrich.kg`. Prints `tree-path<TAB>checkout-path` lines
for mapping reported paths back."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path


def build(root: Path, tree: Path) -> dict[str, str]:
    """Recreate `tree` from the package-dir mapping; returns tree path -> checkout path."""
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    mapping: dict[str, str] = {}
    # Parents before children: kgenrich/ first, then kgenrich/kg/ inside it.
    for package, source in sorted(package_dir.items(), key=lambda kv: kv[0].count(".")):
        target = tree.joinpath(*package.split("."))
        shutil.copytree(root / source, target, copy_function=os.link, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        mapping[target.relative_to(tree).as_posix() + "/"] = source.rstrip("/") + "/"
    return mapping


if __name__ == "__main__":
    checkout = Path(sys.argv[1]).resolve()
    for tree_path, source in build(checkout, checkout / ".lint-tree").items():
        print(f"{tree_path}\t{source}")
