/**
 * `npm run bench`: the seed tutorial's run (60k samples x 3 epochs, MSE + SGD momentum 0.9, lr 0.005,
 * batch 512, PyTorch-style init) through src/lib/train.ts exactly as the nodes call it (in a worker
 * thread), on every engine present, side by side with PyTorch + OpenBLAS on 1 thread and on all
 * cores; the main thread's event-loop lag while each engine trains; prediction timings; peak RSS.
 * `--cnn` adds one epoch of the default CNN. See docs/BENCHMARKS.md.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { IntervalHistogram, monitorEventLoopDelay } from 'perf_hooks';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { initBackend } from '../lib/backend';
import { message } from '../lib/messages';
import { DIGITS, loadDataset, Split, SplitView, toFloats } from '../lib/dataset';
import { registerFastKernels, unregisterFastKernels } from '../lib/kernels';
import { evaluate } from '../lib/metrics';
import { createMlp, ModelEntry } from '../lib/model';
import { classify } from '../lib/predict';
import { preprocessImage } from '../lib/image';
import { drive } from '../lib/engine/driver';
import { defaultThreads } from '../lib/engine/pick';
import { buildModel, specOf } from '../lib/engine/spec';
import { tfjsEngine } from '../lib/engine/tfjs';
import { ModelSpec, TrainOptions, TRAIN_DEFAULTS } from '../lib/engine/types';
import { train, TrainHooks } from '../lib/train';

interface Args {
  backend?: string;
  epochs: number;
  limit: number;
  repeat: number;
  reference: boolean;
  stock: boolean;
  cnn: boolean;
  json: boolean;
}

const USAGE = 'usage: node bench/bench.js [--backend wasm|cpu] [--epochs N] [--limit N] [--repeat N] [--no-reference] [--no-stock] [--cnn] [--json]';
const NORMALIZATION = { mean: 0.1307, std: 0.3081 }; // the tutorial's Normalize((0.1307,), (0.3081,))
const STOCK_SAMPLES = 3072; // 6 batches: enough for a steady per-batch time of the stock kernels
const CORES = defaultThreads();
/** The default CNN: conv 32 3x3 relu, maxpool 2, conv 64 3x3 relu, maxpool 2, dense 128 relu, dense 10. */
const CNN: ModelSpec = {
  inputShape: [28, 28, 1],
  layers: [
    { kind: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' }, { kind: 'maxpool2d', poolSize: 2 },
    { kind: 'conv2d', filters: 64, kernelSize: 3, activation: 'relu' }, { kind: 'maxpool2d', poolSize: 2 },
    { kind: 'flatten' }, { kind: 'dense', units: 128, activation: 'relu' }, { kind: 'dense', units: 10, activation: 'linear' },
  ],
};
const CNN_OPTIONS: TrainOptions = { ...TRAIN_DEFAULTS, epochs: 1, optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001, batchSize: 128 };
/**
 * This machine's environment pins OpenBLAS to its Haswell kernels and a small L2 size; a PyTorch
 * user's would not. The reference's own environment drops them (never the tests' or CI's).
 */
const UNSET_FOR_REFERENCE = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'];
const INSTALL_HINT = 'apt-get install -y libopenblas0-pthread python3-torch python3-torchvision (or set MNIST_PYTHON to a python with torch)';
const TARGETS = { nativeVsPytorch: 1.3, wasmSamplesPerSecond: 30000, maxLagMs: 50 };

function parseArgs(argv: string[]): Args {
  const args: Args = { epochs: TRAIN_DEFAULTS.epochs, limit: 0, repeat: 1, reference: true, stock: true, cnn: false, json: false };
  const int = (flag: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs a whole number >= ${min}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--backend') args.backend = argv[++i];
    else if (a === '--epochs') args.epochs = int(a, argv[++i], 1);
    else if (a === '--limit') args.limit = int(a, argv[++i], 0);
    else if (a === '--repeat') args.repeat = int(a, argv[++i], 1);
    else if (a === '--no-reference') args.reference = false;
    else if (a === '--no-stock') args.stock = false;
    else if (a === '--cnn') args.cnn = true;
    else if (a === '--json') args.json = true;
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (args.backend && !['wasm', 'cpu', 'tensorflow'].includes(args.backend)) throw new Error(`--backend ${args.backend}: use wasm or cpu\n${USAGE}`);
  return args;
}

const round = (x: number, digits = 3) => Number.isFinite(x) ? Number(x.toFixed(digits)) : x;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
/**
 * CPU seconds of this process and of its children that ended (training runs in a child process),
 * from /proc/self/stat: utime, stime, cutime, cstime in clock ticks (100 per second on Linux).
 */
function cpuTotal(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / 100;
}
const cpuSeconds = (since: number) => cpuTotal() - since;
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Resident bytes of this process's children (the training process), from /proc. */
function childrenRss(): number {
  let bytes = 0;
  try {
    for (const task of fs.readdirSync('/proc/self/task')) {
      for (const pid of fs.readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) {
        const kb = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
        if (kb) bytes += Number(kb) * 1024;
      }
    }
  } catch { /* a child that just exited, or no /proc */ }
  return bytes;
}

/**
 * Peak resident memory of this process together with the training process it starts (training
 * runs in a child process): sampled every 50 ms, and at least this process's own high-water mark.
 */
class RssWatch {
  private peak = 0;
  private timer = setInterval(() => this.sample(), 50);
  sample(): void { this.peak = Math.max(this.peak, process.memoryUsage().rss + childrenRss()); }
  peakMB(): number {
    this.sample();
    return Math.max(this.peak, process.resourceUsage().maxRSS * 1024) / 2 ** 20;
  }
  stop(): void { clearInterval(this.timer); }
}

/**
 * How late a 10 ms timer fires on the main thread (Node's histogram records the whole interval, so
 * the resolution is taken off). `afterFirstBatch` leaves out the start: the worker's creation (it
 * shares a SharedArrayBuffer split and would copy any other) and the engine's loading.
 */
const LOOP_RESOLUTION_MS = 10;
interface Lag { maxLagMs: number; p99Ms: number }
interface LoopStats extends Lag {
  /** the synchronous part of the train() call: weights out of the model and the worker's creation */
  startBlockMs: number;
  afterFirstBatch: Lag | null;
}
function lagOf(h: IntervalHistogram): Lag {
  const lag = (ns: number) => round(Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS), 1);
  return { maxLagMs: lag(h.max), p99Ms: lag(h.percentile(99)) };
}
class LoopWatch {
  private whole = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private steady = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  constructor() { this.whole.enable(); }
  firstBatch(): void { this.steady.enable(); }
  stop(startBlockMs: number): LoopStats {
    this.whole.disable();
    this.steady.disable();
    return { ...lagOf(this.whole), startBlockMs: round(startBlockMs, 1), afterFirstBatch: this.steady.count ? lagOf(this.steady) : null };
  }
}

async function idleLoop(msIdle: number): Promise<Lag> {
  const h = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  h.enable();
  await new Promise((r) => setTimeout(r, msIdle));
  h.disable();
  return lagOf(h);
}

function view(split: Split): SplitView {
  return { ...split, normalization: NORMALIZATION };
}

function tutorialModel(seed = 0): tf.Sequential {
  return createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed });
}

