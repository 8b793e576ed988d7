"""lead_client secret set/get/list/delete as real subprocesses: file mode 0600,
awkward values round-trip (quotes, newlines, $), stdin and base64 input,
masked listing, and bad input changing nothing."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from tests.fakes.cli_runner import cli

AWKWARD = [
    "plain-value-1234567890",
    "it's \"quoted\" both ways",
    "line one\nline two\n",
    "$HOME and ${PATH} and $(rm -rf /) and `id`",
    "back\\slash \\n not a newline; semi;colon # not a comment",
    "  leading and trailing spaces  ",
    "ünïcødé ✓ 密钥",
]


@pytest.fixture
def home(fleet_home):
    return fleet_home


def secrets_file(home):
    from fleet.config import load_config
    from fleet.secret_file import secrets_path

    return secrets_path(load_config(home))


@pytest.mark.parametrize("value", AWKWARD)
def test_awkward_values_round_trip_through_stdin_and_b64(home, value):
    r = cli(home, "secret", "set", "API_KEY", "-", input=value + "\n")
    assert r.rc == 0, r
    path = secrets_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    r = cli(home, "secret", "get", "API_KEY", "--json")
    assert r.rc == 0 and r.json() == {"key": "API_KEY", "value": value, "source": "file"}
    enc = base64.b64encode(value.encode()).decode()
    assert cli(home, "secret", "set", "OTHER_KEY", enc, "--b64").rc == 0
    assert cli(home, "secret", "get", "OTHER_KEY", "--json").json()["value"] == value
    # plain get prints the value and one newline
    assert cli(home, "secret", "get", "API_KEY").out == value + "\n"


def test_value_argument_list_masks_and_delete(home):
    secret = "sk-ant-0123456789abcdefXYZW"
    assert cli(home, "secret", "set", "ANTHROPIC_API_KEY", secret).rc == 0
    assert cli(home, "secret", "set", "SHORT", "abc").rc == 0
    r = cli(home, "secret", "list")
    assert r.rc == 0 and "ANTHROPIC_API_KEY" in r.out and "SHORT" in r.out
    assert secret not in r.out and "abc" not in r.out and "XYZW" in r.out
    r = cli(home, "secret", "list", "--json")
    items = {i["key"]: i for i in r.json()["secrets"]}
    assert secret not in r.out and items["SHORT"]["masked"].startswith("****")
    assert cli(home, "secret", "delete", "SHORT").rc == 0
    assert cli(home, "secret", "delete", "SHORT").rc == 1
    r = cli(home, "secret", "get", "SHORT")
    assert r.rc == 1 and "not set" in r.err
    assert cli(home, "secret", "get", "ANTHROPIC_API_KEY").out.strip() == secret


def test_environment_overrides_file(home):
    cli(home, "secret", "set", "TOKEN_X", "from-file")
    r = cli(home, "secret", "get", "TOKEN_X", "--json", env={"TOKEN_X": "from-env"})
    assert r.json() == {"key": "TOKEN_X", "value": "from-env", "source": "env"}


def test_bad_input_changes_nothing(home):
    assert cli(home, "secret", "set", "GOOD", "v1").rc == 0
    path = secrets_file(home)
    before = path.read_bytes()
    for args, kwargs in ((("secret", "set", "bad-name", "v"), {}), (("secret", "set", "9LIVES", "v"), {}),
                         (("secret", "set", "GOOD", "-"), {"input": ""}),
                         (("secret", "set", "GOOD", "%%%", "--b64"), {}),
                         (("secret", "get", "no spaces allowed"), {})):
        r = cli(home, *args, **kwargs)
        assert r.rc == 2, (args, r)
    assert path.read_bytes() == before


def test_loose_mode_warns(home):
    cli(home, "secret", "set", "GOOD", "v1")
    path = secrets_file(home)
    os.chmod(path, 0o644)
    r = cli(home, "secret", "list")
    assert r.rc == 0 and "chmod 600" in r.err
    # a write puts the mode back to 0600
    cli(home, "secret", "set", "GOOD", "v2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_air_gap_mode_says_secrets_are_withheld_and_refuses_changes(home):
    """Issue 17 F: in air-gap mode `list`/`get` said "No secrets" / "not set"
    although the file held them, and `set` still wrote."""
    assert cli(home, "secret", "set", "API_KEY", "-", input="kept-value-1234567890\n").rc == 0
    before = secrets_file(home).read_bytes()
    text = (home / "fleet.toml").read_text()
    (home / "fleet.toml").write_text(text.replace("air_gap_mode = false", "air_gap_mode = true", 1))
    r = cli(home, "secret", "list")
    assert r.rc == 0 and "withheld in air-gap mode" in r.out and "no secrets" not in r.out.lower(), r
    doc = cli(home, "secret", "list", "--json").json()
    assert doc["secrets"] == [] and "air-gap" in doc["withheld"]
    r = cli(home, "secret", "get", "API_KEY")
    assert r.rc == 1 and "withheld in air-gap mode" in r.err and "not set" not in r.err, r
    for args in (["set", "API_KEY", "-"], ["set", "OTHER_KEY", "-"], ["delete", "API_KEY"]):
        r = cli(home, "secret", *args, input="new-value-1234567890\n")
        assert r.rc == 1 and "withheld in air-gap mode" in r.err, (args, r)
    assert secrets_file(home).read_bytes() == before  # nothing was written
