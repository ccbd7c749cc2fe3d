#!/usr/bin/env node
// The tutorial run on the native engine (onnxruntime-node) on 1 and 2 threads, side by side with
// the PyTorch + OpenBLAS reference (scripts/reference_pytorch.py, preloaded mode) in the same run,
// then Adam + cross-entropy. Test accuracy comes from the exported inference ONNX model of the
// trained weights (test/native.spec.ts checks that export against tfjs).
//
//   node scripts/native-bench.js [--repeat 1] [--no-torch] [--no-adam] [--epochs 3] [--cnn 1]
//
// --cnn N adds the small CNN (conv 32 3x3 relu, max-pool 2, conv 64 3x3 relu, max-pool 2, flatten,
// dense 128 relu, dense 10; Adam 1e-3, cross-entropy, batch 128) for N epochs on 1 and 2 threads.
//
// The PyTorch reference runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in its own
// environment only (this machine's values pin OpenBLAS to AVX2 kernels; see NATIVE-FACTS.md), with
// OPENBLAS_NUM_THREADS = threads and torch's own pool at 1 thread. Each run reports wall and CPU
// seconds of the training loop: on a shared machine, 1-thread CPU seconds are the steadier figure.
'use strict';
require('ts-node').register({ transpileOnly: true, compilerOptions: { module: 'commonjs' } });
const path = require('path');
const { spawnSync } = require('child_process');
const tf = require('@tensorflow/tfjs');
const { loadDataset, pixelStats } = require('../src/lib/dataset');
const { createMlp } = require('../src/lib/model');
const { permutation, rng } = require('../src/lib/random');
const { TRAIN_DEFAULTS } = require('../src/lib/train');
const { nativeEngine, loadOrt } = require('../src/lib/engine/native');
const { exportOnnx } = require('../src/lib/engine/onnx-export');

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const value = (name, dflt) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const EPOCHS = value('epochs', 3);
const REPEAT = value('repeat', 1);

async function trainNative({ train, normalization, spec, weights, options, threads }) {
  const data = { ...train, normalization, classes: 10 };
  const t0 = performance.now();
  const session = await nativeEngine(threads).open(spec, weights, data, options);
  const openSeconds = (performance.now() - t0) / 1000;
  const n = train.count;
  const started = performance.now();
  const cpu = process.cpuUsage();
  let lastLoss = NaN;
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const order = permutation(n, rng(options.seed * 7919 + epoch));
    const batches = [];
    for (let lo = 0; lo < n; lo += options.batchSize) batches.push(order.subarray(lo, Math.min(lo + options.batchSize, n)));
    const losses = await session.run(batches);
    lastLoss = losses[losses.length - 1];
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const trained = await session.getWeights();
  session.dispose();
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, samplesPerSecond: (n * options.epochs) / seconds, openSeconds, lastLoss, trained };
}

function accuracyCnn(spec, weights, normalization, test) {
  return accuracy(spec, weights, normalization, test, [test.count, 1, test.rows, test.cols]);
}

async function accuracy(spec, weights, normalization, test, dims = [test.count, test.rows * test.cols]) {
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(exportOnnx(spec, weights, normalization), { intraOpNumThreads: 2 });
  const pixels = Float32Array.from(test.images, (b) => b / 255);
  const out = await session.run({ pixels: new ort.Tensor('float32', pixels, dims) });
  await session.release();
  const p = out.probabilities.data;
  const classes = p.length / test.count;
  let right = 0;
  for (let i = 0; i < test.count; i++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (p[i * classes + k] > p[i * classes + best]) best = k;
    if (best === test.labels[i]) right++;
  }
  return right / test.count;
}

