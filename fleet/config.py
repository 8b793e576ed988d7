"""Configuration: loading and validating fleet.toml against its schema
(fleet/config_schema.py: typed defaults for every key).

The fleet home is the directory holding `fleet.toml` (`FLEET_HOME` overrides).
`load_config()` returns a plain nested dict with every default filled in and
`paths` resolved to absolute paths. A wrong type or value raises ConfigError
(entry points exit 78, EX_CONFIG); an unknown key warns with the closest name.
"""

from __future__ import annotations

import difflib
import math
import os
import socket
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Any

from .config_schema import ROLE_AFFINITY, SCHEMA, Key, Section  # noqa: F401 - re-exported
from .hosts import qualified

EX_CONFIG = 78
REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "fleet.toml"


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the fix."""


class ConfigWarning(UserWarning):
    """A key that is not known (probably a typo)."""




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
    if kind is float and not math.isfinite(value):  # nan passes every min/max comparison
        raise ConfigError(f"{where}: expected a finite number, found {value!r}")
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
        for k, v in sec.defaults.items():
            if sec.tables is not None and isinstance(v, dict):
                # a shipped table has every table key, as one written in fleet.toml does
                target[k] = {tk: _copy(spec.default) for tk, spec in sec.tables.items()} | _copy(v)
            else:
                target[k] = _copy(v)
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
                walk(value, full + ".")  # sub-sections such as [skills.timeouts]
            elif not prefix and name not in top_level:
                _warn_unknown("", f"[{name}]", [f"[{n}]" for n in top_level])
            elif prefix and prefix[:-1] in SCHEMA:
                continue  # keys of a section were handled by _apply_section
            elif isinstance(value, dict):
                walk(value, full + ".")

    walk(raw, "")
    if cfg["fleet"]["air_gap_mode"]:
        cfg["fleet"]["offline_mode"] = True
    _check_roles(cfg)
    _check_store(cfg)
    _check_filesystem(cfg)
    _check_schedules(cfg)
    _check_notify(cfg)
    if not cfg["fleet"]["host"]:
        cfg["fleet"]["host"] = socket.gethostname()
    return cfg


def _check_store(cfg: dict) -> None:
    """A DSN in fleet.toml never carries a password (fleet.toml is shared,
    backed up and shown): it goes to ~/.pgpass, PGPASSWORD or the secrets
    file's FLEET_STORE_DSN."""
    dsn = cfg["store"]["dsn"]
    if not dsn:
        return
    from urllib.parse import urlsplit

    has_password = False
    if "://" in dsn:
        try:
            has_password = urlsplit(dsn).password is not None
        except ValueError:
            raise ConfigError("[store] dsn: not a valid URL; write it as postgresql://USER@HOST:PORT/DATABASE") \
                from None
    else:  # key=value form
        has_password = any(part.split("=", 1)[0].strip() == "password" for part in dsn.split())
    if has_password:
        raise ConfigError("[store] dsn holds a password, which must not live in fleet.toml; remove it and put it "
                          "in ~/.pgpass (or PGPASSWORD), or store the whole DSN as a secret: "
                          "`lead_client.py secret set FLEET_STORE_DSN 'postgresql://USER:PASSWORD@HOST/DB'`")


def _check_filesystem(cfg: dict) -> None:
    """Every zone has a path, and every override names declared zones."""
    fs = cfg.get("filesystem", {})
    zones = fs.get("zones", {})
    for name, zone in zones.items():
        if not zone["path"]:
            raise ConfigError(f"[filesystem.zones.{name}] has no path; set path = \"folder\" (under the fleet "
                              "home, or absolute)")
    for skill, override in fs.get("overrides", {}).items():
        unknown = [z for z in override["zones"] if z not in zones]
        if unknown:
            raise ConfigError(f"[filesystem.overrides.{skill}] zones names {', '.join(map(repr, unknown))}, "
                              f"not declared under [filesystem.zones] (declared: {', '.join(zones) or 'none'})")


def _check_schedules(cfg: dict) -> None:
    """Every [schedule.NAME] parses (cron fields, interval, zone): a bad one is a
    configuration error naming the entry. (Its skill and payload are checked by
    --check-config and at supervisor start: fleet.schedule.check_skills.)"""
    from .schedule import ScheduleError, parse_schedules

    try:
        parse_schedules(cfg)
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from None


