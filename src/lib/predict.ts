import * as tf from '@tensorflow/tfjs';
import { inferenceChunk } from './engine/budget';
import { MnistError, at, shown } from './messages';
import { activationsPerSample, inputSize } from './model';
import { ModelEntry } from './model';
import { Box, DEFAULT_IMAGE_LIMITS, DEFAULT_MAX_IMAGES, ImageLimits, ImageMode, preprocessImage } from './image';

export interface Prediction {
  label: number | null;      // class index, or null when below the confidence threshold
  className: string | null;
  confidence: number;
  probabilities: number[];
  topK: { label: number; className: string; probability: number }[];
}

const MAX_BATCH = 100000;

function checkNumber(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new MnistError('pixel-not-finite', { where, value: typeof v === 'number' ? v : shown(v, 20) });
  }
  // 0-1 or 0-255 are the forms the help promises; anything else would be a confident wrong answer.
  if (v < 0 || v > 255) throw new MnistError('pixel-out-of-range', { where, value: v });
  return v;
}

/** One image given as `size` numbers, flat or as rows x cols nested arrays -> raw values. */
function flatten(x: unknown, rows: number, cols: number, where: string): number[] | null {
  if (Buffer.isBuffer(x) || (!Array.isArray(x) && !ArrayBuffer.isView(x))) return null;
  const arr = Array.from(x as ArrayLike<unknown>);
  if (arr.length === rows * cols && arr.every((v) => !Array.isArray(v))) return arr.map((v, i) => checkNumber(v, `${where}[${i}]`));
  if (arr.length === rows && arr.every((r) => Array.isArray(r) && r.length === cols)) {
    return (arr as unknown[][]).flatMap((r, i) => r.map((v, j) => checkNumber(v, `${where}[${i}][${j}]`)));
  }
  return null;
}

/**
 * Number-array inputs (one image of rows*cols values or rows x cols, or an array of those) as
 * pixel values scaled to [0,1]. Values above 1 are taken as 0-255 bytes. Returns null when the
 * payload is not an array of numbers at all (so other forms, e.g. images, can be tried).
 */
export function arrayInputs(payload: unknown, rows: number, cols: number): { pixels: Float32Array[]; batch: boolean } | null {
  if (Buffer.isBuffer(payload) || (!Array.isArray(payload) && !ArrayBuffer.isView(payload))) return null;
  const one = flatten(payload, rows, cols, 'msg.payload');
  if (one) return { pixels: [toUnit(one)], batch: false };
  const arr = Array.from(payload as ArrayLike<unknown>);
  if (arr.length === 0) throw new MnistError('payload-empty-array', { pixels: rows * cols, rows, cols });
  const isArray = (x: unknown) => Array.isArray(x) || (ArrayBuffer.isView(x) && !Buffer.isBuffer(x));
  if (arr.every((x) => typeof x === 'number')) {
    throw new MnistError('payload-wrong-length', { count: arr.length, pixels: rows * cols, rows, cols });
  }
  if (arr.length > MAX_BATCH) throw new MnistError('batch-too-big', { count: arr.length, max: MAX_BATCH });
  if (!arr.every(isArray)) return null; // e.g. a batch of encoded images
  const pixels = arr.map((x, i) => {
    const img = flatten(x, rows, cols, `msg.payload[${i}]`);
    if (!img) throw new MnistError('not-number-image', { where: `msg.payload[${i}]`, pixels: rows * cols, rows, cols });
    return toUnit(img);
  });
  return { pixels, batch: true };
}

/** 0-1 values stay, 0-255 values are scaled: a user's array may be either. */
function toUnit(values: ArrayLike<number>): Float32Array {
  let max = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  const scale = max > 1 ? 1 / 255 : 1;
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] * scale;
  return out;
}

/** True when the model's last layer already ends in softmax (e.g. saved by plain tfjs code). */
function endsInSoftmax(model: tf.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  const cfg = last?.getConfig() as { activation?: string } | undefined;
  return cfg?.activation === 'softmax' || last?.getClassName() === 'Softmax';
}

/**
 * Class probabilities for n inputs: the models here output logits, so softmax unless the model
 * did. In chunks that fit the memory budget, each one backend batch (predict()'s default of 32
 * would be 25x slower for 10k images).
 */
