"""The code_index skill (AST index, incremental by file hash) and the backup skill,
run directly and through a real worker process."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from fleet.config import load_config
from fleet.db import open_store
from fleet.skills import code_index
from fleet.skills._common import SkillError
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config

LOG = logging.getLogger("test")

SAMPLE = textwrap.dedent('''
    """Sample module."""
    import functools

    def top(a: int, b: str = "x", *args, key=None, **kw) -> bool:
        """Top-level function."""
        def inner():
            pass
        return True

    class Base:
        pass

    @functools.total_ordering
    class Thing(Base, metaclass=type):
        """A thing."""

        def method(self, x):
            """Does x."""

        async def amethod(self) -> None:
            pass

        class Nested:
            def deep(self):
                pass

    if True:
        def conditional():
            pass
''')


def _records(cfg):
    path = load_config(cfg["home"])["paths"]["knowledge"] + "/code_index.jsonl"
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def test_index_symbols_signatures_docstrings_and_incremental(fleet_home):
    cfg = load_config(fleet_home)
    src = fleet_home / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "sample.py").write_text(SAMPLE)
    (src / "other.py").write_text("def f():\n    return 1\n")
    (src / "broken.py").write_text("def broken(:\n")
    (src / ".venv").mkdir()
    (src / ".venv" / "skip.py").write_text("def skipped(): pass\n")

    result = code_index.run({"path": "src"}, cfg, LOG)
    assert (result["files"], result["parsed"], result["unchanged"]) == (3, 2, 0)
    assert len(result["errors"]) == 1 and "broken.py" in result["errors"][0]["file"]
    recs = {r["qualname"]: r for r in _records(cfg)}
    top = recs["top"]
    assert top["kind"] == "function" and top["docstring"] == "Top-level function."
    assert top["signature"] == "def top(a: int, b: str='x', *args, key=None, **kw) -> bool"
    assert top["lineno"] == 5 and top["path"] == "pkg/sample.py"
    assert recs["Thing"]["kind"] == "class" and recs["Thing"]["signature"] == "class Thing(Base, metaclass=type)"
    assert recs["Thing"]["decorators"] == ["functools.total_ordering"]
    assert recs["Thing.method"]["kind"] == "method" and recs["Thing.method"]["docstring"] == "Does x."
    assert recs["Thing.amethod"]["async"] is True
    assert recs["Thing.Nested.deep"]["kind"] == "method"
    assert "top.<locals>.inner" in recs and "conditional" in recs
    assert recs["sample"]["kind"] == "module" and recs["sample"]["docstring"] == "Sample module."
    assert "skipped" not in recs

    again = code_index.run({"path": "src"}, cfg, LOG)
    assert (again["parsed"], again["unchanged"]) == (0, 2)  # nothing changed: nothing re-parsed
    (src / "other.py").write_text("def g(x):\n    return x\n")
    (src / "pkg" / "sample.py").unlink()
    third = code_index.run({"path": "src"}, cfg, LOG)
    assert (third["parsed"], third["unchanged"], third["removed"]) == (1, 0, 1)
    names = {r["qualname"] for r in _records(cfg)}
    assert "g" in names and "f" not in names and "top" not in names

    with pytest.raises(SkillError, match="does not exist"):
        code_index.run({"path": "missing"}, cfg, LOG)


def test_code_index_and_backup_through_a_real_worker(isolated_home):
    cfg = write_config(isolated_home, affinity={"coder": ["code_index", "backup"]})
    (isolated_home / "src").mkdir()
    (isolated_home / "src" / "m.py").write_text("class A:\n    def b(self):\n        'doc'\n")
    store = open_store(cfg)
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        idx = store.enqueue("code_index", {"path": "src"})
        bad = store.enqueue("code_index", {"path": "src", "colour": "red"})
        missing = store.enqueue("code_index", {"path": "nowhere"})
        wait_until(lambda: all(store.get(t.id).status in ("DONE", "FAILED") for t in (idx, bad, missing)), 30)
        assert store.get(idx.id).result["symbols"] == 3
        assert store.get(bad.id).error_reason == "invalid_payload" and "colour" in store.get(bad.id).error
        m = store.get(missing.id)
        assert m.status == "FAILED" and m.attempts == 1 and "does not exist" in m.error  # not retried
        bk = store.enqueue("backup", {"keep": 2})
        wait_until(lambda: store.get(bk.id).status in ("DONE", "FAILED"), 30, what="backup")
        res = store.get(bk.id).result
        assert store.get(bk.id).status == "DONE", store.get(bk.id).error
        assert res["integrity"] == "ok"
        assert (isolated_home / "backups" / res["id"] / "knowledge" / "code_index.jsonl").exists()
    finally:
        stop(proc, 15)
        store.close()


def _index_in_a_process(home: str, path: str) -> None:
    cfg = load_config(home)
    code_index.run({"path": path}, cfg, LOG)


def test_two_runs_at_once_keep_both_roots(isolated_home):
    # Found in review: each run wrote back the index as it had read it, so
    # the later writer dropped the other run's files.
    import multiprocessing

    big, small = isolated_home / "big", isolated_home / "small"
    big.mkdir()
    small.mkdir()
    for i in range(400):
        (big / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n" * 5)
    (small / "only.py").write_text("def only():\n    pass\n")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_index_in_a_process, args=(str(isolated_home), str(p))) for p in (big, small)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    index = (isolated_home / "knowledge" / "code_index.jsonl").read_text()
    assert str(small / "only.py") in index and str(big / "m399.py") in index
