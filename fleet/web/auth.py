"""Dashboard access control: the token (0600 file in the fleet home, or the
FLEET_DASHBOARD_TOKEN secret), Bearer checks in constant time, browser
sign-in with an HttpOnly SameSite cookie naming a server-side session
(sessions.py: rotated at sign-in, ended at sign-out), CSRF for
cookie-authenticated mutations, read-only mode, Host checks on loopback,
redaction of every encoded form of a secret (fleet.redact), a same-origin `next` after
sign-in, and the security headers (CSP without inline script) on every response.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import unicodedata
import urllib.parse

from flask import Blueprint, jsonify, redirect, request, session, url_for

from .common import ApiError, ctx, declared_body, doc, error_response, json_body

TOKEN_SECRET_KEY = "FLEET_DASHBOARD_TOKEN"  # nosec B105 (a secret's name, not a value)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Reachable without a token even where reads need one: the sign-in itself.
OPEN_ENDPOINTS = {"static", "auth.session_get", "auth.session_create", "pages.signin"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}

bp = Blueprint("auth", __name__)
log = logging.getLogger("dashboard.auth")


# -- the token -------------------------------------------------------------
def _secret_lookup(cfg: dict, key: str) -> str | None:
    from fleet import secret_file as mod

    try:
        return mod.get_secret(cfg, key) or None
    except (mod.SecretsError, OSError, ValueError):  # a broken secrets file must not keep the dashboard down
        return os.environ.get(key) or None


def token_path(cfg: dict) -> str:
    path = os.path.expanduser(cfg["dashboard"]["token_file"])
    return path if os.path.isabs(path) else os.path.join(cfg["home"], path)


def load_or_create_token(cfg: dict) -> tuple[str, str]:
    """(token, where it came from). Creates the 0600 token file on first start."""
    configured = _secret_lookup(cfg, TOKEN_SECRET_KEY)
    if configured:
        return configured.strip(), f"secret {TOKEN_SECRET_KEY}"
    path = token_path(cfg)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)  # someone loosened it: tighten before reading
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
        if len(token) < 16:
            raise RuntimeError(
                f"the dashboard token in {path} is shorter than 16 characters; "
                "delete the file to have a new one generated"
            ) from None
        return token, path
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return token, path


def is_loopback_host(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- per-request checks ----------------------------------------------------
def _session_fingerprint(token: str) -> str:
    return hmac.new(token.encode(), b"fleet-dashboard-session", hashlib.sha256).hexdigest()


def session_secret_key(token: str) -> bytes:
    return hmac.new(token.encode(), b"fleet-dashboard-cookie-signing", hashlib.sha256).digest()


def _bearer_ok(token: str) -> bool | None:
    """True/False for a presented Bearer token; None when none was sent."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def _cookie_ok(token: str) -> bool:
    """A signed cookie for this token whose session id is still live (not signed out)."""
    mark = session.get("auth")
    if not (isinstance(mark, str) and hmac.compare_digest(mark, _session_fingerprint(token))):
        return False
    return ctx().sessions.is_live(session.get("sid"))


