// jmoshi-nb microphone worklet ("jmoshi-capture"): resamples the input to the target rate and posts
// it in frames of `frameSize` samples (a Float32Array, transferred). Both come from processorOptions,
// which talk.js fills from the widget's sample_rate and frame_size (set in Python, jmoshi_nb/core/audio.py).
// Loaded by talk.js as a Blob URL (AudioWorklet modules must come from a URL): the kernel sends this
// file's source in the widget's `worklets` trait.

class JmoshiCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.frame = o.frameSize;
    this.step = sampleRate / o.targetRate;  // input samples per output sample
    this.buf = new Float32Array(this.frame);
    this.n = 0;
    this.t = 0;       // next output position, in input samples from the block start
    this.last = 0;    // last input sample of the previous block
  }
  push(v) {
    this.buf[this.n++] = v;
    if (this.n === this.frame) {
      this.port.postMessage(this.buf, [this.buf.buffer]);
      this.buf = new Float32Array(this.frame);
      this.n = 0;
    }
  }
  process(inputs) {
    const x = inputs[0] && inputs[0][0];
    if (!x) return true;
    if (this.step === 1) {
      for (let i = 0; i < x.length; i++) this.push(x[i]);
      return true;
    }
    const n = x.length;
    while (this.t < n - 1) {
      const i = Math.floor(this.t), f = this.t - i;
      const a = i < 0 ? this.last : x[i];
      this.push(a + (x[i + 1] - a) * f);
      this.t += this.step;
    }
    this.t -= n;
    this.last = x[n - 1];
    return true;
  }
}
registerProcessor("jmoshi-capture", JmoshiCapture);
