// The talk page (talk.html, served at GET / by jmoshi_nb/serve/talk_page.py).
//
// Microphone -> capture worklet (24 kHz frames of 1920 samples) -> WebCodecs AudioEncoder (Opus) ->
// OggOpusWriter pages (ogg.js) -> 0x01 messages. 0x01 messages -> OggOpusReader -> AudioDecoder ->
// resampled to 24 kHz (JmoshiResampler) -> player worklet -> volume -> speakers. 0x02 text is shown as
// phrases; the kit's 0x04 metadata (asked for with ?metrics=1) gives the session, the setting's neutral
// label and a frame counter for the latency figure. Everything the page says comes from the config
// Python embeds (labels already "日本語 / English"); the token travels in an HttpOnly cookie.
/* global OggOpusWriter, OggOpusReader, JmoshiResampler */

const CONFIG = JSON.parse(document.getElementById("jt-config").textContent);
const L = (key) => CONFIG.labels[key] || key;
const KIND = { HANDSHAKE: 0, AUDIO: 1, TEXT: 2, CONTROL: 3, METADATA: 4, ERROR: 5, PING: 6 };
const PHRASE_GAP_MS = 1200; // a pause in the model's text this long starts a new phrase
const MIC_ERRORS = {
  NotAllowedError: "mic_denied", SecurityError: "mic_denied", NotFoundError: "mic_missing",
  OverconstrainedError: "mic_missing", NotReadableError: "mic_unreadable", AbortError: "mic_unreadable",
};

const $ = (sel) => document.querySelector(sel);
const root = $("#jt");

function median(xs) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The token and the rest of the URL: the token goes out of the visible URL (the cookie keeps it). */
function hideToken() {
  const url = new URL(location.href);
  if (!url.searchParams.has("token")) return;
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + (url.search ? url.search : "") + url.hash);
}

/** Why this browser cannot run the page ("" when it can), as a label key. */
async function browserProblem() {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== "function") return "no_mic_api";
  if (typeof AudioEncoder !== "function" || typeof AudioDecoder !== "function") return "no_webcodecs";
  try {
    const enc = await AudioEncoder.isConfigSupported(encoderConfig());
    const dec = await AudioDecoder.isConfigSupported({ codec: "opus", sampleRate: 48000, numberOfChannels: 1 });
    if (!enc.supported || !dec.supported) return "no_webcodecs";
  } catch (_err) {
    return "no_webcodecs";
  }
  return "";
}

function encoderConfig() {
  return { codec: "opus", sampleRate: CONFIG.sample_rate, numberOfChannels: 1, bitrate: 32000 };
}

class Conversation {
  constructor(page) {
    this.page = page;
    this.ws = null;
    this.ctx = null;
    this.stats = {
      frames_sent: 0, frames_done: 0, samples_received: 0, samples_played: 0, underruns: 0, buffered_ms: 0,
      latency_ms: 0, text_chars: 0, pings: 0,
    };
    this.sentAt = [];
    this.latencies = []; // the last 250 frames: the page's latency figure
    this.latencyLog = []; // every frame's (mic frame sent -> its answer heard), ms
    this.serverLog = []; // every frame's [frames queued on the server, server step ms]
    this.ended = false;
  }

  chatUrl() {
    const url = new URL(CONFIG.chat_path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("metrics", "1");
    const here = new URL(location.href).searchParams;
    const p = here.get(CONFIG.participant_query);
    if (p) url.searchParams.set(CONFIG.participant_query, p);
    for (const [field, value] of Object.entries(this.page.sliderValues())) {
      url.searchParams.set(CONFIG.url_sampling[field], String(value));
    }
    return url.toString();
  }

  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.stream = stream;
    await this.openAudio(stream);
    this.openCodecs();
    this.openSocket();
  }

