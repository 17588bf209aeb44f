"""A ./ttf.toml found in the working directory cannot redirect the user's token (issue 30, item 2).

Sharing a ttf.toml in a repository is the documented team workflow, so a file that came with a
checkout is trusted less than one the user named: the command line and TTF_* outrank it, a token
from outside it never goes to an endpoint only it names (unless --config names it), and the
endpoint and local host it sets are said on start. The subprocess tests run `ttf` against a
hostile gateway named by such a file and check that the token never reaches it.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from ttf.config import ConfigError
from ttf.configfile import load

from conftest import FakeGateway, wait_until
from test_process import spawn  # noqa: F401  (the fixture: ttf as a subprocess in tmp_path)

THEIRS = "wss://theirs.example.test/ws"
MINE = "wss://mine.example.test/ws"


def found(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ttf.toml"
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)


HOSTILE = f"""\
    [tunnels.web]
    port = 3000
    endpoint = "{THEIRS}"
    host = "169.254.169.254"
    request-timeout = 3
"""


def test_the_command_line_and_environment_outrank_a_found_file(tmp_path):
    found(tmp_path, HOSTILE)
    (web,) = load(["-e", MINE, "-t", "mine", "--host", "127.0.0.1", "--request-timeout", "9"],
                  env={}, cwd=tmp_path).tunnels
    assert (web.endpoint, web.token, web.host, web.request_timeout, web.port) == (MINE, "mine", "127.0.0.1", 9, 3000)
    (web,) = load([], env={"TTF_ENDPOINT": MINE, "TTF_TOKEN": "mine", "TTF_HOST": "::1"}, cwd=tmp_path).tunnels
    assert (web.endpoint, web.token, web.host) == (MINE, "mine", "::1")
    # a .env the user named counts as the user's (it is read only when named)
    (tmp_path / "my.env").write_text(f"TTF_ENDPOINT={MINE}\nTTF_TOKEN=mine\n")
    (web,) = load(["--env-file", "my.env"], env={}, cwd=tmp_path).tunnels
    assert (web.endpoint, web.token) == (MINE, "mine")


@pytest.mark.parametrize("argv,env,where", [
    (["-t", "mine"], {}, "--token"),
    ([], {"TTF_TOKEN": "mine"}, "TTF_TOKEN"),
])
def test_a_token_from_outside_never_goes_to_an_endpoint_only_the_found_file_names(tmp_path, argv, env, where):
    found(tmp_path, HOSTILE)
    with pytest.raises(ConfigError) as caught:
        load(argv, env=env, cwd=tmp_path)
    assert str(caught.value) == (
        f"./ttf.toml (found in the working directory, not named with --config) sets endpoint {THEIRS} for "
        f"tunnels.web, and the token comes from {where}: refusing to send your token to an endpoint only that "
        "file names; pass -e/--endpoint (or TTF_ENDPOINT), or --config ttf.toml if you trust the file")
    # the same at the top of the file
    found(tmp_path, f'endpoint = "{THEIRS}"\n[tunnels.web]\nport = 3000\n')
    with pytest.raises(ConfigError, match="refusing to send your token"):
        load(argv, env=env, cwd=tmp_path)


def test_named_with_config_the_file_is_trusted_and_its_table_wins(tmp_path):
    found(tmp_path, HOSTILE)
    for argv, env in ((["--config", "ttf.toml", "-t", "mine"], {}), (["-t", "mine"], {"TTF_CONFIG": "ttf.toml"})):
        plan = load(argv, env=env, cwd=tmp_path)
        (web,) = plan.tunnels
        assert (web.endpoint, web.token, web.host) == (THEIRS, "mine", "169.254.169.254")
        assert plan.notes == ()


def test_a_found_file_with_its_own_token_and_endpoint_still_runs_and_says_where_it_sends(tmp_path):
    found(tmp_path, f'endpoint = "{THEIRS}"\ntoken = "theirs"\n[tunnels.web]\nport = 3000\nhost = "10.0.0.7"\n'
                    '[tunnels.api]\nport = 8000\n')
    plan = load([], env={}, cwd=tmp_path)
    assert [(t.endpoint, t.token, t.host) for t in plan.tunnels] == [
        (THEIRS, "theirs", "10.0.0.7"), (THEIRS, "theirs", "127.0.0.1")]
    assert plan.notes == (
        f"./ttf.toml found in the working directory sets endpoint {THEIRS}, host 10.0.0.7 for tunnels.web "
        "(you did not name it with --config; -e/--host and TTF_* override it)",)
    # what the command line overrides is not named: it is not where anything goes
    plan = load(["-e", MINE], env={}, cwd=tmp_path)
    assert plan.notes == ("./ttf.toml found in the working directory sets host 10.0.0.7 for tunnels.web "
                          "(you did not name it with --config; -e/--host and TTF_* override it)",)
    assert load(["-e", MINE, "--host", "127.0.0.1"], env={}, cwd=tmp_path).notes == ()


def test_an_unread_dotenv_is_said_beside_a_found_file(tmp_path):
    found(tmp_path, f'endpoint = "{THEIRS}"\n[tunnels.web]\nport = 3000\n')
    (tmp_path / ".env").write_text(f"TTF_ENDPOINT={MINE}\n")
    plan = load([], env={}, cwd=tmp_path)
    assert plan.tunnels[0].endpoint == THEIRS
    assert plan.notes[-1] == ("./.env not read (TTF_ENDPOINT): a .env file is read only when named "
                              "(--env-file .env or TTF_ENV_FILE=.env)")


# ---- through a real ttf process: the hostile gateway never sees the token ------------------

@pytest.fixture
async def hostile(aiohttp_server: Callable[..., Awaitable[Any]]) -> FakeGateway:
    fake = FakeGateway()
    fake.tunnel_id = "stolen"
    server = await aiohttp_server(fake.app, host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


async def test_ttf_with_a_hostile_ttf_toml_sends_the_token_only_to_the_users_endpoint(
        gateway, hostile, spawn, tmp_path):  # noqa: F811
    found(tmp_path, f"""\
        [tunnels.web]
        port = 3000
        endpoint = "{hostile.ws_url}"
        host = "169.254.169.254"
    """)
    ttf = await spawn("-e", gateway.ws_url, "-t", "my-secret-token", "--json")
    await wait_until(lambda: ttf.events("tunnel_established"), timeout=15, what="tunnel_established line")
    assert hostile.conns == []  # today's main: the file's table endpoint won and got "Bearer my-secret-token"
    assert gateway.conns[0].headers["Authorization"] == "Bearer my-secret-token"
    notices = [line["message"] for line in ttf.events("notice")]
    assert any("./ttf.toml found in the working directory sets host 169.254.169.254 for tunnels.web" in n
               for n in notices), notices
    ttf.proc.terminate()
    assert await ttf.finish() == 0
    assert hostile.conns == []


async def test_ttf_with_only_a_token_refuses_the_found_files_endpoint(hostile, spawn, tmp_path):  # noqa: F811
    found(tmp_path, f'[tunnels.web]\nport = 3000\nendpoint = "{hostile.ws_url}"\n')
    ttf = await spawn("-t", "my-secret-token", "--json")
    await wait_until(lambda: ttf.proc.returncode is not None or hostile.conns, timeout=15,
                     what="ttf to exit (or to reach the hostile endpoint)")
    assert hostile.conns == []
    assert await ttf.finish() == 2
    assert ttf.proc.stderr is not None
    stderr = (await asyncio.wait_for(ttf.proc.stderr.read(), 5)).decode()
    assert stderr.startswith("ttf: error: ./ttf.toml (found in the working directory, not named with --config)")
    assert "my-secret-token" not in stderr
