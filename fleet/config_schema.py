"""Configuration schema: every section and key of fleet.toml with its type,
default, bounds and the documentation that `python -m fleet.config` writes into
the shipped fleet.toml. Loading and validating live in fleet/config.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any

@dataclasses.dataclass(frozen=True)
class Key:
    default: Any
    doc: str
    type: Any = None  # bool | int | float | str | list (of str); None: type of default
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None

    @property
    def kind(self):
        return self.type if self.type is not None else type(self.default)


@dataclasses.dataclass(frozen=True)
class Section:
    doc: str
    keys: dict[str, Key] = dataclasses.field(default_factory=dict)
    # A map section accepts any key name, each value checked against `values`.
    values: Key | None = None
    # A table section holds named sub-tables, each with these keys.
    tables: dict[str, Key] | None = None
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Commented-out example tables shipped in fleet.toml (off until uncommented).
    examples: str = ""


ROLE_AFFINITY = {
    "researcher": ["web_search", "arxiv_fetch", "summarize", "rag_query", "research_loop"],
    "coder": ["code_review", "code_discuss", "code_index", "fma_review", "skill_draft", "code_quality"],
    "archivist": ["summarize", "synthesize", "flashcard", "rag_index", "rag_query", "backup", "memory_optimizer",
                  "report", "briefing"],
    "analyst": ["summarize", "synthesize", "rag_query"],
    "security": ["security_review", "code_quality", "secret_rotate", "security_audit"],
    "planner": ["plan_workload", "workflow"],
}

SCHEMA: dict[str, Section] = {
    "fleet": Section("Fleet-wide operating modes.", {
        "name": Key("fleet", "A name for this fleet, shown in the dashboard and reports."),
        "eco_mode": Key(False, "CPU-only models, no VRAM: pins the CPU model tier."),
        "offline_mode": Key(False, "Refuse every cloud provider and network skill; local models still work."),
        "air_gap_mode": Key(False, "Implies offline_mode; also keeps the dashboard off and secrets unloaded."),
        "host": Key("", "This host's name in a fleet that spans several hosts (one shared PostgreSQL store): "
                        "agents, attempts, alerts and hardware samples carry it. Empty: the machine's hostname."),
    }),
    "paths": Section("Where runtime files live; relative paths are under the fleet home.", {
        "db": Key("fleet.db", "The SQLite database (tasks, agents, messages, usage)."),
        "hw_state": Key("hw_state.json", "Hardware state written by the hardware supervisor."),
        "status_file": Key("STATUS.md", "Human-readable fleet snapshot written by the supervisor."),
        "logs": Key("logs", "One rotating log file per process."),
        "knowledge": Key("knowledge", "What skills produce (reviews, indexes, summaries)."),
        "backups": Key("backups", "Backup snapshots (lead_client backup)."),
        "secrets": Key("~/.secrets", "API keys and other secrets (mode 0600); never put them in fleet.toml."),
        "shared_read": Key(False, "Let other users of this machine read the database, its WAL and the logs "
                                  "(files 0644, folders 0755). Off: the fleet creates them 0600 and its "
                                  "folders 0700, and tightens looser ones it finds."),
    }),
    "workers": Section(
        "Roles and how many workers of each to run (0 disables a role). "
        "Coders are named coder_1..N; other roles use the role name (role_1..N when more than one).",
        {"coder_count": Key(1, "How many coder workers to run.", min=0, max=64),
         "idle_takes_any_skill": Key(False, "Let an idle worker claim skills outside its role's affinity."),
         "loaded_model_max_wait_s": Key(
             120.0, "Model-aware claiming: among tasks of equal priority a worker first takes those whose model "
                    "the local model server already holds (hw_state.json models, plus the models of the tasks "
                    "it is running), so a mixed-model backlog does not swap models on every task. A task's "
                    "model is its payload's 'model' field, else the model its skill's provider chain uses. "
                    "Priorities still win, and a task that has waited this many seconds longer than a "
                    "loaded-model task is taken before it, so none starves. A worker running several tasks "
                    "at once ([workers.concurrency]) also starts a task on another model only when its "
                    "running model's tasks are done, so the server swaps once, not back and forth. "
                    "0 turns both off (plain priority-then-FIFO claiming).",
             type=float, min=0)},
        values=Key(1, "worker count for a role", type=int, min=0, max=64),
        defaults={"researcher": 1, "archivist": 1, "analyst": 1, "security": 1, "planner": 1},
    ),
    "workers.concurrency": Section(
        "Tasks one worker of a role runs at once (role = N; default 1). For model-bound roles: a model server "
        "with parallel slots (Ollama OLLAMA_NUM_PARALLEL, llama.cpp --parallel, vLLM) stays busy. Each task "
        "keeps its own lease, cancel and hard timeout; a task that overruns its timeout still ends the worker "
        "process, and the worker's other running tasks go back to the queue without using an attempt.",
        values=Key(1, "tasks at once for a role's worker", type=int, min=1, max=64),
    ),
    "affinity": Section(
        "Which skills each role claims (role = [skills]). Tasks assigned to a worker by name are always claimed by it.",
        values=Key([], "skills of a role", type=list),
        defaults=ROLE_AFFINITY,
    ),
    "queue": Section("The durable task queue.", {
        "synchronous": Key("normal", "Durability: 'normal' survives any process crash; 'full' also survives power loss.",
                           choices=("normal", "full")),
        "lease_s": Key(60.0, "Lease length in seconds; workers renew it while a skill runs.", type=float, min=1),
        "max_attempts": Key(3, "Default attempts per task before it stays FAILED (dead letter).", min=1, max=100),
        "backoff_base_s": Key(2.0, "First retry delay; doubles per attempt, with jitter.", type=float, min=0),
        "backoff_max_s": Key(300.0, "Longest retry delay.", type=float, min=0),
        "max_payload_bytes": Key(1048576, "Largest accepted task payload (JSON bytes).", min=1024),
        "busy_timeout_s": Key(30.0, "How long a writer waits for the database lock.", type=float, min=0.1),
        "checkpoint_interval_s": Key(60.0, "How often the supervisor checkpoints the WAL.", type=float, min=1),
        "reap_interval_s": Key(2.0, "How often the supervisor reaps expired leases.", type=float, min=0.1),
        "max_crashes": Key(3, "A task that took down this many workers, each soon after its claim while other "
                              "tasks completed and no other worker died, is a poison pill: it stays FAILED "
                              "(poison_pill). Other crashes (a killed worker) do not use up the task's attempts.",
                           min=1, max=100),
        "poison_window_s": Key(30.0, "How soon after its claim a worker's death implicates the task "
                                     "(for an expired lease: after its last renewal).", type=float, min=0),
    }),
    "store": Section("The store itself (the queue's settings are under [queue]).", {
        "backend": Key("sqlite", "Where the fleet's state lives: 'sqlite' (the file [paths] db, one host) or "
                                 "'postgresql' (a shared server, [store] dsn: a fleet on several hosts).",
                       choices=("sqlite", "postgresql")),
        "dsn": Key("", "The PostgreSQL server for backend = 'postgresql', e.g. "
                       "'postgresql://fleet@db.lan:5432/fleet', without a password: libpq reads it from "
                       "~/.pgpass or PGPASSWORD, or put the whole DSN in the secrets file or the environment "
                       "as FLEET_STORE_DSN (which wins over this key)."),
        "schema": Key("fleet", "The PostgreSQL schema the store lives in (backend = 'postgresql'): several fleets "
                               "may share one database under different schemas."),
        "integrity_check_interval_s": Key(
            3600.0, "How often the supervisor runs a quick integrity check of the store (it also runs one at "
                    "start). On damage it stops claiming: workers are parked and a critical alert names the "
                    "backup to restore. 0 checks only at start.", type=float, min=0),
    }),
    "supervisor": Section("Process supervision.", {
        "backoff_initial_s": Key(1.0, "First respawn delay after a worker dies.", type=float, min=0),
        "backoff_max_s": Key(60.0, "Longest respawn delay.", type=float, min=0),
        "backoff_reset_s": Key(60.0, "Healthy uptime after which the respawn delay resets.", type=float, min=0),
        "crash_loop_count": Key(5, "Crashes of one role within crash_loop_window_s mark it flapping.", min=1),
        "crash_loop_window_s": Key(60.0, "Window for crash_loop_count.", type=float, min=1),
        "heartbeat_timeout_s": Key(120.0, "A worker with no heartbeat or progress this long is replaced.", type=float, min=1),
        "heartbeat_interval_s": Key(5.0, "How often workers heartbeat.", type=float, min=0.1),
        "stop_timeout_s": Key(30.0, "On stop, how long running tasks may finish before they are released.", type=float, min=0),
        "kill_grace_s": Key(5.0, "After SIGTERM to a stalled worker, how long before SIGKILL.", type=float, min=0),
        "status_interval_s": Key(10.0, "How often STATUS.md and liveness samples are written.", type=float, min=0.5),
        "scale_up_depth": Key(20, "Pending tasks for a role above which an extra worker starts (0 disables scaling).", min=0),
        "scale_up_after_s": Key(30.0, "How long the depth must stay above scale_up_depth.", type=float, min=0),
        "scale_max_extra": Key(2, "Most extra workers per role.", min=0, max=64),
        "scale_idle_s": Key(120.0, "An extra worker idle this long is stopped.", type=float, min=1),
        "services": Key(["hw_supervisor", "dashboard"], "Managed services started with the fleet (absent modules are skipped).",
                        type=list),
    }),
    "skills": Section("Skill loading.", {
        "extra_paths": Key([], "More directories to load skills from.", type=list),
        "default_timeout_s": Key(600.0, "Hard timeout of a skill that declares none.", type=float, min=1),
    }),
    "skills.timeouts": Section(
        "Per-skill hard timeouts in seconds (skill = seconds), overriding the skill's TIMEOUT_S.",
        values=Key(600.0, "timeout in seconds", type=float, min=1),
    ),
    # -- skills library (fleet/skills/*.py, fleet/rag.py) ----------------------
    "skills.code_review": Section("code_review: model review of a file or git diff against a checklist.", {
        "max_input_chars": Key(60000, "Longest file or diff sent to the model (longer input is cut, and the review says so).",
                               min=1000),
        "ask_before_filing_critical": Key(True, "Ask a person (WAITING_HUMAN) before filing a review with critical findings."),
    }),
    "skills.code_quality": Section("code_quality: static metrics (no model).", {
        "max_complexity": Key(10, "Flag functions whose cyclomatic complexity is above this.", min=1),
        "max_function_lines": Key(60, "Flag functions longer than this many lines.", min=1),
    }),
    "skills.summarize": Section("summarize / synthesize / flashcard: how much text is read and sent to a model.", {
        "max_input_chars": Key(200000, "Most characters read from a file, folder or URL.", min=1000),
        "chunk_chars": Key(12000, "Text above this is summarised in chunks, then the chunk summaries combined.", min=500),
        "max_chunks": Key(16, "Most chunks summarised (the rest is left out and the result says so).", min=1),
        "extractive_sentences": Key(7, "Sentences kept by the extractive fallback (no model reachable).", min=1),
    }),
    "skills.rag": Section("rag_index / rag_query: the SQLite FTS5 retrieval index.", {
        "db": Key("rag.db", "Index file, relative to the knowledge folder (its own database, not the fleet's)."),
        "chunk_chars": Key(1500, "Target chunk size in characters (chunks break on line boundaries).", min=200),
        "overlap_lines": Key(3, "Lines repeated between neighbouring chunks.", min=0),
        "max_file_bytes": Key(2000000, "Larger files are skipped.", min=1024),
        "extensions": Key([], "File suffixes indexed (empty: common text and code files).", type=list),
    }),
    "skills.arxiv": Section("arxiv_fetch: the arXiv API.", {
        "api_url": Key("https://export.arxiv.org/api/query", "arXiv API query endpoint."),
        "max_results": Key(10, "Papers per fetch unless the task says otherwise.", min=1, max=100),
        "timeout_s": Key(30.0, "Request timeout.", type=float, min=1),
    }),
    "skills.research_loop": Section("research_loop: iterative web research (search, read, cite, judge).", {
        "max_rounds": Key(3, "Most search rounds unless the task says otherwise.", min=1, max=20),
        "sources_per_round": Key(3, "New pages fetched and read per round.", min=1, max=10),
        "search_results": Key(8, "Search results asked for per round (the best unread ones are fetched).",
                              min=1, max=50),
        "max_source_chars": Key(8000, "Most characters of each page sent to the model.", min=500),
    }),
    "skills.plan_workload": Section("plan_workload: goal -> tasks with dependencies.", {
        "max_tasks": Key(8, "Most tasks in one plan.", min=1, max=500),
        "allowed_skills": Key([], "Skills a plan may use (empty: every installed skill but plan_workload).", type=list),
    }),
    "skills.memory_optimizer": Section("memory_optimizer: fleet memory care.", {
        "rss_limit_mb": Key(1024.0, "Workers above this RSS are asked to recycle between tasks.", type=float, min=1),
        "model_idle_s": Key(300.0, "A loaded model unused this long (and not the tier or conductor model) is unloaded.",
                            type=float, min=0),
        "keep_models": Key([], "Models never unloaded by optimize.", type=list),
        "min_available_mb": Key(512.0, "monitor: available RAM under this is memory pressure (0: RSS only).",
                                type=float, min=0),
        "monitor_cooldown_s": Key(60.0, "monitor: least time between two actions under continued pressure.",
                                  type=float, min=0),
    }),
    "search": Section("web_search: the search provider. Brave and Tavily read BRAVE_API_KEY / TAVILY_API_KEY "
                      "from the secrets file.", {
        "provider": Key("duckduckgo", "Search provider.", choices=("searxng", "brave", "tavily", "duckduckgo")),
        "searxng_url": Key("", "Your SearxNG instance (JSON format enabled), e.g. http://localhost:8888."),
        "brave_url": Key("https://api.search.brave.com/res/v1/web/search", "Brave Search API endpoint."),
        "tavily_url": Key("https://api.tavily.com/search", "Tavily search endpoint."),
        "duckduckgo_url": Key("https://html.duckduckgo.com/html/", "DuckDuckGo HTML endpoint."),
        "max_results": Key(10, "Results per search unless the task says otherwise.", min=1, max=50),
        "timeout_s": Key(20.0, "Timeout of each read of a web request made by skills (the whole request: 3 times it).",
                         type=float, min=1),
        "user_agent": Key("fleet-agent/0.1 (local research assistant)", "User-Agent sent by web skills."),
    }),
    "knowledge": Section("The knowledge folder: what skills produce, and how long it is kept.", {
        "retention_days": Key(90.0, "memory_optimizer compact deletes artifacts older than this in prune_dirs "
                              "(0 keeps everything).", type=float, min=0),
        "prune_dirs": Key(["code_reviews", "fma_reviews", "quality/reviews", "security/reviews", "security/audits", "summaries",
                           "syntheses", "flashcards", "research/search", "research/arxiv", ".pending"],
                          "Knowledge sub-folders whose old files may be pruned.", type=list),
    }),
    # -- code-factory workflows (fleet/workflow/) -----------------------------
    "workflow": Section("Code-factory workflows (lead_client workflow): plan, human gate, execute, cross-model "
                        "review, gates, learn. Models are 'provider' or 'provider/model' ([providers.NAME]).", {
        "planner": Key("", "Who writes the plan (empty: the first provider of [models] chain)."),
        "executor": Key("", "Who writes the diff (empty: the first provider of [models] chain)."),
        "reviewer": Key("", "Who reviews the diff: must differ from the executor in provider or model, else "
                            "a workflow refuses to start (empty: the second provider of [models] chain)."),
        "learner": Key("", "Who extracts lessons after a rejection or a failed gate (empty: the planner)."),
        "handoffs": Key(3, "Review rejections (each swaps executor and reviewer) before the workflow fails.",
                        min=0, max=20),
        "max_attempts": Key(3, "Diffs the executor may write (a diff that does not apply or fails a gate "
                               "uses one) before the workflow fails.", min=1, max=20),
        "test_command": Key("", "The repository's test command run as a gate (e.g. 'pytest -q'; empty: no test "
                                "gate); `workflow start --test-command` sets it per workflow."),
        "gate_timeout_s": Key(300.0, "Longest a gate (ruff, bandit, the tests) may run.", type=float, min=1),
        "budget_usd": Key(0.0, "Default budget of one workflow, all phases and models (0: none).", type=float,
                          min=0),
        "max_file_bytes": Key(20000, "Largest part of one file the executor is shown.", min=100),
        "worktrees": Key("workflows", "Where the workflows' git worktrees live (under the fleet home)."),
    }),
    # -- model routing (fleet/skills/_models.py, fleet/providers/) ------------
    "models": Section("Model routing: which providers serve model calls, in what order, and how failures are handled.", {
        "chain": Key(["ollama", "claude"], "Default fallback chain of [providers.NAME] tried in order.", type=list),
        "local_model": Key("qwen3:8b", "Local model used when hw_state.json is missing or stale (else the tier's model)."),
        "conductor_provider": Key("ollama", "Provider that parses `task \"...\"` instructions into tasks."),
        "conductor_model": Key("qwen3:4b", "Model used for intent parsing (empty: the provider's model)."),
        "conductor_prompt_tokens": Key(1500, "Most tokens (estimated at 3.5 characters each) of the conductor's "
                                             "system prompt: the skill list is cut to the likeliest candidates "
                                             "so it fits a small local server's context (4,096 tokens).",
                                       min=200),
        "intent_min_confidence": Key(0.35, "Below this the offline intent matcher refuses and lists candidates.",
                                     type=float, min=0, max=1),
        "max_tokens": Key(1024, "Default output token limit of a call.", min=1),
        "breaker_failures": Key(3, "Consecutive failures that open a provider's circuit breaker. The breaker "
                                   "judges the server, not one request: connection failures, timeouts, 401/403 "
                                   "and 5xx that say the server is unwell (502/503/504/529, a 500 that does not "
                                   "blame the request) count; a request-specific rejection (400/422, a context "
                                   "overflow, a grammar or format failure, a 500 saying the request could not "
                                   "be satisfied) does not, and any answer from the server resets the count.",
                                min=1),
        "breaker_open_s": Key(30.0, "How long an open breaker refuses calls before one probe is let through.",
                              type=float, min=0.1),
        "retry_after_default_s": Key(30.0, "Cool-down after a 429 without a Retry-After header.", type=float, min=0),
        "retry_after_min_s": Key(1.0, "Shortest honoured Retry-After.", type=float, min=0),
        "retry_after_max_s": Key(120.0, "Longest honoured Retry-After.", type=float, min=0),
        "wait_in_call_s": Key(10.0, "When the providers are only busy (a 429 cool-down, rate headroom, an open "
                                    "breaker), a call sleeps at most this long for the first to free up; "
                                    "beyond it a fleet task is given back to the queue until then.",
                              type=float, min=0),
        "max_wait_s": Key(600.0, "Patience: how long a task may wait in all for a busy provider (rescheduled for "
                                 "the time it frees up, without using an attempt) before it fails with the "
                                 "reason. A call outside a task waits at most min(this, wait_in_call_s).",
                          type=float, min=0),
    }),
    "models.skill_chains": Section(
        "Per-skill fallback chains (skill = [provider names]) overriding [models] chain.",
        values=Key([], "provider names in order", type=list),
    ),
    "models.tiers": Section(
        "Local model tiers the hardware supervisor chooses from (hw_state.json tier): the largest tier whose "
        "vram_gb (+ [thermal] vram_margin_pct) fits free VRAM plus what the model server already holds; "
        "the cpu tier is the fallback (eco mode, training, no GPU, too hot). The choice is never written here.",
        tables={
            "model": Key("", "Model name on the local model server (e.g. qwen3:8b)."),
            "vram_gb": Key(0.0, "VRAM the model needs loaded, in GB (required for every tier but cpu).",
                           type=float, min=0),
            "num_gpu": Key(-1, "Layers on the GPU (-1: the server's default; the cpu tier always uses 0).", min=-1),
            "enabled": Key(True, "Set false to leave a tier out without deleting it."),
        },
        defaults={
            "large": {"model": "qwen3:8b", "vram_gb": 7.5, "num_gpu": -1, "enabled": True},
            "medium": {"model": "qwen3:4b", "vram_gb": 4.5, "num_gpu": -1, "enabled": True},
            "cpu": {"model": "qwen3:4b", "vram_gb": 0.0, "num_gpu": 0, "enabled": True},
        },
    ),
    "providers": Section(
        "Model providers by name; `type` is a module in fleet/providers/ (ollama, claude, openai_compatible). "
        "Add [providers.NAME] tables for more (e.g. a vLLM server with type = \"openai_compatible\").",
        tables={
            "type": Key("openai_compatible", "Provider type: ollama | claude | openai_compatible."),
            "base_url": Key("", "Server URL (empty: the type's default)."),
            "model": Key("", "Model name (ollama: empty means the hardware tier's model)."),
            "api_key_env": Key("", "Name of the secret holding the API key (environment, else the secrets file)."),
            "timeout_s": Key(120.0, "Request timeout in seconds.", type=float, min=0.1),
            "rpm": Key(0, "Requests per minute the provider allows (0: no limit).", min=0),
            "rpd": Key(0, "Requests per day the provider allows (0: no limit).", min=0),
            "headroom": Key(0.8, "Fraction of rpm/rpd the fleet uses.", type=float, min=0.01, max=1),
            "min_spacing_ms": Key(300, "Least time between two requests to this provider, fleet-wide.", min=0),
            "locality": Key("auto", "Whether calls leave the machine (cloud providers are refused offline); "
                            "auto: ollama local, claude cloud, others by host.", choices=("auto", "local", "cloud")),
            "keep_alive": Key("10m", "ollama: how long the model stays loaded after a call."),
            "num_ctx": Key(0, "ollama: context window (0: the model's default).", min=0),
            "num_gpu": Key(-1, "ollama: layers on the GPU (-1: the tier's choice or Ollama's default).", min=-1),
            "stream": Key(False, "Stream the response (ollama NDJSON / OpenAI SSE) instead of one JSON reply."),
            "cache_system": Key(True, "claude: mark the system prompt for prompt caching."),
        },
        defaults={
            "ollama": {"type": "ollama", "base_url": "http://localhost:11434", "model": "", "api_key_env": "",
                       "min_spacing_ms": 0, "timeout_s": 300.0},
            "claude": {"type": "claude", "base_url": "https://api.anthropic.com", "model": "claude-sonnet-4-6",
                       "api_key_env": "ANTHROPIC_API_KEY", "rpm": 50, "rpd": 0},
        },
    ),
    "prices": Section(
        "Prices in USD per million tokens by model name (longest prefix wins); local providers cost 0 "
        "unless their model is listed.",
        tables={
            "input": Key(0.0, "Input tokens.", type=float, min=0),
            "output": Key(0.0, "Output tokens.", type=float, min=0),
            "cache_read": Key(0.0, "Prompt-cache reads.", type=float, min=0),
            "cache_write": Key(0.0, "Prompt-cache writes.", type=float, min=0),
        },
        defaults={
            "claude-opus": {"input": 5.0, "output": 25.0, "cache_read": 0.5, "cache_write": 6.25},
            "claude-opus-4-0": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
            "claude-opus-4-1": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
            "claude-opus-4-2": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write": 18.75},
            "claude-sonnet": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
            "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_read": 0.1, "cache_write": 1.25},
            "claude-3-5-haiku": {"input": 0.8, "output": 4.0, "cache_read": 0.08, "cache_write": 1.0},
            "claude": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write": 3.75},
            "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cache_read": 0.075, "cache_write": 0.0},
            "gpt-4o": {"input": 2.5, "output": 10.0, "cache_read": 1.25, "cache_write": 0.0},
        },
    ),
    "budgets": Section("Spending limits on model calls, fleet-wide and per skill ([budgets.skills.NAME]).", {
        "enforcement": Key("warn", "warn: log and alert, the call goes ahead; block: the call fails and so does the "
                           "task (\"budget exceeded for skill X\").", choices=("warn", "block")),
        "period": Key("month", "Budget period (UTC calendar).", choices=("day", "week", "month")),
        "global_usd": Key(0.0, "Fleet-wide spend limit per period in USD (0: none).", type=float, min=0),
        "global_calls": Key(0, "Fleet-wide model calls per period (0: none).", min=0),
    }),
    "budgets.skills": Section(
        "Per-skill budgets: [budgets.skills.NAME] tables.",
        tables={
            "limit_usd": Key(0.0, "Spend limit per period in USD (0: none).", type=float, min=0),
            "max_calls": Key(0, "Successful model calls per period (0: none).", min=0),
            "period": Key("", "day | week | month (empty: [budgets] period).", choices=("", "day", "week", "month")),
            "enforcement": Key("", "warn | block (empty: [budgets] enforcement).", choices=("", "warn", "block")),
        },
    ),
    "backup": Section("Backups (lead_client.py backup, scripts/backup.sh, the backup skill).", {
        "keep": Key(10, "How many backups to keep; older ones are deleted after a new one is verified.",
                    min=1, max=10000),
    }),
    "service": Section("The auto-start service written by `lead_client.py install-service`.", {
        "name": Key("fleet", "Service name: systemd user unit <name>.service, launchd label local.<name>, "
                    "Task Scheduler task <name>."),
        "restart_sec": Key(5.0, "Seconds the service manager waits before restarting a failed supervisor.",
                           type=float, min=0),
        "start_limit_burst": Key(5, "Restarts allowed within start_limit_interval_s before giving up.", min=1),
        "start_limit_interval_s": Key(300.0, "Window for start_limit_burst.", type=float, min=1),
    }),
    "launcher": Section("The desktop launcher (python launcher/launcher.py, fleet-launcher).", {
        "profile": Key("full", "Which tabs show by default: minimal (fleet, tasks, comm, logs, settings), research "
                       "(+ hardware, usage, knowledge, reviews) or full (every tab and module).",
                       choices=("minimal", "research", "full")),
        "refresh_s": Key(2.0, "Seconds between refreshes of the visible tab.", type=float, min=0.2, max=300),
        "hub_registry": Key("", "The module hub: URL or path of a registry.json listing name, version, url and "
                            "sha256 of each module (empty: no hub)."),
        "modules_dir": Key("launcher_modules", "Where hub-installed modules are written (relative to the fleet "
                           "home)."),
    }),
    "launcher.tabs": Section(
        "Show (true) or hide (false) a launcher tab or module by name, over the profile's choice.",
        values=Key(True, "show this tab", type=bool),
    ),
    "preflight": Section("Checks run by `lead_client.py preflight`.", {
        "min_free_disk_mb": Key(1024, "Least free disk space (MB) where the database lives.", min=0),
        "timeout_s": Key(3.0, "Timeout of each network check (dashboard, model providers).", type=float, min=0.1),
    }),
    "schedule": Section(
        "Scheduled runs: each [schedule.NAME] table enqueues its skill on a cron line or a fixed interval. The "
        "supervisor enqueues each slot once, keyed by (schedule, slot), however many supervisors or hosts run; "
        "`lead_client schedule list|run|pause|resume` and the dashboard show next and last runs.",
        tables={
            "skill": Key("", "The skill each run enqueues (required)."),
            "payload": Key({}, "The task payload (a table).", type=dict),
            "priority": Key(5, "Task priority 1-10.", min=1, max=10),
            "cron": Key("", "Five cron fields (minute hour day-of-month month day-of-week) read in `timezone`; "
                            "set cron or every, not both."),
            "every": Key("", "A fixed interval instead of cron: \"90s\", \"15m\", \"6h\", \"1d\" (slots aligned "
                             "to the epoch, in UTC)."),
            "timezone": Key("", "IANA zone the cron fields are read in (empty: the host's zone, stated in "
                                "`schedule list`). Hosts sharing a store should state it so they agree."),
            "catch_up": Key("once", "Slots missed while the fleet was down: once runs the latest once at start, "
                                    "none skips them.", choices=("once", "none")),
            "enabled": Key(True, "false keeps the entry but never runs it."),
        },
        examples="""\
