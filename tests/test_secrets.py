"""The secrets file: any character round-trips, writes are atomic with mode
0600, looser modes warn, the environment overrides the file, air-gap mode
reads nothing, and bad names change nothing."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.config import load_config
from fleet.secret_file import (
    LooseSecretsPermissions,
    SecretsError,
    delete_secret,
    get_secret,
    list_secret_keys,
    parse_secrets,
    render_secrets,
    secrets_path,
    set_secret,
)


@pytest.fixture
def cfg(isolated_home):
    return load_config(isolated_home)


def test_default_path_is_home_dot_secrets(cfg):
    assert secrets_path(cfg) == secrets_path({"paths": {"secrets": os.path.expanduser("~/.secrets")}})
    assert str(secrets_path(cfg)).endswith("/user_home/.secrets")


@pytest.mark.parametrize("value", ["plain", "it's got 'quotes'", 'double "q"', "dollar $HOME and `cmd`",
                                   "multi\nline\nvalue", "back\\slash", "  spaces  ", "#not a comment", "x=y=z",
                                   "unicode é ✓"])
def test_any_value_round_trips(cfg, value):
    set_secret(cfg, "API_KEY", value)
    assert get_secret(cfg, "API_KEY") == value


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
                       st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                               min_size=1), max_size=5))
def test_render_parse_round_trip(values):
    assert parse_secrets(render_secrets(values)) == values


def test_file_is_shell_compatible(cfg):
    value = "it's $HOME\nnext line"
    set_secret(cfg, "TRICKY", value)
    out = subprocess.run(["sh", "-c", f'. "{secrets_path(cfg)}"; printf %s "$TRICKY"'], capture_output=True,
                         text=True, check=True).stdout
    assert out == value


def test_write_is_0600_atomic_and_keeps_other_keys(cfg):
    set_secret(cfg, "A", "1")
    set_secret(cfg, "B", "2")
    path = secrets_path(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list_secret_keys(cfg) == ["A", "B"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp files left
    assert delete_secret(cfg, "A") is True
    assert delete_secret(cfg, "A") is False
    assert list_secret_keys(cfg) == ["B"]


def test_loose_mode_warns(cfg):
    set_secret(cfg, "A", "1")
    os.chmod(secrets_path(cfg), 0o644)
    with pytest.warns(LooseSecretsPermissions, match="chmod 600"):
        assert get_secret(cfg, "A") == "1"


def test_environment_overrides_file(cfg, monkeypatch):
    set_secret(cfg, "ANTHROPIC_API_KEY", "from-file")
    assert get_secret(cfg, "ANTHROPIC_API_KEY") == "from-file"
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env")
    assert get_secret(cfg, "ANTHROPIC_API_KEY") == "from-env"
    assert get_secret(cfg, "MISSING") is None


def test_air_gap_mode_does_not_read_the_file(cfg):
    set_secret(cfg, "A", "1")
    gapped = dict(cfg, fleet=dict(cfg["fleet"], air_gap_mode=True))
    assert get_secret(gapped, "A") is None


def test_bad_input_changes_nothing(cfg):
    set_secret(cfg, "GOOD", "v")
    before = secrets_path(cfg).read_bytes()
    for key in ("bad-name", "1ABC", "", "A B"):
        with pytest.raises(SecretsError, match="not valid"):
            set_secret(cfg, key, "x")
    with pytest.raises(SecretsError, match="non-empty"):
        set_secret(cfg, "GOOD", "")
    with pytest.raises(SecretsError, match="NUL"):
        set_secret(cfg, "GOOD", "a\0b")
    assert secrets_path(cfg).read_bytes() == before


def test_hand_written_file_is_read(cfg):
    path = secrets_path(cfg)
    path.write_text("# comment\nexport ONE='1'\nTWO=\"two words\"\nTHREE=3  # trailing\n\n")
    os.chmod(path, 0o600)
    assert {k: get_secret(cfg, k) for k in ("ONE", "TWO", "THREE")} == {"ONE": "1", "TWO": "two words", "THREE": "3"}


def test_unbalanced_quotes_are_a_clear_error(cfg):
    path = secrets_path(cfg)
    path.write_text("export A='oops\n")
    os.chmod(path, 0o600)
    with pytest.raises(SecretsError, match="unbalanced quotes"):
        get_secret(cfg, "A")


def test_operator_lines_survive_set_and_delete(cfg):
    """A hand-kept ~/.secrets is edited one key at a time: comments, `source`
    lines, aliases and shell expansions elsewhere in the file stay byte for byte."""
    path = secrets_path(cfg)
    keep = "# my keys\nsource ~/.other_secrets\nalias ll='ls -l'\n" + 'export PATH="$PATH:/opt/bin"\n'
    path.write_text(keep + "export OLD='x'\n")
    os.chmod(path, 0o600)
    set_secret(cfg, "A_KEY", "hello")
    assert path.read_text() == keep + "export OLD='x'\nexport A_KEY='hello'\n"
    set_secret(cfg, "OLD", "new 'value'")
    quoted = "'new '" + "\\''" + "value" + "'\\''" + "'"
    assert path.read_text() == keep + f"export OLD={quoted}\nexport A_KEY='hello'\n"
    assert get_secret(cfg, "OLD") == "new 'value'"
    assert delete_secret(cfg, "A_KEY") and delete_secret(cfg, "OLD")
    assert path.read_text() == keep


def test_non_utf8_file_is_a_clear_error_and_stays_untouched(cfg):
    path = secrets_path(cfg)
    path.write_bytes(b"export A='\xff\xfe'\n")
    with pytest.raises(SecretsError, match="not UTF-8 text"):
        get_secret(cfg, "A")
    with pytest.raises(SecretsError, match="not UTF-8 text"):
        set_secret(cfg, "B", "1")
    assert path.read_bytes() == b"export A='\xff\xfe'\n"
