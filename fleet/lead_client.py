"""lead_client: the operator's command line for a fleet (status, control,
tasks, messaging, cost, logs, secrets, service install, backup, report).
This file is only the argparse front; the commands live in `fleet/cli/`.
"""

if __package__ in (None, ""):  # run as `python fleet/lead_client.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "fleet"

import argparse
import importlib
import sys

from fleet.cli import AREAS, COMMANDS
from fleet.cli.common import EXIT_FAILED, EXIT_USAGE, CliError, Ctx, UsageError

PROG = "lead_client.py"


def _command_of(argv: list[str]) -> str | None:
    """The command word of a command line, if it names a known command."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--home":
            i += 2
        elif word.startswith("--home="):
            i += 1
        else:
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (with `only`) one holding just that command's area."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate a Fleet: status and control, tasks, messaging, cost, logs, secrets and operations. "
                    "Exit codes: 0 ok, 1 failure, 2 usage error, 3 degraded, 69 no supervisor, 99 wait timed out.",
    )
    parser.add_argument("--home", metavar="DIR", help="fleet home (default: $FLEET_HOME, the current "
                                                      "directory when it holds fleet.toml, else the repository)")
    json_parent = argparse.ArgumentParser(add_help=False)
    json_parent.add_argument("--json", action="store_true", help="machine-readable output (see docs/cli.md)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in ([COMMANDS[only]] if only in COMMANDS else AREAS):
        importlib.import_module(f"fleet.cli.{area}").register(sub, json_parent)
    for name, p in sub.choices.items():
        p.set_defaults(_parser=p)
        p.prog = f"{PROG} {name}"
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    undecodable = next((a for a in argv if not _valid_text(a)), None)
    if undecodable is not None:  # bytes the locale could not decode (surrogate escapes)
        print(f"{PROG}: error: argument {undecodable.encode('utf-8', 'backslashreplace').decode()!r} is not "
              "valid UTF-8 text; pass it in UTF-8 (or --b64 for payloads)", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    ctx = Ctx(args)
    try:
        return int(args.func(ctx) or 0)
    except UsageError as exc:
        return _usage_error(args, parser, exc)
    except CliError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        from fleet.store.errors import InvalidInput, StoreError

        if isinstance(exc, InvalidInput):  # the store refused an argument: nothing was written
            return _usage_error(args, parser, exc)
        if not isinstance(exc, (StoreError, OSError)):
            raise
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        ctx.close()


def _usage_error(args, parser, exc: Exception) -> int:
    sub = getattr(args, "_parser", parser)
    sys.stderr.write(sub.format_usage())
    print(f"{sub.prog}: error: {exc}", file=sys.stderr)
    return EXIT_USAGE


def _valid_text(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
