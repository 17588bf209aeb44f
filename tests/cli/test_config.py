"""Options, TTF_* environment, .env file, validation."""

from __future__ import annotations

import pytest

from ttf.config import ConfigError, parse_config, read_dotenv


def test_defaults_match_the_original(tmp_path):
    c = parse_config(["-e", "wss://x.example/prod"], env={}, cwd=tmp_path)
    assert (c.port, c.host, c.connect_timeout, c.request_timeout, c.max_concurrency) == (3000, "127.0.0.1", 10, 900, 64)
    assert c.token is None and not c.json and not c.verbose and not c.keep_host and not c.no_rewrite
    assert c.heartbeat_interval == 30 and c.renew_after == 110 * 60


def test_command_line_beats_env_beats_dotenv(tmp_path):
    (tmp_path / ".env").write_text("TTF_ENDPOINT=wss://dotenv/x\nTTF_PORT=4000\nTTF_TOKEN=\"from dotenv\"\nOTHER=1\n")
    env = {"TTF_PORT": "5000"}
    c = parse_config(["--env-file", ".env"], env=env, cwd=tmp_path)
    assert (c.endpoint, c.port, c.token) == ("wss://dotenv/x", 5000, "from dotenv")
    c = parse_config(["-p", "6000", "-t", "cli"], env=env | {"TTF_ENV_FILE": ".env"}, cwd=tmp_path)
    assert (c.endpoint, c.port, c.token) == ("wss://dotenv/x", 6000, "cli")


def test_a_dotenv_in_the_working_directory_is_read_only_when_named(tmp_path):
    """A repository's .env must not choose where the user's token goes (issue 30, item 2)."""
    (tmp_path / ".env").write_text("TTF_ENDPOINT=ws://theirs.example/x\nTTF_INSPECT=off\n")
    with pytest.raises(ConfigError) as caught:
        parse_config(["-t", "mine"], env={}, cwd=tmp_path)
    assert str(caught.value) == (
        "no endpoint: pass -e/--endpoint wss://... or set TTF_ENDPOINT (./.env not read (TTF_ENDPOINT, "
        "TTF_INSPECT): a .env file is read only when named (--env-file .env or TTF_ENV_FILE=.env))")
    c = parse_config(["-e", "wss://mine.example/x", "-t", "mine"], env={}, cwd=tmp_path)
    assert (c.endpoint, c.inspect) == ("wss://mine.example/x", ("127.0.0.1", 4045))  # nothing came from it
    # named: on the command line or in the process environment (never by a .env itself)
    (tmp_path / "team.env").write_text("TTF_ENDPOINT=ws://team.example/x\nTTF_ENV_FILE=.env\nTTF_PORT=9\n")
    assert parse_config(["--env-file", "team.env"], env={}, cwd=tmp_path).endpoint == "ws://team.example/x"
    c = parse_config([], env={"TTF_ENV_FILE": str(tmp_path / "team.env")}, cwd=tmp_path)
    assert (c.endpoint, c.port, c.inspect) == ("ws://team.example/x", 9, ("127.0.0.1", 4045))
    with pytest.raises(ConfigError, match=r"^--env-file: nope.env: no such file$"):
        parse_config(["--env-file", "nope.env"], env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"^TTF_ENV_FILE: the .env file name is empty$"):
        parse_config(["-e", "ws://h"], env={"TTF_ENV_FILE": " "}, cwd=tmp_path)


def test_env_flags_and_hidden_knobs(tmp_path):
    env = {"TTF_ENDPOINT": "ws://h", "TTF_JSON": "true", "TTF_KEEP_HOST": "1", "TTF_HEARTBEAT_INTERVAL": "0.5"}
    c = parse_config(["--renew-after", "12"], env=env, cwd=tmp_path)
    assert c.json and c.keep_host and c.heartbeat_interval == 0.5 and c.renew_after == 12
    assert parse_config(["--no-rewrite"], env=env, cwd=tmp_path).no_rewrite
    assert parse_config([], env={**env, "TTF_NO_REWRITE": "yes"}, cwd=tmp_path).no_rewrite
    with pytest.raises(ConfigError, match="TTF_JSON: 'maybe' is not a boolean"):
        parse_config([], env={**env, "TTF_JSON": "maybe"}, cwd=tmp_path)


