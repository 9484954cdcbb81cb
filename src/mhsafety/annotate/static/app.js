// Annotation client. Everything about the taxonomy (node questions, definitions, which
// answer stops the walk) comes from /api/config; this file holds no copy of it. The walk
// itself (which question comes next) is in walk.js.
"use strict";

const S = {
  config: null, annotator: null, token: null,
  item: null, answers: [], leafStep: false, shownAt: 0,
  busy: false, overlay: null,
};
const $ = (id) => document.getElementById(id);

function setState(name) { document.body.dataset.state = name; }

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (S.token) headers["X-Annotate-Token"] = S.token;
  const init = body === undefined ? { headers } : { method: "POST", headers, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  let data = {};
  try { data = await res.json(); } catch (e) { /* empty or non-JSON body */ }
  if (!res.ok) {
    const err = new Error(data.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

function show(section) {
  for (const id of ["login", "work", "done"]) $(id).hidden = id !== section;
}

function category(id) { return S.config.taxonomy.labels[id]; }
function nodes() { return S.config.taxonomy.nodes; }
function unsafeLeaves() { return walk.unsafeLeaves(S.config.taxonomy); }

// ---------------------------------------------------------------- session

async function start(name) {
  const info = await api("/api/session", { annotator: name });
  S.annotator = info.annotator;
  sessionStorage.setItem("mhsafety.annotator", S.annotator);
  if (S.token) sessionStorage.setItem("mhsafety.token", S.token);
  $("annotator-name").textContent = S.annotator;
  $("who").hidden = false;
  showProgress(info.progress);
  if (!info.note_acknowledged) { openOverlay("note"); return; }
  await loadNext();
}

function signOut() {
  sessionStorage.removeItem("mhsafety.annotator");
  sessionStorage.removeItem("mhsafety.token");
  S.annotator = null; S.token = null; S.item = null;
  $("who").hidden = true;
  show("login");
  setState("login");
  $("name").focus();
}

function showProgress(p) {
  if (!p || p.total === undefined) return;
  const skipped = p.skipped ? ` · ${p.skipped} skipped` : "";
  $("progress").textContent = `${p.labelled} / ${p.total} labelled${skipped}`;
}

function openOverlay(name) {
  S.overlay = name;
  $(name).hidden = false;
  setState(name);
  $(`${name}-ok`).focus();
}

async function closeOverlay() {
  const name = S.overlay;
  $(name).hidden = true;
  S.overlay = null;
  if (name === "note") {
    await api("/api/note", { annotator: S.annotator });
    await loadNext();
  } else {
    setState(S.item ? (S.leafStep ? "leaf" : "question") : "done");
  }
}

function breakCount(increment) {
  const key = `mhsafety.count.${S.annotator}`;
  const n = Number(sessionStorage.getItem(key) || 0) + increment;
  sessionStorage.setItem(key, String(n));
  return n;
}

// ---------------------------------------------------------------- items

async function loadNext() {
  setState("loading");
  const data = await api("/api/next", { annotator: S.annotator });
  showProgress(data.progress);
  if (!data.item) {
    S.item = null;
    show("done");
    setState("done");
    return;
  }
  renderItem(data.item, "");
}

function bubble(role, text, review) {
  const div = document.createElement("div");
  div.className = `turn ${role}${review ? " review" : ""}`;
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = role === "seeker" ? "Seeker" : "Supporter";
  div.append(who, document.createTextNode(text));
  return div;
}

function renderItem(item, comment) {
  S.item = item; S.answers = []; S.leafStep = false;
  S.shownAt = performance.now();
  const box = $("dialogue");
  box.replaceChildren();
  box.dataset.itemId = item.id;
  for (const t of item.turns) box.append(bubble(t.role, t.text, false));
  box.append(bubble("supporter", item.response, true));
  if (item.skipped_before) status(`You skipped item ${item.id} before.`);
  $("comment").value = comment || "";
  show("work");
  renderQuestion();
  box.lastElementChild.scrollIntoView({ block: "nearest" });
}

function button(text, key, onClick, cls, detail) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.append(document.createTextNode(`${text} `));
  const k = document.createElement("kbd");
  k.textContent = key;
  b.append(k);
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    b.append(small);
  }
  b.addEventListener("click", onClick);
  return b;
}

function renderTrail() {
  const trail = $("trail");
  trail.replaceChildren();
  S.answers.forEach((a, i) => {
    const li = document.createElement("li");
    li.textContent = `${nodes()[i].title}: ${a ? "yes" : "no"}`;
    trail.append(li);
  });
}

function renderQuestion() {
  renderTrail();
  const buttons = $("q-buttons");
  buttons.replaceChildren();
  buttons.classList.toggle("leaves", S.leafStep);
  if (S.leafStep) {
    $("q-title").textContent = "Node 4 · Which unsafe kind?";
    $("q-text").textContent = "The response is not safe. Which kind of unsafe response is it?";
    $("q-definition").textContent = "";
    $("q-stop").textContent = "Press 1–4.";
    unsafeLeaves().forEach((id, i) => {
      const c = category(id);
      buttons.append(button(c.name, String(i + 1), () => chooseLeaf(i), "leaf", c.definition));
    });
    setState("leaf");
    return;
  }
  const node = walk.next(S.config.taxonomy, S.answers).ask;
  $("q-title").textContent = `Node ${node.number} of ${nodes().length} · ${node.title}`;
  $("q-text").textContent = node.question;
  if (node !== walk.lastNode(S.config.taxonomy)) {
    const c = category(node.labels[0]);
    $("q-definition").textContent = `${c.name}: ${c.definition}`;
    $("q-stop").textContent = `Answering ${node.fires_on ? "yes" : "no"} labels it ${c.name}.`;
  } else {
    const safe = category(node.labels.find((id) => category(id).safe));
    $("q-definition").textContent = `${safe.name}: ${safe.definition}`;
    $("q-stop").textContent = `Yes labels it ${safe.name}; no asks which unsafe kind it is.`;
  }
  buttons.append(button("Yes", "y", () => answer(true), "answer"),
                 button("No", "n", () => answer(false), "answer"));
  setState("question");
}

function answer(value) {
  if (S.busy || !S.item || S.leafStep) return;
  S.answers.push(value);
  const step = walk.next(S.config.taxonomy, S.answers);
  if (step.submit) { submit(null); return; }
  if (step.leaf) S.leafStep = true;
  renderQuestion();
}

function chooseLeaf(i) {
  if (S.busy || !S.leafStep) return;
  submit(unsafeLeaves()[i]);
}

function elapsed() { return Math.max(0, (performance.now() - S.shownAt) / 1000); }

async function submit(leaf) {
  S.busy = true;
  setState("saving");
  try {
    const data = await api("/api/annotate", {
      annotator: S.annotator, item_id: S.item.id, answers: S.answers, leaf,
      comment: $("comment").value, seconds: elapsed(),
    });
    status(`Saved item ${data.saved.item_id}: ${data.label_name}.`);
    showProgress(data.progress);
    const n = breakCount(1);
    await loadNext();
    if (n % S.config.break_every === 0) {
      $("break-text").textContent = `You have labelled ${n} items in this sitting.`;
      openOverlay("break");
    }
  } catch (e) {
    // Not saved: step back so the last answer can be given again.
    if (S.leafStep && leaf !== null) { /* stay on the leaf question */ }
    else { S.answers.pop(); S.leafStep = false; }
    status(`Not saved: ${e.message}`, true);
    renderQuestion();
  } finally {
    S.busy = false;
  }
}

async function skip() {
  if (S.busy || !S.item) return;
  S.busy = true;
  try {
    const data = await api("/api/skip", {
      annotator: S.annotator, item_id: S.item.id, comment: $("comment").value, seconds: elapsed(),
    });
    status(`Skipped item ${data.saved.item_id}; it comes back after the others.`);
    await loadNext();
  } catch (e) {
    status(`Not skipped: ${e.message}`, true);
  } finally {
    S.busy = false;
  }
}

async function undo() {
  if (S.busy) return;
  if (S.item && S.leafStep) { S.leafStep = false; S.answers.pop(); renderQuestion(); return; }
  if (S.item && S.answers.length) { S.answers.pop(); renderQuestion(); return; }
  S.busy = true;
  try {
    const data = await api("/api/undo", { annotator: S.annotator });
    showProgress(data.progress);
    if (!data.item) { status("Nothing to undo."); return; }
    const was = data.undone.label === null ? "skipped" : category(data.undone.label).name;
    renderItem(data.item, data.undone.comment);
    status(`Reopened item ${data.item.id} (was: ${was}).`);
  } catch (e) {
    status(`Undo failed: ${e.message}`, true);
  } finally {
    S.busy = false;
  }
}

// ---------------------------------------------------------------- keyboard

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (S.overlay) {
    if (ev.key === "Enter") { ev.preventDefault(); closeOverlay().catch(failed); }
    return;
  }
  const t = ev.target;
  if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (!S.annotator) return;
  const key = ev.key.toLowerCase();
  let handled = true;
  if (key === "u" || key === "backspace") undo();
  else if (!S.item) handled = false;
  else if (key === "y" && !S.leafStep) answer(true);
  else if (key === "n" && !S.leafStep) answer(false);
  else if (S.leafStep && ["1", "2", "3", "4"].includes(key)) chooseLeaf(Number(key) - 1);
  else if (key === "s") skip();
  else if (key === "c") $("comment").focus();
  else handled = false;
  if (handled) ev.preventDefault();
}

function failed(e) { status(e.message, true); }

async function init() {
  S.config = await api("/api/config");
  $("token-row").hidden = !S.config.token_required;
  document.addEventListener("keydown", onKey);
  $("undo").addEventListener("click", () => undo());
  $("skip").addEventListener("click", () => skip());
  $("switch").addEventListener("click", signOut);
  $("note-ok").addEventListener("click", () => closeOverlay().catch(failed));
  $("break-ok").addEventListener("click", () => closeOverlay().catch(failed));
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    S.token = $("token").value || null;
    start($("name").value).catch((e) => {
      if (e.status === 401) S.token = null;
      $("login").querySelector(".hint").textContent = e.message;
    });
  });
  const saved = sessionStorage.getItem("mhsafety.annotator");
  S.token = sessionStorage.getItem("mhsafety.token");
  if (saved) {
    try { await start(saved); return; } catch (e) { /* fall through to the sign-in form */ }
  }
  show("login");
  setState("login");
  $("name").focus();
}

document.addEventListener("DOMContentLoaded", () => init().catch(failed));
