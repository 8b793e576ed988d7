"""Opening the store, on every backend: many processes may create a new store
at once, and a store opened again keeps its data. (What SQLite does with its
file on disk, corrupt or old, is in test_store_sqlite.py.)"""

from __future__ import annotations

import multiprocessing

import store_procs


def test_many_processes_may_create_a_new_database_at_once(store_factory):
    spec = store_factory.new_spec()  # names a store nobody has created yet
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=store_procs.open_and_enqueue, args=(spec, i)) for i in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 10
    assert store_factory.open(spec).counts()["PENDING"] == 10


def test_schema_version_and_reopen_keep_data(store_factory):
    s1 = store_factory()
    t = s1.enqueue("s", {"a": 1})
    version = s1.stats()["schema_version"]
    s1.close()
    s2 = store_factory.reopen(s1)
    assert s2.stats()["schema_version"] == version and s2.get(t.id).payload == {"a": 1}

