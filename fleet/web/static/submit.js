/* Submit page: a form generated from the chosen skill's PAYLOAD_SCHEMA (or raw
   JSON), and an instruction box that asks the intent parser for a task. */
"use strict";
(() => {
  const { el, get, post, act, badge } = Fleet;
  let skills = {};
  const fieldsBox = document.getElementById("payload-fields");
  const select = document.getElementById("skill");

  function inputFor(name, prop, required) {
    const id = "f-" + name;
    const label = el("label", { for: id }, name + (required ? " *" : ""));
    const help = prop.description ? el("span", { class: "muted small" }, " " + prop.description) : null;
    let input;
    const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
    if (prop.enum) {
      input = el("select", { id, name }, required ? null : el("option", { value: "" }, ""),
        ...prop.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
      input.dataset.kind = "enum";
    } else if (type === "boolean") {
      input = el("input", { id, name, type: "checkbox" });
      if (prop.default === true) input.checked = true;
      input.dataset.kind = "boolean";
    } else if (type === "integer" || type === "number") {
      input = el("input", { id, name, type: "number", step: type === "integer" ? "1" : "any",
        min: prop.minimum, max: prop.maximum, value: prop.default });
      input.dataset.kind = type;
    } else if (type === "array" && prop.items && prop.items.type === "string") {
      input = el("textarea", { id, name, rows: 3, placeholder: "one per line" });
      if (Array.isArray(prop.default)) input.value = prop.default.join("\n");
      input.dataset.kind = "lines";
    } else if (type === "string") {
      const long = (prop.maxLength || 0) > 200 || prop.format === "textarea";
      input = long ? el("textarea", { id, name, rows: 4 }) : el("input", { id, name, type: "text" });
      if (prop.default !== undefined) input.value = prop.default;
      input.dataset.kind = "string";
    } else {
      input = el("textarea", { id, name, rows: 3, placeholder: "JSON" });
      if (prop.default !== undefined) input.value = JSON.stringify(prop.default);
      input.dataset.kind = "json";
    }
    if (required) input.required = true;
    return el("div", { class: "field" }, label, input, help);
  }

  function renderForm() {
    const info = skills[select.value];
    fieldsBox.replaceChildren();
    if (!info) return;
    document.getElementById("skill-desc").textContent = info.description || "";
    const schema = info.payload_schema || {};
    const req = new Set(schema.required || []);
    const internal = new Set(info.internal_fields || []);  /* set by the store when a person answers */
    const shown = Object.entries(schema.properties || {}).filter(([name]) => !internal.has(name));
    for (const [name, prop] of shown) fieldsBox.append(inputFor(name, prop, req.has(name)));
    const refusal = document.getElementById("skill-refusal");
    refusal.textContent = info.mode_refusal ? "Not runnable now: " + info.mode_refusal : "";
    refusal.hidden = !info.mode_refusal;
    if (!shown.length) fieldsBox.append(el("p", { class: "muted" }, "This skill takes no declared fields; use the JSON box for a free-form payload."));
  }

  function collect() {
    const payload = {};
    for (const input of fieldsBox.querySelectorAll("input, select, textarea")) {
      const k = input.dataset.kind, v = input.value;
      if (k === "boolean") { payload[input.name] = input.checked; continue; }
      if (v === "" || v === undefined) continue;
      if (k === "integer") payload[input.name] = parseInt(v, 10);
      else if (k === "number") payload[input.name] = parseFloat(v);
      else if (k === "enum") payload[input.name] = JSON.parse(v);
      else if (k === "lines") payload[input.name] = v.split("\n").map((s) => s.trim()).filter(Boolean);
      else if (k === "json") {
        try { payload[input.name] = JSON.parse(v); } catch (e) { throw new Error(`field ${input.name} is not valid JSON`); }
      } else payload[input.name] = v;
    }
    return payload;
  }

  function setPayload(payload) {
    for (const [name, value] of Object.entries(payload || {})) {
      const input = fieldsBox.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!input) continue;
      const k = input.dataset.kind;
      if (k === "boolean") input.checked = !!value;
      else if (k === "enum") input.value = JSON.stringify(value);
      else if (k === "lines") input.value = (value || []).join("\n");
      else if (k === "json") input.value = JSON.stringify(value);
      else input.value = value;
    }
    document.getElementById("payload-json").value = JSON.stringify(payload || {}, null, 2);
  }

  async function submit(ev) {
    ev.preventDefault();
    let payload;
    const out = document.getElementById("submit-out");
    try { payload = collect(); } catch (e) { Fleet.toast(e.message, true); return; }
    const body = { skill: select.value, payload, priority: parseInt(document.getElementById("priority").value || "5", 10) };
    const res = await act(() => post("/api/tasks", body));
    if (!res) return;
    const t = res.task;
    out.replaceChildren("Submitted ", el("a", { href: "/tasks/" + t.id, id: "submitted-link", dataset: { taskId: t.id } }, "task " + t.id), " ",
      el("span", { id: "submitted-status" }, badge(t.status)));
    watch(t.id);
  }

  let watching = null;
  function watch(id) { watching = id; }
  async function refreshWatched(events) {
    if (!watching || (events.length && !events.some((e) => e.task_id === watching))) return;
    const d = await get("/api/tasks/" + watching);
    const s = document.getElementById("submitted-status");
    if (s) s.replaceChildren(badge(d.task.status));
  }

  async function parseIntent(ev) {
    ev.preventDefault();
    const text = document.getElementById("instruction").value.trim();
    if (!text) return;
    const out = document.getElementById("intent-out");
    if (!Fleet.session().authenticated) { Fleet.toast("Sign in first (top right) to make changes.", true); return; }
    let res;
    try {
      res = await post("/api/intent", { instruction: text });
    } catch (e) {
      const cands = (e.data && e.data.candidates) || [];
      out.replaceChildren(el("span", { class: "error" }, e.message), ...cands.map((c) => el("div", {},
        el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); select.value = c.skill; renderForm(); } }, c.skill),
        el("span", { class: "muted" }, ` (confidence ${c.confidence}) ${c.description || ""}`))));
      return;
    }
    if (res.skill && skills[res.skill]) {
      select.value = res.skill; renderForm(); setPayload(res.payload);
      if (res.priority) document.getElementById("priority").value = res.priority;
      out.textContent = `Understood as ${res.skill}` + (res.confidence !== undefined ? ` (confidence ${res.confidence})` : "") + ". Check the fields, then submit.";
    } else {
      out.textContent = JSON.stringify(res);
    }
  }

  Fleet.start(async () => {
    const s = await get("/api/skills?stats=false");  /* the catalogue only: no task is counted */
    skills = Object.fromEntries(s.skills.filter((k) => k.installed).map((k) => [k.name, k]));
    /* skills the fleet's mode refuses (air-gap, offline) are listed last and never the default */
    const names = Object.keys(skills);
    const allowed = names.filter((n) => !skills[n].mode_refusal), refused = names.filter((n) => skills[n].mode_refusal);
    select.replaceChildren(...allowed.map((n) => el("option", { value: n }, n)),
      refused.length ? el("optgroup", { label: "not allowed in this mode" },
        ...refused.map((n) => el("option", { value: n, title: skills[n].mode_refusal }, n))) : null);
    const want = new URLSearchParams(location.search).get("skill");
    if (want && skills[want]) select.value = want;
    else if (allowed.length) select.value = allowed[0];
    select.addEventListener("change", renderForm);
    renderForm();
    document.getElementById("submit-form").addEventListener("submit", submit);
    document.getElementById("use-json").addEventListener("click", () => {
      try { setPayload(JSON.parse(document.getElementById("payload-json").value || "{}")); } catch (e) { Fleet.toast("That is not valid JSON", true); }
    });
    const intent = document.getElementById("intent-form");
    if (intent) intent.addEventListener("submit", parseIntent);
    Fleet.live(["task"], refreshWatched);
  });
})();