interface EngineRun {
  engine: string;
  threads: number;
  /** the training loop, as train() reports it (from the open session to the last step) */
  seconds: number;
  /** the whole train() call: worker start, engine loading, session open, loop, weights back */
  wallSeconds: number;
  /** process CPU time from the engine's choice to train()'s return (the main thread idles) */
  cpuSeconds: number;
  samplesPerSecond: number;
  epochSeconds: number[];
  finalLoss: number;
  testAccuracy: number;
  eventLoop: LoopStats;
  fallback?: string;
  /** seconds of every repeat (--repeat); the figures above are the fastest one's, eventLoop the worst one's */
  runs?: number[];
}

/** One training run through train() as the nodes make it, evaluated on the test split. */
async function trainRun(model: tf.Sequential, trainView: SplitView, test: SplitView, options: TrainOptions, hooks: TrainHooks, log: (s: string) => void) {
  const before = tf.memory().numTensors;
  const loop = new LoopWatch();
  let fallback: string | undefined;
  let cpu = cpuTotal();
  const t0 = process.hrtime.bigint();
  const pending = train(model, trainView, 10, options, {
    ...hooks,
    onEngine: (e) => {
      cpu = cpuTotal();
      if (e.fallback) fallback = message(e.fallback.code, e.fallback.params);
    },
    onBatch: () => loop.firstBatch(),
  });
  const startBlockMs = ms(t0);
  const r = await pending;
  const wallSeconds = ms(t0) / 1000;
  const cpuS = cpuSeconds(cpu);
  const eventLoop = loop.stop(startBlockMs);
  const leaked = tf.memory().numTensors - before;
  const accuracy = model.inputs[0].shape.length > 2 ? imageAccuracy(model, test) : (await evaluate(model, test, 10, options.loss)).accuracy;
  const run: EngineRun = {
    engine: r.engine,
    threads: r.threads,
    seconds: round(r.seconds),
    wallSeconds: round(wallSeconds),
    cpuSeconds: round(cpuS),
    samplesPerSecond: round(r.samplesPerSecond, 1),
    epochSeconds: r.history.epochs.map((e) => round(e.seconds)),
    finalLoss: round(r.finalLoss, 5),
    testAccuracy: round(accuracy, 4),
    eventLoop,
    ...(fallback ? { fallback } : {}),
  };
  log(`  ${r.engine} (${r.threads} thread${r.threads > 1 ? 's' : ''}): ${run.seconds} s (train() ${run.wallSeconds} s, CPU ${run.cpuSeconds} s), `
    + `${Math.round(run.samplesPerSecond)} samples/s, test accuracy ${(run.testAccuracy * 100).toFixed(2)} %, `
    + `main-thread lag max ${eventLoop.maxLagMs} ms (train() call ${eventLoop.startBlockMs} ms, after the first batch ${eventLoop.afterFirstBatch?.maxLagMs ?? '-'} ms)`);
  if (fallback) log(`  fell back: ${fallback}`);
  return { run, leaked };
}

