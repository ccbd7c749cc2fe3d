#!/usr/bin/env node
// Trains the default CNN (conv 32 3x3 relu, maxpool 2, conv 64 3x3 relu, maxpool 2, dense 128
// relu, dense 10; Adam 1e-3, softmax cross-entropy, batch 128) on the embedded 60k MNIST with the
// project's own training loop, and prints seconds per epoch and test accuracy for each kernel set.
//
//   node scripts/cnn-bench.js [--sets fast,base] [--epochs 1] [--limit N] [--backend wasm|cpu]
//   node scripts/cnn-bench.js --profile [--sets fast,base] [--steps 10] [--batch 128] [--backend wasm|cpu]
//
// Kernel sets: "fast" = every override (kernels.ts + kernels-conv.ts); "base" = kernels.ts plus
// only our Conv2DBackpropFilter (without it wasm cannot train a CNN at all); "stock" = the stock
// kernels (on wasm this shows the error: it lacks Conv2DBackpropFilter).
require('ts-node/register/transpile-only');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const { registerFastKernels, unregisterFastKernels } = require('../src/lib/kernels.ts');
const { registerConvKernels, unregisterConvKernels } = require('../src/lib/kernels-conv.ts');
const { loadDataset, pixelStats } = require('../src/lib/dataset.ts');
const { train, trainOptions } = require('../src/lib/train.ts');
const { evaluate } = require('../src/lib/metrics.ts');

const argv = process.argv.slice(2);
const arg = (name, def) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : def);
const backend = arg('--backend', 'wasm');
const sets = arg('--sets', 'fast,base').split(',');
const epochs = Number(arg('--epochs', 1));
const limit = Number(arg('--limit', 0));
const steps = Number(arg('--steps', 10));
const BATCH = Number(arg('--batch', 128));

// This process's CPU time: on a shared machine wall time also counts the waits for a core.
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const loadavg = () => require('os').loadavg()[0].toFixed(1);

/** Layers' fan-in-bounded uniform init (PyTorch's nn.Conv2d / nn.Linear default), seeded. */
function init(fanIn, seed) {
  const bound = 1 / Math.sqrt(fanIn);
  return tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed });
}

/** Takes flat [N, 784] rows, like the MLP, so the project's data path and train() serve it. */
function createCnn(seed = 0) {
  const conv = (filters, inChannels, i) => tf.layers.conv2d({
    filters, kernelSize: 3, activation: 'relu',
    kernelInitializer: init(9 * inChannels, seed * 100 + 2 * i), biasInitializer: init(9 * inChannels, seed * 100 + 2 * i + 1),
  });
  const dense = (units, fanIn, i, activation) => tf.layers.dense({
    units, activation, kernelInitializer: init(fanIn, seed * 100 + 2 * i), biasInitializer: init(fanIn, seed * 100 + 2 * i + 1),
  });
  return tf.sequential({ layers: [
    tf.layers.reshape({ targetShape: [28, 28, 1], inputShape: [784] }),
    conv(32, 1, 0),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    conv(64, 32, 1),
    tf.layers.maxPooling2d({ poolSize: 2 }),
    tf.layers.flatten(),
    dense(128, 1600, 2, 'relu'),
    dense(10, 128, 3, 'linear'),
  ] });
}

function useKernels(set) {
  unregisterFastKernels(backend);
  unregisterConvKernels(backend);
  if (set === 'fast') registerFastKernels(backend);
  if (set === 'base') {
    registerFastKernels(backend);
    unregisterConvKernels(backend);
    registerConvKernels(backend, ['Conv2DBackpropFilter']);
  }
}

/**
 * Times training steps and profiles kernels of each set, the sets taking turns step by step so
 * that all of them meet the same load on a shared machine.
 */
