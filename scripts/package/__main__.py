"""Build the Lambda artifacts: the layer zip and one zip per function.

    python -m scripts.package                       # deploy build: arm64, python3.12 -> build/
    python -m scripts.package --local               # local stack: host arch, local runtime -> build/local/

The layer holds the `httptunnel` package plus pyjwt and cryptography vendored for the
*Lambda* platform (manylinux wheels of the target architecture and Python version), never
the build machine's own, and its own botocore pruned to the services the layer calls
(LAYER_SERVICES): a client then parses a few small models instead of listing ~400 services and
the 1.2 MB endpoints file (shared/README.md "Cold starts"). Zips are deterministic (fixed timestamps, sorted entries), so
`filebase64sha256()` in Terraform only changes when the content does.

--local also prepares what the Lambda runtime itself provides (boto3) for the emulator,
in .local/runtime/python<ver>/, and records the interpreter in build/local/runtime.json.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("connect", "disconnect", "response", "forward", "forward_stream", "cleanup", "stream_notifier",
             "caller_connect", "caller_message", "caller_disconnect")
LAYER_REQUIREMENTS = ("pyjwt==2.15.1", "cryptography==50.0.2")
RUNTIME_REQUIREMENTS = ("boto3==1.44.8",)  # what the AWS Lambda python runtime ships
# The layer's own botocore: the runtime boto3's version (botocore pins boto3's minor), pure Python,
# installed without its dependencies (jmespath, dateutil, urllib3 come from the runtime).
LAYER_BOTOCORE = "botocore==1.44.8"
# Every service the layer creates a client for (`aws.client("...")`; a test holds the two together).
LAYER_SERVICES = ("apigatewaymanagementapi", "dynamodb", "events", "kms", "s3", "secretsmanager", "ssm")
# What a client reads from a service's folder; examples-1.json is documentation only.
SERVICE_FILES = ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
SKIP = ("__pycache__", ".pyc", ".pytest_cache")


def write_zip(src_dir: Path, zip_path: Path, bytecode: bool = False) -> None:
    """Deterministic zip of everything under src_dir (with bytecode: its __pycache__ too)."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".tmp")
    skip = (".pytest_cache",) if bytecode else SKIP
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() and not any(s in str(p) for s in skip))
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(src_dir).as_posix(), FIXED_TIME)
            # executables stay executable (the streaming function's AWS_LAMBDA_EXEC_WRAPPER script)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    tmp.replace(zip_path)


def platforms(arch: str) -> list[str]:
    machine = {"arm64": "aarch64", "x86_64": "x86_64"}[arch]
    return [f"manylinux2014_{machine}", f"manylinux_2_28_{machine}", f"manylinux_2_34_{machine}"]


def pip_target(target: Path, requirements: tuple[str, ...], arch: str, python_version: str,
               deps: bool = True) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target),
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    if not deps:
        cmd.append("--no-deps")
    for plat in platforms(arch):
        cmd += ["--platform", plat]
    subprocess.run(cmd + list(requirements), check=True)


def _read_json(path: Path) -> Any:
    data = path.read_bytes()
    return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)


def _model_file(version_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}.json", f"{stem}.json.gz"):
        if (version_dir / name).exists():
            return version_dir / name
    return None


def prune_botocore_data(data: Path, services: tuple[str, ...]) -> None:
    """Keep only ``services`` (their newest API version: the one botocore loads) and only those
    services in endpoints.json, in every partition. What a client of a kept service reads is
    unchanged: e2e runs every handler on this pruned copy."""
    prefixes = set()
    for entry in sorted(data.iterdir()):
        if not entry.is_dir():
            continue
        if entry.name not in services:
            shutil.rmtree(entry)
            continue
        versions = sorted(v for v in entry.iterdir() if v.is_dir() and _model_file(v, "service-2"))
        if not versions:
            raise SystemExit(f"botocore has no model for {entry.name}")
        for old in versions[:-1] + [v for v in entry.iterdir() if v.is_dir() and v not in versions]:
            shutil.rmtree(old)
        for f in versions[-1].iterdir():
            if f.name.split(".")[0] not in SERVICE_FILES:
                f.unlink()
        model = _model_file(versions[-1], "service-2")
        assert model is not None
        # The models keep their prose: botocore reads some of it (clientContextParams'
        # documentation is a required key), so stripping it broke clients at run time.
        prefixes.add(_read_json(model)["metadata"].get("endpointPrefix", entry.name))
    missing = set(services) - {e.name for e in data.iterdir() if e.is_dir()}
    if missing:
        raise SystemExit(f"botocore has no data for {sorted(missing)}")
    endpoints = _read_json(data / "endpoints.json")
    for partition in endpoints["partitions"]:
        partition["services"] = {k: v for k, v in partition["services"].items() if k in prefixes}
    (data / "endpoints.json").write_text(json.dumps(endpoints, separators=(",", ":"), sort_keys=True))


