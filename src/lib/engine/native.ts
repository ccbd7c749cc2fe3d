// The native training engine: ONNX Runtime (onnxruntime-node, an optional dependency) running a
// whole training step as one ordinary ONNX graph. Inputs are the split's bytes, the batch indices,
// the weights and the optimizer state; outputs are the new weights, the new state and the losses.
// Several steps are chained in one graph (STEPS_PER_RUN) so the per-run cost (the binding copies
// every output into a new buffer) is paid once per several batches.
//
// session.run blocks the thread it runs on: run this engine in a worker thread.
import { MnistError } from '../messages';
import type { TrainOptions } from './types';
import { ADAM, Compiled, backward, compile, forward, loss, optimizerStep, stateSlots } from './graph';
import { Graph } from './onnx';
import type { EngineSession, HeldOut, ModelSpec, TrainData, TrainEngine, Weights } from './types';

// The few parts of onnxruntime-node's API used here, typed locally: the package is optional, so
// neither the build nor a require of this module may depend on it being installed.
export interface OrtTensor { readonly data: ArrayBufferView; readonly dims: readonly number[] }
export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface Ort {
  Tensor: new (type: 'float32' | 'int32' | 'uint8' | 'bool' | 'int64', data: ArrayBufferView, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> };
  env: { versions: Record<string, string> };
}

let loading: Promise<Ort> | undefined;

/** onnxruntime-node, loaded once on first use; rejects with MnistError('native-unavailable'). */
export function loadOrt(): Promise<Ort> {
  loading ??= (async () => {
    let ort: Ort;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ort = require('onnxruntime-node') as Ort;
    } catch (e) {
      throw new MnistError('native-unavailable', { reason: (e as Error).message.split('\n')[0] });
    }
    // Loading the binding is lazy too: prove a session runs before calling the engine usable.
    const g = new Graph();
    g.output(g.op('Add', [g.input('a', 'float', [1]), g.scalar(1)]), 'b', 'float', [1]);
    try {
      const s = await ort.InferenceSession.create(g.toModel('probe'));
      await s.run({ a: new ort.Tensor('float32', new Float32Array([1]), [1]) });
      await s.release();
    } catch (e) {
      throw new MnistError('native-unavailable', { reason: (e as Error).message.split('\n')[0] });
    }
    return ort;
  })();
  return loading;
}

/** Whether the native engine can run here (onnxruntime-node installed and loadable). */
export async function nativeAvailable(): Promise<boolean> {
  try { await loadOrt(); return true; } catch { return false; }
}

/** Throws MnistError('native-unsupported') when a spec cannot be trained natively. */
export function nativeSupports(spec: ModelSpec): void {
  compile(spec);
}

/** Batches chained in one graph run. */
export const STEPS_PER_RUN = 8;

interface GraphIO { weights: string[]; state: string[]; adam: boolean }

/**
 * `steps` chained training steps over batches picked from the split by index inside the graph.
 * Inputs: images uint8 [count, pixels], labels int32 [count], indices int32 [steps, batch],
 * adam float [steps, 2] (Adam only), w<i>, s<i>. Outputs: w<i>_out, s<i>_out, losses [steps].
 */
