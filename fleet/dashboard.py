"""The dashboard: Flask app factory (`create_app`) for the web UI and JSON API,
served by waitress on 127.0.0.1:5555 by default. `python fleet/dashboard.py
[--host H] [--port N]`; a busy port is reported with the process holding it.
"""

if __package__ in (None, ""):  # run as `python fleet/dashboard.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "fleet"

import argparse
import errno
import logging
import os
import socket
import sys
from pathlib import Path

from flask import Flask, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from fleet.config import EX_CONFIG, load_or_exit
from fleet.db import InvalidInput, InvalidTransition, NotFound, StoreError, open_store
from fleet.ports import port_holder
from fleet.web import register_blueprints
from fleet.web.auth import install as install_auth
from fleet.web.auth import load_or_create_token
from fleet.web.common import ApiError, check_declared_input, error_response
from fleet.web.context import FleetContext

WEB_DIR = Path(__file__).resolve().parent / "web"
log = logging.getLogger("dashboard")


def create_app(cfg: dict | None = None, *, store=None, token: str | None = None,
               host: str | None = None, read_only: bool | None = None) -> Flask:
    """Build the dashboard app for a loaded config (default: the fleet home's)."""
    if cfg is None:
        cfg = load_or_exit()
    if store is None:
        store = open_store(cfg)
    token_source = "the token passed to create_app"  # nosec B105 (a description)
    if token is None:
        token, token_source = load_or_create_token(cfg)
    c = FleetContext(cfg, store, token, token_source, host=host, read_only=read_only)
    app = Flask("fleet.dashboard", template_folder=str(WEB_DIR / "templates"),
                static_folder=str(WEB_DIR / "static"), static_url_path="/static")
    app.json.sort_keys = False
    app.extensions["fleet"] = c
    install_auth(app, c)
    app.before_request(check_declared_input)  # after the auth check: a stranger learns nothing from it
    register_blueprints(app, c)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.message, **exc.extra)

    @app.errorhandler(InvalidInput)
    def invalid_input(exc):
        return error_response(400, str(exc))

    @app.errorhandler(NotFound)
    def not_found(exc):
        return error_response(404, str(exc))

    @app.errorhandler(InvalidTransition)
    def invalid_transition(exc):
        return error_response(409, str(exc))

    @app.errorhandler(StoreError)
    def store_error(exc):
        log.error("store error on %s %s: %s", request.method, request.path, exc)
        return error_response(503, f"the fleet database could not answer: {exc}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.path == "/metrics":
            hint = {404: f"no such endpoint {request.path}; see /api/openapi.json",
                    405: f"{request.method} is not allowed on {request.path}; see /api/openapi.json"}
            resp = error_response(exc.code or 500, hint.get(exc.code, exc.description or exc.name))
            if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110: a 405 names what is allowed
                resp.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
            return resp
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, f"internal error ({type(exc).__name__}); details are in the dashboard log")


# -- serving ---------------------------------------------------------------
class PortBusy(SystemExit):
    """The dashboard's port is held by another process (the message names it)."""


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen, or raise SystemExit with who holds the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            who = port_holder(port) or "another process (run `ss -ltnp` to see which)"
            raise PortBusy(
                f"dashboard: port {port} on {host} is already in use by {who}; "
                f"stop it or start the dashboard with --port N (or set [dashboard] port)"
            ) from None
        raise SystemExit(f"dashboard: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def serve(app: Flask, sock: socket.socket) -> None:
    from waitress import serve as waitress_serve

    c = app.extensions["fleet"]
    dash = c.cfg["dashboard"]
    threads = int(dash["threads"]) + int(dash["max_streams"]) + int(dash["max_anonymous_streams"])
    waitress_serve(app, sockets=[sock], threads=threads, ident="fleet-dashboard",
                   channel_timeout=max(60, int(dash["keepalive_s"] * 4)), connection_limit=threads + 64,
                   clear_untrusted_proxy_headers=True, channel_request_lookahead=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dashboard", description="Fleet dashboard and JSON API")
    parser.add_argument("--host", help="address to bind (default: [dashboard] host)")
    parser.add_argument("--port", type=int, help="TCP port (default: [dashboard] port)")
    parser.add_argument("--read-only", action="store_true", help="refuse every mutation")
    args = parser.parse_args(argv)
    cfg = load_or_exit()
    from fleet.logs import setup_process_logging

    setup_process_logging("dashboard", cfg, to_stderr=sys.stderr.isatty())
    if cfg["fleet"]["air_gap_mode"]:
        print("dashboard: air_gap_mode is on; the dashboard stays off", file=sys.stderr)
        return 0
    host = args.host or cfg["dashboard"]["host"]
    port = args.port if args.port is not None else cfg["dashboard"]["port"]
    if not 1 <= port <= 65535:
        print(f"dashboard: --port must be from 1 to 65535, got {port}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(host, port)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        # A busy port is the setting's problem (another fleet or program has
        # it): 78 makes the supervisor park the dashboard, not crash-loop it.
        return EX_CONFIG if isinstance(exc, PortBusy) else 1
    try:
        app = create_app(cfg, host=host, read_only=True if args.read_only else None)
    except (RuntimeError, OSError) as exc:  # an unusable token file: a configuration problem
        sock.close()
        print(f"dashboard: {exc}", file=sys.stderr)
        return EX_CONFIG
    except StoreError as exc:  # e.g. a corrupt database: say so, no traceback
        sock.close()
        print(f"dashboard: {exc}", file=sys.stderr)
        return 1
    c = app.extensions["fleet"]
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard: http://{shown}:{port}/  (token in {c.token_source}"
          f"{'; read-only' if c.read_only else ''}; pid {os.getpid()})", flush=True)
    log.info("dashboard listening on %s:%s", host, port)
    try:
        serve(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        if c.hub is not None:
            c.hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