/** Test accuracy of a model that takes images (evaluate() feeds flat rows to the model). */
function imageAccuracy(model: tf.LayersModel, test: SplitView): number {
  const shape = model.inputs[0].shape.slice(1).map(Number);
  let right = 0;
  for (let lo = 0; lo < test.count; lo += 500) {
    const hi = Math.min(lo + 500, test.count);
    const pred = tf.tidy(() => (model.predict(tf.tensor(toFloats(test, lo, hi), [hi - lo, ...shape])) as tf.Tensor).argMax(1).dataSync());
    for (let i = 0; i < pred.length; i++) if (pred[i] === test.labels[lo + i]) right++;
  }
  return right / test.count;
}

/** The fastest of several runs, with every run's seconds beside it. */
function fastest<T extends { seconds: number }>(runs: T[]): T & { runs?: number[] } {
  const best = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return runs.length > 1 ? { ...best, runs: runs.map((r) => r.seconds) } : best;
}

/**
 * Stock kernels against ours on the same subset, both in this thread with drive() and the tfjs
 * engine (training itself runs in a worker that registers ours): what kernels.ts buys.
 */
async function kernelComparison(backend: string, split: SplitView, log: (s: string) => void) {
  const n = Math.min(split.count, STOCK_SAMPLES);
  const data = { ...split, images: split.images.subarray(0, n * 784), labels: split.labels.subarray(0, n), count: n, classes: 10 };
  const once = async () => {
    const model = tutorialModel(1);
    const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
    const spec = { ...specOf(model), inputShape: [28, 28, 1] as [number, number, number] };
    model.dispose();
    const r = await drive(tfjsEngine, spec, weights, data, { ...TRAIN_DEFAULTS, epochs: 1 });
    return r.samples / r.seconds;
  };
  const restored = unregisterFastKernels(backend);
  if (!restored.length) return null;
  let stock: number;
  try {
    stock = await once();
  } finally {
    registerFastKernels(backend);
  }
  const ours = await once();
  log(`kernels on ${backend}, ${n} samples in this thread: stock ${Math.round(stock)} samples/s, ours ${Math.round(ours)} samples/s (${(ours / stock).toFixed(2)}x)`);
  return { backend, samples: n, overrides: restored, stockSamplesPerSecond: round(stock, 1), oursSamplesPerSecond: round(ours, 1), ratio: round(ours / stock, 2) };
}

/** A 280x280 dark-on-white PNG of one test digit: what a user would send, not an MNIST tile. */
async function userPng(split: Split, i: number): Promise<Buffer> {
  const px = Buffer.from(split.images.subarray(i * 784, (i + 1) * 784).map((v) => 255 - v));
  return sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .resize(280, 280, { kernel: 'lanczos3' }).png().toBuffer();
}

/**
 * A 12-megapixel phone JPEG (4000x3000, quality 90) of test digit `i` written on ruled paper
 * under a lamp whose light falls off toward one corner: issue 14's speed case. (test/photo-kit.ts
 * draws the varied photos the accuracy tests use; the bench only needs the size and the kind.)
 */
async function phonePhoto(split: Split, i: number): Promise<Buffer> {
  const W = 4000, H = 3000, side = 600;
  const digit = await sharp(Buffer.from(split.images.subarray(i * 784, (i + 1) * 784).map((v) => 255 - v)), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(side, side, { kernel: 'cubic' }).png().toBuffer();
  const rulings = Array.from({ length: Math.floor(H / 120) }, (_, k) => `<rect x="0" y="${60 + k * 120}" width="${W}" height="4" fill="#9db4d6"/>`).join('');
  const page = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">` +
    '<defs><linearGradient id="l" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#f4f1e8"/><stop offset="1" stop-color="#8d8a82"/></linearGradient></defs>' +
    `<rect width="${W}" height="${H}" fill="url(#l)"/>${rulings}</svg>`);
  return sharp(page).composite([{ input: digit, left: 1700, top: 1100, blend: 'multiply' }]).jpeg({ quality: 90 }).toBuffer();
}