export function trainGraph(c: Compiled, o: TrainOptions, pixels: number, normalization: TrainData['normalization'], steps: number): { model: Uint8Array; io: GraphIO } {
  const g = new Graph();
  const images = g.input('images', 'uint8', ['count', pixels]);
  const labels = g.input('labels', 'int32', ['count']);
  const indices = g.input('indices', 'int32', [steps, 'batch']);
  const isAdam = o.optimizer === 'adam';
  const adam = isAdam ? g.input('adam', 'float', [steps, 2]) : undefined;
  let weights = c.params.map((p, i) => g.input(`w${i}`, 'float', p.onnxShape));
  const slots = stateSlots(o);
  let state = c.params.flatMap((p, i) => Array.from({ length: slots }, (_s, j) => g.input(`s${i * slots + j}`, 'float', p.onnxShape)));
  const io: GraphIO = { weights: [...weights], state: [...state], adam: isAdam };

  const mean = normalization ? normalization.mean : 0;
  const std = normalization ? normalization.std : 1;
  const eye = new Float32Array(c.classes * c.classes);
  for (let k = 0; k < c.classes; k++) eye[k * c.classes + k] = 1;
  const oneHotTable = g.constant('float', [c.classes, c.classes], eye);
  const spatialShape = 'chw' in c.input ? g.ints([-1, ...c.input.chw]) : null;
  const [scale, shift] = [1 / (255 * std), mean / std];
  const affine = c.layers[0].foldsInput ? { scale, shift } : undefined;

  const losses: string[] = [];
  for (let k = 0; k < steps; k++) {
    const step = g.constant('int64', [], [k]);
    const idx = g.op('Gather', [indices, step]);
    // byte * scale - shift = ((byte / 255) - mean) / std, as dataset.ts toFloats computes it; a
    // dense first layer takes it folded into its Gemms (InputAffine), saving two passes per batch.
    let x = g.op('Cast', [g.op('Gather', [images, idx])], { to: 1 });
    if (!affine) x = g.op('Sub', [g.op('Mul', [x, g.scalar(scale)]), g.scalar(shift)]);
    if (spatialShape) x = g.op('Reshape', [x, spatialShape]);
    const oneHot = g.op('Gather', [oneHotTable, g.op('Gather', [labels, idx])]);
    const fwd = forward(g, c, x, weights, true, affine);
    const l = loss(g, o.loss, fwd.logits, oneHot);
    const opt = optimizerStep(g, o, weights, state);
    const grads = backward(g, c, l.dLogits, fwd.saved, weights, opt.sinks, affine);
    const next = opt.apply(grads, adam ? g.op('Gather', [adam, step]) : undefined);
    weights = next.weights;
    state = next.state;
    losses.push(g.op('Unsqueeze', [l.loss, g.ints([0])]));
  }
  weights.forEach((w, i) => g.output(w, `w${i}_out`, 'float', c.params[i].onnxShape));
  state.forEach((s, i) => g.output(s, `s${i}_out`, 'float', c.params[Math.floor(i / slots)].onnxShape));
  g.output(steps === 1 ? losses[0] : g.op('Concat', losses, { axis: 0 }), 'losses', 'float', [steps]);
  return { model: g.toModel('train-step'), io };
}

/**
 * The forward pass alone, for held-out samples: images uint8 [n, pixels], labels int32 [n], w<i>
 * in; the batch's mean loss ("loss") and each sample's class ("predicted", int64 [n]) out.
 */
export function evalGraph(c: Compiled, lossName: TrainOptions['loss'], pixels: number, normalization: TrainData['normalization']): Uint8Array {
  const g = new Graph();
  const images = g.input('images', 'uint8', ['n', pixels]);
  const labels = g.input('labels', 'int32', ['n']);
  const weights = c.params.map((p, i) => g.input(`w${i}`, 'float', p.onnxShape));
  const mean = normalization ? normalization.mean : 0;
  const std = normalization ? normalization.std : 1;
  let x = g.op('Sub', [g.op('Mul', [g.op('Cast', [images], { to: 1 }), g.scalar(1 / (255 * std))]), g.scalar(mean / std)]);
  if ('chw' in c.input) x = g.op('Reshape', [x, g.ints([-1, ...c.input.chw])]);
  const eye = new Float32Array(c.classes * c.classes);
  for (let k = 0; k < c.classes; k++) eye[k * c.classes + k] = 1;
  const oneHot = g.op('Gather', [g.constant('float', [c.classes, c.classes], eye), labels]);
  const { logits } = forward(g, c, x, weights, false);
  g.output(loss(g, lossName, logits, oneHot).loss, 'loss', 'float', []);
  g.output(g.op('ArgMax', [logits], { axis: 1, keepdims: 0 }), 'predicted', 'int64', ['n']);
  return g.toModel('evaluate');
}

/** Held-out samples evaluated per run: bounded memory for any model. */
const EVAL_CHUNK = 1000;

/**
 * ONNX Runtime session options. Spinning (pool threads busy-waiting for work between ops) is off
 * unless asked for: where another process or Node-RED itself wants a core, spinning threads make
 * 2-thread training 1.5-2x slower (measured on a shared 2-core machine).
 */
export function sessionOptions(threads: number, spin = false): Record<string, unknown> {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only: ONNX Runtime's warnings would land in Node-RED's log
    extra: { session: { intra_op: { allow_spinning: spin ? '1' : '0' } } },
  };
}

class NativeSession implements EngineSession {
  private weights: Float32Array[];
  private state: Float32Array[];
  private images: OrtTensor;
  private readonly labels: OrtTensor;
  private readonly rows: number;
  private readonly pixels: number;
  private readonly normalization: TrainData['normalization'];
  // Adam's running beta1^t and beta2^t in float32, as tfjs keeps them (accBeta1/2)
  private acc1 = Math.fround(ADAM.beta1);
  private acc2 = Math.fround(ADAM.beta2);
  private disposed = false;

