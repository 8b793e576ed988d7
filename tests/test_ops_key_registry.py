"""The key registry (keys_registry.toml) and rotation, on real processes:
`secret set` records provider, use, creation and rotation without the value;
`secret rotate` takes the new value from stdin and records the rotation (and
refuses what is no rotation); `secret delete` drops the entry; each change
leaves an audit event naming the key only. The `secret_rotate` skill, run by
a real worker, reports the keys past their period and raises one warning
alert, with the secrets file made unreadable to prove it reads no value."""

from __future__ import annotations

import datetime
import time
import tomllib
from pathlib import Path

from fleet.config import load_config
from fleet.db import open_store
from fleet.secret_file import parse_secrets
from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import start_worker, stop, write_config

FIRST = "sk-ant-first-value-0123456789"
SECOND = "sk-ant-second-value-9876543210"


def _registry(home: Path) -> dict:
    return tomllib.loads((home / "keys_registry.toml").read_text())["keys"]


def _secrets(home: Path) -> dict:
    return parse_secrets((Path(home).parent / "user_home" / ".secrets").read_text())


def test_set_rotate_delete_keep_the_registry_and_the_audit(isolated_home):
    home = isolated_home
    before = time.time()
    r = cli(home, "secret", "set", "ANTHROPIC_API_KEY", "-", "--json", input=FIRST + "\n")
    assert r.rc == 0, r
    assert r.json()["registry"]["provider"] == "claude"
    r = cli(home, "secret", "set", "BRAVE_API_KEY", "brave-key-value-1234", "--rotation-days", "30")
    assert r.rc == 0, r
    r = cli(home, "secret", "set", "CUSTOM_TOKEN", "custom-value-12345678", "--provider", "acme",
            "--used-by", "scripts/sync.sh", "--used-by", "cron")
    assert r.rc == 0, r
    reg = _registry(home)
    claude = reg["ANTHROPIC_API_KEY"]
    assert claude["provider"] == "claude" and claude["used_by"] == ["providers.claude"]
    assert claude["rotation_days"] == 90 and claude["rotations"] == 0
    created = claude["created_at"].timestamp()
    assert before - 1 <= created <= time.time() + 1 and claude["rotated_at"] == claude["created_at"]
    assert reg["BRAVE_API_KEY"]["provider"] == "brave" and reg["BRAVE_API_KEY"]["rotation_days"] == 30
    assert reg["BRAVE_API_KEY"]["used_by"] == ["skills.web_search (brave)"]
    assert reg["CUSTOM_TOKEN"]["provider"] == "acme" and reg["CUSTOM_TOKEN"]["used_by"] == ["scripts/sync.sh", "cron"]
    text = (home / "keys_registry.toml").read_text()
    for value in (FIRST, "brave-key-value-1234", "custom-value-12345678"):
        assert value not in text
    assert (home / "keys_registry.toml").stat().st_mode & 0o777 == 0o600
    # an operator's comment in the registry survives the next write
    (home / "keys_registry.toml").write_text(text + "# kept: rotate the brave key with the team\n")

    time.sleep(1.1)  # the registry keeps whole seconds: let the rotation time differ from the creation
    r = cli(home, "secret", "rotate", "ANTHROPIC_API_KEY", "--json", input=SECOND + "\n")
    assert r.rc == 0, r
    assert r.json()["registry"]["rotations"] == 1
    assert _secrets(home)["ANTHROPIC_API_KEY"] == SECOND
    claude = _registry(home)["ANTHROPIC_API_KEY"]
    assert claude["rotations"] == 1 and claude["rotated_at"] > claude["created_at"]
    assert claude["created_at"].timestamp() == created
    assert "# kept: rotate the brave key with the team" in (home / "keys_registry.toml").read_text()

    same = cli(home, "secret", "rotate", "ANTHROPIC_API_KEY", input=SECOND + "\n")
    assert same.rc == 1 and "already stored" in same.err
    empty = cli(home, "secret", "rotate", "ANTHROPIC_API_KEY", input="")
    assert empty.rc == 2
    unknown = cli(home, "secret", "rotate", "NOT_SET_KEY", input="whatever-123456\n")
    assert unknown.rc == 1 and "nothing to rotate" in unknown.err
    assert _registry(home)["ANTHROPIC_API_KEY"]["rotations"] == 1  # the refusals changed nothing
    assert _secrets(home)["ANTHROPIC_API_KEY"] == SECOND

    assert cli(home, "secret", "delete", "CUSTOM_TOKEN").rc == 0
    assert "CUSTOM_TOKEN" not in _registry(home)

    listed = cli(home, "secret", "list", "--json").json()
    rows = {s["key"]: s for s in listed["secrets"]}
    assert rows["ANTHROPIC_API_KEY"]["registry"]["rotations"] == 1
    assert rows["ANTHROPIC_API_KEY"]["registry"]["overdue"] is False

    audit = cli(home, "audit", "--json")
    assert audit.rc == 0, audit
    got = [(e["action"], e["detail"]) for e in audit.json()["items"]]
    assert got == [("secret_delete", {"key": "CUSTOM_TOKEN"}), ("secret_rotate", {"key": "ANTHROPIC_API_KEY"}),
                   ("secret_set", {"key": "CUSTOM_TOKEN"}), ("secret_set", {"key": "BRAVE_API_KEY"}),
                   ("secret_set", {"key": "ANTHROPIC_API_KEY"})]
    for value in (FIRST, SECOND, "brave-key-value-1234"):
        assert value not in audit.out
        assert value.encode() not in Path(home / "fleet.db").read_bytes()


