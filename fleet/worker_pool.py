"""Several tasks at once in one worker process ([workers.concurrency] > 1): a
fixed set of slot threads, each running one task at a time, and one watchdog
thread for all of them, so a model server with parallel slots stays busy. (The
threads live as long as the worker: the store keeps a connection per thread.)

Each task keeps what a single-task worker gives it: its own lease (renewed),
heartbeat, cancel and hard timeout. Python cannot stop one thread from
outside, so an interruption (cancel, lost lease) is raised inside the skill's
thread at its next Python instruction; a skill that ignores it past the grace,
or overruns its hard timeout, still ends the process (exit 75) as it does with
one task: the overrunning attempt is recorded, and the worker's other running
tasks are first released back to the queue without using an attempt.

A task on another model than the ones running waits (holding its lease)
until those finish, so the server swaps once instead of back and forth: its
requests would otherwise reach the server interleaved with the last ones of
the running model (see `_may_start`).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time

from .db import LeaseLost, StoreError, StoreUnavailable, open_store
from .logs import log_without_locks, set_current_task
from .skill_interrupts import CANCEL_GRACE_S, LOST_GRACE_S, LeaseInterrupted, TaskCancelled

log = logging.getLogger("fleet.worker")


def _raise_in_thread(ident: int, exc_type: type[BaseException] | None) -> bool:
    """Raise `exc_type` in thread `ident` at its next Python instruction (None:
    take back one not yet raised). True when the thread exists."""
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc_type) if exc_type is not None else None) == 1


class _Slot:
    """One running task: its thread, its deadline and interruption state
    (guarded by the pool's lock)."""

    def __init__(self, task, model: str | None, seq: int):
        self.task = task
        self.model = model
        self.seq = seq  # claim order
        self.started = False  # past the model gate (`_may_start`)
        self.ident: int | None = None
        self.timeout: float | None = None
        self.deadline: float | None = None  # monotonic; None until the skill starts
        self.wall_deadline: float | None = None
        self.in_skill = False
        self.interrupt: str | None = None  # "cancel" or "lost", once raised in the skill
        self.interrupt_at = 0.0
        self.last_renewed = time.monotonic()


class WorkerPool:
    """The claim loop and the watchdog of a worker that runs `size` tasks at once."""

    def __init__(self, worker, size: int):
        self.w = worker
        self.size = size
        self.slots: dict[int, _Slot] = {}
        self.lock = threading.Lock()
        self.gate = threading.Condition(self.lock)  # a slot started or finished
        self.seq = 0
        self.changed = threading.Event()  # a slot finished
        self.paused = False
        # Held by the main thread while it claims and starts a task; the
        # watchdog takes it to stop all claiming before the process ends, so
        # no task it releases is claimed again by this very process.
        self.claiming = threading.Lock()
        self.ending = False
        self._interrupts = {"cancel": (TaskCancelled, CANCEL_GRACE_S), "lost": (LeaseInterrupted, LOST_GRACE_S)}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()  # claimed tasks for the slot threads

    # -- the main thread: claim into free slots ---------------------------
    def busy(self) -> int:
        with self.lock:
            return len(self.slots)

    def running_models(self) -> list[str]:
        with self.lock:
            return [s.model for s in self.slots.values() if s.model]

    def run(self) -> None:
        """Claim and start tasks while slots are free, until a stop; then wait
        for the running tasks to finish (the supervisor's stop timeout bounds
        that wait by ending the process group)."""
        w = self.w
        threading.Thread(target=self._watch_loop, args=(open_store(w.cfg),), name="pool-watchdog",
                         daemon=True).start()
        for i in range(self.size):
            threading.Thread(target=self._slot_loop, name=f"slot-{i + 1}", daemon=True).start()
        while not w.stop_requested:
            try:
                self._fill()
            except StoreUnavailable as exc:
                if self.busy():
                    log.warning("the store cannot take a claim now (%s); the running tasks go on", exc)
                    self.changed.wait(1.0)
                    self.changed.clear()
                else:
                    w._wait_for_store(exc)
                continue
            if w._store_down_since is not None:
                log.info("the store takes writes again after %.0f s", time.monotonic() - w._store_down_since)
                w._store_down_since = w._store_logged = None
            if w.stop_requested:
                break
            if not self.busy():
                status = "paused" if self.paused else "idle"
                if w.state != status or time.monotonic() - w.last_beat >= w.hb_interval:
                    w.beat(status, current_task=None, detail=None)
                w._idle_wait()  # SIGTERM ends it at once: nothing runs
            elif self.busy() < self.size and not self.paused:
                # free slots: a new task or a finished one (both commit and notify) wakes us
                w.store.wait_for_work(min(w.hb_interval, 1.0))
            else:
                self.changed.wait(min(w.hb_interval, 1.0))
                self.changed.clear()
        while self.busy():
            self.changed.wait(0.5)
            self.changed.clear()

    def _fill(self) -> None:
        w = self.w
        w.handle_messages()
        self.paused = w.paused_by_message or bool(w.store.get_flag("paused", False))
        if w.stop_requested or self.paused:
            return
        while self.busy() < self.size:
            with self.claiming:
                if self.ending:
                    return
                task = w.claim_one(self.running_models())
                if task is None:
                    return
                self._start(task)

    def _start(self, task) -> None:
        self.seq += 1
        slot = _Slot(task, self.w.task_model(task), self.seq)
        with self.lock:
            self.slots[task.id] = slot
        self.w.state = "busy"
        self.w.last_beat = time.monotonic()  # the claim wrote the agent row
        self._jobs.put(slot)  # a slot thread is free: at most `size` tasks are held

    # -- the slot threads: one task at a time each --------------------------
    def _slot_loop(self) -> None:
        while True:
            self._run_slot(self._jobs.get())

    def _run_slot(self, slot: _Slot) -> None:
        w, task_id = self.w, slot.task.id
        set_current_task(task_id)
        slot.ident = threading.get_ident()
        try:
            with self.gate:
                while slot.interrupt is None and not self._may_start(slot):
                    self.gate.wait(1.0)
                slot.started = True
                self.gate.notify_all()
            if slot.interrupt is not None:  # cancelled or lost while waiting: the skill never ran
                w._store_outcome(slot.task, ("cancelled" if slot.interrupt == "cancel" else "lost", None), 0.0,
                                 claim_next=False)
                return
            prepared = w.prepare_task(slot.task)
            if prepared is None:
                return
            task, module, timeout = prepared
            log.debug("running %s (attempt %d/%d, timeout %.0f s, %d running)", task.skill, task.attempts,
                      task.max_attempts, timeout, self.busy(), extra={"task_id": task.id})
            with self.lock:
                slot.task, slot.timeout = task, timeout
                slot.deadline, slot.wall_deadline = time.monotonic() + timeout, time.time() + timeout
                slot.in_skill = True
            started = time.monotonic()
            outcome = w.call_skill(task, module, lambda: self._left_skill(slot))
            w._store_outcome(task, outcome, time.monotonic() - started, claim_next=False)
        except BaseException:  # noqa: BLE001 - one task's failure must not end the others
            log.exception("task %d: the worker could not finish handling it", task_id, extra={"task_id": task_id})
        finally:
            set_current_task(None)
            with self.gate:
                self.slots.pop(task_id, None)
                self.gate.notify_all()
            self.changed.set()

    def _may_start(self, slot: _Slot) -> bool:
        """Whether `slot` may start now (the pool's lock held). A task with no
        known model always may. Otherwise every started task's model must be
        its own (or all of them loaded together, by hw_state.json), and no
        task claimed before it may be waiting for another model: the models
        take turns in claim order, so none waits forever."""
        if slot.model is None:
            return True
        started = {s.model for s in self.slots.values() if s.started and s.model}
        if started and started != {slot.model}:
            loaded = self.w.loaded_models()
            if not loaded or not started | {slot.model} <= loaded:
                return False
        return not any(s.model and s.model != slot.model and not s.started and s.seq < slot.seq
                       for s in self.slots.values())

    def _left_skill(self, slot: _Slot) -> None:
        """Skill code is left: no interruption may land from now on (one
        raised but not yet delivered is taken back)."""
        with self.lock:
            slot.in_skill = False
            if slot.interrupt is not None:
                _raise_in_thread(slot.ident, None)

    # -- the watchdog thread: leases, heartbeat, cancel, hard timeouts --------
    def _watch_loop(self, store) -> None:
        w = self.w
        last_round = 0.0
        while True:
            with self.lock:
                slots = list(self.slots.values())
            now = time.monotonic()
            try:
                for slot in slots:
                    if slot.deadline is not None and now >= slot.deadline and slot.in_skill:
                        self._overran(store, slot)  # does not return
                    if slot.interrupt is not None and slot.in_skill and slot.interrupt_at:
                        self._check_grace(store, slot, now)
                if slots and now - last_round >= w.tick:
                    last_round = now
                    for slot in slots:
                        self._renew(store, slot)
                    self._heartbeat(store, slots)
            except Exception as exc:  # noqa: BLE001 - the watchdog must outlive any one task
                log.error("watchdog: %s", exc)
            deadlines = [s.deadline for s in slots if s.deadline is not None]
            wait = w.tick if slots else 0.2
            if deadlines:
                wait = min(wait, max(0.01, min(deadlines) - time.monotonic()))
            if any(s.interrupt for s in slots):
                wait = min(wait, 0.1)
            time.sleep(max(0.01, min(wait, 0.25)))

    def _renew(self, store, slot: _Slot) -> None:
        task, now = slot.task, time.monotonic()
        if slot.interrupt is not None:
            return
        lost = False
        try:
            cancel = store.renew(task.id, task.lease_token, self.w.lease_s)
            slot.last_renewed = now
        except LeaseLost:
            cancel = lost = True
        except Exception as exc:  # noqa: BLE001 - e.g. database busy: try again next round
            log.warning("could not renew the lease: %s", exc, extra={"task_id": task.id})
            # Past the lease the task may be handed to another worker: stop first.
            cancel = lost = now - slot.last_renewed > self.w.lease_s * 0.9
        if not cancel:
            return
        kind = "lost" if lost else "cancel"
        with self.gate:
            if not slot.started:  # still waiting for its model's turn: it will not run at all
                slot.interrupt = kind
                self.gate.notify_all()
                return
            if not slot.in_skill:  # preparing, or already storing its outcome: nothing to stop
                return
            slot.interrupt, slot.interrupt_at = kind, time.monotonic()
            _raise_in_thread(slot.ident, self._interrupts[kind][0])
        log.info("%s: interrupting the skill", "lease lost" if lost else "cancel requested",
                 extra={"task_id": task.id})

    def _heartbeat(self, store, slots: list[_Slot]) -> None:
        w = self.w
        w.progress += 1
        first = min(slots, key=lambda s: s.task.id)
        # "deadline": the earliest of the running tasks' (the supervisor leaves a silent worker be
        # only until then); "tasks": each with its own, so only an overrun one is failed as a timeout
        deadlines = [s.wall_deadline for s in slots if s.wall_deadline is not None]
        detail = {"task": first.task.id, "skill": first.task.skill, "deadline": min(deadlines, default=None),
                  "attempt": first.task.attempts,
                  "tasks": [{"task": s.task.id, "skill": s.task.skill, "deadline": s.wall_deadline}
                            for s in sorted(slots, key=lambda s: s.task.id)]}
        try:
            store.heartbeat(w.name, progress=w.progress, status="busy", current_task=first.task.id, detail=detail)
            w.state = "busy"
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is not fatal
            log.warning("heartbeat failed: %s", exc)

    def _check_grace(self, store, slot: _Slot, now: float) -> None:
        exc_type, grace = self._interrupts[slot.interrupt]
        if now - slot.interrupt_at <= grace:
            return
        log_without_locks(f"task {slot.task.id}: the skill ignores interruption ({slot.interrupt}); "
                           f"ending this worker process")
        if slot.interrupt == "cancel":
            try:
                store.acknowledge_cancel(slot.task.id, slot.task.lease_token)
            except StoreError as exc:
                log_without_locks(f"task {slot.task.id}: could not record the cancel: {exc}")
        self._end_process(store, slot, f"task {slot.task.id} ({slot.task.skill}) ignored its interruption")

    def _overran(self, store, slot: _Slot) -> None:
        """A task overran its hard timeout: record it (an attempt used, retried
        as with one task), release the others, end the process."""
        task = slot.task
        # No logging locks from here on: a stopped skill thread may hold one.
        log_without_locks(f"task {task.id}: skill {task.skill} exceeded its hard timeout of {slot.timeout:.0f} s; "
                           f"ending this worker process ({self.busy() - 1} other running task(s) released)")
        try:
            store.fail(task.id, task.lease_token, f"skill {task.skill} exceeded its hard timeout of "
                       f"{slot.timeout:.0f} s", retryable=True, reason="timeout")
        except StoreError as exc:
            log_without_locks(f"task {task.id}: could not record the timeout: {exc}")
        self._end_process(store, slot, f"task {task.id} ({task.skill}) overran its hard timeout")

    def _end_process(self, store, culprit: _Slot, why: str) -> None:
        """Give every other running task back (no attempt used), then exit 75."""
        took = self.claiming.acquire(timeout=5.0)  # a claim under way ends first (its task is released too)
        self.ending = True
        if took:
            self.claiming.release()
        with self.lock:
            others = [s for s in self.slots.values() if s is not culprit]
        for slot in others:
            try:
                store.release(slot.task.id, slot.task.lease_token, outcome="released",
                              note=f"worker {self.w.name} ended: {why}; released without using an attempt")
            except StoreError as exc:  # finished or reaped meanwhile, or the store is down (the lease expires)
                log_without_locks(f"task {slot.task.id}: not released: {exc}")
        self.w._hard_exit()
