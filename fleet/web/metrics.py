"""/metrics: Prometheus exposition from a custom collector that reads the
store (tasks by status and skill, completed/failed counters, durations,
restarts, queue depth, agents, alerts), hw_state (GPU temperature and VRAM)
and the usage ledger when kept.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from .api_status import EXIT_ACTIONS
from .common import doc

# The classic text format, which generate_latest writes and every Prometheus
# (and promtool) reads; prometheus_client's CONTENT_TYPE_LATEST names 1.0.0 now.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FleetCollector:
    """Reads current values on every scrape; keeps no state of its own."""

    def __init__(self, c):
        self.c = c

    def collect(self):
        c, store = self.c, self.c.store
        tasks = GaugeMetricFamily("fleet_tasks", "Tasks by status and skill", labels=["status", "skill"])
        for skill, by_status in sorted(store.counts_by_skill().items()):
            for status, n in sorted(by_status.items()):
                tasks.add_metric([status, skill], n)
        yield tasks
        completed = CounterMetricFamily("fleet_tasks_completed", "Tasks that became DONE, ever (kept by the store: "
                                        "never goes backwards when history is pruned)", labels=["skill"])
        failed = CounterMetricFamily("fleet_tasks_failed", "Tasks that became FAILED with their attempts used up, "
                                     "ever (a retried failure still counts)", labels=["skill"])
        for skill, totals in sorted(store.task_outcome_totals().items()):
            completed.add_metric([skill], totals["completed"])
            failed.add_metric([skill], totals["failed"])
        yield completed
        yield failed
        yield GaugeMetricFamily("fleet_queue_ready_depth", "Tasks claimable now", value=store.pending_depth())
        oldest = store.oldest_pending_age()
        yield GaugeMetricFamily("fleet_queue_oldest_pending_age_seconds", "Age of the oldest PENDING task",
                                value=oldest or 0.0)
        hist = HistogramMetricFamily("fleet_task_duration_seconds", "Run time of DONE tasks (last attempt)",
                                     labels=["skill"])
        for skill, h in sorted(store.task_duration_histogram().items()):
            buckets = [(str(b), n) for b, n in h["buckets"]] + [("+Inf", h["count"])]
            hist.add_metric([skill], buckets, h["sum"])
        yield hist
        restarts = CounterMetricFamily("fleet_worker_restarts", "Worker process exits seen by the supervisor",
                                       labels=["agent"])
        per_agent: dict[str, int] = {}
        for (agent, _), n in store.event_tally(EXIT_ACTIONS, 0).items():
            per_agent[agent] = per_agent.get(agent, 0) + n
        for agent, n in sorted(per_agent.items()):
            restarts.add_metric([agent], n)
        yield restarts
        agents = GaugeMetricFamily("fleet_agents", "Agents by status", labels=["status"])
        heartbeat = GaugeMetricFamily("fleet_agent_heartbeat_age_seconds", "Seconds since each agent's heartbeat",
                                      labels=["agent", "role"])
        by_status: dict[str, int] = {}
        now = time.time()
        for a in store.list_agents():
            by_status[a["status"]] = by_status.get(a["status"], 0) + 1
            heartbeat.add_metric([a["name"], a["role"]], max(0.0, now - a["last_heartbeat"]))
        for status, n in sorted(by_status.items()):
            agents.add_metric([status], n)
        yield agents
        yield heartbeat
        alerts = GaugeMetricFamily("fleet_alerts_active", "Unacknowledged alerts", labels=["severity"])
        sev: dict[str, int] = {"info": 0, "warning": 0, "critical": 0}
        for al in store.list_alerts(active_only=True, limit=10000):
            sev[al["severity"]] = sev.get(al["severity"], 0) + 1
        for s, n in sev.items():
            alerts.add_metric([s], n)
        yield alerts
        yield from self._hardware()
        from .api_usage import usage_metrics

        yield from usage_metrics(c)

    def _hardware(self):
        hw = self.c.read_hw()
        yield GaugeMetricFamily("fleet_hw_state_stale", "1 when hw_state.json is missing or old",
                                value=1.0 if hw.get("stale") else 0.0)
        temp = GaugeMetricFamily("fleet_gpu_temperature_celsius", "GPU temperature", labels=["gpu", "name"])
        used = GaugeMetricFamily("fleet_gpu_vram_used_bytes", "GPU memory in use", labels=["gpu", "name"])
        total = GaugeMetricFamily("fleet_gpu_vram_total_bytes", "GPU memory size", labels=["gpu", "name"])
        for g in hw.get("gpus") or []:
            labels = [str(g.get("index")), str(g.get("name") or "")]
            if g.get("temp_c") is not None:
                temp.add_metric(labels, float(g["temp_c"]))
            if g.get("vram_used_mb") is not None:
                used.add_metric(labels, float(g["vram_used_mb"]) * 2**20)
            if g.get("vram_total_mb") is not None:
                total.add_metric(labels, float(g["vram_total_mb"]) * 2**20)
        yield temp
        yield used
        yield total


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@doc("Prometheus metrics: tasks by status and skill, durations, restarts, queue depth, GPU, model usage",
     tag="meta", text=True)
def metrics():
    registry = current_app.extensions["fleet_metrics"]
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})


def install(app, c) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(c))
    app.extensions["fleet_metrics"] = registry
    app.register_blueprint(bp)