  constructor(
    private readonly ort: Ort,
    private readonly c: Compiled,
    private options: TrainOptions,
    private readonly sessions: (o: TrainOptions) => Promise<[OrtSession, OrtSession]>,
    private single: OrtSession,
    private chained: OrtSession,
    data: TrainData,
    weights: Weights,
    private readonly threads: number,
  ) {
    this.rows = data.count;
    this.pixels = data.rows * data.cols;
    this.normalization = data.normalization;
    this.weights = this.toOnnx(weights);
    const slots = stateSlots(options);
    this.state = this.weights.flatMap((w) => Array.from({ length: slots }, () => new Float32Array(w.length)));
    const pixels = data.rows * data.cols;
    // The binding refuses views of a SharedArrayBuffer ("Invalid argument"): such images are copied
    // once here; others are passed by reference on every run (no copy).
    const images = data.images.subarray(0, data.count * pixels);
    this.images = new ort.Tensor('uint8', images.buffer instanceof SharedArrayBuffer ? images.slice() : images, [data.count, pixels]);
    this.labels = new ort.Tensor('int32', Int32Array.from(data.labels.subarray(0, data.count)), [data.count]);
  }

  private toOnnx(weights: Weights): Float32Array[] {
    if (weights.length !== this.c.params.length) throw new Error(`native engine: expected ${this.c.params.length} weight tensors, got ${weights.length}`);
    return weights.map((w, i) => {
      const p = this.c.params[i];
      const size = p.tfjsShape.reduce((a, b) => a * b, 1);
      if (w.length !== size) throw new Error(`native engine: weight ${i} has ${w.length} values, expected ${size} (${p.tfjsShape.join('x')})`);
      return Float32Array.from(p.toOnnx(w));
    });
  }

  async run(batches: Int32Array[]): Promise<Float32Array> {
    if (this.disposed) throw new Error('native engine: the session was disposed');
    const losses = new Float32Array(batches.length);
    let i = 0;
    while (i < batches.length) {
      const size = batches[i].length;
      let steps = 1;
      if (i + STEPS_PER_RUN <= batches.length && batches.slice(i, i + STEPS_PER_RUN).every((b) => b.length === size)) steps = STEPS_PER_RUN;
      losses.set(await this.step(batches.slice(i, i + steps)), i);
      i += steps;
    }
    return losses;
  }

  private async step(batches: Int32Array[]): Promise<Float32Array> {
    const { ort } = this;
    const size = batches[0].length;
    if (size === 0) throw new Error('native engine: an empty batch');
    const indices = new Int32Array(batches.length * size);
    batches.forEach((b, k) => {
      for (let j = 0; j < size; j++) {
        if (!(b[j] >= 0 && b[j] < this.rows)) throw new Error(`native engine: sample index ${b[j]} is outside 0..${this.rows - 1}`);
      }
      indices.set(b, k * size);
    });
    const feeds: Record<string, OrtTensor> = {
      images: this.images,
      labels: this.labels,
      indices: new ort.Tensor('int32', indices, [batches.length, size]),
    };
    if (this.options.optimizer === 'adam') {
      const adam = new Float32Array(2 * batches.length);
      for (let k = 0; k < batches.length; k++) {
        adam[2 * k] = Math.fround(1 - this.acc1);
        adam[2 * k + 1] = Math.fround(1 - this.acc2);
        this.acc1 = Math.fround(this.acc1 * Math.fround(ADAM.beta1));
        this.acc2 = Math.fround(this.acc2 * Math.fround(ADAM.beta2));
      }
      feeds.adam = new ort.Tensor('float32', adam, [batches.length, 2]);
    }
    this.weights.forEach((w, i) => { feeds[`w${i}`] = new ort.Tensor('float32', w, this.c.params[i].onnxShape); });
    const slots = stateSlots(this.options);
    this.state.forEach((s, i) => { feeds[`s${i}`] = new ort.Tensor('float32', s, this.c.params[Math.floor(i / slots)].onnxShape); });
    const out = await (batches.length === 1 ? this.single : this.chained).run(feeds);
    this.weights = this.weights.map((_w, i) => out[`w${i}_out`].data as Float32Array);
    this.state = this.state.map((_s, i) => out[`s${i}_out`].data as Float32Array);
    return out.losses.data as Float32Array;
  }

  private evalSession?: Promise<OrtSession>;

