"""Code-factory workflows end to end: a real fleet (supervisor and worker
processes), `lead_client workflow ...` as a subprocess, a small git repository
made in a temp dir, and loopback model servers speaking the Anthropic and
OpenAI-compatible protocols, scripted by prompt (planner, executor, reviewer,
learner each recognised by their prompt)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fakes.cli_runner import cli
from fakes.fleetproc import fleet, pid_gone, wait_until  # noqa: F401 - fixture
from fakes.model_servers import FakeAnthropic, FakeOpenAI, dead_url

BUGGY = "def page(items, number, size):\n    \"\"\"Items of page `number` (0-based).\"\"\"\n" \
        "    return items[number * size:(number + 1) * size - 1]\n"
FIXED = BUGGY.replace("(number + 1) * size - 1]", "(number + 1) * size]")
WRONG = BUGGY.replace("(number + 1) * size - 1]", "(number + 1) * size + 1]")
TESTS = "from pager import page\n\n\ndef test_full_page():\n    assert page(list(range(10)), 0, 3) == [0, 1, 2]\n"
# The repository's test command: pytest, without the plugins this venv holds
# (their loading takes seconds; the gate's clean environment carries no
# PYTEST_DISABLE_PLUGIN_AUTOLOAD, so the command sets it itself).
TEST_COMMAND = ("python -c \"import os, sys; os.environ['PYTEST_DISABLE_PLUGIN_AUTOLOAD'] = '1'; import pytest; "
                "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider']))\"")
PLAN = {"goal": "Fix the off-by-one in pagination", "steps": ["return whole pages"], "files": ["pager.py"],
        "criteria": ["page(items, 0, 3) returns three items", "the tests pass"]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def diff_to(repo: Path, new_text: str) -> str:
    """The unified diff that turns pager.py into `new_text` (made in the repo, then undone)."""
    (repo / "pager.py").write_text(new_text)
    out = git(repo, "diff")
    git(repo, "checkout", "--", "pager.py")
    return out


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "project"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    git(r, "config", "user.email", "dev@example.com")
    git(r, "config", "user.name", "Dev")
    (r / "pager.py").write_text(BUGGY)
    (r / "test_pager.py").write_text(TESTS)
    git(r, "add", "-A")
    git(r, "commit", "-qm", "initial")
    return r


def prompt_of(body: dict) -> str:
    return "\n".join(str(m.get("content")) for m in body.get("messages", []))


@pytest.fixture
def models(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-key")
    with FakeAnthropic() as claude, FakeOpenAI() as oai:
        yield claude, oai


def start_fleet(fleet, claude_url: str, oai_url: str, *, reviewer_url: str | None = None, run: bool = True,  # noqa: F811
                store: dict | None = None, **workflow):
    """Write the fleet's config (the fakes as providers) and start it (`run`)."""
    providers = {
        "claude": {"type": "claude", "base_url": claude_url, "model": "claude-sonnet-4-6", "min_spacing_ms": 0,
                   "rpm": 0},
        "oai": {"type": "openai_compatible", "base_url": oai_url, "model": "served-model", "min_spacing_ms": 0},
    }
    reviewer = "claude"
    if reviewer_url is not None:
        providers["rev"] = {"type": "openai_compatible", "base_url": reviewer_url, "model": "rev-model",
                            "min_spacing_ms": 0}
        reviewer = "rev"
    from fakes.fleetproc import write_config

    config = {"workers": {"planner": 1}, "affinity": {"planner": ["workflow"]},
              "models": {"chain": ["claude", "oai"], "max_wait_s": 0.0}, "providers": providers,
              "workflow": {"planner": "claude", "executor": "oai", "reviewer": reviewer, "test_command": TEST_COMMAND,
                           "gate_timeout_s": 60.0, **workflow}}
    if store is not None:
        config["store"] = store
    if run:
        fleet.start(**config)
    else:
        write_config(fleet.home, **config)


