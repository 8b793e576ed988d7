"""Configuration: typed defaults for every key, loading and validating fleet.toml.

The fleet home is the directory holding `fleet.toml` (`FLEET_HOME` overrides).
`load_config()` returns a plain nested dict with every default filled in and
`paths` resolved to absolute paths. A wrong type or value raises ConfigError
(entry points exit 78, EX_CONFIG); an unknown key warns with the closest name.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

EX_CONFIG = 78
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "fleet.toml"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the fix."""


class ConfigWarning(UserWarning):
    """A key that is not known (probably a typo)."""


@dataclasses.dataclass(frozen=True)
class Key:
    default: Any
    doc: str
    type: Any = None  # bool | int | float | str | list (of str); None: type of default
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None

    @property
    def kind(self):
        return self.type if self.type is not None else type(self.default)


@dataclasses.dataclass(frozen=True)
class Section:
    doc: str
    keys: dict[str, Key] = dataclasses.field(default_factory=dict)
    # A map section accepts any key name, each value checked against `values`.
    values: Key | None = None
    # A table section holds named sub-tables, each with these keys.
    tables: dict[str, Key] | None = None
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


ROLE_AFFINITY = {
    "researcher": ["web_search", "arxiv_fetch", "summarize", "rag_query"],
    "coder": ["code_review", "code_discuss", "code_index", "fma_review", "skill_draft", "code_quality"],
    "archivist": ["summarize", "synthesize", "flashcard", "rag_index", "rag_query", "backup"],
    "analyst": ["summarize", "synthesize", "rag_query"],
    "security": ["security_review", "code_quality"],
    "planner": ["plan_workload"],
}

SCHEMA: dict[str, Section] = {
    "fleet": Section("Fleet-wide operating modes.", {
        "name": Key("fleet", "A name for this fleet, shown in the dashboard and reports."),
        "eco_mode": Key(False, "CPU-only models, no VRAM: pins the CPU model tier."),
        "offline_mode": Key(False, "Refuse every cloud provider and network skill; local models still work."),
        "air_gap_mode": Key(False, "Implies offline_mode; also keeps the dashboard off and secrets unloaded."),
    }),
    "paths": Section("Where runtime files live; relative paths are under the fleet home.", {
        "db": Key("fleet.db", "The SQLite database (tasks, agents, messages, usage)."),
        "hw_state": Key("hw_state.json", "Hardware state written by the hardware supervisor."),
        "status_file": Key("STATUS.md", "Human-readable fleet snapshot written by the supervisor."),
        "logs": Key("logs", "One rotating log file per process."),
        "knowledge": Key("knowledge", "What skills produce (reviews, indexes, summaries)."),
        "backups": Key("backups", "Backup snapshots (lead_client backup)."),
        "secrets": Key("~/.secrets", "API keys and other secrets (mode 0600); never put them in fleet.toml."),
    }),
    "workers": Section(
        "Roles and how many workers of each to run (0 disables a role). "
        "Coders are named coder_1..N; other roles use the role name (role_1..N when more than one).",
        {"coder_count": Key(1, "How many coder workers to run.", min=0, max=64),
         "idle_takes_any_skill": Key(False, "Let an idle worker claim skills outside its role's affinity.")},
        values=Key(1, "worker count for a role", type=int, min=0, max=64),
        defaults={"researcher": 1, "archivist": 1, "analyst": 1, "security": 1, "planner": 1},
    ),
    "affinity": Section(
        "Which skills each role claims (role = [skills]). Tasks assigned to a worker by name are always claimed by it.",
        values=Key([], "skills of a role", type=list),
        defaults=ROLE_AFFINITY,
    ),
    "queue": Section("The durable task queue.", {
        "synchronous": Key("normal", "Durability: 'normal' survives any process crash; 'full' also survives power loss.",
                           choices=("normal", "full")),
        "lease_s": Key(60.0, "Lease length in seconds; workers renew it while a skill runs.", type=float, min=1),
        "max_attempts": Key(3, "Default attempts per task before it stays FAILED (dead letter).", min=1, max=100),
        "backoff_base_s": Key(2.0, "First retry delay; doubles per attempt, with jitter.", type=float, min=0),
        "backoff_max_s": Key(300.0, "Longest retry delay.", type=float, min=0),
        "max_payload_bytes": Key(1048576, "Largest accepted task payload (JSON bytes).", min=1024),
        "busy_timeout_s": Key(30.0, "How long a writer waits for the database lock.", type=float, min=0.1),
        "checkpoint_interval_s": Key(60.0, "How often the supervisor checkpoints the WAL.", type=float, min=1),
        "reap_interval_s": Key(2.0, "How often the supervisor reaps expired leases.", type=float, min=0.1),
    }),
    "supervisor": Section("Process supervision.", {
        "backoff_initial_s": Key(1.0, "First respawn delay after a worker dies.", type=float, min=0),
        "backoff_max_s": Key(60.0, "Longest respawn delay.", type=float, min=0),
        "backoff_reset_s": Key(60.0, "Healthy uptime after which the respawn delay resets.", type=float, min=0),
        "crash_loop_count": Key(5, "Crashes of one role within crash_loop_window_s mark it flapping.", min=1),
        "crash_loop_window_s": Key(60.0, "Window for crash_loop_count.", type=float, min=1),
        "heartbeat_timeout_s": Key(120.0, "A worker with no heartbeat or progress this long is replaced.", type=float, min=1),
        "heartbeat_interval_s": Key(5.0, "How often workers heartbeat.", type=float, min=0.1),
        "stop_timeout_s": Key(30.0, "On stop, how long running tasks may finish before they are released.", type=float, min=0),
        "status_interval_s": Key(10.0, "How often STATUS.md and liveness samples are written.", type=float, min=0.5),
        "scale_up_depth": Key(20, "Pending tasks for a role above which an extra worker starts (0 disables scaling).", min=0),
        "scale_up_after_s": Key(30.0, "How long the depth must stay above scale_up_depth.", type=float, min=0),
        "scale_max_extra": Key(2, "Most extra workers per role.", min=0, max=64),
        "scale_idle_s": Key(120.0, "An extra worker idle this long is stopped.", type=float, min=1),
        "services": Key(["hw_supervisor", "dashboard"], "Managed services started with the fleet (absent modules are skipped).",
                        type=list),
    }),
    "skills": Section("Skill loading.", {
        "extra_paths": Key([], "More directories to load skills from.", type=list),
        "default_timeout_s": Key(600.0, "Hard timeout of a skill that declares none.", type=float, min=1),
    }),
    "skills.timeouts": Section(
        "Per-skill hard timeouts in seconds (skill = seconds), overriding the skill's TIMEOUT_S.",
        values=Key(600.0, "timeout in seconds", type=float, min=1),
    ),
}


