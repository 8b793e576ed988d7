/* Reports page: the "Report issue" form (POST /api/debug-report) and the
   debug reports with their resolution (GET /api/resolutions, resolve with a note). */
"use strict";
(() => {
  const { el, get, post, act, when, json } = Fleet;

  function resolveForm(r) {
    const note = el("input", { placeholder: "what was found and done", class: "r-note", size: 24 });
    const commit = el("input", { placeholder: "fix commit", class: "r-commit", size: 9 });
    const go = async () => {
      const out = await act(() => post("/api/resolutions/" + r.id + "/resolve",
        { note: note.value, fix_commit: commit.value || null }), `Report ${r.id} resolved`);
      if (out) refresh();
    };
    return el("span", { class: "inline wrap mut" }, note, commit, el("button", { class: "small r-resolve", onclick: go }, "Resolve"));
  }

  function row(r) {
    const resolution = r.status === "resolved"
      ? el("span", {}, r.note, r.fix_commit ? el("span", { class: "muted small" }, " · " + r.fix_commit) : "",
        el("span", { class: "muted small" }, " · " + r.resolved_by + " " + when(r.resolved_at)))
      : resolveForm(r);
    const view = el("button", { class: "small", onclick: () => show(r.id) }, "View");
    return el("tr", { dataset: { reportId: r.id, status: r.status } },
      el("td", {}, String(r.id)), el("td", { class: "nowrap" }, when(r.created_at)), el("td", {}, r.created_by),
      el("td", {}, el("span", { class: "badge " + (r.status === "open" ? "st-waiting_human" : "st-done") }, r.status)),
      el("td", { class: "clip" }, r.description || ""), el("td", {}, resolution), el("td", {}, view));
  }

  async function show(id) {
    const data = await get("/api/debug-report/" + id);
    document.getElementById("r-view").hidden = false;
    document.getElementById("r-view-title").textContent = `Debug report ${id} · ${data.record.path}`;
    document.getElementById("r-view-body").textContent = json(data.report);
  }

  async function refresh() {
    const status = document.getElementById("r-status").value;
    const data = await get("/api/resolutions" + (status ? "?status=" + status : ""));
    document.getElementById("reports").replaceChildren(...data.reports.map(row));
    document.getElementById("r-count").textContent = data.reports.length;
    document.getElementById("r-none").hidden = data.reports.length > 0;
  }

  document.getElementById("report-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = document.getElementById("r-submit");
    button.disabled = true;
    try {
      const out = await act(() => post("/api/debug-report", {
        description: document.getElementById("r-description").value,
        steps: document.getElementById("r-steps").value,
        include_logs: document.getElementById("r-logs").checked,
      }), (o) => `Debug report ${o.id} written`);
      if (out) {
        const msg = document.getElementById("r-out");
        msg.replaceChildren("Report ", el("b", { id: "r-new", dataset: { reportId: out.id } }, String(out.id)),
          " written to " + out.json_path);
        document.getElementById("r-description").value = "";
        document.getElementById("r-steps").value = "";
        refresh();
      }
    } finally { button.disabled = false; }
  });
  document.getElementById("r-status").addEventListener("change", refresh);

  Fleet.start(refresh);
})();
