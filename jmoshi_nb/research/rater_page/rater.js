// jmoshi-nb rater page: a rater's blind trials of a listening test, one at a time (research/listening_server.py).
//
// The page gets or makes a rater id (?rater=, else the one kept in this browser, else a new one from
// POST api/rater, put in the link so that a reload or a return continues), then shows the server's
// current trial: the clips play from a Play button (no seeking), the answers unlock once every clip
// has played to its end (rater-state.js), and each answer is sent to api/answer, which saves it
// before returning the next trial. At the end the server's completion code is shown.

import * as S from "./rater-state.js";

const L = JSON.parse(document.getElementById("labels").textContent);
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const STORE = `jmoshi-nb-rater:${location.pathname}`;
const $ = (sel) => document.querySelector(sel);

function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
}

let rater = null;
let state = null; // the server's state
let trial = null; // rater-state.js's state of the trial shown
let audios = [];

function showError(text) {
  const el = $(".rater-error");
  el.textContent = text || "";
  el.hidden = !text;
}

async function call(path, options = {}) {
  const res = await fetch(S.apiUrl(path, rater, token), options);
  let body = {};
  try {
    body = await res.json();
  } catch (e) {
    body = { error: `HTTP ${res.status}` };
  }
  return { ok: res.ok, status: res.status, body };
}

async function start() {
  $(".rater-title").textContent = L.title;
  rater = S.raterFrom(location.search, localStorage.getItem(STORE));
  if (!rater) {
    const r = await call("api/rater", { method: "POST" });
    if (!r.ok) return showError(r.body.error);
    rater = r.body.rater;
  }
  localStorage.setItem(STORE, rater);
  params.set("rater", rater);
  history.replaceState(null, "", `${location.pathname}?${params}`);
  $(".rater-id-box").replaceChildren(
    h("span", { class: "rater-id-label" }, [L.your_id + ": "]),
    h("code", { class: "rater-id" }, [rater]),
  );
  const body = $(".rater-body");
  body.replaceChildren(
    h("p", { class: "rater-intro" }, [L.intro]),
    h("button", { class: "rater-btn rater-begin", onclick: () => load() }, [L.begin]),
  );
}

async function load() {
  const r = await call("api/state");
  if (!r.ok) return showError(r.body.error);
  showState(r.body);
}

function showState(s) {
  for (const a of audios) a.pause();
  audios = [];
  state = s;
  trial = s.trial ? S.newTrialState(s.trial, s.full_play) : null;
  render();
}

function player(url, k, name) {
  const audio = new Audio(S.apiUrl(url, rater, token));
  audio.preload = "auto";
  audios.push(audio);
  const bar = h("div", { class: "rater-bar" }, [h("div", { class: "rater-bar-fill" })]);
  const button = h("button", { class: "rater-btn rater-play", "data-k": String(k) }, [`▶ ${name}`]);
  button.addEventListener("click", () => {
    for (const a of audios) if (a !== audio) a.pause();
    audio.currentTime = 0;
    audio.play().catch((e) => showError(String(e)));
    button.textContent = `${name}: ${L.playing}`;
  });
  audio.addEventListener("timeupdate", () => {
    const f = audio.duration ? audio.currentTime / audio.duration : 0;
    bar.firstChild.style.width = `${Math.min(100, 100 * f)}%`;
  });
  audio.addEventListener("ended", () => {
    bar.firstChild.style.width = "100%";
    button.textContent = `▶ ${name} (${L.played})`;
    trial = S.clipEnded(trial, k);
    update();
  });
  audio.addEventListener("error", () => showError(`${name}: ${L.loading}`));
  return h("div", { class: "rater-clip" }, [button, bar]);
}

function choiceRow(choices, labels) {
  const row = h("div", { class: "rater-choices" });
  choices.forEach((c, i) => {
    const b = h("button", { class: "rater-btn rater-choice", "data-choice": c }, [labels[i]]);
    b.addEventListener("click", () => {
      trial = S.pick(trial, "choice", c);
      update();
      send();
    });
    row.append(b);
  });
  return row;
}

function scale(key) {
  const row = h("div", { class: "rater-scale", "data-criterion": key });
  for (const v of S.SCALE) {
    const b = h("button", { class: "rater-btn rater-value", "data-value": String(v) }, [String(v)]);
    b.addEventListener("click", () => {
      trial = S.pick(trial, key, v);
      update();
    });
    row.append(b);
  }
  return h("div", { class: "rater-q" }, [h("div", { class: "rater-q-label" }, [L[key]]), row]);
}

function render() {
  showError("");
  const body = $(".rater-body");
  body.replaceChildren();
  body.append(h("div", { class: "rater-progress" }, [S.progressText(state, L.headphone)]));
  if (state.finished) {
    body.append(h("p", { class: "rater-done" }, [L.done]));
    if (state.code) {
      body.append(h("div", { class: "rater-code-label" }, [L.code]), h("div", { class: "rater-code" }, [state.code]));
    }
    return;
  }
  const t = state.trial;
  if (t.kind === "headphone") {
    body.append(h("p", { class: "rater-q-label" }, [L.quietest]));
    body.append(player(t.clips[0], 0, L.play));
    body.append(choiceRow(S.CHOICES.headphone, S.CHOICES.headphone.map((c) => `${L.tone} ${c}`)));
  } else if (t.kind === "ab") {
    body.append(player(t.clips[0], 0, "A"), player(t.clips[1], 1, "B"));
    body.append(h("p", { class: "rater-q-label" }, [L.which]));
    body.append(choiceRow(S.CHOICES.ab, [L.a, L.same, L.b]));
  } else {
    body.append(player(t.clips[0], 0, `${L.clip} ${t.index}`));
    body.append(scale("naturalness"), scale("meaningfulness"));
    body.append(h("div", { class: "rater-hint" }, [L.scale]));
    const submit = h("button", { class: "rater-btn rater-submit" }, [L.submit]);
    submit.addEventListener("click", () => send());
    body.append(submit);
  }
  body.append(h("div", { class: "rater-lock" }, [L.listen_first]));
  update();
}

function update() {
  if (!trial) return;
  const open = S.unlocked(trial) && !trial.sent;
  for (const b of document.querySelectorAll(".rater-value, .rater-choice")) b.disabled = !open;
  for (const row of document.querySelectorAll(".rater-scale")) {
    for (const b of row.children) b.classList.toggle("rater-on", trial.picks[row.dataset.criterion] === Number(b.dataset.value));
  }
  for (const b of document.querySelectorAll(".rater-choice")) b.classList.toggle("rater-on", trial.picks.choice === b.dataset.choice);
  const submit = $(".rater-submit");
  if (submit) submit.disabled = !S.canSend(trial);
  const lock = $(".rater-lock");
  if (lock) lock.hidden = S.unlocked(trial);
}

async function send() {
  const body = S.payload(trial, rater);
  if (!body) return;
  trial = S.sent(trial);
  update();
  const r = await call("api/answer", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (r.ok) return showState(r.body);
  if (r.status === 409) return load(); // answered elsewhere (another tab): show the next one
  trial = S.failed(trial);
  update();
  showError(`${L.not_saved}: ${r.body.error}`);
}

start().catch((e) => showError(String(e)));