def _check_value(where: str, key: Key, value: Any) -> Any:
    kind = key.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, found {value!r}")
    elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, found {type(value).__name__} {value!r}")
    elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {kind.__name__}, found {type(value).__name__} {value!r}")
    if key.choices is not None and value not in key.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(map(repr, key.choices))}, found {value!r}")
    if key.min is not None and value < key.min:
        raise ConfigError(f"{where}: expected at least {key.min}, found {value!r}")
    if key.max is not None and value > key.max:
        raise ConfigError(f"{where}: expected at most {key.max}, found {value!r}")
    return value


def _warn_unknown(where: str, name: str, known) -> None:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    warnings.warn(f"unknown config key {where}{name}{hint} (ignored)", ConfigWarning, stacklevel=3)


def defaults() -> dict:
    """The whole configuration with nothing but defaults."""
    out: dict = {}
    for name, sec in SCHEMA.items():
        target = out
        for part in name.split("."):
            target = target.setdefault(part, {})
        target.update({k: _copy(v.default) for k, v in sec.keys.items()})
        target.update({k: _copy(v) for k, v in sec.defaults.items()})
    return out


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return list(v) if isinstance(v, list) else v


def validate(raw: dict) -> dict:
    """Merge `raw` (parsed TOML) over the defaults, checking every key."""
    cfg = defaults()
    section_names = set(SCHEMA)
    top_level = {n.split(".")[0] for n in section_names}

    def walk(table: dict, prefix: str) -> None:
        for name, value in table.items():
            full = f"{prefix}{name}"
            if full in SCHEMA:
                if not isinstance(value, dict):
                    raise ConfigError(f"[{full}]: expected a table, found {value!r}")
                _apply_section(full, SCHEMA[full], value, cfg)
            elif not prefix and name not in top_level:
                _warn_unknown("", f"[{name}]", [f"[{n}]" for n in top_level])
            elif prefix and prefix[:-1] in SCHEMA:
                continue  # keys of a section were handled by _apply_section
            elif isinstance(value, dict):
                walk(value, full + ".")

    walk(raw, "")
    if cfg["fleet"]["air_gap_mode"]:
        cfg["fleet"]["offline_mode"] = True
    return cfg