async function profile() {
  const x = tf.randomUniform([BATCH, 784]);
  const y = tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32'), 10).toFloat();
  const runs = sets.map((set) => {
    const model = createCnn();
    const optimizer = tf.train.adam(1e-3);
    const step = () => tf.dispose(optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true })), true));
    return { set, model, optimizer, step, times: [], cpu: [], kernels: new Map() };
  });
  for (const r of runs) {
    useKernels(r.set);
    for (let i = 0; i < 2; i++) r.step(); // optimizer state, xnn operators
  }
  for (let i = 0; i < steps; i++) {
    for (const r of runs) {
      useKernels(r.set);
      const t0 = process.hrtime.bigint(), c0 = cpuMs();
      r.step();
      r.times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      r.cpu.push(cpuMs() - c0);
    }
  }
  // Per kernel, the least time over N profiled steps: a kernel's time is its own work plus
  // whatever waits for a core it happened to meet.
  const N = Math.max(3, Math.min(5, steps));
  for (let i = 0; i < N; i++) {
    for (const r of runs) {
      useKernels(r.set);
      const seen = new Map();
      for (const k of (await tf.profile(r.step)).kernels) {
        const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join('x')}`;
        const e = seen.get(key) || { ms: 0, n: 0 };
        e.ms += await k.kernelTimeMs;
        e.n++;
        seen.set(key, e);
      }
      for (const [key, e] of seen) {
        const best = r.kernels.get(key);
        if (!best || e.ms < best.ms) r.kernels.set(key, e);
      }
    }
  }
  const med = (a) => [...a].sort((p, q) => p - q)[a.length >> 1];
  for (const r of runs) {
    console.log(`${backend} ${r.set}: ms/step median ${med(r.times).toFixed(1)} (min ${Math.min(...r.times).toFixed(1)}), ` +
        `cpu ms/step median ${med(r.cpu).toFixed(1)}; ${Math.round(BATCH / med(r.times) * 1000)} samples/s; load ${loadavg()}`);
    const rows = [...r.kernels].map(([k, e]) => [k, e.ms, e.n]).sort((a, b) => b[1] - a[1]);
    const total = rows.reduce((s, row) => s + row[1], 0);
    console.log(`  kernel time per step, least of ${N}: ${total.toFixed(1)} ms`);
    for (const [k, ms, n] of rows.slice(0, 22)) {
      console.log(`  ${ms.toFixed(2).padStart(8)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  x${n}  ${k}`);
    }
    r.optimizer.dispose();
    r.model.dispose();
  }
  tf.dispose([x, y]);
}

async function bench() {
  const data = await loadDataset({ source: 'embedded', limit });
  const normalization = pixelStats(data.train);
  const trainView = { ...data.train, normalization };
  const testView = { ...data.test, normalization };
  const options = trainOptions({ epochs, batchSize: BATCH, learningRate: 1e-3, optimizer: 'adam', loss: 'crossentropy', seed: 0 });
  for (const set of sets) {
    useKernels(set);
    const tensorsBefore = tf.memory().numTensors;
    const model = createCnn();
    const c0 = cpuMs();
    let result;
    try {
      result = await train(model, trainView, 10, options);
    } catch (e) {
      model.dispose();
      console.log(`${backend} ${set}: cannot train: ${e.message}`);
      continue;
    }
    const cpuSeconds = (cpuMs() - c0) / 1000;
    const metrics = await evaluate(model, testView, 10, 'crossentropy');
    model.dispose();
    const perEpoch = result.history.epochs.map((e) => e.seconds.toFixed(1)).join(', ');
    console.log(`${backend} ${set}: ${trainView.count} samples x ${epochs} epoch(s); seconds per epoch ${perEpoch} ` +
        `(cpu ${(cpuSeconds / epochs).toFixed(1)} s per epoch); ${Math.round(result.samplesPerSecond)} samples/s; ` +
        `test accuracy ${(100 * metrics.accuracy).toFixed(2)} % (loss ${metrics.loss.toFixed(4)}); load ${loadavg()}; ` +
        `tensors left ${tf.memory().numTensors - tensorsBefore}`);
  }
}

(async () => {
  await tf.setBackend(backend);
  await tf.ready();
  await (argv.includes('--profile') ? profile() : bench());
})().catch((e) => { console.error(e); process.exit(1); });
