"""ttf.toml: parsing, precedence, and errors that name the file, the line and the key path."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from ttf.config import ConfigError, parse_config
from ttf.configfile import KINDS, TOP_KEYS, TUNNEL_KEYS, find_line, key_path, load

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
# three local services, one ttf
endpoint = "wss://ws.example.test/prod"
request-timeout = 40
keep-host = true

[tunnels.web]
port = 3000

[tunnels.api]
port = 8000
host = "::1"
subdomain = "My-Api"
no-rewrite = true
request-timeout = 5

[tunnels.hooks]
port = 4000
endpoint = "ws://127.0.0.1:4510/ws"
max-concurrency = 2
keep-host = false
"""


def write(tmp_path: Path, text: str, name: str = "ttf.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(0o600)
    return path


def error_of(tmp_path: Path, text: str, argv: list[str] | None = None, env: dict | None = None) -> str:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(argv or [], env=env or {}, cwd=tmp_path)
    return str(caught.value)


def test_a_good_file_gives_one_config_per_tunnel_in_file_order(tmp_path):
    write(tmp_path, GOOD)
    plan = load([], env={}, cwd=tmp_path)
    assert plan.source == "ttf.toml" and plan.notes == (  # found, not named: where it sends things is said
        "./ttf.toml found in the working directory sets endpoint wss://ws.example.test/prod, host ::1 for "
        "tunnels.api, endpoint ws://127.0.0.1:4510/ws for tunnels.hooks (you did not name it with --config; "
        "-e/--host and TTF_* override it)",)
    assert load(["--config", "ttf.toml"], env={}, cwd=tmp_path).notes == ()
    web, api, hooks = plan.tunnels
    assert [t.name for t in plan.tunnels] == ["web", "api", "hooks"]
    assert (web.endpoint, web.port, web.host, web.request_timeout, web.keep_host, web.no_rewrite) == (
        "wss://ws.example.test/prod", 3000, "127.0.0.1", 40, True, False)
    assert (api.port, api.host, api.local_target, api.subdomain, api.no_rewrite, api.request_timeout) == (
        8000, "::1", "[::1]:8000", "my-api", True, 5)
    assert (hooks.endpoint, hooks.max_concurrency, hooks.keep_host) == ("ws://127.0.0.1:4510/ws", 2, False)
    # process-wide settings are the same in every tunnel, with the command line's defaults
    assert {(t.inspect, t.json, t.drain_timeout) for t in plan.tunnels} == {(("127.0.0.1", 4045), False, 5.0)}
    assert len({t.state_dir for t in plan.tunnels}) == 1


def test_precedence_tunnel_table_then_command_line_env_dotenv_then_the_file_top(tmp_path):
    write(tmp_path, GOOD, "other.toml")
    (tmp_path / ".env").write_text("TTF_INSPECT_HISTORY=7\nTTF_MAX_CONCURRENCY=9\n")
    plan = load(["--config", "other.toml", "--request-timeout", "12", "--json", "--env-file", ".env"],
                env={"TTF_KEEP_HOST": "false", "TTF_INSPECT": "off"}, cwd=tmp_path)
    web, api, hooks = plan.tunnels
    assert plan.source == "other.toml"
    assert (web.request_timeout, api.request_timeout) == (12, 5)  # the command line beats the top, not the table
    assert (web.keep_host, hooks.keep_host) == (False, False)  # the environment beats the file's top
    assert (web.max_concurrency, hooks.max_concurrency) == (9, 2)  # .env too; the table still wins
    assert all(t.json and t.inspect is None and t.inspect_history == 7 for t in plan.tunnels)
    # TTF_CONFIG names the file like --config does
    assert load([], env={"TTF_CONFIG": str(tmp_path / "other.toml")}, cwd=tmp_path).source == str(
        tmp_path / "other.toml")


def test_without_a_config_file_the_command_line_tunnel_is_exactly_what_it_was(tmp_path):
    argv = ["-e", "wss://x.example/prod", "-p", "3000", "--no-rewrite", "--inspect", "off"]
    plan = load(argv, env={}, cwd=tmp_path)
    assert plan.tunnels == (parse_config(argv, env={}, cwd=tmp_path),)
    assert plan.source is None and plan.notes == () and plan.tunnels[0].name is None


def test_a_ttf_toml_beside_a_command_line_tunnel_is_not_read_and_says_so(tmp_path):
    write(tmp_path, GOOD)
    plan = load(["-e", "ws://h", "-p", "3001"], env={}, cwd=tmp_path)
    assert [(t.name, t.port) for t in plan.tunnels] == [(None, 3001)]
    assert plan.notes and "./ttf.toml not read" in plan.notes[0]


@pytest.mark.parametrize("text,line,message", [
    ("endpoint = 'ws://h'\nverbos = true\n[tunnels.web]\nport = 1\n", 2,
     "ttf.toml:2: verbos: unknown key (did you mean verbose?); the top level takes: "),
    ("endpoint = 'ws://h'\n\n[tunnels.web]\nport = 1\nprot = 2\n", 5,
     "ttf.toml:5: tunnels.web.prot: unknown key (did you mean port?); a tunnel takes: "),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\nno_rewrite = true\n", 4,
     "ttf.toml:4: tunnels.web.no_rewrite: unknown key (did you mean no-rewrite?)"),
    ("endpoint = 'ws://h'\n[tunnels]\nweb = { port = 1, colour = 'red' }\n", 3,
     "ttf.toml:3: tunnels.web.colour: unknown key"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\n\n[tunnels.web.policy]\nbasic-auth = 'a:b'\n", 5,
     "ttf.toml:5: tunnels.web.policy: unknown key"),
    ("endpoint = 'ws://h'\ntunnels.web.port = 1\ntunnels.web.extra.deep = 1\n", 3,
     "ttf.toml:3: tunnels.web.extra: unknown key"),
    ("endpoint = 'ws://h'\n[tunnels.\"api_v2\"]\nport = 1\nbad = 1\n", 4,
     "ttf.toml:4: tunnels.api_v2.bad: unknown key"),
    ("endpoint = 'ws://h'\nport = 3000\n[tunnels.web]\nport = 1\n", 2,
     "ttf.toml:2: port: set per tunnel, in a [tunnels.NAME] table"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\njson = true\n", 4,
     "ttf.toml:4: tunnels.web.json: not a per-tunnel key: it applies to the whole process"),
])
def test_unknown_keys_are_refused_with_file_line_and_key_path(tmp_path, text, line, message):
    error = error_of(tmp_path, text)
    assert error.startswith(message), error
    assert error.startswith(f"ttf.toml:{line}: ")


