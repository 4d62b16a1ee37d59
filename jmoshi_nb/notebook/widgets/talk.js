// jmoshi-nb talk widget: microphone -> kernel, kernel -> speaker, the model's text, counters.
//
// Browser -> kernel (custom messages with binary buffers):
//   {type: "frame", seq}            + Float32Array(frame_size) at sample_rate, mono (zeros while muted)
//   {type: "ping", id, t}           round-trip probe, answered with "pong"
// Kernel -> browser:
//   {type: "audio"}                 + Float32Array of model audio at sample_rate (any length)
//   {type: "pong", id, t}           answer to a ping
//   {type: "done", seq}             the server finished the frame sent as `seq` (latency probe)
//   {type: "stop_mic"}              the session ended: release the microphone
//
//
// Set by Python (jmoshi_nb/notebook/widgets/talk_widget.py), never repeated here:
//   sample_rate, frame_size         the audio format (jmoshi_nb/core/audio.py)
//   worklets {capture, player}      the sources of capture-worklet.js and player-worklet.js: AudioWorklet
//                                   modules must come from a URL, so they are loaded as Blob URLs
//   labels {key: text}              every label, already in the widget's language
// h() and LabelledView (this.L(key)) come from labelled.js, put before this file in Python.

function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Why this page cannot capture a microphone at all ("" when it can try). */
function micApiProblem() {
  const md = globalThis.navigator?.mediaDevices;
  return md && typeof md.getUserMedia === "function" ? "" : "no_mic_api";
}

/** getUserMedia failures by name -> the label key of their reason (the text is in the `labels` trait). */
const MIC_ERRORS = {
  NotAllowedError: "mic_denied",
  SecurityError: "mic_denied",
  NotFoundError: "mic_missing",
  OverconstrainedError: "mic_unfit",
  NotReadableError: "mic_unreadable",
};

function workletUrl(code) {
  return URL.createObjectURL(new Blob([code], { type: "application/javascript" }));
}

function toFloat32(view) {
  // Buffers arrive as DataView (ipywidgets 8) or ArrayBuffer; copy to an aligned Float32Array.
  if (view instanceof ArrayBuffer) return new Float32Array(view.slice(0));
  return new Float32Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
}

class Audio {
  /** The AudioContext, the player worklet and (when on) the microphone. One per view. */
  constructor(model, view) {
    this.model = model;
    this.view = view;
    this.ctx = null;
    this.player = null;
    this.gain = null;
    this.mic = null;
  }

  async ensure() {
    if (this.ctx) {
      if (this.ctx.state !== "running") await this.ctx.resume();
      return;
    }
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: this.model.get("sample_rate"), latencyHint: "interactive" });
    } catch (_err) {
      ctx = new AudioContext({ latencyHint: "interactive" }); // the worklets resample
    }
    await this.load(ctx);
  }

  async load(ctx) {
    const sources = this.model.get("worklets");
    await ctx.audioWorklet.addModule(workletUrl(sources.capture));
    await ctx.audioWorklet.addModule(workletUrl(sources.player));
    const player = new AudioWorkletNode(ctx, "jmoshi-player", {
      numberOfInputs: 0,
      outputChannelCount: [1],
      processorOptions: {
        sourceRate: this.model.get("sample_rate"),
        jitterMs: this.model.get("jitter_ms"),
        maxJitterMs: this.model.get("max_jitter_ms"),
        maxMs: 1500,
      },
    });
    player.port.onmessage = (e) => this.view.onPlayer(e.data);
    const gain = ctx.createGain();
    player.connect(gain).connect(ctx.destination);
    this.ctx = ctx;
    this.player = player;
    this.gain = gain;
    this.setVolume();
    if (ctx.state !== "running") await ctx.resume();
  }

  setVolume() {
    if (this.gain) this.gain.gain.value = this.model.get("speaker_muted") ? 0 : this.model.get("volume");
  }

  play(pcm) {
    if (this.player) this.player.port.postMessage({ type: "audio", pcm }, [pcm.buffer]);
  }

  async startMic(onFrame) {
    await this.ensure();
    const m = this.model;
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: m.get("echo_cancellation"),
        noiseSuppression: m.get("noise_suppression"),
        autoGainControl: m.get("auto_gain_control"),
      },
    });
    let source;
    try {
      source = this.ctx.createMediaStreamSource(stream);
    } catch (_err) {
      // Firefox cannot mix sample rates in one graph: rebuild the context at the device rate.
      await this.ctx.close();
      this.ctx = null;
      await this.load(new AudioContext({ latencyHint: "interactive" }));
      source = this.ctx.createMediaStreamSource(stream);
    }
    const capture = new AudioWorkletNode(this.ctx, "jmoshi-capture", {
      numberOfOutputs: 1,
      processorOptions: { frameSize: m.get("frame_size"), targetRate: m.get("sample_rate") },
    });
    capture.port.onmessage = (e) => onFrame(e.data);
    const sink = this.ctx.createGain();
    sink.gain.value = 0; // keep the capture node pulled by the graph without hearing yourself
    source.connect(capture).connect(sink).connect(this.ctx.destination);
    this.mic = { stream, source, capture, sink };
  }

  stopMic() {
    if (!this.mic) return;
    const { stream, source, capture, sink } = this.mic;
    capture.port.onmessage = null;
    source.disconnect();
    capture.disconnect();
    sink.disconnect();
    for (const track of stream.getTracks()) track.stop();
    this.mic = null;
  }

  close() {
    this.stopMic();
    if (this.ctx) this.ctx.close();
    this.ctx = null;
  }
}

