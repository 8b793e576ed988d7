"""Shared fixtures. Every test runs with its own fleet home and HOME in a temp
directory, so no test can touch an operator's database, logs or secrets."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.store_backends import BACKENDS, StoreFactory  # (after the path is set)


def require_system_part(available: bool, what: str, install: str) -> None:
    """Skip where a system part is absent on a laptop; under CI it must exist."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI=true but is absent; .ci/run should install it ({install})")
    pytest.skip(f"{what} is not installed here ({install})")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    home = tmp_path / "fleet_home"
    home.mkdir()
    user_home = tmp_path / "user_home"
    user_home.mkdir()
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.delenv("FLEET_DB", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield home


@pytest.fixture
def fleet_home(isolated_home):
    """A fleet home with the shipped fleet.toml copied in."""
    shutil.copy(REPO / "fleet.toml", isolated_home / "fleet.toml") if (REPO / "fleet.toml").exists() else None
    return isolated_home


# -- the store, per backend ------------------------------------------------
# Every test that takes `store`, `store_factory` or `store_backend` runs once per
# backend in tests/store_backends.py:BACKENDS (sqlite, postgresql). A backend that
# cannot run here (its server absent) says so from `missing()`; the test then
# skips with the reason, or fails under CI=true (see require_system_part).
@pytest.fixture(params=list(BACKENDS))
def store_backend(request, tmp_path):
    backend = BACKENDS[request.param](tmp_path / f"stores-{request.param}")
    missing = backend.missing()
    if missing is not None:
        require_system_part(False, *missing)
    yield backend
    backend.cleanup()


@pytest.fixture
def store_factory(store_backend):
    """`store_factory(**options)` -> a fresh, empty Store on this test's
    backend; `.spec(store)` is what a child process gives
    `tests.store_backends.open_from_spec` to open the same store."""
    factory = StoreFactory(store_backend)
    yield factory
    factory.close_all()


@pytest.fixture
def store(store_factory):
    """A fresh store with short retry backoffs."""
    return store_factory(backoff_base_s=0.01, backoff_max_s=0.05)
