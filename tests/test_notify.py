"""Notifications: the exact Discord, Slack, ntfy and webhook requests checked
by loopback servers; a real supervisor sending alerts at or above
min_severity once per dedup key and cooldown, resolutions, a failing target
retried with backoff and raising one warning alert not sent to itself, and the
deadman heartbeat ping; bad [notify] entries exit 78."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleet.notify import Message, alert_message, build_request, send_message, send_once
from tests.fakes.fleetproc import (  # noqa: F401 (fleet: a fixture)
    REPO,
    env_for,
    fleet,
    wait_until,
    write_config,
)
from tests.fakes.net_servers import NetServer

ALERT = {"id": 7, "severity": "critical", "component": "supervisor", "message": "coder is crash-looping",
         "dedup_key": "flapping:coder", "host": "box", "created_at": 1.0, "occurrences": 1,
         "acked_at": None, "acked_by": None}


# -- payload shapes ------------------------------------------------------------
def test_discord_webhook_payload():
    with NetServer() as srv:
        srv.route("POST", "/api/webhooks/1/tok", b"", status=204)
        send_once(build_request("discord", srv.url + "/api/webhooks/1/tok", alert_message(ALERT, "prod")))
        [req] = srv.requests
    assert req.method == "POST" and req.headers["content-type"] == "application/json"
    assert req.json() == {"content": "**Fleet prod: critical alert: supervisor**\nCRITICAL on box: coder is "
                                     "crash-looping",
                          "username": "Fleet prod", "allowed_mentions": {"parse": []}}


def test_discord_content_is_cut_to_2000_characters():
    req = build_request("discord", "http://x", Message("briefing", "t", "x" * 5000))
    assert len(req["json"]["content"]) == 2000


def test_slack_webhook_payload():
    with NetServer() as srv:
        srv.route("POST", "/services/T/B/X", b"ok", "text/plain")
        send_once(build_request("slack", srv.url + "/services/T/B/X", alert_message(ALERT, "prod", resolved=True)))
        [req] = srv.requests
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"text": "*Fleet prod: resolved: supervisor*\nRESOLVED on box: coder is crash-looping"}


def test_ntfy_publish_request():
    with NetServer() as srv:
        srv.route("POST", "/fleet-alerts", {"id": "x", "event": "message"})
        send_once(build_request("ntfy", srv.url + "/fleet-alerts", alert_message(ALERT, "prod")))
        send_once(build_request("ntfy", srv.url + "/fleet-alerts", alert_message(ALERT, "prod", resolved=True)))
        alert, resolved = srv.requests
    assert alert.body.decode() == "CRITICAL on box: coder is crash-looping"
    assert (alert.headers["title"], alert.headers["priority"], alert.headers["tags"]) == (
        "Fleet prod: critical alert: supervisor", "5", "rotating_light")
    assert (resolved.headers["priority"], resolved.headers["tags"]) == ("3", "white_check_mark")


def test_plain_webhook_payload():
    with NetServer() as srv:
        srv.route("POST", "/hook", {})
        send_once(build_request("webhook", srv.url + "/hook", alert_message(ALERT, "prod")))
        body = srv.requests[0].json()
    assert body["event"] == "alert" and body["fleet"] == "prod" and body["severity"] == "critical"
    assert body["alert"]["dedup_key"] == "flapping:coder" and body["alert"]["id"] == 7
    assert isinstance(body["sent_at"], float)


def test_a_non_2xx_answer_is_a_failure():
    with NetServer() as srv:
        srv.route("POST", "/hook", b"nope", "text/plain", status=500)
        with pytest.raises(RuntimeError, match="HTTP 500"):
            send_once(build_request("webhook", srv.url + "/hook", alert_message(ALERT, "prod")))


# -- configuration ---------------------------------------------------------------
def _check(home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                          cwd=str(REPO), env=env_for(home), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("entry, words", [
    ({"kind": "discord"}, "url_secret is required"),
    ({"kind": "pager", "url_secret": "X"}, "kind"),
    ({"kind": "slack", "url_secret": "not a key"}, "url_secret"),
    ({"kind": "slack", "url_secret": "X", "min_severity": "loud"}, "min_severity"),
])
def test_bad_notify_entries_exit_78_naming_them(isolated_home, entry, words):
    write_config(isolated_home, notify={"ops": {"kind": "slack", "url_secret": "SLACK_URL"}})
    assert _check(isolated_home).returncode == 0
    import tomlkit

    (isolated_home / "fleet.toml").write_text(tomlkit.dumps({"notify": {"broken": entry}}))
    proc = _check(isolated_home)
    assert proc.returncode == 78 and "[notify.broken]" in proc.stderr and words in proc.stderr, proc.stderr


# -- a real supervisor ----------------------------------------------------------
def _secret(home, key, value):
    from fleet.config import load_config
    from fleet.secret_file import set_secret

    set_secret(load_config(home), key, value)


def _posts(srv, path):
    return [r for r in list(srv.requests) if r.path == path]


def test_supervisor_sends_alerts_once_per_key_and_resolutions(fleet):  # noqa: F811
    with NetServer() as srv:
        srv.route("POST", "/discord", b"", status=204)
        write_config(fleet.home)
        _secret(fleet.home, "DISCORD_URL", srv.url + "/discord")
        fleet.start(notify={"ops": {"kind": "discord", "url_secret": "DISCORD_URL", "min_severity": "warning"}})
        store = fleet.store
        wait_until(lambda: store.get_flag("notify:cursor") is not None, what="the notifier's cursor")
        store.raise_alert("info", "test", "below the target's min_severity", dedup_key="low")
        first = store.raise_alert("warning", "test", "disk almost full", dedup_key="disk")
        store.raise_alert("warning", "test", "disk almost full (again)", dedup_key="disk")  # a bump: no send
        wait_until(lambda: _posts(srv, "/discord"), what="the alert at Discord")
        store.ack_alert(first, by="operator")
        store.raise_alert("warning", "test", "disk almost full", dedup_key="disk")  # within the cooldown
        store.raise_alert("critical", "test", "store damaged", dedup_key="damage")
        wait_until(lambda: any("store damaged" in r.json()["content"] for r in _posts(srv, "/discord")),
                   what="the critical alert")
        contents = [r.json()["content"] for r in _posts(srv, "/discord")]
    # in order: the warning once (not the info, not the bump), its resolution, then the critical;
    # the re-raised key within the cooldown is not sent
    assert len(contents) == 3, contents
    assert "WARNING" in contents[0] and "disk almost full" in contents[0]
    assert "RESOLVED" in contents[1] and "acknowledged by operator" in contents[1]
    assert "CRITICAL" in contents[2]
    assert not any("below the target" in c for c in contents)


def test_a_failing_target_is_retried_and_alerts_once_elsewhere(fleet):  # noqa: F811
    """`bad` answers 500 until it is fixed; `good` keeps working. The fleet
    runs tasks meanwhile; `bad` gets its message once it works, its failure is
    one warning alert sent to `good` only, acknowledged (resolution) when
    `bad` works again."""
    broken = {"on": True}
    with NetServer() as srv:
        srv.route("POST", "/good", {})
        srv.route("POST", "/bad", {}, check=lambda seen: (500, b"down") if broken["on"] else None)
        write_config(fleet.home)
        _secret(fleet.home, "GOOD_URL", srv.url + "/good")
        _secret(fleet.home, "BAD_URL", srv.url + "/bad")
        fleet.start(workers={"coder_count": 1},
                    notify={"retry_initial_s": 0.05, "retry_max_s": 0.2, "max_attempts": 1000,
                            "good": {"kind": "webhook", "url_secret": "GOOD_URL"},
                            "bad": {"kind": "webhook", "url_secret": "BAD_URL"}})
        store = fleet.store
        wait_until(lambda: store.get_flag("notify:cursor") is not None, what="the notifier's cursor")
        store.raise_alert("critical", "test", "something broke", dedup_key="broke")
        failure = wait_until(lambda: [a for a in store.list_alerts() if a["dedup_key"] == "notify_failed:bad"],
                             what="the failure alert")[0]
        assert failure["severity"] == "warning" and "bad" in failure["message"]
        wait_until(lambda: len(_posts(srv, "/bad")) >= 3, what="retries of the failing target")
        # the fleet is not held up: a task runs to the end while the target fails
        task = store.enqueue("noop", {"n": 1})
        wait_until(lambda: store.get(task.id).status == "DONE", what="a task while a target fails")
        broken["on"] = False
        wait_until(lambda: not [a for a in store.list_alerts() if a["dedup_key"] == "notify_failed:bad"],
                   what="the failure alert resolved")
        wait_until(lambda: any(r.json()["event"] == "resolved" and r.json()["alert"]["dedup_key"] ==
                               "notify_failed:bad" for r in _posts(srv, "/good")), what="the resolution at good")
        good = [r.json() for r in _posts(srv, "/good")]
        bad_ok = [r.json() for r in _posts(srv, "/bad")]
    assert [g["alert"]["dedup_key"] for g in good] == ["broke", "notify_failed:bad", "notify_failed:bad"]
    assert {b["alert"]["dedup_key"] for b in bad_ok} == {"broke"}  # its own failure never sent to it
    failures = [a for a in store.list_alerts(active_only=False) if a["dedup_key"] == "notify_failed:bad"]
    assert len(failures) == 1 and failures[0]["acked_by"] == "notify"


def test_deadman_heartbeat_is_pinged(fleet):  # noqa: F811
    with NetServer() as srv:
        srv.route("GET", "/ping/abc", b"OK", "text/plain")
        write_config(fleet.home)
        _secret(fleet.home, "HC_URL", srv.url + "/ping/abc")
        fleet.start(notify={"heartbeat_url_secret": "HC_URL", "heartbeat_interval_s": 5})
        wait_until(lambda: len([r for r in list(srv.requests) if r.path == "/ping/abc"]) >= 2, timeout=60,
                   what="two heartbeat pings")


def test_send_message_reports_each_target(isolated_home):
    with NetServer() as srv:
        srv.route("POST", "/s", b"ok", "text/plain")
        cfg = write_config(isolated_home, notify={"slack": {"kind": "slack", "url_secret": "SLACK_URL"},
                                                  "nourl": {"kind": "ntfy", "url_secret": "NTFY_URL"},
                                                  "quiet": {"kind": "slack", "url_secret": "SLACK_URL",
                                                            "briefings": False}})
        _secret(isolated_home, "SLACK_URL", srv.url + "/s")
        out = send_message(cfg, Message("briefing", "Morning", "all well"), event_filter=lambda t: t.briefings)
        assert out == {"slack": "sent", "nourl": "secret NTFY_URL is not set"}
        assert srv.requests[0].json() == {"text": "*Morning*\nall well"}


def test_two_supervisors_on_one_store_send_each_alert_once(store_factory, isolated_home, monkeypatch):
    """Several hosts share the store: the holder of the `notify` lock sends,
    the other stays quiet; each alert goes out once."""
    import time

    from fleet.notify import Notifier

    with NetServer() as srv:
        srv.route("POST", "/hook", {})
        monkeypatch.setenv("HOOK_URL", srv.url + "/hook")
        cfg = write_config(isolated_home, notify={"hook": {"kind": "webhook", "url_secret": "HOOK_URL"}})
        a = store_factory()
        b = store_factory.reopen(a)
        one = Notifier(cfg, a, actor="supervisor@a")
        two = Notifier(cfg, b, actor="supervisor@b")
        try:
            for n in (one, two):
                n.tick()
            ids = [a.raise_alert("warning", "test", f"alert {i}", dedup_key=f"k{i}") for i in range(3)]
            for _ in range(3):
                for n in (one, two):
                    n.next_check = 0.0
                    n.tick()
            wait_until(lambda: len(srv.requests) >= 3, what="three alerts sent")
            time.sleep(0.2)  # (not a timing assertion: lets a wrong duplicate arrive before the count below)
            sent = sorted(r.json()["alert"]["id"] for r in srv.requests)
        finally:
            one.close()
            two.close()
    assert sent == ids
    assert not two.senders  # the second supervisor never sent


def test_air_gap_mode_sends_nothing(isolated_home, monkeypatch):
    with NetServer() as srv:
        srv.route("POST", "/s", b"ok", "text/plain")
        monkeypatch.setenv("SLACK_URL", srv.url + "/s")
        cfg = write_config(isolated_home, fleet={"air_gap_mode": True},
                           notify={"slack": {"kind": "slack", "url_secret": "SLACK_URL"}})
        assert send_message(cfg, Message("briefing", "Morning", "all well")) == {}
        assert srv.requests == []


def test_an_alert_bumped_to_a_higher_severity_is_sent_as_escalated(fleet):  # noqa: F811
    with NetServer() as srv:
        srv.route("POST", "/hook", {})
        write_config(fleet.home)
        _secret(fleet.home, "HOOK_URL", srv.url + "/hook")
        fleet.start(notify={"check_interval_s": 0.1,
                            "pager": {"kind": "webhook", "url_secret": "HOOK_URL", "min_severity": "critical"}})
        store = fleet.store
        wait_until(lambda: store.get_flag("notify:cursor") is not None, what="the notifier's cursor")
        store.raise_alert("warning", "hw", "GPU at 84 C", dedup_key="gpu_hot")  # below the pager's threshold
        store.raise_alert("warning", "hw", "GPU at 85 C", dedup_key="gpu_hot")
        store.raise_alert("critical", "hw", "GPU at 93 C", dedup_key="gpu_hot")  # the same alert, escalated
        got = wait_until(lambda: [r.json() for r in list(srv.requests)], what="the escalation")
        store.raise_alert("critical", "test", "sentinel", dedup_key="sentinel")
        wait_until(lambda: any(r.json()["alert"]["dedup_key"] == "sentinel" for r in list(srv.requests)),
                   what="the sentinel")
        got = [r.json() for r in list(srv.requests)]
    gpu = [g for g in got if g["alert"]["dedup_key"] == "gpu_hot"]
    assert len(gpu) == 1 and gpu[0]["severity"] == "critical" and "93 C" in gpu[0]["text"]
