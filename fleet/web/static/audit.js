/* Audit page: operator actions from GET /api/audit, filtered by who, action and
   dates, paged newest first with the id cursor. */
"use strict";
(() => {
  const { el, get, when } = Fleet;
  let cursor = null, next = null, pageNo = 1;

  function query() {
    const p = new URLSearchParams({ limit: "25" });
    const actor = document.getElementById("a-actor").value.trim();
    const action = document.getElementById("a-action").value;
    const since = document.getElementById("a-since").value;
    const until = document.getElementById("a-until").value;
    if (actor) p.set("actor", actor);
    if (action) p.set("action", action);
    if (since) p.set("since", since);
    if (until) p.set("until", new Date(Date.parse(until + "T00:00:00Z") + 86400000).toISOString());  /* through that day */
    if (cursor) p.set("before_id", cursor);
    return p.toString();
  }

  function row(e) {
    const what = e.detail === null || e.detail === undefined ? "" : JSON.stringify(e.detail);
    return el("tr", { dataset: { eventId: e.id, action: e.action } },
      el("td", {}, String(e.id)), el("td", { class: "nowrap" }, when(e.ts)), el("td", {}, e.actor),
      el("td", {}, e.via), el("td", {}, e.action),
      el("td", {}, e.task_id ? el("a", { href: "/tasks/" + e.task_id }, String(e.task_id)) : ""),
      el("td", {}, e.agent || ""), el("td", { class: "clip", title: what }, what));
  }

  async function refresh() {
    const page = await get("/api/audit?" + query());
    document.getElementById("audit").replaceChildren(...page.items.map(row));
    document.getElementById("a-none").hidden = page.items.length > 0;
    next = page.next_before_id;
    document.getElementById("a-older").disabled = next === null;
    document.getElementById("a-page").textContent = "page " + pageNo;
  }

  document.getElementById("audit-filters").addEventListener("submit", (ev) => {
    ev.preventDefault(); cursor = null; pageNo = 1; refresh();
  });
  document.getElementById("a-older").addEventListener("click", () => { if (next !== null) { cursor = next; pageNo += 1; refresh(); } });
  document.getElementById("a-newest").addEventListener("click", () => { cursor = null; pageNo = 1; refresh(); });

  Fleet.start(async () => {
    await refresh();
    Fleet.live(["fleet", "task", "alert"], () => { if (cursor === null) refresh(); });
  });
})();