class TalkView extends LabelledView {
  constructor(model, el) {
    super(model, el);
    this.audio = new Audio(model, this);
    this.seq = 0;
    this.sentAt = new Map();
    this.latencies = [];
    this.pings = new Map();
    this.stats = { frames_sent: 0, samples_played: 0, samples_received: 0, underruns: 0, buffered_ms: 0 };
    this.lastSave = 0;
    this.build();
    this.bind();
    const problem = micApiProblem();
    if (problem && model.get("input_mode") === "mic" && !model.get("mic_problem")) {
      model.set("mic_problem", problem);
      model.save_changes();
    }
    this.renderAll();
  }

  /** A short readable reason from a getUserMedia failure. */
  micErrorText(err) {
    const name = err?.name || "Error";
    const key = MIC_ERRORS[name];
    return `${key ? this.L(key) : name}: ${err?.message || err}`;
  }

  build() {
    const el = this.el;
    el.classList.add("jmoshi-talk");
    const bar = h("div", "jmoshi-bar");
    this.micBtn = h("button", "jmoshi-btn jmoshi-mic");
    this.muteBtn = h("button", "jmoshi-btn jmoshi-mute");
    this.speakerBtn = h("button", "jmoshi-btn jmoshi-speaker");
    this.volLabel = h("label", "jmoshi-vol");
    this.volume = h("input", { type: "range", min: "0", max: "1", step: "0.05" });
    this.volLabel.append(h("span"), this.volume);
    this.opts = {};
    const optBox = h("span", "jmoshi-opts");
    for (const [key, trait] of [["aec", "echo_cancellation"], ["ns", "noise_suppression"], ["agc", "auto_gain_control"]]) {
      const lab = h("label", "jmoshi-opt");
      const box = h("input", { type: "checkbox" });
      box.addEventListener("change", () => {
        this.model.set(trait, box.checked);
        this.model.save_changes();
      });
      lab.append(box, h("span"));
      this.opts[key] = { lab, box, trait };
      optBox.append(lab);
    }
    this.endBtn = h("button", "jmoshi-btn jmoshi-end");
    bar.append(this.micBtn, this.muteBtn, this.speakerBtn, this.endBtn, this.volLabel, optBox);
    this.fallback = this.buildFallback();
    this.status = h("div", "jmoshi-status");
    this.counters = h("div", "jmoshi-counters");
    this.textTitle = h("div", "jmoshi-text-title");
    this.text = h("div", "jmoshi-text");
    this.text.lang = "ja";
    this.error = h("div", "jmoshi-error");
    el.append(bar, this.fallback.box, this.status, this.counters, this.textTitle, this.text, this.error);
  }

  /** Shown when no microphone can be used: why, and a WAV file (upload or kernel path) as input. */
  buildFallback() {
    const box = h("div", "jmoshi-fallback");
    const reason = h("div", "jmoshi-fallback-reason");
    const useWav = h("div", "jmoshi-fallback-hint");
    const file = h("input", { class: "jmoshi-wav-file", type: "file", accept: ".wav,.flac,.ogg,audio/*" });
    const pathLabel = h("span", "jmoshi-fallback-hint");
    const path = h("input", { class: "jmoshi-wav-path", type: "text", placeholder: "speech.wav" });
    const play = h("button", "jmoshi-btn jmoshi-wav-play");
    const row = h("div", "jmoshi-bar jmoshi-fallback-row");
    row.append(file, pathLabel, path, play);
    box.append(reason, useWav, row);
    file.addEventListener("change", async () => {
      const f = file.files && file.files[0];
      if (!f) return;
      const data = await f.arrayBuffer();
      this.model.send({ type: "wav", name: f.name }, undefined, [data]);
    });
    play.addEventListener("click", () => {
      if (path.value.trim()) this.model.send({ type: "wav_path", path: path.value.trim() });
    });
    box.hidden = true;
    return { box, reason, useWav, pathLabel, play };
  }

