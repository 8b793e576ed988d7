/* One task: fields, payload, result, error, question/answer, attempts, events, actions. */
"use strict";
(() => {
  const { el, get, post, act, fill, when, badge, json } = Fleet;
  const id = parseInt(document.getElementById("task").dataset.taskId, 10);

  async function refresh() {
    let d;
    try { d = await get("/api/tasks/" + id); } catch (e) {
      if (e.status === 404) { notFound(); return; }
      document.getElementById("fields").replaceChildren(el("dd", { class: "error" }, e.message));
      return;
    }
    const t = d.task;
    const st = document.getElementById("status");
    st.textContent = t.status; st.className = "badge st-" + t.status.toLowerCase();
    const due = t.status === "PENDING" && t.available_at && t.available_at > Date.now() / 1000;
    /* only the fields that have a value: no rows of "–" */
    const fields = [["Skill", t.skill], ["Priority", t.priority], ["Attempts", t.attempts + " of " + t.max_attempts],
      ["Scheduled", due ? "due " + when(t.available_at) : null],
      ["Worker", t.worker], ["Assigned to", t.assigned_to], ["Created", when(t.created_at) + (t.created_by ? " by " + t.created_by : "")],
      ["Started", t.started_at ? when(t.started_at) : null], ["Finished", t.finished_at ? when(t.finished_at) : null],
      ["Error reason", t.error_reason], ["Depends on", d.depends_on.join(", ")], ["Dependents", d.dependents.join(", ")]]
      .filter(([, v]) => v !== null && v !== undefined && v !== "");
    if (t.cancel_requested && t.status === "RUNNING") fields.push(["Cancel", "requested; the worker stops at its next renewal"]);
    document.getElementById("fields").replaceChildren(...fields.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    block("payload", json(t.payload));
    block("result", json(t.result));
    block("error", t.error || "");
    const q = document.getElementById("question");
    q.replaceChildren();
    if (t.question) {
      q.append(el("div", { class: "card inset" }, el("b", {}, "Question: "), t.question.question,
        t.status === "WAITING_HUMAN" ? el("p", {}, el("a", { href: "/approvals" }, "Answer it on the Approvals page")) : "",
        t.answer !== null ? el("p", {}, el("b", {}, "Answer: "), json(t.answer)) : ""));
    }
    fill(document.querySelector("#attempts tbody"), d.attempts.map((a) => el("tr", {},
      el("td", {}, a.attempt_no), el("td", {}, a.worker), el("td", {}, when(a.started_at)), el("td", {}, when(a.ended_at)),
      el("td", {}, a.outcome), el("td", {}, a.error ? el("pre", { class: "tb" }, a.error) : ""))));
    document.getElementById("attempts-box").hidden = !d.attempts.length;
    document.getElementById("events").replaceChildren(...d.events.map((e) => el("li", {},
      el("span", { class: "muted" }, when(e.ts)), " ", el("b", {}, e.action), " ", el("span", { class: "muted" }, e.actor))));
    document.getElementById("events-box").hidden = !d.events.length;
    document.querySelector(".controls").hidden = false;
    for (const b of document.querySelectorAll(".controls button")) {
      const a = b.dataset.act;
      b.hidden = (a === "retry" && !["DONE", "FAILED", "CANCELLED"].includes(t.status)) ||
        (a === "cancel" && !["PENDING", "RUNNING", "WAITING_HUMAN"].includes(t.status));
    }
  }

  /* a block (heading + pre) shows only when it has something to show */
  function block(name, text) {
    document.getElementById(name).textContent = text;
    document.getElementById(name + "-box").hidden = !text;
  }

  function notFound() {
    const st = document.getElementById("status");
    st.textContent = "not found"; st.className = "badge st-failed";
    const fields = document.getElementById("fields");
    fields.hidden = true;
    if (!document.getElementById("not-found")) {
      fields.after(el("p", { class: "muted", id: "not-found" },
        `There is no task ${id}: it may have been pruned with old history, or the id is wrong. `, el("a", { href: "/tasks" }, "Back to the tasks")));
    }
    for (const n of document.querySelectorAll(".controls, #question, .task-block")) n.hidden = true;
  }

  Fleet.start(async () => {
    for (const b of document.querySelectorAll(".controls button")) {
      b.addEventListener("click", async () => {
        const what = b.dataset.act;
        const out = await act(() => post("/api/tasks/" + id + "/" + what), what + " done");
        if (out && what === "requeue") location.href = "/tasks/" + out.task.id;
        else refresh();
      });
    }
    await refresh();
    Fleet.live(["task"], (events) => {
      if (!events.length || events.some((e) => e.task_id === id)) return refresh();
    });
  });
})();
