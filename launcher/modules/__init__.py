"""Launcher modules: the contract, discovery, profiles and module data.

The contract. A module is a file `mod_<name>.py` (bundled here, or installed
by the hub into [launcher] modules_dir of the fleet home) holding a class
`Module` with:

    NAME = "my_module"        # matches [launcher.tabs] my_module = true|false
    LABEL = "My Module"       # the tab's label
    VERSION = "1.0"
    DEFAULT_ENABLED = True    # shown under profile "full" unless [launcher.tabs] says otherwise
    DEPENDS_ON = []           # other module or tab NAMEs that must be shown too
    DATA_SCHEMA = None        # optional: {"fields": {name: {"type": "text"|"number"|"bool",
                              #            "required": bool, "enum": [...]}}}

    def __init__(self, app): ...          # app.client (FleetClient), app.run(key, fn, on_done, owner=self)
    def build_tab(self, parent): ...      # build widgets into the ttk.Frame `parent`
    def on_refresh(self): ...             # periodic, on the Tk thread: start work with app.run, never block
    def on_close(self): ...               # the window is closing
    def get_settings(self) -> dict: ...
    def apply_settings(self, cfg: dict): ...
    def export_data(self) -> list[dict]: ...          # every record, for portability
    def validate_record(self, data) -> tuple[bool, str]: ...

Module data lives in the store, never in a second database: records are notes
on the channel `module:<NAME>` (store.post_note / store.notes), so they move
with backups and with a PostgreSQL store (`ModuleData` below).

A module that raises in any hook, or in a callback it gave to the app, is
disabled: its tab shows the error, an alert is raised, the launcher goes on.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
PROFILES = {
    "minimal": {"fleet", "tasks", "comm", "logs", "settings"},
    "research": {"fleet", "tasks", "comm", "logs", "settings", "hardware", "usage", "knowledge", "reviews"},
}
REQUIRED = ("NAME", "LABEL", "VERSION")
HOOKS = ("build_tab", "on_refresh", "on_close", "get_settings", "apply_settings", "export_data", "validate_record")


@dataclass
class Found:
    """A discovered module file: its class, or why it could not be loaded."""
    name: str
    path: Path
    cls: type | None = None
    error: str | None = None
    bundled: bool = True
    meta: dict = field(default_factory=dict)


def module_dirs(cfg: dict) -> list[tuple[Path, bool]]:
    """(directory, bundled?) in discovery order: bundled first, then the home's installed ones."""
    installed = Path(cfg["home"]) / cfg["launcher"]["modules_dir"]
    return [(BUNDLED_DIR, True), (installed, False)]


def discover(cfg: dict) -> list[Found]:
    """Every mod_*.py, imported; a file that fails to import or breaks the
    contract is returned with its error instead of a class. An installed
    module never replaces a bundled one of the same name."""
    out: dict[str, Found] = {}
    for directory, bundled in module_dirs(cfg):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("mod_*.py")):
            name = path.stem[4:]
            if name in out:
                continue
            out[name] = load_file(path, bundled)
    return list(out.values())


def load_file(path: Path, bundled: bool = False) -> Found:
    name = path.stem[4:]
    found = Found(name, path, bundled=bundled)
    try:
        spec = importlib.util.spec_from_file_location(f"launcher_mod_{name}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        cls = getattr(mod, "Module", None)
        if cls is None:
            raise TypeError("it defines no `Module` class")
        missing = [a for a in REQUIRED if not hasattr(cls, a)]
        missing += [h for h in HOOKS if not callable(getattr(cls, h, None))]
        if missing:
            raise TypeError(f"its Module lacks {', '.join(missing)}")
        if cls.NAME != name:
            raise TypeError(f"its Module.NAME is {cls.NAME!r} but the file is mod_{name}.py")
        found.cls = cls
        found.meta = {"version": str(cls.VERSION), "label": cls.LABEL,
                      "depends_on": list(getattr(cls, "DEPENDS_ON", []) or []),
                      "default_enabled": bool(getattr(cls, "DEFAULT_ENABLED", True))}
    except Exception as exc:  # noqa: BLE001 - a broken module file is reported, never fatal
        found.error = f"{type(exc).__name__}: {exc}"
    return found


def shown(cfg: dict, name: str, default_enabled: bool = True) -> bool:
    """[launcher.tabs] NAME wins; else the profile (full: every tab, modules by DEFAULT_ENABLED)."""
    tabs = cfg["launcher"].get("tabs") or {}
    if name in tabs:
        return bool(tabs[name])
    profile = cfg["launcher"]["profile"]
    if profile in PROFILES:
        return name in PROFILES[profile]
    return default_enabled


def resolve_dependencies(wanted: dict[str, list[str]]) -> dict[str, str]:
    """{name: why it is left out} for modules whose DEPENDS_ON is not shown (transitively)."""
    left_out: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, deps in wanted.items():
            if name in left_out:
                continue
            missing = [d for d in deps if d not in wanted or d in left_out]
            if missing:
                left_out[name] = f"needs {', '.join(missing)}, which is not shown"
                changed = True
    return left_out


class ModuleData:
    """A module's records in the store, as notes on channel `module:<name>`."""

    def __init__(self, client, name: str):
        self.client = client
        self.channel = f"module:{name}"

    def add(self, record: dict, validate=None) -> int:
        if validate is not None:
            ok, why = validate(record)
            if not ok:
                raise ValueError(why)
        return self.client.ctx.store.post_note(self.channel, record, author="launcher")

    def records(self, limit: int = 1000) -> list[dict]:
        out = []
        for note in self.client.ctx.store.notes(self.channel, limit=limit):
            try:
                body = note["body"]
                out.append(json.loads(body) if isinstance(body, str) else body)
            except ValueError:
                continue
        return out


def validate_against(schema: dict | None, data) -> tuple[bool, str]:
    """Check a record against a DATA_SCHEMA's fields (type, required, enum)."""
    if not schema:
        return True, "OK"
    if not isinstance(data, dict):
        return False, "a record is an object of fields"
    kinds = {"text": str, "number": (int, float), "bool": bool}
    for fname, spec in (schema.get("fields") or {}).items():
        if fname not in data:
            if spec.get("required"):
                return False, f"{fname} is required"
            continue
        value = data[fname]
        kind = kinds.get(spec.get("type", "text"), str)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return False, f"{fname} must be {spec.get('type', 'text')}"
        if spec.get("enum") and value not in spec["enum"]:
            return False, f"{fname} must be one of {', '.join(map(str, spec['enum']))}"
    return True, "OK"