  bind() {
    const m = this.model;
    this.micBtn.addEventListener("click", () => this.toggleMic());
    this.endBtn.addEventListener("click", () => {
      this.audio.stopMic();
      this.endBtn.disabled = true;
      this.model.send({ type: "end" });
    });
    this.muteBtn.addEventListener("click", () => {
      m.set("muted", !m.get("muted"));
      m.save_changes();
    });
    this.speakerBtn.addEventListener("click", async () => {
      await this.audio.ensure();
      this.renderButtons();
    });
    this.volume.addEventListener("input", () => {
      m.set("volume", Number(this.volume.value));
      m.save_changes();
    });
    this.handlers = {
      "change:volume change:speaker_muted": () => this.audio.setVolume(),
      "change:muted change:mic_on change:input_mode change:labels change:echo_cancellation change:noise_suppression change:auto_gain_control change:mic_problem change:active":
        () => this.renderAll(),
      "change:tokens": () => this.renderText(),
      "change:status change:stats": () => this.renderStatus(),
      "change:error": () => this.renderError(),
      "change:jitter_ms": () => this.audio.player?.port.postMessage({ type: "jitter", ms: m.get("jitter_ms") }),
      "msg:custom": (msg, buffers) => this.onMessage(msg, buffers),
    };
    for (const [ev, fn] of Object.entries(this.handlers)) m.on(ev, fn);
  }

  unbind() {
    for (const [ev, fn] of Object.entries(this.handlers)) this.model.off(ev, fn);
  }

  async toggleMic() {
    const m = this.model;
    if (this.audio.mic) {
      this.audio.stopMic();
      m.set("mic_on", false);
      m.save_changes();
      return;
    }
    this.micBtn.disabled = true;
    try {
      await this.audio.startMic((frame) => this.sendFrame(frame));
      m.set("mic_on", true);
      m.set("mic_problem", "");
      m.save_changes();
    } catch (err) {
      m.set("mic_problem", this.micErrorText(err));
      m.save_changes();
    } finally {
      this.renderAll();
    }
  }

  sendFrame(frame) {
    if (this.model.get("muted")) frame.fill(0);
    const seq = this.seq++;
    this.sentAt.set(seq, performance.now());
    if (this.sentAt.size > 500) this.sentAt.delete(this.sentAt.keys().next().value);
    this.model.send({ type: "frame", seq }, undefined, [frame.buffer]);
    this.stats.frames_sent++;
    this.publish();
  }

  onMessage(msg, buffers) {
    if (msg.type === "audio" && buffers && buffers.length) {
      this.audio.play(toFloat32(buffers[0]));
    } else if (msg.type === "pong") {
      const resolve = this.pings.get(msg.id);
      if (resolve) {
        this.pings.delete(msg.id);
        resolve(performance.now() - msg.t);
      }
    } else if (msg.type === "done") {
      const t0 = this.sentAt.get(msg.seq);
      if (t0 !== undefined) {
        this.sentAt.delete(msg.seq);
        this.latencies.push(performance.now() - t0);
        if (this.latencies.length > 200) this.latencies.shift();
      }
    } else if (msg.type === "stop_mic") {
      this.audio.stopMic();
      this.renderAll();
    }
  }

  onPlayer(s) {
    this.stats.samples_played = s.played;
    this.stats.samples_received = s.received;
    this.stats.underruns = s.underruns;
    this.stats.buffered_ms = Math.round(s.buffered_ms);
    this.stats.jitter_ms = Math.round(s.jitter_ms);
    this.publish();
  }

  publish() {
    // DOM writes cost a repaint each: counters are drawn at most 4 times a second.
    if (this.publishTimer) return;
    this.publishTimer = setTimeout(() => {
      this.publishTimer = null;
      this.drawCounters();
    }, 250);
  }

  drawCounters() {
    // Counters go to the DOM (tests read them) and to the kernel at most twice a second.
    const st = { ...this.stats, latency_ms: median(this.latencies) };
    const d = this.el.dataset;
    d.framesSent = st.frames_sent;
    d.samplesPlayed = st.samples_played;
    d.samplesReceived = st.samples_received;
    d.underruns = st.underruns;
    d.latencyMs = st.latency_ms ?? "";
    const c = this.counters;
    const lat = st.latency_ms === null ? "–" : `${st.latency_ms.toFixed(0)} ms`;
    c.textContent =
      `${this.L("sent")}: ${st.frames_sent} · ${this.L("played")}: ${(st.samples_played / this.model.get("sample_rate")).toFixed(1)} s · ` +
      `${this.L("buffer")}: ${st.buffered_ms}/${st.jitter_ms ?? this.model.get("jitter_ms")} ms · ` +
      `${this.L("underruns")}: ${st.underruns} · ${this.L("latency")}: ${lat}`;
    const now = performance.now();
    if (now - this.lastSave > 500) {
      this.lastSave = now;
      this.model.set("browser_stats", st);
      this.model.save_changes();
    }
  }