# [schedule.nightly_backup]
# skill = "backup"
# cron = "30 2 * * *"
# catch_up = "once"
#
# [schedule.nightly_report]
# skill = "report"
# cron = "0 6 * * *"
# payload = { days = 1 }
#
# [schedule.morning_briefing]
# skill = "briefing"
# cron = "0 7 * * 1-5"
# timezone = "Europe/Berlin"
# catch_up = "none"
#
# [schedule.weekly_compact]
# skill = "memory_optimizer"
# cron = "0 4 * * 0"
# payload = { action = "compact" }
#
# [schedule.memory_watch]
# skill = "memory_optimizer"
# every = "1h"
# payload = { action = "monitor", duration_s = 3540 }
#
# [schedule.key_rotation_check]
# skill = "secret_rotate"
# cron = "0 8 * * 1"
# payload = { action = "check" }""",
    ),
    "notify": Section(
        "Notifications: alerts at or above a target's min_severity (and their resolutions) go to each "
        "[notify.NAME] target; the URL lives in the secrets file under the name url_secret "
        "(`lead_client.py secret set DISCORD_WEBHOOK_URL -`). One supervisor of several sends. A failing target is "
        "retried with backoff in the background and raises one warning alert (notify_failed:NAME), never sent to "
        "itself.", {
            "heartbeat_url_secret": Key("", "Deadman switch: the secret holding a healthchecks-style URL (e.g. "
                                            "https://hc-ping.com/UUID) the supervisor GETs every "
                                            "heartbeat_interval_s; set the check's period and grace there, and it "
                                            "tells you when the pings stop (machine down). Empty: no ping."),
            "heartbeat_interval_s": Key(300.0, "Seconds between heartbeat pings.", type=float, min=5),
            "check_interval_s": Key(1.0, "How often the supervisor looks for new alerts to send.", type=float,
                                    min=0.1, max=60),
            "timeout_s": Key(10.0, "Timeout of each request to a target.", type=float, min=0.5),
            "retry_initial_s": Key(5.0, "First retry delay of a failed send; doubles per attempt, with jitter.",
                                   type=float, min=0.01),
            "retry_max_s": Key(600.0, "Longest retry delay.", type=float, min=0.01),
            "max_attempts": Key(8, "Attempts per message before it is dropped (the failure alert stays open).",
                                min=1, max=1000),
        },
        tables={
            "kind": Key("webhook", "discord | slack | ntfy | webhook (a JSON POST of the alert).",
                        choices=("discord", "slack", "ntfy", "webhook")),
            "url_secret": Key("", "Name of the secret holding the webhook or ntfy topic URL (required)."),
            "min_severity": Key("warning", "Least severity sent: info | warning | critical.",
                                choices=("info", "warning", "critical")),
            "cooldown_s": Key(900.0, "Least time between two sends of one dedup key to this target.", type=float,
                              min=0),
            "resolutions": Key(True, "Also send when an alert is resolved (acknowledged)."),
            "briefings": Key(True, "Also send the morning briefing (skill briefing)."),
            "enabled": Key(True, "false keeps the entry but sends nothing."),
        },
        examples="""\
# [notify.discord]
# kind = "discord"
# url_secret = "DISCORD_WEBHOOK_URL"
# min_severity = "warning"
#
# [notify.phone]
# kind = "ntfy"
# url_secret = "NTFY_TOPIC_URL"     # e.g. https://ntfy.sh/my-fleet-topic
# min_severity = "critical\"""",
    ),
    "dashboard": Section("The web dashboard and JSON API (python fleet/dashboard.py).", {
        "enabled": Key(True, "Run the dashboard as a managed service of the supervisor."),
        "host": Key("127.0.0.1", "Address to bind. Anything but loopback makes every endpoint require the token."),
        "port": Key(5555, "TCP port.", min=1, max=65535),
        "read_only": Key(False, "Hide and refuse every mutation (dispatch, retry, cancel, fleet control)."),
        "token_file": Key("dashboard.token", "File (mode 0600, relative to the fleet home) holding the access token; "
                          "created on first start. The secret FLEET_DASHBOARD_TOKEN overrides it."),
        "session_hours": Key(12.0, "How long a browser sign-in lasts.", type=float, min=0.1),
        "threads": Key(8, "Threads serving plain requests (live streams get their own on top).", min=1, max=256),
        "max_streams": Key(32, "Most concurrent live streams (/api/stream) of signed-in callers (token or "
                               "browser sign-in); more are refused with 503.", min=1, max=1000),
        "max_anonymous_streams": Key(8, "Most concurrent live streams without a token (reads are open on "
                                        "loopback), counted apart from max_streams so that another local "
                                        "process cannot take every slot and lock the operator out.",
                                     min=0, max=1000),
        "keepalive_s": Key(15.0, "Seconds between keep-alive comments on an idle live stream.", type=float, min=1),
        "poll_s": Key(0.25, "How often the live stream checks the store for new events.", type=float,
                      min=0.02, max=5),
    }),
    "hardware": Section("The hardware supervisor (python fleet/hw_supervisor.py), which writes hw_state.json.", {
        "interval_s": Key(5.0, "Seconds between hw_state.json writes; readers call data older than 3 intervals stale.",
                          type=float, min=0.5, max=300),
        "history_interval_s": Key(60.0, "One hardware sample per this many seconds is kept in the database.",
                                  type=float, min=5),
        "history_retention_h": Key(24.0, "Hours of hardware samples kept.", type=float, min=1),
        "nvml_retry_max_s": Key(60.0, "Longest wait between NVML re-initialisations after a GPU error.",
                                type=float, min=1),
        "alert_repeat_s": Key(300.0, "Least time between two bumps of the same open GPU-temperature alert.",
                              type=float, min=5),
    }),
    "thermal": Section("Thermal and VRAM limits behind the model-tier choice (hysteresis against flapping).", {
        "gpu_max_sustained_c": Key(75.0, "Sustained GPU temperature limit (°C); the effective limit is "
                                   "min(GPU slowdown threshold - slowdown_margin_c, this).", type=float, min=30, max=120),
        "slowdown_margin_c": Key(5.0, "Degrees under the GPU's own slowdown threshold treated as the limit.",
                                 type=float, min=0),
        "hot_samples": Key(2, "Consecutive samples at or over the limit before stepping down one tier.", min=1),
        "escalate_c": Key(5.0, "While already hot, another step down needs the temperature this much higher "
                          "than at the last step.", type=float, min=0),
        "cool_delta_c": Key(8.0, "Degrees under the limit that count as cooled.", type=float, min=0),
        "cool_hold_s": Key(60.0, "How long it must stay cooled before stepping back up one tier.", type=float, min=0),
        "min_change_interval_s": Key(120.0, "Least time between a tier change and a step up.", type=float, min=0),
        "vram_margin_pct": Key(20.0, "Headroom over a tier's vram_gb required for it to fit.", type=float, min=0),
        "vram_emergency_pct": Key(95.0, "A GPU this full (used/total %) while the tier no longer fits steps down "
                                  "at once.", type=float, min=50, max=100),
        "vram_down_samples": Key(2, "Samples a tier must not fit before stepping down (without an emergency).", min=1),
        "vram_up_hold_s": Key(60.0, "How long a bigger tier must fit before stepping up to it.", type=float, min=0),
    }),
    "filesystem.zones": Section(
        "Filesystem zones ([filesystem.zones.NAME]): folders skills may use and how. None declared: every path "
        "is allowed. Enforced by fleet/fs_guard.py on every file a skill reads or writes through its helpers.",
        tables={
            "path": Key("", "The folder (relative paths are under the fleet home)."),
            "access": Key("read", "What skills may do there.", choices=("read", "read_write")),
        },
    ),
    "filesystem.overrides": Section(
        "Per-skill zones ([filesystem.overrides.SKILL]): the skill may use only these zones; access = \"full\" "
        "(or \"read_write\") lets it write in them even where the zone is read-only.",
        tables={
            "zones": Key([], "Names of [filesystem.zones] this skill may use.", type=list),
            "access": Key("", "Empty: each zone's own access; read_write or full: write in every listed zone.",
                          choices=("", "read", "read_write", "full")),
        },
    ),
    "filesystem.enterprise": Section("How the filesystem guard treats a violation.", {
        "enforce": Key(False, "true: refuse a violating read or write (the task fails with the reason); false: "
                       "log it to logs/fs_access.log and let it through."),
        "deny_by_default": Key(False, "A path in no declared zone is a violation."),
        "log_all_access": Key(False, "Log every skill file access (allowed ones too) to logs/fs_access.log."),
    }),
    "air_gap": Section("Air-gap mode ([fleet] air_gap_mode = true) runs only the skills named here.", {
        "allowed_skills": Key([], "Skills that may run in air-gap mode (deny by default): tasks of any other "
                              "skill are refused at dispatch and failed by the worker, with the reason.", type=list),
    }),
    "model_server": Section("Care of the local model server (Ollama API) by the hardware supervisor. Its URL is "
                            "[providers.ollama] base_url; `url` here is used only without one.", {
        "enabled": Key(True, "List loaded models, keep the tier and conductor models warm, repair a server the "
                       "fleet started."),
        "url": Key("http://127.0.0.1:11434", "Model server URL when no ollama provider is configured."),
        "keep_alive": Key("30m", "keep_alive sent with each warm-up load."),
        "keepalive_interval_s": Key(240.0, "Seconds between keep-alive pings of a loaded model.", type=float, min=5),
        "conductor_interval_s": Key(60.0, "Seconds between checks that the conductor model is loaded.",
                                    type=float, min=5),
        "probe_timeout_s": Key(2.0, "Timeout of each /api/ps probe.", type=float, min=0.1),
        "unhealthy_probes": Key(3, "Failed API probes in a row (port answering) before a fleet-started server "
                                "is restarted.", min=1),
        "start_command": Key([], "Command that starts the server, e.g. [\"ollama\", \"serve\"]; empty: the fleet "
                             "never starts (nor restarts) one. Only a server the fleet started is ever signalled.",
                             type=list),
        "stop_timeout_s": Key(10.0, "Seconds between TERM and KILL when restarting a fleet-started server.",
                              type=float, min=0),
        "restart_min_interval_s": Key(60.0, "Least time between two restarts.", type=float, min=0),
        "stop_with_fleet": Key(True, "Stop the fleet-started server when the hardware supervisor stops cleanly."),
    }),
}
