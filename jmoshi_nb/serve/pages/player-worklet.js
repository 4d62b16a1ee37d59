// jmoshi-nb speaker worklet ("jmoshi-player"): resamples the model's audio (sourceRate) to the
// context's rate into a ring buffer and plays it after a jitter buffer of jitterMs, grown by 40 ms per
// underrun up to maxJitterMs; beyond maxMs of backlog the oldest audio is dropped. Reports its counters
// to talk.js five times a second. Loaded like capture-worklet.js, from the `worklets` trait.

class JmoshiPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.ratio = o.sourceRate / sampleRate;        // source samples per output sample
    this.size = Math.ceil(sampleRate * 20);
    this.ring = new Float32Array(this.size);
    this.r = 0; this.w = 0; this.avail = 0;
    this.prebuffer = Math.round(sampleRate * o.jitterMs / 1000);
    // Adaptive: every underrun grows the buffer by 40 ms, up to maxJitterMs (latency for smoothness).
    this.grow = Math.round(sampleRate * 0.04);
    this.maxPrebuffer = Math.round(sampleRate * (o.maxJitterMs ?? o.jitterMs) / 1000);
    this.maxBuffer = Math.round(sampleRate * o.maxMs / 1000);
    this.playing = false;
    this.played = 0;        // in source (24 kHz) samples
    this.received = 0;      // in source samples
    this.underruns = 0; this.dropped = 0;
    this.resampler = new JmoshiResampler(this.ratio);
    this.sinceReport = 0;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "audio") this.write(m.pcm);
      else if (m.type === "jitter") {
        this.prebuffer = Math.round(sampleRate * m.ms / 1000);
        this.maxPrebuffer = Math.max(this.maxPrebuffer, this.prebuffer);
      }
      else if (m.type === "reset") { this.r = this.w = this.avail = 0; this.playing = false; }
    };
  }
  put(v) {
    if (this.avail >= this.size) return;
    this.ring[this.w] = v; this.w = (this.w + 1) % this.size; this.avail++;
  }
  write(x) {
    this.received += x.length;
    this.resampler.process(x, (v) => this.put(v));
    if (this.avail > this.maxBuffer) {  // far behind: drop the oldest audio to keep latency bounded
      const drop = this.avail - this.prebuffer;
      this.r = (this.r + drop) % this.size; this.avail -= drop; this.dropped += drop;
    }
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    if (!this.playing && this.avail >= this.prebuffer && this.avail > 0) this.playing = true;
    let k = 0;
    if (this.playing) {
      k = Math.min(n, this.avail);
      for (let i = 0; i < k; i++) { out[i] = this.ring[this.r]; this.r = (this.r + 1) % this.size; }
      this.avail -= k;
      if (k < n) {
        this.playing = false;
        this.underruns++;
        this.prebuffer = Math.min(this.maxPrebuffer, this.prebuffer + this.grow);
      }
    }
    for (let i = k; i < n; i++) out[i] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.played += k * this.ratio;
    this.sinceReport += n;
    if (this.sinceReport >= sampleRate / 5) {
      this.sinceReport = 0;
      this.port.postMessage({
        played: Math.round(this.played), received: this.received, underruns: this.underruns,
        buffered_ms: 1000 * this.avail / sampleRate, dropped: this.dropped, playing: this.playing,
        jitter_ms: 1000 * this.prebuffer / sampleRate,
      });
    }
    return true;
  }
}
registerProcessor("jmoshi-player", JmoshiPlayer);