def vendor_botocore(site: Path, arch: str, python_version: str) -> None:
    pip_target(site, (LAYER_BOTOCORE,), arch, python_version, deps=False)
    prune_botocore_data(site / "botocore" / "data", LAYER_SERVICES)


def compile_bytecode(tree: Path, interpreter: str | None, runtime_dir: str) -> bool:
    """Compile every module under tree with the TARGET Python (its magic number is what the
    runtime checks). Lambda mounts the layer (/opt) and the function (/var/task) read-only, so
    without these every cold start compiles the modules again and cannot cache them.
    ``unchecked-hash`` pycs are used without comparing the source's mtime, which a zip round
    trip does not keep exactly; the build always compiles fresh sources, so they never go stale.
    ``-d`` puts the deployed path in tracebacks. False when no interpreter of that version exists."""
    if interpreter is None:
        return False
    subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    "-d", runtime_dir, str(tree)], check=True)
    return True


def build_layer(out: Path, arch: str, python_version: str, interpreter: str | None) -> tuple[Path, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "python"
        pip_target(site, LAYER_REQUIREMENTS, arch, python_version)
        vendor_botocore(site, arch, python_version)
        shutil.copytree(ROOT / "shared" / "httptunnel", site / "httptunnel",
                        ignore=shutil.ignore_patterns(*SKIP))
        compiled = compile_bytecode(site, interpreter, "/opt/python")
        zip_path = out / "layer.zip"
        write_zip(Path(tmp), zip_path, bytecode=compiled)
    return zip_path, compiled


def build_functions(out: Path, interpreter: str | None) -> list[Path]:
    paths = []
    for name in FUNCTIONS:
        with tempfile.TemporaryDirectory() as tmp:
            staged = Path(tmp) / name
            shutil.copytree(ROOT / "lambdas" / name, staged, ignore=shutil.ignore_patterns(*SKIP))
            compiled = compile_bytecode(staged, interpreter, "/var/task")
            zip_path = out / "functions" / f"{name}.zip"
            write_zip(staged, zip_path, bytecode=compiled)
        paths.append(zip_path)
    return paths


def host_arch() -> str:
    return {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "x86_64")


def find_python(version: str) -> str | None:
    """An interpreter of the Lambda runtime's version, if this machine has one."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    hits = sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}")))
    if hits:  # a real interpreter, not a pyenv shim that depends on the shell's pyenv state
        return hits[-1]
    found = shutil.which(f"python{version}")
    return os.path.realpath(found) if found and "shims" not in found else None


def build_local_runtime(python_version: str) -> dict:
    """boto3 for the emulated Lambda runtime, and which interpreter runs the handlers."""
    interpreter = find_python(python_version)
    if interpreter is None:  # fall back to this interpreter's version
        python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        interpreter = sys.executable
    runtime_dir = ROOT / ".local" / "runtime" / f"python{python_version}"
    marker = runtime_dir / ".requirements"
    wanted = "\n".join(RUNTIME_REQUIREMENTS)
    if not marker.exists() or marker.read_text() != wanted:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        pip_target(runtime_dir, RUNTIME_REQUIREMENTS, host_arch(), python_version)
        marker.write_text(wanted)
    return {"python": interpreter, "python_version": python_version, "runtime_path": str(runtime_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local", action="store_true", help="build for the local stack (host arch)")
    parser.add_argument("--arch", choices=("arm64", "x86_64"), default=None)
    parser.add_argument("--python-version", default="3.12", help="Lambda runtime version (default 3.12)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    out = args.out or (ROOT / "build" / "local" if args.local else ROOT / "build")
    arch = args.arch or (host_arch() if args.local else "arm64")
    python_version = args.python_version
    info: dict = {"arch": arch}
    if args.local:
        info.update(build_local_runtime(python_version))
        python_version = info["python_version"]
    interpreter = find_python(python_version)
    layer, compiled = build_layer(out, arch, python_version, interpreter)
    info["layer_zip"] = str(layer)
    info["function_zips"] = {p.stem: str(p) for p in build_functions(out, interpreter)}
    info["runtime"] = f"python{python_version}"
    info["bytecode"] = f"python{python_version}" if compiled else None
    if not compiled:
        print(f"warning: no python{python_version} on this machine: the zips carry no bytecode "
              "(every cold start compiles the modules again)", file=sys.stderr)
    (out / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    shown = out.relative_to(ROOT) if out.resolve().is_relative_to(ROOT) else out
    print(f"built {arch} python{python_version} layer + {len(FUNCTIONS)} functions -> {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
