// jmoshi-nb microphone worklet ("jmoshi-capture"): resamples the input to the target rate and posts
// it in frames of `frameSize` samples (a Float32Array, transferred). Both come from processorOptions,
// which talk.js fills from the widget's sample_rate and frame_size (set in Python, jmoshi_nb/core/audio.py).
// Loaded by talk.js as a Blob URL (AudioWorklet modules must come from a URL): the kernel sends this
// file's source, after resampler.js (JmoshiResampler), in the widget's `worklets` trait.

class JmoshiCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions;
    this.frame = o.frameSize;
    this.resampler = new JmoshiResampler(sampleRate / o.targetRate);
    this.buf = new Float32Array(this.frame);
    this.n = 0;
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
    if (x) this.resampler.process(x, (v) => this.push(v));
    return true;
  }
}
registerProcessor("jmoshi-capture", JmoshiCapture);
