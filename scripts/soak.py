#!/usr/bin/env python3
"""Soak the real fleet: N tasks through a real supervisor and its workers while
worker processes are SIGKILLed at a rate and the supervisor is kill -9ed a few
times; then one table of what the queue did with them. Exit 1 on any loss.

    .venv/bin/python scripts/soak.py --tasks 10000 [--workers 4] [--kill-rate 2/s]
        [--supervisor-kills 3] [--seed N] [--strict] [--keep]

The run: a temporary fleet home with a fast configuration (short leases, quick
respawns, no services) and a soak skill on its skill path; `python
fleet/supervisor.py` started on it (FLEET_HOME); N `soak_task` tasks enqueued.
Each run of the skill (a) appends one line `task_id attempt pid n` to
`<home>/side_effects.log` (O_APPEND, before it sleeps, so a run cut short by a
kill still shows, and a side effect run twice is countable), (b) for a share of
the tasks (`--daemon-rate`) forks a child that double-forks a `setsid` daemon
(`sleep 600`, argv[0] `fleet-soak-daemon:<home>`), as a badly behaved tool
would, and (c) sleeps 0..`--max-sleep-ms`. It never fails on its own.

Meanwhile: SIGKILL to random worker processes at `--kill-rate` (Poisson; the
PIDs come from the store's agents table, and only those that are children of
the supervisor this script started are signalled), and `--supervisor-kills`
times a SIGKILL to the supervisor (evenly spread over the run's progress),
then a check that its workers died with it (PR_SET_PDEATHSIG) and a new
supervisor. When every task has finished (or `--deadline` passes) the fleet is
stopped cleanly (SIGTERM) and the table printed. Only the store's public API is
used (no SQL), and only processes this script started are signalled: the
supervisors, their descendants (psutil), and the soak daemons, found by the PID
each wrote and by the argv[0] that names this run's own home.

Figures: lost = a task missing, in a state nothing will finish (not DONE,
FAILED, CANCELLED, PENDING or RUNNING), or DONE without its side effect ever
having run; stuck = PENDING or RUNNING when the deadline passed (or when no
task had finished for `--stall-s`); completed twice = more than one 'done'
attempt (`store.attempts`); a healthy task dead-lettered = FAILED although
every failed attempt was a crash or an expired lease (the soak skill never
fails, so no soak task is a real poison pill). Exit 1 on any lost, stuck or
completed-twice task or an integrity check that is not "ok"; with --strict also
on any healthy task dead-lettered, orphaned process, or process of a killed
supervisor still alive 5 s after it.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil
import tomlkit

from fleet.config import load_config
from fleet.db import open_store

SKILL = "soak_task"
DAEMON_TAG = "fleet-soak-daemon"
FINISHED = ("DONE", "FAILED", "CANCELLED")
CRASH_OUTCOMES = frozenset({"crashed", "expired"})  # attempts a skill did not end itself
NO_ROLES = {"coder_count": 0, "researcher": 0, "archivist": 0, "analyst": 0, "security": 0, "planner": 0}

SKILL_SRC = '''\
"""Soak skill: appends one side-effect line per run (O_APPEND, before it
sleeps), sometimes leaves a setsid daemon behind (double fork), then sleeps a
few milliseconds. It never fails on its own. Written by scripts/soak.py."""

import os
import time

DESCRIPTION = "Record a countable side effect, maybe leave a daemon, sleep briefly (soak skill)."
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "sleep_ms": {"type": "number", "minimum": 0},
        "daemon": {"type": "boolean"},
    },
    "required": ["n"],
}
TIMEOUT_S = 30
IDEMPOTENT = False
SLEEP = %(sleep)r
DAEMON_ARGV0 = %(argv0)r

_store = None


def _whoami(config):
    """(task id, attempt number) of this run, from the worker's log context and
    the store; "?" where either cannot be read (the soak skill never fails)."""
    global _store
    try:
        from fleet.logs import current_context

        task_id = current_context()[0]
        if task_id is None:
            return "?", "?"
        if _store is None:
            from fleet.db import open_store

            _store = open_store(config)
        task = _store.get(task_id)
        return task_id, (task.attempts if task is not None else "?")
    except Exception:  # noqa: BLE001
        return "?", "?"


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _leave_daemon(home, n):
    """fork -> fork -> setsid -> exec `sleep 600`: the middle process exits at
    once, so the daemon is an orphan in a session of its own."""
    pid = os.fork()
    if pid == 0:
        try:
            if os.fork() == 0:
                os.setsid()
                _append(os.path.join(home, "daemons.log"), "%%d %%d\\n" %% (os.getpid(), n))
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, 65536)
                os.execv(SLEEP, [DAEMON_ARGV0, "600"])
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def run(payload, config, log):
    home = config["home"]
    n = int(payload["n"])
    task_id, attempt = _whoami(config)
    _append(os.path.join(home, "side_effects.log"), "%%s %%s %%d %%d\\n" %% (task_id, attempt, os.getpid(), n))
    if payload.get("daemon"):
        _leave_daemon(home, n)
    time.sleep(float(payload.get("sleep_ms", 0)) / 1000.0)
    return {"n": n, "pid": os.getpid()}
'''


# -- the fleet under test ------------------------------------------------
def write_home(parent: str | None, workers: int, max_attempts: int | None) -> Path:
    home = Path(tempfile.mkdtemp(prefix="fleet-soak-", dir=parent))
    skills = home / "soak_skills"
    skills.mkdir()
    sleep = shutil.which("sleep") or "/bin/sleep"
    (skills / f"{SKILL}.py").write_text(SKILL_SRC % {"sleep": sleep, "argv0": f"{DAEMON_TAG}:{home}"})
    queue = {"lease_s": 5.0, "reap_interval_s": 0.5, "backoff_base_s": 0.05, "backoff_max_s": 0.2}
    if max_attempts:
        queue["max_attempts"] = max_attempts
    doc = {
        "workers": {**NO_ROLES, "coder_count": workers},
        "affinity": {"coder": [SKILL]},
        "queue": queue,
        "supervisor": {"heartbeat_interval_s": 0.3, "heartbeat_timeout_s": 10.0, "status_interval_s": 1.0,
                       "backoff_initial_s": 0.2, "backoff_max_s": 2.0, "backoff_reset_s": 5.0,
                       "stop_timeout_s": 5.0, "kill_grace_s": 1.0, "scale_up_depth": 0, "services": []},
        "skills": {"extra_paths": [str(skills)]},
    }
    (home / "fleet.toml").write_text(tomlkit.dumps(doc))
    return home


def gone(proc: psutil.Process) -> bool:
    """Dead for our purpose: no such process (same pid and start time), or a zombie."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def kill(proc: psutil.Process) -> bool:
    """SIGKILL a process we started; psutil refuses a pid that was reused."""
    try:
        proc.kill()
        return True
    except psutil.Error:
        return False