@pytest.mark.parametrize("text,message", [
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = '3000'\n",
     "ttf.toml:3: tunnels.web.port: expected an integer, got a string ('3000')"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 3000.0\n",
     "ttf.toml:3: tunnels.web.port: expected an integer, got a float (3000.0)"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = true\n",
     "ttf.toml:3: tunnels.web.port: expected an integer, got a boolean (True)"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\nno-rewrite = 'yes'\n",
     "ttf.toml:4: tunnels.web.no-rewrite: expected true or false, got a string ('yes')"),
    ("endpoint = 'ws://h'\ninspect = 4045\n[tunnels.web]\nport = 1\n",
     'ttf.toml:2: inspect: expected a string ("HOST:PORT", "off") or false, got an integer (4045)'),
    ("endpoint = 'ws://h'\ntoken = 12345\n[tunnels.web]\nport = 1\n",
     "ttf.toml:2: token: expected a string, got an integer"),  # a secret's value is never echoed
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\nrequest-timeout = 1979-05-27\n",
     "ttf.toml:4: tunnels.web.request-timeout: expected a number, got a date"),
    ("endpoint = 'ws://h'\n[[tunnels]]\nport = 1\n",
     "ttf.toml:2: tunnels: expected tables ([tunnels.NAME]), got an array"),
    ("endpoint = 'ws://h'\n[tunnels]\nweb = 3000\n",
     "ttf.toml:3: tunnels.web: expected a table of options, got an integer"),
    # values are checked like the command line's, with the key path as the source
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 70000\n", "ttf.toml:3: tunnels.web.port: 70000 is out of range"),
    ("endpoint = 'http://h'\n[tunnels.web]\nport = 1\n", "ttf.toml:1: endpoint: endpoint must start with ws://"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = 1\nsubdomain = 'no_way!'\n",
     "ttf.toml:4: tunnels.web.subdomain: 'no_way!' is not a valid name"),
])
def test_wrong_types_and_bad_values_name_the_line_and_key(tmp_path, text, message):
    error = error_of(tmp_path, text)
    assert error.startswith(message), error
    assert "12345" not in error


