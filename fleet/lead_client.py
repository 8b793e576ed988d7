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
import contextlib
import importlib
import io
import sys

from fleet.cli import AREAS, COMMANDS
from fleet.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Ctx,
    UsageError,
    hold_json_output,
    release_json_output,
)

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
    as_json = "--json" in argv  # errors then also go to stdout as {"error": ..., "exit": N}
    undecodable = next((a for a in argv if not _valid_text(a)), None)
    if undecodable is not None:  # bytes the locale could not decode (surrogate escapes)
        message = (f"argument {undecodable.encode('utf-8', 'backslashreplace').decode()!r} is not "
                   "valid UTF-8 text; pass it in UTF-8 (or --b64 for payloads)")
        print(f"{PROG}: error: {message}", file=sys.stderr)
        if as_json:
            release_json_output(message, EXIT_USAGE)
        return EXIT_USAGE
    parser = build_parser(_command_of(argv))
    args = _parse(parser, argv, as_json)
    ctx = Ctx(args)
    if ctx.json:
        hold_json_output()
    error: tuple[str, int] | None = None
    try:
        return int(args.func(ctx) or 0)
    except UsageError as exc:
        error = (str(exc), _usage_error(args, parser, exc))
    except CliError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        error = (str(exc), exc.code)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        error = ("interrupted", 130)
    except BrokenPipeError:
        return 0
    except Exception as exc:
        from fleet.store.errors import InvalidInput, StoreError

        if isinstance(exc, InvalidInput):  # the store refused an argument: nothing was written
            error = (str(exc), _usage_error(args, parser, exc))
        elif isinstance(exc, (StoreError, OSError)):
            print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
            error = (str(exc), EXIT_FAILED)
        else:
            error = (f"internal error ({type(exc).__name__}: {exc}); see the traceback on stderr", EXIT_FAILED)
            raise
    finally:
        ctx.close()
        if ctx.json:
            release_json_output(*(error or (None, None)))
    return error[1]


def _parse(parser: argparse.ArgumentParser, argv: list[str], as_json: bool) -> argparse.Namespace:
    """parse_args; under --json a refused command line also prints
    {"error": ..., "exit": 2} on stdout (argparse's own text stays on stderr)."""
    if not as_json:
        return parser.parse_args(argv)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return parser.parse_args(argv)
    except SystemExit as exc:
        text = captured.getvalue()
        sys.stderr.write(text)
        if exc.code not in (0, None):
            message = text.strip().splitlines()[-1] if text.strip() else "invalid command line"
            release_json_output(message.split(": error: ", 1)[-1], exc.code if isinstance(exc.code, int) else 2)
        raise


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