def workflow(home, wid: int) -> dict:
    r = cli(home, "workflow", "status", str(wid), "--json")
    assert r.rc == 0, r
    return r.json()["workflow"]


def wait_for(home, wid: int, pred, what: str, timeout: float = 60.0) -> dict:
    return wait_until(lambda: (lambda w: w if pred(w) else None)(workflow(home, wid)), timeout=timeout, step=0.2,
                      what=what)


def test_happy_path_plan_approval_execute_review_gates_commit(fleet, models, repo):  # noqa: F811
    claude, oai = models
    good = diff_to(repo, FIXED)
    no_criteria = {**PLAN, "criteria": []}

    def claude_script(body):
        text = prompt_of(body)
        if "ROLE: planner" in text:  # a plan without criteria first: it is sent back once
            return json.dumps(PLAN if "NO ACCEPTANCE CRITERIA" in text else no_criteria)
        if "ROLE: reviewer" in text:
            return json.dumps({"verdict": "approve", "findings": [], "criteria_met": PLAN["criteria"]})
        return None

    claude.respond(claude_script)
    oai.respond(lambda body: f"Here is the change:\n```diff\n{good}```\n" if "ROLE: executor" in prompt_of(body)
                else None)
    start_fleet(fleet, claude.url, oai.url)
    # two workflows on one repository at once, each in its own worktree and branch
    ids = []
    for _ in range(2):
        r = cli(fleet.home, "workflow", "start", "Fix the off-by-one in pagination", "--repo", str(repo), "--json")
        assert r.rc == 0, r
        ids.append(r.json()["workflow"]["id"])
    wid, other = ids

    for i in ids:
        w = wait_for(fleet.home, i, lambda w: w["waiting_for_approval"], "the plan to wait for approval")
        assert w["phase"] == "approve" and w["plan"]["criteria"] == PLAN["criteria"]
    # nothing touched the repository before approval
    assert "fleet/wf-" not in git(repo, "branch", "--list") and oai.request_count == 0

    for i in ids:
        r = cli(fleet.home, "workflow", "approve", str(i), "--by", "alice")
        assert r.rc == 0, r
    w2 = wait_for(fleet.home, other, lambda w: w["status"] != "RUNNING", "the second workflow to finish")
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to finish")
    assert w["status"] == "DONE" and w2["status"] == "DONE", (w, w2)
    assert git(repo, "branch", "--list", "fleet/*").split() == [f"fleet/wf-{wid}", f"fleet/wf-{other}"]
    assert git(repo, "show", f"fleet/wf-{other}:pager.py") == FIXED
    assert w["approver"] == "alice" and w["branch"] == f"fleet/wf-{wid}"
    assert [h["phase"] for h in w["history"]] == ["plan", "approve", "execute", "review", "gates", "done"]
    assert w["history"][0]["model_calls"] == 2 and w["history"][0]["input_tokens"] > 0

    # the user's working tree is untouched; the branch holds one commit by Fleet workflow
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert (repo / "pager.py").read_text() == BUGGY and git(repo, "status", "--porcelain") == ""
    log = git(repo, "log", "--format=%an|%B", f"main..fleet/wf-{wid}")
    assert log.startswith("Fleet workflow|Fix the off-by-one") and f"Fleet-Workflow: {wid}" in log
    assert "implemented by oai/served-model, reviewed by claude/claude-sonnet-4-6" in log
    assert git(repo, "show", f"fleet/wf-{wid}:pager.py") == FIXED
    assert git(repo, "rev-list", "--count", f"main..fleet/wf-{wid}").strip() == "1"
    assert str(fleet.home / "workflows") not in git(repo, "worktree", "list")  # the worktree is gone

    # the reviewer was another provider than the executor, and saw the diff
    reviews = [b for b in (r.body for r in claude.requests_to("/v1/messages")) if "ROLE: reviewer" in prompt_of(b)]
    assert len(reviews) == 2 and "+    return items[number * size:(number + 1) * size]" in prompt_of(reviews[0])
    report = Path(w["report"]).read_text()
    for part in ("## Plan", "page(items, 0, 3) returns three items", "### Attempt 1 by oai/served-model (applied)",
                 "### Diff 1: approve by claude/claude-sonnet-4-6", "**tests** passed", "**ruff** passed",
                 "**bandit** passed", "| 0 | plan | planned | 2 |", "approved by: alice"):
        assert part in report, part
    assert Path(w["report"]) == fleet.home / "knowledge" / "workflows" / f"{wid}.md"


