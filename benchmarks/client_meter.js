// Measures any moshi-protocol web client from outside its code (a Playwright init script), so that the
// kit's talk page and moshi's own web client are measured the same way. Results in window.__clientMeter;
// benchmarks/talk_page.py turns them into figures.
//
// * mic seconds sent: the Opus packets in the Ogg pages of the 0x01 messages the page sends, each
//   packet's duration read from its TOC byte (granule positions are not used: moshi's recorder counts
//   them without the pre-skip its OpusHead declares, the kit's page with it).
// * model seconds received: the same, in the 0x01 messages the server sends; and the pre-skip its
//   OpusHead declares (sphn: 80 ms).
// * decoded seconds: what the page's decoder handed its player (read from the player's MessagePort).
//   Comparing it with the packets received tells whether the page's decoder trims the pre-skip (the kit's
//   WebCodecs decoder does; moshi's WASM decoder plays it as the stream's first audio).
// * what is heard: a silent tap (an AudioWorklet whose output is zero) receives everything the page
//   connects to its AudioContext's destination: "sound" = render quanta that are not all zeros, a
//   "gap" = all-zero quanta after the first sound, an underrun = sound resuming after a gap. One tap per
//   AudioContext; talk_page.py takes the one that sounded most (the speaker's).
// * latency samples, at each report of the page's player: the player's position in the decoded stream
//   (played + dropped): moshi's player reports "delay" = mic encoded - that position, the kit's player
//   reports received and buffered samples. No code of the page is changed.
(() => {
  const M = (window.__clientMeter = {
    micS: 0, modelRawS: 0, modelPreSkip: null, decodedS: 0, firstModelAt: null, samples: [], taps: [],
  });
  const OGGS = [0x4f, 0x67, 0x67, 0x53];
  // Samples (48 kHz) in one Opus packet, from its TOC byte (RFC 6716 section 3.1). Written here again
  // (the page's ogg.js has the same) because an init script cannot load the page's modules.
  const packetSamples48 = (p) => {
    const config = p[0] >> 3;
    const frame = config < 12 ? [480, 960, 1920, 2880][config & 3] : config < 16 ? [480, 960][config & 1]
      : [120, 240, 480, 960][config & 3];
    const code = p[0] & 3;
    const frames = code === 0 ? 1 : code < 3 ? 2 : p.length > 1 ? p[1] & 0x3f : 0;
    return frame * frames;
  };
  // Samples (48 kHz) in the audio packets of the Ogg pages in one message (header packets skipped).
  const oggSamples48 = (u8) => {
    let total = 0;
    let i = 0;
    while (i + 27 <= u8.length) {
      if (!(u8[i] === OGGS[0] && u8[i + 1] === OGGS[1] && u8[i + 2] === OGGS[2] && u8[i + 3] === OGGS[3])) { i++; continue; }
      const nSeg = u8[i + 26];
      let start = i + 27 + nSeg, len = 0;
      for (let k = 0; k < nSeg; k++) {
        len += u8[i + 27 + k];
        if (u8[i + 27 + k] < 255) {
          const packet = u8.subarray(start, start + len);
          const isHeader = packet.length >= 8 && packet[0] === 0x4f && packet[1] === 0x70 && packet[2] === 0x75 && packet[3] === 0x73;
          if (packet.length && !isHeader) total += packetSamples48(packet);
          start += len;
          len = 0;
        }
      }
      i = start + len; // the end of this page's data (a packet continued on the next page is left out)
    }
    return total;
  };
  const OPUSHEAD = [0x4f, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64];
  const preSkipOf = (u8) => {
    for (let i = 0; i + 12 <= u8.length; i++) {
      if (OPUSHEAD.every((b, k) => u8[i + k] === b)) return u8[i + 10] | (u8[i + 11] << 8);
    }
    return null;
  };
  const bytesOf = (data) => {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
  };
  const onModelBytes = (u8) => {
    if (!u8 || u8[0] !== 1) return;
    if (M.modelPreSkip === null) M.modelPreSkip = preSkipOf(u8);
    M.modelRawS += oggSamples48(u8) / 48000;
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
        M.micS += oggSamples48(u8) / 48000;
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

  const sample = (ctx, playerS) => {
    const outS = ctx.outputLatency || ctx.baseLatency || 0;
    // seconds: [when (ms), mic sent, player's position in the decoded stream, output latency, model received, decoded]
    M.samples.push([performance.now(), M.micS, playerS, outS, M.modelRawS, M.decodedS]);
  };
  window.AudioWorkletNode = class extends NativeAWN {
    constructor(ctx, name, options) {
      super(ctx, name, options);
      const port = this.port;
      const micAtPost = []; // moshi's worklet answers each audio frame with micDuration - stream position
      const post = port.postMessage.bind(port);
      port.postMessage = (msg, transfer) => {
        if (msg && msg.type === "audio" && typeof msg.micDuration === "number") {
          micAtPost.push(msg.micDuration); // moshi's player: a decoded frame at the context's rate
          if (msg.frame && msg.frame.length) M.decodedS += msg.frame.length / ctx.sampleRate;
        }
        return transfer === undefined ? post(msg) : post(msg, transfer);
      };
      port.addEventListener("message", (e) => {
        const d = e.data;
        if (!d || typeof d !== "object") return;
        if (typeof d.delay === "number" && typeof d.actualAudioPlayed === "number") {
          const mic = micAtPost.shift();
          if (mic !== undefined) sample(ctx, mic - d.delay); // moshi's player
        } else if (typeof d.received === "number" && typeof d.buffered_ms === "number") {
          M.decodedS = d.received / 24000; // the kit's player: received counted at the model's 24 kHz
          sample(ctx, d.received / 24000 - d.buffered_ms / 1000);
        }
      });
    }
  };
})();
