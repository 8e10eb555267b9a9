"""The package as a user installs it: the sdist and the wheel carry the config tree, and a
wheel installed non-editable into a fresh virtual environment runs the default job and the
report from a directory outside the checkout.

The fresh environment gets no dependencies of its own: a ``.pth`` file appends this
environment's site-packages (torch, Hydra, ...) after its own, and only the wheel is
installed into it. Directories named in a ``.pth`` file are not scanned for ``.pth`` files,
so an editable install of fairbench in this environment (a ``.pth`` import hook) stays
inactive there; the tests check that ``fairbench`` is imported from the new environment and
that Hydra reads the config tree installed with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import fairbench

REPO = Path(__file__).resolve().parents[1]
CONF_FILES = sorted(p.relative_to(fairbench.CONF_DIR).as_posix() for p in fairbench.CONF_DIR.rglob("*.yaml"))
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "outputs", "multirun", "__pycache__",
                                    ".pytest_cache", ".hypothesis", "venv", ".venv")

pytestmark = pytest.mark.slow


def run(cmd, cwd, env=None, timeout=180):
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{cmd}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the checkout's sources: builds write build/ and *.egg-info next to them,
    and a stale build/ would leak removed files into the wheel."""
    src = tmp_path_factory.mktemp("src") / "fairbench-src"
    shutil.copytree(REPO, src, symlinks=True, ignore=NOT_SOURCE)
    return src


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "-q", "-w", out, source], cwd=out)
    (path,) = out.glob("*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed non-editable; its Python."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=False, symlinks=os.name != "nt")
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=env_dir).stdout.strip())
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (own / "_fairbench_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
        cwd=env_dir)
    return python


def clean_env() -> dict:
    """The environment without this checkout on PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def test_wheel_carries_every_config_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"fairbench/conf/config.yaml", "fairbench/conf/hydra/launcher/parallel.yaml",
            "fairbench/conf/experiment/paper_oklahoma.yaml", "fairbench/data/synthetic_params.json"} <= names
    assert {f"fairbench/conf/{f}" for f in CONF_FILES} <= names
    assert wheel.name.startswith("fairbench_constrained-")


def test_sdist_carries_what_the_wheel_does(source, wheel, tmp_path):
    out = tmp_path / "sdist"
    out.mkdir()
    run([sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"],
        cwd=source)
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile() and "/" in m.name}
    assert {f"fairbench/conf/{f}" for f in CONF_FILES} <= members
    in_wheel = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("fairbench/")}
    assert in_wheel <= members  # pip install <sdist> builds its wheel from exactly these


def test_installed_wheel_runs_the_default_job_and_the_report(installed, tmp_path):
    env_dir = installed.parent.parent
    elsewhere = tmp_path / "elsewhere"  # a working directory with no conf/ and no fairbench/
    elsewhere.mkdir()
    env = clean_env()
    where = run([installed, "-c", "import fairbench; print(fairbench.__file__); print(fairbench.CONF_DIR)"],
                cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(env_dir) for p in where), where
    searchpath = run([env_dir / "bin" / "fairbench", "--info", "searchpath"], cwd=elsewhere, env=env).stdout
    main = next(line for line in searchpath.splitlines() if line.strip("| ").startswith("main "))
    assert str(Path(where[1])) in main, searchpath  # Hydra reads the installed config tree

    helped = run([env_dir / "bin" / "fairbench", "--help"], cwd=elsewhere, env=env).stdout
    assert helped.startswith("fairbench: a benchmark") and "hydra/launcher: basic" in helped

    out = tmp_path / "run"
    job = run([env_dir / "bin" / "fairbench", "seeds=[0]", "budget.epochs=null", "budget.iterations=50",
               f"hydra.run.dir={out}"], cwd=elsewhere, env=env)
    assert "sgd on synthetic" in job.stdout
    assert (out / "summary.json").is_file() and (out / "seed_0" / "trajectory.csv").is_file()
    run([env_dir / "bin" / "fairbench-report", out, "--quiet"], cwd=elsewhere, env=env)
    assert (out / "report" / "report.md").is_file() and (out / "report" / "table.csv").is_file()
    assert not (elsewhere / "outputs").exists()