def _check_notify(cfg: dict) -> None:
    """Every [notify.NAME] names its kind and the secret holding its URL."""
    from .notify import NotifyError, parse_targets

    try:
        parse_targets(cfg)
    except NotifyError as exc:
        raise ConfigError(str(exc)) from None


def _check_roles(cfg: dict) -> None:
    """Every role that runs workers needs an [affinity] entry (an empty list is
    a role that takes only tasks assigned to its workers by name), and no two
    workers may share a name; otherwise its workers would exit 78 at start."""
    seen: dict[str, str] = {}
    for name, role in worker_names(cfg):
        if role not in cfg["affinity"]:
            key = "coder_count" if role == "coder" else role
            raise ConfigError(
                f"[workers] {key} = {cfg['workers'][key]} runs role {role!r}, which has no [affinity] entry; "
                f"add `{role} = [\"skill\", ...]` under [affinity] (or `{role} = []` for a role that takes "
                f"only tasks assigned to it by name), or set [workers] {key} = 0 "
                f"(roles with an [affinity] entry: {', '.join(sorted(cfg['affinity']))})")
        if name in seen:
            raise ConfigError(f"[workers]: roles {seen[name]!r} and {role!r} both run a worker named {name!r}; "
                              "rename one of the roles")
        seen[name] = role


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
            sub.update(_copy(sec.defaults.get(key) or {}))  # a shipped table keeps its own defaults
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
    if (home is not None or os.environ.get("FLEET_HOME")) and not root.is_dir():
        # a mistyped --home must not quietly start a new, empty fleet there
        raise ConfigError(f"fleet home {root} (from {'--home' if home is not None else 'FLEET_HOME'}) is not "
                          f"a folder; fix the path, or create it first (mkdir -p {root}) for a new fleet")
    path = root / CONFIG_NAME
    raw: dict = {}
    if path.is_symlink() and not path.exists():
        # a dangling link must not quietly run the defaults in place of the operator's file
        raise ConfigError(f"{path} is a link to {os.readlink(path)}, which does not exist; point the link "
                          f"at the real fleet.toml, or remove it to run with the defaults")
    if path.exists():
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a file; move it away (mv {path} {path}.dir) and put "
                              f"the configuration file there (python -m fleet.config > {path} writes "
                              "the defaults), or remove it to run with the defaults")
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not valid UTF-8 (byte {exc.start}): TOML files are UTF-8 "
                              "text; save it again as UTF-8") from None
        except OSError as exc:  # unreadable (permissions, I/O error): say so, never run the defaults
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; check that it is a readable "
                              "file (ls -l, chmod u+r)") from None
    try:
        cfg = validate(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    cfg["home"] = str(root)
    cfg["config_file"] = str(path)
    cfg["paths"] = {k: _resolve(root, v) if isinstance(v, str) else v for k, v in cfg["paths"].items()}
    if os.environ.get("FLEET_DB"):
        cfg["paths"]["db"] = _resolve(root, os.environ["FLEET_DB"])
    return cfg


def _resolve(root: Path, value: str) -> str:
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (root / p))


def worker_names(cfg: dict) -> list[tuple[str, str]]:
    """(name, role) of every configured worker on this host, in a stable order
    (names carry the host where several hosts share the store: fleet.hosts)."""
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
    return [(qualified(cfg, name), role) for name, role in out]


def unclaimable_reason(cfg: dict, skill: str, assigned_to: str | None = None) -> str | None:
    """Why no configured worker would ever claim this task, or None when one would.
    (The task is still accepted: the operator may be about to start that worker.)"""
    names = worker_names(cfg)
    if assigned_to:
        if any(name == assigned_to for name, _ in names):
            return None
        if "@" in assigned_to and assigned_to != qualified(cfg, assigned_to.split("@", 1)[0]):
            return None  # another host's worker: its own fleet.toml says whether it runs
        known = ", ".join(name for name, _ in names) or "(none)"
        hint = (f" (on a fleet that spans several hosts a worker's name carries its host, like "
                f"{qualified(cfg, assigned_to)!r})" if qualified(cfg, assigned_to) != assigned_to else "")
        return (f"no configured worker is named {assigned_to!r} (workers on this host: {known}){hint}; "
                "the task waits until a worker with that name runs")
    if cfg["workers"]["idle_takes_any_skill"] and names:
        return None
    if any(skill in role_skills(cfg, role) for _, role in names):
        return None
    return (f"no running role claims skill {skill!r}: add it to a role in [affinity] of fleet.toml "
            f"(e.g. coder = [..., \"{skill}\"]) with a worker count above 0, or assign the task to a "
            "worker by name; the task waits until then")


