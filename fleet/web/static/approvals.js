/* Approvals page: tasks WAITING_HUMAN with approve / reject / need more info / feedback. */
"use strict";
(() => {
  const { el, get, post, act, when } = Fleet;

  function card(t) {
    const q = t.question || {};
    const text = el("textarea", { rows: 2, placeholder: "note, feedback or what more you need", class: "answer-text" });
    const reply = async (body, label) => {
      const out = await act(() => post("/api/tasks/" + t.id + "/respond", body), `Task ${t.id}: ${label} sent`);
      if (out) refresh();
    };
    const send = (decision) => reply({ decision, text: text.value }, decision.replace("_", " "));
    /* the question's own options answer with exactly that option */
    const options = (q.options || []).length
      ? el("div", { class: "controls mut options" }, el("span", { class: "muted small" }, "Answer with an option:"),
        ...q.options.map((o) => el("button", { class: "small", onclick: () => reply({ answer: o }, JSON.stringify(o)) }, String(o))))
      : null;
    return el("div", { class: "card inset approval", dataset: { taskId: t.id } },
      el("h3", {}, el("a", { href: "/tasks/" + t.id }, "Task " + t.id), " · ", t.skill,
        el("span", { class: "muted small" }, " waiting since " + when(t.updated_at))),
      el("p", { class: "question" }, q.question || "(no question text)"), options,
      el("p", { class: "muted small clip" }, t.payload_preview),
      text,
      el("div", { class: "controls mut" },
        el("button", { class: "primary", onclick: () => send("approve") }, "Approve"),
        el("button", { onclick: () => send("reject") }, "Reject"),
        el("button", { onclick: () => send("more_info") }, "Need more info"),
        el("button", { onclick: () => send("feedback") }, "Send feedback")));
  }

  async function refresh() {
    const page = await get("/api/tasks?status=WAITING_HUMAN&limit=100");
    const box = document.getElementById("approvals");
    /* keep what the operator is typing: only rebuild cards that changed */
    const have = new Map([...box.children].map((c) => [c.dataset.taskId, c]));
    const want = page.items.map((t) => String(t.id));
    for (const [id, node] of have) if (!want.includes(id)) node.remove();
    for (const t of page.items) if (!have.has(String(t.id))) box.append(card(t));
    document.getElementById("count").textContent = page.total;
    document.getElementById("none").hidden = page.total > 0;
  }

  Fleet.start(async () => {
    await refresh();
    Fleet.live(["task"], refresh);
  });
})();
