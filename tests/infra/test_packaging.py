"""`pip install .` gives a working `ttf` with only its runtime dependencies, and the wheel holds no tooling."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.infra

# Refuses what the agent must never need at run time: the Lambdas' dependencies and all tooling.
BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"boto3", "botocore", "jwt", "cryptography", "moto", "emulator", "scripts", "tests"}:
            raise ImportError("blocked for this test: " + name)
        return None
sys.meta_path.insert(0, Block())
sys.path[:0] = [WHEEL]
import pkgutil, importlib, ttf
for mod in pkgutil.walk_packages(ttf.__path__, "ttf."):
    importlib.import_module(mod.name)
from ttf.inspector.server import STATIC, _static_files
assert set(_static_files()) == set(STATIC)  # the inspector's page ships as package data
try:  # the Python API, called: it needs no endpoint to say it needs one
    ttf.expose(3000, env={})
except ttf.ConfigError as exc:
    assert "no endpoint" in str(exc), exc
else:
    raise AssertionError("expose() without an endpoint did not refuse")
assert ttf.__file__.startswith(WHEEL) and callable(ttf.expose)
from ttf.main import main
raise SystemExit(main(["--version"]))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "shared" / "httptunnel", src / "shared" / "httptunnel",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "cli" / "ttf", src / "cli" / "ttf", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, timeout=300)
    (built,) = out.glob("ttf_tunnel-*.whl")
    return built


def test_the_wheel_ships_the_agent_and_the_layer_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ttf", "httptunnel"}
    static = {n.removeprefix("ttf/inspector/static/") for n in names if n.startswith("ttf/inspector/static/")}
    assert {"index.html", "app.js", "views.js", "app.css", "icon.svg"} <= static  # the inspector's page files
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    runtime = sorted(r for r in requires if "extra ==" not in r)
    assert runtime == ["aiohttp==3.14.5", "rich==15.0.0"]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    points = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ttf = ttf.main:entry" in points
    assert "[pytest11]\nttf = ttf.pytest_plugin" in points  # the plugin ships in the wheel
    assert "ttf/py.typed" in names
    meta = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: ttf-tunnel" in meta and "License: MIT" in meta
    assert "Classifier: Framework :: Pytest" in meta and "Classifier: Typing :: Typed" in meta
    assert "Description-Content-Type: text/markdown" in meta and "## Use it from Python" in meta


def test_ttf_runs_from_the_wheel_without_the_lambda_dependencies(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "wheel"
    zipfile.ZipFile(wheel).extractall(unpacked)
    # -I: no user site, no cwd on sys.path: only the unpacked wheel and the venv's packages
    proc = subprocess.run([sys.executable, "-I", "-c", BLOCKER.replace("WHEEL", repr(str(unpacked)))],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("ttf ")