  async evaluate(held: HeldOut): Promise<{ loss: number; predicted: Int32Array }> {
    const { ort, c } = this;
    this.evalSession ??= ort.InferenceSession.create(evalGraph(c, this.options.loss, this.pixels, this.normalization), sessionOptions(this.threads));
    const session = await this.evalSession;
    const predicted = new Int32Array(held.count);
    let lossSum = 0;
    for (let lo = 0; lo < held.count; lo += EVAL_CHUNK) {
      const hi = Math.min(lo + EVAL_CHUNK, held.count);
      const images = held.images.slice(lo * this.pixels, hi * this.pixels); // a copy: the binding refuses shared memory
      const feeds: Record<string, OrtTensor> = {
        images: new ort.Tensor('uint8', images, [hi - lo, this.pixels]),
        labels: new ort.Tensor('int32', Int32Array.from(held.labels.subarray(lo, hi)), [hi - lo]),
      };
      this.weights.forEach((w, i) => { feeds[`w${i}`] = new ort.Tensor('float32', w, c.params[i].onnxShape); });
      const out = await session.run(feeds);
      lossSum += (out.loss.data as Float32Array)[0] * (hi - lo);
      predicted.set(Int32Array.from(out.predicted.data as BigInt64Array, Number), lo);
    }
    return { loss: lossSum / Math.max(held.count, 1), predicted };
  }

  async getWeights(): Promise<Weights> {
    return this.weights.map((w, i) => Float32Array.from(this.c.params[i].toTfjs(w)));
  }

  async setWeights(weights: Weights): Promise<void> {
    this.weights = this.toOnnx(weights);
  }

  async setImages(images: Uint8Array): Promise<void> {
    const size = this.rows * this.pixels;
    if (images.length < size) throw new Error(`native engine: ${images.length} pixel bytes for ${this.rows} samples of ${this.pixels}`);
    const own = images.buffer instanceof SharedArrayBuffer ? images.slice(0, size) : images.subarray(0, size);
    this.images = new this.ort.Tensor('uint8', own, [this.rows, this.pixels]);
  }

  /** The learning rate is part of the step graphs: they are built again (once an epoch at most). */
  async setLearningRate(lr: number): Promise<void> {
    if (lr === this.options.learningRate) return;
    // Momentum's state is lr * velocity here (tfjs keeps the velocity): rescaled, the update is tfjs's.
    if (this.options.optimizer === 'sgd' && this.options.momentum > 0) {
      const ratio = lr / this.options.learningRate;
      this.state = this.state.map((s) => s.map((v) => v * ratio));
    }
    this.options = { ...this.options, learningRate: lr };
    const [single, chained] = await this.sessions(this.options);
    void this.single.release();
    void this.chained.release();
    [this.single, this.chained] = [single, chained];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.single.release();
    void this.chained.release();
    void this.evalSession?.then((s) => s.release());
  }
}

export interface NativeOptions {
  /** let ONNX Runtime's pool threads busy-wait between ops (see sessionOptions); default false */
  spin?: boolean;
}

/** The native engine on `threads` compute threads (ONNX Runtime's intra-op pool). */
export function nativeEngine(threads = 1, native: NativeOptions = {}): TrainEngine {
  if (!(Number.isInteger(threads) && threads >= 1)) throw new Error(`native engine: threads ${threads} must be a whole number >= 1`);
  return {
    name: 'native',
    threads,
    async open(spec: ModelSpec, weights: Weights, data: TrainData, options: TrainOptions): Promise<EngineSession> {
      const c = compile(spec);
      const ort = await loadOrt();
      const pixels = data.rows * data.cols;
      const inputs = spec.inputShape[0] * spec.inputShape[1] * spec.inputShape[2];
      if (pixels !== inputs) throw new MnistError('native-input-size', { inputs, pixels, rows: data.rows, cols: data.cols });
      if (c.classes !== data.classes) throw new MnistError('native-classes', { outputs: c.classes, classes: data.classes });
      if (data.count === 0) throw new MnistError('native-empty');
      const opts = sessionOptions(threads, native.spin);
      const sessions = async (o: TrainOptions): Promise<[OrtSession, OrtSession]> => {
        const build = (steps: number) => trainGraph(c, o, pixels, data.normalization, steps).model;
        return [await ort.InferenceSession.create(build(1), opts), await ort.InferenceSession.create(build(STEPS_PER_RUN), opts)];
      };
      const [single, chained] = await sessions(options);
      return new NativeSession(ort, c, options, sessions, single, chained, data, weights, threads);
    },
  };
}