async function predictTimings(entry: ModelEntry, test: Split, log: (s: string) => void) {
  const image = (i: number) => Float32Array.from(test.images.subarray(i * 784, (i + 1) * 784), (v) => v / 255);
  // Single image, number-array path: classify() is what the predict node calls.
  const one = image(0);
  for (let i = 0; i < 200; i++) classify(entry, [one]);
  const single: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = process.hrtime.bigint();
    classify(entry, [image(i % test.count)]);
    single.push(ms(t0));
  }
  single.sort((a, b) => a - b);
  log(`single-image predict: p50 ${quantile(single, 0.5).toFixed(3)} ms, p99 ${quantile(single, 0.99).toFixed(3)} ms`);

  // 10k batch in one call.
  const all = Array.from({ length: test.count }, (_, i) => image(i));
  classify(entry, all.slice(0, 500));
  let t0 = process.hrtime.bigint();
  const preds = classify(entry, all);
  const batchSeconds = ms(t0) / 1000;
  const batchCorrect = preds.filter((p, i) => p.label === test.labels[i]).length;
  log(`10k batch predict: ${batchSeconds.toFixed(3)} s`);

  // PNG buffer -> decode + preprocess + infer.
  const pngs = await Promise.all(Array.from({ length: 50 }, (_, i) => userPng(test, i)));
  for (let i = 0; i < 10; i++) classify(entry, [(await preprocessImage(pngs[i])).pixels]);
  const png: number[] = [];
  let pngCorrect = 0;
  for (let r = 0; r < 4; r++) {
    for (let i = 0; i < pngs.length; i++) {
      t0 = process.hrtime.bigint();
      const p = classify(entry, [(await preprocessImage(pngs[i])).pixels])[0];
      png.push(ms(t0));
      if (r === 0 && p.label === test.labels[i]) pngCorrect++;
    }
  }
  png.sort((a, b) => a - b);
  log(`PNG predict (280x280, decode+preprocess+infer): median ${quantile(png, 0.5).toFixed(2)} ms`);
  // The same through an MNIST-sized (28x28) PNG: how much is decoding/scanning a bigger image.
  const tiles = await Promise.all(Array.from({ length: 50 }, (_, i) => sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)),
    { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()));
  const small: number[] = [];
  for (let r = 0; r < 4; r++) {
    for (const tile of tiles) {
      t0 = process.hrtime.bigint();
      classify(entry, [(await preprocessImage(tile)).pixels]);
      small.push(ms(t0));
    }
  }
  small.sort((a, b) => a - b);
  log(`PNG predict (28x28 MNIST tile): median ${quantile(small, 0.5).toFixed(2)} ms`);
  // A 12 MP phone JPEG: decode (shrink-on-load), photo preprocessing, infer.
  const photos = await Promise.all([0, 1, 2].map((i) => phonePhoto(test, i)));
  for (const photo of photos) classify(entry, [(await preprocessImage(photo)).pixels]);
  const photo: number[] = [];
  let photoCorrect = 0;
  for (let r = 0; r < 10; r++) {
    for (let i = 0; i < photos.length; i++) {
      t0 = process.hrtime.bigint();
      const p = classify(entry, [(await preprocessImage(photos[i])).pixels])[0];
      photo.push(ms(t0));
      if (r === 0 && p.label === test.labels[i]) photoCorrect++;
    }
  }
  photo.sort((a, b) => a - b);
  log(`12 MP phone JPEG predict (${(photos[0].length / 1e6).toFixed(1)} MB): median ${quantile(photo, 0.5).toFixed(1)} ms`);
  return {
    photo12mpMedianMs: round(quantile(photo, 0.5)),
    photo12mpP90Ms: round(quantile(photo, 0.9)),
    photo12mpCorrect: `${photoCorrect}/${photos.length}`,
    p50Ms: round(quantile(single, 0.5), 4),
    p99Ms: round(quantile(single, 0.99), 4),
    singleCalls: single.length,
    batch10kSeconds: round(batchSeconds),
    batch10kAccuracy: round(batchCorrect / test.count, 4),
    pngMedianMs: round(quantile(png, 0.5)),
    pngP99Ms: round(quantile(png, 0.99)),
    pngCalls: png.length,
    png28MedianMs: round(quantile(small, 0.5)),
    pngAccuracy: round(pngCorrect / pngs.length, 3),
  };
}

/** The first python that imports torch and torchvision: MNIST_PYTHON, python3, /usr/bin/python3. */
function findPython(): string | null {
  const candidates = [process.env.MNIST_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => !!c);
  for (const py of [...new Set(candidates)]) {
    const r = spawnSync(py, ['-c', 'import torch, torchvision'], { stdio: 'ignore', timeout: 60000 });
    if (r.status === 0) return py;
  }
  return null;
}

interface Blas { name: string; kind: string; core: string | null; libraries: string[] }
interface RefRun {
  seconds: number;
  cpuSeconds: number;
  samplesPerSecond: number;
  testAccuracy: number;
  epochSeconds: number[];
  threads: { torch: number; blas: number | null };
  runs?: number[];
}
type RefOut = { torch: string; threads: number; blas: Blas & { threads: number | null } } & Record<string, unknown>;

/** The reference's environment: BLAS threads as asked, this machine's OpenBLAS pins dropped. */
function referenceEnv(blasThreads: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(blasThreads) };
  for (const name of UNSET_FOR_REFERENCE) delete env[name];
  return env;
}

/** Runs a reference script (torch's own pool: 1 thread) and parses the JSON of its last line. */
function python(py: string, script: string, argv: string[], blasThreads: number): Promise<RefOut> {
  const file = path.join(__dirname, '..', 'scripts', script);
  return new Promise((resolve, reject) => {
    const child = spawn(py, [file, '--threads', '1', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: referenceEnv(blasThreads) });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        if (code !== 0) throw new Error(`exit code ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`);
        resolve(JSON.parse(out.trim().split('\n').pop() || ''));
      } catch (e) {
        reject(new Error(`${script} failed: ${(e as Error).message}`));
      }
    });
  });
}

function refRun(out: RefOut, key: string): RefRun {
  const r = out[key] as Omit<RefRun, 'threads'>;
  return { ...r, threads: { torch: out.threads, blas: out.blas.threads } };
}

function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