  async openAudio(stream) {
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: CONFIG.sample_rate, latencyHint: "interactive" });
    } catch (_err) {
      ctx = new AudioContext({ latencyHint: "interactive" });
    }
    await ctx.audioWorklet.addModule("/pages/worklet/capture.js");
    await ctx.audioWorklet.addModule("/pages/worklet/player.js");
    let source;
    try {
      source = ctx.createMediaStreamSource(stream);
    } catch (_err) {
      // Firefox cannot mix sample rates in one graph: a context at the device's rate (the worklets resample).
      await ctx.close();
      ctx = new AudioContext({ latencyHint: "interactive" });
      await ctx.audioWorklet.addModule("/pages/worklet/capture.js");
      await ctx.audioWorklet.addModule("/pages/worklet/player.js");
      source = ctx.createMediaStreamSource(stream);
    }
    const capture = new AudioWorkletNode(ctx, "jmoshi-capture", {
      numberOfOutputs: 1,
      processorOptions: { frameSize: CONFIG.frame_size, targetRate: CONFIG.sample_rate },
    });
    capture.port.onmessage = (e) => this.onMicFrame(e.data);
    const sink = ctx.createGain();
    sink.gain.value = 0; // the capture node is pulled by the graph; nobody hears themselves
    source.connect(capture).connect(sink).connect(ctx.destination);
    const player = new AudioWorkletNode(ctx, "jmoshi-player", {
      numberOfInputs: 0,
      outputChannelCount: [1],
      // Play from one frame (80 ms) buffered, and again from one frame after an underrun, as moshi's web
      // client does; a buffer grown by underruns (the widget's 40 ms steps) waits for two 80 ms frames and
      // cost ~60 ms of latency. A backlog beyond 240 ms (moshi's client: 100 ms, growing to 240 ms) is
      // dropped back to one frame: a burst after a server stall must not leave the talk behind for the
      // rest of it (with 480 ms one run stayed ~150 ms behind). Measured in benchmarks/RESULTS.md.
      processorOptions: { sourceRate: CONFIG.sample_rate, jitterMs: 80, maxJitterMs: 80, maxMs: 240 },
    });
    player.port.onmessage = (e) => this.onPlayer(e.data);
    this.gain = ctx.createGain();
    player.connect(this.gain).connect(ctx.destination);
    this.setVolume(this.page.volume());
    if (ctx.state !== "running") await ctx.resume();
    Object.assign(this, { ctx, source, capture, sink, player });
  }

  setVolume(v) {
    if (this.gain) this.gain.gain.value = v;
  }

  openCodecs() {
    this.oggOut = new OggOpusWriter(CONFIG.sample_rate);
    this.headerSent = false;
    this.encoder = new AudioEncoder({
      output: (chunk) => this.onEncoded(chunk),
      error: (err) => this.page.fail(`Opus encoder: ${err.message || err}`),
    });
    this.encoder.configure(encoderConfig());
    this.oggIn = new OggOpusReader();
    this.decoder = null;
    this.decodedUs = 0;
    this.toModelRate = null;
  }

  openSocket() {
    const ws = new WebSocket(this.chatUrl());
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => this.onMessage(new Uint8Array(e.data));
    ws.onclose = (e) => this.onClose(e);
    ws.onerror = () => {};
    this.ws = ws;
    this.page.setState("connecting");
  }

  // ---- microphone -> server -----------------------------------------------------------------------
  onMicFrame(frame) {
    this.page.showLevel(frame);
    if (!this.ready || this.ended) return;
    const data = new AudioData({
      format: "f32-planar", sampleRate: CONFIG.sample_rate, numberOfFrames: frame.length, numberOfChannels: 1,
      timestamp: Math.round((this.stats.frames_sent * frame.length * 1e6) / CONFIG.sample_rate), data: frame,
    });
    this.sentAt.push(performance.now());
    this.stats.frames_sent++;
    this.encoder.encode(data);
    data.close();
  }

  onEncoded(chunk) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.headerSent) {
      for (const page of this.oggOut.headerPages()) this.send(KIND.AUDIO, page);
      this.headerSent = true;
    }
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    this.send(KIND.AUDIO, this.oggOut.packetPage(packet));
  }

  send(kind, payload) {
    const msg = new Uint8Array(1 + payload.length);
    msg[0] = kind;
    msg.set(payload, 1);
    this.ws.send(msg);
  }

  sendJson(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(KIND.METADATA, new TextEncoder().encode(JSON.stringify(obj)));
  }

  // ---- server -> page --------------------------------------------------------------------------------
  onMessage(msg) {
    const kind = msg[0];
    const payload = msg.subarray(1);
    if (kind === KIND.HANDSHAKE) {
      this.ready = true;
      this.startedAt = performance.now();
      this.page.setState("talking");
    } else if (kind === KIND.AUDIO) {
      this.onAudio(payload);
    } else if (kind === KIND.TEXT) {
      const text = new TextDecoder().decode(payload);
      this.stats.text_chars += text.length;
      this.page.addText(text);
    } else if (kind === KIND.METADATA) {
      this.onMetadata(JSON.parse(new TextDecoder().decode(payload)));
    } else if (kind === KIND.ERROR) {
      const text = new TextDecoder().decode(payload);
      this.page.serverError(text);
    } else if (kind === KIND.PING) {
      this.stats.pings++;
    }
    this.page.showStats(this.stats);
  }

  onMetadata(obj) {
    if (obj.type === "session") {
      this.session = obj;
      this.page.showSystem(obj.setting_label || "");
    } else if (obj.type === "metrics" || obj.type === "dropped") {
      const i = obj.type === "metrics" ? obj.frame : obj.index;
      this.stats.frames_done++;
      if (obj.type === "metrics" && this.sentAt[i] !== undefined) {
        const outMs = 1000 * ((this.ctx && (this.ctx.outputLatency || this.ctx.baseLatency)) || 0);
        const ms = performance.now() - this.sentAt[i] + this.stats.buffered_ms + outMs;
        this.latencies.push(ms);
        if (this.latencies.length > 250) this.latencies.shift();
        if (this.latencyLog.length < 15000) this.latencyLog.push(ms); // 20 minutes: for benchmarks
        if (this.serverLog.length < 15000) this.serverLog.push([obj.queued ?? 0, obj.total_ms ?? 0]);
        this.stats.latency_ms = Math.round(median(this.latencies));
      }
    }
  }

  onAudio(bytes) {
    let packets;
    try {
      packets = this.oggIn.push(bytes);
    } catch (err) {
      this.page.fail(String(err.message || err));
      return;
    }
    if (!packets.length) return;
    if (!this.decoder) {
      this.decoder = new AudioDecoder({
        output: (data) => this.onDecoded(data),
        error: (err) => this.page.fail(`Opus decoder: ${err.message || err}`),
      });
      const config = { codec: "opus", sampleRate: 48000, numberOfChannels: 1 };
      if (this.oggIn.head) config.description = this.oggIn.head;
      this.decoder.configure(config);
    }
    for (const packet of packets) {
      const duration = Math.round((1e6 * opusPacketSamples48(packet)) / 48000);
      this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.decodedUs, duration, data: packet }));
      this.decodedUs += duration;
    }
  }

  onDecoded(data) {
    const n = data.numberOfFrames;
    const pcm = new Float32Array(n);
    data.copyTo(pcm, { planeIndex: 0, format: "f32-planar" });
    const rate = data.sampleRate;
    data.close();
    let out = pcm;
    if (rate !== CONFIG.sample_rate) {
      if (!this.toModelRate) this.toModelRate = new JmoshiResampler(rate / CONFIG.sample_rate);
      const acc = [];
      this.toModelRate.process(pcm, (v) => acc.push(v));
      out = Float32Array.from(acc);
    }
    this.stats.samples_received += out.length;
    if (this.player && out.length) this.player.port.postMessage({ type: "audio", pcm: out }, [out.buffer]);
  }

  onPlayer(s) {
    this.stats.samples_played = s.played;
    this.stats.underruns = s.underruns;
    this.stats.buffered_ms = Math.round(s.buffered_ms);
    this.page.showStats(this.stats);
  }

  onClose(e) {
    this.ready = false;
    const wasEnded = this.ended;
    this.stopAudio();
    this.page.onClosed(wasEnded, e);
  }

  // ---- the end -----------------------------------------------------------------------------------------
  async end() {
    if (this.ended) return;
    this.ended = true;
    this.sendJson({ type: "end" });
    try {
      if (this.encoder && this.encoder.state === "configured") await this.encoder.flush();
    } catch (_err) { /* closing anyway */ }
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "ended by the participant");
    this.stopAudio();
  }

  stopAudio() {
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    if (this.capture) this.capture.port.onmessage = null;
    for (const codec of [this.encoder, this.decoder]) {
      if (codec && codec.state !== "closed") {
        try { codec.close(); } catch (_err) { /* already closed */ }
      }
    }
    if (this.ctx && !this.closing) {
      const ctx = this.ctx;
      this.closing = true;
      setTimeout(() => ctx.state !== "closed" && ctx.close().catch(() => {}), 1500); // the last audio plays out
    }
    this.page.showLevel(new Float32Array(1));
  }
}

