"""The skill catalogue: find skills, read their metadata, validate payloads, load them.

A skill is `fleet/skills/<name>.py` (or a file in `[skills] extra_paths`) with
`run(payload, config, log) -> dict` and optional constants (DESCRIPTION,
PAYLOAD_SCHEMA, TIMEOUT_S, REQUIRES_NETWORK, REQUIRES_MODEL, LOCAL_ONLY,
IDEMPOTENT, REQUIRES_APPROVAL (the worker asks a person before each task runs),
USES_GPU). Literal metadata is read from the source without importing it;
a constant written as an expression is read from the imported module.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema

BUILTIN_DIR = Path(__file__).resolve().parent / "skills"

_META = {
    "DESCRIPTION": ("description", ""),
    "PAYLOAD_SCHEMA": ("payload_schema", None),
    "TIMEOUT_S": ("timeout_s", None),
    "REQUIRES_NETWORK": ("requires_network", False),
    "REQUIRES_MODEL": ("requires_model", False),
    "LOCAL_ONLY": ("local_only", False),
    "IDEMPOTENT": ("idempotent", True),
    "REQUIRES_APPROVAL": ("requires_approval", False),
    "USES_GPU": ("uses_gpu", False),
}


class UnknownSkill(LookupError):
    pass


class InvalidPayload(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class SkillInfo:
    name: str
    path: str
    description: str = ""
    payload_schema: dict | None = None
    timeout_s: float | None = None
    requires_network: bool = False
    requires_model: bool = False
    local_only: bool = False
    idempotent: bool = True
    requires_approval: bool = False
    uses_gpu: bool = False

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path")
        return d


def skill_dirs(cfg: dict | None) -> list[Path]:
    """The built-in skills folder, then `[skills] extra_paths` of a loaded
    config (relative ones under the fleet home); None: built-ins only."""
    dirs = [BUILTIN_DIR]
    for extra in [] if cfg is None else cfg["skills"]["extra_paths"]:
        p = Path(os.path.expanduser(extra))
        if not p.is_absolute():
            p = Path(cfg["home"]) / p
        dirs.append(p)
    return dirs


def _read_meta(path: Path) -> dict[str, Any]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    meta: dict[str, Any] = {}
    computed: list[str] = []
    has_run = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "run":
            has_run = True
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            targets, value = [node.target.id], node.value
        for name in targets:
            if name in _META:
                try:
                    meta[_META[name][0]] = ast.literal_eval(value)
                except ValueError:
                    computed.append(name)  # read from the imported module instead
    meta["_has_run"] = has_run
    meta["_computed"] = computed
    return meta


def _computed_meta(name: str, path: Path, constants: list[str]) -> dict[str, Any]:
    """Metadata written as expressions (e.g. a schema built from a shared
    piece): import the module once and read the real values, so a computed
    PAYLOAD_SCHEMA is enforced rather than silently skipped."""
    module = load_module(SkillInfo(name=name, path=str(path)))
    return {_META[c][0]: getattr(module, c) for c in constants if hasattr(module, c)}


def discover(cfg: dict | None = None) -> dict[str, SkillInfo]:
    """Every skill visible to this fleet, by name (extra paths may override)."""
    found: dict[str, SkillInfo] = {}
    for directory in skill_dirs(cfg):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                meta = _read_meta(path)
            except (SyntaxError, UnicodeDecodeError, OSError):
                continue
            computed = meta.pop("_computed")
            if not meta.pop("_has_run"):
                continue
            if computed:
                try:
                    meta.update(_computed_meta(path.stem, path, computed))
                except Exception:  # noqa: BLE001 - a skill that fails to import is reported when it runs
                    pass
            found[path.stem] = SkillInfo(name=path.stem, path=str(path), **meta)
    return found


def get_info(name: str, cfg: dict | None = None, catalogue: dict | None = None) -> SkillInfo:
    catalogue = catalogue if catalogue is not None else discover(cfg)
    if name not in catalogue:
        known = ", ".join(sorted(catalogue)) or "(none)"
        raise UnknownSkill(f"unknown skill {name!r}; known skills: {known}")
    return catalogue[name]


_VALIDATORS: dict[tuple[str, str], tuple[dict, Any]] = {}


def _validator(info: SkillInfo):
    """The skill's compiled schema validator, built once per schema (a worker
    validates every task's payload; building it each time cost more than a
    short task's commit)."""
    key = (info.name, info.path)
    cached = _VALIDATORS.get(key)
    if cached is None or cached[0] is not info.payload_schema:
        cached = _VALIDATORS[key] = (info.payload_schema, jsonschema.Draft202012Validator(info.payload_schema))
    return cached[1]


def validate_payload(info: SkillInfo, payload: Any) -> None:
    """Raise InvalidPayload naming the bad field when `payload` fails the schema."""
    if not isinstance(payload, dict):
        raise InvalidPayload(f"payload for {info.name} must be a JSON object")
    if not info.payload_schema:
        return
    validator = _validator(info)
    if validator.is_valid(payload):
        return
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is None:
        return
    field = ".".join(str(p) for p in error.absolute_path)
    if not field and error.validator == "required":
        missing = [r for r in error.validator_value if r not in payload]
        field = missing[0] if missing else ""
    if not field and error.validator == "additionalProperties":
        extra = sorted(set(payload) - set(info.payload_schema.get("properties", {})))
        field = extra[0] if extra else ""
    where = f"field '{field}'" if field else "payload"
    raise InvalidPayload(f"invalid payload for skill {info.name}: {where}: {error.message}")


_loading = threading.RLock()  # a worker running several tasks at once loads skills from several threads


def load_module(info: SkillInfo) -> ModuleType:
    """Import the skill's module (fresh name per skill, not cached across files).
    One thread at a time: the module is in sys.modules while it executes, and
    another thread must not take it half-initialised (no `run` yet)."""
    mod_name = f"fleet.skills.{info.name}" if Path(info.path).parent == BUILTIN_DIR else f"fleet_extra_skill_{info.name}"
    with _loading:
        if mod_name in sys.modules and getattr(sys.modules[mod_name], "__file__", None) == info.path:
            return sys.modules[mod_name]
        spec = importlib.util.spec_from_file_location(mod_name, info.path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
    if not callable(getattr(module, "run", None)):
        raise UnknownSkill(f"skill {info.name} ({info.path}) has no run(payload, config, log) function")
    return module
