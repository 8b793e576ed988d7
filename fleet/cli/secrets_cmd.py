"""Secret commands on `fleet.secret_file`: set (value, `-` for stdin, --b64),
get, list (values masked, never printed) and delete. The file is 0600 and
written atomically by fleet.secret_file; a looser mode is reported as a warning.
"""

from __future__ import annotations

import os
import sys
import warnings

from .common import (
    EXIT_OK,
    CliError,
    Ctx,
    UsageError,
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
        path = str(secrets.secrets_path(cfg))
        if ctx.json:
            print_json({"key": a.key, "path": path, "stored": True})
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
    if a.secret_command == "delete":
        removed = _call(secrets.delete_secret, cfg, a.key)
        if ctx.json:
            print_json({"key": a.key, "removed": removed})
        elif removed:
            print(f"{a.key} removed from {secrets.secrets_path(cfg)}")
        if not removed:
            raise CliError(f"secret {a.key} is not in {secrets.secrets_path(cfg)}; nothing changed")
        return EXIT_OK
    values = _call(secrets.read_secrets, cfg)
    items = []
    for key in sorted(values):
        env = os.environ.get(key)
        items.append({"key": key, "masked": mask(env or values[key]), "source": "env" if env else "file"})
    if ctx.json:
        print_json({"path": str(secrets.secrets_path(cfg)), "secrets": items})
    elif not items:
        print(f"no secrets in {secrets.secrets_path(cfg)}")
    else:
        print_table(["key", "value", "source"], [[i["key"], i["masked"], i["source"]] for i in items])
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("secret", help="API keys in the secrets file: set, get, list, delete")
    ss = p.add_subparsers(dest="secret_command", metavar="set|get|list|delete", required=True)
    q = ss.add_parser("set", parents=[json_parent], help="store a secret (VALUE '-' reads stdin)")
    q.add_argument("key")
    q.add_argument("value", help="the value, or '-' to read it from stdin (keeps it out of the process list)")
    q.add_argument("--b64", action="store_true", help="the value is base64 (UTF-8 text)")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("get", parents=[json_parent], help="print a secret's value")
    q.add_argument("key")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("list", parents=[json_parent], help="secret names with masked values")
    q.set_defaults(func=cmd_secret, _parser=q)
    q = ss.add_parser("delete", parents=[json_parent], help="remove a secret from the file")
    q.add_argument("key")
    q.set_defaults(func=cmd_secret, _parser=q)