def test_duplicate_tunnel_names(tmp_path):
    # the same table twice: TOML itself refuses it, and the error leads with file:line:column
    error = error_of(tmp_path, "endpoint = 'ws://h'\n[tunnels.web]\nport = 1\n\n[tunnels.web]\nport = 2\n")
    assert error.startswith("ttf.toml:5:") and "not valid TOML" in error and "web" in error
    # names differ only in case: they would share a saved URL, so they are refused too
    error = error_of(tmp_path, "endpoint = 'ws://h'\n[tunnels.web]\nport = 1\n[tunnels.Web]\nport = 2\n")
    assert error == ("ttf.toml:4: tunnels.Web: the same name as tunnels.web (line 2); "
                     "names are compared ignoring case")


@pytest.mark.parametrize("text,message", [
    ("endpoint = 'ws://h'\n", "ttf.toml: no tunnels: add a [tunnels.NAME] table"),
    ("endpoint = 'ws://h'\n[tunnels]\n", "ttf.toml: no tunnels"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nhost = 'h'\n",
     "ttf.toml:2: tunnels.web: no port (which local port does this tunnel forward to?)"),
    ("[tunnels.web]\nport = 1\n", "ttf.toml: tunnels.web has no endpoint: set endpoint at the top"),
    ("endpoint = 'ws://h'\n[tunnels.'a.b']\nport = 1\n", "ttf.toml:2: tunnels.\"a.b\": a tunnel name is 1-32"),
    ("endpoint = 'ws://h'\n[tunnels.a]\nport = 1\nsubdomain = 'x'\n[tunnels.b]\nport = 2\nsubdomain = 'X'\n",
     "ttf.toml:7: tunnels.b.subdomain: tunnels.a asks for the same subdomain on the same endpoint"),
    ("endpoint = 'ws://h'\n[tunnels.web]\nport = = 1\n", "ttf.toml:3:8: not valid TOML: "),
])
def test_incomplete_or_broken_files(tmp_path, text, message):
    error = error_of(tmp_path, text)
    assert error.startswith(message), error


def test_missing_unreadable_and_oversized_files(tmp_path):
    with pytest.raises(ConfigError, match=r"^missing\.toml: cannot read the config file: No such file"):
        load(["--config", "missing.toml"], env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=r"^--config: the config file name is empty"):
        load(["--config", ""], env={}, cwd=tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b"endpoint = '\xe9'\n")
    with pytest.raises(ConfigError, match=r"^latin1\.toml: not UTF-8 text"):
        load(["-c", "latin1.toml"], env={}, cwd=tmp_path)
    (tmp_path / "big.toml").write_text("# " + "x" * 1024 * 1024)
    with pytest.raises(ConfigError, match=r"^big\.toml: too large for a config file"):
        load(["-c", "big.toml"], env={}, cwd=tmp_path)
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match=r"^dir\.toml: cannot read the config file"):
        load(["-c", "dir.toml"], env={}, cwd=tmp_path)


@pytest.mark.parametrize("argv,env,where", [
    (["-p", "3000"], {}, "--port"),
    (["--subdomain", "x"], {}, "--subdomain"),
    ([], {"TTF_PORT": "3000"}, "TTF_PORT"),
])
def test_one_tunnels_options_from_outside_the_file_are_refused_while_a_file_is_used(tmp_path, argv, env, where):
    write(tmp_path, GOOD, "f.toml")
    with pytest.raises(ConfigError) as caught:
        load(["--config", "f.toml", *argv], env=env, cwd=tmp_path)
    option = "port" if "port" in where.lower() else "subdomain"
    assert str(caught.value) == (f"{where}: {option} is set per tunnel in f.toml ([tunnels.NAME] {option} = ...) "
                                 "while a config file is used")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_token_in_a_file_others_can_read_is_a_warning(tmp_path):
    path = write(tmp_path, GOOD.replace("keep-host = true", "keep-host = true\ntoken = 'jwt'"))
    assert load(["-c", "ttf.toml"], env={}, cwd=tmp_path).notes == ()
    path.chmod(0o644)
    assert load(["-c", "ttf.toml"], env={}, cwd=tmp_path).notes == (
        "ttf.toml holds a token and others can read it (mode 0644): chmod 600 ttf.toml",)
    assert all(t.token == "jwt" for t in load([], env={}, cwd=tmp_path).tunnels)