def _host_name(host: str) -> str:
    """The name part of a Host header ('[::1]:5555' -> '[::1]', 'x:5555' -> 'x')."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def check_request():
    """before_request: decide who the caller is and whether it may do this."""
    c = ctx()
    request.fleet_auth = None
    if c.loopback and not is_loopback_host(_host_name(request.host)):
        return error_response(
            421, "this dashboard listens on loopback and only answers requests addressed to "
                 "localhost/127.0.0.1 (a different Host header suggests DNS rebinding)")
    if "token" in request.args or "access_token" in request.args:
        return error_response(400, "tokens are never accepted in the URL; send 'Authorization: Bearer <token>'")
    bearer = _bearer_ok(c.token)
    if bearer is False:
        return error_response(401, "the Authorization header does not carry the dashboard token; "
                                   f"find it in {c.token_source}")
    if bearer:
        request.fleet_auth = "bearer"
    elif _cookie_ok(c.token):
        request.fleet_auth = "cookie"
    endpoint = request.endpoint or ""
    mutating = request.method not in SAFE_METHODS
    if endpoint in OPEN_ENDPOINTS or endpoint.endswith(".static"):
        return None
    if request.fleet_auth is None and (mutating or not c.loopback):
        if endpoint.startswith("pages.") and not mutating:
            return redirect(url_for("pages.signin", next=request.path))
        why = "this action" if mutating else "every request (the dashboard is bound to a non-loopback address)"
        return error_response(401, f"{why} needs the dashboard token: send 'Authorization: Bearer <token>' "
                                   f"or sign in at /signin (the token is in {c.token_source})")
    if mutating:
        if c.read_only and endpoint != "auth.session_delete":
            return error_response(403, "the dashboard is read-only ([dashboard] read_only = true); "
                                       "use the CLI or turn read-only off to make changes")
        if request.fleet_auth == "cookie":
            sent = request.headers.get("X-CSRF-Token", "")
            expected = session.get("csrf", "")
            if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                return error_response(403, "missing or wrong CSRF token: browser sessions must send the "
                                           "X-CSRF-Token header from GET /api/session with every change")
        if request.path.startswith("/api/") and request.get_data(cache=True):
            # A body that is there must be a JSON object, also where the endpoint
            # reads none: a broken request must not act as if it were empty.
            json_body(required=False)
    return None


def scrub_response(resp):
    """after_request: blank any secret value out of a buffered text response."""
    if resp.direct_passthrough or resp.is_streamed:
        return resp
    if not (resp.mimetype or "").startswith(("application/json", "text/", "application/openmetrics")):
        return resp
    body = resp.get_data(as_text=True)
    clean = ctx().redactor.scrub(body)
    if clean != body:
        resp.set_data(clean)
    return resp


# -- headers on every response ---------------------------------------------
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def security_headers(resp):
    """after_request: no inline script, no framing, no sniffing, no cross-site referrer."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    return resp


def safe_next(raw: str | None) -> str:
    """The page to open after sign-in: a same-origin path, else "/". Browsers
    drop tabs and newlines and read a backslash as a slash, so any of those
    (or another control character, raw or after NFKC normalising) is refused
    along with a scheme, a host or a leading '//'."""
    if not raw:
        return "/"
    for candidate in (raw, unicodedata.normalize("NFKC", raw)):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return "/"
        if any(ch == "\\" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
               for ch in candidate):
            return "/"
        parts = urllib.parse.urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return "/"
    return raw


# -- sign-in endpoints -----------------------------------------------------
def _session_info() -> dict:
    c = ctx()
    info = {
        "authenticated": request.fleet_auth is not None,
        "method": request.fleet_auth,
        "read_only": c.read_only,
        "reads_need_token": not c.loopback,
        "fleet_name": c.cfg["fleet"]["name"],
    }
    if request.fleet_auth == "cookie":
        info["csrf_token"] = session.get("csrf")
    return info


@bp.get("/api/session")
@doc("Who the caller is signed in as, the read-only flag and (for browser sessions) the CSRF token",
     tag="auth")
def session_get():
    return jsonify(_session_info())


@bp.post("/api/session")
@doc("Sign in a browser: exchange the token for an HttpOnly SameSite session cookie",
     body={"type": "object", "properties": {"token": {"type": "string"}}}, body_required=False, tag="auth",
     responses={"401": "wrong or missing token"})
def session_create():
    c = ctx()
    presented = None
    if request.fleet_auth == "bearer":
        presented = c.token
    else:
        data = json_body(required=False)
        value = data.get("token")
        if isinstance(value, str) and value.strip():
            presented = value.strip()
    if presented is None or not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), c.token.encode()):
        raise ApiError(401, f"that is not the dashboard token; it is in {c.token_source}")
    declared_body()
    previous = session.get("sid")  # a session id is never carried across a sign-in
    session.clear()
    session.permanent = True
    session["sid"] = c.sessions.create(replaces=previous if isinstance(previous, str) else None)
    session["auth"] = _session_fingerprint(c.token)
    session["csrf"] = secrets.token_urlsafe(24)
    request.fleet_auth = "cookie"
    return jsonify(_session_info())


@bp.delete("/api/session")
@doc("Sign out: end the browser session on the server (a copied cookie stops working) and drop the cookie",
     tag="auth")
def session_delete():
    ctx().sessions.revoke(session.get("sid"))
    session.clear()
    return jsonify({"authenticated": False})


def install(app, c) -> None:
    app.secret_key = session_secret_key(c.token)
    app.config.update(
        SESSION_COOKIE_NAME="fleet_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=int(c.cfg["dashboard"]["session_hours"] * 3600),
    )
    app.before_request(check_request)
    app.after_request(scrub_response)
    app.after_request(security_headers)
    app.register_blueprint(bp)