function probabilities(model: tf.LayersModel, floats: Float32Array, n: number, limitMB?: number): Float32Array {
  const dims = model.inputs[0].shape.slice(1).map(Number);
  const size = dims.reduce((a, b) => a * b, 1);
  const chunk = inferenceChunk(activationsPerSample(model), 10000, limitMB);
  let out: Float32Array | undefined;
  for (let lo = 0; lo < n; lo += chunk) {
    const hi = Math.min(lo + chunk, n);
    const probs = tf.tidy(() => {
      const logits = model.predict(tf.tensor(floats.subarray(lo * size, hi * size), [hi - lo, ...dims]), { batchSize: hi - lo }) as tf.Tensor;
      return (endsInSoftmax(model) ? logits : tf.softmax(logits)).dataSync() as Float32Array;
    });
    out ??= new Float32Array(n * (probs.length / (hi - lo)));
    out.set(probs, lo * (probs.length / (hi - lo)));
  }
  return out ?? new Float32Array(0);
}

/** One digit of an image read with `many`. */
export interface FoundDigit { pixels: Float32Array; png: Buffer; box: Box }

export interface DecodedInputs {
  /** [0,1] pixels, ink bright, one per input */
  pixels: Float32Array[];
  /** the 28x28 PNG the model saw, for image inputs; null for number-array inputs */
  pngs: Array<Buffer | null>;
  batch: boolean;
  /** with `many`: every digit of each image input, left to right (null for number arrays) */
  digits?: Array<FoundDigit[] | null>;
  /** with `region`: each image input with its digits' boxes drawn (null for number arrays) */
  regions?: Array<Buffer | null>;
}

export interface DecodeOptions {
  rows: number; cols: number; preprocess?: boolean; limits?: ImageLimits; signal?: AbortSignal;
  mode?: ImageMode; many?: boolean; region?: boolean;
  /** the most encoded images one message may hold (number arrays are cheap and not counted) */
  maxImages?: number;
}

function isNumberImage(x: unknown): boolean {
  return Array.isArray(x) || (ArrayBuffer.isView(x) && !Buffer.isBuffer(x));
}

/**
 * msg.payload as model inputs: an encoded image (Buffer, data URL, base64), number arrays, or a
 * batch mixing both. Images go through the MNIST-style pipeline (or a plain resize when
 * preprocess is false); numbers are taken as they are.
 */
export async function decodeInputs(payload: unknown, opts: DecodeOptions): Promise<DecodedInputs> {
  const { rows, cols } = opts;
  const image = async (x: Buffer | string, where: string) => {
    if (rows !== 28 || cols !== 28) throw new MnistError('image-model-shape', { rows, cols, pixels: rows * cols });
    try {
      return await preprocessImage(x, {
        preprocess: opts.preprocess, limits: opts.limits ?? DEFAULT_IMAGE_LIMITS, mode: opts.mode, many: opts.many, region: opts.region,
      });
    } catch (e) {
      throw at(where, e);
    }
  };
  const extras = (out: DecodedInputs, r: Awaited<ReturnType<typeof image>> | null) => {
    if (opts.many) (out.digits ??= []).push(r ? r.digits.map((d) => ({ pixels: d.pixels, png: d.png, box: d.box })) : null);
    if (opts.region) (out.regions ??= []).push(r?.region ?? null);
  };
  if (Buffer.isBuffer(payload) || typeof payload === 'string') {
    const r = await image(payload, 'msg.payload');
    const out: DecodedInputs = { pixels: [r.pixels], pngs: [r.png], batch: false };
    extras(out, r);
    return out;
  }
  const arrays = arrayInputs(payload, rows, cols);
  if (arrays) {
    const out: DecodedInputs = { pixels: arrays.pixels, pngs: arrays.pixels.map(() => null), batch: arrays.batch };
    for (let i = 0; i < out.pixels.length; i++) extras(out, null);
    return out;
  }
  if (!Array.isArray(payload)) {
    throw new MnistError('payload-kind', { pixels: rows * cols, rows, cols });
  }
  // A batch with at least one encoded image (arrayInputs took all-number batches). Each image
  // may cost a full decode, so their number is bounded before any is decoded.
  const encoded = payload.filter((x) => Buffer.isBuffer(x) || typeof x === 'string').length;
  const maxImages = opts.maxImages ?? DEFAULT_MAX_IMAGES;
  if (encoded > maxImages) throw new MnistError('too-many-images', { count: encoded, max: maxImages });
  const out: DecodedInputs = { pixels: [], pngs: [], batch: true };
  for (let i = 0; i < payload.length; i++) {
    if (opts.signal?.aborted) throw new MnistError('predict-stopped');
    const x = payload[i];
    if (Buffer.isBuffer(x) || typeof x === 'string') {
      const r = await image(x, `msg.payload[${i}]`);
      out.pixels.push(r.pixels);
      out.pngs.push(r.png);
      extras(out, r);
    } else if (isNumberImage(x)) {
      const one = arrayInputs(x, rows, cols);
      if (!one || one.batch) throw new MnistError('not-number-image', { where: `msg.payload[${i}]`, pixels: rows * cols, rows, cols });
      out.pixels.push(one.pixels[0]);
      out.pngs.push(null);
      extras(out, null);
    } else {
      throw new MnistError('batch-item-kind', { where: `msg.payload[${i}]`, type: x === null ? 'null' : typeof x, pixels: rows * cols });
    }
  }
  return out;
}

