/* Logs page: the tail of each process's log (and its crash output, *.out),
   filtered by a search box, following while the tab is visible. */
"use strict";
(() => {
  const { el, get } = Fleet;
  const select = document.getElementById("logname");
  const search = document.getElementById("search");
  let lines = [];

  /* lines containing the search text (case-insensitive); the count says how many */
  function show() {
    const pre = document.getElementById("logtext");
    const q = search.value.trim().toLowerCase();
    const shown = q ? lines.filter((l) => l.toLowerCase().includes(q)) : lines;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.textContent = shown.length ? shown.join("\n") : (q ? "No line matches." : "(empty)");
    document.getElementById("matches").textContent = q ? `${shown.length} of ${lines.length} lines match` : `${lines.length} lines`;
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  async function tail() {
    if (!select.value) return;
    const n = document.getElementById("lines").value || 200;
    try {
      lines = (await get("/api/logs/" + encodeURIComponent(select.value) + "?lines=" + n)).lines;
      show();
    } catch (e) { document.getElementById("logtext").textContent = e.message; }
  }

  Fleet.start(async () => {
    const l = await get("/api/logs");
    const logs = l.logs.filter((x) => x.kind !== "crash output"), outs = l.logs.filter((x) => x.kind === "crash output");
    select.replaceChildren(el("optgroup", { label: "logs" }, ...logs.map((x) => el("option", { value: x.name }, x.name))),
      outs.length ? el("optgroup", { label: "crash output (stdout/stderr)" }, ...outs.map((x) => el("option", { value: x.name }, x.name))) : null);
    const want = new URLSearchParams(location.search).get("name");
    if (want && l.logs.some((x) => x.name === want)) select.value = want;
    if (!l.logs.length) document.getElementById("logtext").textContent = "No logs yet.";
    select.addEventListener("change", tail);
    document.getElementById("lines").addEventListener("change", tail);
    search.addEventListener("input", show);
    await tail();
    setInterval(() => { if (!document.hidden && document.getElementById("follow").checked) tail(); }, 3000);
  });
})();