def air_gap_refusal(cfg: dict, skill: str) -> str | None:
    """Why air-gap mode refuses to run `skill` (deny by default: only the
    skills in [air_gap] allowed_skills run), or None."""
    if not cfg["fleet"]["air_gap_mode"] or skill in cfg["air_gap"]["allowed_skills"]:
        return None
    allowed = ", ".join(cfg["air_gap"]["allowed_skills"]) or "none yet"
    return (f"the fleet is in air-gap mode, which runs only the skills in [air_gap] allowed_skills ({allowed}); "
            f"add \"{skill}\" there in fleet.toml to allow it")


def role_skills(cfg: dict, role: str) -> list[str]:
    return list(cfg["affinity"].get(role, []))


def role_concurrency(cfg: dict, role: str) -> int:
    """How many tasks one worker of `role` runs at once ([workers.concurrency])."""
    return int(cfg["workers"].get("concurrency", {}).get(role, 1))


def skill_timeout(cfg: dict, skill: str, declared: float | None) -> float:
    """Config override, else the skill's TIMEOUT_S, else the default."""
    override = cfg["skills"]["timeouts"].get(skill)
    if override is not None:
        return float(override)
    return float(declared) if declared else float(cfg["skills"]["default_timeout_s"])


def load_showing_warnings(home: str | os.PathLike | None = None) -> dict:
    """load_config with each ConfigWarning printed on stderr; raises ConfigError."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConfigWarning)
        warnings.showwarning = _show_warning
        return load_config(home)


def load_or_exit(home: str | os.PathLike | None = None) -> dict:
    """For entry points: print the problem and exit 78 on a bad config."""
    try:
        return load_showing_warnings(home)
    except ConfigError as exc:
        print(f"fleet: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EX_CONFIG) from None


def edit_config(home: str | os.PathLike | None, changes: dict[tuple[str, str], Any]) -> dict:
    """Set `changes` ({(section, key): value}) in the home's fleet.toml with
    tomlkit, so the operator's comments and layout survive. The whole result
    is validated against the schema first: an invalid value raises
    ConfigError with the schema's message and the file is left as it was.
    Written atomically. Returns the new configuration (as load_config)."""
    import tomlkit

    root = find_home(home)
    path = root / CONFIG_NAME
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the line it names") from None
    for (section, key), value in changes.items():
        if section not in SCHEMA:
            raise ConfigError(f"[{section}] is not a configuration section")
        table = doc
        for part in section.split("."):
            if part not in table:
                table[part] = tomlkit.table()
            table = table[part]
        table[key] = value
    with warnings.catch_warnings():  # unknown keys already in the file are load_config's to report
        warnings.simplefilter("ignore", ConfigWarning)
        validate(doc.unwrap())
    from fleet.atomic import atomic_write_text

    atomic_write_text(path, tomlkit.dumps(doc))
    return load_config(root)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fleet: warning: {message}", file=sys.stderr)


def _toml_value(value: Any) -> str:
    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
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
            note = f"  # {sec.values.doc}" if sec.values is not None else ""
            lines.append(f"{key} = {_toml_value(value)}{note}")
        if sec.tables is not None:
            lines.append(f"# Each [{name}.NAME] table has these keys:")
            for key, spec in sec.tables.items():
                lines.append(f"#   {key} = {_toml_value(spec.default)}  # {spec.doc}")
        for key, value in sec.defaults.items():
            if isinstance(value, dict):
                lines += ["", f"[{name}.{key}]"]
                for k, v in value.items():
                    spec = (sec.tables or {}).get(k) or sec.values
                    note = f"  # {spec.doc}" if spec is not None else ""
                    lines.append(f"{k} = {_toml_value(v)}{note}")
        if sec.examples:
            lines += ["", "# Examples (uncomment to use):", sec.examples]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m fleet.config > fleet.toml
    sys.stdout.write(render_default_toml())