// Runs a reference script's main() with its training loop's CPU time added as cpuSeconds: the
// first perf_counter() call is the loop's start, result() is called at its end. On a machine shared
// with other work, CPU seconds of a 1-thread run stay close to its uncontended wall time.
const WITH_CPU_TIME = `
import sys, time
sys.path.insert(0, sys.argv[1])
import importlib
ref = importlib.import_module(sys.argv[2])
marks, real = [], time.perf_counter
def counter():
    marks.append(time.process_time())
    return real()
time.perf_counter = counter
original = ref.result if hasattr(ref, 'result') else None
if original:
    def result(*a):
        out = original(*a)
        out['cpuSeconds'] = round(time.process_time() - marks[0], 3)
        return out
    ref.result = result
sys.argv = [sys.argv[2] + '.py'] + sys.argv[3:]
ref.main()
`;

function pytorch(threads, script = 'reference_pytorch.py', extra = ['--mode', 'preloaded', '--epochs', String(EPOCHS)], pick = (out) => out.pytorchPreloaded) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync('/usr/bin/python3', ['-c', WITH_CPU_TIME, __dirname, script.replace(/\.py$/, ''), '--threads', '1', ...extra], { env, encoding: 'utf8' });
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return pick(JSON.parse(r.stdout.trim().split('\n').pop()));
}

/** tfjs's default initialisation of a spec's layers (glorot-uniform kernels, zero biases). */
function tfjsWeights(spec) {
  const model = tf.sequential();
  spec.layers.forEach((l, i) => {
    const inputShape = i === 0 ? spec.inputShape : undefined;
    if (l.kind === 'conv2d') model.add(tf.layers.conv2d({ filters: l.filters, kernelSize: l.kernelSize, activation: l.activation, inputShape }));
    else if (l.kind === 'maxpool2d') model.add(tf.layers.maxPooling2d({ poolSize: l.poolSize }));
    else if (l.kind === 'flatten') model.add(tf.layers.flatten());
    else model.add(tf.layers.dense({ units: l.units, activation: l.activation }));
  });
  const weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
  model.dispose();
  return weights;
}

function mlpWeights(seed) {
  const model = createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed });
  const weights = model.getWeights().map((w) => Float32Array.from(w.dataSync()));
  model.dispose();
  return weights;
}

const fmt = (r) => (r.error ? `error: ${r.error}` : `${r.seconds.toFixed(3)} s (cpu ${r.cpuSeconds?.toFixed(3) ?? '?'} s)  ${Math.round(r.samplesPerSecond).toLocaleString('en')} samples/s  test accuracy ${r.testAccuracy.toFixed(4)}`);