/** Softmax of one model for [0,1] pixel images, with the model's own normalization applied. */
function modelProbabilities(entry: ModelEntry, images: Float32Array[], limitMB?: number): Float32Array {
  const size = inputSize(entry.model);
  const norm = entry.meta.normalization;
  const floats = new Float32Array(images.length * size);
  images.forEach((img, i) => {
    if (img.length !== size) throw new MnistError('image-size-mismatch', { inputs: size, values: img.length });
    for (let j = 0; j < size; j++) floats[i * size + j] = norm ? (img[j] - norm.mean) / norm.std : img[j];
  });
  return probabilities(entry.model, floats, images.length, limitMB);
}

/** The most models one message may average (each runs the whole batch). */
export const MAX_ENSEMBLE = 10;

/**
 * Predictions for [0,1] pixel images. Several models (an ensemble) must share classes and input
 * shape; their probabilities are averaged, each model applying its own normalization.
 */
export function classify(models: ModelEntry | ModelEntry[], images: Float32Array[], opts: { threshold?: number; topK?: number; limitMB?: number } = {}): Prediction[] {
  const entries = Array.isArray(models) ? models : [models];
  const entry = entries[0];
  for (const [i, other] of entries.entries()) {
    const same = other.meta.classes.join('\u0000') === entry.meta.classes.join('\u0000') && inputSize(other.model) === inputSize(entry.model);
    if (!same) throw new MnistError('ensemble-mismatch', { index: i, classes: other.meta.classes.length, inputs: inputSize(other.model), firstClasses: entry.meta.classes.length, firstInputs: inputSize(entry.model) });
  }
  const probs = modelProbabilities(entry, images, opts.limitMB);
  for (const other of entries.slice(1)) {
    const more = modelProbabilities(other, images, opts.limitMB);
    for (let j = 0; j < probs.length; j++) probs[j] += more[j];
  }
  if (entries.length > 1) for (let j = 0; j < probs.length; j++) probs[j] /= entries.length;
  const k = Math.max(1, Math.min(opts.topK ?? 3, entry.meta.classes.length));
  const classes = probs.length / images.length;
  return images.map((_, i) => {
    const p = Array.from(probs.subarray(i * classes, (i + 1) * classes));
    const ranked = p.map((probability, label) => ({ label, className: entry.meta.classes[label] ?? String(label), probability }))
      .sort((a, b) => b.probability - a.probability);
    const best = ranked[0];
    const sure = best.probability >= (opts.threshold ?? 0);
    return {
      label: sure ? best.label : null,
      className: sure ? best.className : null,
      confidence: best.probability,
      probabilities: p,
      topK: ranked.slice(0, k),
    };
  });
}

/** Images per classify() call when a batch is classified a part at a time. */
const PART = 500;

/**
 * classify() a part at a time, letting the event loop run between parts: a 10k batch held
 * Node-RED's main thread for about 1 s at once, and HTTP answers and dashboards waited meanwhile
 * (found by npm run soak); a part of 500 holds it for about 0.1 s. Ends with 'predict-stopped'
 * once `signal` aborts (the node closed).
 */
export async function classifyInParts(models: ModelEntry | ModelEntry[], images: Float32Array[], opts: { threshold?: number; topK?: number; limitMB?: number } = {}, signal?: AbortSignal): Promise<Prediction[]> {
  if (images.length <= PART) return classify(models, images, opts);
  const out: Prediction[] = [];
  for (let lo = 0; lo < images.length; lo += PART) {
    if (signal?.aborted) throw new MnistError('predict-stopped');
    for (const p of classify(models, images.slice(lo, lo + PART), opts)) out.push(p);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out;
}