class Soak:
    def __init__(self, args, home: Path, rng: random.Random):
        self.args, self.home, self.rng = args, home, rng
        self.cfg = load_config(home)
        self.store = open_store(self.cfg)
        self.env = {k: v for k, v in os.environ.items() if k != "FLEET_DB"}
        self.env.update(FLEET_HOME=str(home), PYTHONPATH=str(REPO))
        self.sup: subprocess.Popen | None = None
        self.sup_proc: psutil.Process | None = None
        self.sup_started = 0.0
        self.sup_count = 0
        self.seen: dict[int, psutil.Process] = {}  # every descendant of our supervisors we have seen
        self.worker_kills = self.worker_kills_busy = 0
        self.sup_kills = 0
        self.pdeath_survivors = 0
        self.sup_exits: list[int] = []

    # -- supervisors -------------------------------------------------------
    def start_supervisor(self) -> None:
        self.sup_count += 1
        err = open(self.home / f"supervisor-{self.sup_count}.stderr", "wb")  # noqa: SIM115
        try:
            self.sup = subprocess.Popen([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet"],
                                        cwd=str(REPO), env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=err)
        finally:
            err.close()
        self.sup_proc = psutil.Process(self.sup.pid)
        self.sup_started = time.monotonic()

    def children(self) -> list[psutil.Process]:
        """The supervisor's direct children (its workers), remembered for the end."""
        try:
            kids = self.sup_proc.children() if self.sup is not None and self.sup.poll() is None else []
        except psutil.Error:
            kids = []
        for k in kids:
            self.seen.setdefault(k.pid, k)
        return kids

    def workers(self) -> list[tuple[dict, psutil.Process]]:
        """Agent rows whose pid is a live child of our supervisor."""
        kids = {k.pid: k for k in self.children()}
        return [(a, kids[a["pid"]]) for a in self.store.list_agents()
                if a.get("pid") in kids and a["status"] in ("idle", "busy")]

    def wait_workers(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while len(self.workers()) < self.args.workers:
            if self.sup.poll() is not None:
                raise SystemExit(f"soak: the supervisor exited with {self.sup.returncode} at start; see "
                                 f"{self.home}/supervisor-{self.sup_count}.stderr and {self.home}/logs/")
            if time.monotonic() > end:
                raise SystemExit(f"soak: {self.args.workers} workers did not come up within {timeout:.0f} s; "
                                 f"see {self.home}/logs/")
            time.sleep(0.05)

    def kill_supervisor(self) -> None:
        """kill -9 the supervisor; its workers must die with it (PDEATHSIG ->
        each worker kills its own group). Survivors after 5 s are counted and killed."""
        try:
            victims = self.sup_proc.children(recursive=True)
        except psutil.Error:
            victims = []
        for v in victims:
            self.seen.setdefault(v.pid, v)
        self.sup.send_signal(signal.SIGKILL)
        self.sup.wait()
        self.sup_kills += 1
        end = time.monotonic() + 5.0
        while time.monotonic() < end and not all(gone(v) for v in victims):
            time.sleep(0.02)
        left = [v for v in victims if not gone(v)]
        self.pdeath_survivors += len(left)
        for v in left:
            print(f"soak: pid {v.pid} ({' '.join(v.cmdline()[:4]) if not gone(v) else '?'}) outlived its "
                  "killed supervisor by 5 s; killing it", file=sys.stderr)
            kill(v)
        self.start_supervisor()

    def stop_fleet(self) -> str:
        if self.sup is None or self.sup.poll() is not None:
            return "not running"
        t0 = time.monotonic()
        self.children()
        self.sup.send_signal(signal.SIGTERM)
        try:
            rc = self.sup.wait(float(self.cfg["supervisor"]["stop_timeout_s"]) + 60)
            return f"exit {rc} in {time.monotonic() - t0:.1f} s"
        except subprocess.TimeoutExpired:
            self.sup.kill()
            self.sup.wait()
            return f"hung {time.monotonic() - t0:.0f} s after SIGTERM: killed"

    # -- the run -------------------------------------------------------------
    def kill_a_worker(self) -> None:
        live = self.workers()
        if not live:
            return
        agent, proc = self.rng.choice(live)
        if kill(proc):
            self.worker_kills += 1
            self.worker_kills_busy += agent["status"] == "busy"

    def run(self) -> dict:
        a = self.args
        self.start_supervisor()
        self.wait_workers()
        specs = []
        for n in range(a.tasks):
            p = {"n": n, "sleep_ms": round(self.rng.uniform(0, a.max_sleep_ms), 2)}
            if self.rng.random() < a.daemon_rate:
                p["daemon"] = True
            specs.append({"skill": SKILL, "payload": p})
        t0 = time.monotonic()
        ids = []
        for i in range(0, len(specs), 1000):
            ids += [t.id for t in self.store.enqueue_many(specs[i:i + 1000])]
        deadline = t0 + a.deadline
        rate = a.kill_rate
        next_kill = t0 + (self.rng.expovariate(rate) if rate > 0 else float("inf"))
        thresholds = [a.tasks * (k + 1) / (a.supervisor_kills + 1) for k in range(a.supervisor_kills)]
        last_report = last_progress = t0
        finished, counts = 0, {}
        while True:
            now = time.monotonic()
            counts = self.store.counts()
            before, finished = finished, sum(counts.get(s, 0) for s in FINISHED)
            if finished > before:
                last_progress = now
            if finished >= a.tasks or now >= deadline or now - last_progress >= a.stall_s:
                break
            if self.sup.poll() is not None:  # it ended on its own: note it, start another
                self.sup_exits.append(self.sup.returncode)
                err = self.home / f"supervisor-{self.sup_count}.stderr"
                tail = err.read_text(errors="replace").strip().splitlines()[-5:] if err.exists() else []
                print(f"soak: the supervisor exited on its own ({self.sup.returncode}); starting another. "
                      f"Its stderr ends:\n  " + "\n  ".join(tail or ["(empty)"]), file=sys.stderr)
                if len(self.sup_exits) > 20:
                    raise SystemExit("soak: the supervisor keeps exiting; giving up (see its logs)")
                time.sleep(0.5)
                self.start_supervisor()
                continue
            if thresholds and finished >= thresholds[0] and now - self.sup_started > 1.0 and self.children():
                thresholds.pop(0)
                self.kill_supervisor()
                continue
            if now >= next_kill:
                self.kill_a_worker()
                next_kill = max(next_kill + self.rng.expovariate(rate), now)
            if now - last_report >= 5.0:
                last_report = now
                print(f"soak: {now - t0:5.0f} s  finished {finished:,}/{a.tasks:,}  {dict(counts)}  worker "
                      f"kills {self.worker_kills}  supervisor kills {self.sup_kills}", file=sys.stderr)
            time.sleep(min(0.02, max(0.0, next_kill - time.monotonic())))
        wall = time.monotonic() - t0
        stuck = counts.get("PENDING", 0) + counts.get("RUNNING", 0) if finished < a.tasks else 0
        self.children()
        stop = self.stop_fleet()
        return {"ids": ids, "wall": wall, "finished": finished, "stuck_counts": stuck, "stop": stop,
                "deadline_passed": finished < a.tasks}

    # -- after the run -------------------------------------------------------
    def leftovers(self) -> tuple[int, int]:
        """(fleet processes still alive after the clean stop, soak daemons alive);
        both are killed. Daemons are found by the PID each wrote and by an
        argv[0] that names this run's home, and must be ours (uid)."""
        time.sleep(0.5)
        fleet_left = [p for p in self.seen.values() if not gone(p)]
        for p in fleet_left:
            kill(p)
        tag = f"{DAEMON_TAG}:{self.home}"
        uid = os.getuid()
        daemons: dict[int, psutil.Process] = {}
        path = self.home / "daemons.log"
        pids = [int(line.split()[0]) for line in path.read_text().splitlines() if line.strip()] \
            if path.exists() else []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                if p.cmdline()[:1] == [tag] and p.uids().real == uid:
                    daemons[pid] = p
            except psutil.Error:
                pass
        for p in psutil.process_iter():
            try:
                if p.pid not in daemons and p.uids().real == uid and p.cmdline()[:1] == [tag]:
                    daemons[p.pid] = p
            except psutil.Error:
                pass
        orphans = [p for p in daemons.values() if not gone(p)]
        for p in orphans:
            kill(p)
        self.daemons_started = len(pids)
        return len(fleet_left), len(orphans)

    def tally(self, ids: list[int]) -> dict:
        rows = {}
        total = self.store.list_tasks(skill=SKILL, limit=1).total
        for offset in range(0, max(total, 1), 1000):
            for t in self.store.list_tasks(skill=SKILL, limit=1000, offset=offset).items:
                rows[t.id] = t
        n_of = {}  # payload n -> task id
        for tid, t in rows.items():
            n_of[t.payload.get("n")] = tid
        effects = collections.Counter()
        path = self.home / "side_effects.log"
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[3].isdigit():
                    effects[int(parts[3])] += 1
        status = collections.Counter()
        out = collections.Counter()
        outcomes_failed = collections.Counter()
        reasons_failed = collections.Counter()
        for tid in ids:
            t = rows.get(tid)
            if t is None:
                out["missing"] += 1
                continue
            status[t.status] += 1
            att = self.store.attempts(tid)
            done = sum(1 for x in att if x["outcome"] == "done")
            crashes = sum(1 for x in att if x["outcome"] in CRASH_OUTCOMES)
            out["crash_attempts"] += crashes
            out["attempts"] += len(att)
            if done > 1:
                out["completed_twice"] += 1
            n_runs = effects.get(t.payload.get("n"), 0)
            if n_runs > 1:
                out["effects_twice"] += 1
                out["effects_extra"] += n_runs - 1
            if t.status == "DONE" and (n_runs == 0 or done == 0):
                out["done_unrun"] += 1
            if t.status not in (*FINISHED, "PENDING", "RUNNING"):
                out["bad_state"] += 1
            if t.status == "FAILED":
                failed = [x["outcome"] for x in att if x["outcome"] not in ("done", "released", "running")]
                outcomes_failed.update(failed)
                reasons_failed[t.error_reason or "?"] += 1
                if failed and all(o in CRASH_OUTCOMES for o in failed):
                    out["healthy_dead"] += 1
                else:
                    out["skill_error_dead"] += 1
        out["lost"] = out["missing"] + out["bad_state"] + out["done_unrun"]
        return {"status": status, "out": out, "failed_outcomes": outcomes_failed, "failed_reasons": reasons_failed}


def parse_rate(text: str) -> float:
    """'2/s', '30/m', '0.5' (per second) -> kills per second."""
    text = text.strip().lower()
    num, _, unit = text.partition("/")
    per = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit)
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if per is None or value < 0:
        raise argparse.ArgumentTypeError(f"bad rate {text!r}: write e.g. 2/s, 30/m or 0 (no worker kills)")
    return value / per


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "fleet"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return f"{sha or '?'}" + (" + uncommitted changes in fleet/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def print_table(rows: list[list[str]]) -> None:
    head = ["figure", "value", "target", "result"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i in (0, 2, 3) else str(c).rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    print(fmt(head))
    print(fmt(["-" * w for w in widths]))
    for r in rows:
        print(fmt(r))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--tasks", type=int, default=10000, help="tasks to run (default 10,000)")
    ap.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    ap.add_argument("--kill-rate", type=parse_rate, default=parse_rate("2/s"),
                    help="SIGKILLs to random workers, e.g. 2/s (default), 30/m, 0")
    ap.add_argument("--supervisor-kills", type=int, default=3, help="kill -9s of the supervisor (default 3)")
    ap.add_argument("--max-sleep-ms", type=float, default=20.0, help="each task sleeps 0..this (default 20)")
    ap.add_argument("--daemon-rate", type=float, default=0.01,
                    help="share of tasks whose skill leaves a setsid daemon behind (default 0.01)")
    ap.add_argument("--max-attempts", type=int, help="[queue] max_attempts (default: the fleet's default)")
    ap.add_argument("--deadline", type=float, help="seconds from enqueue to give up waiting "
                    "(default 600 + 0.5 s per task)")
    ap.add_argument("--stall-s", type=float, default=120.0,
                    help="give up when no task has finished for this long (default 120 s)")
    ap.add_argument("--seed", type=int, help="random seed for the payloads and kill schedule (default: random)")
    ap.add_argument("--dir", help="where to make the temporary fleet home (default: the system temp dir)")
    ap.add_argument("--strict", action="store_true",
                    help="also fail on a healthy task dead-lettered, an orphan, or a process "
                    "outliving its killed supervisor")
    ap.add_argument("--keep", action="store_true", help="keep the fleet home (it is also kept when the soak fails)")
    a = ap.parse_args(argv)
    if a.tasks < 1 or a.workers < 1 or a.supervisor_kills < 0 or not 0 <= a.daemon_rate <= 1:
        ap.error("--tasks and --workers must be >= 1, --supervisor-kills >= 0, --daemon-rate within 0..1")
    if a.deadline is None:
        a.deadline = 600 + 0.5 * a.tasks
    if a.seed is None:
        a.seed = random.randrange(1 << 31)
    rng = random.Random(a.seed)
    load0 = os.getloadavg()[0]
    home = write_home(a.dir, a.workers, a.max_attempts)
    print(f"soak: fleet home {home}, seed {a.seed}", file=sys.stderr)
    soak = Soak(a, home, rng)
    ok = False
    try:
        res = soak.run()
        fleet_left, orphans = soak.leftovers()
        tally = soak.tally(res["ids"])
        integrity = soak.store.integrity_check()
        max_attempts = int(soak.cfg["queue"]["max_attempts"])
    except BaseException:
        if soak.sup is not None and soak.sup.poll() is None:
            soak.stop_fleet()
        try:
            soak.leftovers()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            print(f"soak: could not clean up every process: {exc}", file=sys.stderr)
        print(f"soak: aborted; fleet home kept at {home}", file=sys.stderr)
        raise
    finally:
        soak.store.close()

    st, out = tally["status"], tally["out"]
    n = a.tasks
    strict = a.strict

    def gate(value: int, hard: bool) -> str:
        return "ok" if value == 0 else ("FAIL" if hard else "miss")

    fo = ", ".join(f"{k} {v}" for k, v in tally["failed_outcomes"].most_common()) or "-"
    fr = ", ".join(f"{k} {v}" for k, v in tally["failed_reasons"].most_common()) or "-"
    rows = [
        ["tasks enqueued", f"{len(res['ids']):,}", "", ""],
        ["DONE", f"{st['DONE']:,}", "", ""],
        ["FAILED (dead-lettered)", f"{st['FAILED']:,}", "", ""],
        ["  healthy task dead-lettered (every failure a crash/expiry)", f"{out['healthy_dead']:,}", "0",
         gate(out["healthy_dead"], strict)],
        ["  dead-lettered with a skill error", f"{out['skill_error_dead']:,}", "0", gate(out["skill_error_dead"], False)],
        ["  FAILED tasks by error_reason", fr, "", ""],
        ["  their failed attempts, by outcome", fo, "", ""],
        ["CANCELLED", f"{st['CANCELLED']:,}", "0", gate(st["CANCELLED"], False)],
        ["lost (missing, unfinishable state, or DONE without running)", f"{out['lost']:,}", "0",
         gate(out["lost"], True)],
        ["stuck (PENDING/RUNNING at the deadline or stall)", f"{res['stuck_counts']:,}", "0", gate(res["stuck_counts"], True)],
        ["completed twice (> 1 'done' attempt)", f"{out['completed_twice']:,}", "0", gate(out["completed_twice"], True)],
        ["side effects run twice (tasks; extra runs) - at-least-once, not a loss",
         f"{out['effects_twice']:,}; {out['effects_extra']:,}", "-", ""],
        ["attempts (all tasks); of them ended by crash/expired lease",
         f"{out['attempts']:,}; {out['crash_attempts']:,}", "", ""],
        ["worker kills delivered (SIGKILL); of them to a busy worker",
         f"{soak.worker_kills:,}; {soak.worker_kills_busy:,}", "", ""],
        ["supervisor kills (SIGKILL)", f"{soak.sup_kills}", "", ""],
        ["  its processes still alive 5 s after (PDEATHSIG)", f"{soak.pdeath_survivors}", "0",
         gate(soak.pdeath_survivors, strict)],
        ["supervisor exits on its own", ", ".join(map(str, soak.sup_exits)) or "0", "0",
         gate(len(soak.sup_exits), False)],
        ["soak daemons started (setsid, double-forked)", f"{soak.daemons_started}", "", ""],
        ["orphaned processes left (soak daemons alive at the end)", f"{orphans}", "0", gate(orphans, strict)],
        ["fleet processes left after the clean stop", f"{fleet_left}", "0", gate(fleet_left, strict)],
        ["clean stop (SIGTERM)", res["stop"], "", ""],
        ["store integrity_check()", integrity, "ok", "ok" if integrity == "ok" else "FAIL"],
        ["wall time (enqueue -> all finished)", f"{res['wall']:.1f} s", "", ""],
        ["tasks/s (finished / wall)", f"{res['finished'] / res['wall']:,.1f}" if res["wall"] > 0 else "-", "", ""],
    ]
    print(f"\nFleet soak: {n:,} tasks, {a.workers} workers, worker kills {a.kill_rate:g}/s, "
          f"{a.supervisor_kills} supervisor kills, max_attempts {max_attempts}, seed {a.seed}")
    print(f"code {code_version()}; {os.cpu_count()} cores, load avg {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"Python {sys.version.split()[0]}")
    print_table(rows)
    fails = [r[0].strip() for r in rows if r[3] == "FAIL"]
    ok = not fails
    print(f"command: {Path(sys.executable).name} scripts/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    if ok:
        print("result: PASS" + ("" if strict else " (healthy dead-letters, orphans and PDEATHSIG survivors are "
                                "reported, not gating; --strict gates them)"))
    else:
        print("result: FAIL: " + "; ".join(fails))
    if a.keep or not ok:
        print(f"fleet home kept at {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
