"""The store backends the contract suite runs against, and the one way a test
or a child process opens a store: from a spec, a small JSON-able dict naming
the backend, its database and the store's options.

A backend class knows how to name a fresh database (`new_spec`), open a store
on one (`open`, also in a child process), drop one and clean up after a test.
Adding a backend is one class here and one name in BACKENDS; the fixtures in
conftest.py (`store_backend`, `store_factory`, `store`) take it from there.
Nothing here imports pytest: child processes import this module.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # fleet.db is imported when a store is opened, not with conftest
    from fleet.db import Store

# A spec: {"backend": NAME, ...where its database is..., "options": {Store options}}.
# SQLite: {"backend": "sqlite", "path": "/tmp/.../fleet.db", "options": {...}}.
# PostgreSQL: {"backend": "postgresql", "dsn": ..., "schema": "fleet_test_...", "options": {...}}.
Spec = dict[str, Any]


class SQLiteBackend:
    """A real SQLite file per database, in the test's temporary folder."""

    name = "sqlite"

    def __init__(self, root: Path):
        self.root = Path(root)
        self._made = 0

    def missing(self) -> tuple[str, str] | None:
        """(what is missing, how to install it) when this backend cannot run
        here, else None. SQLite is in the standard library: never missing."""
        return None

    def new_spec(self, **options) -> Spec:
        """Name a fresh, empty database; nothing exists until it is opened."""
        self._made += 1
        return {"backend": self.name, "path": str(self.root / f"db{self._made}" / "fleet.db"), "options": options}

    @staticmethod
    def open(spec: Spec) -> Store:
        from fleet.db import Store

        return Store(spec["path"], **spec["options"])

    def drop(self, spec: Spec) -> None:
        shutil.rmtree(Path(spec["path"]).parent, ignore_errors=True)

    @staticmethod
    def execute_raw(spec: Spec, sql: str) -> None:
        """The test's own hand on the database (as an operator's tool would
        prune history), past the store."""
        import contextlib
        import sqlite3

        with contextlib.closing(sqlite3.connect(spec["path"], isolation_level=None)) as db:
            db.execute(sql)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


# The server the PostgreSQL tests use: on this machine and in CI a PostgreSQL 15
# with trust auth on 127.0.0.1:5432 (.ci/run starts it); another with this variable.
TEST_PG_DSN = os.environ.get("FLEET_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
_TEST_SCHEMA_PREFIX = "fleet_test_"


class PostgreSQLBackend:
    """One schema per database on the test server, named at random and
    dropped (CASCADE) when the test is done with it."""

    name = "postgresql"
    _missing: tuple[str, str] | None | bool = False  # False: not looked yet (once per process)

    def __init__(self, root: Path):
        self.root = Path(root)
        self.dsn = TEST_PG_DSN
        self._prefix = f"{_TEST_SCHEMA_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
        self._made: list[str] = []

    def missing(self) -> tuple[str, str] | None:
        """(what is missing, how to get it) without psycopg or a reachable server."""
        if PostgreSQLBackend._missing is False:
            PostgreSQLBackend._missing = self._look()
        return PostgreSQLBackend._missing

    def _look(self) -> tuple[str, str] | None:
        try:
            import psycopg
        except ImportError:
            return "psycopg (the PostgreSQL driver)", "pip install 'psycopg[binary]' 'psycopg-pool'"
        try:
            psycopg.connect(self.dsn, connect_timeout=3).close()
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or ["?"])[0]
            how = ("start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, "
                   "or name another with FLEET_TEST_PG_DSN")
            return f"a PostgreSQL server at {self.dsn} ({first})", how
        return None

    def new_spec(self, **options) -> Spec:
        """Name a fresh schema; nothing exists until it is opened."""
        schema = f"{self._prefix}_{len(self._made) + 1}"
        self._made.append(schema)
        return {"backend": self.name, "dsn": self.dsn, "schema": schema, "options": options}

    @staticmethod
    def open(spec: Spec) -> Store:
        from fleet.store import postgres_store

        return postgres_store(spec["dsn"], schema=spec["schema"], **spec["options"])

    def _drop(self, schemas: list[str]) -> None:
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET lock_timeout = '10s'")
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.Error:
            pass  # a schema left behind (a child still holds a lock) is named fleet_test_*: harmless

    def drop(self, spec: Spec) -> None:
        self._drop([spec["schema"]])

    @staticmethod
    def execute_raw(spec: Spec, sql: str) -> None:
        """The test's own hand on the database, past the store."""
        import psycopg

        with psycopg.connect(spec["dsn"], autocommit=True, options=f"-c search_path={spec['schema']}") as conn:
            conn.execute(sql)

    def cleanup(self) -> None:
        if self._made:
            self._drop(self._made)
        shutil.rmtree(self.root, ignore_errors=True)


BACKENDS: dict[str, type] = {"sqlite": SQLiteBackend, "postgresql": PostgreSQLBackend}


def open_from_spec(spec: Spec | str, **overrides) -> Store:
    """A store on the database a spec names (a dict, or its JSON text as passed
    on a child's command line); `overrides` replace some of its options."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    spec = {**spec, "options": {**spec.get("options", {}), **overrides}}
    return BACKENDS[spec["backend"]].open(spec)


class StoreFactory:
    """`store_factory(**options)`: a fresh, empty store for this test, closed
    when the test ends. `spec(store)` is what a child process passes to
    `open_from_spec` to open that same store; `reopen(store)` opens another
    handle on it here; `new_spec()` names a database nobody has opened yet."""

    def __init__(self, backend):
        self.backend = backend
        self.name = backend.name
        self._opened: list[Store] = []
        self._specs: dict[int, Spec] = {}

    def __call__(self, **options) -> Store:
        return self.open(self.new_spec(**options))

    def new_spec(self, **options) -> Spec:
        return self.backend.new_spec(**options)

    def open(self, spec: Spec, **overrides) -> Store:
        store = open_from_spec(spec, **overrides)
        self._opened.append(store)
        self._specs[id(store)] = {**spec, "options": {**spec.get("options", {}), **overrides}}
        return store

    def spec(self, store: Store) -> Spec:
        return self._specs[id(store)]

    def spec_json(self, store: Store) -> str:
        """The spec as one command-line argument for a `python ...` child."""
        return json.dumps(self.spec(store))

    def execute_raw(self, store: Store, sql: str) -> None:
        """Run `sql` on the store's database directly (not through the store)."""
        self.backend.execute_raw(self.spec(store), sql)

    def reopen(self, store: Store, **overrides) -> Store:
        return self.open(self.spec(store), **overrides)

    def discard(self, store: Store) -> None:
        """Close a store and drop its database now (one per hypothesis example)."""
        spec = self._specs.pop(id(store))
        store.close()
        self._opened.remove(store)
        self.backend.drop(spec)

    def close_all(self) -> None:
        opened, self._opened = self._opened, []
        for store in opened:
            store.close()
        self._specs.clear()