def test_a_failed_gate_goes_back_then_its_learned_rule_acts_next_time(fleet, models, repo):  # noqa: F811
    claude, oai = models
    good, wrong = diff_to(repo, FIXED), diff_to(repo, WRONG)
    rule = {"name": "no size plus one", "pattern": r"size \+ 1\]", "message": "a page has `size` items"}
    lesson = "A page holds exactly `size` items: slice to (number + 1) * size"

    def claude_script(body):
        text = prompt_of(body)
        if "ROLE: planner" in text:
            return json.dumps(PLAN)
        if "ROLE: reviewer" in text:
            return json.dumps({"verdict": "approve", "findings": []})
        if "ROLE: learner" in text:
            return json.dumps({"lessons": [lesson],
                               "rules": [rule, {"name": "too broad", "pattern": "return", "message": "x"}]})
        return None

    claude.respond(claude_script)
    # the executor repeats its mistake until some feedback says what failed
    oai.respond(lambda body: (good if "FAILED" in prompt_of(body) else wrong)
                if "ROLE: executor" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url)
    runs = []
    for _ in range(2):
        wid = cli(fleet.home, "workflow", "start", "Fix the off-by-one in pagination", "--repo", str(repo),
                  "--json").json()["workflow"]["id"]
        wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
        assert cli(fleet.home, "workflow", "approve", str(wid)).rc == 0
        w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to finish")
        assert w["status"] == "DONE", w
        reviews = sum("ROLE: reviewer" in prompt_of(r.body) for r in claude.requests_to("/v1/messages"))
        runs.append((w, reviews, [prompt_of(r.body) for r in oai.requests_to("/v1/chat/completions")][-1]))

    (first, reviews_first, fix_prompt), (second, reviews_both, _) = runs
    # the first workflow: the wrong diff fails the tests; pytest's output goes back; the fix passes
    assert [h["phase"] for h in first["history"]] == ["plan", "approve", "execute", "review", "gates", "execute",
                                                      "review", "gates", "done", "learn"]
    assert first["history"][4]["outcome"] == "failed" and first["attempts"] == 1
    assert "GATE tests FAILED" in fix_prompt and "assert" in fix_prompt
    assert git(repo, "show", f"fleet/wf-{first['id']}:pager.py") == FIXED
    report = Path(first["report"]).read_text()
    assert "**tests** FAILED" in report and "### Attempt 2" in report
    # learned: the lesson, and only the rule that fires on the failing diff and not on the accepted one
    lessons = cli(fleet.home, "workflow", "lessons", "--repo", str(repo), "--json").json()["lessons"]
    assert [x["text"] for x in lessons] == [lesson]
    kept = cli(fleet.home, "workflow", "rules", "--repo", str(repo), "--json").json()["rules"]
    assert [k["pattern"] for k in kept] == [rule["pattern"]]
    assert "rule too broad: dropped (fires on the accepted diff)" in report
    # the second workflow: the rule sends the same mistake back from execute, before any review or test run
    assert [(h["phase"], h["outcome"]) for h in second["history"]][2:5] == [
        ("execute", "rule_fired"), ("execute", "applied"), ("review", "approved")]
    assert (reviews_first, reviews_both) == (2, 3)
    planner_prompts = [prompt_of(r.body) for r in claude.requests_to("/v1/messages")
                       if "ROLE: planner" in prompt_of(r.body)]
    assert lesson not in planner_prompts[0] and lesson in planner_prompts[-1]  # lessons feed the later plan
    # an operator can delete a lesson and a rule
    assert cli(fleet.home, "workflow", "lessons", "--delete", str(lessons[0]["id"])).rc == 0
    assert cli(fleet.home, "workflow", "rules", "--repo", str(repo), "--delete", str(kept[0]["id"])).rc == 0
    assert cli(fleet.home, "workflow", "lessons", "--repo", str(repo), "--json").json()["lessons"] == []
    assert cli(fleet.home, "workflow", "rules", "--repo", str(repo), "--json").json()["rules"] == []
    assert cli(fleet.home, "workflow", "rules").rc == 2  # rules are per repository