async function main() {
  await tf.setBackend('cpu');
  const ort = await loadOrt();
  const ds = await loadDataset({ source: 'embedded' });
  const normalization = pixelStats(ds.train);
  const spec = { inputShape: [28, 28, 1], layers: [
    { kind: 'dense', units: 256, activation: 'relu' }, { kind: 'dense', units: 64, activation: 'relu' }, { kind: 'dense', units: 10, activation: 'linear' }] };
  const tutorial = { ...TRAIN_DEFAULTS, epochs: EPOCHS };
  const results = { onnxruntime: ort.env.versions.node, epochs: EPOCHS, tutorial: [], adam: null };
  console.log(`onnxruntime-node ${ort.env.versions.node}; tutorial MLP 784-256-64-10 relu, SGD lr 0.005 momentum 0.9, MSE, batch 512, ${EPOCHS} epochs of 60k, shuffled`);
  for (let rep = 0; rep < REPEAT; rep++) {
    for (const threads of [1, 2]) {
      const r = await trainNative({ train: ds.train, normalization, spec, weights: mlpWeights(rep), options: tutorial, threads });
      const native = { threads, seconds: r.seconds, cpuSeconds: r.cpuSeconds, samplesPerSecond: r.samplesPerSecond, openSeconds: r.openSeconds, testAccuracy: await accuracy(spec, r.trained, normalization, ds.test) };
      console.log(`  native  ${threads} thread${threads > 1 ? 's' : ' '}: ${fmt(native)}  (open ${r.openSeconds.toFixed(3)} s)`);
      const torch = flag('no-torch') ? null : pytorch(threads);
      if (torch) console.log(`  pytorch ${threads} thread${threads > 1 ? 's' : ' '}: ${fmt(torch)}${torch.error ? '' : `  -> native/pytorch time ${(native.seconds / torch.seconds).toFixed(2)}x`}`);
      results.tutorial.push({ native, pytorch: torch });
    }
  }
  if (REPEAT > 1) {
    const stat = (xs) => { const v = xs.filter((x) => x !== undefined).sort((a, b) => a - b); return v.length ? `min ${v[0].toFixed(3)} s, median ${v[Math.floor(v.length / 2)].toFixed(3)} s` : 'n/a'; };
    for (const threads of [1, 2]) {
      const rows = results.tutorial.filter((r) => r.native.threads === threads);
      console.log(`  ${threads} thread${threads > 1 ? 's' : ' '} over ${REPEAT} runs, wall: native ${stat(rows.map((r) => r.native.seconds))}; pytorch ${stat(rows.map((r) => r.pytorch?.seconds))}`);
      console.log(`  ${threads} thread${threads > 1 ? 's' : ' '} over ${REPEAT} runs, cpu:  native ${stat(rows.map((r) => r.native.cpuSeconds))}; pytorch ${stat(rows.map((r) => r.pytorch?.cpuSeconds))}`);
    }
  }
  if (!flag('no-adam')) {
    const adam = { ...TRAIN_DEFAULTS, epochs: EPOCHS, optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001, batchSize: 128 };
    const r = await trainNative({ train: ds.train, normalization, spec, weights: mlpWeights(0), options: adam, threads: 2 });
    results.adam = { threads: 2, seconds: r.seconds, cpuSeconds: r.cpuSeconds, samplesPerSecond: r.samplesPerSecond, testAccuracy: await accuracy(spec, r.trained, normalization, ds.test) };
    console.log(`Adam lr 0.001 + cross-entropy, batch 128, ${EPOCHS} epochs, native 2 threads: ${fmt(results.adam)}`);
  }
  const cnnEpochs = value('cnn', 0);
  if (cnnEpochs > 0) {
    const cnn = { inputShape: [28, 28, 1], layers: [
      { kind: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' }, { kind: 'maxpool2d', poolSize: 2 },
      { kind: 'conv2d', filters: 64, kernelSize: 3, activation: 'relu' }, { kind: 'maxpool2d', poolSize: 2 },
      { kind: 'flatten' }, { kind: 'dense', units: 128, activation: 'relu' }, { kind: 'dense', units: 10, activation: 'linear' }] };
    const options = { ...TRAIN_DEFAULTS, epochs: cnnEpochs, optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001, batchSize: 128 };
    results.cnn = [];
    for (const threads of [1, 2]) {
      const r = await trainNative({ train: ds.train, normalization, spec: cnn, weights: tfjsWeights(cnn), options, threads });
      const row = { threads, epochs: cnnEpochs, seconds: r.seconds, cpuSeconds: r.cpuSeconds, samplesPerSecond: r.samplesPerSecond, testAccuracy: await accuracyCnn(cnn, r.trained, normalization, ds.test) };
      console.log(`CNN, Adam + cross-entropy, batch 128, ${cnnEpochs} epoch(s), native  ${threads} thread${threads > 1 ? 's' : ' '}: ${fmt(row)}`);
      const torch = flag('no-torch') ? null : pytorch(threads, 'reference_pytorch_cnn.py', ['--epochs', String(cnnEpochs)], (out) => out);
      if (torch) console.log(`CNN, Adam + cross-entropy, batch 128, ${cnnEpochs} epoch(s), pytorch ${threads} thread${threads > 1 ? 's' : ' '}: ${fmt(torch)}${torch.error ? '' : `  -> native/pytorch time ${(row.seconds / torch.seconds).toFixed(2)}x`}`);
      results.cnn.push({ native: row, pytorch: torch });
    }
  }
  console.log(JSON.stringify(results));
}

main().catch((e) => { console.error(e); process.exit(1); });
