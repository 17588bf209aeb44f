"""moto in its own process: control routes (stats, faults, code), admin merge, dies with its parent."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile

import botocore
import pytest

from emulator.admin import AdminApi
from emulator.mock_aws.moto_process import MotoProcess, fetch_code
from emulator.stats import Faults, Stats
from tests.emulator.test_background import client, make_table


@pytest.fixture(scope="module")
def moto_proc():
    proc = MotoProcess("local")
    proc.start()
    yield proc
    proc.stop()


def test_counts_and_faults_through_the_control_routes(moto_proc):
    endpoint = moto_proc.endpoint
    make_table(endpoint, "remote")
    ddb = client("dynamodb", endpoint, retries={"total_max_attempts": 1, "mode": "standard"})
    moto_proc.reset_stats()
    assert moto_proc.push_faults({"dynamodb_throttle_rate": 1.0})["dynamodb_throttle_rate"] == 1.0
    try:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            ddb.get_item(TableName="remote", Key={"requestId": {"S": "x"}})
        assert info.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    finally:
        moto_proc.push_faults({"dynamodb_throttle_rate": 0})
    ddb.get_item(TableName="remote", Key={"requestId": {"S": "x"}})
    assert moto_proc.dynamodb_calls() == {"GetItem": 2}


async def test_admin_merges_and_pushes(moto_proc):
    class Lambdas:
        invocations: dict = {}
        billed_ms: dict = {}

        def reset_stats(self):
            pass

        def cold_starts(self):
            return {}

    stats, faults = Stats(), Faults()
    admin = AdminApi(stats, faults, Lambdas(), moto_proc)  # type: ignore[arg-type]
    moto_proc.reset_stats()
    client("dynamodb", moto_proc.endpoint).list_tables()
    stats.count_dynamodb("ListTables")
    assert (await admin.snapshot())["dynamodb_calls"] == {"ListTables": 2}
    moto_proc.reset_stats()
    assert (await admin.snapshot())["dynamodb_calls"] == {"ListTables": 1}


def test_code_route_returns_the_uploaded_zip(moto_proc):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(e, c):\n    return 1\n")
    data = buf.getvalue()
    iam = client("iam", moto_proc.endpoint)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lam = client("lambda", moto_proc.endpoint)
    fn = lam.create_function(FunctionName="f1", Runtime="python3.12", Role=role, Handler="app.handler",
                             Code={"ZipFile": data})
    account = fn["FunctionArn"].split(":")[4]
    assert fetch_code(moto_proc.endpoint, account, "us-east-1", function="f1") == data
    assert fetch_code(moto_proc.endpoint, account, "us-east-1", function="nope") is None


def test_dies_when_its_stdin_closes():
    proc = MotoProcess("local")
    proc.start()
    popen = proc.popen
    assert popen is not None and popen.stdin is not None
    popen.stdin.close()
    assert popen.wait(timeout=10) == 0
    proc.stop()


def test_dies_with_its_parent():
    code = ("import sys; from emulator.mock_aws.moto_process import MotoProcess; p = MotoProcess('local'); "
            "p.start(); print(p.popen.pid, flush=True); import os; os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"moto process {pid} outlived its parent")