def test_the_same_model_as_executor_and_reviewer_is_refused(fleet, models, repo):  # noqa: F811
    claude, oai = models
    start_fleet(fleet, claude.url, oai.url, run=False)  # refused before any task exists: no fleet needed
    r = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--reviewer", "oai/served-model")
    assert r.rc == 1 and "self-review is not review" in r.err, r
    assert cli(fleet.home, "workflow", "list", "--json").json()["workflows"] == []
    r = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--reviewer", "oai/other-model",
            "--json")
    assert r.rc == 0, r  # the same provider with another model is a different reviewer


def test_a_reviewer_that_is_down_fails_closed(fleet, models, repo):  # noqa: F811
    claude, oai = models
    good = diff_to(repo, FIXED)
    stale = good.replace("-    return items", "-    return the_items")  # a context line the file lacks
    claude.respond(lambda body: json.dumps(PLAN) if "ROLE: planner" in prompt_of(body) else None)
    oai.respond(lambda body: (good if "git apply --check" in prompt_of(body) else stale)
                if "ROLE: executor" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url, reviewer_url=dead_url())
    wid = cli(fleet.home, "workflow", "start", "Fix the off-by-one", "--repo", str(repo), "--json").json()[
        "workflow"]["id"]
    wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    assert cli(fleet.home, "workflow", "approve", str(wid)).rc == 0
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to end")
    assert w["status"] == "FAILED" and "fail closed" in w["error"], w
    # the first diff did not apply: git's own message went back to the executor, and it used an attempt
    assert [(h["phase"], h["outcome"]) for h in w["history"]][2:] == [
        ("execute", "diff_rejected"), ("execute", "applied"), ("review", "no_review")]
    retry = [prompt_of(r.body) for r in oai.requests_to("/v1/chat/completions")][-1]
    assert "patch failed: pager.py" in retry and w["attempts"] == 1
    assert "fleet/wf-" not in git(repo, "branch", "--list")  # no commit, so no branch is left
    assert (repo / "pager.py").read_text() == BUGGY


