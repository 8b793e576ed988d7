/* Overview page: queue counts, agents, sparklines, alerts, activity, fleet controls. */
"use strict";
(() => {
  const { el, get, post, act, fill, age, when, badge, chart, clock, features } = Fleet;
  const SEVERITY = { critical: 0, warning: 1, info: 2 };
  const STATUSES = ["PENDING", "RUNNING", "WAITING_HUMAN", "DONE", "FAILED", "CANCELLED"];

  async function refreshStatus() {
    const s = await get("/api/status");
    document.getElementById("counts").replaceChildren(...STATUSES.map((st) =>
      el("a", { class: "count st-" + st.toLowerCase(), href: "/tasks?status=" + st, dataset: { status: st } },
        el("b", {}, String(s.counts[st] || 0)), el("span", {}, st.replace("_", " ").toLowerCase()))));
    const extra = ["ready now: " + s.ready_depth];
    if (s.oldest_pending_age_s !== null) extra.push("oldest pending: " + age(s.oldest_pending_age_s));
    document.getElementById("queue-extra").textContent = extra.join(" · ");
    const stale = (s.stale_config || []).length;
    document.getElementById("config-hash").textContent = s.config_hash
      ? "config " + s.config_hash + (stale ? " · " + stale + " worker(s) on an older fleet.toml (lead_client.py restart --stale)" : "")
      : "";
    const state = document.getElementById("fleet-state");
    let label = s.paused ? "paused" : "running";
    if (s.supervisor && !s.supervisor.running) label = "supervisor not running";
    state.textContent = label;
    state.className = "badge " + (s.paused || (s.supervisor && !s.supervisor.running) ? "st-failed" : "st-done");
    const several = renderHosts(s);
    const shown = hostFilter.value ? s.agents.filter((a) => (a.host || s.this_host) === hostFilter.value) : s.agents;
    const rows = shown.map((a) => el("tr", { dataset: { agent: a.name, host: a.host || "" } },
      el("td", {}, a.name), el("td", {}, a.role), el("td", {}, a.alive || !LIVE.includes(a.status) ? badge(a.status) : lostBadge(a),
        a.stale_config ? [" ", el("span", { class: "badge st-waiting_human", title: "runs an older fleet.toml than " + s.config_hash + "; lead_client.py restart --stale" }, "stale config")] : null),
      el("td", { class: a.alive ? "" : "error" }, age(a.heartbeat_age_s)),
      el("td", {}, a.current_task ? el("a", { href: "/tasks/" + a.current_task }, "#" + a.current_task) : "–"),
      el("td", {}, String(a.restarts_1h)),
      el("td", { class: "small" }, a.last_exit ? when(a.last_exit.at) + " " + exitText(a.last_exit) : "–"),
      el("td", { class: "host-col", hidden: !several }, a.host || ""),
      el("td", { class: "mut" }, agentButtons(a))));
    fill(document.querySelector("#agents tbody"), rows);
    document.getElementById("missing").textContent = s.missing_workers.length
      ? "Configured but not running: " + s.missing_workers.join(", ") : "";
  }

  // Several hosts share the store: a Hosts table, a host column and a host filter.
  const LIVE = ["starting", "idle", "busy", "paused", "running", "stopping"];
  const hostFilter = document.getElementById("host-filter");
  hostFilter.addEventListener("change", refreshStatus);

  function renderHosts(s) {
    const hosts = s.hosts || [];
    const several = hosts.length > 1;
    document.getElementById("hosts").hidden = !(several || hosts.some((h) => h.state === "lost"));
    document.querySelector("#agents thead .host-col").hidden = !several;
    fill(document.querySelector("#hosts-table tbody"), hosts.map((h) => el("tr", { dataset: { host: h.host, state: h.state } },
      el("td", {}, h.host + (h.this_host ? " (this host)" : "")),
      el("td", {}, el("span", { class: "badge " + ({ up: "st-done", lost: "st-failed" }[h.state] || "st-cancelled") }, h.state)),
      el("td", {}, h.running + "/" + h.agents), el("td", {}, h.tier || "–"),
      el("td", {}, h.last_seen_age_s === null ? "–" : age(h.last_seen_age_s) + " ago"))));
    const want = hosts.map((h) => h.host);
    const have = [...hostFilter.options].slice(1).map((o) => o.value);
    if (want.join("\n") !== have.join("\n")) {
      const keep = hostFilter.value;
      hostFilter.replaceChildren(el("option", { value: "" }, "all hosts"), ...want.map((h) => el("option", { value: h }, h)));
      hostFilter.value = want.includes(keep) ? keep : "";
    }
    return several;
  }

  function lostBadge(a) {
    return el("span", { class: "badge st-failed", title: "no heartbeat for " + age(a.heartbeat_age_s) }, "lost (was " + a.status + ")");
  }

  function exitText(ex) {
    const d = ex.detail || {};
    const bits = [];
    if (d.intent) bits.push(d.intent);
    if (d.exit_code !== undefined && d.exit_code !== null) bits.push("exit " + d.exit_code);
    if (d.signal) bits.push("signal " + d.signal);
    return bits.join(", ") || ex.action;
  }

  function agentButtons(a) {
    if (a.role === "supervisor") return [];
    const out = [];
    if (features.control) {
      out.push(el("button", { class: "small", onclick: () => act(() => post("/api/fleet/worker/" + encodeURIComponent(a.name) + "/restart"), "Restart sent to " + a.name) }, "restart"));
      const paused = a.status === "paused";
      out.push(el("button", { class: "small", onclick: () => act(() => post("/api/fleet/worker/" + encodeURIComponent(a.name) + (paused ? "/resume" : "/pause")), (paused ? "Resume" : "Pause") + " sent to " + a.name) }, paused ? "resume" : "pause"));
    }
    return out;
  }

  async function refreshSparks() {
    /* the window starts on a bucket boundary: the same URL for five minutes, so the server's cache applies */
    const since = Math.floor((Date.now() / 1000 - 7200) / 300) * 300;
    const t = await get("/api/timeline?bucket_s=300&since=" + since + "&limit=1");
    const done = t.series.DONE, failed = t.series.FAILED;
    const labels = done.map((_, i) => clock(since + i * 300));
    chart(document.getElementById("spark-done"), done, { labels });
    chart(document.getElementById("spark-failed"), failed, { labels });
    document.getElementById("spark-done-n").textContent = done.reduce((a, b) => a + b, 0);
    document.getElementById("spark-failed-n").textContent = failed.reduce((a, b) => a + b, 0);
  }

  async function refreshAlerts() {
    const a = await get("/api/alerts");
    const list = document.getElementById("alerts");
    if (!a.alerts.length) { list.replaceChildren(el("li", { class: "muted" }, "No active alerts.")); return; }
    /* critical first, then warning, then info; newest first within a severity */
    const sorted = a.alerts.slice().sort((x, y) => ((SEVERITY[x.severity] ?? 3) - (SEVERITY[y.severity] ?? 3)) || (y.updated_at - x.updated_at));
    list.replaceChildren(...sorted.map((al) => el("li", { class: "alert sev-" + al.severity, dataset: { alertId: al.id } },
      el("span", { class: "badge sev-" + al.severity }, al.severity), " ",
      el("b", {}, al.component), ": ", al.message,
      al.occurrences > 1 ? el("span", { class: "muted" }, " ×" + al.occurrences) : null,
      el("span", { class: "muted small" }, " " + when(al.updated_at)), " ",
      el("button", { class: "small mut", onclick: () => act(() => post("/api/alerts/ack/" + al.id), "Alert acknowledged").then(refreshAlerts) }, "acknowledge"))));
  }

  async function refreshActivity() {
    /* task and operator events: agent state changes are the agents table's business */
    const a = await get("/api/activity?limit=25&exclude=" + NOISE.join(","));
    document.getElementById("activity").replaceChildren(...a.events.map((e) => el("li", { dataset: { action: e.action } },
      el("span", { class: "muted" }, when(e.ts)), " ", el("b", {}, e.action), " ",
      e.task_id ? el("a", { href: "/tasks/" + e.task_id }, "#" + e.task_id) : "", " ",
      el("span", { class: "muted" }, e.agent || e.actor))));
  }

  const NOISE = ["agent_status", "agent_start", "heartbeat"];

  async function refreshSchedules() {
    const s = await get("/api/schedules");
    document.getElementById("schedules-card").hidden = !s.schedules.length;
    fill(document.querySelector("#schedules tbody"), s.schedules.map((r) => {
      const last = r.last_run;
      return el("tr", { dataset: { schedule: r.name } },
        el("td", {}, r.name), el("td", {}, r.skill), el("td", { class: "small" }, r.when),
        el("td", {}, r.paused ? badge("paused") : (r.next_run ? when(r.next_run) : "–")),
        el("td", { class: "small" }, last ? [el("a", { href: "/tasks/" + last.task_id }, "#" + last.task_id), " ",
          badge(last.status), " ", when(last.at), last.error ? el("span", { class: "error" }, " " + last.error) : ""] : "never"));
    }));
  }

  function wireControls() {
    for (const b of document.querySelectorAll("#fleet-controls button")) {
      const what = b.dataset.act;
      b.addEventListener("click", async () => {
        if (what === "stop" && !confirm("Stop every worker? Running tasks get the stop timeout to finish.")) return;
        await act(() => post("/api/fleet/" + what), "Fleet " + what + " sent");
        refreshStatus();
      });
    }
  }

  Fleet.start(async () => {
    wireControls();
    await Promise.all([refreshStatus(), refreshSparks(), refreshAlerts(), refreshActivity(), refreshSchedules()]);
    Fleet.live(["task", "fleet"], refreshSchedules, 2000);
    Fleet.live(["task", "agent", "fleet"], refreshStatus, 1000);
    /* heavy aggregates: at most one refetch per few seconds however busy the queue is */
    Fleet.live(["task"], refreshSparks, 5000);
    Fleet.live(["alert"], refreshAlerts);
    Fleet.live(["task", "alert", "fleet"], refreshActivity, 2000);
    setInterval(() => { if (!document.hidden) refreshStatus(); }, 10000);  /* heartbeat ages move */
  });
})();
