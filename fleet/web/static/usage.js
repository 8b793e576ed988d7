/* Usage page: cost per day and tokens per day (plain SVG charts); tokens and
   cost by skill / provider / model for day, week, month; delta; budgets. */
"use strict";
(() => {
  const { el, get, fill, chart } = Fleet;
  const money = (v) => "$" + (v || 0).toFixed(4);
  const n = (v) => (v || 0).toLocaleString();
  const compact = (v) => (v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e3 ? (v / 1e3).toFixed(1) + "k" : String(Math.round(v)));

  function change(c, fmt) {
    const sign = c.delta > 0 ? "+" : "";
    return `${fmt(c.before)} → ${fmt(c.after)} (${sign}${c.delta_pct === null ? "new" : c.delta_pct + " %"})`;
  }

  async function refreshCharts() {
    const s = await get("/api/usage/series?days=14");
    const labels = s.days.map((d) => new Date(d.start * 1000).toISOString().slice(5, 10));
    chart(document.getElementById("cost-chart"), s.days.map((d) => d.cost_usd),
      { labels, kind: "bar", fmt: (v) => "$" + (v >= 100 ? v.toFixed(0) : v.toFixed(2)) });
    chart(document.getElementById("tokens-chart"), s.days.map((d) => d.input_tokens + d.output_tokens),
      { labels, kind: "bar", fmt: compact });
    const cost = s.days.reduce((a, d) => a + d.cost_usd, 0), tokens = s.days.reduce((a, d) => a + d.input_tokens + d.output_tokens, 0);
    document.getElementById("cost-total").textContent = money(cost) + " in 14 days";
    document.getElementById("tokens-total").textContent = n(tokens) + " tokens in 14 days";
  }

  async function refresh() {
    const period = document.getElementById("period").value, group = document.getElementById("group").value;
    const u = await get(`/api/usage?period=${period}&group_by=${group}`);
    document.getElementById("keyhead").textContent = group;
    fill(document.querySelector("#usage tbody"), u.rows.map((r) => el("tr", {},
      el("td", {}, r.key), el("td", {}, n(r.calls)), el("td", {}, n(r.failures)), el("td", {}, n(r.input_tokens)),
      el("td", {}, n(r.output_tokens)), el("td", {}, n(r.cache_read_tokens)), el("td", {}, money(r.cost_usd)),
      el("td", {}, money(r.cache_savings_usd)), el("td", {}, r.avg_latency_ms ? Math.round(r.avg_latency_ms) + " ms" : "–"))));
    const t = u.totals;
    document.getElementById("totals").textContent = `${n(t.calls)} calls, ${n(t.input_tokens)} in / ${n(t.output_tokens)} out tokens, ${money(t.cost_usd)} (saved ${money(t.cache_savings_usd)} by caching)`;
    const d = await get(`/api/usage/delta?group_by=${group}`);
    fill(document.querySelector("#delta tbody"), d.rows.map((r) => el("tr", {}, el("td", {}, r.key),
      el("td", {}, change(r.calls, n)), el("td", {}, change(r.output_tokens, n)), el("td", {}, change(r.cost_usd, money)))));
    const b = await get("/api/usage/budgets");
    fill(document.querySelector("#budgets tbody"), b.budgets.map((x) => el("tr", {},
      el("td", {}, x.budget), el("td", {}, x.period), el("td", {}, money(x.spent_usd)), el("td", {}, x.limit_usd ? money(x.limit_usd) : "–"),
      el("td", {}, x.max_calls ? `${x.calls} / ${x.max_calls}` : x.calls), el("td", {}, x.percent_used + " %"),
      el("td", {}, el("span", { class: "badge " + (x.state === "ok" ? "st-done" : x.state === "warning" ? "st-waiting_human" : "st-failed") }, x.state)))));
    document.getElementById("no-budgets").hidden = b.budgets.length > 0;
    document.getElementById("budgets").hidden = !b.budgets.length;
  }

  Fleet.start(async () => {
    document.getElementById("period").addEventListener("change", refresh);
    document.getElementById("group").addEventListener("change", refresh);
    await Promise.all([refresh(), refreshCharts()]);
    Fleet.live(["task"], async () => { await refresh(); await refreshCharts(); }, 5000);
  });
})();
