/* Hardware page: GPUs (VRAM, temperature against thresholds, power, throttling),
   CPU, memory, disk, tier with reason and age, training lock, 15-minute sparklines. */
"use strict";
(() => {
  const { el, get, age, sparkline, features } = Fleet;
  let history = [];

  const gib = (mb) => (mb === null || mb === undefined ? "–" : (mb / 1024).toFixed(mb >= 10240 ? 0 : 1));

  /* a labelled bar: the label sits on its own line above the bar, never over it */
  function bar(used, total, unit, cls) {
    const pct = total ? Math.min(100, (100 * used) / total) : 0;
    const text = unit === "GiB" ? `${gib(used)} / ${gib(total)} GiB` : `${used ?? "–"} / ${total ?? "–"} ${unit}`;
    return el("div", { class: "meter" }, el("div", { class: "meter-label" }, text,
      el("span", { class: "muted" }, total ? ` (${pct.toFixed(0)} %)` : "")),
    el("div", { class: "bar " + (cls || ""), role: "meter", "aria-valuenow": pct.toFixed(0), "aria-valuemin": 0, "aria-valuemax": 100 },
      el("span", { style: `width:${pct.toFixed(1)}%` })));
  }

  function svg(id) {
    const s = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    s.setAttribute("viewBox", "0 0 240 40"); s.setAttribute("class", "spark"); s.id = id;
    return s;
  }

  function gpuCard(g, limits) {
    const hot = g.temp_c !== null && limits.gpu_max_sustained_c !== null && g.temp_c >= limits.gpu_max_sustained_c;
    const tempSpark = svg("spark-temp-" + g.index), vramSpark = svg("spark-vram-" + g.index);
    const node = el("div", { class: "card grow gpu", dataset: { gpu: g.index } },
      el("h3", {}, `GPU ${g.index}: ${g.name || "?"}`),
      el("div", {}, "VRAM"), bar(g.vram_used_mb, g.vram_total_mb, "GiB"),
      el("div", {}, "Temperature ", el("b", { class: hot ? "error" : "" }, g.temp_c === null ? "–" : g.temp_c + " °C"),
        el("span", { class: "muted" }, ` (sustained limit ${limits.gpu_max_sustained_c ?? "–"} °C, slowdown ${g.slowdown_c ?? "–"} °C)`)),
      bar(g.temp_c, g.slowdown_c || limits.gpu_max_sustained_c || 100, "°C", hot ? "hot" : ""),
      el("div", {}, "Power ", `${g.power_w ?? "–"} / ${g.power_limit_w ?? "–"} W`, " · util ", `${g.util_pct ?? "–"} %`),
      el("div", { class: g.throttle_reasons && g.throttle_reasons.length ? "error" : "muted" },
        "Throttling: " + ((g.throttle_reasons || []).join(", ") || "none")),
      el("div", { class: "spark-row" }, el("span", { class: "lbl" }, "temp 15 min"), tempSpark),
      el("div", { class: "spark-row" }, el("span", { class: "lbl" }, "VRAM 15 min"), vramSpark));
    return [node, tempSpark, vramSpark, hot];
  }

  function seriesFor(index, key) {
    return history.map((s) => {
      const g = (s.gpus || []).find((x) => x.index === index) || s;
      return g[key] ?? null;
    });
  }

  async function refresh() {
    const t = await get("/api/thermal");
    document.getElementById("tier").textContent = t.tier.name || "–";
    document.getElementById("thermal").textContent = t.thermal ? t.thermal.state : "–";
    document.getElementById("thermal").className = "badge " + (t.thermal && t.thermal.state !== "ok" ? "st-failed" : "st-done");
    document.getElementById("tier-reason").textContent = `${t.tier.model || ""} · ${t.tier.reason || ""}` +
      (t.tier.age_s ? ` · changed ${age(t.tier.age_s)} ago` : "");
    document.getElementById("stale").textContent = t.stale ? (t.stale_reason || "hardware state is stale") : "";
    const box = document.getElementById("gpus");
    box.replaceChildren();
    if (!t.gpus.length) box.append(el("div", { class: "card grow muted" }, "No GPU reported (source: " + (t.source || "none") + ")."));
    for (const g of t.gpus) {
      const [node, ts, vs] = gpuCard(g, t.limits);
      box.append(node);
      sparkline(ts, seriesFor(g.index, "temp_c"), { limit: t.limits.gpu_max_sustained_c });
      sparkline(vs, seriesFor(g.index, "vram_used_mb"), { max: g.vram_total_mb });
    }
    const cpu = t.cpu || {}, mem = t.memory || {}, disk = t.disk || {};
    const cpuSpark = svg("spark-cpu"), memSpark = svg("spark-mem");
    document.getElementById("cpu").replaceChildren(el("div", {}, `${cpu.percent ?? "–"} % of ${cpu.count ?? "?"} cores`),
      el("div", { class: "muted" }, "load " + (cpu.load_avg || []).join(" / ")),
      features.hw_history ? el("div", { class: "spark-row" }, el("span", { class: "lbl" }, "CPU 15 min"), cpuSpark) : null);
    document.getElementById("mem").replaceChildren(bar(mem.used_mb, mem.total_mb, "GiB"),
      features.hw_history ? el("div", { class: "spark-row" }, el("span", { class: "lbl" }, "memory 15 min"), memSpark) : null);
    sparkline(cpuSpark, history.map((s) => s.cpu_pct), { max: 100 });
    sparkline(memSpark, history.map((s) => s.mem_pct), { max: 100 });
    document.getElementById("disk").replaceChildren(bar(disk.used_mb, disk.total_mb, "GiB"));
    const tr = await get("/api/training");
    document.getElementById("training").textContent = tr.active
      ? `Training lock held by ${tr.lock.holder} (until ${new Date(tr.lock.expires_at * 1000).toLocaleTimeString()}); GPU skills wait.`
      : "No training running.";
  }

  async function loadHistory() {
    if (!features.hw_history) return;
    try { history = (await get("/api/hw/history?minutes=15")).samples || []; } catch (e) { history = []; }
  }

  Fleet.start(async () => {
    await loadHistory();
    await refresh();
    Fleet.live(["hw", "fleet"], async () => { await loadHistory(); await refresh(); });
  });
})();
