"""The local stack refuses a build older than its sources (emulator.lambda_runtime.buildinfo.check_fresh):
it runs the zips in build/local, so a forgotten `make build-local` would measure or test old code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emulator.lambda_runtime.buildinfo import BuildInfo, BuildStale, check_fresh, newer_sources


def tree(tmp_path: Path) -> BuildInfo:
    build_dir = tmp_path / "build" / "local"
    build_dir.mkdir(parents=True)
    for source in ("shared/httptunnel/a.py", "shared/httptunnel/b.py", "lambdas/forward/handler.py"):
        (tmp_path / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / source).write_text("x = 1\n")
        os.utime(tmp_path / source, (1_000_000, 1_000_000))
    (build_dir / "build.json").write_text("{}\n")
    os.utime(build_dir / "build.json", (2_000_000, 2_000_000))
    return BuildInfo(build_dir=build_dir, python="", python_version="3.12", runtime="python3.12",
                     runtime_path="", arch="x86_64", layer_zip=build_dir / "layer.zip", function_zips={})


def test_a_build_newer_than_every_source_is_fresh(tmp_path):
    info = tree(tmp_path)
    assert newer_sources(info) == []
    check_fresh(info)


def test_a_source_changed_after_the_build_is_named(tmp_path):
    info = tree(tmp_path)
    for source in ("shared/httptunnel/b.py", "lambdas/forward/handler.py"):
        os.utime(tmp_path / source, (3_000_000, 3_000_000))
    os.utime(tmp_path / "shared/httptunnel/a.py", (1_500_000, 1_500_000))  # older than the build: not named
    assert [p.relative_to(tmp_path).as_posix() for p in newer_sources(info)] == [
        "lambdas/forward/handler.py", "shared/httptunnel/b.py"]
    with pytest.raises(BuildStale, match=r"older than lambdas/forward/handler.py and 1 more: run `make build-local`"):
        check_fresh(info)