def test_a_review_rejection_swaps_the_roles(fleet, models, repo):  # noqa: F811
    claude, oai = models
    good, wrong = diff_to(repo, FIXED), diff_to(repo, WRONG)

    def claude_script(body):
        text = prompt_of(body)
        if "ROLE: planner" in text:
            return json.dumps(PLAN)
        if "ROLE: reviewer" in text:  # claude reviews oai's first diff
            return json.dumps({"verdict": "reject", "findings": ["a page of 3 returns 4 items"]})
        if "ROLE: executor" in text:  # after the swap claude implements, with its own findings
            return good if "a page of 3 returns 4 items" in text else None
        if "ROLE: learner" in text:
            return "I have nothing to add."  # not the JSON asked for
        return None

    claude.respond(claude_script)
    oai.respond(lambda body: wrong if "ROLE: executor" in prompt_of(body) else
                json.dumps({"verdict": "approve", "findings": []}) if "ROLE: reviewer" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url)
    wid = cli(fleet.home, "workflow", "start", "Fix the off-by-one", "--repo", str(repo), "--json").json()[
        "workflow"]["id"]
    wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    edited = {**PLAN, "criteria": PLAN["criteria"] + ["page(items, 1, 3) returns items 3 to 5"]}
    (repo.parent / "plan.json").write_text(json.dumps(edited))
    r = cli(fleet.home, "workflow", "edit", str(wid), str(repo.parent / "plan.json"), "--by", "dave")
    assert r.rc == 0, r
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to finish")
    assert w["status"] == "DONE" and w["handoffs"] == 1, w
    assert w["approver"] == "dave" and w["plan"] == edited and w["history"][1]["outcome"] == "edited"
    first_review = next(prompt_of(r.body) for r in claude.requests_to("/v1/messages")
                        if "ROLE: reviewer" in prompt_of(r.body))
    assert "page(items, 1, 3) returns items 3 to 5" in first_review  # the edited criteria are reviewed
    assert [h["outcome"] for h in w["history"]][2:7] == ["applied", "rejected", "applied", "approved", "passed"]
    log = git(repo, "log", "-1", "--format=%B", f"fleet/wf-{wid}")
    assert "implemented by claude/claude-sonnet-4-6, reviewed by oai/served-model" in log
    report = Path(w["report"]).read_text()
    assert "(plan edited by dave)" in report
    # a learner that does not answer as asked costs the lessons, not the committed change
    assert w["history"][-1]["phase"] == "learn" and w["history"][-1]["outcome"] == "not_learned"
    assert "the learner did not answer" in report
    assert "### Diff 1: reject by claude/claude-sonnet-4-6" in report and "### Diff 2: approve by oai/served-model" \
        in report


def test_the_budget_ends_the_workflow_with_the_figures(fleet, models, repo):  # noqa: F811
    from fakes.model_servers import Reply

    claude, oai = models
    # 10,000 output tokens of claude-sonnet (15 USD per Mtok) is 0.15 USD, over a 0.10 USD budget
    claude.respond(lambda body: Reply(text=json.dumps(PLAN), usage={"input": 100, "output": 10000})
                   if "ROLE: planner" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url)
    wid = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--budget", "0.10", "--json").json()[
        "workflow"]["id"]
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to end")
    assert w["status"] == "FAILED" and "budget of 0.1000 USD is spent: 0.1503 USD used" in w["error"], w
    assert [h["phase"] for h in w["history"]] == ["plan", "approve"] and oai.request_count == 0
    assert abs(w["spent_usd"] - 0.1503) < 1e-9
    text = cli(fleet.home, "workflow", "status", str(wid))  # the plain-text views
    assert text.rc == 0 and "FAILED" in text.out and "0.1503 USD of 0.10" in text.out, text
    listing = cli(fleet.home, "workflow", "list")
    assert listing.rc == 0 and "Fix it" in listing.out, listing


def test_cancel_stops_at_the_phase_boundary_and_reject_ends_it(fleet, models, repo):  # noqa: F811
    claude, oai = models
    claude.respond(lambda body: json.dumps(PLAN) if "ROLE: planner" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url)
    wid = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--json").json()["workflow"]["id"]
    w = wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    # feedback (the Approvals page's {choice, text}) sends the plan back to the planner with the person's words
    fleet.store.answer(w["task_id"], {"choice": "feedback", "text": "keep it to one file"}, by="carol")
    w = wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"] and w["step"] == 3, "the second plan")
    assert [(h["phase"], h["outcome"]) for h in w["history"]] == [("plan", "planned"), ("approve", "replan"),
                                                                 ("plan", "planned")]
    planner = [prompt_of(r.body) for r in claude.requests_to("/v1/messages") if "ROLE: planner" in prompt_of(r.body)]
    assert "carol: keep it to one file" in planner[-1] and "carol" not in planner[0]
    r = cli(fleet.home, "workflow", "cancel", str(wid))
    assert r.rc == 0, r
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to stop")
    assert w["status"] == "CANCELLED" and w["history"][-1]["outcome"] == "cancelled"
    assert oai.request_count == 0 and "fleet/wf-" not in git(repo, "branch", "--list")
    assert cli(fleet.home, "workflow", "cancel", str(wid)).rc == 1  # already ended

    other = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--json").json()["workflow"]["id"]
    wait_for(fleet.home, other, lambda w: w["waiting_for_approval"], "the second approval question")
    r = cli(fleet.home, "workflow", "reject", str(other), "--by", "bob", "--reason", "too broad")
    assert r.rc == 0, r
    w = wait_for(fleet.home, other, lambda w: w["status"] != "RUNNING", "the rejection")
    assert w["status"] == "REJECTED" and w["error"] == "plan rejected by bob: too broad", w
    assert oai.request_count == 0


