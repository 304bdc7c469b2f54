"""nndiag installs as a user installs it: the wheel and the sdist build, and the built wheel, put
into a fresh virtual environment, checks the shipped reference models from outside the checkout.

Offline: ``python -m build --no-isolation`` (the isolated build would download setuptools), and
``python -m venv --system-site-packages`` so torch and the other dependencies come from this
machine instead of being downloaded again; the wheel itself is installed with ``--no-deps``.
The build runs on a copy of the checkout's files (tracked and untracked, not ignored), so it never
writes into the working tree. Takes about a minute.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.wheel

SHIPPED = ("reference_models/xor.py", "reference_models/mnist/t10k-images-idx3-ubyte.gz",
           "reference_models/mnist/t10k-labels-idx1-ubyte.gz", "reference_models/weights/xor-xor.pt",
           "nndiag/writers/sarif.py")


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="the 'build' package is a dev extra (pip install -e '.[dev]')")
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    _copy_checkout(src)
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return dist


def test_wheel_and_sdist_hold_what_the_reference_models_need(built):
    (wheel,) = built.glob("nndiag-*.whl")
    (sdist,) = built.glob("nndiag-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names, set(SHIPPED) - names
    assert any(n.endswith("entry_points.txt") for n in names)
    top = sdist.name[: -len(".tar.gz")]
    members = set(tarfile.open(sdist).getnames())
    assert {f"{top}/{n}" for n in SHIPPED + ("README.md", "pyproject.toml")} <= members


def test_installed_wheel_checks_a_reference_model_outside_the_checkout(built, tmp_path):
    (wheel,) = built.glob("nndiag-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    where = subprocess.run([str(python), "-c", "import nndiag, reference_models, os; "
                            "print(os.path.dirname(os.path.dirname(reference_models.__file__)))"],
                           cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()
    site = Path(where)
    assert env_dir in site.parents, f"nndiag was imported from {site}, not from the new venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNDIAG_")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(bindir / "nndiag"), "check", "reference_models/xor.py", "--threads", "1",
                             "--json", str(tmp_path / "xor.json")],
                            cwd=site, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reference_models/xor.py: PASS" in result.stdout
    assert REPO not in Path(site).parents and site != REPO
    import json

    report = json.loads((tmp_path / "xor.json").read_text())
    assert report["status"] == "pass" and report["run"]["nndiag"] == "0.1.0"
    # the shipped MNIST sample is found inside the installed package, with no data folder
    mnist = subprocess.run([str(python), "-c", "from reference_models import data; "
                            "s = data.load_image_split('mnist'); print(s.source, s.split)"],
                           cwd=tmp_path, env={**env, "HOME": str(tmp_path)}, check=True,
                           capture_output=True, text=True).stdout
    assert str(site / "reference_models" / "mnist") in mnist and "mnist-test-8k/2k" in mnist
