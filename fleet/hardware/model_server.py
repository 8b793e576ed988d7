"""Care of the local model server (Ollama API): list loaded models (/api/ps),
keep the tier model and the conductor model warm (keep-alive loads), and repair
a server the fleet itself started when its port answers but its API does not.
A server the fleet did not start (tracked by PID + start time) is never signalled.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess  # nosec B404 - starts the operator-configured model server command
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import psutil

log = logging.getLogger("fleet.hardware.model_server")
_MB = 1024 * 1024


def server_url(cfg: dict) -> str:
    """The Ollama base URL: the base_url of the first `[providers.NAME]` of
    type ollama that names one, else `[model_server] url`."""
    for p in cfg["providers"].values():
        if p["type"] == "ollama" and p["base_url"]:
            return p["base_url"].rstrip("/")
    return cfg["model_server"]["url"].rstrip("/")


def conductor_model(cfg: dict) -> str | None:
    """The conductor model when it is served by the local model server, else None."""
    models = cfg["models"]
    spec = cfg["providers"].get(models["conductor_provider"])
    if spec is not None and spec["type"] != "ollama":
        return None  # a cloud conductor: nothing to keep warm here
    return models["conductor_model"] or None


def normalise(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class ManagedServer:
    """A model server process the fleet started. Its PID and start time are kept
    in a pid file, so a restarted hardware supervisor still knows it is ours, and
    a recycled PID (different start time) is never mistaken for it."""

    def __init__(self, command: list[str], pid_file: str, *, log_file: str | None = None,
                 stop_timeout_s: float = 10.0):
        self.command = list(command)
        self.pid_file = pid_file
        self.log_file = log_file
        self.stop_timeout_s = stop_timeout_s
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.create_time: float | None = None
        self.adopt()

    def adopt(self) -> bool:
        try:
            with open(self.pid_file, encoding="utf-8") as fh:
                rec = json.load(fh)
            p = psutil.Process(int(rec["pid"]))
            if abs(p.create_time() - float(rec["create_time"])) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                self.pid, self.create_time = p.pid, p.create_time()
                return True
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass
        return False

    def _process(self) -> psutil.Process | None:
        if self.pid is None:
            return None
        if self.proc is not None and self.proc.poll() is not None:
            return None
        try:
            p = psutil.Process(self.pid)
            if abs(p.create_time() - (self.create_time or 0)) >= 0.01 or p.status() == psutil.STATUS_ZOMBIE:
                return None
            return p
        except psutil.Error:
            return None

    def running(self) -> bool:
        return self._process() is not None

    def start(self) -> int:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(  # nosec B603 - command comes from the operator's fleet.toml
                self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self.pid = self.proc.pid
        self.create_time = psutil.Process(self.pid).create_time()
        os.makedirs(os.path.dirname(os.path.abspath(self.pid_file)), exist_ok=True)
        tmp = self.pid_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"pid": self.pid, "create_time": self.create_time, "command": self.command}, fh)
        os.replace(tmp, self.pid_file)
        log.info("started model server pid %d: %s", self.pid, " ".join(self.command))
        return self.pid

    def stop(self) -> str:
        """TERM the server and its children, wait, KILL what is left. Returns how it ended."""
        p = self._process()
        if p is None:
            return "not running"
        try:
            procs = [p] + p.children(recursive=True)
        except psutil.Error:
            procs = [p]
        for q in procs:
            try:
                q.terminate()
            except psutil.Error:
                pass
        _gone, alive = psutil.wait_procs(procs, timeout=self.stop_timeout_s)
        how = "terminated"
        if alive:
            how = "killed"
            log.warning("model server processes still alive %.0f s after TERM: %s; sending KILL",
                        self.stop_timeout_s, [_describe(q) for q in alive])
            for q in alive:
                try:
                    q.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(alive, timeout=5)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.unlink(self.pid_file)
        except FileNotFoundError:
            pass
        self.pid = self.create_time = None
        self.proc = None
        return how

    def restart(self) -> dict:
        old = self.pid
        how = self.stop()
        new = self.start()
        return {"old_pid": old, "stopped": how, "new_pid": new}


def _describe(p: psutil.Process) -> str:
    try:
        return f"pid {p.pid} ({p.status()}): {' '.join(p.cmdline())[:120]}"
    except psutil.Error:
        return f"pid {p.pid}"


class ModelServerCare:
    """One `tick(tier_model, num_gpu, conductor)` per hardware interval. Keep-alive
    loads run on a background thread so a slow model load never delays hw_state."""

    def __init__(self, base_url: str, *, keep_alive: str = "30m", keepalive_interval_s: float = 240.0,
                 conductor_interval_s: float = 60.0, timeout_s: float = 2.0, unhealthy_probes: int = 3,
                 restart_min_interval_s: float = 60.0, managed: ManagedServer | None = None,
                 on_event: Callable[[str, dict], None] | None = None,
                 on_alert: Callable[[str, str, str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, load_timeout_s: float = 600.0):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.keep_alive = keep_alive
        self.keepalive_interval_s = keepalive_interval_s
        self.conductor_interval_s = conductor_interval_s
        self.timeout_s = timeout_s
        self.unhealthy_probes = unhealthy_probes
        self.restart_min_interval_s = restart_min_interval_s
        self.load_timeout_s = load_timeout_s
        self.managed = managed
        self.on_event = on_event or (lambda action, detail: None)
        self.on_alert = on_alert or (lambda severity, key, message: None)
        self.clock = clock
        self.client = httpx.Client(timeout=timeout_s, trust_env=False)
        self.failures = 0
        self.last_restart = -float("inf")
        self.last_ping: dict[str, float] = {}
        self.last_keepalive_wall: float | None = None
        self.last_conductor_check = -float("inf")
        self.conductor_loaded: bool | None = None
        self._ping_thread: threading.Thread | None = None
        self.last_error: str | None = None

    def close(self) -> None:
        if self._ping_thread is not None:
            self._ping_thread.join(timeout=1.0)
        self.client.close()

    # -- probes ----------------------------------------------------------------
    def list_loaded(self) -> list[dict]:
        r = self.client.get(f"{self.base_url}/api/ps")
        r.raise_for_status()
        out = []
        for m in (r.json().get("models") or []):
            name = m.get("name") or m.get("model")
            if not name:
                continue
            size, vram = m.get("size"), m.get("size_vram")
            out.append({"name": name,
                        "size_mb": round(size / _MB, 1) if isinstance(size, (int, float)) else None,
                        "vram_mb": round(vram / _MB, 1) if isinstance(vram, (int, float)) else None,
                        "expires_at": m.get("expires_at")})
        return out

    def port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                return True
        except OSError:
            return False

    # -- keep-alive ------------------------------------------------------------------
    def _ping(self, model: str, num_gpu: int | None) -> None:
        body: dict = {"model": model, "keep_alive": self.keep_alive, "prompt": "", "stream": False}
        if num_gpu is not None:
            body["options"] = {"num_gpu": num_gpu}
        try:
            r = self.client.post(f"{self.base_url}/api/generate", json=body, timeout=self.load_timeout_s)
            if r.status_code >= 400:
                log.warning("keep-alive for %s answered %d: %s", model, r.status_code, r.text[:200])
            else:
                self.last_keepalive_wall = time.time()
        except httpx.HTTPError as exc:
            log.warning("keep-alive for %s failed: %s", model, exc)

    def _keep_warm(self, wanted: list[tuple[str, int | None]], loaded_names: set[str]) -> None:
        if self._ping_thread is not None and self._ping_thread.is_alive():
            return  # one load at a time; the next tick catches up
        now = self.clock()
        due = [(m, g) for m, g in wanted
               if normalise(m) not in loaded_names or now - self.last_ping.get(m, -1e18) >= self.keepalive_interval_s]
        if not due:
            return
        for m, _ in due:
            self.last_ping[m] = now

        def run():
            if hasattr(signal, "pthread_sigmask"):  # let TERM/INT reach the main thread at once
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            for m, g in due:
                self._ping(m, g)

        self._ping_thread = threading.Thread(target=run, name="keepalive", daemon=True)
        self._ping_thread.start()

    def unload(self, model: str) -> threading.Thread:
        """Ask the server to unload `model` (keep_alive 0), in the background. Ollama
        unloads only once running requests on it finish, so no generation is cut off."""
        def run():
            if hasattr(signal, "pthread_sigmask"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            try:
                r = self.client.post(f"{self.base_url}/api/generate", timeout=self.load_timeout_s,
                                     json={"model": model, "keep_alive": 0, "prompt": "", "stream": False})
                if r.status_code >= 400:
                    log.warning("unloading %s answered %d: %s", model, r.status_code, r.text[:200])
            except httpx.HTTPError as exc:
                log.warning("unloading %s failed: %s", model, exc)

        self.last_ping.pop(model, None)
        t = threading.Thread(target=run, name="unload", daemon=True)
        t.start()
        return t

    # -- repair --------------------------------------------------------------------
    def _unhealthy(self, error: str) -> None:
        now = self.clock()
        ours = self.managed is not None and self.managed.running()
        if not ours:
            key = f"model_server_unhealthy:{self.base_url}"
            self.on_alert("warning", key,
                          f"The model server at {self.base_url} accepts connections but its API failed "
                          f"{self.failures} probes in a row ({error}). The fleet did not start it, so it is "
                          "left alone: restart it yourself (e.g. `systemctl restart ollama`).")
            return
        if now - self.last_restart < self.restart_min_interval_s:
            return
        self.last_restart = now
        detail = {"url": self.base_url, "failures": self.failures, "error": error}
        detail.update(self.managed.restart())
        log.warning("restarted the model server the fleet started: %s", detail)
        self.on_event("model_server_repair", detail)
        self.failures = 0

    def _down(self) -> None:
        """Nothing answers on the port: restart the server only if it is ours and died."""
        if self.managed is None or not self.managed.command or self.managed.running():
            return
        if self.managed.pid is None and not os.path.exists(self.managed.pid_file):
            return  # never started by us: autostart is the caller's decision
        now = self.clock()
        if now - self.last_restart < self.restart_min_interval_s:
            return
        self.last_restart = now
        pid = self.managed.start()
        self.on_event("model_server_start", {"url": self.base_url, "pid": pid, "why": "the server the fleet "
                                             "started had exited"})

    # -- one interval ----------------------------------------------------------------
    def tick(self, tier_model: str | None, num_gpu: int | None = None, conductor: str | None = None) -> dict:
        """observe() then warm(): one interval of care."""
        return self.warm(self.observe(conductor), tier_model, num_gpu)

    def observe(self, conductor: str | None = None) -> dict:
        """Probe the server (loaded models, conductor check); count failures and repair."""
        out = {"server_url": self.base_url, "server_reachable": False,
               "server_managed": bool(self.managed is not None and self.managed.running()),
               "server_pid": self.managed.pid if self.managed is not None else None,
               "loaded": [], "held_vram_mb": 0.0, "tier_model": None, "tier_model_loaded": False,
               "conductor_model": conductor, "conductor_loaded": None,
               "last_keepalive_at": self.last_keepalive_wall, "consecutive_failures": 0, "error": None}
        try:
            loaded = self.list_loaded()
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            self.last_error = error
            if self.port_open():
                self.failures += 1
                if self.failures >= self.unhealthy_probes:
                    self._unhealthy(error)
            else:
                self.failures = 0
                self._down()
            out.update(error=error, consecutive_failures=self.failures,
                       server_managed=bool(self.managed is not None and self.managed.running()),
                       server_pid=self.managed.pid if self.managed is not None else None)
            return out
        self.failures = 0
        self.last_error = None
        now = self.clock()
        if conductor and now - self.last_conductor_check >= self.conductor_interval_s:
            self.last_conductor_check = now
            self.conductor_loaded = normalise(conductor) in {normalise(m["name"]) for m in loaded}
        out.update(server_reachable=True, loaded=loaded,
                   held_vram_mb=round(sum(m["vram_mb"] or 0.0 for m in loaded), 1),
                   conductor_loaded=self.conductor_loaded if conductor else None)
        return out

    def warm(self, out: dict, tier_model: str | None, num_gpu: int | None = None) -> dict:
        """Keep the tier model (and the conductor) loaded; fills the tier keys of `out`."""
        out["tier_model"] = tier_model
        if not out["server_reachable"]:
            return out
        names = {normalise(m["name"]) for m in out["loaded"]}
        conductor = out.get("conductor_model")
        wanted: list[tuple[str, int | None]] = []
        if tier_model:
            wanted.append((tier_model, num_gpu))
        if conductor and normalise(conductor) != normalise(tier_model or ""):
            # on the CPU tier (eco mode, training, no GPU) the conductor stays off the GPU too
            wanted.append((conductor, 0 if num_gpu == 0 else None))
        self._keep_warm(wanted, names)
        out.update(tier_model_loaded=bool(tier_model) and normalise(tier_model) in names,
                   last_keepalive_at=self.last_keepalive_wall)
        return out