function machineInfo() {
  let flags: string[] = [];
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) ?? '';
    flags = line.split(':')[1]?.trim().split(/\s+/).filter((f) => /^(avx2|fma|avx512\w*)$/.test(f)) ?? [];
  } catch { /* not Linux */ }
  let onnxruntime: string | null = null;
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional package
  try { onnxruntime = require('onnxruntime-node/package.json').version; } catch { /* optional */ }
  return {
    cpu: os.cpus()[0]?.model, cores: CORES, flags, memGB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version, tfjs: tf.version.tfjs, onnxruntime, loadAverage: { start: os.loadavg().map((l) => round(l, 2)), end: [] as number[] },
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // With --json stdout carries only the JSON object; progress goes to stderr.
  const log = args.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => console.log(s);
  const machine = machineInfo();
  log(`${machine.cpu}, ${CORES} cores (${machine.flags.join(' ') || 'no avx2'}), load average ${machine.loadAverage.start.join(' ')}`);
  if (args.backend) process.env.MNIST_TF_BACKEND = args.backend;
  const rss = new RssWatch();
  const backend = await initBackend(args.backend, (key, params) => log(message(key, params)));
  const kernels = registerFastKernels(backend); // installed by initBackend: this lists them
  const trainSplit = (await loadDataset({ source: 'embedded', splits: 'train', limit: args.limit })).train!;
  const testSplit = (await loadDataset({ source: 'embedded', splits: 'test' })).test!;
  const trainView = view(trainSplit);
  const testView = view(testSplit);
  const options: TrainOptions = { ...TRAIN_DEFAULTS, epochs: args.epochs };

  const idle = await idleLoop(5000);
  log(`main-thread lag with nothing running (5 s): max ${idle.maxLagMs} ms, p99 ${idle.p99Ms} ms`);
  const kernelRatio = args.stock ? await kernelComparison(backend, trainView, log) : null;

  const py = args.reference ? findPython() : null;
  const reference: Record<string, unknown> = args.reference && !py ? { skipped: `PyTorch not found; install it with: ${INSTALL_HINT}` } : {};
  // Each name dropped from the reference's environment, with the value it had here (null: not set).
  const unset = Object.fromEntries(UNSET_FOR_REFERENCE.map((k) => [k, process.env[k] ?? null]));
  let referenceError: string | undefined;
  const pytorch = async (script: string, argv: string[], blasThreads: number): Promise<RefOut | null> => {
    if (!py || referenceError) return null;
    log(`PyTorch: OPENBLAS_NUM_THREADS=${blasThreads} ${py} scripts/${script} --threads 1 ${argv.join(' ')}`);
    try {
      const out = await python(py, script, argv, blasThreads);
      if (!reference.blas) {
        const { threads: _perRun, ...blas } = out.blas;
        Object.assign(reference, { python: py, torch: out.torch, blas, unsetEnv: unset });
      }
      return out;
    } catch (e) {
      referenceError = (e as Error).message;
      return null;
    }
  };
  const mlpArgs = ['--epochs', String(args.epochs), ...(args.limit ? ['--limit', String(args.limit)] : [])];

  log(`tutorial MLP: ${trainSplit.count} samples x ${options.epochs} epochs (batch ${options.batchSize}, MSE, SGD momentum ${options.momentum}, lr ${options.learningRate}); ${args.repeat} round(s), engines and PyTorch interleaved`);
  const runs: Record<string, EngineRun[]> = {};
  const refs: Record<string, RefRun[]> = { pytorchPreloaded: [], pytorchPreloadedAllThreads: [] };
  const add = (key: string, r: EngineRun) => { (runs[key] ??= []).push(r); };
  let nodes: { model: tf.Sequential; run: EngineRun } | undefined;
  let trainPeakMB = 0;
  let leakedByTrain = 0;
  for (let round_ = 0; round_ < args.repeat; round_++) {
    // The nodes' way: engine 'auto' (native where it loads, else tfjs), every core.
    const model = tutorialModel();
    const auto = await trainRun(model, trainView, testView, options, { engine: 'auto', backend: args.backend }, log);
    leakedByTrain = Math.max(leakedByTrain, auto.leaked);
    add(auto.run.engine, auto.run);
    if (!nodes) { nodes = { model, run: auto.run }; trainPeakMB = rss.peakMB(); } else model.dispose();
    const all = await pytorch('reference_pytorch.py', ['--mode', 'preloaded', ...mlpArgs], CORES);
    if (all) refs.pytorchPreloadedAllThreads.push(refRun(all, 'pytorchPreloaded'));
    if (auto.run.engine === 'native') {
      const one = tutorialModel();
      add('native1', (await trainRun(one, trainView, testView, options, { engine: 'native', threads: 1 }, log)).run);
      one.dispose();
    }
    const single = await pytorch('reference_pytorch.py', ['--mode', 'preloaded', ...mlpArgs], 1);
    if (single) refs.pytorchPreloaded.push(refRun(single, 'pytorchPreloaded'));
  }
  if (nodes!.run.engine === 'native') {
    const model = tutorialModel();
    const r = await trainRun(model, trainView, testView, options, { engine: 'tfjs', backend: args.backend }, log);
    add(r.run.engine, r.run);
    model.dispose();
  }
  const script = await pytorch('reference_pytorch.py', ['--mode', 'script', ...mlpArgs], 1);
  if (script) reference.pytorchScript = refRun(script, 'pytorchScript');
  for (const [key, list] of Object.entries(refs)) if (list.length) reference[key] = fastest(list);

  const entry: ModelEntry = { model: nodes!.model, meta: { classes: DIGITS, inputShape: [28, 28], normalization: NORMALIZATION } };
  const tensorsBeforePredict = tf.memory().numTensors;
  const predict = await predictTimings(entry, testSplit, log);
  const leakedByPredict = tf.memory().numTensors - tensorsBeforePredict;
  nodes!.model.dispose();

  let cnn: Record<string, unknown> | undefined;
  if (args.cnn) {
    const cnnRuns: Record<string, unknown> = {};
    const cnnRun = async (key: string, threads: number) => {
      log(`CNN, 1 epoch, native, ${threads} thread(s) ...`);
      const model = buildModel(CNN);
      try {
        const { run } = await trainRun(model, trainView, testView, CNN_OPTIONS, { engine: 'native', threads }, log);
        cnnRuns[key] = { epochSeconds: run.epochSeconds[0], seconds: run.seconds, cpuSeconds: run.cpuSeconds, testAccuracy: run.testAccuracy, threads: run.threads, eventLoop: run.eventLoop };
      } catch (e) {
        cnnRuns[key] = { skipped: (e as Error).message };
      } finally {
        model.dispose();
      }
    };
    await cnnRun('native1', 1);
    const ref = await pytorch('reference_pytorch_cnn.py', ['--epochs', '1', ...(args.limit ? ['--limit', String(args.limit)] : [])], 1);
    if (ref) {
      reference.pytorchCnn = { epochSeconds: (ref.epochSeconds as number[])[0], seconds: ref.seconds, cpuSeconds: ref.cpuSeconds, testAccuracy: ref.testAccuracy, threads: { torch: ref.threads, blas: ref.blas.threads } };
    }
    await cnnRun('native', CORES);
    cnn = { model: 'conv 32 3x3 relu, maxpool 2, conv 64 3x3 relu, maxpool 2, dense 128 relu, dense 10', epochs: 1, optimizer: 'adam', learningRate: 0.001, loss: 'crossentropy', batchSize: 128, engines: cnnRuns };
  }
  if (referenceError) reference.error = referenceError;

  const peakRssMB = rss.peakMB();
  rss.stop();
  machine.loadAverage.end = os.loadavg().map((l) => round(l, 2));
  // Repeated runs: times from the fastest, main-thread stalls from the worst (a stall is a worst case).
  const stall = (r: EngineRun) => Math.max(r.eventLoop.maxLagMs, r.eventLoop.startBlockMs);
  const engines = Object.fromEntries(Object.entries(runs).map(([k, list]) => [k, {
    ...fastest(list), eventLoop: list.reduce((a, b) => (stall(b) > stall(a) ? b : a)).eventLoop,
  }]));
  const out: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine,
    backend,
    fastKernels: kernels,
    // The nodes' choice (engine 'auto', every core); its figures are engines[train.engine]'s.
    train: {
      engine: nodes!.run.engine,
      threads: nodes!.run.threads,
      samples: trainSplit.count * options.epochs,
      epochs: options.epochs,
      batchSize: options.batchSize,
      seconds: engines[nodes!.run.engine].seconds,
      samplesPerSecond: engines[nodes!.run.engine].samplesPerSecond,
      testAccuracy: engines[nodes!.run.engine].testAccuracy,
      ...(nodes!.run.fallback ? { fallback: nodes!.run.fallback } : {}),
    },
    engines,
    eventLoop: { ...(engines.native ?? engines[nodes!.run.engine]).eventLoop, engine: engines.native ? 'native' : nodes!.run.engine, idle },
    kernels: kernelRatio,
    tensors: { leakedByTrain, leakedByPredict },
    trainPeakRssMB: round(trainPeakMB, 1),
    peakRssMB: round(peakRssMB, 1),
    predict,
    reference: args.reference ? reference : null,
    ...(cnn ? { cnn } : {}),
  };
  out.checks = checks(out as unknown as Out, args);
  const lines = [report(out as unknown as Out), '', 'checks', ...(out.checks as Check[]).map(checkLine)].join('\n');
  if (args.json) {
    log(lines);
    console.log(JSON.stringify(out));
  } else {
    console.log(`\n${lines}`);
  }
}

