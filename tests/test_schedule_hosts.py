"""Schedules and notifications on a fleet of two hosts (two real supervisors,
one PostgreSQL schema): each slot is one task whichever supervisor sees it
first, and each alert is sent once (the holder of the `notify` lock sends).
Skipped, with the reason, where no PostgreSQL server is reachable."""

from __future__ import annotations

from tests.fakes.fleetproc import wait_until
from tests.fakes.net_servers import NetServer
from tests.test_multi_host import two_hosts  # noqa: F401 (a fixture)


def test_two_hosts_enqueue_each_slot_once_and_send_each_alert_once(two_hosts, monkeypatch):  # noqa: F811
    with NetServer() as srv:
        srv.route("POST", "/hook", {})
        monkeypatch.setenv("HOOK_URL", srv.url + "/hook")  # each host's supervisor reads it from its environment
        sections = {"schedule": {"tick": {"skill": "noop", "every": "1s", "payload": {"n": 1}}},
                    "notify": {"hook": {"kind": "webhook", "url_secret": "HOOK_URL"}}}
        sup_a, _ = two_hosts.start("host-a", **sections)
        sup_b, _ = two_hosts.start("host-b", **sections)
        store = two_hosts.store

        def scheduled():
            return [t for t in store.list_tasks(limit=1000).items if t.created_by == "schedule:tick"]

        wait_until(lambda: sum(t.status == "DONE" for t in scheduled()) >= 6, 90, what="six scheduled runs")
        tasks = scheduled()
        assert len({t.idempotency_key for t in tasks}) == len(tasks)
        assert {a["host"] for t in tasks if t.status == "DONE" for a in store.attempts(t.id)} <= {"host-a", "host-b"}

        first = store.raise_alert("critical", "test", "first", dedup_key="one")
        second = store.raise_alert("critical", "test", "second", dedup_key="two")
        wait_until(lambda: {r.json()["alert"]["id"] for r in list(srv.requests)} >= {first, second}, 60,
                   what="both alerts sent")
        sent = [r.json()["alert"]["id"] for r in list(srv.requests)]
        assert sent.count(first) == 1 and sent.count(second) == 1, sent
        assert sup_a.poll() is None and sup_b.poll() is None
        assert not [a for a in store.list_alerts() if a["dedup_key"].startswith("notify_failed")]