def test_dotenv_syntax(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# comment\n\nexport A=1\nB = 'two words'\nC=x # trailing\nnot a pair\nD=\"#hash\"\n")
    assert read_dotenv(path) == {"A": "1", "B": "two words", "C": "x", "D": "#hash"}
    assert read_dotenv(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "argv,message",
    [
        (["-e", "ftp://h"], "ws:// or wss://"),
        (["-e", "ws:///path"], "has no host"),
        (["-e", "ws://h:0"], "port 0"),
        (["-e", "ws://h", "--host", "a b"], "not a host"),
        (["-e", "ws://h", "--subdomain", "no_underscores!"], "not a valid name"),
        (["-e", "ws://h", "--connect-timeout", "nan"], "out of range"),
        (["-e", "ws://h", "-p", "0"], "out of range"),
    ],
)
def test_bad_values(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(argv, env={}, cwd=tmp_path)


def test_ipv6_local_target(tmp_path):
    c = parse_config(["-e", "ws://h", "--host", "[::1]", "-p", "8080"], env={}, cwd=tmp_path)
    assert c.host == "::1" and c.local_target == "[::1]:8080"


def test_rewrite_json_is_asked_for_at_connect_and_contradicts_no_rewrite(tmp_path):
    from ttf.handshake import connect_headers
    env = {"TTF_ENDPOINT": "ws://h"}
    assert "X-Tunnel-Rewrite" not in connect_headers(parse_config([], env=env, cwd=tmp_path))
    wanted = parse_config(["--rewrite-json"], env=env, cwd=tmp_path)
    assert wanted.rewrite_json and connect_headers(wanted)["X-Tunnel-Rewrite"] == "json"
    assert parse_config([], env={**env, "TTF_REWRITE_JSON": "1"}, cwd=tmp_path).rewrite_json
    with pytest.raises(ConfigError, match="contradict"):
        parse_config(["--rewrite-json", "--no-rewrite"], env=env, cwd=tmp_path)


def test_edge_policy_options_repeat_and_come_from_env(tmp_path):
    from httptunnel import policy

    c = parse_config(["-e", "ws://h", "--basic-auth", "alice:pw one", "--basic-auth", "bob:pw:two",
                      "--allow-ip", "10.0.0.0/8", "--deny-ip", "10.1.0.0/16", "--deny-ip", "2001:db8::/32",
                      "--verify-webhook", "stripe:whsec_abc", "--request-header-add", "X-A: 1",
                      "--request-header-remove", "Cookie", "--response-header-add", "X-Frame-Options: DENY",
                      "--response-header-remove", "Server"], env={}, cwd=tmp_path)
    p = c.policy
    assert [u.name for u in p.users] == ["alice", "bob"] and p.users[1].matches(b"pw:two")
    assert [str(n) for n in p.deny] == ["10.1.0.0/16", "2001:db8::/32"] and p.hooks[0].provider == "stripe"
    assert p.request_add == (("x-a", "1"),) and p.response_remove == ("server",)
    env = {"TTF_ENDPOINT": "ws://h", "TTF_ALLOW_IP": "10.0.0.0/8, 192.0.2.0/24",
           "TTF_BASIC_AUTH": "a:x,y\nb:z", "TTF_VERIFY_WEBHOOK": "github:s"}
    p = parse_config([], env=env, cwd=tmp_path).policy
    assert [str(n) for n in p.allow] == ["10.0.0.0/8", "192.0.2.0/24"]
    assert [u.name for u in p.users] == ["a", "b"] and p.users[0].matches(b"x,y")
    assert parse_config(["--allow-ip", "127.0.0.1"], env=env, cwd=tmp_path).policy.allow[0].prefixlen == 32
    assert parse_config(["-e", "ws://h"], env={}, cwd=tmp_path).policy is None
    assert policy.from_header(policy.to_header(p)) == p


@pytest.mark.parametrize("argv, message", [
    (["--basic-auth", "nocolon"], "--basic-auth: basic auth must be USER:PASS"),
    (["--verify-webhook", "twilio:x"], "--verify-webhook: unknown webhook provider 'twilio'"),
    (["--allow-ip", "10.0.0.300"], "--allow-ip: '10.0.0.300' is not an IP address or CIDR"),
    (["--response-header-add", "Content-Length: 5"], "belongs to the tunnel"),
    ([x for i in range(11) for x in ("--basic-auth", f"u{i}:p")], "--basic-auth: at most 10 entries"),
    (["--basic-auth", "a:1", "--basic-auth", "a:2"], "edge policy: basic auth: a user name appears twice"),
])
def test_a_bad_policy_is_one_readable_line(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_config(["-e", "ws://h", *argv], env={}, cwd=tmp_path)
    assert "\n" not in str(err.value)


def test_the_policy_goes_in_every_connect_header_set(tmp_path):
    from httptunnel import policy
    from ttf.handshake import connect_headers

    c = parse_config(["-e", "ws://h", "--deny-ip", "10.0.0.0/8"], env={}, cwd=tmp_path)
    assert policy.from_header(connect_headers(c)[policy.HEADER]) == c.policy
    assert policy.HEADER not in connect_headers(parse_config(["-e", "ws://h"], env={}, cwd=tmp_path))