def _age_entry(home: Path, key: str, rotated: str, days: int) -> None:
    import tomlkit

    doc = tomlkit.parse((home / "keys_registry.toml").read_text())
    doc["keys"][key]["rotated_at"] = tomlkit.item(datetime.datetime.fromisoformat(rotated))
    doc["keys"][key]["rotation_days"] = days
    (home / "keys_registry.toml").write_text(tomlkit.dumps(doc))


def test_secret_rotate_skill_reports_overdue_keys_without_reading_values(isolated_home):
    home = isolated_home
    for key, value in (("ANTHROPIC_API_KEY", FIRST), ("BRAVE_API_KEY", "brave-key-value-1234"),
                       ("FRESH_TOKEN", "fresh-value-12345678")):
        assert cli(home, "secret", "set", key, value).rc == 0
    _age_entry(home, "ANTHROPIC_API_KEY", "2020-01-01T00:00:00+00:00", 90)
    _age_entry(home, "BRAVE_API_KEY", "2026-01-01T00:00:00+00:00", 30)
    # From here the secrets file cannot be read at all (a folder where the file was):
    # a skill that touched a value would fail.
    secrets_dir = home / "no-secrets-here"
    secrets_dir.mkdir()
    write_config(home, workers={"security": 1}, affinity={"security": ["secret_rotate"]},
                 paths={"secrets": str(secrets_dir)})
    worker = start_worker(home, "security", "security_1")
    try:
        r = cli(home, "dispatch", "secret_rotate", "{}", "--wait", "--timeout", "60", "--json")
        assert r.rc == 0, r
        result = r.json()["task"]["result"]
        assert result["checked"] == 3
        assert [e["key"] for e in result["overdue"]] == ["ANTHROPIC_API_KEY", "BRAVE_API_KEY"]
        assert result["overdue"][0]["provider"] == "claude" and result["overdue"][0]["overdue_days"] > 2000
        alerts = cli(home, "alerts", "--json").json()["alerts"]
        mine = [a for a in alerts if a["component"] == "secret_rotate"]
        assert len(mine) == 1 and mine[0]["severity"] == "warning" and mine[0]["id"] == result["alert_id"]
        assert "ANTHROPIC_API_KEY" in mine[0]["message"] and "BRAVE_API_KEY" in mine[0]["message"]
        assert "FRESH_TOKEN" not in mine[0]["message"]
        # a second check bumps the same alert instead of opening another
        again = cli(home, "dispatch", "secret_rotate", '{"action": "check"}', "--wait", "--json").json()
        assert again["task"]["result"]["alert_id"] == result["alert_id"]
        # a requested rotation of one key: an alert telling the operator what to run
        asked = cli(home, "dispatch", "secret_rotate", '{"action": "rotate", "key": "FRESH_TOKEN"}',
                    "--wait", "--json").json()["task"]
        assert asked["status"] == "DONE", asked
        store = open_store(load_config(home))
        try:
            rotate_alert = [a for a in store.list_alerts() if a["dedup_key"] == "secret_rotate:rotate:FRESH_TOKEN"]
        finally:
            store.close()
        assert len(rotate_alert) == 1 and "secret rotate FRESH_TOKEN" in rotate_alert[0]["message"]
        bad = cli(home, "dispatch", "secret_rotate", '{"action": "rotate", "key": "NOPE"}', "--wait", "--json")
        assert bad.rc == 1 and "not in" in bad.json()["task"]["error"]
        # the overdue keys rotated (the registry edited as `secret rotate` would: the file is unreadable now),
        # the next check finds nothing overdue and closes its warning
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
        _age_entry(home, "ANTHROPIC_API_KEY", now, 90)
        _age_entry(home, "BRAVE_API_KEY", now, 30)
        clean = cli(home, "dispatch", "secret_rotate", "{}", "--wait", "--json").json()["task"]["result"]
        assert clean["overdue"] == [] and clean["alert_id"] is None
        still = [a for a in cli(home, "alerts", "--json").json()["alerts"] if a["id"] == result["alert_id"]]
        assert still == []
    finally:
        stop(worker)


def test_backup_keeps_the_registry_and_restore_brings_it_back(isolated_home):
    home = isolated_home
    assert cli(home, "secret", "set", "ANTHROPIC_API_KEY", FIRST).rc == 0
    made = cli(home, "backup", "--json")
    assert made.rc == 0, made
    info = made.json()
    assert info["keys_registry"] is True
    copied = Path(info["path"]) / "keys_registry.toml"
    assert copied.read_text() == (home / "keys_registry.toml").read_text() and FIRST not in copied.read_text()
    (home / "keys_registry.toml").unlink()
    restored = cli(home, "restore", info["id"], "--json")
    assert restored.rc == 0, restored
    assert _registry(home)["ANTHROPIC_API_KEY"]["provider"] == "claude"
