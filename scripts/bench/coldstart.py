"""Cold init of each function against fresh interpreters, next to `import botocore.session`.

    python -m scripts.bench.coldstart [--build build/local] [--runs 5]

For each function, a NEW interpreter of the runtime's version (the same `-I -S` and sys.path the
emulator's worker and Lambda give it: function folder, layer `python/`, the runtime's boto3)
measures:
* import: `import handler` (the module Lambda loads at init);
* first call: what the first invocation does before its first AWS call: creating the boto3
  client(s) it uses (`httptunnel.aws.client`, the same shared session) and the lazy imports it
  does on that path (forward: none; connect with a JWKS: PyJWT/cryptography; see FIRST_CALL);
and, in the same run, `import botocore.session` alone (the floor any boto-using function pays).
``runs`` rounds, each measuring the floor and then every function in a fresh process; a
function's ratio is the median of its per-round ratios (noise on a shared machine hits both
sides of a round alike). The target is cold init <= 1.25 x that floor.
Absolute times on a shared, loaded machine are several times AWS's; only the ratio counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.25
# A row beside the functions: the layer's botocore imported and one DynamoDB client made, nothing
# else. The part of every function's cold init that no handler code can remove.
CLIENT_ONLY = "(botocore client only)"

# What each function's first invocation does before its first AWS call (beyond the import).
FIRST_CALL: dict[str, str] = {
    "connect": "from httptunnel import aws; aws.client('dynamodb')",
    "disconnect": "from httptunnel import aws; aws.client('dynamodb')",
    "response": "from httptunnel import aws; aws.client('dynamodb')",
    "forward": "from httptunnel import aws; aws.client('dynamodb')",
    "cleanup": "from httptunnel import aws; aws.client('dynamodb')",
    "stream_notifier": "from httptunnel import aws; aws.client('dynamodb'); aws.client('events')",
}

_PROBE = """
import json, sys, time
sys.path[:0] = {paths!r}
t0 = time.perf_counter()
{imports}
t1 = time.perf_counter()
{first_call}
t2 = time.perf_counter()
print(json.dumps({{"import_ms": (t1 - t0) * 1000, "first_call_ms": (t2 - t1) * 1000}}))
"""

_ENV = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "CONNECTIONS_TABLE": "c", "PENDING_TABLE": "p", "PATH": "/usr/bin:/bin"}


def _probe(python: str, paths: list[str], imports: str, first_call: str = "pass") -> dict[str, float]:
    code = _PROBE.format(paths=paths, imports=imports, first_call=first_call)
    out = subprocess.run([python, "-I", "-S", "-c", code], capture_output=True, text=True, env=_ENV, check=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(build_dir: Path, runs: int = 5) -> dict[str, Any]:
    info = json.loads((build_dir / "build.json").read_text())
    python, runtime = info["python"], info["runtime_path"]
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer"
        with zipfile.ZipFile(info["layer_zip"]) as zf:
            zf.extractall(layer)
        paths: dict[str, list[str]] = {}
        for name, zip_path in sorted(info["function_zips"].items()):
            code = Path(tmp) / name
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(code)
            paths[name] = [str(code), str(layer / "python"), runtime]
        # Round robin: each round measures the floor and then every function, so a burst of load
        # on this shared machine lands on the floor and the functions alike; each function's
        # ratio is the median of its per-round ratios to that round's floor.
        floors: list[float] = []
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
        samples[CLIENT_ONLY] = []  # what any function using a client pays: no handler code at all
        for _ in range(runs):
            floors.append(_probe(python, [runtime], "import botocore.session")["import_ms"])
            samples[CLIENT_ONLY].append(_probe(python, [str(layer / "python"), runtime], "import botocore.session",
                                               "botocore.session.Session().create_client('dynamodb')"))
            for name, found in paths.items():
                samples[name].append(_probe(python, found, "import handler", FIRST_CALL.get(name, "pass")))
        rows = {name: _summary(taken, floors) for name, taken in samples.items()}
    client_only = rows.pop(CLIENT_ONLY)
    return {"python": python, "runs": runs, "bytecode": info.get("bytecode"),
            "botocore_session_import_ms": round(statistics.median(floors), 1), "target_ratio": TARGET_RATIO,
            "functions": rows, "client_only": client_only}


def _summary(taken: list[dict[str, float]], floors: list[float]) -> dict[str, float]:
    imp = statistics.median(s["import_ms"] for s in taken)
    first = statistics.median(s["first_call_ms"] for s in taken)
    ratio = statistics.median((s["import_ms"] + s["first_call_ms"]) / f for s, f in zip(taken, floors, strict=True))
    return {"import_ms": round(imp, 1), "first_call_ms": round(first, 1), "cold_init_ms": round(imp + first, 1),
            "ratio_to_botocore_session": round(ratio, 2)}


def render(result: dict[str, Any]) -> str:
    lines = [f"Cold init ({result['runs']} rounds of fresh {Path(result['python']).name} processes, medians; "
             f"bytecode shipped: {result['bytecode'] or 'no'}); import botocore.session alone: "
             f"{result['botocore_session_import_ms']:.0f} ms; target <= {result['target_ratio']}x",
             f"  {'function':24} {'import ms':>10} {'first call ms':>14} {'cold init ms':>13} {'x botocore':>11}"]
    rows = [(name, f, "" if f["ratio_to_botocore_session"] <= result["target_ratio"] else "  (misses)")
            for name, f in result["functions"].items()]
    if "client_only" in result:
        rows.append((CLIENT_ONLY, result["client_only"], "  (floor: no handler)"))
    for name, f, verdict in rows:
        lines.append(f"  {name:24} {f['import_ms']:>10.0f} {f['first_call_ms']:>14.0f} {f['cold_init_ms']:>13.0f} "
                     f"{f['ratio_to_botocore_session']:>11.2f}{verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", type=Path, default=ROOT / "build" / "local")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = measure(args.build, args.runs)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
