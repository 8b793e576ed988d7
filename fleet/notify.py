"""Notifications: `[notify.NAME]` targets (Discord, Slack, ntfy, a plain JSON
webhook) that hear about alerts and their resolutions, the request each kind
expects, one background sender thread per target (retry with backoff, never
blocking the supervisor or a worker), and the deadman heartbeat ping.

The supervisor calls `Notifier.tick()` once per loop: it follows the store's
alert events (from a cursor kept in the flag `notify:cursor`, under the named
lock `notify` so one supervisor of several sends), applies each target's
`min_severity`, the alert's dedup key and the target's cooldown, and hands the
requests to the senders. A target that keeps failing becomes one warning alert
(dedup key `notify_failed:NAME`), which is never sent to that target itself,
and is acknowledged when the target works again. `send_message()` is the
synchronous path for a skill (the morning briefing).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import queue
import random
import threading
import time

log = logging.getLogger("fleet.notify")

KINDS = ("discord", "slack", "ntfy", "webhook")
SEVERITIES = ("info", "warning", "critical")
CURSOR_FLAG = "notify:cursor"
LOCK = "notify"
HEARTBEAT = "heartbeat"  # the deadman ping's sender name (its failures alert like a target's)
ESCALATION_EVERY = 5  # passes between two looks for open alerts bumped to a higher severity
MAX_PENDING = 200  # per target: older undelivered messages are dropped beyond this
_NTFY_PRIORITY = {"info": "3", "warning": "4", "critical": "5", "resolved": "3"}
_NTFY_TAGS = {"info": "information_source", "warning": "warning", "critical": "rotating_light",
              "resolved": "white_check_mark"}
DISCORD_LIMIT = 2000
SLACK_LIMIT = 3000


class NotifyError(ValueError):
    """A `[notify]` entry that cannot work; the message names it."""


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    kind: str
    url_secret: str
    min_severity: str = "warning"
    cooldown_s: float = 900.0
    resolutions: bool = True
    briefings: bool = True
    enabled: bool = True

    def wants(self, severity: str) -> bool:
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@dataclasses.dataclass(frozen=True)
class Message:
    """What to tell a person: `event` alert | resolved | briefing | test."""
    event: str
    title: str
    text: str
    severity: str = "info"
    alert: dict | None = None
    fleet: str = "fleet"


def parse_targets(cfg: dict) -> dict[str, Target]:
    """Every `[notify.NAME]` table, by name (NotifyError on a bad one)."""
    from .secret_file import SecretsError, check_key

    out = {}
    for name, entry in sorted(cfg.get("notify", {}).items()):
        if not isinstance(entry, dict):
            continue  # a [notify] key, not a target
        where = f"[notify.{name}]"
        if entry.get("kind") not in KINDS:
            raise NotifyError(f"{where}: kind = {entry.get('kind')!r}; expected one of {', '.join(KINDS)}")
        if not entry.get("url_secret"):
            raise NotifyError(f"{where}: url_secret is required: the name of the secret holding the URL, e.g. "
                              f"url_secret = \"DISCORD_WEBHOOK_URL\", stored with "
                              f"`lead_client.py secret set DISCORD_WEBHOOK_URL -`")
        try:
            check_key(entry["url_secret"])
        except SecretsError as exc:
            raise NotifyError(f"{where}: url_secret: {exc}") from None
        out[name] = Target(name=name, kind=entry["kind"], url_secret=entry["url_secret"],
                           min_severity=entry.get("min_severity", "warning"),
                           cooldown_s=float(entry.get("cooldown_s", 900.0)),
                           resolutions=bool(entry.get("resolutions", True)),
                           briefings=bool(entry.get("briefings", True)), enabled=bool(entry.get("enabled", True)))
    return out


# -- the request each kind expects ----------------------------------------
def build_request(kind: str, url: str, msg: Message) -> dict:
    """{method, url, headers, json | content} for one message to one target."""
    if kind == "discord":
        # https://discord.com/developers/docs/resources/webhook#execute-webhook
        return {"method": "POST", "url": url, "headers": {},
                "json": {"content": _clip(f"**{msg.title}**\n{msg.text}", DISCORD_LIMIT),
                         "username": f"Fleet {msg.fleet}", "allowed_mentions": {"parse": []}}}
    if kind == "slack":
        # https://api.slack.com/messaging/webhooks: a `text` field (mrkdwn)
        return {"method": "POST", "url": url, "headers": {},
                "json": {"text": _clip(f"*{msg.title}*\n{msg.text}", SLACK_LIMIT)}}
    if kind == "ntfy":
        # https://docs.ntfy.sh/publish/: POST the message body to the topic URL, metadata in headers
        level = "resolved" if msg.event == "resolved" else msg.severity
        return {"method": "POST", "url": url, "content": msg.text.encode("utf-8"),
                "headers": {"Title": _ascii(msg.title), "Priority": _NTFY_PRIORITY[level],
                            "Tags": _NTFY_TAGS[level] if msg.event != "briefing" else "sunrise"}}
    if kind == "webhook":
        return {"method": "POST", "url": url, "headers": {},
                "json": {"fleet": msg.fleet, "event": msg.event, "severity": msg.severity, "title": msg.title,
                         "text": msg.text, "alert": msg.alert, "sent_at": time.time()}}
    raise NotifyError(f"unknown notify kind {kind!r}")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def alert_message(alert: dict, fleet: str, *, resolved: bool = False) -> Message:
    sev = alert["severity"]
    where = f" on {alert['host']}" if alert.get("host") else ""
    if resolved:
        by = f" (acknowledged by {alert['acked_by']})" if alert.get("acked_by") else ""
        return Message("resolved", f"Fleet {fleet}: resolved: {alert['component']}",
                       f"RESOLVED{where}: {alert['message']}{by}", sev, _alert_fields(alert), fleet)
    times = f" (x{alert['occurrences']})" if (alert.get("occurrences") or 1) > 1 else ""
    return Message("alert", f"Fleet {fleet}: {sev} alert: {alert['component']}",
                   f"{sev.upper()}{where}: {alert['message']}{times}", sev, _alert_fields(alert), fleet)


def _alert_fields(alert: dict) -> dict:
    keys = ("id", "severity", "component", "message", "dedup_key", "host", "created_at", "occurrences",
            "acked_at", "acked_by")
    return {k: alert.get(k) for k in keys}


def send_once(request: dict, *, timeout_s: float = 10.0) -> None:
    """One HTTP request; raises OSError-like httpx errors or RuntimeError on a
    non-2xx answer (its status and the start of its body)."""
    import httpx

    req = dict(request)
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        resp = client.request(req.pop("method"), req.pop("url"), **req)
    if resp.status_code >= 300:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")


def send_message(cfg: dict, msg: Message, *, event_filter=None, timeout_s: float | None = None) -> dict:
    """Send `msg` now to every enabled target (for which `event_filter(target)`
    is true), synchronously: {name: "sent" | error text}. For skills; the
    supervisor uses the background senders instead."""
    from .secret_file import get_secret

    out: dict[str, str] = {}
    if cfg["fleet"]["air_gap_mode"]:
        return out  # nothing leaves an air-gapped machine
    timeout_s = float(cfg.get("notify", {}).get("timeout_s", 10.0)) if timeout_s is None else timeout_s
    for target in parse_targets(cfg).values():
        if not target.enabled or (event_filter is not None and not event_filter(target)):
            continue
        url = get_secret(cfg, target.url_secret)
        if not url:
            out[target.name] = f"secret {target.url_secret} is not set"
            continue
        try:
            send_once(build_request(target.kind, url, msg), timeout_s=timeout_s)
            out[target.name] = "sent"
        except Exception as exc:  # any failure of one target is reported, never raised
            out[target.name] = f"{type(exc).__name__}: {exc}"
    return out


# -- background delivery ----------------------------------------------------
class Sender(threading.Thread):
    """Delivers one target's requests in order of due time, retrying a failure
    with exponential backoff and jitter (retry_initial_s doubling up to
    retry_max_s, at most max_attempts). Results go to `results` for the main
    thread: (sender name, ok, error text or None, gave_up)."""

    def __init__(self, name: str, results: queue.Queue, *, timeout_s: float, retry_initial_s: float,
                 retry_max_s: float, max_attempts: int):
        super().__init__(name=f"notify-{name}", daemon=True)
        self.target = name
        self.results = results
        self.timeout_s, self.initial, self.maximum, self.max_attempts = (
            timeout_s, retry_initial_s, retry_max_s, max_attempts)
        self.inbox: queue.Queue = queue.Queue()
        self.pending: list[tuple[float, int, dict, int]] = []  # (due, seq, request, attempts made)
        self.seq = 0
        self.stopping = threading.Event()

    def submit(self, request: dict) -> None:
        self.inbox.put(request)

    def stop(self) -> None:
        self.stopping.set()
        self.inbox.put(None)

    def run(self) -> None:
        while not self.stopping.is_set():
            wait = max(0.0, self.pending[0][0] - time.monotonic()) if self.pending else None
            try:
                item = self.inbox.get(timeout=wait)
                if item is None:
                    continue
                self._add(item, time.monotonic(), 0)
                continue
            except queue.Empty:
                pass
            _due, _seq, request, attempts = heapq.heappop(self.pending)
            try:
                send_once(request, timeout_s=self.timeout_s)
            except Exception as exc:  # noqa: BLE001 - every failure is retried and reported
                attempts += 1
                gave_up = attempts >= self.max_attempts
                error = f"{type(exc).__name__}: {exc}"[:300]
                if not gave_up:
                    delay = min(self.maximum, self.initial * 2 ** (attempts - 1))
                    self._add(request, time.monotonic() + delay * random.uniform(0.8, 1.2), attempts)
                log.warning("notify %s: attempt %d failed: %s%s", self.target, attempts, error,
                            "; giving up on this message" if gave_up else "; retrying")
                self.results.put((self.target, False, error, gave_up))
            else:
                self.results.put((self.target, True, None, False))

    def _add(self, request: dict, due: float, attempts: int) -> None:
        if len(self.pending) >= MAX_PENDING:
            oldest = min(self.pending, key=lambda p: p[1])
            self.pending.remove(oldest)
            heapq.heapify(self.pending)
            log.warning("notify %s: %d messages waiting; dropped the oldest", self.target, MAX_PENDING)
        self.seq += 1
        heapq.heappush(self.pending, (due, self.seq, request, attempts))


class Notifier:
    """The supervisor's side (see the module docstring). `clock` is the wall
    clock used for cooldowns and the heartbeat."""

    def __init__(self, cfg: dict, store, *, actor: str, clock=time.time):
        self.cfg = cfg
        self.store = store
        self.actor = actor
        self.clock = clock
        self.opts = cfg.get("notify", {})
        self.fleet = cfg["fleet"]["name"]
        self.targets = {n: t for n, t in parse_targets(cfg).items() if t.enabled}
        self.results: queue.Queue = queue.Queue()
        self.senders: dict[str, Sender] = {}
        self.sent_at: dict[tuple[str, str], float] = {}  # (target, "key|alert|severity" or "key|resolved") -> last send
        self.failing: dict[str, int] = {}  # sender name -> id of its open failure alert
        self.next_check = 0.0
        self.next_heartbeat = 0.0
        self.lock_until = 0.0
        self.cursor: int | None = None
        self.missing_secret: set[str] = set()
        self.severity_seen: dict[int, str] = {}  # open alert id -> severity at the last escalation pass
        self.passes = 0

    @property
    def active(self) -> bool:
        """Anything to do (air-gap mode: nothing leaves the machine)."""
        if self.cfg["fleet"]["air_gap_mode"]:
            return False
        return bool(self.targets) or bool(self.opts.get("heartbeat_url_secret"))

    def _sender(self, name: str) -> Sender:
        sender = self.senders.get(name)
        if sender is None:
            sender = Sender(name, self.results, timeout_s=float(self.opts.get("timeout_s", 10.0)),
                            retry_initial_s=float(self.opts.get("retry_initial_s", 5.0)),
                            retry_max_s=float(self.opts.get("retry_max_s", 600.0)),
                            max_attempts=int(self.opts.get("max_attempts", 8)))
            sender.start()
            self.senders[name] = sender
        return sender

    def close(self) -> None:
        for sender in self.senders.values():
            sender.stop()

    def tick(self) -> None:
        """Cheap when nothing is due: at most one pass per `[notify]
        check_interval_s`. Store errors propagate (the supervisor's outage
        handling); the cursor is advanced only after its events were handed
        to the senders."""
        if not self.active:
            return
        now = self.clock()
        self._drain_results()
        if now < self.next_check:
            return
        self.next_check = now + float(self.opts.get("check_interval_s", 1.0))
        self._heartbeat(now)
        if self.targets and self._hold_lock(now):
            self._follow_alerts(now)

    # -- deadman ping
    def _heartbeat(self, now: float) -> None:
        key = self.opts.get("heartbeat_url_secret")
        if not key or now < self.next_heartbeat:
            return
        self.next_heartbeat = now + float(self.opts.get("heartbeat_interval_s", 300.0))
        url = self._secret(key, HEARTBEAT)
        if url:
            self._sender(HEARTBEAT).submit({"method": "GET", "url": url})

    def _secret(self, key: str, who: str) -> str | None:
        from .secret_file import SecretsError, get_secret

        try:
            url = get_secret(self.cfg, key)
        except (SecretsError, OSError) as exc:
            url, why = None, str(exc)
        else:
            why = f"the secret {key} is not set: `lead_client.py secret set {key} -`"
        if not url and who not in self.missing_secret:
            self.missing_secret.add(who)
            log.warning("notify %s: %s", who, why)
            self.failing[who] = self.store.raise_alert("warning", "notify", f"notify target {who}: {why}",
                                                       dedup_key=f"notify_failed:{who}")
        return url

    # -- one sender of several supervisors
    def _hold_lock(self, now: float) -> bool:
        if now < self.lock_until:
            return True
        ttl = 30.0
        if self.store.acquire_lock(LOCK, self.actor, ttl):
            self.lock_until = now + ttl / 3
            return True
        self.cursor = None  # another supervisor sends; re-read the cursor if this one takes over
        return False

    # -- alerts and resolutions
    def _follow_alerts(self, now: float) -> None:
        if self.cursor is None:
            saved = self.store.get_flag(CURSOR_FLAG)
            self.cursor = int(saved) if saved is not None else self.store.last_event_id()
            if saved is None:
                self.store.set_flag(CURSOR_FLAG, self.cursor, by=self.actor)
        self.passes += 1
        if self.passes % ESCALATION_EVERY == 1 or ESCALATION_EVERY == 1:
            self._escalations(now)
        limit = 200
        raised = self.store.events(after_id=self.cursor, action="alert", limit=limit)
        acked = self.store.events(after_id=self.cursor, action="alert_ack", limit=limit)
        if not raised and not acked:
            return
        # a full page bounds what is known to be complete: stop at the smaller end
        full = [page[-1]["id"] for page in (raised, acked) if len(page) == limit]
        bound = min(full) if full else max(e["id"] for e in raised + acked)
        events = sorted((e for e in raised + acked if e["id"] <= bound), key=lambda e: e["id"])
        alerts = {a["id"]: a for a in self.store.list_alerts(active_only=False, limit=1000)}
        for event in events:
            alert = alerts.get((event.get("detail") or {}).get("id"))
            if alert is None:
                continue
            resolved = event["action"] == "alert_ack"
            if not resolved and alert["acked_at"] is None:
                self.severity_seen[alert["id"]] = alert["severity"]  # what its targets were told, for _escalations
            self._dispatch(alert, resolved=resolved, now=now)
        self.cursor = bound
        self.store.set_flag(CURSOR_FLAG, bound, by=self.actor)

    def _escalations(self, now: float) -> None:
        """An open alert bumped to a higher severity (raise_alert on its dedup
        key) writes no event: found by comparing with the last pass, and sent
        to the targets that want its new severity."""
        rows = self.store.list_alerts(active_only=True, limit=200)
        seen, self.severity_seen = self.severity_seen, {a["id"]: a["severity"] for a in rows}
        for alert in rows:
            before = seen.get(alert["id"])
            if before is not None and SEVERITIES.index(alert["severity"]) > SEVERITIES.index(before):
                log.info("alert %s escalated from %s to %s", alert["id"], before, alert["severity"])
                self._dispatch(alert, resolved=False, now=now)

    def _dispatch(self, alert: dict, *, resolved: bool, now: float) -> None:
        msg = alert_message(alert, self.fleet, resolved=resolved)
        key = alert.get("dedup_key") or f"{alert['component']}:{alert['message']}"
        for target in self.targets.values():
            if not target.wants(alert["severity"]) or (resolved and not target.resolutions):
                continue
            if key == f"notify_failed:{target.name}":
                continue  # a target's own failures are never sent to it
            stamp = (target.name, f"{key}|resolved" if resolved else f"{key}|alert|{alert['severity']}")
            if now - self.sent_at.get(stamp, float("-inf")) < target.cooldown_s:
                log.info("notify %s: %s of %s within the cooldown; not sent", target.name,
                         "resolution" if resolved else "alert", key)
                continue
            url = self._secret(target.url_secret, target.name)
            if not url:
                continue
            self.sent_at[stamp] = now
            self._sender(target.name).submit(build_request(target.kind, url, msg))

    def _drain_results(self) -> None:
        while True:
            try:
                name, ok, error, gave_up = self.results.get_nowait()
            except queue.Empty:
                return
            if ok:
                alert_id = self.failing.pop(name, None)
                self.missing_secret.discard(name)
                if alert_id is not None:
                    log.info("notify %s works again", name)
                    self.store.ack_alert(alert_id, by="notify")
            elif name not in self.failing:
                what = "the heartbeat ping" if name == HEARTBEAT else f"notify target {name}"
                self.failing[name] = self.store.raise_alert(
                    "warning", "notify", f"{what} is failing ({error}); retrying with backoff",
                    dedup_key=f"notify_failed:{name}")

