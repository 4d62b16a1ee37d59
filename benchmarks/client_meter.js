// Measures any moshi-protocol web client from outside its code (a Playwright init script), so that the
// kit's talk page and moshi's own web client are measured the same way. Results in window.__clientMeter.
//
// * mic seconds sent: the highest Ogg granule position (48 kHz) in the 0x01 messages the page sends.
// * model seconds received: the same, in the 0x01 messages the server sends.
// * what is heard: a silent tap (an AudioWorklet whose output is zero) receives everything the page
//   connects to its AudioContext's destination: "sound" = render quanta that are not all zeros, a
//   "gap" = all-zero quanta after the first sound, an underrun = sound resuming after a gap. One tap per
//   AudioContext; talk_page.py takes the one that sounded most (the speaker's).
// * latency (mic -> heard), sampled at each report of the page's player: mic seconds sent minus the
//   model stream position the player has reached (played + dropped), plus the context's output
//   latency. moshi's meter computes the same from its worklet's "delay" (mic encoded minus stream
//   position); the kit's player reports received and buffered samples. Only the player's reports
//   (its MessagePort) are read; no code of the page is changed.
(() => {
  const M = (window.__clientMeter = {
    micS: 0, modelS: 0, firstModelAt: null, samples: [], taps: [],
  });
  const OGGS = [0x4f, 0x67, 0x67, 0x53];
  const maxGranule = (u8) => {
    let g = -1;
    for (let i = 0; i + 14 <= u8.length; i++) {
      if (u8[i] === OGGS[0] && u8[i + 1] === OGGS[1] && u8[i + 2] === OGGS[2] && u8[i + 3] === OGGS[3]) {
        const dv = new DataView(u8.buffer, u8.byteOffset + i + 6, 8);
        const lo = dv.getUint32(0, true), hi = dv.getInt32(4, true);
        if (hi >= 0) g = Math.max(g, hi * 2 ** 32 + lo);
      }
    }
    return g;
  };
  const bytesOf = (data) => {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
  };
  const onModelBytes = (u8) => {
    if (!u8 || u8[0] !== 1) return;
    const g = maxGranule(u8);
    if (g > 0) M.modelS = Math.max(M.modelS, g / 48000);
    if (M.firstModelAt === null) M.firstModelAt = performance.now();
  };

  const NativeWS = window.WebSocket;
  window.WebSocket = class extends NativeWS {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string") return;
        const u8 = bytesOf(e.data);
        if (u8) onModelBytes(u8);
        else if (e.data instanceof Blob) e.data.arrayBuffer().then((b) => onModelBytes(new Uint8Array(b)));
      });
    }
    send(data) {
      const u8 = bytesOf(data);
      if (u8 && u8[0] === 1) {
        const g = maxGranule(u8);
        if (g > 0) M.micS = Math.max(M.micS, g / 48000);
      }
      return super.send(data);
    }
  };

  const TAP = `class ClientMeterTap extends AudioWorkletProcessor {
    constructor() { super(); this.sound = 0; this.gap = 0; this.underruns = 0; this.inGap = false; this.started = false; this.n = 0; }
    process(inputs) {
      const ch = inputs[0] && inputs[0][0];
      let loud = false;
      if (ch) for (let i = 0; i < ch.length; i++) if (ch[i] !== 0) { loud = true; break; }
      if (loud) { if (this.inGap) this.underruns++; this.started = true; this.inGap = false; this.sound += 128; }
      else if (this.started) { this.inGap = true; this.gap += 128; }
      if (++this.n % 20 === 0) this.port.postMessage({ sound_s: this.sound / sampleRate, gap_s: this.gap / sampleRate, underruns: this.underruns });
      return true;
    }
  }
  registerProcessor("client-meter-tap", ClientMeterTap);`;
  const tapUrl = URL.createObjectURL(new Blob([TAP], { type: "application/javascript" }));
  const NativeAWN = window.AudioWorkletNode;
  const nativeConnect = AudioNode.prototype.connect;
  const taps = new WeakMap(); // context -> Promise<tap node>
  const tapFor = (ctx) => {
    if (!taps.has(ctx)) {
      taps.set(ctx, ctx.audioWorklet.addModule(tapUrl).then(() => {
        const tap = new NativeAWN(ctx, "client-meter-tap", { numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1] });
        const slot = M.taps.length; // one per AudioContext (moshi's recorder has a silent one of its own)
        M.taps.push({ sound_s: 0, gap_s: 0, underruns: 0 });
        tap.port.onmessage = (e) => { M.taps[slot] = e.data; };
        nativeConnect.call(tap, ctx.destination); // its output is silence: keeps it rendering
        return tap;
      }));
    }
    return taps.get(ctx);
  };
  AudioNode.prototype.connect = function (dest, ...rest) {
    const out = nativeConnect.call(this, dest, ...rest);
    if (dest instanceof AudioDestinationNode) tapFor(this.context).then((tap) => nativeConnect.call(this, tap));
    return out;
  };

  const sample = (ctx, streamS) => {
    const outS = ctx.outputLatency || ctx.baseLatency || 0;
    M.samples.push([performance.now(), 1000 * (M.micS - streamS + outS)]);
  };
  window.AudioWorkletNode = class extends NativeAWN {
    constructor(ctx, name, options) {
      super(ctx, name, options);
      const port = this.port;
      const micAtPost = []; // moshi's worklet answers each audio frame with micDuration - stream position
      const post = port.postMessage.bind(port);
      port.postMessage = (msg, transfer) => {
        if (msg && msg.type === "audio" && typeof msg.micDuration === "number") micAtPost.push(msg.micDuration);
        return transfer === undefined ? post(msg) : post(msg, transfer);
      };
      port.addEventListener("message", (e) => {
        const d = e.data;
        if (!d || typeof d !== "object") return;
        if (typeof d.delay === "number" && typeof d.actualAudioPlayed === "number") {
          const mic = micAtPost.shift();
          if (mic !== undefined) sample(ctx, mic - d.delay); // moshi's player
        } else if (typeof d.received === "number" && typeof d.buffered_ms === "number") {
          sample(ctx, d.received / 24000 - d.buffered_ms / 1000); // the kit's player: received at 24 kHz
        }
      });
    }
  };
})();