interface Out {
  machine: ReturnType<typeof machineInfo>;
  backend: string;
  fastKernels: string[];
  train: { engine: string; threads: number; fallback?: string };
  engines: Record<string, EngineRun>;
  eventLoop: LoopStats & { engine: string; idle: Lag };
  kernels: { backend: string; samples: number; stockSamplesPerSecond: number; oursSamplesPerSecond: number; ratio: number } | null;
  tensors: { leakedByTrain: number; leakedByPredict: number };
  trainPeakRssMB: number;
  peakRssMB: number;
  predict: Awaited<ReturnType<typeof predictTimings>>;
  reference: null | { skipped?: string; error?: string; blas?: Blas; unsetEnv?: Record<string, string | null>; torch?: string } & Partial<Record<'pytorchPreloaded' | 'pytorchPreloadedAllThreads' | 'pytorchScript', RefRun>>
    & { pytorchCnn?: { epochSeconds: number; cpuSeconds: number; testAccuracy: number } };
  cnn?: { engines: Record<string, { epochSeconds: number; cpuSeconds: number; testAccuracy: number; threads: number; eventLoop: LoopStats } | { skipped: string }> };
}

/** pass: null when it could not be judged in this run (an engine or the reference missing). */
interface Check { name: string; pass: boolean | null; ratio?: number; value: string }

