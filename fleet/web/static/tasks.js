/* Tasks page: server-side filters and pagination, per-row actions and bulk
   actions over "all matching this filter" with the count confirmed. */
"use strict";
(() => {
  const { el, get, post, act, fill, when, badge, age } = Fleet;
  const form = document.getElementById("filters");
  const LIMIT = 50;
  let offset = 0, total = 0, items = [], applied = {}, sortKey = "id", sortDir = -1;  /* the server's order: newest first */
  const ACTION_WORDS = { retry: "Retry", cancel: "Cancel", requeue: "Requeue a copy of" };

  function dateToEpoch(value, endOfDay) {
    if (!value) return "";
    const d = new Date(value + "T00:00:00Z");
    return String(d.getTime() / 1000 + (endOfDay ? 86400 : 0));
  }

  function filterParams() {
    const f = new FormData(form);
    const p = new URLSearchParams();
    for (const k of ["status", "skill", "agent", "text"]) if (f.get(k)) p.set(k, f.get(k));
    if (f.get("since")) p.set("since", dateToEpoch(f.get("since"), false));
    if (f.get("until")) p.set("until", dateToEpoch(f.get("until"), true));
    return p;
  }

  function loadFromUrl() {
    const q = new URLSearchParams(location.search);
    for (const k of ["status", "skill", "agent", "text", "since", "until"]) {
      if (q.has(k) && form.elements[k]) form.elements[k].value = q.get(k);
    }
    offset = Math.max(0, parseInt(q.get("offset") || "0", 10) || 0);
  }

  function saveToUrl() {
    const f = new FormData(form);
    const p = new URLSearchParams();
    for (const [k, v] of f.entries()) if (v) p.set(k, v);
    if (offset) p.set("offset", offset);
    history.replaceState(null, "", location.pathname + (p.toString() ? "?" + p : ""));
  }

  function rowActions(t) {
    const out = [];
    const go = (what, msg) => act(() => post("/api/tasks/" + t.id + "/" + what), msg).then(refresh);
    if (["DONE", "FAILED", "CANCELLED"].includes(t.status)) out.push(el("button", { class: "small", onclick: () => go("retry", "Task " + t.id + " queued again") }, "retry"));
    if (["PENDING", "RUNNING", "WAITING_HUMAN"].includes(t.status) && !t.cancel_requested) out.push(el("button", { class: "small", onclick: () => go("cancel", "Cancel sent for task " + t.id) }, "cancel"));
    out.push(el("button", { class: "small", onclick: () => go("requeue", "A copy of task " + t.id + " was queued") }, "requeue"));
    return out;
  }

  async function refresh() {
    const p = filterParams();
    p.set("limit", LIMIT);
    p.set("offset", offset);
    let page;
    try {
      page = await get("/api/tasks?" + p);
    } catch (e) {
      document.getElementById("summary").textContent = e.message;
      return;
    }
    total = page.total;
    items = page.items;
    applied = Object.fromEntries([...p.entries()].filter(([k]) => k !== "limit" && k !== "offset"));
    render();
    const last = Math.min(offset + page.items.length, total);
    document.getElementById("summary").textContent = total ? `${total} tasks match` : "No tasks match this filter.";
    document.getElementById("pageinfo").textContent = total ? `${offset + 1}–${last} of ${total}` : "";
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = last >= total;
    bulkLabel();
  }

  /* who ran it; an assignment is shown as such, and one naming no known agent says so */
  function workerCell(t) {
    if (t.worker) return t.worker;
    if (!t.assigned_to) return "–";
    return el("span", { class: t.assignee_known ? "muted" : "error", title: t.assignee_known ? "assigned, not run yet" : "no agent of that name exists" },
      "for " + t.assigned_to + (t.assignee_known ? "" : " (no such agent)"));
  }

  function statusCell(t) {
    if (t.scheduled) {
      return [el("span", { class: "badge st-scheduled" }, "SCHEDULED"),
        el("span", { class: "muted small due" }, " due " + when(t.available_at) + " (in " + age(t.available_at - Date.now() / 1000) + ")")];
    }
    return [badge(t.status), t.dead_letter ? el("span", { class: "muted small" }, " dead letter") : ""];
  }

  const SORTS = {
    id: (t) => t.id, skill: (t) => t.skill, status: (t) => (t.scheduled ? "SCHEDULED" : t.status),
    attempts: (t) => t.attempts, worker: (t) => t.worker || t.assigned_to || "", created: (t) => t.created_at,
  };

  function render() {
    const rows = items.slice();
    if (sortKey) {
      const f = SORTS[sortKey];
      rows.sort((a, b) => { const x = f(a), y = f(b); return (x < y ? -1 : x > y ? 1 : 0) * sortDir || b.id - a.id; });
    }
    for (const th of document.querySelectorAll("#tasks th[data-sort]")) {
      th.dataset.dir = th.dataset.sort === sortKey ? (sortDir > 0 ? "asc" : "desc") : "";
      th.setAttribute("aria-sort", th.dataset.sort === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none");
    }
    fill(document.querySelector("#tasks tbody"), rows.map((t) => el("tr", { dataset: { taskId: t.id, status: t.scheduled ? "SCHEDULED" : t.status } },
      el("td", {}, el("a", { href: "/tasks/" + t.id }, String(t.id))),
      el("td", {}, t.skill), el("td", {}, statusCell(t)),
      el("td", {}, t.attempts + "/" + t.max_attempts), el("td", { class: "worker" }, workerCell(t)),
      el("td", { class: "small" }, when(t.created_at)),
      el("td", { class: "small clip" }, t.error ? el("span", { class: "error" }, t.error) : t.payload_preview),
      el("td", { class: "mut nowrap" }, rowActions(t)))));
  }

  function sortBy(key) {
    if (sortKey === key) sortDir = -sortDir; else { sortKey = key; sortDir = key === "id" || key === "created" ? -1 : 1; }
    render();
  }

  /* A bulk action applies to the tasks it can act on: retry to finished ones,
     cancel to unfinished ones, requeue (a copy) to any. The button names the
     action and counts exactly those; pressing it sends that narrowed filter
     (the server's dry run then confirms the count). */
  const STATUSES = ["PENDING", "RUNNING", "WAITING_HUMAN", "DONE", "FAILED", "CANCELLED"];
  const APPLIES = { retry: ["DONE", "FAILED", "CANCELLED"], cancel: ["PENDING", "RUNNING", "WAITING_HUMAN"], requeue: null };
  const NOUN = { retry: "finished task", cancel: "unfinished task", requeue: "task" };
  let bulkFilter = null, labelSeq = 0;

  function narrowed(action) {
    const f = { ...applied };
    if (!APPLIES[action]) return f;
    const keep = (f.status ? f.status.split(",") : STATUSES).filter((s) => APPLIES[action].includes(s));
    if (!keep.length) return null;
    f.status = keep.join(",");
    return f;
  }

  async function bulkLabel() {
    const btn = document.getElementById("bulk-go");
    const action = document.getElementById("bulk-action").value;
    const seq = ++labelSeq;
    bulkFilter = null;
    btn.disabled = true;
    if (!Object.keys(applied).length) { btn.textContent = "Set a filter to act on its tasks"; return; }
    const f = narrowed(action);
    /* one cheap count, of the filter's unfinished tasks (few, indexed): retry acts on the rest */
    const unfinished = (applied.status ? applied.status.split(",") : STATUSES).filter((x) => APPLIES.cancel.includes(x));
    let u = 0;
    if (f && action !== "requeue" && unfinished.length) {
      try { u = (await get("/api/tasks?" + new URLSearchParams({ ...applied, status: unfinished.join(","), limit: 1 }))).total; } catch (e) { u = 0; }
    }
    const n = !f ? 0 : action === "cancel" ? u : action === "retry" ? Math.max(0, total - u) : total;
    if (seq !== labelSeq) return;  /* a newer label is on its way */
    if (!n) { btn.textContent = `No ${NOUN[action]}s here to ${action}`; return; }
    bulkFilter = f;
    btn.disabled = false;
    btn.textContent = `${ACTION_WORDS[action]} ${n} ${NOUN[action]}${n === 1 ? "" : "s"} matching this filter`;
  }

  async function bulk() {
    const action = document.getElementById("bulk-action").value;
    const filter = bulkFilter;  /* the filter the button counted */
    if (!filter) return;
    const dry = await act(() => post("/api/tasks/bulk", { action, filter, dry_run: true }));
    if (!dry) return;
    if (!confirm(`${ACTION_WORDS[action]} ${dry.count} task(s) matching this filter?`)) return;
    const out = await act(() => post("/api/tasks/bulk", { action, filter, expected_count: dry.count }),
      (r) => `${action}: ${r.applied} of ${r.matched} done` + (r.skipped_count ? `, ${r.skipped_count} skipped` : ""));
    if (out) refresh();
  }

  async function loadSkills() {
    const s = await get("/api/skills?stats=false");  /* names only: no task is counted */
    document.getElementById("skill-list").replaceChildren(...s.skills.map((k) => el("option", { value: k.name })));
  }

  Fleet.start(async () => {
    loadFromUrl();
    form.addEventListener("submit", (ev) => { ev.preventDefault(); offset = 0; saveToUrl(); refresh(); });
    document.getElementById("clear").addEventListener("click", () => { form.reset(); offset = 0; saveToUrl(); refresh(); });
    document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); saveToUrl(); refresh(); });
    document.getElementById("next").addEventListener("click", () => { offset += LIMIT; saveToUrl(); refresh(); });
    document.getElementById("bulk-go").addEventListener("click", bulk);
    document.getElementById("bulk-action").addEventListener("change", bulkLabel);
    for (const th of document.querySelectorAll("#tasks th[data-sort]")) {
      th.tabIndex = 0;
      th.addEventListener("click", () => sortBy(th.dataset.sort));
      th.addEventListener("keydown", (ev) => { if (ev.key === "Enter") sortBy(th.dataset.sort); });
    }
    await Promise.all([refresh(), loadSkills()]);
    Fleet.live(["task"], refresh, 1000);
  });
})();