  /** Round trips browser -> kernel -> browser over the widget comm; resolves to the times in ms. */
  async ping(n = 50, gapMs = 20) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const id = `${Date.now()}-${i}-${Math.random()}`;
      const rtt = await new Promise((resolve) => {
        this.pings.set(id, resolve);
        this.model.send({ type: "ping", id, t: performance.now() });
        setTimeout(() => {
          if (this.pings.delete(id)) resolve(null);
        }, 5000);
      });
      if (rtt !== null) out.push(rtt);
      await new Promise((r) => setTimeout(r, gapMs));
    }
    return out;
  }

  renderAll() {
    this.renderButtons();
    this.renderFallback();
    this.renderText();
    this.renderStatus();
    this.renderError();
  }

  renderButtons() {
    const m = this.model;
    const wav = m.get("input_mode") === "wav";
    const noMic = m.get("mic_problem") === "no_mic_api"; // other problems: the user may retry
    this.micBtn.textContent = wav ? this.L("wav_input") : this.L(this.audio.mic ? "mic_off" : "mic_on");
    this.micBtn.disabled = wav || noMic || !m.get("active");
    this.endBtn.textContent = this.L("end");
    this.endBtn.disabled = !m.get("active");
    this.micBtn.classList.toggle("jmoshi-on", !!this.audio.mic);
    this.muteBtn.textContent = this.L(m.get("muted") ? "unmute" : "mute");
    this.muteBtn.classList.toggle("jmoshi-on", m.get("muted"));
    this.muteBtn.disabled = wav;
    this.speakerBtn.textContent = this.L("speaker");
    this.speakerBtn.hidden = !!this.audio.ctx;
    this.volLabel.firstChild.textContent = this.L("volume");
    this.volume.value = String(m.get("volume"));
    for (const key of Object.keys(this.opts)) {
      const { lab, box, trait } = this.opts[key];
      box.checked = m.get(trait);
      box.disabled = !!this.audio.mic || wav; // constraints apply when the mic starts
      lab.lastChild.textContent = this.L(key);
    }
    this.textTitle.textContent = this.L("text");
  }

  renderFallback() {
    const m = this.model;
    const problem = m.get("mic_problem");
    const f = this.fallback;
    f.box.hidden = !problem || !m.get("active") || m.get("input_mode") === "wav";
    const reason = problem === "no_mic_api" ? this.L("no_mic_api") : problem;
    f.reason.textContent = `${this.L("no_mic")}: ${reason}`;
    f.useWav.textContent = this.L("use_wav");
    f.pathLabel.textContent = this.L("wav_path");
    f.play.textContent = this.L("play");
    this.el.dataset.micProblem = problem;
  }

  renderText() {
    const tokens = this.model.get("tokens");
    const frameS = this.model.get("frame_size") / this.model.get("sample_rate");
    const frag = document.createDocumentFragment();
    for (const [frame, piece, t] of tokens) {
      const s = h("span", "jmoshi-tok", piece);
      s.title = `frame ${frame} · ${(frame * frameS).toFixed(2)} s · recv ${t.toFixed(2)} s`;
      frag.append(s);
    }
    this.text.replaceChildren(frag);
    this.text.scrollTop = this.text.scrollHeight;
    this.el.dataset.textChars = String(this.text.textContent.length);
  }

  renderStatus() {
    const st = this.model.get("stats") || {};
    this.status.textContent = this.model.get("status");
    const d = this.el.dataset;
    d.kernelFrames = st.frames_in ?? 0;
    d.kernelUserRms = st.user_rms ?? 0;
    d.framesDone = st.frames_done ?? 0;
    d.params = JSON.stringify(st.params ?? {});
    d.paramsFrom = st.from_frame ?? "";
    d.active = String(this.model.get("active"));
    if (!this.model.get("active")) this.renderButtons();
  }

  renderError() {
    this.error.textContent = this.model.get("error");
    this.error.hidden = !this.model.get("error");
  }

  destroy() {
    clearTimeout(this.publishTimer);
    this.unbind();
    this.audio.close();
    const reg = globalThis.jmoshiNb;
    if (reg) reg.views = reg.views.filter((v) => v !== this);
  }
}

function render({ model, el }) {
  const view = new TalkView(model, el);
  // Tests and benchmarks reach the live views through this registry.
  globalThis.jmoshiNb = globalThis.jmoshiNb || { views: [] };
  globalThis.jmoshiNb.views.push(view);
  return () => view.destroy();
}

export default { render };

