"""Secret commands on `fleet.secret_file`: set (value, `-` for stdin, --b64),
rotate (the new value from stdin), get, list (values masked, never printed,
with each key's registry entry) and delete. The file is 0600 and written
atomically by fleet.secret_file; a looser mode is reported as a warning. Set,
rotate and delete keep keys_registry.toml (fleet.key_registry) up to date and
leave an audit event naming the key, never its value.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

from .common import (
    EXIT_OK,
    SENDER,
    CliError,
    Ctx,
    UsageError,
    fmt_ts,
    positive_int,
    print_json,
    print_table,
    read_value,
)


def mask(value: str) -> str:
    """Enough to tell two keys apart, never enough to use one."""
    if len(value) >= 16:
        return f"****{value[-4:]} ({len(value)} chars)"
    return f"**** ({len(value)} chars)"


def _call(fn, *args):
    from fleet.secret_file import SecretsError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args)
        except SecretsError as exc:
            raise CliError(str(exc)) from None
    for w in caught:
        print(f"lead_client.py: warning: {w.message}", file=sys.stderr)
    return result


def _registry(fn, *args, **kwargs):
    """A key-registry update; the secret itself is already stored, so a
    registry that cannot be written is a warning, not a failure."""
    from fleet.key_registry import RegistryError

    try:
        return fn(*args, **kwargs)
    except (RegistryError, OSError) as exc:
        print(f"lead_client.py: warning: the key registry was not updated: {exc}", file=sys.stderr)
        return None


def _audit(ctx: Ctx, action: str, key: str) -> None:
    """The audit event of a secret change: its name only. The secret is
    stored already, so a store that cannot be reached is a warning."""
    from fleet.store.errors import StoreError

    try:
        ctx.store.record_event(SENDER, action, detail={"key": key})
    except (StoreError, CliError, OSError) as exc:
        print(f"lead_client.py: warning: the audit trail did not record this ({exc})", file=sys.stderr)


def _cmd_rotate(ctx: Ctx) -> int:
    from fleet import key_registry
    from fleet import secret_file as secrets

    a, cfg = ctx.args, ctx.cfg
    current = _call(secrets.read_secrets, cfg).get(a.key)
    if current is None:
        raise CliError(f"secret {a.key} is not in {secrets.secrets_path(cfg)}; nothing to rotate "
                       f"(store it first with `secret set {a.key} -`)")
    if sys.stdin.isatty():
        print(f"new value for {a.key} (end with Ctrl-D):", file=sys.stderr)
    value = read_value("-", b64=a.b64, what=f"new value of {a.key}")
    if value == "":
        raise UsageError(f"the new value of {a.key} is empty; nothing was rotated")
    if value == current:
        raise CliError(f"the new value of {a.key} is the one already stored; nothing was rotated "
                       "(issue a new key at the provider first)")
    _call(secrets.set_secret, cfg, a.key, value)
    entry = _registry(key_registry.record_rotation, cfg, a.key, ts=time.time())
    _audit(ctx, "secret_rotate", a.key)
    if ctx.json:
        print_json({"key": a.key, "rotated": True, "registry": entry})
    else:
        print(f"{a.key} rotated in {secrets.secrets_path(cfg)}; revoke the old key at its provider")
        if os.environ.get(a.key):
            print(f"note: ${a.key} is set in this environment and overrides the file", file=sys.stderr)
    return EXIT_OK


def cmd_secret(ctx: Ctx) -> int:
    from fleet import secret_file as secrets

    a = ctx.args
    cfg = ctx.cfg
    if getattr(a, "key", None) is not None:
        try:
            secrets.check_key(a.key)
        except secrets.SecretsError as exc:
            raise UsageError(str(exc)) from None
    withheld = secrets.air_gap_withheld(cfg)
    if withheld and a.secret_command == "list":
        if ctx.json:
            print_json({"path": str(secrets.secrets_path(cfg)), "secrets": [], "withheld": withheld})
        else:
            print(withheld)
        return EXIT_OK
    if withheld:  # get (the file is not read), set and delete (it is not changed)
        raise CliError(f"{a.secret_command} {a.key}: {withheld}")
    if a.secret_command == "set":
        if a.value == "-" and sys.stdin.isatty():
            print(f"value for {a.key} (end with Ctrl-D):", file=sys.stderr)
        value = read_value(a.value, b64=a.b64, what=f"value of {a.key}")
        if value == "":
            raise UsageError(f"the value of {a.key} is empty; nothing was stored (`secret delete {a.key}` removes one)")
        _call(secrets.set_secret, cfg, a.key, value)
        from fleet import key_registry

        entry = _registry(key_registry.record_set, cfg, a.key, ts=time.time(), provider=a.provider,
                          used_by=a.used_by, rotation_days=a.rotation_days)
        _audit(ctx, "secret_set", a.key)
        path = str(secrets.secrets_path(cfg))
        if ctx.json:
            print_json({"key": a.key, "path": path, "stored": True, "registry": entry})
        else:
            print(f"{a.key} stored in {path} (mode 0600)")
            if os.environ.get(a.key):
                print(f"note: ${a.key} is set in this environment and overrides the file", file=sys.stderr)
        return EXIT_OK
    if a.secret_command == "get":
        value = _call(secrets.get_secret, cfg, a.key)
        if value is None:
            raise CliError(f"secret {a.key} is not set (neither in the environment nor in "
                           f"{secrets.secrets_path(cfg)}); set it with `secret set {a.key} -`")
        source = "env" if os.environ.get(a.key) else "file"
        if ctx.json:
            print_json({"key": a.key, "value": value, "source": source})
        else:
            sys.stdout.write(value + "\n")
        return EXIT_OK
    if a.secret_command == "rotate":
        return _cmd_rotate(ctx)
    if a.secret_command == "delete":
        removed = _call(secrets.delete_secret, cfg, a.key)
        if removed:
            from fleet import key_registry

            _registry(key_registry.record_delete, cfg, a.key)
            _audit(ctx, "secret_delete", a.key)
        if ctx.json:
            print_json({"key": a.key, "removed": removed})
        elif removed:
            print(f"{a.key} removed from {secrets.secrets_path(cfg)}")
        if not removed:
            raise CliError(f"secret {a.key} is not in {secrets.secrets_path(cfg)}; nothing changed")
        return EXIT_OK
    from fleet import key_registry

    values = _call(secrets.read_secrets, cfg)
    registry = _registry(key_registry.read_registry, cfg) or {}
    items = []
    ts = time.time()
    for key in sorted(values):
        env = os.environ.get(key)
        entry = registry.get(key)
        items.append({"key": key, "masked": mask(env or values[key]), "source": "env" if env else "file",
                      "registry": None if entry is None else {**entry, **key_registry.due(entry, ts)}})
    if ctx.json:
        print_json({"path": str(secrets.secrets_path(cfg)), "registry_path": str(key_registry.registry_path(cfg)),
                    "secrets": items})
    elif not items:
        print(f"no secrets in {secrets.secrets_path(cfg)}")
    else:
        def rotation(i):
            r = i["registry"]
            if r is None:
                return "(not in the registry)", ""
            when = fmt_ts(r["rotated_at"])
            state = f"OVERDUE by {r['overdue_days']:g}d" if r["overdue"] else f"due {fmt_ts(r['due_at'])[:10]}"
            return when, state

        print_table(["key", "value", "source", "provider", "rotated", "rotation"],
                    [[i["key"], i["masked"], i["source"], (i["registry"] or {}).get("provider", ""),
                      *rotation(i)] for i in items])
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("secret", help="API keys in the secrets file: set, rotate, get, list, delete")
    ss = p.add_subparsers(dest="secret_command", metavar="set|rotate|get|list|delete", required=True)
    q = ss.add_parser("set", parents=[json_parent], help="store a secret (VALUE '-' reads stdin)")
    q.add_argument("key")
    q.add_argument("value", help="the value, or '-' to read it from stdin (keeps it out of the process list)")
    q.add_argument("--b64", action="store_true", help="the value is base64 (UTF-8 text)")
    q.add_argument("--provider", help="key registry: who issued it (default: inferred from the config)")
    q.add_argument("--used-by", action="append", metavar="WHERE",
                   help="key registry: where Fleet uses it (repeat; default: inferred from the config)")
    q.add_argument("--rotation-days", type=positive_int,
                   help="key registry: rotate it at least this often (default 90 days)")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("rotate", parents=[json_parent],
                      help="replace a stored secret with a new value read from stdin and record the rotation")
    q.add_argument("key")
    q.add_argument("--b64", action="store_true", help="the new value is base64 (UTF-8 text)")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("get", parents=[json_parent], help="print a secret's value")
    q.add_argument("key")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("list", parents=[json_parent], help="secret names with masked values")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("delete", parents=[json_parent], help="remove a secret from the file")
    q.add_argument("key")
    q.set_defaults(func=cmd_secret, _parser=q)
