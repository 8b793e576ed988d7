"""The store's written contract (`fleet/store/contract.py`) holds: each backend
provides every contract method with the same signature, code outside
`fleet/store/` calls nothing else on a store, and every method is documented;
and, on every backend, the task outcome totals are counters that never go
backwards (retries, pruned history).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from fleet.store import Store
from fleet.store.errors import InvalidInput
from fleet.store.contract import (
    CONTRACT_ATTRIBUTES,
    CONTRACT_METHODS,
    NOT_IN_CONTRACT,
    StoreContract,
)

ROOT = Path(__file__).resolve().parent.parent

# How production code names a store: a variable or attribute called `store`
# or `_store` (store, self.store, c.store, ctx().store, fleet.store,
# self._store), or the result of a call that opens one.
STORE_NAMES = frozenset({"store", "_store"})
STORE_FACTORIES = frozenset({"open_store", "shared_store", "_store", "Store"})


# -- the backend checker (used with Store; a second backend is checked the same way)
def _is_sentinel(value) -> bool:
    """A bare object() default: a "leave unchanged" marker. Each backend may
    have its own until it uses `contract.UNSET`, so any two are alike."""
    return type(value) is object


def _same_default(a, b) -> bool:
    if a is inspect.Parameter.empty or b is inspect.Parameter.empty:
        return a is b
    if _is_sentinel(a) or _is_sentinel(b):
        return _is_sentinel(a) and _is_sentinel(b)
    return type(a) is type(b) and a == b


def _describe(p: inspect.Parameter) -> str:
    default = "" if p.default is inspect.Parameter.empty else f"={p.default!r}"
    return f"{p.name}{default} ({p.kind.description})"


def contract_problems(backend: type) -> list[str]:
    """Every way `backend` falls short of the contract: a missing method or
    attribute, or a method whose parameters differ from the contract's in
    name, kind (positional / keyword-only / *args / **kwargs) or default."""
    problems = []
    for name in sorted(CONTRACT_ATTRIBUTES):
        if not hasattr(backend, name):
            problems.append(f"{backend.__name__}.{name}: attribute missing")
    for name in sorted(CONTRACT_METHODS):
        impl = getattr(backend, name, None)
        if impl is None or not callable(impl):
            problems.append(f"{backend.__name__}.{name}: method missing")
            continue
        want = list(inspect.signature(getattr(StoreContract, name)).parameters.values())
        have = list(inspect.signature(impl).parameters.values())
        if len(want) != len(have) or any(
            w.name != h.name or w.kind != h.kind or not _same_default(w.default, h.default)
            for w, h in zip(want, have)
        ):
            problems.append(
                f"{backend.__name__}.{name}: parameters ({', '.join(map(_describe, have))}) "
                f"differ from the contract's ({', '.join(map(_describe, want))})"
            )
    return problems


def test_sqlite_store_provides_every_contract_method_with_its_signature():
    problems = contract_problems(Store)
    assert not problems, "the SQLite Store breaks the contract:\n  " + "\n  ".join(problems)


def test_postgres_store_provides_every_contract_method_with_its_signature():
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed")
    from fleet.store.pg_store import PostgresStore

    problems = contract_problems(PostgresStore)
    assert not problems, "the PostgreSQL store breaks the contract:\n  " + "\n  ".join(problems)
    public = {n for n in dir(PostgresStore) if not n.startswith("_") and callable(getattr(PostgresStore, n))}
    assert public - CONTRACT_METHODS - NOT_IN_CONTRACT == set()


def test_the_checker_catches_a_backend_that_differs():
    class Broken:
        backend = "broken"

        def claim(self, worker, skills=None, *, lease_s=30.0, any_skill=False):  # other default
            ...

        def renew(self, task_id, token, *, lease_s=60.0):  # keyword-only where positional
            ...

        def complete(self, task_id, lease_token, result=None):  # renamed parameter
            ...

    problems = "\n".join(contract_problems(Broken))
    for name in ("claim", "renew", "complete"):
        assert f"Broken.{name}: parameters" in problems
    assert "Broken.enqueue: method missing" in problems


def test_every_public_store_method_is_in_the_contract_or_named_as_outside_it():
    public = {n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    unclassified = public - CONTRACT_METHODS - NOT_IN_CONTRACT
    assert not unclassified, (
        f"public Store methods neither in StoreContract nor in NOT_IN_CONTRACT: {sorted(unclassified)}; "
        "document them in fleet/store/contract.py or make them private"
    )


# -- nothing outside fleet/store/ calls anything else --------------------------------
def production_files() -> list[Path]:
    """Code outside the store: fleet/ (not fleet/store/), scripts/, launcher/."""
    files = [p for p in (ROOT / "fleet").rglob("*.py") if (ROOT / "fleet" / "store") not in p.parents]
    files += sorted((ROOT / "scripts").glob("*.py"))
    if (ROOT / "launcher").is_dir():
        files += sorted((ROOT / "launcher").rglob("*.py"))
    return sorted(files)


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id
        if isinstance(func, ast.Attribute):
            return func.attr
    return None


def _names_store(node: ast.AST) -> bool:
    """An expression that is a store by its name or by the call that made it."""
    if isinstance(node, ast.Name):
        return node.id in STORE_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in STORE_NAMES
    return _call_name(node) in STORE_FACTORIES


def store_uses(path: Path) -> list[tuple[str, int, str]]:
    """(attribute, line, receiver) for every attribute used on a store in one
    file. A receiver is a store when it is named like one (see STORE_NAMES),
    is a call that opens one, or was assigned the result of such a call in
    this file (e.g. `self.q = Store(...)`); for the last kind, which may be
    a stand-in that is sometimes another queue (the benchmarks' adapters),
    only names the Store class has are counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _call_name(node.value) in STORE_FACTORIES:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {ast.unparse(t) for t in targets if isinstance(t, (ast.Name, ast.Attribute))}
    bound -= STORE_NAMES
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        receiver = node.value
        by_binding = ast.unparse(receiver) in bound and hasattr(Store, node.attr)
        if _names_store(receiver) or by_binding:
            out.append((node.attr, node.lineno, ast.unparse(receiver)))
    return out


def test_scan_sees_the_store_calls_it_must():
    """The scan is not vacuous: it finds calls we know are there."""
    worker = {attr for attr, _, _ in store_uses(ROOT / "fleet" / "worker.py")}
    assert {"claim", "renew", "fail", "wait_for_work"} <= worker
    web = {attr for p in (ROOT / "fleet" / "web").glob("*.py") for attr, _, _ in store_uses(p)}
    assert {"list_tasks", "counts", "backend"} <= web


def test_scan_flags_each_kind_of_store_receiver(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f(cfg, ctx):\n"
        "    store = open_store(cfg)\n"
        "    store.load_synthetic_history(10)\n"
        "    ctx().store.claim_query_plan()\n"
        "    shared_store(cfg).task_table_digest()\n"
        "    callback = ctx.store.record_event\n"
        "    self.q = Store(cfg)\n"
        "    self.q.next_available_at()\n"
        "    self.q.put(1)\n"  # another queue's method on a benchmark adapter: not a Store name
        "    index.checkpoint()\n",  # not a store at all
        encoding="utf-8",
    )
    found = {(attr, line) for attr, line, _ in store_uses(sample)}
    assert found == {("load_synthetic_history", 3), ("claim_query_plan", 4), ("task_table_digest", 5),
                     ("record_event", 6), ("next_available_at", 8)}


def test_code_outside_the_store_uses_only_the_contract():
    allowed = CONTRACT_METHODS | CONTRACT_ATTRIBUTES
    offenders = []
    for path in production_files():
        for attr, line, receiver in store_uses(path):
            if attr not in allowed:
                hint = " (a test/benchmark-only helper: move it out)" if attr in NOT_IN_CONTRACT else ""
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {receiver}.{attr}{hint}")
    assert not offenders, (
        "code outside fleet/store/ uses store members that are not in StoreContract "
        "(fleet/store/contract.py):\n  " + "\n  ".join(offenders)
    )


# -- every contract method is documented ---------------------------------------------
@pytest.mark.parametrize("name", sorted(CONTRACT_METHODS))
def test_contract_method_is_documented(name):
    doc = inspect.getdoc(getattr(StoreContract, name)) or ""
    assert len(doc) >= 80, f"StoreContract.{name} needs a docstring: arguments, result, errors, atomicity"
    for section in ("Errors:", "Atomicity:"):
        assert section in doc, f"StoreContract.{name}'s docstring has no {section!r} section"
    named = {e for e in ("StoreUnavailable", "InvalidInput", "NotFound", "LeaseLost", "InvalidTransition")
             if e in doc}
    assert named or "Errors: none" in doc, f"StoreContract.{name} names none of the store's errors"


def test_writes_say_how_they_behave_under_concurrent_writers():
    """Each method that takes a lease token or changes shared state in a
    read-check-write says what holds with many writers at once."""
    racy = {"enqueue", "enqueue_many", "claim", "renew", "complete", "complete_and_claim", "fail",
            "release", "ask_human", "answer", "cancel", "acknowledge_cancel", "retry",
            "reap_expired_leases", "recover_worker_tasks", "raise_alert", "ack_alert", "acquire_lock",
            "admit_provider_request", "reserve_budget", "record_model_call", "inbox", "heartbeat"}
    assert racy <= CONTRACT_METHODS
    missing = [n for n in sorted(racy) if "Concurrency:" not in (inspect.getdoc(getattr(StoreContract, n)) or "")]
    assert not missing, f"no 'Concurrency:' section in: {missing}"


def test_helpers_outside_the_contract_are_not_in_it():
    assert not NOT_IN_CONTRACT & CONTRACT_METHODS
    assert not {"load_synthetic_history", "task_table_digest", "claim_query_plan"} & set(dir(Store))  # moved out


def test_a_store_is_an_instance_of_the_contract(tmp_path):
    store = Store(tmp_path / "fleet.db")
    try:
        assert isinstance(store, StoreContract)
    finally:
        store.close()


# -- behaviour, on every backend -------------------------------------------------
def _finish(store, skill: str, ok: bool) -> int:
    task = store.enqueue(skill, {}, max_attempts=1)
    claimed = store.claim("w1", [skill])
    assert claimed is not None and claimed.id == task.id
    if ok:
        store.complete(claimed.id, claimed.lease_token, {"ok": True})
    else:
        store.fail(claimed.id, claimed.lease_token, "boom", retryable=False)
    return task.id


def test_outcome_totals_are_counters_that_survive_retries_and_pruned_history(store, store_factory):
    assert store.task_outcome_totals() == {}
    done = [_finish(store, "noop", True) for _ in range(3)]
    failed = [_finish(store, "noop", False) for _ in range(2)]
    _finish(store, "other", False)
    store.enqueue("noop", {})  # pending: counted nowhere
    expected = {"noop": {"completed": 3, "failed": 2}, "other": {"completed": 0, "failed": 1}}
    assert store.task_outcome_totals() == expected

    store.retry(failed[0])  # FAILED -> PENDING: the failure happened, the counter keeps it
    assert store.task_outcome_totals() == expected
    assert store.counts()["FAILED"] == 2

    # history pruned by hand (as any pruning would): finished rows deleted
    ids = ", ".join(str(i) for i in [*done[:2], failed[1]])
    store_factory.execute_raw(store, f"DELETE FROM task_attempts WHERE task_id IN ({ids})")
    store_factory.execute_raw(store, f"DELETE FROM tasks WHERE id IN ({ids})")
    assert store.counts()["DONE"] == 1
    assert store.task_outcome_totals() == expected

    claimed = store.claim("w1", ["noop"])  # the retried task runs again and completes this time
    store.complete(claimed.id, claimed.lease_token, None)
    assert store.task_outcome_totals() == {"noop": {"completed": 4, "failed": 2},
                                           "other": {"completed": 0, "failed": 1}}


def test_usage_series_buckets_requests_tokens_and_cost_per_day(store):
    """The Usage page's cost-per-day and tokens charts: one entry per day,
    oldest first, empty days as zeros, rows outside the window left out."""
    day = 86400.0
    since = 1_700_000_000.0
    row = {"skill": "noop", "provider": "claude", "model": "m", "success": True}
    for ts, tin, tout, cost in ((since + 10, 100, 50, 0.25), (since + 20, 1, 2, 0.5),
                                (since + 2 * day + 5, 7, 3, 1.0), (since - 5, 999, 999, 9.0),
                                (since + 3 * day, 999, 999, 9.0)):
        store.record_model_call({**row, "ts": ts, "input_tokens": tin, "output_tokens": tout, "cost_usd": cost})
    series = store.usage_series(since, day, 3)
    assert [s["start"] for s in series] == [since, since + day, since + 2 * day]
    assert [(s["requests"], s["input_tokens"], s["output_tokens"]) for s in series] == [(2, 101, 52), (0, 0, 0),
                                                                                          (1, 7, 3)]
    assert [round(s["cost_usd"], 6) for s in series] == [0.75, 0.0, 1.0]
    with pytest.raises(InvalidInput):
        store.usage_series(since, 0, 3)


def test_messages_page_back_with_before_id_and_filter_by_agent(store):
    """The Messages page: pages further back (`before_id`) and one agent's
    messages, sent or received."""
    ids = [store.send_message("a" if i % 2 else "b", "c" if i % 3 else "a", f"m{i}") for i in range(10)]
    newest = store.messages(limit=4)
    assert [m["id"] for m in newest] == ids[-4:]
    older = store.messages(limit=4, before_id=newest[0]["id"])
    assert [m["id"] for m in older] == ids[2:6]
    mine = store.messages(agent="a", limit=100)
    assert mine and all("a" in (m["sender"], m["recipient"]) for m in mine)
    assert {m["id"] for m in mine} == {ids[i] for i in range(10) if i % 2 or not i % 3}