def test_a_worker_killed_in_execute_and_the_supervisor_killed_in_gates_resume(fleet, models, repo, tmp_path):  # noqa: F811
    import os
    import signal

    from fakes.model_servers import Reply

    claude, oai = models
    marker = tmp_path / "gate-started"
    # the test command: on its first run it says so and hangs (the worker is killed then); later runs test
    (repo / "gate_probe.py").write_text(
        "import pathlib, subprocess, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if not marker.exists():\n    marker.write_text('x')\n    time.sleep(20)\n    sys.exit(1)\n"
        "import os\nos.environ['PYTEST_DISABLE_PLUGIN_AUTOLOAD'] = '1'\n"
        "sys.exit(subprocess.call([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', "
        "'test_pager.py']))\n")
    git(repo, "add", "gate_probe.py")
    git(repo, "commit", "-qm", "probe")
    good = diff_to(repo, FIXED)
    executor_calls = []

    def oai_script(body):
        if "ROLE: executor" not in prompt_of(body):
            return None
        executor_calls.append(1)
        return Reply(text=good, delay_s=30) if len(executor_calls) == 1 else good  # the first one hangs

    claude.respond(lambda body: json.dumps(PLAN) if "ROLE: planner" in prompt_of(body) else
                   json.dumps({"verdict": "approve", "findings": []}) if "ROLE: reviewer" in prompt_of(body)
                   else None)
    oai.respond(oai_script)
    start_fleet(fleet, claude.url, oai.url, test_command="python gate_probe.py")
    wid = cli(fleet.home, "workflow", "start", "Fix the off-by-one", "--repo", str(repo), "--json").json()[
        "workflow"]["id"]
    wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    assert cli(fleet.home, "workflow", "approve", str(wid)).rc == 0

    def worker_running(phase: str) -> int:
        w = workflow(fleet.home, wid)
        assert w["phase"] == phase and w["status"] == "RUNNING", w
        agent = fleet.store.get_agent("planner")
        assert agent["current_task"] == w["task_id"], agent
        return agent["pid"]

    wait_until(lambda: executor_calls, timeout=30, what="the executor's first call")
    os.kill(worker_running("execute"), signal.SIGKILL)  # the worker dies; its supervisor replaces it
    wait_until(marker.exists, timeout=60, what="the gates to start")
    worker = worker_running("gates")
    os.kill(fleet.store.get_agent("supervisor")["pid"], signal.SIGKILL)  # the supervisor dies, taking its workers
    wait_until(lambda: pid_gone(worker), timeout=10, what="the worker to go with its supervisor")
    start_fleet(fleet, claude.url, oai.url, test_command="python gate_probe.py")  # a new supervisor resumes

    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to finish", timeout=90)
    assert w["status"] == "DONE", w
    # each phase finished once, on the re-run attempt of its task
    assert [h["phase"] for h in w["history"]] == ["plan", "approve", "execute", "review", "gates", "done"]
    outcomes = {t.payload["step"]: [a["outcome"] for a in fleet.store.attempts(t.id)]
                for t in fleet.store.list_tasks(skill="workflow").items}
    assert outcomes[2] == ["crashed", "done"] and outcomes[4] == ["crashed", "done"], outcomes
    assert len(executor_calls) == 2
    assert git(repo, "branch", "--list", "fleet/*").split() == [f"fleet/wf-{wid}"]
    assert git(repo, "rev-list", "--count", f"main..fleet/wf-{wid}").strip() == "1"
    assert git(repo, "show", f"fleet/wf-{wid}:pager.py") == FIXED


