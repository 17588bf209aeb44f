"""Read build/local/build.json: the zips and the interpreter that plays the Lambda runtime."""

from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = ROOT / "build" / "local"


SOURCE_DIRS = ("shared", "lambdas")  # what the zips are built from (scripts/package)


class BuildMissing(RuntimeError):
    """build/local has not been built (run `make build-local`)."""


class BuildStale(BuildMissing):
    """build/local is older than a source file it packages: the stack would run the old code."""


@dataclass(frozen=True)
class BuildInfo:
    build_dir: Path
    python: str
    python_version: str
    runtime: str
    runtime_path: str
    arch: str
    layer_zip: Path
    function_zips: dict[str, Path]


def real_interpreter(path: str, version: str) -> str:
    """A pyenv shim depends on the shell's pyenv state: use the real binary behind it."""
    if path and "shims" not in path and os.path.exists(path):
        return path
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    hits = sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    if hits:
        return hits[-1]
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    raise BuildMissing(f"no python{version} interpreter found for the Lambda runtime")


def load_build(build_dir: Path = DEFAULT_BUILD_DIR) -> BuildInfo:
    path = build_dir / "build.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BuildMissing(f"{path} not found: run `make build-local` first") from None
    version = data.get("python_version", "3.12")
    return BuildInfo(
        build_dir=build_dir,
        python=real_interpreter(data.get("python", ""), version),
        python_version=version,
        runtime=data.get("runtime", f"python{version}"),
        runtime_path=data["runtime_path"],
        arch=data.get("arch", "x86_64"),
        layer_zip=Path(data["layer_zip"]),
        function_zips={k: Path(v) for k, v in data.get("function_zips", {}).items()},
    )


def newer_sources(info: BuildInfo) -> list[Path]:
    """The ``.py`` files under ``shared/`` and ``lambdas/`` of the build's own tree changed since
    ``build.json`` was written (the stack runs the zips, never the source tree)."""
    built = (info.build_dir / "build.json").stat().st_mtime
    root = info.build_dir.resolve().parents[1]
    return sorted(path for folder in SOURCE_DIRS if (root / folder).is_dir()
                  for path in (root / folder).rglob("*.py") if path.stat().st_mtime > built)


def check_fresh(info: BuildInfo) -> None:
    """Raise ``BuildStale`` naming the first source newer than the build."""
    newer = newer_sources(info)
    if newer:
        root = info.build_dir.resolve().parents[1]
        more = f" and {len(newer) - 1} more" if len(newer) > 1 else ""
        raise BuildStale(f"{info.build_dir / 'build.json'} is older than {newer[0].relative_to(root)}{more}: "
                         "run `make build-local` (the local stack runs the built zips, not the source tree)")
