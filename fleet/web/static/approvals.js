/* Approvals page: tasks WAITING_HUMAN as compact rows that expand to the
   question, payload and one set of answer buttons (the question's own
   options, more info and feedback when it has options, else approve /
   reject / more info / feedback; more info queues a research_loop task);
   100 to a page. */
"use strict";
(() => {
  const { el, get, post, act, when } = Fleet;
  const LIMIT = 100;
  let offset = 0;

  function answerButtons(t, text, reply) {
    const q = t.question || {};
    const send = (decision) => {
      if ((decision === "more_info" || decision === "feedback") && !text.value.trim()) {
        Fleet.toast("Write what you need (or your feedback) in the box first.", true);
        return;
      }
      reply({ decision, text: text.value }, decision.replace("_", " "));
    };
    if ((q.options || []).length) {  /* the question's own options answer with exactly that option */
      return el("div", { class: "controls mut options" }, el("span", { class: "muted small" }, "Answer:"),
        ...q.options.map((o) => el("button", { class: "small", onclick: () => reply({ answer: o }, JSON.stringify(o)) }, String(o))),
        el("button", { class: "small", onclick: () => send("more_info") }, "Need more info"),
        el("button", { class: "small", onclick: () => send("feedback") }, "Send feedback"));
    }
    return el("div", { class: "controls mut" },
      el("button", { class: "primary", onclick: () => send("approve") }, "Approve"),
      el("button", { onclick: () => send("reject") }, "Reject"),
      el("button", { onclick: () => send("more_info") }, "Need more info"),
      el("button", { onclick: () => send("feedback") }, "Send feedback"));
  }

  function row(t) {
    const q = t.question || {};
    const text = el("textarea", { rows: 2, placeholder: "note, feedback or what more you need", class: "answer-text" });
    const reply = async (body, label) => {
      /* "more info" also queues a research_loop task on the text (the reply names it) */
      const said = (out) => `Task ${t.id}: ${label} sent` + (out && out.research_task
        ? `; research task #${out.research_task.id} queued` : out && out.research_not_queued
        ? `; no research task (${out.research_not_queued})` : "");
      const out = await act(() => post("/api/tasks/" + t.id + "/respond", body), said);
      if (out) refresh();
    };
    return el("details", { class: "approval", dataset: { taskId: t.id } },
      el("summary", {}, el("b", {}, "#" + t.id), " ", el("span", { class: "skill" }, t.skill), " ",
        el("span", { class: "q" }, q.question || "(no question text)"),
        el("span", { class: "muted small since" }, when(t.updated_at))),
      el("div", { class: "body" },
        el("p", { class: "question" }, q.question || "(no question text)"),
        el("p", { class: "muted small clip" }, t.payload_preview, " ", el("a", { href: "/tasks/" + t.id }, "open the task")),
        text, answerButtons(t, text, reply)));
  }

  async function refresh() {
    const page = await get(`/api/tasks?status=WAITING_HUMAN&limit=${LIMIT}&offset=${offset}`);
    if (!page.items.length && offset > 0) { offset = Math.max(0, offset - LIMIT); return refresh(); }
    const box = document.getElementById("approvals");
    /* keep what the operator is typing (and which rows are open): only rebuild rows that changed */
    const have = new Map([...box.children].map((c) => [c.dataset.taskId, c]));
    const want = page.items.map((t) => String(t.id));
    for (const [id, node] of have) if (!want.includes(id)) node.remove();
    page.items.forEach((t, i) => {  /* page order; a row already in place is not moved (it keeps focus) */
      const node = have.get(String(t.id)) || row(t);
      if (box.children[i] !== node) box.insertBefore(node, box.children[i] || null);
    });
    document.getElementById("count").textContent = page.total;
    document.getElementById("none").hidden = page.total > 0;
    const last = offset + page.items.length;
    document.getElementById("pager").hidden = page.total <= LIMIT;
    document.getElementById("pageinfo").textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "";
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = last >= page.total;
  }

  Fleet.start(async () => {
    document.getElementById("prev").addEventListener("click", () => { offset = Math.max(0, offset - LIMIT); refresh(); });
    document.getElementById("next").addEventListener("click", () => { offset += LIMIT; refresh(); });
    await refresh();
    Fleet.live(["task"], refresh, 1000);
  });
})();