def test_a_planner_that_stays_down_fails_the_workflow_after_the_task_attempts(fleet, models, repo):  # noqa: F811
    _, oai = models
    start_fleet(fleet, dead_url(), oai.url)
    wid = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--json").json()["workflow"]["id"]
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING" or w["stalled"], "the workflow to end")
    assert w["status"] == "FAILED" and w["stalled"] is None, w
    assert "plan phase's model" in w["error"] and [h["phase"] for h in w["history"]] == ["plan"]
    assert "fleet/wf-" not in git(repo, "branch", "--list")


def test_cancel_while_a_phase_runs_stops_at_the_next_boundary(fleet, models, repo):  # noqa: F811
    from fakes.model_servers import Reply

    claude, oai = models
    good = diff_to(repo, FIXED)
    claude.respond(lambda body: json.dumps(PLAN) if "ROLE: planner" in prompt_of(body) else None)
    oai.respond(lambda body: Reply(text=good, delay_s=1.5) if "ROLE: executor" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url)
    wid = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--json").json()["workflow"]["id"]
    wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    assert cli(fleet.home, "workflow", "approve", str(wid)).rc == 0
    assert oai.wait_for_requests(1, timeout=30)  # execute is waiting on the executor
    assert cli(fleet.home, "workflow", "cancel", str(wid)).rc == 0
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to stop")
    # execute finished its diff; the next phase boundary stopped it, removed the worktree and the empty branch
    assert w["status"] == "CANCELLED", w
    assert [(h["phase"], h["outcome"]) for h in w["history"]][2:] == [("execute", "applied"), ("review", "cancelled")]
    assert "ROLE: reviewer" not in "".join(prompt_of(r.body) for r in claude.requests_to("/v1/messages"))
    assert "fleet/wf-" not in git(repo, "branch", "--list") and str(fleet.home) not in git(repo, "worktree", "list")


@pytest.fixture
def pg_spec(tmp_path):
    """A fresh PostgreSQL schema on the test server (skipped, with the reason, without one)."""
    from conftest import require_system_part
    from store_backends import PostgreSQLBackend

    backend = PostgreSQLBackend(tmp_path / "pg")
    missing = backend.missing()
    if missing is not None:
        require_system_part(False, *missing)
    yield backend.new_spec()
    backend.cleanup()


def test_a_workflow_on_a_postgresql_store(fleet, models, repo, pg_spec, monkeypatch):  # noqa: F811
    spec = pg_spec  # the other tests run the workflow on SQLite
    monkeypatch.setenv("FLEET_STORE_DSN", spec["dsn"])
    claude, oai = models
    good = diff_to(repo, FIXED)
    claude.respond(lambda body: json.dumps(PLAN) if "ROLE: planner" in prompt_of(body) else
                   json.dumps({"verdict": "approve", "findings": []}) if "ROLE: reviewer" in prompt_of(body)
                   else None)
    oai.respond(lambda body: good if "ROLE: executor" in prompt_of(body) else None)
    start_fleet(fleet, claude.url, oai.url, store={"backend": "postgresql", "schema": spec["schema"]})
    wid = cli(fleet.home, "workflow", "start", "Fix it", "--repo", str(repo), "--json").json()["workflow"]["id"]
    wait_for(fleet.home, wid, lambda w: w["waiting_for_approval"], "the approval question")
    assert cli(fleet.home, "workflow", "approve", str(wid), "--by", "erin").rc == 0
    w = wait_for(fleet.home, wid, lambda w: w["status"] != "RUNNING", "the workflow to finish")
    assert w["status"] == "DONE" and w["approver"] == "erin", w
    assert [h["phase"] for h in w["history"]] == ["plan", "approve", "execute", "review", "gates", "done"]
    assert git(repo, "show", f"fleet/wf-{wid}:pager.py") == FIXED
    assert fleet.store.backend == "postgresql" and fleet.store.get_workflow(wid)["status"] == "DONE"
