/* Messages and notes page: inter-agent messages, sending one, channel notes. */
"use strict";
(() => {
  const { el, get, post, act, fill, when } = Fleet;
  let noteChannel = null;

  /* newest page first; "Older" pages back with before_id (the oldest id shown) */
  const PAGE = 50;
  let pages = [null], more = false;  /* before_id of each page seen, the current one last */

  async function refreshMessages() {
    const p = new URLSearchParams({ limit: PAGE });
    const ch = document.getElementById("channel").value, agent = document.getElementById("agent").value.trim();
    if (ch) p.set("channel", ch);
    if (agent) p.set("agent", agent);
    const before = pages[pages.length - 1];
    if (before) p.set("before_id", before);
    const m = await get("/api/comms?" + p);
    more = m.more;
    const list = m.messages.slice().reverse();
    fill(document.querySelector("#messages tbody"), list.map((x) => el("tr", { dataset: { messageId: x.id } },
      el("td", {}, x.id), el("td", {}, when(x.created_at)), el("td", {}, x.sender), el("td", {}, x.recipient),
      el("td", {}, x.channel), el("td", { class: "clip" }, x.body))));
    document.getElementById("msg-none").hidden = list.length > 0;
    document.getElementById("msg-newer").disabled = pages.length <= 1;
    document.getElementById("msg-older").disabled = !more;
    document.getElementById("msg-page").textContent = list.length ? `#${list[list.length - 1].id}–#${list[0].id}` : "";
    document.getElementById("msg-older").dataset.before = list.length ? list[list.length - 1].id : "";
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
    const restart = () => { pages = [null]; refreshMessages(); };
    document.getElementById("channel").addEventListener("change", restart);
    document.getElementById("msg-filter").addEventListener("submit", (ev) => { ev.preventDefault(); restart(); });
    document.getElementById("msg-older").addEventListener("click", (ev) => { pages.push(parseInt(ev.target.dataset.before, 10)); refreshMessages(); });
    document.getElementById("msg-newer").addEventListener("click", () => { if (pages.length > 1) pages.pop(); refreshMessages(); });
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
    /* only the newest page follows new messages */
    setInterval(() => { if (!document.hidden) { if (pages.length === 1) refreshMessages(); refreshNotes(); } }, 5000);
  });
})();
