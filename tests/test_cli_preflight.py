"""lead_client preflight: store writable and in WAL mode, disk, logs, config,
dashboard when enabled, configured providers (a loopback HTTP server stands in
for Ollama); non-zero exit on any failure, --warn-only downgrades providers."""

from __future__ import annotations

import contextlib

import http.server
import socket
import threading

import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import write_config

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ollama():
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = b'{"models": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def _home(home, *, provider_url, dashboard=False, min_free=1, **extra):
    write_config(home, dashboard={"enabled": dashboard, "port": _free_port()}, models={"chain": ["local"]},
                 providers={"local": {"type": "ollama", "base_url": provider_url}},
                 preflight={"min_free_disk_mb": min_free, "timeout_s": 2.0}, **extra)
    return home


def test_all_good(isolated_home, ollama):
    url, seen = ollama
    home = _home(isolated_home, provider_url=url)
    r = cli(home, "preflight", "--json")
    assert r.rc == 0, r
    doc = r.json()
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] is True and doc["failed"] == 0
    for name in ("config", "store", "store_wal", "disk", "logs", "provider:local"):
        assert checks[name]["ok"], checks[name]
    assert "/api/tags" in seen
    assert "dashboard" not in checks
    assert "preflight: passed" in cli(home, "preflight").out


def test_unreachable_provider_fails_unless_warn_only(isolated_home):
    home = _home(isolated_home, provider_url=f"http://127.0.0.1:{_free_port()}")
    r = cli(home, "preflight", "--json")
    assert r.rc == 1
    bad = [c for c in r.json()["checks"] if c["level"] == "fail"]
    assert [c["name"] for c in bad] == ["provider:local"] and "ollama serve" in bad[0]["detail"]
    r = cli(home, "preflight", "--warn-only", "--json")
    assert r.rc == 0 and r.json()["warnings"] >= 1


def test_dashboard_disk_and_missing_key_fail(isolated_home, ollama):
    url, _ = ollama
    home = _home(isolated_home, provider_url=url, dashboard=True, min_free=10**9)
    with _supervisor_lock_held(home):  # a fleet that runs, but whose dashboard does not answer
        r = cli(home, "preflight")
    assert r.rc == 1
    assert "[FAIL] dashboard" in r.out and "[FAIL] disk" in r.out
    write_config(home, dashboard={"enabled": False}, models={"chain": ["claude"]})
    r = cli(home, "preflight", "--json")
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert r.rc == 1 and "ANTHROPIC_API_KEY" in checks["provider:claude"]["detail"]
    write_config(home, dashboard={"enabled": False}, models={"chain": ["claude"]}, fleet={"offline_mode": True})
    r = cli(home, "preflight", "--json")
    assert r.rc == 0 and "offline" in {c["name"]: c for c in r.json()["checks"]}["provider:claude"]["detail"]


@contextlib.contextmanager
def _supervisor_lock_held(home):
    """This process holds the fleet home's supervisor lock, as a running supervisor does."""
    from fleet.config import load_config
    from fleet.supervisor import InstanceLock, lock_path

    lock = InstanceLock(lock_path(load_config(home)))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def test_preflight_before_the_first_start_passes_and_says_the_dashboard_is_not_running(isolated_home, ollama):
    """Issue 17 I: preflight exited 1 whenever the supervisor was not running
    (the dashboard check), so it could not be used before the first start."""
    url, _ = ollama
    home = _home(isolated_home, provider_url=url, dashboard=True)
    r = cli(home, "preflight", "--json")
    assert r.rc == 0, r
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["dashboard"]["level"] == "not_running" and checks["dashboard"]["ok"] is True
    assert checks["dashboard"]["detail"].startswith("not running")
    r = cli(home, "preflight")
    assert r.rc == 0 and "dashboard: not running" in r.out and "preflight: passed" in r.out


def test_bad_config_fails(isolated_home):
    (isolated_home / "fleet.toml").write_text("[queue]\nmax_attempts = 'many'\n")
    r = cli(isolated_home, "preflight", "--json")
    assert r.rc == 1
    checks = r.json()["checks"]
    assert checks[0]["name"] == "config" and not checks[0]["ok"] and "max_attempts" in checks[0]["detail"]
