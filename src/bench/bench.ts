/**
 * `npm run bench`: the seed tutorial's run (60k samples, 3 epochs, MSE + SGD momentum 0.9,
 * lr 0.005, batch 512, PyTorch-style init) through the engine the nodes use, then prediction
 * timings, then the same recipe in PyTorch when it is installed. See docs/BENCHMARKS.md.
 *
 *   node bench/bench.js [--backend wasm|cpu] [--epochs N] [--limit N] [--no-reference]
 *                       [--no-stock] [--json]
 */
import { spawn, spawnSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { initBackend } from '../lib/backend';
import { message } from '../lib/messages';
import { DIGITS, loadDataset, Split, SplitView } from '../lib/dataset';
import { registerFastKernels, unregisterFastKernels } from '../lib/kernels';
import { evaluate } from '../lib/metrics';
import { createMlp, ModelEntry } from '../lib/model';
import { classify } from '../lib/predict';
import { preprocessImage } from '../lib/image';
import { drive } from '../lib/engine/driver';
import { specOf } from '../lib/engine/spec';
import { tfjsEngine } from '../lib/engine/tfjs';
import { TrainOptions, TRAIN_DEFAULTS } from '../lib/engine/types';
import { train } from '../lib/train';

interface Args {
  backend?: string;
  epochs: number;
  limit: number;
  reference: boolean;
  stock: boolean;
  json: boolean;
}

const USAGE = 'usage: node bench/bench.js [--backend wasm|cpu] [--epochs N] [--limit N] [--no-reference] [--no-stock] [--json]';
const NORMALIZATION = { mean: 0.1307, std: 0.3081 }; // the tutorial's Normalize((0.1307,), (0.3081,))
const STOCK_SAMPLES = 3072; // 6 batches: enough for a steady per-batch time of the stock kernels
const INSTALL_HINT = 'apt-get install python3-torch python3-torchvision (or set MNIST_PYTHON to a python with torch)';

function parseArgs(argv: string[]): Args {
  const args: Args = { epochs: TRAIN_DEFAULTS.epochs, limit: 0, reference: true, stock: true, json: false };
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
    else if (a === '--no-reference') args.reference = false;
    else if (a === '--no-stock') args.stock = false;
    else if (a === '--json') args.json = true;
    else if (a === '--help' || a === '-h') { console.log(USAGE); process.exit(0); }
    else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  if (args.backend && !['wasm', 'cpu', 'tensorflow'].includes(args.backend)) throw new Error(`--backend ${args.backend}: use wasm or cpu\n${USAGE}`);
  return args;
}

const round = (x: number, digits = 3) => Number.isFinite(x) ? Number(x.toFixed(digits)) : x;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Peak resident memory: the kernel's own high-water mark, cross-checked by sampling. */
class RssWatch {
  private peak = 0;
  private timer = setInterval(() => this.sample(), 50);
  sample(): void { this.peak = Math.max(this.peak, process.memoryUsage().rss); }
  peakMB(): number {
    this.sample();
    return Math.max(this.peak, process.resourceUsage().maxRSS * 1024) / 2 ** 20;
  }
  stop(): void { clearInterval(this.timer); }
}

function view(split: Split): SplitView {
  return { ...split, normalization: NORMALIZATION };
}

function tutorialModel(seed = 0): tf.Sequential {
  return createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed });
}

async function trainRun(train_: SplitView, test: SplitView, options: TrainOptions, log: (s: string) => void) {
  const model = tutorialModel(options.seed);
  const tensorsBefore = tf.memory().numTensors;
  const tensorsPerEpoch: number[] = [];
  const result = await train(model, train_, 10, options);
  for (const e of result.history.epochs) log(`  epoch ${e.epoch}/${options.epochs}: ${e.seconds.toFixed(2)} s, loss ${e.loss.toFixed(4)}`);
  log(`  engine: ${result.engine}`);
  const tensorsAfter = tf.memory().numTensors;
  const t0 = process.hrtime.bigint();
  const metrics = await evaluate(model, test, 10, options.loss);
  const evalSeconds = ms(t0) / 1000;
  return { model, result, metrics, evalSeconds, tensorsBefore, tensorsAfter, tensorsPerEpoch };
}