class TalkPage {
  constructor() {
    for (const el of document.querySelectorAll("[data-label]")) el.textContent = L(el.dataset.label);
    document.title = L("title");
    this.startBtn = $(".jt-start");
    this.endBtn = $(".jt-end");
    this.status = $(".jt-status");
    this.error = $(".jt-error");
    this.textBox = $(".jt-text");
    this.levelBar = $(".jt-level-bar");
    this.volumeInput = $(".jt-volume");
    this.elapsed = $(".jt-elapsed");
    this.conversation = null;
    this.lastTextAt = 0;
    this.phrase = null;
    this.startBtn.addEventListener("click", () => this.start());
    this.endBtn.addEventListener("click", () => this.end());
    this.volumeInput.addEventListener("input", () => this.conversation && this.conversation.setVolume(this.volume()));
    $(".jt-again").addEventListener("click", () => location.reload());
    this.buildSliders();
    this.buildRating();
    hideToken();
    this.check();
  }

  async check() {
    const problem = await browserProblem();
    if (problem) {
      this.showError(L(problem));
      this.startBtn.disabled = true;
      root.dataset.problem = problem;
    }
  }

  volume() {
    return Number(this.volumeInput.value);
  }

  buildSliders() {
    this.sliders = {};
    if (!CONFIG.show_controls) return;
    const box = $(".jt-sliders");
    const spec = {
      temp: { min: 0, max: 2, step: 0.05 }, top_k: { min: 1, max: CONFIG.limits.card, step: 1 },
      temp_text: { min: 0, max: 2, step: 0.05 }, top_k_text: { min: 1, max: Math.min(CONFIG.limits.text_card, 500), step: 1 },
    };
    for (const [field, s] of Object.entries(spec)) {
      const label = document.createElement("label");
      const name = document.createElement("span");
      name.textContent = L(field);
      const input = Object.assign(document.createElement("input"), { type: "range", ...s, value: CONFIG.sampling[field] });
      input.name = field;
      const value = document.createElement("output");
      value.textContent = input.value;
      input.addEventListener("input", () => { value.textContent = input.value; });
      label.append(name, input, value);
      box.append(label);
      this.sliders[field] = input;
    }
    box.hidden = false;
  }

