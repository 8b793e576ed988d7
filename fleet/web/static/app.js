/* Fleet dashboard: shared client code. Talks only to the JSON API: session and
   CSRF handling, fetch helpers, the live-event stream (coalesced refreshes,
   paused while the tab is hidden), small DOM and SVG sparkline helpers. */
"use strict";

const Fleet = (() => {
  let session = { authenticated: false, read_only: false };
  const features = JSON.parse(document.body.dataset.features || "{}");

  async function loadSession() {
    try {
      const r = await fetch("/api/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
      session = await r.json();
    } catch (e) { /* offline: keep the anonymous session */ }
    const who = document.getElementById("who");
    if (who) {
      who.textContent = "";
      if (session.authenticated) {
        who.append(el("span", { class: "muted" }, "signed in "),
          el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); signOut(); } }, "sign out"));
      } else {
        who.append(el("a", { href: "/signin?next=" + encodeURIComponent(location.pathname + location.search) }, "sign in"));
      }
    }
    document.body.classList.toggle("anon", !session.authenticated);
    document.body.classList.toggle("ro", !!session.read_only);
    return session;
  }

  async function signOut() {
    await api("DELETE", "/api/session");
    location.reload();
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
    const r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.error) || (r.status + " " + r.statusText));
      err.status = r.status; err.data = data;
      throw err;
    }
    return data;
  }
  const get = (path) => api("GET", path);
  const post = (path, body) => api("POST", path, body === undefined ? {} : body);

  /* Run a mutation from a button: sign-in hint when needed, toast on error. */
  async function act(fn, okMessage) {
    if (!session.authenticated) {
      toast("Sign in first (top right) to make changes.", true);
      return null;
    }
    try {
      const out = await fn();
      if (okMessage) toast(typeof okMessage === "function" ? okMessage(out) : okMessage);
      return out;
    } catch (e) {
      toast(e.message, true);
      return null;
    }
  }

  /* ---- live updates ---------------------------------------------------- */
  const subscribers = [];   // {kinds:Set, fn, busy, again, gap, last, wait}
  let source = null, pending = new Map(), timer = null;
  const KINDS = ["task", "agent", "alert", "fleet", "hw"];

  /* fn(events) runs after events of these kinds, at most one call at a time and,
     with minGapMs, at most once per gap (a heavy aggregate refetch): events in
     between are gathered into the next call. */
  function live(kinds, fn, minGapMs) {
    const sub = { kinds: new Set(kinds), fn, busy: false, again: null, gap: minGapMs || 0, last: 0, wait: null };
    subscribers.push(sub);
    return sub;
  }

  async function runSub(sub, events) {
    if (sub.busy || sub.wait) { sub.again = (sub.again || []).concat(events); return; }
    const early = sub.last + sub.gap - Date.now();
    if (early > 0) {
      sub.again = (sub.again || []).concat(events);
      sub.wait = setTimeout(() => { sub.wait = null; const ev = sub.again || []; sub.again = null; runSub(sub, ev); }, early);
      return;
    }
    sub.busy = true;
    sub.last = Date.now();
    try { await sub.fn(events); } catch (e) { console.warn("refresh failed", e); }
    sub.busy = false;
    if (sub.again) { const ev = sub.again; sub.again = null; runSub(sub, ev); }
  }

  function flush() {
    timer = null;
    const batch = pending; pending = new Map();
    for (const sub of subscribers) {
      const events = [];
      for (const [kind, list] of batch) if (sub.kinds.has(kind)) events.push(...list);
      if (events.length) runSub(sub, events);
    }
  }

  function schedule(kind, data) {
    if (!pending.has(kind)) pending.set(kind, []);
    pending.get(kind).push(data);
    if (!timer) timer = setTimeout(flush, 200);  /* coalesce bursts into one refresh */
  }

  function connect() {
    if (source || document.hidden) return;
    source = new EventSource("/api/stream");
    const badge = document.getElementById("live");
    source.onopen = () => badge && badge.classList.remove("off");
    source.onerror = () => badge && badge.classList.add("off");
    /* too much was missed to replay: every list re-reads the current state */
    source.addEventListener("gap", () => { for (const sub of subscribers) runSub(sub, []); });
    for (const kind of KINDS) {
      source.addEventListener(kind, (ev) => {
        let data = {};
        try { data = JSON.parse(ev.data); } catch (e) { /* keep empty */ }
        schedule(kind, data);
      });
    }
  }

  function disconnect() {
    if (source) { source.close(); source = null; }
    const badge = document.getElementById("live");
    if (badge) badge.classList.add("off");
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) { disconnect(); return; }
    connect();
    for (const sub of subscribers) runSub(sub, []);  /* catch up on what we missed */
  });

  /* ---- DOM helpers ----------------------------------------------------- */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "style") node.style.cssText = v;  /* CSSOM: allowed by the CSP, a style attribute is not */
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fill(tbody, rows) { tbody.replaceChildren(...rows); }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function when(ts) {
    if (!ts) return "–";
    const d = new Date(ts * 1000);
    const today = new Date();
    return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function badge(status) {
    return el("span", { class: "badge st-" + String(status || "").toLowerCase() }, status || "–");
  }

  function json(value) { return value === null || value === undefined ? "" : JSON.stringify(value, null, 2); }

  function sparkline(svg, values, opts) {
    const w = 240, h = 40, pad = 2;
    svg.replaceChildren();
    if (!values || !values.length) return;
    const max = Math.max(1, ...values.map((v) => (v === null ? 0 : v)), (opts && opts.max) || 0);
    const step = values.length > 1 ? (w - 2 * pad) / (values.length - 1) : 0;
    const pts = values.map((v, i) => [pad + i * step, h - pad - ((v || 0) / max) * (h - 2 * pad)]);
    const ns = "http://www.w3.org/2000/svg";
    const area = document.createElementNS(ns, "polygon");
    area.setAttribute("points", [[pad, h - pad], ...pts, [pad + (values.length - 1) * step, h - pad]].map((p) => p.join(",")).join(" "));
    area.setAttribute("class", "area");
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.map((p) => p.join(",")).join(" "));
    line.setAttribute("class", "line");
    svg.append(area, line);
    if (opts && opts.limit) {
      const y = h - pad - (opts.limit / max) * (h - 2 * pad);
      const lim = document.createElementNS(ns, "line");
      lim.setAttribute("x1", 0); lim.setAttribute("x2", w);
      lim.setAttribute("y1", y); lim.setAttribute("y2", y);
      lim.setAttribute("class", "limit");
      svg.append(lim);
    }
  }

  /* A small chart in plain SVG with axes and values: y from 0 to the max
     (both labelled), x labels under the first, middle and last point, a
     <title> per point; kind "line" or "bar". opts: {labels, kind, fmt, cls}. */
  function chart(svg, values, opts) {
    const o = opts || {}, fmt = o.fmt || ((v) => String(Math.round(v * 100) / 100));
    const W = 320, H = 110, L = 44, R = 8, T = 8, B = 20;
    const ns = "http://www.w3.org/2000/svg";
    const mk = (tag, attrs, text) => {
      const n = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      return n;
    };
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.classList.add("chart");
    svg.replaceChildren();
    const vals = (values || []).map((v) => (v === null || v === undefined ? 0 : v));
    const labels = o.labels || vals.map((_, i) => String(i));
    const max = Math.max(...vals, 0) || 1;
    const pw = W - L - R, ph = H - T - B, n = Math.max(1, vals.length);
    const y = (v) => T + ph - (v / max) * ph;
    svg.append(mk("line", { x1: L, x2: L, y1: T, y2: T + ph, class: "axis" }),
      mk("line", { x1: L, x2: W - R, y1: T + ph, y2: T + ph, class: "axis" }),
      mk("line", { x1: L, x2: W - R, y1: T, y2: T, class: "grid" }),
      mk("text", { x: L - 4, y: T + 4, class: "ylab" }, fmt(max)),
      mk("text", { x: L - 4, y: T + ph, class: "ylab" }, fmt(0)));
    if (!vals.length) { svg.append(mk("text", { x: L + pw / 2, y: T + ph / 2, class: "empty" }, "no data")); return; }
    const step = o.kind === "bar" ? pw / n : (n > 1 ? pw / (n - 1) : 0);
    const xAt = (i) => (o.kind === "bar" ? L + step * i + step / 2 : L + step * i);
    for (const i of [...new Set([0, Math.floor((n - 1) / 2), n - 1])]) {
      svg.append(mk("text", { x: xAt(i), y: H - 6, class: "xlab" }, labels[i] ?? ""));
    }
    if (o.kind === "bar") {
      vals.forEach((v, i) => {
        const r = mk("rect", { x: L + step * i + step * 0.15, y: y(v), width: Math.max(1, step * 0.7), height: T + ph - y(v), class: "col" });
        r.append(mk("title", {}, `${labels[i]}: ${fmt(v)}`));
        svg.append(r);
      });
    } else {
      const pts = vals.map((v, i) => `${xAt(i)},${y(v)}`).join(" ");
      svg.append(mk("polygon", { points: `${L},${T + ph} ${pts} ${xAt(n - 1)},${T + ph}`, class: "area" }),
        mk("polyline", { points: pts, class: "line" }));
      vals.forEach((v, i) => {
        const c = mk("circle", { cx: xAt(i), cy: y(v), r: 2.2, class: "pt" });
        c.append(mk("title", {}, `${labels[i]}: ${fmt(v)}`));
        svg.append(c);
      });
    }
  }

  function clock(ts) { return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }); }

  let toastTimer = null;
  function toast(message, isError) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = message;
    t.className = "toast show" + (isError ? " err" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = "toast"; }, isError ? 8000 : 3000);
  }

  /* Narrow screens: the nav collapses behind a menu button. */
  function wireNav() {
    const btn = document.getElementById("nav-toggle");
    if (!btn) return;
    btn.addEventListener("click", () => {
      const open = document.body.classList.toggle("nav-open");
      btn.setAttribute("aria-expanded", String(open));
    });
  }

  /* Page start-up: session first (for the CSRF token), then the page, then live. */
  function start(init) {
    document.addEventListener("DOMContentLoaded", async () => {
      wireNav();
      await loadSession();
      try { await init(); } catch (e) { toast(e.message, true); }
      connect();
    });
  }

  return { api, get, post, act, live, el, fill, age, when, badge, json, sparkline, chart, clock, toast, start,
           features, session: () => session, loadSession };
})();
