#!/usr/bin/env node
// Times one training step of the tutorial MLP on wasm, with and without the
// fast kernels, and prints a per-kernel breakdown of one profiled step.
//   node scripts/profile-step.js [--stock] [--steps N]
require('ts-node/register/transpile-only');
const tf = require('@tensorflow/tfjs');
require('@tensorflow/tfjs-backend-wasm');
const { registerFastKernels } = require('../src/lib/kernels.ts');

const argv = process.argv.slice(2);
const stock = argv.includes('--stock');
const steps = Number(argv[argv.indexOf('--steps') + 1]) || 30;
const BATCH = 512;

async function main() {
  await tf.setBackend('wasm');
  await tf.ready();
  const overridden = stock ? [] : registerFastKernels('wasm');
  const model = tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu' }),
    tf.layers.dense({ units: 64, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });
  const optimizer = tf.train.momentum(0.005, 0.9);
  const x = tf.randomUniform([BATCH, 784]);
  const y = tf.oneHot(tf.randomUniform([BATCH], 0, 10, 'int32'), 10).toFloat();
  const step = () => tf.dispose(optimizer.minimize(
      () => tf.losses.meanSquaredError(y, model.apply(x, { training: true })), true));

  for (let i = 0; i < 3; i++) step(); // warm-up: optimizer state, xnn setup
  const times = [];
  for (let i = 0; i < steps; i++) {
    const t0 = process.hrtime.bigint();
    step();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const med = times[times.length >> 1];
  console.log(`${stock ? 'stock' : 'fast [' + overridden.join(', ') + ']'}: ` +
      `ms/step min ${times[0].toFixed(1)} median ${med.toFixed(1)} max ${times[times.length - 1].toFixed(1)}; ` +
      `${Math.round(BATCH / med * 1000)} samples/s`);

  // Per-kernel breakdown, summed over 5 profiled steps then averaged.
  const byKernel = new Map();
  const N = 5;
  for (let i = 0; i < N; i++) {
    const info = await tf.profile(step);
    for (const k of info.kernels) {
      const ms = await k.kernelTimeMs;
      const key = k.name === 'BatchMatMul' || k.name === '_FusedMatMul' || k.name === 'Sum' ||
          k.name === 'Transpose' ? `${k.name} ${k.inputShapes.map(s => `[${s}]`).join('x')}` : k.name;
      const e = byKernel.get(key) || { ms: 0, n: 0 };
      e.ms += ms; e.n++;
      byKernel.set(key, e);
    }
  }
  const rows = [...byKernel].map(([k, e]) => [k, e.ms / N, e.n / N]).sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((s, r) => s + r[1], 0);
  console.log(`kernel time per step ${total.toFixed(1)} ms (rest is JS/engine overhead)`);
  for (const [k, ms, n] of rows.slice(0, 25)) {
    console.log(`  ${ms.toFixed(2).padStart(7)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%  x${n}  ${k}`);
  }
  console.log('memory', JSON.stringify(tf.memory()));
}
main();