def _apply_section(name: str, sec: Section, table: dict, cfg: dict) -> None:
    target = cfg
    for part in name.split("."):
        target = target.setdefault(part, {})
    children = {n.split(".", len(name.split(".")))[-1] for n in SCHEMA if n.startswith(name + ".")}
    for key, value in table.items():
        where = f"[{name}] {key}"
        if key in children:
            continue
        if key in sec.keys:
            target[key] = _check_value(where, sec.keys[key], value)
        elif sec.tables is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"[{name}.{key}]: expected a table, found {value!r}")
            sub = {k: _copy(v.default) for k, v in sec.tables.items()}
            for k, v in value.items():
                if k in sec.tables:
                    sub[k] = _check_value(f"[{name}.{key}] {k}", sec.tables[k], v)
                else:
                    _warn_unknown(f"[{name}.{key}] ", k, sec.tables)
            target[key] = sub
        elif sec.values is not None:
            target[key] = _check_value(where, sec.values, value)
        else:
            _warn_unknown(f"[{name}] ", key, sec.keys)


def find_home(home: str | os.PathLike | None = None) -> Path:
    """The fleet home: explicit argument, FLEET_HOME, the current directory
    when it holds fleet.toml, else the repository root."""
    if home is not None:
        return Path(home).expanduser().resolve()
    env = os.environ.get("FLEET_HOME")
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd()
    if (cwd / CONFIG_NAME).exists():
        return cwd.resolve()
    return REPO_ROOT


def load_config(home: str | os.PathLike | None = None) -> dict:
    """Read `<home>/fleet.toml` (absent: defaults) and resolve paths."""
    root = find_home(home)
    path = root / CONFIG_NAME
    raw: dict = {}
    if path.exists():
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
    try:
        cfg = validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cfg["home"] = str(root)
    cfg["config_file"] = str(path)
    cfg["paths"] = {k: _resolve(root, v) for k, v in cfg["paths"].items()}
    if os.environ.get("FLEET_DB"):
        cfg["paths"]["db"] = _resolve(root, os.environ["FLEET_DB"])
    return cfg


def _resolve(root: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (root / p))


def worker_names(cfg: dict) -> list[tuple[str, str]]:
    """(name, role) of every configured worker, in a stable order."""
    out = []
    for role, count in cfg["workers"].items():
        if role == "idle_takes_any_skill" or not isinstance(count, int) or isinstance(count, bool):
            continue
        if role == "coder_count":
            out += [(f"coder_{i}", "coder") for i in range(1, count + 1)]
        elif count == 1:
            out.append((role, role))
        else:
            out += [(f"{role}_{i}", role) for i in range(1, count + 1)]
    return out


def role_skills(cfg: dict, role: str) -> list[str]:
    return list(cfg["affinity"].get(role, []))


def skill_timeout(cfg: dict, skill: str, declared: float | None) -> float:
    """Config override, else the skill's TIMEOUT_S, else the default."""
    override = cfg["skills"].get("timeouts", {}).get(skill)
    if override is not None:
        return float(override)
    return float(declared) if declared else float(cfg["skills"]["default_timeout_s"])


def load_or_exit(home: str | os.PathLike | None = None) -> dict:
    """For entry points: print the problem and exit 78 on a bad config."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ConfigWarning)
            warnings.showwarning = _show_warning
            return load_config(home)
    except ConfigError as exc:
        print(f"fleet: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fleet: warning: {message}", file=sys.stderr)


def _toml_value(value: Any) -> str:
    import tomlkit

    return tomlkit.item(value).as_string()


def render_default_toml() -> str:
    """The shipped fleet.toml: every section and key with its comment and default."""
    lines = [
        "# Fleet configuration. Every key is shown with its default; edit what you need.",
        "# Relative paths are under the fleet home (the directory holding this file).",
        "# Secrets (API keys) never go here: use `lead_client.py secret set KEY -`.",
    ]
    for name, sec in SCHEMA.items():
        lines += ["", f"# {sec.doc}", f"[{name}]"]
        for key, spec in sec.keys.items():
            extra = f" One of: {', '.join(map(str, spec.choices))}." if spec.choices else ""
            lines.append(f"# {spec.doc}{extra}")
            lines.append(f"{key} = {_toml_value(spec.default)}")
        for key, value in sec.defaults.items():
            if isinstance(value, dict):
                continue
            lines.append(f"{key} = {_toml_value(value)}")
        if sec.tables is not None:
            lines.append(f"# Each [{name}.NAME] table has these keys:")
            for key, spec in sec.tables.items():
                lines.append(f"#   {key} = {_toml_value(spec.default)}  # {spec.doc}")
        for key, value in sec.defaults.items():
            if isinstance(value, dict):
                lines += ["", f"[{name}.{key}]"]
                for k, v in value.items():
                    lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m fleet.config > fleet.toml
    sys.stdout.write(render_default_toml())
