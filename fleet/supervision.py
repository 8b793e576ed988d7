"""The supervisor's main loop: child lifecycle (spawn, exit, respawn, stall kill,
drain), control messages, dynamic scaling and the periodic chores (lease reaper,
WAL checkpoint, STATUS.md, liveness samples). Single-threaded: a signal wake-up
fd wakes the loop the moment a child exits or a stop signal arrives.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import time

from . import procs
from .children import (
    EX_CONFIG,
    EX_RECYCLE,
    EX_TIMEOUT,
    Child,
    RespawnPolicy,
    killed_while_healthy,
    managed_services,
    overran_timeout,
)
from .config import role_skills, worker_names
from .config_drift import ConfigWatch, config_hash
from .db import InvalidInput, LeaseLost, StoreError, StoreUnavailable, open_store
from .filemodes import shared_read
from .hosts import base_name, is_local, qualified, supervisor_name
from .logs import log_path, setup_process_logging
from .notify import Notifier
from .outage import StoreOutage, damage_message
from .ports import port_taken
from .schedule import Scheduler, parse_schedules
from .status_report import render_status, write_status

log = logging.getLogger("fleet.supervisor")
GRACEFUL = ("stop", "restart", "drain", "scale_down", "park")
STARTUP_GRACE_S = 30.0  # a worker that has not registered yet gets at least this long


class Supervisor:
    def __init__(self, cfg: dict, *, echo: bool = True):
        self.cfg = cfg
        self.sup = cfg["supervisor"]
        self.host = cfg["fleet"]["host"]  # this supervisor signals and recovers only this host's processes
        self.name = supervisor_name(cfg)  # `supervisor`, or `supervisor@host` where several hosts share the store
        self.echo = echo
        self.policy = RespawnPolicy(self.sup)
        self.children: dict[str, Child] = {}
        self.stopping = False
        self.force = False
        self.drain_deadline = 0.0
        self.exit_code = 0
        self.started_at = time.time()
        self.flap_alerted: set[str] = set()
        self.high_since: dict[str, float] = {}
        self.timers: dict[str, float] = {}
        self.loops = 0
        self.outage = StoreOutage(self.name, echo=echo)
        self.resumed_at = 0.0  # wall time the store last came back: heartbeats missed before are no stall
        self.damaged: str | None = None  # what the integrity check found wrong; None: the store is sound
        self.parked_for_damage: set[str] = set()

    # -- set-up ----------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

    def build_children(self) -> None:
        py = sys.executable
        for name, role in worker_names(self.cfg):
            self.children[name] = Child(name, role, "worker", self._worker_args(role, name))
        for name, module, off in managed_services(self.cfg):
            if off:
                log.info("service %s %s", name, off)
                continue
            self.children[qualified(self.cfg, name)] = Child(qualified(self.cfg, name), name, "service",
                                                             [py, "-m", module])

    def _worker_args(self, role: str, name: str) -> list[str]:
        return [sys.executable, "-m", "fleet.worker", "--role", role, "--name", name]

    def recover_previous_run(self) -> None:
        """Requeue tasks still held by workers of a previous run that are gone.
        Only this host's: a pid names a process on its own host alone, so
        another host's held tasks come back by lease expiry, never here."""
        for agent in self.store.list_agents():
            if not is_local(self.cfg, agent):
                continue
            if agent["name"] == self.name or (procs.still_running(agent["pid"], agent["started_at"])
                                         and agent["pid"] != os.getpid()):
                continue
            ids = self.store.recover_worker_tasks(agent["name"], "the worker process is gone (previous run ended)")
            if ids:
                log.warning("requeued %s held by %s from a previous run", ids, agent["name"])
            if qualified(self.cfg, agent["name"]) != agent["name"]:
                # a row named before the fleet moved to a shared store (`store
                # migrate`): its agent now runs as name@host
                self.store.remove_agent(agent["name"])

    # -- spawning and exits ----------------------------------------------
    def spawn(self, child: Child) -> None:
        env = procs.child_env(self.cfg)
        out = os.path.join(self.cfg["paths"]["logs"], f"{base_name(child.name)}.out")
        try:
            child.proc = procs.spawn(child.args, env=env, cwd=self.cfg["home"], output_path=out,
                                     shared_output=shared_read(self.cfg))
        except OSError as exc:
            log.error("cannot start %s: %s", child.name, exc)
            child.state, child.next_start = "backoff", time.monotonic() + self.policy.maximum
            return
        child.pid = child.proc.pid
        child.started_mono, child.started_wall = time.monotonic(), time.time()
        child.state, child.next_start, child.intent = "running", None, None
        child.term_at = child.kill_at = None
        child.snapshot, child.timed_out, child.idle_since = [], False, None
        log.info("started %s %s (pid %d)", child.kind, child.name, child.pid)
        if child.kind == "service":
            # A worker registers itself; a service's row is the supervisor's to
            # keep, so status and STATUS.md never show a running one as stopped.
            self.store.register_agent(child.name, child.role, pid=child.pid, host=self.host, status="running")
        self.store.record_event(self.name, "spawn", agent=child.name,
                                detail={"role": child.role, "pid": child.pid, "kind": child.kind})

    def reap(self) -> None:
        for child in list(self.children.values()):
            if child.proc is not None and child.proc.poll() is not None:
                rc = child.proc.returncode
                try:
                    self.on_exit(child, rc)
                except StoreError:
                    # The store could not record the exit: what the worker held is
                    # settled once it can (resume_after_outage); it is not respawned
                    # before then (start_due holds workers during an outage).
                    child.proc = None
                    if child.kind == "worker" and child.intent not in GRACEFUL:
                        child.unsettled = rc
                    if child.state == "running" and not self.stopping:
                        child.state, child.next_start = "backoff", time.monotonic() + self.policy.initial
                    raise

    def on_exit(self, child: Child, rc: int) -> None:
        uptime = child.uptime()
        desc = procs.describe_exit(rc)
        child.proc = None
        # Grandchildren of the dead process: its group, plus what we snapshotted.
        procs.signal_group(child.pid, signal.SIGKILL)
        procs.kill_snapshot(child.snapshot)
        # ... and what left its session: re-parented to us as its subreaper
        strays = procs.kill_orphans({c.proc.pid for c in self.children.values() if c.proc is not None})
        if strays:
            log.warning("killed %d process(es) left behind by %s: %s", len(strays), child.name, strays)
        intent = child.intent
        self.store.record_event(self.name, "child_exit", agent=child.name, detail={
            "role": child.role, "pid": child.pid, "uptime_s": round(uptime, 3), "intent": intent, **desc})
        (log.info if intent in GRACEFUL or rc == 0 else log.warning)(
            "%s %s (pid %d) exited after %.1f s: %s%s", child.kind, child.name, child.pid, uptime,
            desc, f" ({intent})" if intent else "")
        if child.kind == "worker":
            self._settle_tasks(child, rc, desc, intent)
        if intent in ("drain", "stop") or self.stopping:
            self._set_state(child, "stopped")
        elif intent == "park":
            self._set_state(child, "parked")
        elif intent == "scale_down":
            del self.children[child.name]
            self.store.remove_agent(child.name)
        elif intent == "restart":
            child.consecutive = 0
            child.next_start, child.state = time.monotonic(), "backoff"
        elif rc == EX_CONFIG:
            self._set_state(child, "parked")
            log.error("%s exited with a configuration error (78): parked until started again; see %s",
                      child.name, log_path(self.cfg, child.name))
            self.store.raise_alert("warning", self.name, f"{child.name} parked: configuration error (exit 78); "
                                   f"fix fleet.toml, then start role {child.role}", dedup_key=f"parked:{child.name}")
        elif rc == 0 and intent is None:
            self._set_state(child, "stopped")  # the worker was asked to stop (message)
        elif rc in (EX_TIMEOUT, EX_RECYCLE) and child.kind == "worker":
            child.next_start, child.state = time.monotonic(), "backoff"  # not a crash: replace now
        elif child.kind == "worker" and self._store_degraded():
            # It most likely died of the store's trouble: hold it (start_due
            # starts no worker during an outage) rather than respawn it into
            # the same error or count it toward the crash loop.
            log.warning("%s exited while the store cannot take writes: parked until it can", child.name)
            child.next_start = time.monotonic()
            self._set_state(child, "backoff", agent_status="parked")
        elif rc < 0 and killed_while_healthy(child, rc, self.store.get_agent(child.name)):
            # Killed from outside (OOM killer, an operator) after it had come up
            # and heartbeated: nothing about the child itself is wrong, so no
            # backoff and no crash-loop count. Backing off here would leave a
            # role understaffed under sustained kills (each replacement dies
            # before backoff_reset_s, so the delay never resets).
            log.info("%s was killed from outside while healthy (%s): replacing it now", child.name,
                     desc.get("signal"))
            child.consecutive = 0
            child.next_start = time.monotonic()
            self._set_state(child, "backoff")
        else:
            self._crashed(child)

    def _store_degraded(self) -> bool:
        """True during an outage, or when the filesystem says writes will fail
        (which then begins one)."""
        if not self.outage.active:
            health = self.store.write_health()
            if health["status"] == "healthy":
                return False
            self.outage.failed(self.store, health["writes"] or "writes fail")
        return True

    def resume_after_outage(self) -> None:
        """Writes work again: settle what workers that died meanwhile held, and
        let parked workers start now."""
        self.resumed_at = time.time()
        now = time.monotonic()
        for child in self.children.values():
            if child.unsettled is not None:
                rc, child.unsettled = child.unsettled, None
                self._settle_tasks(child, rc, procs.describe_exit(rc), None)
            if child.kind == "worker" and child.proc is None and child.next_start is not None:
                child.next_start = now
                self._set_state(child, "backoff")

    def check_integrity(self) -> None:
        """The store's quick integrity check (at start, then every
        `[store] integrity_check_interval_s`). Damage stops claiming: running
        workers are parked (their tasks released), none is started, and one
        critical alert says which backup to restore, on stderr as well (a
        damaged store may not take the row). A later clean check (the store
        was repaired) lets the workers start again."""
        try:
            found = self.store.integrity_check(quick=True)
        except StoreError as exc:
            log.warning("the integrity check could not run: %s", exc)
            return
        if found == "ok":
            if self.damaged:
                log.warning("the store's integrity check passes again: workers start again")
                self.damaged = None
                for child in self.children.values():
                    if child.name in self.parked_for_damage and child.proc is None and child.state == "parked":
                        child.next_start = time.monotonic()
                self.parked_for_damage.clear()
            return
        if self.damaged:
            return  # alerted already
        self.damaged = found
        message = damage_message(self.cfg, found)
        log.critical("%s", message)
        print(f"fleet-supervisor: ALERT: {message}", file=sys.stderr, flush=True)
        for child in self.children.values():
            if child.kind != "worker" or child.state == "parked":
                continue  # (one parked for its configuration stays parked for that)
            self.parked_for_damage.add(child.name)
            try:
                if child.proc is not None:
                    self.terminate(child, "park")
                else:
                    self._set_state(child, "parked")
            except StoreError as exc:
                log.error("could not record that %s is parked: %s", child.name, exc)
        try:
            self.store.raise_alert("critical", self.name, message, dedup_key="store_damaged")
        except StoreError as exc:
            log.error("the alert could not be stored (the store is damaged): %s", exc)

    def _crashed(self, child: Child) -> None:
        delay = self.policy.next_delay(child)
        newly = self.policy.record_crash(child.role)
        child.next_start = time.monotonic() + delay
        if child.role in self.policy.flapping:
            if newly and child.role not in self.flap_alerted:
                self.flap_alerted.add(child.role)
                n, w = self.policy.loop_count, self.policy.loop_window
                msg = (f"{child.role} is crash-looping ({n} crashes within {w:.0f} s); restarts are backed off. "
                       f"See {log_path(self.cfg, child.name)} and logs/{base_name(child.name)}.out")
                log.error(msg)
                self.store.raise_alert("critical", self.name, msg, dedup_key=qualified(self.cfg, f"flapping:{child.role}"))
                self.store.record_event(self.name, "flapping", agent=child.name, detail={"role": child.role})
            self._set_state(child, "backoff", agent_status="flapping")
        else:
            self._set_state(child, "backoff")
        log.info("restarting %s in %.2f s", child.name, delay)

    def _settle_tasks(self, child: Child, rc: int, desc: dict, intent: str | None) -> None:
        """What the dead worker held: released (graceful stop), failed as a timeout,
        or requeued with the attempt counted (crash). Of a worker that ran
        several tasks at once, only the one past its deadline is failed as a
        timeout; the others are requeued without using an attempt."""
        try:
            held = [t for t in self.store.list_tasks(status="RUNNING", agent=child.name, limit=100).items
                    if t.worker == child.name]
            agent = self.store.get_agent(child.name) if held else None
            for task in held:
                if intent in GRACEFUL or self.stopping:
                    self.store.release(task.id, task.lease_token)
                    log.info("released task %d back to PENDING (not counted)", task.id)
                elif task.cancel_requested:  # its skill ignored the cancel, so the worker ended itself
                    self.store.acknowledge_cancel(task.id, task.lease_token)
                    log.info("task %d cancelled (its skill ignored the request; the worker ended)", task.id)
                elif (rc == EX_TIMEOUT or child.timed_out) and overran_timeout(agent, task.id, time.time()):
                    self.store.fail(task.id, task.lease_token, f"skill {task.skill} exceeded its hard timeout",
                                    retryable=True, reason="timeout")
                    log.warning("task %d failed: timeout", task.id)
            if not (intent in GRACEFUL or self.stopping):
                ids = self.store.recover_worker_tasks(child.name, f"worker {child.name} died ({desc})")
                if ids:
                    log.warning("requeued task(s) %s held by %s", ids, child.name)
        except StoreError as exc:
            log.error("could not settle the tasks of %s: %s", child.name, exc)

    def _set_state(self, child: Child, state: str, agent_status: str | None = None) -> None:
        child.state = state
        status = agent_status or {"backoff": "backoff", "parked": "parked", "stopped": "stopped"}.get(state, state)
        if state in ("parked", "stopped"):
            child.next_start = None
        if self.store.get_agent(child.name) is None:
            self.store.register_agent(child.name, child.role, pid=None, host=self.host, status=status)
        else:
            self.store.set_agent_status(child.name, status, actor=self.name)

    def start_due(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is None and child.next_start is not None and now >= child.next_start:
                if child.kind == "worker" and (self.outage.active or self.damaged):
                    continue  # parked until the store takes writes again / is restored
                if child.role == "dashboard" and child.kind == "service" and self.dashboard_port_taken(child):
                    continue
                self.spawn(child)

    def dashboard_port_taken(self, child: Child) -> str | None:
        """Why the dashboard cannot have its port (held by another process,
        say a second fleet's dashboard), with the dashboard parked, logged and
        alerted; None when the port is free. Checked before the URL is
        announced, so the banner never points at someone else's dashboard,
        and before each start, so a busy port is no crash loop."""
        d = self.cfg["dashboard"]
        taken = port_taken(d["host"], int(d["port"]))
        if taken is None:
            return None
        why = (f"dashboard not started: port {d['port']} on {d['host']} is {taken}; set [dashboard] port in "
               f"fleet.toml or stop that process, then `lead_client.py start dashboard`")
        log.error("%s", why)
        self._set_state(child, "parked", agent_status="port_taken")
        self.store.heartbeat(child.name, detail={"reason": why})
        self.store.raise_alert("warning", self.name, why, dedup_key=qualified(self.cfg, "dashboard_port"))
        return why

    # -- stopping children -----------------------------------------------
    def terminate(self, child: Child, intent: str, grace: float | None = None) -> None:
        """SIGTERM now (a worker finishes its task), SIGKILL the tree after `grace`."""
        if child.proc is None:
            if intent in ("stop", "drain"):
                self._set_state(child, "stopped")
            elif intent == "restart":
                child.next_start, child.state = time.monotonic(), "backoff"
            return
        if child.term_at is not None and child.intent in GRACEFUL and intent not in ("drain",):
            return
        child.intent = intent
        child.snapshot = procs.snapshot_tree(child.pid)  # before the first signal
        procs.signal_pid(child.pid, signal.SIGTERM)
        child.term_at = time.monotonic()
        child.kill_at = child.term_at + (self.sup["stop_timeout_s"] if grace is None else grace)
        if child.kind == "worker" and self.store.get_agent(child.name):
            self.store.set_agent_status(child.name, "stopping", actor=self.name)

    def kill_due(self) -> None:
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is not None and child.kill_at is not None and (now >= child.kill_at or self.force):
                child.snapshot += [p for p in procs.snapshot_tree(child.pid) if p not in child.snapshot]
                log.warning("killing %s (pid %d) and its process tree", child.name, child.pid)
                procs.signal_group(child.pid, signal.SIGKILL)
                procs.kill_snapshot(child.snapshot)
                child.kill_at = None

    def check_stalls(self) -> None:
        limit = float(self.sup["heartbeat_timeout_s"])
        now = time.time()
        agents = {a["name"]: a for a in self.store.list_agents()}
        for child in self.children.values():
            if child.kind != "worker" or child.proc is None or child.term_at is not None:
                continue
            agent = agents.get(child.name)
            if agent and agent["pid"] == child.pid and agent["last_heartbeat"]:
                last = max(child.started_wall, agent["last_heartbeat"], self.resumed_at)
            else:  # not registered yet: a slow start (loaded machine) is not a stall
                last = child.started_wall + max(0.0, STARTUP_GRACE_S - limit)
            if now - last <= limit:
                continue
            detail = (agent or {}).get("detail") or {}
            deadline = detail.get("deadline") if isinstance(detail, dict) and agent.get("current_task") else None
            if deadline is not None and now < deadline + limit:
                continue  # inside a skill that is still within its timeout: leave it be
            child.timed_out = deadline is not None
            log.warning("%s (pid %d) made no progress for %.0f s; replacing it", child.name, child.pid, now - last)
            self.store.record_event(self.name, "stalled", agent=child.name,
                                    detail={"pid": child.pid, "silent_s": round(now - last, 1)})
            self.terminate(child, "stall", grace=float(self.sup["kill_grace_s"]))

    def fence_expired_leases(self) -> None:
        """A lease that expired while its worker still runs means the worker is
        wedged: it could not renew (say, a C call holding the GIL). Kill its
        process group BEFORE the reaper hands the task to another worker, so
        two attempts of one task never overlap (a SIGKILLed process runs no
        more code)."""
        for task_id, worker, claimed_at in self.store.expired_leases():
            child = self.children.get(worker or "")
            if child is None or child.kind != "worker" or child.proc is None or child.proc.poll() is not None:
                continue
            if claimed_at is None or claimed_at < child.started_wall:
                # Claimed by an earlier process under the same name (a previous
                # run's): not this child, which must not be killed for it. The
                # reaper requeues the task; that process, if it still exists,
                # is an orphan that dies of its parent-death signal on waking.
                continue
            log.error("%s (pid %d) let the lease of task %d expire without renewing it: it is wedged; "
                      "killing it before the task is requeued", child.name, child.pid, task_id)
            self.store.record_event(self.name, "lease_expired_kill", task_id=task_id, agent=child.name,
                                    detail={"pid": child.pid})
            child.snapshot = procs.snapshot_tree(child.pid)
            child.intent = child.intent or "stall"
            procs.signal_group(child.pid, signal.SIGKILL)
            procs.kill_snapshot(child.snapshot)
            child.kill_at = None
            # Its skill wedged it: unlike a crash, that is the task's failure and uses an attempt
            # (the killed process runs no more code, so its lease token is ours to use).
            task = self.store.get(task_id)
            if task is not None and task.status == "RUNNING" and task.worker == worker:
                try:
                    self.store.fail(task_id, task.lease_token,
                                    f"worker {child.name} was wedged: it let the task's lease expire without "
                                    "renewing it (a skill stuck in a call that holds the GIL?) and was killed",
                                    retryable=True, reason="wedged")
                except LeaseLost:
                    pass  # the reaper or the worker got there first

    # -- control messages ------------------------------------------------
    def process_control(self) -> None:
        if not self.store.inbox(self.name, channel="sup", limit=1):
            return
        for msg in self.store.inbox(self.name, channel="sup", limit=50, mark_read=True):
            try:
                body = json.loads(msg["body"]) if msg["body"].lstrip().startswith("{") else {"type": msg["body"]}
            except ValueError:
                body = {}
            kind = body.get("type")
            target = body.get("role") if kind in ("start", "stop") else body.get("target")
            log.info("control from %s: %s %s", msg["sender"], kind, target or "(all)")
            self.store.record_event(msg["sender"], f"control_{kind}", detail={"target": target})
            if kind == "stop" and not target:
                self.begin_drain("stop requested by " + str(msg["sender"]))
            elif kind == "scale_down":
                self.scale_down_idle_extras(str(body.get("reason") or "asked by " + str(msg["sender"])))
            elif kind in ("start", "stop", "restart"):
                matched = [c for c in self.children.values()
                           if not target or target in (c.role, c.name, base_name(c.name))]
                if kind == "start" and target and not matched and target in self.cfg["affinity"]:
                    name = qualified(self.cfg, target)
                    self.children[name] = Child(name, target, "worker", self._worker_args(target, name))
                    matched = [self.children[name]]
                if not matched:
                    log.warning("control %s: no role or worker named %r", kind, target)
                for child in matched:
                    if kind == "start" and child.proc is None:
                        self.policy.clear(child.role)
                        self.flap_alerted.discard(child.role)
                        child.consecutive, child.next_start = 0, time.monotonic()
                    elif kind == "start" and child.term_at is not None and child.intent in ("stop", "park"):
                        # still stopping (a start right after a stop): start it again once it has exited
                        child.intent = "restart"
                    elif kind in ("stop", "restart"):
                        self.terminate(child, kind)
            else:
                log.warning("unknown control message %r from %s", msg["body"], msg["sender"])

    # -- dynamic scaling -------------------------------------------------
    def scale_down_idle_extras(self, why: str) -> list[str]:
        """Stop every extra worker that runs no task now (memory pressure:
        memory_optimizer monitor): a graceful stop, so no task is touched."""
        agents = {a["name"]: a for a in self.store.list_agents()}
        stopped = []
        for c in self.children.values():
            a = agents.get(c.name)
            if c.extra and c.proc is not None and c.term_at is None and a and not a["current_task"]:
                self.terminate(c, "scale_down")
                stopped.append(c.name)
        log.warning("scale down (%s): stopping idle extra worker(s) %s", why, ", ".join(stopped) or "(none idle)")
        return stopped

    def scale(self) -> None:
        depth_limit = int(self.sup["scale_up_depth"])
        if depth_limit <= 0 or self.sup["scale_max_extra"] <= 0:
            return
        now = time.monotonic()
        roles = {c.role for c in self.children.values() if c.kind == "worker" and not c.extra}
        agents = {a["name"]: a for a in self.store.list_agents()}
        for role in roles:
            depth = self.store.pending_depth(role_skills(self.cfg, role))
            extras = [c for c in self.children.values() if c.role == role and c.extra]
            if depth > depth_limit:
                since = self.high_since.setdefault(role, now)
                if now - since >= self.sup["scale_up_after_s"] and len(extras) < self.sup["scale_max_extra"]:
                    n = 1 + max([int(base_name(c.name).rsplit("extra", 1)[1]) for c in extras] or [0])
                    name = qualified(self.cfg, f"{role}_extra{n}")
                    log.info("pending depth %d for %s > %d: starting %s", depth, role, depth_limit, name)
                    self.children[name] = Child(name, role, "worker", self._worker_args(role, name), extra=True)
                    self.high_since[role] = now
            else:
                self.high_since.pop(role, None)
            for c in extras:
                a = agents.get(c.name)
                if c.proc is None or c.term_at is not None or not a or a["status"] != "idle" or a["current_task"]:
                    c.idle_since = None
                    continue
                c.idle_since = c.idle_since or now
                if now - c.idle_since >= self.sup["scale_idle_s"]:
                    log.info("%s idle for %.0f s: stopping it", c.name, now - c.idle_since)
                    self.terminate(c, "scale_down")

    # -- periodic chores -------------------------------------------------
    def _due(self, name: str, interval: float) -> bool:
        now = time.monotonic()
        if now >= self.timers.get(name, 0.0):
            self.timers[name] = now + interval
            return True
        return False

    def chores(self) -> None:
        if self._due("heartbeat", self.sup["heartbeat_interval_s"]):
            self.loops += 1
            self.store.heartbeat(self.name, progress=self.loops, status="stopping" if self.stopping else "running")
        if self._due("reap", self.cfg["queue"]["reap_interval_s"]):
            self.fence_expired_leases()
            ids = self.store.reap_expired_leases()
            if ids:
                log.warning("reaped expired leases of task(s) %s", ids)
        every = self.cfg["store"]["integrity_check_interval_s"]
        if every > 0 and self._due("integrity", every):
            self.check_integrity()
        if self._due("checkpoint", self.cfg["queue"]["checkpoint_interval_s"]):
            self.store.maintain()  # checkpoint; reset the WAL when it has grown past its bound
        for child in self.children.values():
            if self.policy.healthy(child):
                log.info("%s is healthy again", child.role)
                self.flap_alerted.discard(child.role)  # a later crash loop alerts again
        if self._due("config", 2.0):
            self.config_watch.check()
        if self._due("status", self.sup["status_interval_s"]):
            self.write_status()

    def write_status(self) -> None:
        workers = [c for c in self.children.values() if c.kind == "worker"]
        agents = {a["name"]: a for a in self.store.list_agents()}
        limit, now = float(self.sup["heartbeat_timeout_s"]), time.time()
        alive = [c for c in workers if c.proc is not None and (a := agents.get(c.name))
                 and a["pid"] == c.pid and now - (a["last_heartbeat"] or 0) <= limit]
        busy = [c for c in alive if agents[c.name]["current_task"]]
        expected = [c for c in workers if c.state != "stopped"]
        if not self.stopping:
            self.store.record_liveness(len(expected), len(alive), len(busy))
        roles = {}
        for c in self.children.values():
            state = "flapping" if c.role in self.policy.flapping else c.state
            if c.kind == "service" and (agents.get(c.name) or {}).get("status") == "port_taken":
                state = "port_taken"
            if roles.get(c.role) in (None, "running"):
                roles[c.role] = state
        text = render_status(self.store, supervisor_pid=os.getpid(), roles=roles,
                             started_at=self.started_at, fleet_name=self.cfg["fleet"]["name"],
                             this_host=self.host, heartbeat_timeout_s=limit, config=self.config_watch.current)
        try:
            write_status(self.cfg["paths"]["status_file"], text)
        except OSError as exc:
            log.error("cannot write %s: %s", self.cfg["paths"]["status_file"], exc)

    def _config_alert(self, message: str) -> None:
        self.store.raise_alert("warning", self.name, message, dedup_key=qualified(self.cfg, "config_invalid"))

    def _config_changed(self, old: str, new: str) -> None:
        """fleet.toml changed (validly): the audit trail shows it (config_edit)."""
        self.store.record_event(self.name, "config_edit", detail={"from": old, "to": new, "file": "fleet.toml",
                                                                  "seen_by": "supervisor"})

    def _config_resolved(self) -> None:
        key = qualified(self.cfg, "config_invalid")
        for alert in self.store.list_alerts(active_only=True, limit=1000):
            if alert["dedup_key"] == key:
                self.store.ack_alert(alert["id"], by=self.name)
        log.info("fleet.toml is valid again")

    # -- drain -----------------------------------------------------------
    def begin_drain(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.drain_deadline = time.monotonic() + float(self.sup["stop_timeout_s"])
        log.info("draining (%s): workers finish their task for up to %.0f s", why, self.sup["stop_timeout_s"])
        self._say(f"fleet: stopping ({why}); running tasks get up to {self.sup['stop_timeout_s']:.0f} s")
        for child in self.children.values():  # signals first: a failing store must not stop the drain
            try:
                self.terminate(child, "drain")
            except StoreError as exc:
                log.error("could not record that %s is stopping: %s", child.name, exc)
        self.store.heartbeat(self.name, status="stopping")

    def _on_signal(self, signum, frame) -> None:
        if self.stopping:
            self.force = True  # second Ctrl-C: kill now
        else:
            self._pending_signal = signum

    # -- main loop -------------------------------------------------------
    def run(self) -> int:
        try:
            setup_process_logging(self.name, self.cfg, to_stderr=self.echo)
        except OSError as exc:
            print(f"fleet-supervisor: cannot write logs in {self.cfg['paths']['logs']}: {exc}; "
                  "fix [paths] logs in fleet.toml or the folder's permissions", file=sys.stderr)
            return 73
        try:
            self.store = open_store(self.cfg)
            self.store.register_agent(self.name, "supervisor", pid=os.getpid(), host=self.host, status="running",
                                      config_hash=config_hash(self.cfg))
        except (InvalidInput, StoreUnavailable) as exc:
            if self.cfg["store"]["backend"] != "postgresql":
                raise
            # 78: the DSN as written is wrong; 69: the server is down or refuses the login
            code = EX_CONFIG if isinstance(exc, InvalidInput) else 69
            log.error("cannot open the PostgreSQL store: %s", exc)
            print(f"fleet-supervisor: cannot open the PostgreSQL store: {exc}; check [store] dsn in fleet.toml "
                  "(or FLEET_STORE_DSN) and that the server is up", file=sys.stderr)
            return code
        except Exception as exc:  # any failure here is fatal and explained
            log.exception("cannot open the database")
            print(f"fleet-supervisor: cannot open the database {self.cfg['paths']['db']}: {exc}; "
                  "check [paths] db in fleet.toml and that its folder is writable", file=sys.stderr)
            return 1
        procs.become_subreaper()  # orphans of a killed worker come back to us, to be killed
        self._pending_signal = None
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGCHLD, lambda *a: None)
        self.config_watch = ConfigWatch(self.cfg, alert=self._config_alert, resolve=self._config_resolved,
                                        changed=self._config_changed)
        try:
            self.build_children()
            self.scheduler = Scheduler(self.store, parse_schedules(self.cfg), actor=self.name)
            self.notifier = Notifier(self.cfg, self.store, actor=self.name)
            self.timers["integrity"] = time.monotonic() + self.cfg["store"]["integrity_check_interval_s"]
            self.check_integrity()  # before any worker starts: damage parks them instead of a crash loop
            if not self.damaged:
                self.recover_previous_run()
            self._banner()
            return self._loop(rfd)
        except Exception:
            log.exception("fatal error in the supervisor; stopping every child")
            self.force = True
            for child in self.children.values():
                if child.proc is not None:
                    procs.signal_group(child.pid, signal.SIGKILL)
                    procs.kill_snapshot(procs.snapshot_tree(child.pid))
            self._say("fleet: the supervisor hit a fatal error; see logs/supervisor.log")
            return 1
        finally:
            if hasattr(self, "notifier"):
                self.notifier.close()
            signal.set_wakeup_fd(-1)
            os.close(rfd)
            os.close(wfd)

    def _banner(self) -> None:
        """Where everything is: the processes, logs, STATUS.md, knowledge/,
        and the dashboard's URL with its token file, or why it did not start."""
        workers = [c.name for c in self.children.values() if c.kind == "worker"]
        services = [c.name for c in self.children.values() if c.kind == "service"]
        self._say(f"fleet: supervisor PID {os.getpid()}, fleet home {self.cfg['home']}")
        self._say(f"fleet: workers: {', '.join(workers) or '(none)'}; services: {', '.join(services) or '(none)'}")
        self._say(f"fleet: logs in {self.cfg['paths']['logs']}/, status in {self.cfg['paths']['status_file']}")
        self._say(f"fleet: knowledge (what skills write) in {self.cfg['paths']['knowledge']}/")
        dashboard = self.children.get(qualified(self.cfg, "dashboard"))
        if dashboard is not None and dashboard.kind == "service":
            why = self.dashboard_port_taken(dashboard)
            if why:
                self._say(f"fleet: {why}")
            else:
                from .web.auth import TOKEN_SECRET_KEY, token_path

                d = self.cfg["dashboard"]
                self._say(f"fleet: dashboard at http://{d['host']}:{d['port']}/ (token in {token_path(self.cfg)}, "
                          f"or the secret {TOKEN_SECRET_KEY} when set)")
        self._say("fleet: press Ctrl-C to stop (running tasks finish or are released)")

    def _loop(self, rfd: int) -> int:
        while True:
            try:
                if self._iteration():
                    break
            except StoreError as exc:  # never fatal: back off, park workers, resume by itself
                self.outage.failed(self.store, str(exc))
            self._sleep(rfd)
        try:
            self.store.heartbeat(self.name, status="stopped", current_task=None)
            self.write_status()
            self.store.checkpoint("PASSIVE")
        except StoreError as exc:
            log.error("could not record the stop in the store: %s", exc)
        self.store.close()
        log.info("supervisor stopped cleanly")
        self._say("fleet: stopped cleanly")
        return self.exit_code

    def _iteration(self) -> bool:
        """One pass of the loop; True when a drain has finished."""
        stall_every = min(1.0, self.sup["heartbeat_timeout_s"] / 4)
        if self._pending_signal is not None:
            name = signal.Signals(self._pending_signal).name
            self._pending_signal = None
            self.begin_drain(name)
        if self.outage.active and not self.stopping:
            return self._outage_iteration()
        self.reap()
        if self.stopping:
            self.kill_due()
            if time.monotonic() >= self.drain_deadline or self.force:
                for child in self.children.values():
                    if child.proc is not None and child.kill_at is not None:
                        child.kill_at = time.monotonic()
                self.kill_due()
            if all(c.proc is None for c in self.children.values()):
                return True
        else:
            self.process_control()
            self.start_due()
            self.kill_due()
            if self._due("stalls", stall_every):
                self.check_stalls()
            if self._due("scale", 2.0):
                self.scale()
            self.scheduler.tick()  # [schedule.NAME]: enqueue each due slot once (fleet/schedule.py)
            self.notifier.tick()  # [notify]: alerts out, deadman ping; never blocks (fleet/notify.py)
        self.chores()
        return False

    def _outage_iteration(self) -> bool:
        """One pass while the store cannot take writes: children exit and are
        killed as usual, services restart, workers stay parked, and the store
        is retried on the outage's backoff."""
        self.reap()
        self.kill_due()
        if self.outage.try_resume(self.store, lambda: self.store.heartbeat(self.name, status="running")):
            self.resume_after_outage()
        self.start_due()
        return False

    def _sleep(self, rfd: int) -> None:
        timeout = 0.5
        if any(c.proc is None and c.next_start is not None for c in self.children.values()):
            soonest = min(c.next_start for c in self.children.values()
                          if c.proc is None and c.next_start is not None)
            timeout = max(0.0, min(timeout, soonest - time.monotonic()))
        if self.stopping:
            timeout = min(timeout, 0.1)
        elif self.outage.active:
            timeout = min(1.0, max(timeout, self.outage.backoff_s()))
        try:
            select.select([rfd], [], [], timeout)
            os.read(rfd, 512)
        except (BlockingIOError, InterruptedError):
            pass
