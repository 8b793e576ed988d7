/* Logs page: the tail of each process's log, following while the tab is visible. */
"use strict";
(() => {
  const { el, get } = Fleet;
  const select = document.getElementById("logname");

  async function tail() {
    if (!select.value) return;
    const n = document.getElementById("lines").value || 200;
    const pre = document.getElementById("logtext");
    try {
      const t = await get("/api/logs/" + encodeURIComponent(select.value) + "?lines=" + n);
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      pre.textContent = t.lines.join("\n");
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    } catch (e) { pre.textContent = e.message; }
  }

  Fleet.start(async () => {
    const l = await get("/api/logs");
    select.replaceChildren(...l.logs.map((x) => el("option", { value: x.name }, x.name)));
    if (!l.logs.length) document.getElementById("logtext").textContent = "No logs yet.";
    select.addEventListener("change", tail);
    document.getElementById("lines").addEventListener("change", tail);
    await tail();
    setInterval(() => { if (!document.hidden && document.getElementById("follow").checked) tail(); }, 3000);
  });
})();
