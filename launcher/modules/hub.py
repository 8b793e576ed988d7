"""The module hub: reads a registry.json (URL or path) listing each module's
name, version, file url and SHA-256, and installs, updates and uninstalls
modules in the fleet home's [launcher] modules_dir. A download whose SHA-256
or Module.NAME does not match is refused before anything is written.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from . import BUNDLED_DIR

MANIFEST = "manifest.json"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class HubError(Exception):
    """The hub cannot do what was asked; the message says why and what to do."""


def registry_source(cfg: dict, override: str | None = None) -> str:
    source = override or cfg["launcher"]["hub_registry"]
    if not source:
        raise HubError("no module hub is configured: set [launcher] hub_registry in fleet.toml to the URL or "
                       "path of a registry.json (or pass --registry)")
    return source


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


def _fetch(source: str) -> bytes:
    if _is_url(source):
        import httpx

        try:
            r = httpx.get(source, timeout=30.0, follow_redirects=True)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            raise HubError(f"download of {source} failed: {exc}") from None
        return r.content
    path = Path(source[7:] if source.startswith("file://") else source).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise HubError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_registry(source: str) -> list[dict]:
    """The registry's modules: [{name, version, url (absolute), sha256, description}]."""
    try:
        doc = json.loads(_fetch(source))
    except ValueError as exc:
        raise HubError(f"{source} is not a valid registry.json ({exc})") from None
    items = doc.get("modules") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise HubError(f"{source}: expected {{\"modules\": [...]}}")
    out = []
    for m in items:
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in ("name", "version", "url", "sha256")):
            raise HubError(f"{source}: every module needs name, version, url and sha256 (strings); bad entry {m!r}")
        base = source if _is_url(source) else Path(source).expanduser().resolve().parent.as_uri() + "/"
        url = m["url"] if _is_url(m["url"]) or os.path.isabs(m["url"]) else urljoin(base, m["url"])
        out.append({"name": m["name"], "version": m["version"], "url": url, "sha256": m["sha256"].lower(),
                    "description": m.get("description", "")})
    return out


def modules_dir(cfg: dict) -> Path:
    return Path(cfg["home"]) / cfg["launcher"]["modules_dir"]


def read_manifest(cfg: dict) -> dict:
    path = modules_dir(cfg) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(cfg: dict, manifest: dict) -> None:
    from fleet.atomic import atomic_write_text

    atomic_write_text(modules_dir(cfg) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def declared_name(source: bytes) -> str | None:
    """Module.NAME as written in the file, read without running it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Module":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NAME"
                                                        for t in stmt.targets):
                    if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                        return stmt.value.value
    return None


def list_installed(cfg: dict) -> list[dict]:
    manifest = read_manifest(cfg)
    out = []
    for path in sorted(modules_dir(cfg).glob("mod_*.py")) if modules_dir(cfg).is_dir() else []:
        name = path.stem[4:]
        m = manifest.get(name) or {}
        out.append({"name": name, "version": m.get("version"), "sha256": m.get("sha256"), "path": str(path),
                    "source": m.get("url")})
    return out


def install(cfg: dict, name: str, registry: str | None = None) -> dict:
    """Download, verify (SHA-256, then Module.NAME) and write mod_<name>.py."""
    if not NAME_RE.match(name):
        raise HubError(f"{name!r} is not a module name (lower-case letters, digits, _)")
    if (BUNDLED_DIR / f"mod_{name}.py").exists():
        raise HubError(f"{name} is a bundled module; the hub does not replace it")
    source = registry_source(cfg, registry)
    entry = next((m for m in load_registry(source) if m["name"] == name), None)
    if entry is None:
        raise HubError(f"module {name!r} is not in the hub's registry {source}")
    data = _fetch(entry["url"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["sha256"]:
        raise HubError(f"checksum mismatch for {name} from {entry['url']}: the registry says {entry['sha256']}, the "
                       f"download is {digest}; nothing was installed (retry, or tell the hub's owner)")
    declared = declared_name(data)
    if declared != name:
        raise HubError(f"the file for {name} declares Module.NAME = {declared!r}; nothing was installed")
    target_dir = modules_dir(cfg)
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".mod_{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target_dir / f"mod_{name}.py")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    manifest = read_manifest(cfg)
    previous = (manifest.get(name) or {}).get("version")
    manifest[name] = {"version": entry["version"], "sha256": digest, "url": entry["url"]}
    _write_manifest(cfg, manifest)
    return {"name": name, "version": entry["version"], "previous": previous, "sha256": digest,
            "path": str(target_dir / f"mod_{name}.py"),
            "note": f"restart the launcher to load it; hide it with [launcher.tabs] {name} = false"}


def uninstall(cfg: dict, name: str) -> dict:
    path = modules_dir(cfg) / f"mod_{name}.py"
    if not NAME_RE.match(name) or not path.exists():
        if (BUNDLED_DIR / f"mod_{name}.py").exists():
            raise HubError(f"{name} is a bundled module; hide it with [launcher.tabs] {name} = false")
        raise HubError(f"module {name!r} is not installed in {modules_dir(cfg)}")
    path.unlink()
    manifest = read_manifest(cfg)
    manifest.pop(name, None)
    _write_manifest(cfg, manifest)
    return {"name": name, "removed": str(path)}


def updates(cfg: dict, registry: str | None = None) -> list[dict]:
    """Installed modules whose registry version differs from the installed one."""
    available = {m["name"]: m for m in load_registry(registry_source(cfg, registry))}
    return [{"name": i["name"], "installed": i["version"], "available": available[i["name"]]["version"]}
            for i in list_installed(cfg) if i["name"] in available and available[i["name"]]["version"] != i["version"]]
