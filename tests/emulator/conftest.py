"""A gateway serving toy handlers (tests/emulator/toys) through the real worker runtime."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emulator.lambda_runtime.buildinfo import BuildMissing, load_build
from emulator.apigateway.gateway import Gateway
from emulator.apigateway.http_api import HttpSettings
from emulator.lambda_runtime.runtime import FunctionSpec, RuntimeConfig
from emulator.apigateway.wiring import ApiWiring, Route, Wiring
from emulator.apigateway.ws_api import WsSettings

TOYS = Path(__file__).resolve().parent / "toys"


def runtime_config() -> RuntimeConfig:
    """The Lambda runtime interpreter from build/local when built; else this interpreter + venv boto3."""
    try:
        info = load_build()
        return RuntimeConfig(python=info.python, runtime_path=info.runtime_path)
    except (BuildMissing, KeyError):
        import boto3

        return RuntimeConfig(python=sys.executable, runtime_path=str(Path(boto3.__file__).parent.parent))


def connect_dir(disconnect_dir: Path) -> Path:
    """Where the toy $connect handler saves its event (``?save=1``): next to the $disconnect folder."""
    folder = disconnect_dir.parent / (disconnect_dir.name + "-connect")
    folder.mkdir(exist_ok=True)
    return folder


def toy_wiring(disconnect_dir: Path, http_timeout_s: float = 3.0) -> Wiring:
    functions = (
        FunctionSpec(name="toy-http", handler="app.handler", code_dir=TOYS / "http",
                     environment={"TOY_SETTING": "from-terraform"}, timeout_s=http_timeout_s,
                     arn="arn:aws:lambda:us-east-1:123456789012:function:toy-http"),
        FunctionSpec(name="toy-connect", handler="app.connect", code_dir=TOYS / "ws",
                     environment={"CONNECT_DIR": str(connect_dir(disconnect_dir))}),
        FunctionSpec(name="toy-default", handler="app.default", code_dir=TOYS / "ws"),
        FunctionSpec(name="toy-disconnect", handler="app.disconnect", code_dir=TOYS / "ws",
                     environment={"DISCONNECT_DIR": str(disconnect_dir)}),
    )
    http = ApiWiring("httpapi1", "$default",
                     (Route("$default", "arn:aws:lambda:us-east-1:123456789012:function:toy-http"),))
    ws = ApiWiring("wsapi1", "dev", (Route("$connect", "toy-connect"), Route("$default", "toy-default"),
                                     Route("$disconnect", "toy-disconnect")))
    return Wiring(region="us-east-1", account_id="123456789012", functions=functions, http=http, ws=ws)


async def started_gateway(tmp_path, integration_timeout_s: float):
    gw = Gateway(runtime_config(),
                 http_settings=HttpSettings(integration_timeout_s=integration_timeout_s),
                 ws_settings=WsSettings(idle_timeout_s=60))  # short idle limits: own gateway (test_ws_api)
    await gw.bind()
    gw.attach(toy_wiring(tmp_path, http_timeout_s=5.0))
    return gw


@pytest.fixture
async def gateway(tmp_path):
    # API Gateway's own integration timeout (30 s): a cold worker on a loaded machine took over the
    # 2 s this fixture once had, and /env answered 503 (CI, 2026-12-07)
    gw = await started_gateway(tmp_path, 30.0)
    yield gw
    await gw.stop()


@pytest.fixture
async def short_gateway(tmp_path):
    """A 2 s integration timeout, for the test of the timeout itself."""
    gw = await started_gateway(tmp_path, 2.0)
    yield gw
    await gw.stop()