/** Times the same recipe with the backend's stock kernels on a small subset (same process). */
async function stockRun(backend: string, split: SplitView, log: (s: string) => void) {
  const restored = unregisterFastKernels(backend);
  if (!restored.length) return null;
  try {
    const n = Math.min(split.count, STOCK_SAMPLES);
    const sub: SplitView = { ...split, images: split.images.subarray(0, n * 784), labels: split.labels.subarray(0, n), count: n };
    log(`stock ${backend} kernels (${restored.join(', ')}), ${n} samples, 1 epoch ...`);
    // In this thread, where the stock kernels are registered now (a worker would register ours).
    const model = tutorialModel(1);
    const data = { ...sub, classes: 10 };
    const r = await drive(tfjsEngine, { ...specOf(model), inputShape: [28, 28, 1] }, model.getWeights().map((w) => w.dataSync() as Float32Array), data, { ...TRAIN_DEFAULTS, epochs: 1 });
    model.dispose();
    return { samples: r.samples, seconds: r.seconds, samplesPerSecond: r.samples / r.seconds, kernels: restored };
  } finally {
    registerFastKernels(backend);
  }
}

/** A 280x280 dark-on-white PNG of one test digit: what a user would send, not an MNIST tile. */
async function userPng(split: Split, i: number): Promise<Buffer> {
  const px = Buffer.from(split.images.subarray(i * 784, (i + 1) * 784).map((v) => 255 - v));
  return sharp(px, { raw: { width: 28, height: 28, channels: 1 } })
    .resize(280, 280, { kernel: 'lanczos3' }).png().toBuffer();
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
  return {
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

interface RefRun { seconds: number; samplesPerSecond: number; testAccuracy: number; epochSeconds: number[] }
type Reference = { skipped: string } | { python: string; torch: string; threads: number; pytorchScript: RefRun; pytorchPreloaded: RefRun };

function runReference(args: Args, log: (s: string) => void): Promise<Reference> {
  const py = findPython();
  if (!py) return Promise.resolve({ skipped: `PyTorch not found; install it with: ${INSTALL_HINT}` });
  const script = path.join(__dirname, '..', 'scripts', 'reference_pytorch.py');
  const argv = [script, '--epochs', String(args.epochs), ...(args.limit ? ['--limit', String(args.limit)] : [])];
  log(`PyTorch reference: ${py} ${argv.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(py, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', (e) => resolve({ skipped: `could not run ${py}: ${e.message}` }));
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() || '';
      try {
        if (code !== 0) throw new Error(`exit code ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`);
        const r = JSON.parse(last);
        resolve({ python: py, torch: r.torch, threads: r.threads, pytorchScript: r.pytorchScript, pytorchPreloaded: r.pytorchPreloaded });
      } catch (e) {
        resolve({ skipped: `reference failed: ${(e as Error).message}` });
      }
    });
  });
}

function table(rows: Array<[string, string]>): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  // With --json stdout carries only the JSON object; progress goes to stderr.
  const log = args.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => console.log(s);
  if (args.backend) process.env.MNIST_TF_BACKEND = args.backend;
  const rss = new RssWatch();
  const backend = await initBackend(undefined, (key, params) => log(message(key, params)));
  // backend.ts installs the wasm overrides itself; the cpu ones are installed here until it does.
  const kernels = registerFastKernels(backend);
  log(`fast kernels on ${backend}: ${kernels.join(', ') || 'none'}`);

  const trainSplit = (await loadDataset({ source: 'embedded', splits: 'train', limit: args.limit })).train!;
  const testSplit = (await loadDataset({ source: 'embedded', splits: 'test' })).test!;
  const options: TrainOptions = { ...TRAIN_DEFAULTS, epochs: args.epochs };

  const stock = args.stock && kernels.length && backend === 'cpu' ? await stockRun(backend, view(trainSplit), log) : null;

  log(`training ${trainSplit.count} samples x ${options.epochs} epochs on ${backend} (batch ${options.batchSize}, MSE, SGD momentum ${options.momentum}, lr ${options.learningRate}) ...`);
  const run = await trainRun(view(trainSplit), view(testSplit), options, log);
  const trainPeakMB = rss.peakMB();
  log(`test accuracy ${(run.metrics.accuracy * 100).toFixed(2)} % (evaluation ${run.evalSeconds.toFixed(2)} s)`);

  const entry: ModelEntry = { model: run.model, meta: { classes: DIGITS, inputShape: [28, 28], normalization: NORMALIZATION } };
  const tensorsBeforePredict = tf.memory().numTensors;
  const predict = await predictTimings(entry, testSplit, log);
  const predictTensorLeak = tf.memory().numTensors - tensorsBeforePredict;
  run.model.dispose();
  const peakRssMB = rss.peakMB();
  rss.stop();

  const reference: Reference | null = args.reference ? await runReference(args, log) : null;

  const sps = run.result.samplesPerSecond;
  const epochSeconds = run.result.history.epochs.map((e) => e.seconds);
  const perEpoch = run.tensorsPerEpoch;
  const out: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGB: round(os.totalmem() / 2 ** 30, 1), node: process.version, tfjs: tf.version.tfjs },
    backend,
    fastKernels: kernels,
    train: {
      samples: run.result.samples,
      epochs: options.epochs,
      batchSize: options.batchSize,
      seconds: round(run.result.seconds),
      samplesPerSecond: round(sps, 1),
      epochSeconds: epochSeconds.map((s) => round(s)),
      secondsPer60kEpoch: round(60000 / sps, 2),
      finalLoss: round(run.result.finalLoss, 5),
      testAccuracy: round(run.metrics.accuracy, 4),
      evaluateSeconds: round(run.evalSeconds),
    },
    tensors: {
      beforeTrain: run.tensorsBefore,
      perEpoch,
      afterTrain: run.tensorsAfter,
      // After epoch 1 (which adds optimizer state) the count must not move.
      growthAcrossEpochs: perEpoch.length > 1 ? perEpoch[perEpoch.length - 1] - perEpoch[0] : 0,
      leakedByTrain: run.tensorsAfter - run.tensorsBefore,
      leakedByPredict: predictTensorLeak,
    },
    trainPeakRssMB: round(trainPeakMB, 1),
    peakRssMB: round(peakRssMB, 1),
    predict,
  };
  const ratios: Record<string, number> = {};
  if (stock) {
    out.stock = { ...stock, seconds: round(stock.seconds), samplesPerSecond: round(stock.samplesPerSecond, 1), secondsPer60kEpoch: round(60000 / stock.samplesPerSecond, 1) };
    ratios.vsStockKernels = round(sps / stock.samplesPerSecond, 2);
  }
  if (reference) {
    out.reference = reference;
    if ('pytorchScript' in reference) {
      ratios.vsPytorchScript = round(sps / reference.pytorchScript.samplesPerSecond, 2);
      ratios.vsPytorchPreloaded = round(sps / reference.pytorchPreloaded.samplesPerSecond, 2);
    }
  }
  out.ratios = ratios;
  out.targets = targets(backend, out, ratios, args);

  if (args.json) {
    console.log(JSON.stringify(out));
  } else {
    console.log(`\n${report(out, ratios, reference, stock)}`);
  }
}

type Target = { name: string; ok: boolean | null; value: string };

function targets(backend: string, out: Record<string, any>, ratios: Record<string, number>, args: Args): Target[] {
  const t: Target[] = [];
  const add = (name: string, ok: boolean | null, value: string) => t.push({ name, ok, value });
  const full = !args.limit;
  if (backend === 'wasm') {
    add('wasm >= 12,000 training samples/s', out.train.samplesPerSecond >= 12000, `${Math.round(out.train.samplesPerSecond)}`);
    add('wasm >= 3x PyTorch DataLoader script', ratios.vsPytorchScript === undefined ? null : ratios.vsPytorchScript >= 3, ratios.vsPytorchScript === undefined ? 'no reference' : `${ratios.vsPytorchScript}x`);
    add('stretch: within 2x of PyTorch preloaded', ratios.vsPytorchPreloaded === undefined ? null : ratios.vsPytorchPreloaded >= 0.5, ratios.vsPytorchPreloaded === undefined ? 'no reference' : `${ratios.vsPytorchPreloaded}x`);
  }
  if (backend === 'cpu') {
    add('cpu >= 3x stock cpu kernels', ratios.vsStockKernels === undefined ? null : ratios.vsStockKernels >= 3, ratios.vsStockKernels === undefined ? 'not measured' : `${ratios.vsStockKernels}x`);
  }
  add('peak RSS of training < 600 MB', full ? out.trainPeakRssMB < 600 : null, `${out.trainPeakRssMB} MB${full ? '' : ' (subset run)'}`);
  add('no tensor growth across epochs', out.tensors.growthAcrossEpochs === 0 && out.tensors.leakedByTrain === 0, `growth ${out.tensors.growthAcrossEpochs}, left after train ${out.tensors.leakedByTrain}`);
  add('single-image predict p50 < 1 ms', out.predict.p50Ms < 1, `${out.predict.p50Ms} ms`);
  add('PNG predict median < 5 ms (280x280 PNG)', out.predict.pngMedianMs < 5, `${out.predict.pngMedianMs} ms (28x28 tile: ${out.predict.png28MedianMs} ms)`);
  return t;
}

function report(out: Record<string, any>, ratios: Record<string, number>, reference: Reference | null, stock: unknown): string {
  const tr = out.train;
  const rows: Array<[string, string]> = [
    ['machine', `${out.machine.cpu}, ${out.machine.cores} cores, Node ${out.machine.node}, tfjs ${out.machine.tfjs}`],
    ['backend', `${out.backend} (fast kernels: ${out.fastKernels.join(', ') || 'none'})`],
    ['train', `${tr.samples} samples (${tr.epochs} epochs) in ${tr.seconds} s = ${Math.round(tr.samplesPerSecond)} samples/s`],
    ['  per epoch', `${tr.epochSeconds.join(' / ')} s (60k-sample epoch: ${tr.secondsPer60kEpoch} s)`],
    ['  test accuracy', `${(tr.testAccuracy * 100).toFixed(2)} % (10k test set; evaluate ${tr.evaluateSeconds} s)`],
    ['  tensors per epoch', `${out.tensors.perEpoch.join(', ')} (before ${out.tensors.beforeTrain}, after ${out.tensors.afterTrain})`],
    ['peak RSS', `${out.trainPeakRssMB} MB after training, ${out.peakRssMB} MB overall`],
    ['predict 1 image', `p50 ${out.predict.p50Ms} ms, p99 ${out.predict.p99Ms} ms (${out.predict.singleCalls} calls)`],
    ['predict 10k batch', `${out.predict.batch10kSeconds} s (accuracy ${(out.predict.batch10kAccuracy * 100).toFixed(2)} %)`],
    ['predict PNG', `median ${out.predict.pngMedianMs} ms, p99 ${out.predict.pngP99Ms} ms (280x280 PNG: decode + preprocess + infer)`],
    ['predict PNG 28x28', `median ${out.predict.png28MedianMs} ms (MNIST-sized tile)`],
  ];
  if (stock) {
    const s = out.stock;
    rows.push(['stock kernels', `${Math.round(s.samplesPerSecond)} samples/s on ${s.samples} samples (60k-sample epoch: ${s.secondsPer60kEpoch} s, extrapolated)`]);
  }
  if (reference && 'skipped' in reference) rows.push(['PyTorch reference', `skipped: ${reference.skipped}`]);
  if (reference && 'pytorchScript' in reference) {
    for (const [label, r] of [['PyTorch DataLoader', reference.pytorchScript], ['PyTorch preloaded', reference.pytorchPreloaded]] as const) {
      rows.push([label, `${r.seconds} s = ${Math.round(r.samplesPerSecond)} samples/s, test accuracy ${(r.testAccuracy * 100).toFixed(2)} % (torch ${reference.torch}, ${reference.threads} thread)`]);
    }
  }
  for (const [k, v] of Object.entries(ratios)) rows.push([`ratio ${k}`, `${v}x (samples/s, this run)`]);
  const marks = (out.targets as Target[]).map((t) => `  [${t.ok === null ? ' -- ' : t.ok ? ' ok ' : 'MISS'}] ${t.name}: ${t.value}`);
  return `${table(rows)}\n\ntargets\n${marks.join('\n')}`;
}

main().then(() => process.exit(0), (e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