def test_find_line_searches_headers_dotted_keys_inline_tables_and_skips_strings():
    text = textwrap.dedent('''\
        note = """
        [tunnels.web]
        port = 1
        """
        tunnels.x.port = 3
        [tunnels . "we b"]   # a comment
        port = 2
        [tunnels]
        y = { host = "h", port = 4 }
        [[tunnels.z]]
        port = 5
        ''')
    assert find_line(text, ("note",)) == 1
    assert find_line(text, ("tunnels", "web")) is None  # only inside the multi-line string
    assert find_line(text, ("tunnels", "x", "port")) == 5
    assert find_line(text, ("tunnels", "x")) == 5  # no header: the first line inside it
    assert find_line(text, ("tunnels", "we b")) == 6
    assert find_line(text, ("tunnels", "we b", "port")) == 7
    assert find_line(text, ("tunnels",)) == 8  # its header wins over a dotted key inside it
    assert find_line(text, ("tunnels", "y", "port")) == 9
    assert find_line(text, ("tunnels", "z")) == 10
    assert find_line(text, ("absent",)) is None
    assert key_path(("tunnels", "we b", "port")) == 'tunnels."we b".port'


def test_every_key_is_documented_in_the_cli_readme():
    """The config file's keys and the README's table stay in step (like the other contract tests)."""
    readme = (ROOT / "cli" / "README.md").read_text()
    section = readme[readme.index("## Several tunnels"):]
    section = section[:section.index("\n## ", 1)]
    for key in KINDS:
        assert f"`{key}`" in section, key
    assert TUNNEL_KEYS <= set(KINDS) and TOP_KEYS <= set(KINDS)



def test_edge_policy_keys_per_tunnel_and_as_defaults(tmp_path):
    from ttf.configfile import load as load_plan

    (tmp_path / "ttf.toml").write_text(
        'endpoint = "ws://h"\ndeny-ip = ["10.0.0.0/8"]\n'
        '[tunnels.hooks]\nport = 4000\nverify-webhook = ["stripe:whsec_x"]\nallow-ip = ["192.0.2.0/24"]\n'
        '[tunnels.web]\nport = 3000\nbasic-auth = ["alice:pw"]\ndeny-ip = []\n'
        '[tunnels.open]\nport = 5000\n')
    hooks, web, plain = load_plan(["--config", "ttf.toml"], env={}, cwd=tmp_path).tunnels
    assert [v.provider for v in hooks.policy.hooks] == ["stripe"] and str(hooks.policy.deny[0]) == "10.0.0.0/8"
    assert web.policy.users[0].matches(b"pw") and web.policy.deny == ()  # the table's value replaces the default
    assert plain.policy.deny and not plain.policy.users


def test_edge_policy_key_errors_name_the_line_and_never_echo_secrets(tmp_path):
    from ttf.configfile import load as load_plan

    (tmp_path / "ttf.toml").write_text('endpoint = "ws://h"\n[tunnels.web]\nport = 3000\n'
                                       'basic-auth = "alice:topsecret"\n')
    with pytest.raises(ConfigError, match=r"ttf.toml:4: tunnels.web.basic-auth: expected an array of strings") as err:
        load_plan(["--config", "ttf.toml"], env={}, cwd=tmp_path)
    assert "topsecret" not in str(err.value)
    (tmp_path / "ttf.toml").write_text('endpoint = "ws://h"\n[tunnels.web]\nport = 3000\n'
                                       'verify-webhook = ["paypal:sekrit"]\n')
    with pytest.raises(ConfigError, match=r"ttf.toml:4: tunnels.web.verify-webhook: unknown webhook provider 'paypal'") \
            as err:
        load_plan(["--config", "ttf.toml"], env={}, cwd=tmp_path)
    assert "sekrit" not in str(err.value)