  sliderValues() {
    const out = {};
    for (const [field, input] of Object.entries(this.sliders)) out[field] = Number(input.value);
    return out;
  }

  buildRating() {
    const box = $(".jt-questions");
    for (const key of ["naturalness", "meaningfulness", "overall"]) {
      const set = document.createElement("fieldset");
      set.className = "jt-question";
      const legend = document.createElement("legend");
      legend.textContent = L(key);
      const hint = document.createElement("div");
      hint.className = "jt-hint";
      hint.textContent = L(`${key}_hint`);
      const choices = document.createElement("div");
      choices.className = "jt-choices";
      for (let v = 1; v <= 5; v++) {
        const label = document.createElement("label");
        const input = Object.assign(document.createElement("input"), { type: "radio", name: key, value: String(v) });
        const span = document.createElement("span");
        span.textContent = String(v);
        label.append(input, span);
        choices.append(label);
      }
      set.append(legend, hint, choices);
      box.append(set);
    }
    $(".jt-rating").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitRating();
    });
  }

  setState(state) {
    root.dataset.state = state;
    this.status.textContent = state === "idle" ? "" : L(state);
    this.startBtn.disabled = state !== "idle";
    this.endBtn.disabled = state !== "talking" && state !== "connecting";
    if (state === "talking" && !this.timer) {
      const t0 = performance.now();
      this.timer = setInterval(() => {
        const s = Math.floor((performance.now() - t0) / 1000);
        this.elapsed.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
        root.dataset.elapsedS = String(s);
      }, 250);
    }
    if (state !== "talking" && state !== "connecting" && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  async start() {
    this.hideError();
    this.startBtn.disabled = true;
    const c = new Conversation(this);
    this.conversation = c;
    try {
      await c.start();
    } catch (err) {
      c.stopAudio();
      const key = MIC_ERRORS[err && err.name];
      this.showError(key ? L(key) : `${err && err.name}: ${err && err.message}`);
      this.setState("idle");
    }
  }

  async end() {
    if (!this.conversation) return;
    this.endBtn.disabled = true;
    await this.conversation.end();
  }

  onClosed(endedByUs, e) {
    const busy = root.dataset.busy === "1";
    this.setState("ended");
    if (!endedByUs && !busy && !this.error.textContent) this.showError(`${L("lost")} (${e.code})`);
    const conv = this.conversation && this.conversation.session && this.conversation.session.conversation;
    if (CONFIG.rate && endedByUs && conv) {
      $(".jt-rating").hidden = false;
    } else {
      $(".jt-again").hidden = false;
    }
  }

  serverError(text) {
    if (text.startsWith("busy")) {
      root.dataset.busy = "1";
      this.showError(L("busy"));
    } else {
      this.showError(`${L("server_error")}: ${text}`);
    }
  }

  fail(text) {
    this.showError(text);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }

  hideError() {
    this.error.textContent = "";
    this.error.hidden = true;
  }

  showSystem(label) {
    const el = $(".jt-system");
    el.textContent = label;
    el.hidden = !label;
  }

  showLevel(frame) {
    let sum = 0;
    for (let i = 0; i < frame.length; i++) sum += frame[i] * frame[i];
    const rms = Math.sqrt(sum / frame.length);
    const level = Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-9) + 60) / 60)); // -60..0 dBFS
    this.levelBar.style.width = `${Math.round(level * 100)}%`;
    this.levelBar.parentElement.setAttribute("aria-valuenow", level.toFixed(2));
  }

  addText(text) {
    const now = performance.now();
    if (!this.phrase || now - this.lastTextAt > PHRASE_GAP_MS) {
      this.phrase = document.createElement("p");
      this.textBox.append(this.phrase);
    }
    this.lastTextAt = now;
    this.phrase.textContent += text;
    this.textBox.scrollTop = this.textBox.scrollHeight;
  }

  showStats(stats) {
    for (const [k, v] of Object.entries(stats)) root.dataset[k.replace(/_(\w)/g, (_m, c) => c.toUpperCase())] = String(v);
  }

  async submitRating() {
    const form = $(".jt-rating");
    const answers = {};
    for (const key of ["naturalness", "meaningfulness", "overall"]) {
      const checked = form.querySelector(`input[name="${key}"]:checked`);
      if (!checked) {
        const err = $(".jt-rate-error");
        err.textContent = L("rate_missing");
        err.hidden = false;
        return;
      }
      answers[key] = Number(checked.value);
    }
    answers.comment = form.querySelector("textarea").value;
    answers.conversation = this.conversation.session.conversation;
    form.querySelector(".jt-submit").disabled = true;
    try {
      const r = await fetch(CONFIG.rating_path, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(answers),
        credentials: "same-origin",
      });
      if (!r.ok) throw new Error(`${r.status} ${await r.text()}`);
      form.hidden = true;
      $(".jt-thanks").hidden = false;
      $(".jt-again").hidden = false;
      root.dataset.rated = "1";
    } catch (err) {
      const el = $(".jt-rate-error");
      el.textContent = `${L("rate_failed")}: ${err.message || err}`;
      el.hidden = false;
      form.querySelector(".jt-submit").disabled = false;
    }
  }
}

/* global opusPacketSamples48 */
window.jmoshiTalk = new TalkPage();