/** An optimised BLAS makes the reference a fair one; the reference BLAS made it 30x slower. */
const fairBlas = (blas?: Blas) => !!blas && ['openblas', 'mkl', 'blis'].includes(blas.kind);

function checks(out: Out, args: Args): Check[] {
  const c: Check[] = [];
  const ref = out.reference;
  const versus = (name: string, engine: EngineRun | undefined, torch: RefRun | undefined) => {
    if (!engine || !torch) {
      c.push({ name, pass: null, value: !engine ? 'engine not present' : `no reference (${ref?.skipped ?? ref?.error ?? 'not run'})` });
      return;
    }
    const ratio = round(engine.seconds / torch.seconds, 2);
    const cpu = round(engine.cpuSeconds / torch.cpuSeconds, 2);
    const value = `${ratio}x (${engine.seconds} s vs ${torch.seconds} s; CPU ${engine.cpuSeconds} vs ${torch.cpuSeconds} s = ${cpu}x)`;
    if (!fairBlas(ref?.blas)) c.push({ name, pass: null, ratio, value: `${value}; not judged: the reference ran on ${ref?.blas?.name}, install libopenblas0-pthread` });
    else c.push({ name, pass: ratio <= TARGETS.nativeVsPytorch, ratio, value });
  };
  versus(`native 1 thread within ${TARGETS.nativeVsPytorch}x of PyTorch + OpenBLAS 1 thread`, out.engines.native1, ref?.pytorchPreloaded);
  versus(`native all cores (${CORES}) within ${TARGETS.nativeVsPytorch}x of PyTorch + OpenBLAS all cores`, out.engines.native, ref?.pytorchPreloadedAllThreads);
  const wasm = out.engines.wasm;
  c.push(wasm
    ? { name: `wasm >= ${TARGETS.wasmSamplesPerSecond.toLocaleString('en')} samples/s`, pass: wasm.samplesPerSecond >= TARGETS.wasmSamplesPerSecond, ratio: round(wasm.samplesPerSecond / TARGETS.wasmSamplesPerSecond, 2), value: `${Math.round(wasm.samplesPerSecond)} samples/s` }
    : { name: `wasm >= ${TARGETS.wasmSamplesPerSecond.toLocaleString('en')} samples/s`, pass: null, value: 'wasm engine not run' });
  // A stall is the longer of the timer's worst lateness and the train() call's own synchronous time
  // (a block right after the timer starts shows only partly in the timer).
  const trained: Array<[string, LoopStats]> = [
    ...Object.entries(out.engines).map(([k, e]) => [k, e.eventLoop] as [string, LoopStats]),
    ...Object.entries(out.cnn?.engines ?? {}).flatMap(([k, e]) => ('eventLoop' in e ? [[`CNN ${k}`, e.eventLoop] as [string, LoopStats]] : [])),
  ];
  const lags = trained.map(([k, l]) => ({ k, lag: l.maxLagMs, start: l.startBlockMs, steady: l.afterFirstBatch?.maxLagMs ?? 0 }));
  const worst = Math.max(...lags.map((l) => Math.max(l.lag, l.start)));
  c.push({
    name: `main-thread stalls < ${TARGETS.maxLagMs} ms while any engine trains`, pass: worst < TARGETS.maxLagMs, ratio: round(worst / TARGETS.maxLagMs, 2),
    value: `max ${worst} ms (${lags.map((l) => `${l.k}: timer ${l.lag} ms, train() call ${l.start} ms, after the first batch ${l.steady} ms`).join('; ')}; the idle machine's own timer lag ${out.eventLoop.idle.maxLagMs} ms)`,
  });
  const full = !args.limit;
  c.push({ name: 'peak RSS of the nodes\' training run < 600 MB', pass: full ? out.trainPeakRssMB < 600 : null, value: `${out.trainPeakRssMB} MB${full ? '' : ' (subset run)'}` });
  c.push({ name: 'no tensors left on the main thread by train() and predict', pass: out.tensors.leakedByTrain === 0 && out.tensors.leakedByPredict === 0, value: `train ${out.tensors.leakedByTrain}, predict ${out.tensors.leakedByPredict}` });
  c.push({ name: 'single-image predict p50 < 1 ms', pass: out.predict.p50Ms < 1, value: `${out.predict.p50Ms} ms` });
  c.push({ name: 'PNG predict median < 5 ms (280x280 PNG)', pass: out.predict.pngMedianMs < 5, value: `${out.predict.pngMedianMs} ms (28x28 tile: ${out.predict.png28MedianMs} ms)` });
  c.push({ name: '12 MP phone JPEG predict median <= 50 ms', pass: out.predict.photo12mpMedianMs <= 50, value: `${out.predict.photo12mpMedianMs} ms (p90 ${out.predict.photo12mpP90Ms} ms)` });
  return c;
}

