"""One fleet worker process: claims tasks for its role, runs skills, stores results.

`python fleet/worker.py --role coder --name coder_1`. The skill runs in the main
thread while a watchdog thread renews the lease and heartbeats; at the skill's
hard timeout the process ends (exit 75) so the skill really stops. A role with
[workers.concurrency] above 1 runs that many tasks at once (worker_pool.py).
"""

if __package__ in (None, ""):  # run as `python fleet/worker.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "fleet"

import argparse
import dataclasses
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback

from . import procs
from .config import air_gap_refusal, load_or_exit, role_concurrency, role_skills, skill_timeout
from .config_drift import config_hash
from .fs_guard import running_skill
from .db import InvalidInput, LeaseLost, StoreError, StoreUnavailable, open_store
from .hosts import qualified
from .logs import log_without_locks as _log_without_locks
from .logs import set_current_task, setup_process_logging
from .skill_interrupts import CANCEL_GRACE_S, LeaseInterrupted, TaskCancelled
from .skills._hitl import APPROVE_WORDS, answer_text, without_human_fields

EX_OK = 0
EX_FATAL = 1
EX_SOFTWARE = 70
EX_TIMEOUT = 75  # EX_TEMPFAIL: a skill overran its hard timeout; the task is retried
EX_CONFIG = 78
APPROVAL_PREFIX = "Approve running"  # the question asked for a REQUIRES_APPROVAL skill
EX_RECYCLE = 79  # asked to recycle (memory_optimizer): exit between tasks, the supervisor replaces us
PARK_WAIT_S = 2.0
PERSIST_FIRST_RETRY_S = 0.05  # storing an outcome that the store could not take: first retry, then doubling
PERSIST_MAX_RETRY_S = 2.0
STORE_RETRY_MAX_S = 5.0  # an idle worker re-tries a store that cannot take writes at least this often

log = logging.getLogger("fleet.worker")


class _StopNow(BaseException):
    """Raised by the SIGTERM handler to leave an idle wait at once."""


def _parse_body(body):
    if isinstance(body, str):
        text = body.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                return {}
        return {"type": text}
    return body if isinstance(body, dict) else {}


