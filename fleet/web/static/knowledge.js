/* Knowledge page: the artifacts skills wrote, and reading one. */
"use strict";
(() => {
  const { el, get } = Fleet;

  async function open(path) {
    document.getElementById("fname").textContent = path;
    const pre = document.getElementById("content");
    try {
      const f = await get("/api/knowledge/file?path=" + encodeURIComponent(path));
      pre.textContent = f.content + (f.truncated ? "\n… (truncated at 1 MiB)" : "");
    } catch (e) { pre.textContent = e.message; }
  }

  async function refresh() {
    const k = await get("/api/knowledge");
    document.getElementById("kcount").textContent = k.count;
    const list = document.getElementById("files");
    if (!k.files.length) { list.replaceChildren(el("li", { class: "muted" }, "Nothing yet: skills write here as they run.")); return; }
    list.replaceChildren(...k.files.map((f) => el("li", {},
      el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); open(f.path); } }, f.path),
      el("span", { class: "muted" }, " " + Math.ceil(f.bytes / 1024) + " KiB"))));
  }

  async function refreshSummaries() {
    const { features, fill, when } = Fleet;
    if (features.reviews) {
      const r = await get("/api/reviews?limit=15");
      fill(document.querySelector("#reviews tbody"), r.reviews.map((x) => el("tr", {},
        el("td", {}, when(x.finished_at)), el("td", {}, x.skill), el("td", {}, x.target || "–"),
        el("td", {}, Object.entries(x.counts || {}).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(", ") || "none"),
        el("td", {}, x.report ? el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); open(x.report); } }, "open") : "–"))));
    }
    if (features.discussions) {
      const d = await get("/api/discussions");
      document.getElementById("discussions").replaceChildren(...(d.threads.length ? d.threads.map((t) => el("li", {},
        el("b", {}, t.thread), ` · ${t.turns} turns · ${t.authors.join(", ")} · ${when(t.last_at)}`))
        : [el("li", { class: "muted" }, "No discussions yet.")]));
    }
    const bits = [];
    if (features.code_stats) {
      const c = await get("/api/code_stats");
      bits.push(c.code_index ? `Code index: ${c.code_index.symbols} symbols in ${c.code_index.files} files` : "Code index: not built yet");
      for (const [skill, t] of Object.entries(c.reviews)) bits.push(`${skill}: ${t.tasks} in ${c.days} days`);
    }
    if (features.rag) {
      const r = await get("/api/rag");
      bits.push(r.exists ? `Retrieval index: ${r.files} files, ${r.chunks} chunks` : "Retrieval index: not built yet");
    }
    const box = document.getElementById("indexes");
    if (box) box.replaceChildren(...bits.map((b) => el("div", {}, b)));
  }

  Fleet.start(async () => {
    await Promise.all([refresh(), refreshSummaries()]);
    Fleet.live(["task"], async () => { await refresh(); await refreshSummaries(); });
  });
})();