const checkLine = (c: Check) => `  ${c.pass === null ? '----' : c.pass ? 'PASS' : 'FAIL'}  ${c.name}: ${c.value}`;

function report(out: Out): string {
  const m = out.machine;
  const ref = out.reference;
  const rows: Array<[string, string]> = [
    ['machine', `${m.cpu}, ${m.cores} cores (${m.flags.join(' ') || 'no avx2'}), Node ${m.node}, tfjs ${m.tfjs}, onnxruntime-node ${m.onnxruntime ?? 'not installed'}`],
    ['load average', `${m.loadAverage.start.join(' ')} at the start, ${m.loadAverage.end.join(' ')} at the end`],
    ['the nodes train on', `${out.train.engine} (${out.train.threads} thread${out.train.threads > 1 ? 's' : ''})${out.train.fallback ? `: ${out.train.fallback}` : ''}`],
  ];
  const line = (r: { seconds: number; cpuSeconds: number; samplesPerSecond: number; testAccuracy: number; runs?: number[] }) =>
    `${r.seconds} s (CPU ${r.cpuSeconds} s), ${Math.round(r.samplesPerSecond)} samples/s, test accuracy ${(r.testAccuracy * 100).toFixed(2)} %${r.runs ? ` (fastest of ${r.runs.join(', ')} s)` : ''}`;
  for (const [k, e] of Object.entries(out.engines)) {
    rows.push([`${k} (${e.threads} thread${e.threads > 1 ? 's' : ''})`, `${line(e)}; train() ${e.wallSeconds} s; main-thread lag max ${e.eventLoop.maxLagMs} ms, p99 ${e.eventLoop.p99Ms} ms, train() call ${e.eventLoop.startBlockMs} ms`]);
  }
  if (ref?.skipped) rows.push(['PyTorch', `skipped: ${ref.skipped}`]);
  if (ref?.error) rows.push(['PyTorch', `failed: ${ref.error}`]);
  if (ref?.blas) rows.push(['PyTorch BLAS', `${ref.blas.name} (core ${ref.blas.core ?? '?'}; ${ref.blas.libraries.join(', ')}); ${Object.entries(ref.unsetEnv ?? {}).map(([k, v]) => `${k} ${v === null ? '(not set here)' : `(was ${v})`}`).join(', ')} unset in its environment only`]);
  if (ref?.blas && !fairBlas(ref.blas)) rows.push(['  WARNING', `an unoptimised BLAS: the reference is crippled; install libopenblas0-pthread`]);
  for (const [k, label] of [['pytorchPreloaded', 'PyTorch preloaded'], ['pytorchPreloadedAllThreads', 'PyTorch preloaded'], ['pytorchScript', 'PyTorch DataLoader']] as const) {
    const r = ref?.[k];
    if (r) rows.push([`${label} (torch ${r.threads.torch}, BLAS ${r.threads.blas})`, line(r)]);
  }
  rows.push(['main-thread lag, idle', `max ${out.eventLoop.idle.maxLagMs} ms, p99 ${out.eventLoop.idle.p99Ms} ms (nothing running: this machine's noise)`]);
  if (out.kernels) rows.push(['kernels (in-process)', `${out.kernels.backend}: ours ${Math.round(out.kernels.oursSamplesPerSecond)} vs stock ${Math.round(out.kernels.stockSamplesPerSecond)} samples/s = ${out.kernels.ratio}x (${out.kernels.samples} samples)`]);
  rows.push(
    ['peak RSS', `${out.trainPeakRssMB} MB after the nodes' run, ${out.peakRssMB} MB overall (the training process included)`],
    ['predict 1 image', `p50 ${out.predict.p50Ms} ms, p99 ${out.predict.p99Ms} ms (${out.predict.singleCalls} calls)`],
    ['predict 10k batch', `${out.predict.batch10kSeconds} s (accuracy ${(out.predict.batch10kAccuracy * 100).toFixed(2)} %)`],
    ['predict PNG', `median ${out.predict.pngMedianMs} ms, p99 ${out.predict.pngP99Ms} ms (280x280 PNG: decode + preprocess + infer); 28x28 tile ${out.predict.png28MedianMs} ms`],
    ['predict 12 MP photo', `median ${out.predict.photo12mpMedianMs} ms, p90 ${out.predict.photo12mpP90Ms} ms (4000x3000 JPEG: decode + photo preprocessing + infer; ${out.predict.photo12mpCorrect} read right)`],
  );
  if (out.cnn) {
    for (const [k, r] of Object.entries(out.cnn.engines)) {
      rows.push([`CNN epoch, ${k}`, 'skipped' in r ? `skipped: ${r.skipped}` : `${r.epochSeconds} s (CPU ${r.cpuSeconds} s, ${r.threads} thread${r.threads > 1 ? 's' : ''}), test accuracy ${(r.testAccuracy * 100).toFixed(2)} %`]);
    }
    const p = ref?.pytorchCnn;
    if (p) rows.push(['CNN epoch, PyTorch', `${p.epochSeconds} s (CPU ${p.cpuSeconds} s, 1 thread), test accuracy ${(p.testAccuracy * 100).toFixed(2)} %`]);
  }
  return table(rows);
}

main().then(() => process.exit(0), (e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