class Worker:
    """The claim -> run -> store loop of one worker process."""

    def __init__(self, cfg: dict, role: str, name: str):
        self.cfg, self.role, self.name = cfg, role, name
        sup = cfg["supervisor"]
        self.lease_s = float(cfg["queue"]["lease_s"])
        self.hb_interval = float(sup["heartbeat_interval_s"])
        self.tick = max(0.05, min(self.hb_interval, self.lease_s / 3))
        self.store = None
        self.catalogue: dict = {}
        self.progress = 0
        self.stop_requested = False
        self.recycle_requested = False
        self.paused_by_message = False
        self.state = "starting"
        self.last_beat = 0.0
        # skill execution state (main thread writes, handlers read)
        self._in_skill = False
        self._waiting = False
        self._store_down_since: float | None = None  # monotonic time the store stopped taking writes
        self._store_logged: float | None = None
        self._interrupt: type[BaseException] | None = None
        self._parked = threading.Event()
        self._skill_done = threading.Event()
        self.concurrency = role_concurrency(cfg, role)
        self._pool = None  # the WorkerPool when concurrency > 1
        self.affinity = None  # ModelAffinity: what the next claim prefers

    # -- signals ---------------------------------------------------------
    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_parent_death)
        signal.signal(signal.SIGUSR1, self._on_park)
        signal.signal(signal.SIGUSR2, self._on_interrupt)

    def _on_stop_signal(self, signum, frame):
        self.stop_requested = True
        if self._waiting:
            raise _StopNow()

    def _on_parent_death(self, signum, frame):
        # The supervisor died (PR_SET_PDEATHSIG): take everything we started down
        # now (descendants, daemons re-parented to us included), then our group.
        _kill_descendants()
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(EX_FATAL)

    def _on_park(self, signum, frame):
        # The skill overran its timeout: stop running skill code in this thread.
        if self._in_skill:
            self._parked.set()
            threading.Event().wait()

    def _on_interrupt(self, signum, frame):
        exc = self._interrupt
        if exc is not None and self._in_skill:
            self._interrupt = None
            raise exc()

    # -- helpers ---------------------------------------------------------
    def beat(self, status: str | None = None, **fields) -> None:
        self.progress += 1
        self.last_beat = time.monotonic()
        if status:
            self.state = status
        self.store.heartbeat(self.name, progress=self.progress, status=status, **fields)

    def skill_info(self, skill: str):
        from .skill_registry import discover

        if skill not in self.catalogue:
            self.catalogue = discover(self.cfg)
        return self.catalogue.get(skill)

    def claim_skills(self) -> tuple[list[str], bool]:
        skills = role_skills(self.cfg, self.role)
        if self.store.lock_holder("training") is not None:
            excluded = [s for s in skills if (info := self.skill_info(s)) is not None and info.uses_gpu]
            return [s for s in skills if s not in excluded], False
        return skills, self.cfg["workers"]["idle_takes_any_skill"]

    def handle_messages(self) -> None:
        if not self.store.inbox(self.name, limit=1):
            return
        for msg in self.store.inbox(self.name, limit=100, mark_read=True):
            kind = _parse_body(msg["body"]).get("type")
            if kind == "pause":
                self.paused_by_message = True
                log.info("paused by %s", msg["sender"])
            elif kind == "resume":
                self.paused_by_message = False
                log.info("resumed by %s", msg["sender"])
            elif kind == "stop":
                self.stop_requested = True
                log.info("stop requested by %s", msg["sender"])
            elif kind == "recycle":
                # Messages are read between tasks, so no task is running now.
                self.stop_requested = self.recycle_requested = True
                log.info("recycle requested by %s: exiting so the supervisor starts a fresh process",
                         msg["sender"])

    # -- main loop -------------------------------------------------------
    def run(self) -> int:
        try:
            self.store = open_store(self.cfg)
        except (OSError, StoreError) as exc:
            raise StoreError(f"cannot open the database {self.cfg['paths']['db']}: {exc}; "
                             "check [paths] db in fleet.toml and that its folder is writable") from exc
        procs.become_subreaper()  # a skill's double-forked daemon stays ours to kill
        self.store.register_agent(self.name, self.role, pid=os.getpid(), host=self.cfg["fleet"]["host"],
                                  config_hash=config_hash(self.cfg), status="starting")
        self.start_watchdog()
        self._preload_model_clients()
        self._start_affinity()
        log.info("worker %s (role %s, pid %d%s) started; skills: %s", self.name, self.role, os.getpid(),
                 f", {self.concurrency} tasks at once" if self.concurrency > 1 else "",
                 ", ".join(role_skills(self.cfg, self.role)) or "(none: assigned tasks only)")
        self.beat("idle")
        try:
            if self.concurrency > 1:
                from .worker_pool import WorkerPool

                self._pool = WorkerPool(self, self.concurrency)
                self._pool.run()  # returns once stopped, with every running task finished
            else:
                self.start_watchdog()
            while self._pool is None and not self.stop_requested:
                try:
                    self.loop_once()
                except StoreUnavailable as exc:
                    self._wait_for_store(exc)
                    continue
                if self._store_down_since is not None:
                    log.info("the store takes writes again after %.0f s", time.monotonic() - self._store_down_since)
                    self._store_down_since = self._store_logged = None
        except _StopNow:
            pass
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("worker %s stopping", self.name)
        _kill_descendants()  # whatever a skill left behind dies with the worker
        self.store.heartbeat(self.name, status="stopped", current_task=None, detail=None)
        self.store.close()
        return EX_RECYCLE if self.recycle_requested else EX_OK

    def _preload_model_clients(self) -> None:
        """A role whose skills call models imports the providers' clients (the
        anthropic SDK: 1.3 s warm, 15 s on a cold disk) before its first
        claim, so no task pays for it."""
        from .skills._models import preload_providers, skills_use_models

        try:
            if not skills_use_models(self.cfg, role_skills(self.cfg, self.role)):
                return
            t0 = time.monotonic()
            loaded = preload_providers(self.cfg)
            log.info("model clients loaded before the first claim (%s) in %.2f s", ", ".join(loaded) or "none",
                     time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001 - the first call reports a real problem
            log.warning("could not preload the model clients: %s", exc)

    def _start_affinity(self) -> None:
        """Model-aware claiming ([workers] loaded_model_max_wait_s): on for a
        role whose skills call models."""
        from .model_affinity import ModelAffinity

        try:
            self.affinity = ModelAffinity(self.cfg, role_skills(self.cfg, self.role))
        except Exception as exc:  # noqa: BLE001 - the plain claim order still works
            log.warning("model-aware claiming is off: %s", exc)
            return
        if not self.affinity.enabled:
            self.affinity = None

    def prefer(self, running_models=()) -> dict | None:
        """The next claim's `prefer` (see model_affinity.py); None: the plain order."""
        if self.affinity is None:
            return None
        try:
            return self.affinity.prefer(running_models)
        except Exception as exc:  # noqa: BLE001 - never let a preference stop a claim
            log.warning("no model preference for this claim: %s", exc)
            return None

    def loaded_models(self) -> frozenset[str]:
        """Models the local server holds by hw_state.json (as compared: no ':latest')."""
        if self.affinity is None:
            return frozenset()
        try:
            return self.affinity.loaded_models()
        except Exception:  # noqa: BLE001 - unknown: nothing assumed loaded
            return frozenset()

    def task_model(self, task) -> str | None:
        if self.affinity is None:
            return None
        try:
            return self.affinity.task_model(task)
        except Exception:  # noqa: BLE001 - unknown model: no preference from it
            return None

    def claim_one(self, running_models=()):
        """Claim one task for this worker (its role's skills, the model
        preference; then any skill when [workers] idle_takes_any_skill)."""
        skills, any_skill = self.claim_skills()
        task = self.store.claim(self.name, skills, lease_s=self.lease_s, prefer=self.prefer(running_models))
        if task is None and any_skill:
            task = self.store.claim(self.name, [], lease_s=self.lease_s, any_skill=True)
        return task

    def next_claim(self) -> list[str] | None:
        """Between two tasks: read messages, the pause flag and the training
        lock, and say which skills the next claim may take (None: claim
        nothing now, the main loop handles a stop or a pause)."""
        self.handle_messages()
        if self.stop_requested or self.paused_by_message or self.store.get_flag("paused", False):
            return None
        return self.claim_skills()[0]

    def loop_once(self) -> None:
        self.handle_messages()
        if self.stop_requested:
            return
        paused = self.paused_by_message or bool(self.store.get_flag("paused", False))
        if paused:
            if self.state != "paused" or time.monotonic() - self.last_beat >= self.hb_interval:
                self.beat("paused")
            self._idle_wait()
            return
        task = self.claim_one()
        if task is not None:
            self.last_beat = time.monotonic()  # the claim wrote the agent row (busy, heartbeat)
            while task is not None:  # each successful task claims the next in its own commit
                task = self.run_task(task)
            return
        if self.state != "idle" or time.monotonic() - self.last_beat >= self.hb_interval:
            self.beat("idle", current_task=None, detail=None)
        self._idle_wait()

    def _wait_for_store(self, exc: StoreUnavailable) -> None:
        """The store cannot take a claim or a heartbeat now (a full disk, the
        write lock held past the busy timeout): wait and try again rather
        than exit, so a worker rides out a degraded store instead of being
        respawned into the same error. Nothing is held: a failed claim
        committed nothing. One log line a minute; SIGTERM ends the wait."""
        now = time.monotonic()
        if self._store_down_since is None:
            self._store_down_since = now
        if self._store_logged is None or now - self._store_logged >= 60:
            self._store_logged = now
            log.warning("the store cannot take writes (%s); waiting for it (down %.0f s)",
                        exc, now - self._store_down_since)
        delay = min(STORE_RETRY_MAX_S, 0.25 * 2 ** min(8, int((now - self._store_down_since) // 2)))
        self._waiting = True
        try:
            if not self.stop_requested:
                time.sleep(delay)
        finally:
            self._waiting = False

    def _idle_wait(self) -> None:
        """Sleep until work, a message or a flag change may be there (or the
        heartbeat is due); SIGTERM interrupts it at once."""
        _reap_exited_children()
        self._waiting = True
        try:
            if not self.stop_requested:
                self.store.wait_for_work(self.hb_interval)
        finally:
            self._waiting = False

    # -- one task --------------------------------------------------------
    def run_task(self, task):
        """Run one claimed task and store its outcome; returns the next task
        when the successful completion claimed one in the same commit."""
        set_current_task(task.id)
        self.state = "busy"
        try:
            prepared = self.prepare_task(task)
            return None if prepared is None else self._execute(*prepared)
        finally:
            set_current_task(None)
            self.state = "idle"

    def prepare_task(self, task):
        """Everything before the skill runs: look the skill up, check the
        payload, offline mode and approval, load the module. Returns (task,
        module, timeout), or None when the task's outcome is already stored."""
        from .skill_registry import (
            InvalidPayload,
            UnknownSkill,
            get_info,
            load_module,
            validate_payload,
        )

        try:
            info = self.skill_info(task.skill) or get_info(task.skill, catalogue=self.catalogue)
            validate_payload(info, without_human_fields(task.payload))
        except UnknownSkill as exc:
            return self._fail(task, str(exc), retryable=False, reason="unknown_skill")
        except InvalidPayload as exc:
            return self._fail(task, str(exc), retryable=False, reason="invalid_payload")
        refusal = air_gap_refusal(self.cfg, task.skill)
        if refusal:
            return self._fail(task, refusal, retryable=False, reason="air_gap")
        if info.requires_network and self.cfg["fleet"]["offline_mode"]:
            mode = "air-gap" if self.cfg["fleet"]["air_gap_mode"] else "offline"
            return self._fail(
                task, f"skill {task.skill} needs the network, but the fleet is in {mode} mode; "
                f"turn off [fleet] offline_mode/air_gap_mode in fleet.toml to run it",
                retryable=False, reason="offline")
        if info.requires_approval:
            if not self._approved(task):
                return None
            if str(task.payload.get("human_question", "")).startswith(APPROVAL_PREFIX):
                # the approval was ours, not the skill's: run it with the payload as sent
                task = dataclasses.replace(task, payload=without_human_fields(task.payload))
        try:
            module = load_module(info)
        except Exception as exc:  # noqa: BLE001 - a broken skill file fails its task
            return self._fail(task, f"skill {task.skill} could not be loaded: {type(exc).__name__}: {exc}",
                              retryable=False, reason="skill_load_error")
        return task, module, skill_timeout(self.cfg, task.skill, info.timeout_s)

    def _approved(self, task) -> bool:
        """REQUIRES_APPROVAL: park a new task for a person's approval, fail it
        when rejected. A later question of the skill's own means it was
        approved before it ran."""
        question = task.payload.get("human_question")
        if question is None:
            text = json.dumps(without_human_fields(task.payload), ensure_ascii=False)[:500]
            self.store.ask_human(task.id, task.lease_token, f"{APPROVAL_PREFIX} {task.skill} with payload {text}?",
                                 ["approve", "reject"])
            log.info("waiting for a person to approve %s", task.skill, extra={"task_id": task.id})
            return False
        if not str(question).startswith(APPROVAL_PREFIX):
            return True
        answer = answer_text(task.payload)
        if answer in APPROVE_WORDS:
            return True
        self._fail(task, f"a person did not approve running {task.skill} (answer: {answer!r})",
                   retryable=False, reason="rejected")
        return False

    def _fail(self, task, error: str, *, retryable: bool, reason: str) -> None:
        log.warning("task %d (%s) failed: %s", task.id, task.skill, error, extra={"task_id": task.id})
        try:
            self._persist(task, lambda: self.store.fail(task.id, task.lease_token, error, retryable=retryable,
                                                        reason=reason))
        except LeaseLost as exc:
            log.warning("%s", exc)

    def _defer(self, task, until: float, text: str) -> None:
        """The model providers are only busy until `until` (cool-down, rate
        limit, open breaker): give the task back for then without using an
        attempt, while it is within [models] max_wait_s of the first such
        wait; past that it fails with the reason."""
        patience = float(self.cfg["models"]["max_wait_s"])
        since = time.time()
        try:  # the trailing run of deferred attempts (before this one) started the wait
            for attempt in reversed(self.store.attempts(task.id)):
                if attempt["outcome"] not in ("running", "deferred"):
                    break
                since = min(since, attempt["started_at"] or since)
        except StoreError:
            pass
        if until - since <= patience:
            self._persist(task, lambda: self.store.release(task.id, task.lease_token, available_at=until,
                                                           outcome="deferred", note=text))
            log.info("model providers busy: rescheduled for %.0f s from now without using an attempt (waiting "
                     "%.0f s so far, [models] max_wait_s %g s)", until - time.time(), time.time() - since,
                     patience, extra={"task_id": task.id})
            return
        self._fail(task, f"{text}; gave up: this task has waited {time.time() - since:.0f} s for a busy model "
                         f"provider and the first frees up in {max(0.0, until - time.time()):.0f} s, past [models] "
                         f"max_wait_s ({patience:g} s) in all", retryable=False, reason="provider_busy")

    def _persist(self, task, write):
        """Run a store write that records `task`'s outcome until it commits.

        A finished result is never thrown away because the store could not
        take it for a while (the write lock held past the busy timeout, a
        full disk): the outcome is kept, the write retried with backoff, and
        the lease renewed between tries so the task is not handed to another
        worker meanwhile. Only a lost lease (LeaseLost: fencing) ends it.
        """
        delay, last_logged = PERSIST_FIRST_RETRY_S, None
        while True:
            try:
                return write()
            except StoreUnavailable as exc:
                if last_logged is None or time.monotonic() - last_logged >= 60:
                    last_logged = time.monotonic()
                    log.warning("could not store the outcome (%s); keeping it and retrying", exc,
                                extra={"task_id": task.id})
            time.sleep(delay)
            delay = min(delay * 2, PERSIST_MAX_RETRY_S)
            try:
                self.store.renew(task.id, task.lease_token, self.lease_s)  # LeaseLost ends the wait
            except StoreUnavailable:
                pass  # the next try tells

    def _execute(self, task, module, timeout: float):
        self.state = "busy"
        # One INFO line per task (at its end): two lines per task cost a short
        # task as much as its commit (rotating-file checks, formatting).
        log.debug("running %s (attempt %d/%d, timeout %.0f s)", task.skill, task.attempts, task.max_attempts,
                 timeout, extra={"task_id": task.id})
        self._parked.clear()
        self._skill_done.clear()
        self._interrupt = None
        self._in_skill = True
        self._watch_idle.clear()
        self._watch_jobs.put((task, time.monotonic() + timeout, timeout, time.time() + timeout))
        started = time.monotonic()

        def left_skill():
            self._in_skill = False
            self._skill_done.set()

        outcome = self.call_skill(task, module, left_skill)
        self._watch_idle.wait()
        elapsed = time.monotonic() - started
        return self._store_outcome(task, outcome, elapsed)

    def call_skill(self, task, module, left_skill) -> tuple:
        """Run the skill's `run()` in this thread and say how it ended:
        (kind, value). `left_skill()` is called the moment skill code is
        left (returned or raised), before the outcome is classified, so an
        interruption aimed at the skill can no longer land."""
        from .skills._hitl import NeedsHuman

        skill_log = logging.getLogger(f"fleet.skill.{task.skill}")
        outcome = None
        try:
            try:
                with running_skill(task.skill, task.id, self.cfg):  # the filesystem guard's subject
                    outcome = ("ok", module.run(dict(task.payload), self.cfg, skill_log))
            finally:
                left_skill()
        except NeedsHuman as exc:
            outcome = ("human", exc)
        except TaskCancelled:
            outcome = ("cancelled", None)
        except LeaseInterrupted:
            outcome = ("lost", None)
        except Exception as exc:  # noqa: BLE001 - any skill error fails the attempt
            # An exception may say retrying cannot help (`retryable = False`) and
            # name its own failure reason (`fail_reason`, e.g. a blocked budget):
            # then its message is the whole error, as the operator should read it.
            reason = getattr(exc, "fail_reason", None)
            text = str(exc) if reason else f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            outcome = ("error", (text, bool(getattr(exc, "retryable", True)), reason or "error"))
            defer = getattr(exc, "defer_until", None)  # a busy model provider frees up then (ProviderBusy)
            if isinstance(defer, (int, float)) and not isinstance(defer, bool):
                outcome = ("defer", (float(defer), str(exc)))
        return outcome

    def _store_outcome(self, task, outcome, elapsed: float, *, claim_next: bool = True):
        """Record how the attempt ended. A success also claims this worker's
        next task in the same transaction (one commit per task), which is
        returned (not with `claim_next=False`: a pool slot, whose next claim
        is the main thread's); every store call here writes the agent row too."""
        kind, value = outcome
        nxt = None
        try:
            if kind == "ok":
                if not isinstance(value, dict):
                    self._fail(task, f"skill {task.skill} returned {type(value).__name__}; run() must return a dict",
                               retryable=False, reason="bad_result")
                else:
                    try:
                        skills = self.next_claim() if claim_next else None
                    except StoreError:  # the next claim can wait; this result must not
                        skills = None
                    if skills is None:
                        self._persist(task, lambda: self.store.complete(task.id, task.lease_token, value))
                    else:
                        # the model this task just used is loaded: the next claim prefers it
                        prefer = self.prefer([self.task_model(task)])
                        _, nxt = self._persist(task, lambda: self.store.complete_and_claim(
                            task.id, task.lease_token, value, worker=self.name, skills=skills,
                            lease_s=self.lease_s, prefer=prefer))
                    log.info("%s done in %.3f s (attempt %d/%d)", task.skill, elapsed, task.attempts,
                             task.max_attempts, extra={"task_id": task.id})
            elif kind == "human":
                self._persist(task, lambda: self.store.ask_human(task.id, task.lease_token, value.question,
                                                                 value.options))
                log.info("waiting for a person: %s", value.question, extra={"task_id": task.id})
            elif kind == "cancelled":
                self._persist(task, lambda: self.store.acknowledge_cancel(task.id, task.lease_token))
                log.info("cancelled", extra={"task_id": task.id})
            elif kind == "lost":
                log.warning("stopped: this worker no longer holds the task's lease", extra={"task_id": task.id})
            elif kind == "defer":
                self._defer(task, *value)
            else:
                text, retryable, reason = value
                self._fail(task, text, retryable=retryable, reason=reason)
        except LeaseLost as exc:
            log.warning("%s", exc, extra={"task_id": task.id})
            kind = "lost"  # nothing was stored
        except InvalidInput as exc:
            # What the skill handed back cannot be stored (a result JSON cannot
            # encode, an odd question): retrying would do the same, so say why.
            what = "a question" if kind == "human" else "a result"
            self._fail(task, f"skill {task.skill} returned {what} the store cannot keep: {exc}",
                       retryable=False, reason="bad_result")
        except StoreError as exc:
            log.error("could not store the outcome: %s", exc, extra={"task_id": task.id})
            if self._pool is None and time.monotonic() - self.last_beat >= self.hb_interval:
                self._guard(lambda: self.beat("idle", current_task=None, detail=None), task)
            return None
        if kind == "lost" and self._pool is None:  # nothing was stored, so the agent row still names the task
            self._guard(lambda: self.beat("idle", current_task=None, detail=None), task)
        else:  # the outcome's transaction wrote the agent row (idle, or busy on the next task)
            self.progress += 1
            self.last_beat = time.monotonic()
        return nxt

    # -- watchdog (one thread for the worker's life; it watches each skill run) --
    def start_watchdog(self) -> None:
        """Start the watchdog thread with its own store (its own connection),
        once: starting a thread and opening a store for every task cost more
        than a short task itself."""
        self._watch_jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._watch_idle = threading.Event()
        self._watch_idle.set()
        threading.Thread(target=self._watch_loop, args=(open_store(self.cfg),), name="watchdog", daemon=True).start()

    def _watch_loop(self, store) -> None:
        while True:
            job = self._watch_jobs.get()
            try:
                self._watch(store, *job)
            finally:
                self._watch_idle.set()

    def _watch(self, store, task, deadline: float, timeout: float, wall_deadline: float) -> None:
        """Renew the lease and heartbeat while the skill runs; interrupt it on
        cancel or lost lease; end the process at the hard timeout."""
        interrupt_sent_at = None
        last_renewed = time.monotonic()
        try:
            if not self._skill_done.wait(min(self.tick, 0.2)):
                self._guard(lambda: store.heartbeat(
                    self.name, progress=self.progress + 1, status="busy", current_task=task.id,
                    detail={"task": task.id, "skill": task.skill, "deadline": wall_deadline,
                            "attempt": task.attempts}), task)
                self.progress += 1
            while not self._skill_done.wait(min(self.tick, max(0.01, deadline - time.monotonic()))):
                if time.monotonic() >= deadline:
                    self._on_timeout(store, task, timeout)
                    return
                lost = False
                try:
                    cancel = store.renew(task.id, task.lease_token, self.lease_s)
                    last_renewed = time.monotonic()
                except LeaseLost:
                    cancel = lost = True
                except Exception as exc:  # noqa: BLE001 - e.g. database busy: try again next tick
                    log.warning("could not renew the lease: %s", exc, extra={"task_id": task.id})
                    # Past the lease the task may be handed to another worker: stop first.
                    cancel = lost = time.monotonic() - last_renewed > self.lease_s * 0.9
                if cancel:
                    if interrupt_sent_at is None:
                        log.info("%s: interrupting the skill", "lease lost" if lost else "cancel requested",
                                 extra={"task_id": task.id})
                        self._interrupt = LeaseInterrupted if lost else TaskCancelled
                        interrupt_sent_at = time.monotonic()
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR2)
                    elif time.monotonic() - interrupt_sent_at > (1.0 if lost else CANCEL_GRACE_S):
                        log.error("the skill ignores interruption; ending this worker process",
                                  extra={"task_id": task.id})
                        self._hard_exit()
                    continue
                self.progress += 1
                self._guard(lambda: store.heartbeat(self.name, progress=self.progress), task)
        except Exception as exc:  # noqa: BLE001 - the watchdog thread must outlive any one task
            log.error("watchdog: %s", exc, extra={"task_id": task.id})

    @staticmethod
    def _guard(fn, task) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal
            log.warning("heartbeat failed: %s", exc, extra={"task_id": task.id})

    def _on_timeout(self, store, task, timeout: float) -> None:
        log.error("skill %s exceeded its hard timeout of %.0f s; ending this worker process",
                  task.skill, timeout, extra={"task_id": task.id})
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        for _ in range(int(PARK_WAIT_S / 0.02)):
            if self._parked.is_set() or self._skill_done.is_set():
                break
            time.sleep(0.02)
        if self._skill_done.is_set() and not self._parked.is_set():
            return  # the skill finished just in time; the main thread stores it
        _kill_descendants()
        if self._parked.is_set():  # skill code is stopped: safe to record the attempt
            try:
                store.fail(task.id, task.lease_token, f"skill {task.skill} exceeded its hard timeout of {timeout:.0f} s",
                           retryable=True, reason="timeout")
            except StoreError as exc:
                _log_without_locks(f"task {task.id}: could not record the timeout: {exc}")
        self._hard_exit()

    def _hard_exit(self) -> None:
        """End the process now. The parked skill thread may hold a logging
        handler's lock (it can be stopped mid-`log.info`), so nothing here may
        take one: flush the streams directly and leave with os._exit."""
        _kill_descendants()
        _log_without_locks(None)
        os._exit(EX_TIMEOUT)


def _reap_exited_children() -> None:
    """Collect the exit status of finished children nobody waits for (daemons
    re-parented to this subreaper), so none stays a zombie. Called only while
    no skill runs, so it never takes a status a skill's own subprocess call
    is waiting for."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _kill_descendants() -> None:
    """Kill every process this worker started (skill subprocesses), not itself."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except Exception as exc:  # noqa: BLE001 - best effort on the way out
        log.warning("could not kill the skill's child processes: %s", exc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-worker", description="Run one fleet worker.")
    parser.add_argument("--role", required=True, help="role whose [affinity] skills this worker claims")
    parser.add_argument("--name", help="worker name (default: the role)")
    parser.add_argument("--home", help="fleet home (default: FLEET_HOME or the repository)")
    args = parser.parse_args(argv)
    cfg = load_or_exit(args.home)
    name = qualified(cfg, args.name or args.role)  # coder_1@host where several hosts share the store
    if args.role not in cfg["affinity"]:
        print(f"fleet-worker: role {args.role!r} has no [affinity] entry in {cfg['config_file']}; "
              f"add `{args.role} = [\"skill\", ...]` under [affinity] (known roles: "
              f"{', '.join(sorted(cfg['affinity']))})", file=sys.stderr)
        return EX_CONFIG
    setup_process_logging(name, cfg)
    worker = Worker(cfg, args.role, name)
    worker.install_signals()
    try:
        return worker.run()
    except _StopNow:
        return EX_OK
    except StoreError as exc:
        log.error("fatal store error: %s", exc)
        print(f"fleet-worker {name}: fatal: {exc}", file=sys.stderr)
        return EX_FATAL
    except Exception:
        log.exception("fatal error in worker %s", name)
        traceback.print_exc()
        return EX_SOFTWARE


if __name__ == "__main__":
    raise SystemExit(main())
