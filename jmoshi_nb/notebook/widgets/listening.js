// jmoshi-nb listening test: a rater's name, then one blind trial at a time.
//
// Kernel -> browser (custom message + binary buffers):
//   {type: "clips", trial, n}       + n WAV files (24 kHz, 16-bit) of the trial: [clip] or [A, B]
// Browser -> kernel:
//   {type: "ready"}                 this view opened: (re)send the current trial's clips
//   {type: "rate", trial, naturalness, meaningfulness}   a MOS answer (1-5 each)
//   {type: "prefer", trial, choice}                      an A/B answer: "A" | "B" | "same",
//                                                        or a headphone-check answer: "1" | "2" | "3"
// Synced traits: rater (set here), trial {id, kind, index, total}, finished, answered, error, and
// labels {key: text}: every label, already in the widget's language (picked in Python, listening.py).
// h() and LabelledView (this.L(key)) come from labelled.js, put before this file in Python.

class ListeningView extends LabelledView {
  constructor(model, el) {
    super(model, el);
    this.urls = [];
    this.clipsFor = null; // trial id whose audio is loaded
    this.root = h("div", { class: "jmoshi-listen" });
    el.append(this.root);
    this.onMsg = (msg, buffers) => this.message(msg, buffers);
    this.onChange = () => this.render();
    model.on("msg:custom", this.onMsg);
    model.on("change:trial change:finished change:error change:labels change:rater change:answered", this.onChange);
    this.render();
    model.send({ type: "ready" });
  }

  message(msg, buffers) {
    if (msg.type !== "clips") return;
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = buffers.slice(0, msg.n).map((b) => URL.createObjectURL(new Blob([b], { type: "audio/wav" })));
    this.clipsFor = msg.trial;
    this.render();
  }

  player(i, name, ready) {
    // Until this trial's clips arrive, no source: the previous trial's clip must never play here.
    const audio = h("audio", { controls: "", preload: "auto", "data-clip": name });
    if (ready && this.urls[i]) audio.src = this.urls[i];
    return h("div", { class: "jmoshi-listen-clip" }, [h("span", { class: "jmoshi-listen-name" }, [name]), audio]);
  }

  scale(key, state) {
    const row = h("div", { class: "jmoshi-listen-scale", "data-criterion": key });
    for (let v = 1; v <= 5; v++) {
      const b = h("button", { class: "jmoshi-btn", "data-value": String(v) }, [String(v)]);
      if (state[key] === v) b.classList.add("jmoshi-on");
      b.addEventListener("click", () => {
        // No re-render: the clip keeps playing while the rater chooses.
        state[key] = v;
        for (const x of row.children) x.classList.toggle("jmoshi-on", x === b);
        if (this.submit) this.submit.disabled = !(this.clipsFor === state.trial && state.naturalness && state.meaningfulness);
      });
      row.append(b);
    }
    return h("div", {}, [h("div", { class: "jmoshi-listen-q" }, [this.L(key)]), row]);
  }

  renderRater() {
    const input = h("input", { type: "text", class: "jmoshi-listen-rater", value: this.model.get("rater") });
    const go = () => {
      this.model.set("rater", input.value.trim());
      this.model.save_changes();
    };
    input.addEventListener("keydown", (e) => e.key === "Enter" && go());
    return h("div", { class: "jmoshi-bar" }, [
      h("label", {}, [this.L("rater") + ": "]),
      input,
      h("button", { class: "jmoshi-btn jmoshi-listen-start", onclick: go }, [this.L("start")]),
    ]);
  }

  renderTrial(state) {
    const trial = this.model.get("trial") || {};
    const body = this.body;
    body.replaceChildren();
    this.submit = null;
    if (this.model.get("finished")) {
      body.append(h("div", { class: "jmoshi-listen-done" }, [this.L("done")]));
      return;
    }
    if (!trial.id) return;
    body.append(h("div", { class: "jmoshi-listen-progress" }, [`${trial.index} / ${trial.total}`]));
    const ready = this.clipsFor === trial.id;
    if (!ready) body.append(h("div", {}, [this.L("loading")]));
    if (trial.kind === "mos") {
      body.append(this.player(0, `${this.L("clip")} ${trial.index}`, ready));
      body.append(this.scale("naturalness", state), this.scale("meaningfulness", state));
      body.append(h("div", { class: "jmoshi-listen-hint" }, [this.L("scale")]));
      const submit = h("button", { class: "jmoshi-btn jmoshi-listen-submit" }, [this.L("submit")]);
      state.trial = trial.id;
      this.submit = submit;
      submit.disabled = !(ready && state.naturalness && state.meaningfulness);
      submit.addEventListener("click", () => {
        submit.disabled = true;
        this.model.send({
          type: "rate",
          trial: trial.id,
          naturalness: state.naturalness,
          meaningfulness: state.meaningfulness,
        });
      });
      body.append(submit);
    } else if (trial.kind === "headphone") {
      // the antiphase headphone check (research/listening_quality.py): which of three tones is the quietest
      body.append(this.player(0, this.L("headphone"), ready));
      body.append(h("div", { class: "jmoshi-listen-q" }, [this.L("quietest")]));
      const row = h("div", { class: "jmoshi-bar" });
      for (const choice of ["1", "2", "3"]) {
        const b = h("button", { class: "jmoshi-btn jmoshi-listen-choice", "data-choice": choice }, [`${this.L("tone")} ${choice}`]);
        b.disabled = !ready;
        b.addEventListener("click", () => {
          for (const x of row.querySelectorAll("button")) x.disabled = true;
          this.model.send({ type: "prefer", trial: trial.id, choice });
        });
        row.append(b);
      }
      body.append(row);
    } else {
      body.append(this.player(0, "A", ready), this.player(1, "B", ready));
      body.append(h("div", { class: "jmoshi-listen-q" }, [this.L("which")]));
      const row = h("div", { class: "jmoshi-bar" });
      for (const [choice, key] of [["A", "a"], ["same", "same"], ["B", "b"]]) {
        const b = h("button", { class: "jmoshi-btn jmoshi-listen-choice", "data-choice": choice }, [this.L(key)]);
        b.disabled = !ready;
        b.addEventListener("click", () => {
          for (const x of row.querySelectorAll("button")) x.disabled = true;
          this.model.send({ type: "prefer", trial: trial.id, choice });
        });
        row.append(b);
      }
      body.append(row);
    }
  }

  render() {
    const trialId = (this.model.get("trial") || {}).id;
    if (trialId !== this.stateFor) {
      this.state = {};
      this.stateFor = trialId;
    }
    this.root.replaceChildren();
    this.root.append(this.renderRater());
    this.body = h("div", { class: "jmoshi-listen-body" });
    this.root.append(this.body);
    const err = h("div", { class: "jmoshi-listen-error" }, [this.model.get("error")]);
    err.hidden = !this.model.get("error");
    this.root.append(err);
    if (this.model.get("rater")) this.renderTrial(this.state);
  }

  destroy() {
    this.model.off("msg:custom", this.onMsg);
    this.model.off(null, this.onChange);
    for (const u of this.urls) URL.revokeObjectURL(u);
  }
}

function render({ model, el }) {
  const view = new ListeningView(model, el);
  return () => view.destroy();
}

export default { render };
