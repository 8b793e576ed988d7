"""Task filters and finished-task counts on every backend (the `store`
fixture), against a model computed in Python from every task: each set of
statuses (one, several, all) alone and with a skill, an agent or text; page
by page; the totals; matching_ids; and the finished series and daily
outcomes, which count a DONE task by the attempt that finished it.
"""

from __future__ import annotations

import itertools

import pytest

from fleet.store.schema import TASK_STATUSES

SKILLS = ("alpha", "beta")
AGENTS = ("ann", "bob")


def _fill(store) -> None:
    """Tasks in every status, over two skills and two agents (some assigned
    by name), two of each per (status, skill), ids interleaved."""
    for round_ in range(2):
        for skill in SKILLS:
            for agent in AGENTS:
                def task(tag, assign=False):
                    return store.enqueue(skill, {"tag": tag, "round": round_},
                                         assigned_to=agent if assign else None)
                task("pending")
                task("pending-assigned", assign=True)
                store.cancel(task("cancelled").id)
                for outcome in ("running", "done", "failed", "waiting", "done-twice", "retried"):
                    task(outcome)
                    t = store.claim(agent, [skill])
                    if outcome == "done":
                        store.complete(t.id, t.lease_token, {"ok": 1})
                    elif outcome == "failed":
                        store.fail(t.id, t.lease_token, "boom", retryable=False)
                    elif outcome == "waiting":
                        store.ask_human(t.id, t.lease_token, "which?")
                    elif outcome in ("done-twice", "retried"):  # DONE, retried by an operator
                        store.complete(t.id, t.lease_token, {"ok": 1})
                        store.retry(t.id)
                        if outcome == "done-twice":  # ... and DONE again
                            again = store.claim(agent, [skill])
                            store.complete(again.id, again.lease_token, {"ok": 2})


def _every(store) -> list:
    out, offset = [], 0
    while True:
        page = store.list_tasks(limit=1000, offset=offset)
        out += page.items
        if len(page.items) < 1000:
            return out
        offset += 1000


def _model(tasks, statuses=None, skill=None, agent=None) -> list[int]:
    """Ids newest first, as list_tasks orders them."""
    return [t.id for t in sorted(tasks, key=lambda t: -t.id)
            if (statuses is None or t.status in statuses) and (skill is None or t.skill == skill)
            and (agent is None or agent in (t.worker, t.assigned_to))]


@pytest.fixture
def filled(store):
    _fill(store)
    return store


def test_every_set_of_statuses_with_and_without_skill_and_agent(filled):
    store = filled
    tasks = _every(store)
    assert {t.status for t in tasks} == set(TASK_STATUSES)
    for n in range(1, len(TASK_STATUSES) + 1):
        for statuses in itertools.combinations(TASK_STATUSES, n):
            for skill, agent in itertools.product((None, "beta"), (None, "bob")):
                want = _model(tasks, statuses, skill, agent)
                page = store.list_tasks(status=list(statuses), skill=skill, agent=agent, limit=7)
                label = (statuses, skill, agent)
                assert [t.id for t in page.items] == want[:7], label
                assert page.total == len(want), label
                assert store.matching_ids(status=list(statuses), skill=skill, agent=agent) == sorted(want), label


def test_one_status_as_a_string_and_repeated_statuses(filled):
    store = filled
    tasks = _every(store)
    for status in TASK_STATUSES:
        want = _model(tasks, {status})
        assert [t.id for t in store.list_tasks(status=status, limit=1000).items] == want
        page = store.list_tasks(status=[status, status], limit=1000)
        assert [t.id for t in page.items] == want and page.total == len(want)
    assert store.list_tasks(status=list(TASK_STATUSES)).total == len(tasks)


def test_pages_of_several_statuses_follow_each_other(filled):
    store = filled
    tasks = _every(store)
    for statuses in (["PENDING", "RUNNING", "WAITING_HUMAN"], ["DONE", "FAILED", "CANCELLED"],
                     ["DONE", "PENDING"]):
        for skill in (None, "alpha"):
            want = _model(tasks, statuses, skill)
            got = [t.id for off in range(0, len(want) + 3, 3)
                   for t in store.list_tasks(status=statuses, skill=skill, limit=3, offset=off).items]
            assert got == want, (statuses, skill)
            beyond = store.list_tasks(status=statuses, skill=skill, limit=3, offset=len(want))
            assert beyond.items == [] and beyond.total == len(want)


def test_several_statuses_with_text_and_dates_are_counted(filled):
    store = filled
    tasks = _every(store)
    newest_first = sorted(tasks, key=lambda t: -t.id)
    for statuses in (["DONE", "FAILED", "PENDING"], ["PENDING", "WAITING_HUMAN"]):
        page = store.list_tasks(status=statuses, text="twice", limit=1000)  # the payload's tag
        model = [t.id for t in newest_first if t.status in statuses and t.payload["tag"] == "done-twice"]
        assert [t.id for t in page.items] == model and page.total == len(model), statuses
        newest = max(t.created_at for t in tasks)
        page = store.list_tasks(status=statuses, since=newest, limit=1000)
        model = [t.id for t in newest_first if t.status in statuses and t.created_at >= newest]
        assert [t.id for t in page.items] == model and page.total == len(model), statuses


def test_finished_series_counts_each_finished_task_once_at_its_last_finish(filled):
    store = filled
    tasks = _every(store)
    since = min(t.created_at for t in tasks) - 1
    series = store.finished_series(since, 3600.0, 2)
    for status in ("DONE", "FAILED", "CANCELLED"):
        assert sum(series[status]) == sum(t.status == status for t in tasks), (status, series)
    # tasks DONE twice count once; DONE then retried (PENDING now) not at all
    twice = [t for t in tasks if t.status == "DONE"
             and [a["outcome"] for a in store.attempts(t.id)] == ["done", "done"]]
    retried = [t for t in tasks if t.status != "DONE" and "done" in [a["outcome"] for a in store.attempts(t.id)]]
    assert twice and retried
    assert sum(series["DONE"]) == 2 * 2 * 2 * 2
    day = store.task_outcomes_by_day(since, since + 86400.0)
    assert [(d["done"], d["failed"], d["cancelled"]) for d in day] == [(16, 8, 8)]
    # a window that ends before anything finished counts nothing
    assert store.finished_series(since - 7200, 3600.0, 2) == {s: [0, 0] for s in ("DONE", "FAILED", "CANCELLED")}


def test_unknown_or_empty_status_lists_are_refused(store):
    from fleet.db import InvalidInput

    for bad in ([], ["DONE", "done"], ["DONE", "x' OR '1'='1"]):
        with pytest.raises(InvalidInput, match="status"):
            store.list_tasks(status=bad)
        with pytest.raises(InvalidInput, match="status"):
            store.matching_ids(status=bad)


def test_skill_stats_from_the_kept_counts_match_a_count_of_every_task(filled):
    store = filled
    tasks = _every(store)
    stats = store.skill_stats()
    assert stats == store.skill_stats(since=0)  # task_counts vs counting every row
    for skill in SKILLS:
        mine = [t for t in tasks if t.skill == skill]
        assert stats[skill]["total"] == len(mine)
        assert stats[skill]["counts"] == {s: sum(t.status == s for t in mine)
                                          for s in TASK_STATUSES if any(t.status == s for t in mine)}
        assert stats[skill]["done"] == sum(t.status == "DONE" for t in mine)
