"""The wheel: built from the checkout's package folders, it holds every `kgenrich.*` module and
the packaged data under the one top-level name; installed with --no-deps into a fresh venv
that borrows this interpreter's dependencies but cannot see the checkout, it runs
`kgenrich --help` and loads its ontology and demo catalog from a folder outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]

pytestmark = pytest.mark.slow

# Run by the fresh venv's interpreter: where every module came from, and the packaged data.
PROBE = """
import json, sys
import kgenrich, kgenrich.cli, kgenrich.data, kgenrich.kg.ontology
from kgenrich.data import DEMO, ontology
from kgenrich.kg.ontology import load_ontology
movies = load_ontology(ontology("movies"))
print(json.dumps({
    "files": {name: getattr(sys.modules[name], "__file__", None) for name in sys.modules
              if name == "kgenrich" or name.startswith("kgenrich.")},
    "item_type": movies.item_type, "relations": list(movies.relation_names),
    "demo": sorted(p.name for p in DEMO.iterdir()),
}))
"""


def _expected_modules() -> set[str]:
    """Every .py file of the package folders, as its path inside the wheel."""
    expected = set()
    for package, source in PACKAGE_DIR.items():
        base = Path(*package.split("."))
        for path in (ROOT / source).rglob("*.py"):
            rel = path.relative_to(ROOT / source)
            # A nested folder mapped on its own (kgenrich.kg inside kgenrich/) counts there.
            if not any(p == "__pycache__" for p in rel.parts):
                expected.add((base / rel).as_posix())
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy of what the wheel is made of, so the build leaves no build/ or
    # egg-info in the checkout; no build isolation: the build needs no network.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for source in set(PACKAGE_DIR.values()):
        shutil.copytree(ROOT / source, src / source, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-cache-dir", "-q", "-w", str(out), str(src)], check=True)
    (built,) = out.glob("kgenrich-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home)], check=True)
    python = home / "bin" / "python"
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies from this interpreter's site-packages folders, as plain path lines: the
    # .pth files in them (the editable install's finder among them) are not run, and neither
    # the checkout nor its package folders are on the list.
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    sources = {ROOT, *((ROOT / s).resolve() for s in PACKAGE_DIR.values())}
    deps = [p for p in sys.path if p and (Path(p).name == "site-packages" or p in ours)
            and Path(p).is_dir() and Path(p).resolve() not in sources]
    assert deps, f"no site-packages on {sys.path}"
    (purelib / "zz_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    return home


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env | {"PYTHONNOUSERSITE": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "DO_NOT_TRACK": "1"}


def test_wheel_holds_every_module_and_the_data_under_one_name(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = _expected_modules() - names
    assert not missing, f"not in the wheel (add the package to pyproject's packages): {missing}"
    data = ROOT / PACKAGE_DIR["kgenrich.data"]
    shipped = [*data.glob("ontology/*.json"), *(data / "demo").iterdir()]
    assert {"ontology/movies.json", "ontology/books.json", "demo/catalog.csv"} <= {
        p.relative_to(data).as_posix() for p in shipped}
    for path in shipped:
        assert f"kgenrich/data/{path.relative_to(data).as_posix()}" in names
    assert {n.split("/")[0] for n in names} == {"kgenrich", wheel.name.split("-")[0] + "-"
                                               + wheel.name.split("-")[1] + ".dist-info"}


def test_installed_wheel_runs_from_outside_the_checkout(venv: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert not elsewhere.resolve().is_relative_to(ROOT)
    help_run = subprocess.run([str(venv / "bin" / "kgenrich"), "--help"], cwd=elsewhere,
                              env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert help_run.returncode == 0, help_run.stderr
    assert "demo" in help_run.stdout and "run" in help_run.stdout

    probe = subprocess.run([str(venv / "bin" / "python"), "-c", PROBE], cwd=elsewhere,
                           env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["item_type"] == "Movie" and "directed_by" in found["relations"]
    assert {"catalog.csv", "seed.tsv"} <= set(found["demo"])
    site_packages = (venv / "lib").resolve()
    files = {name: Path(f).resolve() for name, f in found["files"].items() if f}
    assert {"kgenrich.cli", "kgenrich.data", "kgenrich.kg.ontology"} <= set(files)
    elsewhere_files = {n: str(f) for n, f in files.items()
                       if not f.is_relative_to(site_packages) or f.is_relative_to(ROOT)}
    assert not elsewhere_files, f"imported from outside the new venv: {elsewhere_files}"
