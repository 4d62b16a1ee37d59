// Shared by the two AudioWorklets (worklet_sources in jmoshi_nb/serve/pages/__init__.py puts it before
// each worklet's source: a worklet module loaded from a Blob URL cannot import another file) and by the
// talk page, which loads it as a plain script to resample decoded audio.

/** A streaming linear-interpolation resampler; `step`: input samples per output sample. */
class JmoshiResampler {
  constructor(step) {
    this.step = step;
    this.t = 0;       // next output position, in input samples from the block start
    this.last = 0;    // last input sample of the previous block
  }

  /** Resample the block `x`, calling `emit(sample)` for every output sample. */
  process(x, emit) {
    if (this.step === 1) {
      for (let i = 0; i < x.length; i++) emit(x[i]);
      return;
    }
    const n = x.length;
    while (this.t < n - 1) {
      const i = Math.floor(this.t), f = this.t - i;
      const a = i < 0 ? this.last : x[i];
      emit(a + (x[i + 1] - a) * f);
      this.t += this.step;
    }
    this.t -= n;
    this.last = x[n - 1];
  }
}
