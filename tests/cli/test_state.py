"""The saved tunnel: the state store on its own, and the agent using it in-process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

import pytest

from ttf.config import parse_config
from ttf.events import Notice, TunnelEstablished
from ttf.state import SavedTunnel, StateError, TunnelStore, default_state_dir, new_reclaim_token, state_file_name

from conftest import make_config, wait_until

ENDPOINT = "wss://ws.example.test/prod"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_then_load_round_trip_with_private_modes(tmp_path):
    store = TunnelStore(tmp_path / "a" / "ttf", ENDPOINT, "127.0.0.1:3000")
    assert store.load() is None
    saved = store.save("abc123def456", "secret-token", now=1_700_000_000.0)
    assert store.load() == saved == SavedTunnel("abc123def456", "secret-token", ENDPOINT, "127.0.0.1:3000",
                                                 1_700_000_000.0)
    assert mode(store.path) == 0o600 and mode(store.directory) == 0o700
    data = json.loads(store.path.read_text())
    assert {k: data[k] for k in ("tunnel_id", "reclaim_token", "endpoint", "saved_at")} == {
        "tunnel_id": "abc123def456", "reclaim_token": "secret-token", "endpoint": ENDPOINT,
        "saved_at": 1_700_000_000.0}
    store.save("zzz999zzz999", "second")  # replaced atomically: no temporary file is left behind
    assert store.load().tunnel_id == "zzz999zzz999"
    assert [p.name for p in store.directory.iterdir()] == [store.path.name]
    assert mode(store.path) == 0o600


def test_a_lax_umask_still_gives_0600(tmp_path):
    old = os.umask(0)
    try:
        store = TunnelStore(tmp_path / "s", ENDPOINT, "127.0.0.1:3000")
        store.save("abc", "t")
    finally:
        os.umask(old)
    assert mode(store.path) == 0o600 and mode(store.directory) == 0o700


def test_entries_are_keyed_by_endpoint_and_local_target(tmp_path):
    a = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    b = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3001")
    c = TunnelStore(tmp_path, "wss://other.example.test/prod", "127.0.0.1:3000")
    a.save("aaa", "ta")
    b.save("bbb", "tb")
    assert len({a.path, b.path, c.path}) == 3
    assert (a.load().tunnel_id, b.load().tunnel_id, c.load()) == ("aaa", "bbb", None)
    a.forget()
    a.forget()  # idempotent
    assert a.load() is None and b.load().tunnel_id == "bbb"


def test_a_file_for_another_key_is_not_used(tmp_path):
    a = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    b = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:4000")
    b.save("bbb", "tb")
    b.path.rename(a.path)  # e.g. copied by hand
    assert a.load() is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe",
        b"[]",
        json.dumps({"version": 2, "tunnel_id": "abc", "endpoint": ENDPOINT, "local_target": "127.0.0.1:3000",
                    "saved_at": 1}).encode(),  # no token
        json.dumps({"version": 2, "tunnel_id": "ABC!", "reclaim_token": "t", "endpoint": ENDPOINT,
                    "local_target": "127.0.0.1:3000", "saved_at": 1}).encode(),  # not an id
        json.dumps({"version": 2, "tunnel_id": "abc", "reclaim_token": "t\r\nX-Evil: 1", "endpoint": ENDPOINT,
                    "local_target": "127.0.0.1:3000", "saved_at": 1}).encode(),  # header injection
        json.dumps({"version": 3, "tunnel_id": "abc", "reclaim_token": "t", "endpoint": ENDPOINT,
                    "local_target": "127.0.0.1:3000", "saved_at": 1}).encode(),
        b"x" * (65 * 1024),
    ],
)
def test_corrupt_files_raise_state_error(tmp_path, content):
    store = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    store.path.write_bytes(content)
    with pytest.raises(StateError, match="not a valid ttf state file|too large"):
        store.load()


def test_new_reclaim_tokens_are_256_bit_and_distinct():
    tokens = {new_reclaim_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens)  # 43 base64url chars = 256 bits


def test_unreadable_location_raises_state_error_and_save_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory should be")
    store = TunnelStore(blocker, ENDPOINT, "127.0.0.1:3000")
    with pytest.raises(StateError, match="cannot read"):
        store.load()
    with pytest.raises(OSError):
        store.save("abc", "t")


def test_default_state_dir_follows_xdg():
    assert str(default_state_dir({"XDG_STATE_HOME": "/x/state", "HOME": "/home/u"})) == "/x/state/ttf"
    assert str(default_state_dir({"XDG_STATE_HOME": "relative", "HOME": "/home/u"})) == "/home/u/.local/state/ttf"
    assert str(default_state_dir({"HOME": "/home/u"})) == "/home/u/.local/state/ttf"


def test_config_state_dir_and_new_url(tmp_path):
    env = {"HOME": "/home/u"}
    assert str(parse_config(["-e", ENDPOINT], env=env, cwd=tmp_path).state_dir) == "/home/u/.local/state/ttf"
    config = parse_config(["-e", ENDPOINT, "--new-url"], env=env | {"TTF_STATE_DIR": "/s"}, cwd=tmp_path)
    assert (str(config.state_dir), config.new_url) == ("/s", True)
    assert str(parse_config(["-e", ENDPOINT, "--state-dir", "/c"], env=env | {"TTF_STATE_DIR": "/s"},
                            cwd=tmp_path).state_dir) == "/c"
    assert state_file_name(ENDPOINT, "127.0.0.1:3000") == state_file_name(ENDPOINT, "127.0.0.1:3000")


# ---- the agent with a state dir (in-process) -------------------------------------------

async def test_agent_saves_each_established_tunnel_and_reclaims_it_in_a_new_agent(gateway, local_app, running,
                                                                                   tmp_path):
    _, port = local_app
    config = make_config(gateway, port, state_dir=tmp_path)
    first = running(config)
    await wait_until(lambda: first.of(TunnelEstablished), what="first tunnel")
    store = TunnelStore(tmp_path, gateway.ws_url, f"127.0.0.1:{port}")
    saved = store.load()
    assert (saved.tunnel_id, saved.reclaim_token) == ("tun123", gateway.reservations["tun123"])
    await first.stop()

    gateway.tunnel_id = "fresh"  # a connect without the saved id would get this one
    second = running(config)
    await wait_until(lambda: second.of(TunnelEstablished), what="second tunnel")
    assert gateway.conns[-1].headers["X-Tunnel-Id"] == "tun123"
    assert gateway.conns[-1].headers["X-Tunnel-Reclaim-Token"] == saved.reclaim_token
    assert second.of(TunnelEstablished)[0].tunnel_id == "tun123"
    assert any("reclaiming the saved tunnel tun123" in n.message for n in second.of(Notice))
    assert all(saved.reclaim_token not in n.message for n in second.of(Notice))


async def test_subdomain_takes_precedence_over_saved_state(gateway, local_app, running, tmp_path):
    _, port = local_app
    store = TunnelStore(tmp_path, gateway.ws_url, f"127.0.0.1:{port}")
    store.save("tun123", "reclaim-tun123")
    before = store.path.read_bytes()
    h = running(make_config(gateway, port, state_dir=tmp_path, subdomain="myname"))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel")
    headers = gateway.conns[0].headers
    assert headers["X-Tunnel-Subdomain"] == "myname" and "X-Tunnel-Id" not in headers
    assert store.path.read_bytes() == before  # the saved random-id URL is kept for runs without --subdomain


async def test_refused_saved_reclaim_is_forgotten_and_a_new_id_taken_at_once(gateway, local_app, running, tmp_path):
    _, port = local_app
    store = TunnelStore(tmp_path, gateway.ws_url, f"127.0.0.1:{port}")
    store.save("tun123", "stale-token")
    gateway.reservations["tun123"] = "someone-elses-token"
    gateway.tunnel_id = "fresh"
    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)

    h = running(make_config(gateway, port, state_dir=tmp_path), sleep=no_sleep)
    await wait_until(lambda: h.of(TunnelEstablished), what="a new tunnel")
    assert h.of(TunnelEstablished)[0].tunnel_id == "fresh"
    assert any("saved tunnel tun123 could not be reclaimed (HTTP 409)" in n.message for n in h.of(Notice))
    assert slept == []  # no backoff wait before asking for a new id
    assert "X-Tunnel-Id" not in gateway.conns[-1].headers
    saved = store.load()
    assert saved.tunnel_id == "fresh" and saved.reclaim_token not in ("stale-token", "someone-elses-token")
    assert gateway.reservations["fresh"] == saved.reclaim_token


V1_FILE = {"version": 1, "tunnel_id": "tun123", "reclaim_token": "server-made-token", "endpoint": "",
           "local_target": "", "saved_at": 1_700_000_000.0}


def test_a_version_1_file_is_reported_in_one_line(tmp_path):
    store = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    store.path.write_text(json.dumps(V1_FILE | {"endpoint": ENDPOINT, "local_target": "127.0.0.1:3000"}))
    with pytest.raises(StateError, match="older ttf .* a new public URL will be assigned") as caught:
        store.load()
    assert "\n" not in str(caught.value) and "server-made-token" not in str(caught.value)


async def test_agent_replaces_a_version_1_file_with_a_new_url_and_one_notice(gateway, local_app, running, tmp_path):
    """Tokens saved before agents made their own were also stored by the server in plain text:
    never presented again. The user gets a new URL, one line saying why, and a version 2 file."""
    _, port = local_app
    store = TunnelStore(tmp_path, gateway.ws_url, f"127.0.0.1:{port}")
    store.directory.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps(V1_FILE | {"endpoint": gateway.ws_url, "local_target": f"127.0.0.1:{port}"}))
    gateway.reservations["tun123"] = "server-made-token"
    gateway.tunnel_id = "fresh"
    h = running(make_config(gateway, port, state_dir=tmp_path))
    await wait_until(lambda: h.of(TunnelEstablished), what="tunnel")
    assert h.of(TunnelEstablished)[0].tunnel_id == "fresh"
    assert "X-Tunnel-Id" not in gateway.conns[0].headers
    assert gateway.conns[0].headers["X-Tunnel-Reclaim-Token"] != "server-made-token"
    notices = [n.message for n in h.of(Notice) if "older ttf" in n.message]
    assert len(notices) == 1 and "new public URL" in notices[0]
    saved = json.loads(store.path.read_text())
    assert saved["version"] == 2 and saved["tunnel_id"] == "fresh"
    assert saved["reclaim_token"] == gateway.conns[0].headers["X-Tunnel-Reclaim-Token"]


def test_named_tunnels_are_keyed_by_endpoint_and_name_not_port(tmp_path):
    """A config file's tunnels: two names on the same endpoint + port keep two URLs; a tunnel keeps
    its URL when its port changes; the command line's tunnel keeps the file name it always had."""
    web = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000", "web")
    admin = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000", "admin")
    plain = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3000")
    assert len({web.path, admin.path, plain.path}) == 3
    assert plain.path.name == state_file_name(ENDPOINT, "127.0.0.1:3000") == "tunnel-{}.json".format(
        hashlib.sha256(f"{ENDPOINT}\n127.0.0.1:3000".encode()).hexdigest()[:24])  # what it always was
    web.save("webid", "tw", now=1.0)
    admin.save("adminid", "ta")
    assert (web.load().tunnel_id, admin.load().tunnel_id, plain.load()) == ("webid", "adminid", None)
    assert json.loads(web.path.read_text())["name"] == "web"
    assert json.loads(admin.path.read_text())["name"] == "admin"
    moved = TunnelStore(tmp_path, ENDPOINT, "127.0.0.1:3999", "WEB")  # new port, name in another case
    assert moved.path == web.path and moved.load() == SavedTunnel("webid", "tw", ENDPOINT, "127.0.0.1:3000", 1.0,
                                                                  "web")
    assert TunnelStore(tmp_path, "wss://other.example.test/prod", "127.0.0.1:3000", "web").load() is None
    # a named file copied over an unnamed one (or the reverse) is not taken for it
    plain.path.write_bytes(web.path.read_bytes())
    assert plain.load() is None
    plain.save("plainid", "tp")
    assert "name" not in json.loads(plain.path.read_text())
    web.path.write_bytes(plain.path.read_bytes())
    assert web.load() is None
