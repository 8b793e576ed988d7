"""The module hub over loopback HTTP: a registry.json listing name, version,
url and SHA-256. `lead_client module install` verifies the SHA-256 and the
module's NAME before writing anything; the Modules tab installs the same way."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import write_config
from tests.launcher_harness import (  # noqa: F401 - display and free_windows_on_the_tk_thread are fixtures
    close_launcher,
    display,
    free_windows_on_the_tk_thread,
    open_launcher,
)

pytestmark = pytest.mark.timeout(120)

GOOD = '''"""A hub module for the tests."""


class Module:
    NAME = "{name}"
    LABEL = "Notes"
    VERSION = "{version}"
    DEFAULT_ENABLED = True
    DEPENDS_ON = []

    def __init__(self, app):
        self.app = app

    def build_tab(self, parent):
        from tkinter import ttk
        ttk.Label(parent, text="hello from the hub").pack()

    def on_refresh(self):
        pass

    def on_close(self):
        pass

    def get_settings(self):
        return {{}}

    def apply_settings(self, cfg):
        pass

    def export_data(self):
        return []

    def validate_record(self, data):
        return True, "OK"
'''


@pytest.fixture
def hub(tmp_path):
    root = tmp_path / "hub"
    root.mkdir()
    files = {"notes.py": GOOD.format(name="notes", version="1.1"),
             "evil.py": GOOD.format(name="evil", version="1.0"),
             "liar.py": GOOD.format(name="someone_else", version="1.0")}
    for name, text in files.items():
        (root / name).write_text(text)

    def sha(name: str) -> str:
        return hashlib.sha256((root / name).read_bytes()).hexdigest()

    registry = {"modules": [
        {"name": "notes", "version": "1.1", "url": "notes.py", "sha256": sha("notes.py"), "description": "notes"},
        {"name": "evil", "version": "1.0", "url": "evil.py", "sha256": "0" * 64, "description": "tampered"},
        {"name": "liar", "version": "1.0", "url": "liar.py", "sha256": sha("liar.py"), "description": "wrong NAME"},
    ]}
    (root / "registry.json").write_text(json.dumps(registry))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/registry.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def home(isolated_home, hub):
    write_config(isolated_home, dashboard={"enabled": False}, models={"chain": []}, launcher={"hub_registry": hub})
    return isolated_home


def test_cli_installs_a_verified_module_and_refuses_a_bad_checksum_or_name(home):
    r = cli(home, "module", "list", "--json")
    assert r.rc == 0, r
    assert {m["name"]: m["installed"] for m in r.json()["modules"]} == {"notes": None, "evil": None, "liar": None}
    r = cli(home, "module", "install", "evil")
    assert r.rc == 1 and "checksum mismatch" in r.err and "nothing was installed" in r.err, r
    r = cli(home, "module", "install", "liar")
    assert r.rc == 1 and "declares Module.NAME = 'someone_else'" in r.err, r
    mods = home / "launcher_modules"
    assert not list(mods.glob("mod_*.py")) if mods.exists() else True
    r = cli(home, "module", "install", "notes", "--json")
    assert r.rc == 0, r
    assert r.json()["version"] == "1.1" and Path(r.json()["path"]).read_text().startswith('"""A hub module')
    r = cli(home, "module", "list", "--json")
    assert {m["name"]: m["installed"] for m in r.json()["modules"]}["notes"] == "1.1"
    r = cli(home, "module", "update", "--json")
    assert r.rc == 0 and r.json() == {"updated": []}, r
    r = cli(home, "module", "install", "knowledge")
    assert r.rc == 1 and "bundled" in r.err
    r = cli(home, "module", "uninstall", "notes")
    assert r.rc == 0 and not (mods / "mod_notes.py").exists(), r


def test_modules_tab_installs_from_the_hub_and_the_module_loads_next_start(home, display, tmp_path_factory):  # noqa: F811
    ui = open_launcher(home, display, tmp_path_factory)
    try:
        tab = ui.tab("modules")
        tab.load_hub()
        ui.until(lambda: tab.remote.tree.exists("notes"), what="the hub's modules")
        tab.remote.tree.selection_set("evil")
        tab.install()
        ui.until(lambda: "checksum mismatch" in tab.note.cget("text"), what="the refusal")
        assert not (home / "launcher_modules" / "mod_evil.py").exists()
        tab.remote.tree.selection_set("notes")
        tab.install()
        ui.until(lambda: tab.note.cget("text").startswith("installed notes 1.1"), what="the install")
        ui.until(lambda: tab.remote.tree.item("notes", "values")[2] == "1.1", what="the installed version")
        ui.shot("modules-hub")
    finally:
        close_launcher(ui)
    ui = open_launcher(home, display, tmp_path_factory)
    try:
        assert "notes" in [s.name for s in ui.app.slots]
        ui.tab("notes")
        ui.shot("hub-module-loaded")
    finally:
        close_launcher(ui)
