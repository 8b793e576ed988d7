"""Entry point of the desktop launcher: `python launcher/launcher.py [--home DIR]`
or `fleet-launcher`. Checks that tkinter is there (else says how to install
it and exits 69), reads the fleet home's config, and opens the window.
"""

if __package__ in (None, ""):  # run as `python launcher/launcher.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "launcher"

import argparse
import sys

EXIT_NO_TK = 69  # EX_UNAVAILABLE
EXIT_CONFIG = 78

TK_HINT = """the launcher needs Python's tkinter (Tk), which this Python ({exe}) lacks.
Install it, then run the launcher again:
  Debian/Ubuntu:  sudo apt install python3-tk
  Fedora:         sudo dnf install python3-tkinter
  Arch:           sudo pacman -S tk
  macOS (brew):   brew install python-tk@3.11   (match your Python's version)
  Windows:        re-run the python.org installer and tick "tcl/tk and IDLE"
The dashboard (python fleet/dashboard.py) and lead_client work without it."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-launcher", description="The Fleet desktop launcher (Tk).")
    parser.add_argument("--home", metavar="DIR", help="fleet home (default: $FLEET_HOME, the current directory "
                                                      "when it holds fleet.toml, else the repository)")
    parser.add_argument("--tab", help="the tab to show first (fleet, tasks, comm, ...)")
    args = parser.parse_args(argv)
    try:
        import tkinter as tk
    except ImportError:
        print("fleet-launcher: " + TK_HINT.format(exe=sys.executable), file=sys.stderr)
        return EXIT_NO_TK
    from fleet.config import ConfigError

    from .client import FleetClient

    try:
        client = FleetClient(args.home)
    except ConfigError as exc:
        print(f"fleet-launcher: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        root = tk.Tk()
    except tk.TclError as exc:
        print(f"fleet-launcher: cannot open a window ({exc}); is there a display (DISPLAY, or a desktop "
              "session)?", file=sys.stderr)
        return EXIT_NO_TK
    from .app import App

    app = App(root, client)
    if args.tab:
        app.select(args.tab)
    root.mainloop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
