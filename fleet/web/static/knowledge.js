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

  Fleet.start(async () => {
    await refresh();
    Fleet.live(["task"], refresh);
  });
})();
