// jmoshi-nb rater page: the trial state of the page, without the DOM (node tests import this file).
//
// A trial from the server is {id, kind: "rate" | "ab" | "headphone", index, clips: [url], seconds}.
// The page may send its answer once every clip has played to the end (when the test asks for full
// play), the answer is complete, and it has not been sent yet. The server checks all of it again.

export const SCALE = [1, 2, 3, 4, 5];
export const CRITERIA = ["naturalness", "meaningfulness"];
export const CHOICES = { ab: ["A", "same", "B"], headphone: ["1", "2", "3"] };
const RATER_ID = /^[\p{L}\p{N}_-][\p{L}\p{N}_.-]{0,63}$/u;

/** The rater id: `?rater=` of the link first, else the one this browser kept; null when none or unsafe. */
export function raterFrom(search, stored) {
  const given = new URLSearchParams(search).get("rater");
  for (const id of [given, stored]) {
    if (id && RATER_ID.test(id) && !id.includes("..")) return id;
  }
  return null;
}

/** A URL of the server's API, relative to the page, with the rater and the token (if any). */
export function apiUrl(path, rater, token) {
  const q = new URLSearchParams();
  if (rater) q.set("rater", rater);
  if (token) q.set("token", token);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** The page's state for a new trial: nothing played, nothing picked, nothing sent. */
export function newTrialState(trial, fullPlay) {
  return { id: trial.id, kind: trial.kind, fullPlay: !!fullPlay, ended: trial.clips.map(() => false), picks: {}, sent: false };
}

/** Clip `k` played to its end. */
export function clipEnded(s, k) {
  const ended = s.ended.slice();
  if (k >= 0 && k < ended.length) ended[k] = true;
  return { ...s, ended };
}

/** Whether the answers may be given: every clip played to the end (or full play not required). */
export function unlocked(s) {
  return !s.fullPlay || s.ended.every(Boolean);
}

/** The rater picked `value` for `key` ("naturalness", "meaningfulness" or "choice"); ignored while locked or not allowed. */
export function pick(s, key, value) {
  if (!unlocked(s) || s.sent) return s;
  const allowed = s.kind === "rate" ? CRITERIA.includes(key) && SCALE.includes(value) : key === "choice" && (CHOICES[s.kind] || []).includes(value);
  if (!allowed) return s;
  return { ...s, picks: { ...s.picks, [key]: value } };
}

/** Whether the answer is complete and may be sent now. */
export function canSend(s) {
  if (!unlocked(s) || s.sent) return false;
  return s.kind === "rate" ? CRITERIA.every((c) => s.picks[c] !== undefined) : s.picks.choice !== undefined;
}

/** The body of POST api/answer, or null when it cannot be sent yet. */
export function payload(s, rater) {
  if (!canSend(s)) return null;
  const body = { rater, trial: s.id };
  if (s.kind === "rate") for (const c of CRITERIA) body[c] = s.picks[c];
  else body.choice = s.picks.choice;
  return body;
}

/** The answer is on its way: no second one for this trial. */
export function sent(s) {
  return { ...s, sent: true };
}

/** The server did not save it: the rater may send again. */
export function failed(s) {
  return { ...s, sent: false };
}

/** "3 / 12" for the trial, or "ヘッドホンチェック 1 / 6" style text during the headphone check (label given). */
export function progressText(state, headphoneLabel) {
  const t = state.trial;
  if (!t) return `${state.total} / ${state.total}`;
  if (t.check) return `${headphoneLabel} ${t.check[0]} / ${t.check[1]}`;
  return `${t.index} / ${state.total}`;
}
