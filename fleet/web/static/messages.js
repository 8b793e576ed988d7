/* Messages and notes page: inter-agent messages, sending one, channel notes. */
"use strict";
(() => {
  const { el, get, post, act, fill, when } = Fleet;
  let noteChannel = null;

  async function refreshMessages() {
    const ch = document.getElementById("channel").value;
    const m = await get("/api/comms?limit=200" + (ch ? "&channel=" + ch : ""));
    fill(document.querySelector("#messages tbody"), m.messages.slice().reverse().map((x) => el("tr", {},
      el("td", {}, x.id), el("td", {}, when(x.created_at)), el("td", {}, x.sender), el("td", {}, x.recipient),
      el("td", {}, x.channel), el("td", { class: "clip" }, x.body))));
  }

  async function refreshNotes() {
    const c = await get("/api/notes");
    document.getElementById("channels").replaceChildren(...c.channels.map((ch) => el("li", {},
      el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); noteChannel = ch.channel; refreshNotes(); } }, ch.channel),
      el("span", { class: "muted" }, ` (${ch.count})`))));
    if (!noteChannel && c.channels.length) noteChannel = c.channels[0].channel;
    document.getElementById("note-channel").textContent = noteChannel || "";
    if (!noteChannel) return;
    document.getElementById("note-ch").value = document.getElementById("note-ch").value || noteChannel;
    const n = await get("/api/notes?channel=" + encodeURIComponent(noteChannel));
    document.getElementById("notes").replaceChildren(...n.notes.map((x) => el("li", {},
      el("span", { class: "muted" }, when(x.created_at) + " " + x.author + ": "), x.body)));
  }

  Fleet.start(async () => {
    document.getElementById("channel").addEventListener("change", refreshMessages);
    document.getElementById("send").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = await act(() => post("/api/comms", { recipient: document.getElementById("to").value, body: document.getElementById("body").value }), "Message sent");
      if (out) { document.getElementById("body").value = ""; refreshMessages(); }
    });
    document.getElementById("note").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const ch = document.getElementById("note-ch").value.trim();
      const out = await act(() => post("/api/notes", { channel: ch, body: document.getElementById("note-body").value }), "Note posted");
      if (out) { noteChannel = ch; document.getElementById("note-body").value = ""; refreshNotes(); }
    });
    await Promise.all([refreshMessages(), refreshNotes()]);
    setInterval(() => { if (!document.hidden) { refreshMessages(); refreshNotes(); } }, 5000);
  });
})();
