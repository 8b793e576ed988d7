/* Workflows page: every code-factory workflow (status, phase, cost so far);
   a click shows its phase history with tokens and cost, and its plan. */
"use strict";
(() => {
  const { el, get, fill, when, badge, json } = Fleet;
  let selected = null;

  function row(w) {
    const phase = w.waiting_for_approval ? "approve (waiting for you)" : w.phase;
    return el("tr", { class: "clickable", dataset: { id: w.id }, onclick: () => { selected = w.id; show(w); } },
      el("td", {}, String(w.id)), el("td", {}, badge(w.status)), el("td", {}, phase),
      el("td", {}, w.spent_usd.toFixed(4) + (w.budget_usd ? " / " + w.budget_usd.toFixed(2) : "")),
      el("td", { class: "clip" }, w.goal), el("td", { class: "clip" }, w.repo), el("td", {}, w.branch || "–"));
  }

  function show(w) {
    document.getElementById("detail").hidden = false;
    document.getElementById("detail-title").textContent = `Workflow ${w.id}: ${w.goal}`;
    document.getElementById("detail-error").textContent =
      (w.error ? w.error + " · " : "") + (w.approver ? "approved by " + w.approver + " · " : "") +
      (w.report ? "report: " + w.report : "");
    fill(document.querySelector("#history tbody"), w.history.map((h) => el("tr", {},
      el("td", {}, String(h.step)), el("td", {}, h.phase), el("td", {}, h.outcome),
      el("td", {}, String(h.model_calls)), el("td", {}, String(h.input_tokens)), el("td", {}, String(h.output_tokens)),
      el("td", {}, h.cost_usd.toFixed(4)), el("td", {}, when(h.finished_at)))));
    document.getElementById("plan").textContent = json(w.plan);
  }

  async function refresh() {
    const body = await get("/api/workflows?limit=100");
    fill(document.querySelector("#workflows tbody"), body.workflows.map(row));
    document.getElementById("count").textContent = body.workflows.length;
    document.getElementById("none").hidden = body.workflows.length > 0;
    const current = body.workflows.find((w) => w.id === selected);
    if (current) show(current);
  }

  Fleet.start(async () => {
    await refresh();
    Fleet.live(["task"], refresh);
  });
})();
