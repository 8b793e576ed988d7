"""The store's one written contract: every method code outside `fleet/store/`
may call, with its arguments, result, errors, atomicity and ordering. Each
backend (SQLite today, PostgreSQL next) implements exactly this.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .task_model import Page, Task

# "Leave this field as it is": the default of heartbeat's optional fields,
# distinct from None (which clears the field).
UNSET: Any = object()

# Public Store methods that are NOT part of the contract: no code outside
# fleet/store/ may call them, and a second backend need not have them. (The
# test- and benchmark-only helpers that were here live in tests/ and scripts/.)
NOT_IN_CONTRACT = frozenset({
    "next_available_at",       # wait_for_work's own helper; only tests call it from outside
})


@runtime_checkable
class StoreContract(Protocol):
    """What every store backend provides. Reached through `fleet.db`
    (`open_store(cfg)`, `shared_store(cfg)`); nothing else opens the database.

    Conventions for every method below:

    * Times are UTC epoch seconds (float), taken from the store's clock
      (`fleet.store.values.now`), whatever backend holds them.
    * Payloads, results, answers, details, flag values and message bodies are
      JSON values (dict/list/str/int/float/bool/None; no NaN or infinity). A
      value that is not JSON-serialisable, or over `[queue] max_payload_bytes`,
      is refused with InvalidInput before anything is written.
    * Rows come back as `Task`/`Page` records (tasks) or plain dicts of column
      values (everything else), never driver rows.
    * Errors, all subclasses of `StoreError`:
      - `InvalidInput` (also a ValueError): the caller passed something the
        store refuses (bad id, name, priority, unknown field, oversize value).
        Nothing was written. Retrying the same call fails the same way.
      - `NotFound` (also a LookupError): the named task/alert does not exist.
      - `LeaseLost`: the lease token is stale (the attempt was reaped,
        released, cancelled or finished elsewhere). Nothing was written; the
        caller must stop working on the task.
      - `InvalidTransition`: the task's status does not allow the operation
        (answering a task that is not WAITING_HUMAN, retrying a RUNNING one).
        Nothing was written.
      - `StoreUnavailable`: the database could not complete the operation
        (busy past the timeout, disk full, I/O error, connection lost). Any
        method may raise it, reads included. A write that raised it was rolled
        back, except when the connection was lost during COMMIT itself (a
        networked backend): then the outcome is unknown, and the fenced and
        keyed writes (complete with a token, enqueue with an idempotency key)
        are the ones that are safe to repeat.
    * No driver exception ever escapes: nothing above `fleet/store/` imports a
      database driver or catches `sqlite3.Error`/`psycopg.Error`.
    * Atomicity: "one transaction" means all or nothing: every row the method
      changes, and the audit event / attempt row it records, commit together
      or not at all. A process killed at any instruction leaves the store as
      it was before the call or as it is after it.
    * Concurrency: every method is correct with many writers at once (several
      processes and hosts on one PostgreSQL). A read-check-write is one
      conditional statement, a row lock, or guarded by a unique constraint;
      never correct only because SQLite admits one writer at a time.
    * Writes that can make work claimable (enqueue, answer, retry, release,
      fail with a retry, complete with dependents, reap, messages, flags) wake
      `wait_for_work` waiters themselves after they commit.
    * A Store may be shared by the threads of one process; after a fork the
      child must open its own (or the store reopens its connections itself).
    """

    backend: str
    """The backend's name: "sqlite" or "postgresql" (shown on health pages)."""

    # ------------------------------------------------------------------
    # queue writes
    # ------------------------------------------------------------------
    def enqueue(self, skill: str, payload: dict | None = None, **options: Any) -> Task:
        """Add one task and return it as stored (status PENDING, or FAILED
        when a parent in `depends_on` is already FAILED/CANCELLED).

        Args: `skill` a skill name (letters, digits, underscores); `payload`
        a JSON object (None: {}). `options`, each optional: `priority` 1-10
        (default 5, higher runs first), `assigned_to` (a worker name: only
        that worker may claim it), `max_attempts` 1-1000 (default
        `[queue] max_attempts`), `available_at` (epoch seconds) or `delay_s`
        (not both), `idempotency_key` (<= 500 chars), `depends_on` (ids of
        existing tasks that must be DONE first), `created_by` (who asked).

        Returns: the new Task; when `idempotency_key` names an existing task,
        that task, unchanged, whatever its status.

        Errors: InvalidInput (unknown option, bad value, oversize payload, a
        `depends_on` id that does not exist); StoreUnavailable.

        Atomicity: one transaction: the task row, its dependency rows and the
        per-status counts.

        Concurrency: two callers racing with the same idempotency key get the
        same task, one row (a unique constraint plus insert-or-return, not
        read-then-insert). A parent that finishes while the child is being
        inserted is counted correctly: the child is never left waiting for a
        parent that is already DONE.
        """
        ...

    def enqueue_many(self, specs: Sequence[dict]) -> list[Task]:
        """Add several tasks; all are written or none.

        Args: `specs` a list of dicts with the fields of `enqueue` (`skill`,
        `payload` and its options). Every spec is validated before anything
        is written.

        Returns: one Task per spec, in the order of `specs`, with the ids
        the store gave them (not assumed consecutive). A spec whose
        idempotency key exists (in the store or earlier in the batch) yields
        the existing task instead of a new one.

        Errors: InvalidInput (not a list, or any spec invalid: nothing is
        written); StoreUnavailable.

        Atomicity: one transaction for the whole batch (rows, dependencies,
        counts). No audit event per task: the rows (created_at, created_by)
        are the record, and the activity feed shows a batch as one entry.

        Concurrency: as `enqueue`; ids are read back from the insert, so
        batches written at the same time by other writers may interleave.
        """
        ...

    def claim(self, worker: str, skills: Iterable[str] | None = None, *,
              lease_s: float | None = None, any_skill: bool = False, prefer: dict | None = None) -> Task | None:
        """Claim the best claimable task for `worker` and lease it.

        Claimable: PENDING, no unfinished dependency, `available_at` reached,
        and either assigned to `worker` by name or unassigned with a skill in
        `skills` (any skill when `any_skill`; with neither, only tasks
        assigned to `worker`).

        Returns: the claimed Task (RUNNING, `attempts` + 1, a fresh
        `lease_token`, `lease_expires_at` = now + `lease_s`; None: the
        store's configured [queue] lease_s), or None when
        nothing is claimable.

        `prefer` (None: the plain order) is what the worker's model server
        holds: `{"models": [names], "skills": [names], "max_wait_s": s}`. A
        task's model is its payload's `model` field; a task whose payload
        names none is preferred when its skill is in `skills`. Model names
        compare without an Ollama ":latest" tag. `max_wait_s` (default 120)
        is the waiting-age bound.

        Errors: InvalidInput (bad worker name, skill name, `prefer` field, or
        `lease_s` not in (0, 1 week]); StoreUnavailable.

        Ordering: highest priority first, then lowest id (FIFO within a
        priority). With `prefer`: within the top claimable priority, tasks
        on a loaded model go first (lowest id first), but never ahead of a
        task that became ready more than `max_wait_s` before them: that one
        is taken first, so no task starves. Only the first rows of the plain
        order are looked at (`claim_order.PREFER_WINDOW`). Priorities win
        over the preference.

        Atomicity: one transaction: the task row and the worker's agent row
        (busy, current_task, heartbeat). No audit event: the running attempt
        is recorded by the task row itself.

        Concurrency: two workers never claim the same attempt. The claim is one
        conditional write that re-checks `status = 'PENDING'` (SQLite:
        `UPDATE ... RETURNING` under the write lock; PostgreSQL:
        `FOR UPDATE SKIP LOCKED`, so claimers skip each other's rows instead
        of queueing behind them).
        """
        ...

    def renew(self, task_id: int, token: str, lease_s: float | None = None) -> bool:
        """Extend the lease of a running attempt to now + `lease_s` (None:
        the store's configured [queue] lease_s).

        Returns: True when an operator asked to cancel the task (the worker
        should stop and call `acknowledge_cancel`), else False.

        Errors: LeaseLost (token stale: nothing changed); InvalidInput (bad
        `lease_s` or token type); StoreUnavailable.

        Atomicity: one conditional statement (id, status RUNNING and token).
        No audit event.

        Concurrency: fenced by the token; a renew racing a reap either extends
        the lease before the reap (which then leaves the task alone) or raises
        LeaseLost after it.
        """
        ...

    def complete(self, task_id: int, token: str, result: Any = None) -> Task:
        """Finish the attempt successfully: status DONE with `result`.

        Returns: the finished Task.

        Errors: LeaseLost (token stale: nothing changed, the result is
        dropped); InvalidInput (result not JSON-serialisable or too large);
        StoreUnavailable.

        Atomicity: one transaction: the task row, its attempt row (outcome
        'done'), the worker's agent row (idle), and its dependents' counts
        (a child whose last parent this was becomes claimable).

        Concurrency: fenced by the token (the write's WHERE names id, RUNNING
        and token). Repeating a complete that already committed raises
        LeaseLost and changes nothing.
        """
        ...

    def complete_and_claim(self, task_id: int, token: str, result: Any = None, *, worker: str,
                           skills: Iterable[str] | None = None, lease_s: float | None = None,
                           any_skill: bool = False, prefer: dict | None = None) -> tuple[Task, Task | None]:
        """`complete()` then `claim()` in one transaction: the worker's one
        commit per task (`prefer` as in `claim`).

        Returns: (the finished Task, the next claimed Task or None).

        Errors: as `complete` and `claim`. LeaseLost on the completion means
        nothing happened: no completion and no claim.

        Ordering: dependents freed by the completion are promoted first and
        may be the task claimed next; otherwise as `claim`.

        Atomicity: one transaction holding both halves with their attempt
        row and agent row; a crash leaves either neither or both.

        Concurrency: as `complete` (fenced) and `claim` (no double claim).
        """
        ...

    def fail(self, task_id: int, token: str, error: str, *, retryable: bool = True,
             reason: str | None = None) -> Task:
        """Record a failed attempt. Retryable with attempts left: back to
        PENDING with `available_at` after an exponential backoff with jitter.
        Otherwise FAILED (the dead letter) with `error`, and every unfinished
        dependent fails too. A task whose cancel was requested is CANCELLED.

        Args: `error` free text (kept, at most 20,000 characters; text that is
        not valid Unicode is escaped, never refused); `reason` a short
        machine word recorded as the attempt's outcome (default 'failed').

        Returns: the task as it is after the failure.

        Errors: LeaseLost (token stale: nothing changed); InvalidInput (bad
        reason type); StoreUnavailable.

        Atomicity: one transaction: task row, attempt row, the event
        (`retry_scheduled` or `fail`), the agent row and failed dependents.

        Concurrency: fenced by the token: the whole transaction applies only
        while this attempt still owns the task (row lock or a conditional
        write naming the token), so a reap landing in between cannot be
        overwritten.
        """
        ...

    def release(self, task_id: int, token: str, *, available_at: float | None = None,
                outcome: str = "released", note: str | None = None) -> Task:
        """Give the task back without counting the attempt (graceful stop, or
        a model provider busy until later): PENDING again, claimable at
        `available_at` (None or past: at once). A cancel-requested task becomes
        CANCELLED; one whose parent failed meanwhile becomes FAILED.

        Args: `outcome` the attempt's recorded end ('released'; the worker
        writes 'deferred' for a busy provider); `note` why, kept on the
        attempt and as the task's error (reason = `outcome`) until it runs.

        Returns: the task as it is after the release.

        Errors: LeaseLost (token stale: nothing changed); StoreUnavailable.

        Atomicity: one transaction: task row, attempt row (outcome
        'released'), the `release` event, the agent row.

        Concurrency: fenced by the token, as `fail`.
        """
        ...

    def ask_human(self, task_id: int, token: str, question: str,
                  options: Sequence[str] | None = None) -> Task:
        """Park a running task until a person answers: WAITING_HUMAN with the
        question; the attempt is not counted. (Cancel-requested: CANCELLED;
        a parent failed meanwhile: FAILED.)

        Args: `question` non-empty text; `options` the answers a person may
        pick (a list of strings) or None.

        Returns: the task as it is after.

        Errors: LeaseLost (token stale); InvalidInput (empty question, bad
        options); StoreUnavailable.

        Atomicity: one transaction: task row, attempt row (outcome
        'waiting_human'), the `ask_human` event, the agent row.

        Concurrency: fenced by the token, as `fail`.
        """
        ...

    def answer(self, task_id: int, answer: Any, *, by: str = "human") -> Task:
        """Resume a WAITING_HUMAN task: PENDING again, with the answer put in
        its payload (`human_answer`, and the question as `human_question`).

        Returns: the resumed Task.

        Errors: NotFound (no such task); InvalidTransition (not
        WAITING_HUMAN); InvalidInput (answer not JSON, payload too large, bad
        `by`); StoreUnavailable.

        Atomicity: one transaction: task row and the `answer` event.

        Concurrency: two answers racing: exactly one applies, the other gets
        InvalidTransition (the write re-checks WAITING_HUMAN).
        """
        ...

    def cancel(self, task_id: int, *, by: str = "operator") -> Task:
        """Cancel a task. PENDING/WAITING_HUMAN: CANCELLED now, never runs, and
        its unfinished dependents fail. RUNNING: flagged (`cancel_requested`);
        the worker learns it on its next `renew`.

        Returns: the task as it is after.

        Errors: NotFound; InvalidTransition (already DONE, FAILED or
        CANCELLED); InvalidInput (bad `by`); StoreUnavailable.

        Atomicity: one transaction: task row, the `cancelled` or
        `cancel_requested` event, failed dependents.

        Concurrency: a cancel racing a claim either cancels the PENDING task
        (the claim then misses it) or flags the RUNNING one; it never marks a
        task CANCELLED under a worker that holds its lease.
        """
        ...

    def acknowledge_cancel(self, task_id: int, token: str) -> Task:
        """The worker stopped a task whose cancellation it learned on renew:
        CANCELLED, dependents fail.

        Returns: the cancelled Task.

        Errors: LeaseLost (token stale); StoreUnavailable.

        Atomicity: one transaction: task row, attempt row (outcome
        'cancelled'), the `cancelled` event, agent row, failed dependents.

        Concurrency: fenced by the token, as `fail`.
        """
        ...

    def retry(self, task_id: int, *, by: str = "operator") -> Task:
        """Run a finished (DONE, FAILED or CANCELLED) task again with fresh
        attempts: PENDING, attempts 0, result and error cleared. Its
        still-waiting children wait for it again.

        Returns: the task as it is after.

        Errors: NotFound; InvalidTransition (not finished, or a parent is
        FAILED/CANCELLED: retry the parent first); InvalidInput (bad `by`);
        StoreUnavailable.

        Atomicity: one transaction: task row, children's counts, the `retry`
        event.

        Concurrency: two retries racing: one applies, the other gets
        InvalidTransition (the write re-checks a finished status).
        """
        ...

    def reap_expired_leases(self) -> list[int]:
        """Take back every RUNNING task whose lease expired: PENDING again
        (the attempt counted, outcome 'expired'), or FAILED when its attempts
        are used up (dependents fail), or CANCELLED when cancel was requested.

        Returns: the ids reaped (order unspecified; [] in the common case,
        which writes nothing).

        Errors: StoreUnavailable.

        Atomicity: one transaction for the batch: each task row, its attempt
        row and its `requeue`/`fail` event.

        Concurrency: any host may reap any expired lease. A task is reaped
        only if its lease is still expired and its token unchanged when the
        write applies: a renew or complete that lands first wins, and two
        reapers never reap the same attempt twice.
        """
        ...

    def recover_worker_tasks(self, worker: str, reason: str = "worker died") -> list[int]:
        """Requeue at once everything `worker` holds (its process is known to
        be dead): as a reap, with outcome 'crashed' and `reason` as the error.

        Returns: the ids recovered.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one transaction for all of the worker's tasks.

        Concurrency: as `reap_expired_leases`: only attempts still held by
        `worker` with the token read are taken back.
        """
        ...

    # ------------------------------------------------------------------
    # queue reads
    # ------------------------------------------------------------------
    def get(self, task_id: int) -> Task | None:
        """One task, or None when no task has that id.

        Errors: InvalidInput (id not an int); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def require(self, task_id: int) -> Task:
        """One task that must exist.

        Errors: NotFound (no such task); InvalidInput (id not an int);
        StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def attempts(self, task_id: int) -> list[dict]:
        """Every attempt of a task: {id, task_id, attempt_no, worker, host,
        started_at, ended_at, outcome, error} (never the lease token). `host`
        is where the attempt ran: the host part of its worker's name
        (`coder_1@gpu-box`), else the store's `host`; None for attempts
        written before hosts were recorded.

        Ordering: oldest first; a running attempt last, with outcome
        'running' and ended_at None. [] for an unknown task.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one consistent snapshot (finished and running agree).
        """
        ...

    def task_history(self, task_id: int) -> list[dict]:
        """The merged history of one task: its creation, every finished
        attempt (its claim, and its completion when it succeeded), the
        running attempt's claim, and its audit events (operator actions and
        anomalies: cancel, retry, requeue, fail, release, ask/answer ...).

        Returns: entries, each a dict with at least {ts, actor, action,
        task_id, agent, detail} (detail a JSON value or None); [] for an
        unknown task.

        Ordering: oldest first (by ts; the creation first).

        Errors: InvalidInput (id not an int); StoreUnavailable.

        Atomicity: read from one consistent snapshot of attempts and events.
        """
        ...

    def activity(self, limit: int = 100, *, task_id: int | None = None, agent: str | None = None,
                 action: str | None = None) -> list[dict]:
        """The fleet's activity feed: audit events merged with task creations
        (a batch written at once is one `enqueue_many` entry), claims and
        completions, optionally filtered; entries as in `task_history`.

        Returns: at most `limit` entries.

        Ordering: newest first.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: each source is read from a consistent snapshot.
        """
        ...

    def task_changes(self, after_attempt_id: int, claimed_after: float,
                     after_task_id: int) -> tuple[list[dict], int, float, int]:
        """Task creations (a bulk run as one `enqueue_many` entry), claims and
        successful completions since a cursor, for live views (SSE): (entries
        oldest first, then the attempt, claim and task cursors to pass next
        time). Start from `task_change_cursor()`. These entries carry no
        event id: they are live only, not replayed on resume.

        Errors: StoreUnavailable.

        Atomicity: one consistent snapshot; at most 5,000 creations and
        1,000 attempts of each kind per call (call again to catch up).
        """
        ...

    def task_change_cursor(self) -> tuple[int, float, int]:
        """Where `task_changes` starts for a view opened now: (last attempt
        id, newest running claim time, last task id).

        Errors: StoreUnavailable.

        Atomicity: one consistent snapshot.
        """
        ...

    def dependencies(self, task_id: int) -> list[int]:
        """Ids of the tasks `task_id` waits for, ascending ([] when none).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def dependents(self, task_id: int) -> list[int]:
        """Ids of the tasks that wait for `task_id`, ascending ([] when none).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def list_tasks(self, *, status: str | Iterable[str] | None = None, skill: str | None = None,
                   agent: str | None = None, text: str | None = None, since: float | None = None,
                   until: float | None = None, limit: int = 50, offset: int = 0) -> Page:
        """A page of tasks filtered in the database.

        Args: `status` one status or several; `skill` exact; `agent` the
        worker that ran it or the one it is assigned to; `text` a substring
        of skill, payload, error or result; `since`/`until` bound created_at
        (since <= created_at < until); `limit` 1-1000; `offset` >= 0.

        Returns: Page(items, total matching, limit, offset).

        Ordering: newest first (id descending).

        Errors: InvalidInput (unknown status, bad limit/offset/bounds, NUL in a
        text filter); StoreUnavailable.

        Atomicity: items and total from one consistent snapshot.
        """
        ...

    def matching_ids(self, *, status: str | Iterable[str] | None = None, skill: str | None = None,
                     agent: str | None = None, text: str | None = None, since: float | None = None,
                     until: float | None = None) -> list[int]:
        """Every task id matching the filters of `list_tasks` (for bulk
        actions), ascending.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def counts(self) -> dict[str, int]:
        """Task counts by status: every status present, 0 when none.

        Errors: StoreUnavailable.

        Atomicity: one consistent read (cheap: kept counts, not a scan).
        """
        ...

    def counts_by_skill(self) -> dict[str, dict[str, int]]:
        """{skill: {status: count}} for the non-zero counts.

        Errors: StoreUnavailable.

        Atomicity: one consistent read.
        """
        ...

    def task_outcome_totals(self) -> dict[str, dict[str, int]]:
        """{skill: {"completed": n, "failed": n}}: how many times a task of
        the skill has become DONE, and FAILED for good (dead letter), ever.
        Counters: they never go backwards, also when a FAILED task is retried
        or finished tasks' rows are deleted (pruned history). Skills with
        neither are left out.

        Errors: StoreUnavailable.

        Atomicity: one consistent read.
        """
        ...

    def pending_depth(self, skills: Iterable[str] | None = None) -> int:
        """How many tasks are claimable now; with `skills`, only the ones a
        role with those skills could claim: unassigned tasks of those skills
        (a task assigned to a worker by name is that worker's alone, so it is
        no work for the role's other or extra workers). An empty list: 0.
        The supervisor's scaling reads this.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def oldest_pending_age(self) -> float | None:
        """Seconds since the oldest PENDING task was created (None: none).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def oldest_pending_created_at(self) -> float | None:
        """created_at of the oldest PENDING task (None: none).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def oldest_ready_wait(self) -> float | None:
        """Seconds the longest-waiting claimable task has been claimable
        (None: nothing is claimable).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def expired_leases(self) -> list[tuple[int, str | None, float | None]]:
        """(task id, worker, claimed at) of RUNNING tasks whose lease has
        expired, without changing them: the supervisor tells the process that
        claimed a task from a later one of the same name before it reaps.

        Errors: StoreUnavailable.

        Atomicity: one read; the answer may be stale by the time it is used
        (`reap_expired_leases` re-checks).
        """
        ...

    # ------------------------------------------------------------------
    # fleet state: agents, messages, notes, events, liveness
    # ------------------------------------------------------------------
    def register_agent(self, name: str, role: str, *, pid: int | None = None,
                       host: str | None = None, status: str = "starting",
                       config_hash: str | None = None) -> dict:
        """Create or reset the agent row `name` (role, host (default this
        machine), pid, status, started now, no current task). `config_hash`
        (the configuration the agent loaded: fleet.config_drift) goes into
        the `agent_start` event's detail, beside role and pid.

        Returns: the agent row {name, role, host, pid, status, current_task,
        started_at, last_heartbeat, progress, detail}.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one transaction: the row (insert-or-update on the name)
        and an `agent_start` event.

        Concurrency: idempotent per name; the last registration wins.
        """
        ...

    def heartbeat(self, name: str, *, progress: int | None = None, status: str | None = None,
                  current_task: Any = UNSET, detail: Any = UNSET) -> None:
        """Record liveness of agent `name` (last_heartbeat = now) and,
        optionally, its progress counter, status, current task and detail
        (UNSET: leave as is; None clears current_task/detail).

        Returns: None. An unknown agent is a no-op.

        Errors: InvalidInput (detail not JSON); StoreUnavailable.

        Atomicity: one transaction: the agent row and, when the status
        changes, an `agent_status` event.

        Concurrency: the status change is detected in the same statement
        that writes it, so two racing heartbeats log one change, not two or
        none.
        """
        ...

    def set_agent_status(self, name: str, status: str, *, actor: str = "supervisor",
                         detail: dict | None = None) -> None:
        """Set agent `name`'s status (supervisor view: flapping, parked ...).

        Returns: None. An unknown agent is a no-op.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one transaction: the row and an `agent_status` event (when
        the status changed, or `detail` is given).

        Concurrency: as `heartbeat`: the old status is read where it is
        written.
        """
        ...

    def get_agent(self, name: str) -> dict | None:
        """The agent row (see `register_agent`; detail decoded), or None.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def list_agents(self) -> list[dict]:
        """Every agent row, ordered by name.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def remove_agent(self, name: str) -> None:
        """Delete the agent row `name` (no-op when absent).

        Errors: StoreUnavailable.

        Atomicity: one statement. Idempotent.
        """
        ...

    def send_message(self, sender: str, recipient: str, body: Any, *, channel: str = "agent") -> int:
        """Queue a message for `recipient`.

        Args: `body` non-empty text or a JSON value (size-limited); `channel`
        one of CHANNELS (fleet, sup, agent, pool).

        Returns: the message id.

        Errors: InvalidInput (unknown channel, empty/oversize body, bad
        names); StoreUnavailable.

        Atomicity: one insert. Wakes waiters.
        """
        ...

    def broadcast(self, sender: str, body: Any, *, channel: str = "fleet") -> list[int]:
        """One message to every registered agent.

        Returns: the message ids, in agent-name order.

        Errors: InvalidInput (as `send_message`); StoreUnavailable.

        Atomicity: one transaction for all the messages. An agent registered
        while it runs may or may not get one.
        """
        ...

    def inbox(self, recipient: str, *, unread_only: bool = True, limit: int = 50,
              channel: str | None = None, mark_read: bool = False) -> list[dict]:
        """Messages for `recipient`: {id, sender, recipient, channel, body,
        created_at, read_at}.

        Ordering: oldest first (id ascending), at most `limit`.

        Errors: InvalidInput (unknown channel); StoreUnavailable.

        Atomicity: with `mark_read`, the read and the marking are one
        transaction.

        Concurrency: with `mark_read`, two readers of the same inbox never
        both receive an unread message: it is marked by one conditional
        write (`read_at IS NULL`) that returns what it marked.
        """
        ...

    def messages(self, *, channel: str | None = None, limit: int = 100, after_id: int = 0,
                 before_id: int | None = None, agent: str | None = None) -> list[dict]:
        """Message history across agents with after_id < id < before_id
        (a page further back: `before_id` = the oldest id shown), optionally
        only those `agent` sent or received: the newest `limit`, returned
        oldest first.

        Errors: InvalidInput (unknown channel); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def post_note(self, channel: str, body: Any, *, author: str = "operator") -> int:
        """Append a note to a channel's scratchpad.

        Returns: the note id.

        Errors: InvalidInput (bad channel/author, empty or oversize body);
        StoreUnavailable.

        Atomicity: one insert.
        """
        ...

    def notes(self, channel: str, *, since: float | None = None, limit: int = 50) -> list[dict]:
        """A channel's notes created at or after `since`: the newest `limit`,
        returned oldest first.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def note_channels(self) -> list[dict]:
        """Every note channel: {channel, count, last_at}, by channel name.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def record_event(self, actor: str, action: str, *, task_id: int | None = None,
                     agent: str | None = None, detail: Any = None) -> None:
        """Append one audit event (who did what; `detail` a JSON value).

        Errors: InvalidInput (detail not JSON); StoreUnavailable.

        Atomicity: one insert. Events are append-only: never changed or
        deleted by the store, except by a GDPR erase (`erase_agent_data`).
        """
        ...

    def events(self, *, after_id: int = 0, task_id: int | None = None, agent: str | None = None,
               action: str | None = None, since: float | None = None, limit: int = 100) -> list[dict]:
        """Audit events after `after_id` (for streams and audits), filtered:
        {id, ts, actor, action, task_id, agent, detail}.

        Ordering: by id ascending. Ids grow with commit order, so a stream
        resuming from the last id it saw misses nothing committed later (a
        backend with concurrent writers must not hand out ids that commit
        out of order, or must hold the cursor back).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def recent_events(self, limit: int = 100, **filters: Any) -> list[dict]:
        """The newest events, optionally filtered by `task_id`, `agent`,
        `action` (keyword filters; others are ignored).

        Ordering: newest first (id descending).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def last_event_id(self) -> int:
        """The highest event id (0 when none): where a new stream starts.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def record_liveness(self, expected: int, alive: int, busy: int, *, ts: float | None = None) -> None:
        """Append one supervisor liveness sample (workers expected, alive,
        busy) at `ts` (default now).

        Errors: StoreUnavailable.

        Atomicity: one insert.
        """
        ...

    def liveness_samples(self, since: float, until: float | None = None) -> list[dict]:
        """Liveness samples with since <= ts < until (default: up to now).

        Ordering: by ts ascending.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    # ------------------------------------------------------------------
    # alerts, flags, named locks
    # ------------------------------------------------------------------
    def raise_alert(self, severity: str, component: str, message: str, *,
                    dedup_key: str | None = None) -> int:
        """Open an alert, or bump the open one with the same dedup key
        (default `component:message`): occurrences + 1, newest message and
        severity. A new alert records the store's `host` (where several
        hosts share the store, a host-specific condition belongs in the
        dedup key: fleet.hosts.qualified).

        Args: `severity` one of info, warning, critical.

        Returns: the alert id (the existing open one when bumped).

        Errors: InvalidInput (unknown severity); StoreUnavailable.

        Atomicity: one transaction: the alert and, when new, an `alert`
        event.

        Concurrency: at most one open alert per dedup key, whatever races:
        one insert-or-bump statement guarded by the unique index on open
        keys, so racing raisers bump one row and never fail.
        """
        ...

    def ack_alert(self, alert_id: int, *, by: str = "operator") -> dict:
        """Acknowledge an alert (closes it; a repeat opens a new one).

        Returns: the alert row {id, severity, component, message, dedup_key,
        created_at, updated_at, occurrences, acked_at, acked_by}.

        Errors: NotFound (no such alert); StoreUnavailable.

        Atomicity: one transaction: the row and an `alert_ack` event.

        Concurrency: idempotent: acking an acked alert changes nothing and
        logs nothing (the write re-checks `acked_at IS NULL`).
        """
        ...

    def list_alerts(self, *, active_only: bool = True, limit: int = 100) -> list[dict]:
        """Alerts (only unacknowledged ones by default).

        Ordering: newest first (id descending).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def set_flag(self, name: str, value: Any, *, by: str = "operator") -> None:
        """Set a fleet-wide flag (paused, eco mode ...) to a JSON value.

        Errors: InvalidInput (value not JSON); StoreUnavailable.

        Atomicity: one transaction: the flag (insert-or-update) and a `flag`
        event. Wakes waiters.

        Concurrency: last writer wins.
        """
        ...

    def get_flag(self, name: str, default: Any = None) -> Any:
        """A flag's value, or `default` when unset.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def acquire_lock(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the named lock (e.g. "training") for `ttl_s` seconds if it is
        free, expired, or already held by `holder` (then extend it).

        Returns: True when `holder` now holds it, False when another holder
        has it.

        Errors: InvalidInput; StoreUnavailable.

        Atomicity: one transaction: the lock row and, when newly taken, a
        `lock_acquired` event.

        Concurrency: two holders racing for a free lock: exactly one gets
        True. One conditional insert-or-update (`ON CONFLICT ... WHERE
        holder = excluded.holder OR expires_at <= now`) whose result says who
        won; never read-then-write.
        """
        ...

    def release_lock(self, name: str, holder: str | None = None) -> bool:
        """Release the named lock; with `holder`, only if `holder` has it
        (None forces it, for operators).

        Returns: True when a lock was released.

        Errors: StoreUnavailable.

        Atomicity: one transaction: the delete and a `lock_released` event.
        Idempotent. Wakes waiters.
        """
        ...

    def lock_holder(self, name: str) -> dict | None:
        """The unexpired holder of the named lock {name, holder, acquired_at,
        expires_at}, or None.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    # ------------------------------------------------------------------
    # operator tools: audit trail, debug reports, GDPR erase (operations.py)
    # ------------------------------------------------------------------
    def audit_trail(self, *, actor: str | None = None, action: str | None = None, since: float | None = None,
                    until: float | None = None, before_id: int | None = None, limit: int = 100) -> dict:
        """Operator actions from the audit log (the events whose action is in
        `operations.OPERATOR_ACTIONS`: cancels, retries, approvals, pause and
        resume, control requests, alert acks, config edits, secret changes by
        name, erases, debug reports and resolutions), one page of them.

        Args: `actor` an actor name, or a front end's prefix ("dashboard"
        matches every "dashboard:<how>"); `action` one operator action;
        `since` <= ts < `until` (epoch seconds); `before_id` the page cursor
        (the previous page's `next_before_id`); `limit` 1-1000.

        Returns: {"items": [{id, ts, actor, via (cli, dashboard, launcher, or
        the fleet process), action, task_id, agent, detail}], "next_before_id":
        id to pass for the next (older) page, or None on the last page}. A
        worker finishing an operator's cancel (its acknowledgement) is not an
        action of its own and is left out.

        Ordering: newest first (id descending).

        Errors: InvalidInput (unknown action, bad limit or before_id);
        StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def record_debug_report(self, path: str, *, description: str | None = None, by: str = "operator") -> dict:
        """Record that a debug report was written to `path` (a file under the
        home's reports/debug/), opening its resolution lifecycle.

        Returns: the report as `debug_report` gives it (status "open"); its
        id is the id of its `debug_report` audit event.

        Errors: InvalidInput (empty path, bad `by`, oversize description);
        StoreUnavailable.

        Atomicity: one insert (the `debug_report` event is the record).
        """
        ...

    def debug_report(self, report_id: int) -> dict:
        """One debug report: {id, created_at, created_by, path, description,
        status ("open" | "resolved"), resolved_at, resolved_by, note,
        fix_commit, regression_test} (the resolution fields None while open).

        Errors: NotFound (no such report); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def debug_reports(self, *, status: str | None = None, limit: int = 100) -> list[dict]:
        """Debug reports as `debug_report` gives them, optionally only "open"
        or only "resolved" ones.

        Ordering: newest first, at most `limit` (1-1000).

        Errors: InvalidInput (unknown status, bad limit); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def resolve_debug_report(self, report_id: int, note: str, *, by: str = "operator",
                             fix_commit: str | None = None, regression_test: str | None = None) -> dict:
        """Move a debug report from open to resolved with a note saying what
        was done (and, optionally, the commit that fixed it and the test that
        guards it, as the manual's resolution lifecycle asks).

        Returns: the resolved report.

        Errors: NotFound (no such report); InvalidTransition (already
        resolved: nothing written); InvalidInput (empty note); StoreUnavailable.

        Atomicity: one transaction: a `resolution` event (the record).

        Concurrency: two resolvers at once: exactly one succeeds, the other
        gets InvalidTransition (the check and the insert are serialised on
        the report's row in `guards`).
        """
        ...

    def agent_footprint(self, agent: str) -> dict:
        """What `erase_agent_data` would touch for `agent`: {"messages" it
        sent, "notes" it wrote, "events" it is the actor of (erased),
        "events_naming" it as their agent with another actor (pseudonymised),
        "usage_rows" of its model calls (pseudonymised)}, as counts.

        Errors: InvalidInput (bad name); StoreUnavailable.

        Atomicity: one read snapshot.
        """
        ...

    def erase_agent_data(self, agent: str, *, pseudonym: str, by: str = "operator",
                         extra_counts: dict | None = None) -> dict:
        """GDPR erase of one agent's data in the store: delete the messages
        it sent, the notes it wrote and the events it is the actor of; replace
        its name by `pseudonym` in the usage rows (cost and tokens stay, for
        accounting) and in other actors' events that name it. Task rows and
        attempts keep their worker name (the queue's history) and are not
        touched.

        Args: `pseudonym` what stands for the agent from now on (the caller
        makes it, e.g. a salted hash); `extra_counts` counts erased outside
        the store (knowledge files) to put in the record.

        Returns: {"pseudonym", "counts": {messages, notes, events,
        events_naming, usage_rows, **extra_counts}, "audit_event_id"}.

        Errors: InvalidInput (bad name, empty pseudonym or one equal to the
        name, non-integer extra count); StoreUnavailable.

        Atomicity: one transaction: the deletes, the updates and a
        `gdpr_erase` event (actor `by`, agent = the pseudonym, detail = the
        counts and pseudonym; never the name or any content). The event is
        written first, so its id is above every deleted one. Events are
        otherwise append-only: this is the one method that deletes them.
        """
        ...

    # ------------------------------------------------------------------
    # monitoring and reports (read-only aggregates)
    # ------------------------------------------------------------------
    def skill_stats(self, since: float | None = None) -> dict[str, dict]:
        """Per skill (tasks created since `since`): {skill, counts by status,
        total, done, mean_run_s, max_run_s, last_finished_at, failure_rate}.

        Errors: StoreUnavailable.

        Atomicity: reads; the parts may come from different instants.
        """
        ...

    def attempt_timeline(self, since: float, until: float | None = None, limit: int = 500) -> list[dict]:
        """Attempts overlapping [since, until) (default until now), running
        ones included: {task_id, attempt_no, worker, started_at, ended_at,
        outcome, error, skill}.

        Ordering: started_at descending, at most `limit`.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def finished_series(self, since: float, bucket_s: float, buckets: int) -> dict[str, list[int]]:
        """Tasks finished per time bucket from `since`: {"DONE": [...],
        "FAILED": [...], "CANCELLED": [...]}, each `buckets` long.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def worker_activity(self) -> dict[str, dict]:
        """Per worker name: {attempts, running, last_activity_at}.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def event_tally(self, actions: Iterable[str], since: float) -> dict[tuple[str, str], int]:
        """Counts of agent/system events (not about one task) per (agent,
        action) for `actions` since `since` ({} for no actions).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def last_event_per_agent(self, actions: Iterable[str]) -> dict[str, dict]:
        """Per agent, its newest agent/system event among `actions` (e.g. its
        last exit), detail decoded.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def task_duration_histogram(self) -> dict[str, dict]:
        """Per skill, DONE run times as a Prometheus histogram: {count, sum,
        buckets: [(upper bound s, cumulative count), ...]}.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def task_outcomes_by_day(self, since: float, until: float) -> list[dict]:
        """Per UTC day counted from `since`, in [since, until): {day_start,
        done, failed, cancelled, retried}.

        Ordering: by day ascending (days with nothing are left out).

        Errors: StoreUnavailable.

        Atomicity: reads; the parts may come from different instants.
        """
        ...

    def unplanned_exits_by_day(self, since: float, until: float, *, action: str = "child_exit",
                               planned: tuple = ("drain", "stop", "scale_down", "restart")) -> dict[int, int]:
        """Per day index from `since`: `action` events whose detail's intent
        is not in `planned` (crashes, timeouts, stalls: restarts).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    # ------------------------------------------------------------------
    # model usage, provider routing and budgets
    # ------------------------------------------------------------------
    def admit_provider_request(self, provider: str, *, rpm: int = 0, rpd: int = 0, headroom: float = 0.8,
                               spacing_s: float = 0.0, probe_lease_s: float = 60.0) -> dict:
        """Decide whether one request may go to `provider` now, for every
        process of the fleet at once: circuit breaker, Retry-After cool-down,
        requests-per-minute/day windows (`rpm`/`rpd` times `headroom`; 0: no
        limit) and spacing between requests.

        Returns: {"ok": True, "wait_s": sleep this long first (spacing),
        "probe": this request tests a half-open breaker} or {"ok": False,
        "reason": "breaker_open" | "cooldown" | "rate_headroom", "until":
        epoch seconds}.

        Errors: StoreUnavailable.

        Atomicity: one transaction: the check, the slot taken and the
        request recorded in the rate window.

        Concurrency: exact across processes and hosts: the provider's state
        row is locked for the decision, so racing callers never both take
        the last slot, both become the half-open probe, or exceed the window.
        """
        ...

    def provider_states(self) -> list[dict]:
        """Every provider's shared state with `breaker` (open, half_open,
        closed) and `cooling_down`, by provider name.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def record_model_call(self, row: dict, *, outcome: dict | None = None,
                          release_reservation: int | None = None) -> int:
        """Write one usage row (a model request: tokens, cost, latency,
        success ...; fields as `USAGE_COLUMNS`) and, with it, the provider
        outcome (breaker/cool-down update) and the release of a budget
        reservation.

        Returns: the usage row id.

        Errors: InvalidInput (unknown field, no provider); StoreUnavailable.

        Atomicity: one transaction for the row, the outcome and the release.

        Concurrency: failure counts are incremented in the statement
        (`consecutive_failures + 1`), never read-modify-written, so racing
        outcomes are all counted.
        """
        ...

    def usage_rows(self, *, task_id: int | None = None, call_id: str | None = None, skill: str | None = None,
                   since: float | None = None, limit: int = 1000) -> list[dict]:
        """Usage rows, filtered.

        Ordering: by id ascending, at most `limit`.

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def usage_summary(self, since: float, until: float | None = None, *, group_by: str = "skill") -> list[dict]:
        """Totals per skill | provider | model | agent in [since, until):
        {key, requests, calls, failures, tokens ..., cost_usd,
        cache_savings_usd, avg_latency_ms}.

        Ordering: cost descending, then key.

        Errors: InvalidInput (unknown group_by); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def usage_series(self, since: float, bucket_s: float, buckets: int) -> list[dict]:
        """Model usage per time bucket from `since` (buckets `bucket_s`
        seconds wide, e.g. days for a cost-per-day chart): `buckets` entries
        {start, requests, input_tokens, output_tokens, cost_usd}, empty
        buckets as zeros.

        Ordering: oldest bucket first.

        Errors: InvalidInput (bucket_s <= 0, buckets outside 1-1000); StoreUnavailable.

        Atomicity: one read.
        """
        ...

    def usage_totals(self, since: float, *, skill: str | None = None) -> dict:
        """Spend and successful calls since `since` (one skill or all), plus
        live reservations: {spent_usd, calls, reserved_usd, reserved_calls}.

        Errors: StoreUnavailable.

        Atomicity: one consistent snapshot.
        """
        ...

    def reserve_budget(self, checks: list[dict], *, skill: str | None, usd: float,
                       ttl_s: float = 900.0) -> dict:
        """Check every budget in `checks` and, unless one with enforcement
        'block' would be exceeded, reserve `usd` and one call for `ttl_s`.

        Args: a check is {name, skill (None: fleet-wide), since, limit_usd,
        max_calls, enforcement ("warn" | "block")}.

        Returns: {"id": reservation id (None when nothing was reserved),
        "blocked": the check with its figures | None, "warnings": [...]}.

        Errors: StoreUnavailable.

        Atomicity: one transaction: the sums and the reservation.

        Concurrency: two callers racing for the last of a budget: at most one
        reservation fits (the check and the insert are serialised per budget
        scope, e.g. a row lock on the scope), never both.
        """
        ...

    def release_budget(self, reservation_id: int) -> None:
        """Drop a reservation (the call was not made). Idempotent.

        Errors: StoreUnavailable.

        Atomicity: one statement.
        """
        ...

    # ------------------------------------------------------------------
    # hardware history
    # ------------------------------------------------------------------
    def record_hw_sample(self, sample: dict[str, Any], *, ts: float | None = None,
                         retention_s: float | None = 86400.0) -> None:
        """Store one downsampled hardware sample ({cpu_pct, mem_pct,
        gpu_temp_c, gpu_util_pct, vram_used_mb, vram_total_mb, power_w: number
        or None; tier, thermal_state, gpus}) and prune samples older than
        `retention_s` (None: keep all).

        Errors: InvalidInput (not a dict, a non-number field); StoreUnavailable.

        Atomicity: one transaction: the insert and the prune.
        """
        ...

    def hw_samples(self, *, since: float | None = None, until: float | None = None,
                   limit: int = 1440, host: str | None = None) -> list[dict]:
        """Samples with since <= ts < until: the newest `limit`, returned
        oldest first (gpus decoded). Each carries the `host` that recorded it
        (the store's `host`); with `host` given, only that host's (and rows
        from before hosts were recorded, host None).

        Errors: StoreUnavailable.

        Atomicity: one read.
        """
        ...

    # ------------------------------------------------------------------
    # maintenance: backup, integrity, upkeep, statistics, close
    # ------------------------------------------------------------------
    def backup_to(self, dest: str | os.PathLike) -> None:
        """Write an online-consistent copy of the whole store to `dest` while
        workers keep running.

        Errors: StoreUnavailable (the copy failed; `dest` may be partial and
        is the caller's to remove).

        Atomicity: the copy is one consistent snapshot.
        """
        ...

    def integrity_check(self, *, quick: bool = False) -> str:
        """The backend's own consistency check: "ok", or what is wrong
        (damage that stops the check itself is reported, not raised).
        `quick`: a cheaper check, cheap enough to run at every supervisor
        start and on `[store] integrity_check_interval_s`.

        Errors: StoreUnavailable.

        Atomicity: read-only.
        """
        ...

    def check_backup(self, path: str | os.PathLike) -> dict:
        """Check a copy `backup_to` wrote, without creating or changing
        anything: {"integrity" ("ok" or what is wrong; "missing: ..." or
        "unreadable: ..." for a file that is not there or not a database),
        "schema_version", "tasks" (counts by status), "db_bytes", "problem"}.
        `problem` is None when `restore_from` would take the copy, else the
        reason as a phrase ("is damaged (...)", "has schema version N, newer
        than this Fleet (M); ...").

        Errors: none for a bad copy (it is reported); StoreUnavailable only
        when the check itself cannot run.

        Atomicity: read-only; the live store is not touched.
        """
        ...

    def restore_from(self, backup_file: str | os.PathLike, *,
                     keep_replaced_in: str | os.PathLike | None = None) -> dict:
        """Replace the whole store with the copy `backup_file` (one that
        `backup_to` wrote), then bring its schema up to date. The copy is
        checked first (`check_backup`): a damaged one, or one from a newer
        Fleet, is refused. The replaced data is kept in the folder
        `keep_replaced_in` when given (so the restore can be undone), else
        discarded. Works on a store whose database is damaged (open it with
        `open_store(cfg, migrate=False)`); nothing else may be using the store
        meanwhile (the caller stops the fleet first).

        Returns: {"restored_from", "db", "integrity", "schema_version",
        "replaced_saved_in"}.

        Errors: InvalidInput (no such file, damaged, newer schema);
        StoreUnavailable (a copy or swap failed). Either way nothing changed.

        Atomicity: all or nothing: on any failure the store is as it was.
        """
        ...

    def checkpoint(self, mode: str = "PASSIVE", *, wait_s: float | None = None) -> dict:
        """Flush the write-ahead log (PASSIVE never waits; FULL, RESTART and
        TRUNCATE wait at most `wait_s`, default 2 s, and report busy instead
        of stalling the fleet). A backend without such a log returns at once.

        Returns: {mode, busy, wal_pages, checkpointed_pages}.

        Errors: InvalidInput (unknown mode); StoreUnavailable.

        Atomicity: changes no data.
        """
        ...

    def maintain(self, *, wal_limit_bytes: int = 16 << 20) -> dict:
        """Periodic upkeep (the supervisor calls it): keeps the log bounded
        (a TRUNCATE checkpoint when it is over `wal_limit_bytes`) and
        refreshes planner statistics.

        Returns: what was done ({..., wal_bytes_before, wal_bytes}).

        Errors: StoreUnavailable.

        Atomicity: changes no data. Safe to run from several hosts.
        """
        ...

    def stats(self) -> dict:
        """Facts about the store for preflight and status pages: {backend,
        path, schema_version, journal_mode, durability,
        synchronous_in_effect, durability_meaning, page_size, db_bytes,
        wal_bytes, ...} (backend-specific keys may be added).

        Errors: StoreUnavailable.

        Atomicity: read-only.
        """
        ...

    def write_health(self) -> dict:
        """Whether writes can succeed now, judged without writing (a health
        check must not take the write lock): {"status": "healthy" |
        "degraded", "writes": why writes fail, as a sentence (None when
        healthy), "path", "free_bytes", "total_bytes"} (free and total of
        the disk holding the data, None where the backend cannot see it).
        SQLite: a full disk (under 1 MiB free), a read-only mount, or files
        this user may not write.

        Errors: none (what cannot be looked at is reported as unknown).

        Atomicity: read-only; touches no data.
        """
        ...

    def close(self) -> None:
        """Close this process's connections and wake-up channel. Idempotent;
        the store must not be used afterwards.

        Errors: none (closing never raises).

        Atomicity: changes no data.
        """
        ...

    # ------------------------------------------------------------------
    # code-factory workflows (fleet/workflow)
    # ------------------------------------------------------------------
    def create_workflow(self, repo: str, goal: str, *, base: str, settings: dict | None = None,
                        state: dict | None = None, budget_usd: float | None = None, phase: str = "plan",
                        first_task: dict | None = None, created_by: str = "operator") -> dict:
        """Start a workflow: status RUNNING at `phase`, step 0, with its
        `settings` and `state` (JSON objects) and an optional budget.

        `first_task` (an `enqueue` spec: skill, payload, options) is the first
        phase's task; its payload gets `workflow_id` and `step` (0) and its
        idempotency key defaults to "workflow-<id>-step-0".

        Returns: the workflow row as a dict (state and settings decoded,
        `task_id` the first task's id).

        Errors: InvalidInput (empty repo/goal/base, bad budget, a value JSON
        cannot hold, a bad task spec); StoreUnavailable.

        Atomicity: one transaction: the row, the first task and a
        "workflow_start" event.
        """
        ...

    def get_workflow(self, workflow_id: int) -> dict:
        """One workflow row (state and settings decoded).

        Errors: NotFound; StoreUnavailable. Atomicity: read-only.
        """
        ...

    def list_workflows(self, *, status: str | None = None, limit: int = 100) -> list[dict]:
        """Workflow rows, newest first, optionally of one status (RUNNING,
        DONE, FAILED, CANCELLED, REJECTED).

        Errors: InvalidInput (unknown status); StoreUnavailable. Atomicity: read-only.
        """
        ...

    def workflow_steps(self, workflow_id: int) -> list[dict]:
        """The finished phases of a workflow in step order: {step, phase,
        outcome, task_id, detail, input_tokens, output_tokens, cost_usd,
        model_calls, started_at, finished_at}.

        Errors: StoreUnavailable. Atomicity: read-only.
        """
        ...

    def advance_workflow(self, workflow_id: int, step: int, *, finished: str, outcome: str, phase: str,
                         state: dict | None = None, status: str = "RUNNING", error: str | None = None,
                         usage: dict | None = None, task_id: int | None = None, started_at: float | None = None,
                         detail: Any = None, next_task: dict | None = None) -> dict:
        """Record that the phase `finished` of step `step` ended with
        `outcome`, and move the workflow to step + 1 at `phase` with `status`
        (RUNNING to go on; DONE, FAILED, CANCELLED or REJECTED to end it).
        `state` (None: unchanged) replaces the workflow's state; `usage`
        ({input_tokens, output_tokens, cost_usd, model_calls}) is added to
        its spend and kept on the step row. `next_task` (an `enqueue` spec)
        is the next phase's task while RUNNING: its payload gets
        `workflow_id` and `step` + 1, its key "workflow-<id>-step-<n>".

        Returns: the workflow row after the change.

        Errors: InvalidTransition (the workflow is not RUNNING at `step`: the
        phase already finished, e.g. a re-run after a crash; nothing
        written); NotFound; InvalidInput; StoreUnavailable.

        Atomicity: one transaction: the workflow row, the step row, the next
        task and (on an ending status) an event.

        Concurrency: a compare-and-set on (id, step, RUNNING) plus the unique
        (workflow_id, step) of the step rows: of two runs of one phase, only
        one advances it and only one next task exists.
        """
        ...

    def request_workflow_cancel(self, workflow_id: int, *, by: str = "operator") -> dict:
        """Ask a RUNNING workflow to stop at its next phase boundary.

        Returns: the row (cancel_requested 1). Errors: InvalidTransition (it
        has already ended); NotFound; StoreUnavailable.

        Atomicity: one conditional statement and an event.
        """
        ...

    def add_lesson(self, repo: str, text: str, *, workflow_id: int | None = None) -> int:
        """Keep one learned lesson for `repo` (full-text indexed). Returns its id.

        Errors: InvalidInput (empty or over 2000 characters); StoreUnavailable.

        Atomicity: one transaction (row and its search index).
        """
        ...

    def lessons(self, *, repo: str | None = None, query: str | None = None, limit: int = 20) -> list[dict]:
        """Lessons, newest first; with `query` (which needs `repo`) those of
        `repo` matching any of its words, best first (SQLite FTS5,
        PostgreSQL full-text search).

        Errors: InvalidInput (a query without a repo); StoreUnavailable.
        Atomicity: read-only.
        """
        ...

    def delete_lesson(self, lesson_id: int, *, by: str = "operator") -> None:
        """Delete one lesson (an operator's choice, recorded as an event).

        Errors: NotFound; StoreUnavailable. Atomicity: one transaction.
        """
        ...

    # ------------------------------------------------------------------
    # wake-ups
    # ------------------------------------------------------------------
    def notify(self) -> None:
        """Wake every `wait_for_work` waiter (of every process and host on
        this store). The store's own writes call it after they commit;
        callers outside the store do not need it.

        Errors: none (a lost wake-up only delays a waiter to its timeout).

        Atomicity: changes no data.
        """
        ...

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a task may be claimable or a message may have arrived,
        at most `timeout` seconds. An idle waiter uses no CPU and wakes within
        milliseconds of a commit that made work; a delayed task coming due
        also wakes it.

        Returns: True when woken (or a delayed task came due), False on
        timeout. True is a hint, not a promise: the claim that follows may
        find nothing.

        Errors: InvalidInput (timeout not a number >= 0); StoreUnavailable.

        Atomicity: changes no data.
        """
        ...


CONTRACT_METHODS = frozenset(
    name for name, value in vars(StoreContract).items()
    if callable(value) and not name.startswith("_")
)
CONTRACT_ATTRIBUTES = frozenset(
    name for name in StoreContract.__annotations__ if not name.startswith("_")
)
