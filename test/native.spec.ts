// The native engine (ONNX Runtime) against tfjs on the cpu backend: the same model, weights,
// batches, optimizer and loss must give the same losses and weights, step by step.
import * as assert from 'assert';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';
import { lossFn, tfjsEngine } from '../src/lib/engine/tfjs';
import { TRAIN_DEFAULTS, TrainOptions } from '../src/lib/engine/types';
import { loadOrt, nativeAvailable, nativeEngine, STEPS_PER_RUN } from '../src/lib/engine/native';
import { exportOnnx } from '../src/lib/engine/onnx-export';
import type { LayerSpec, ModelSpec, TrainData, Weights } from '../src/lib/engine/types';
import { rng } from '../src/lib/random';

const TOLERANCE = 1e-4;

function randomData(count: number, rows: number, cols: number, classes: number, seed: number, normalization: TrainData['normalization']): TrainData {
  const r = rng(seed);
  return {
    images: Uint8Array.from({ length: count * rows * cols }, () => Math.floor(r() * 256)),
    labels: Uint8Array.from({ length: count }, () => Math.floor(r() * classes)),
    count, rows, cols, normalization, classes,
  };
}

/** Models with convolutions take [rows, cols, channels] images; others take them flat. */
const isSpatial = (spec: ModelSpec) => spec.layers.some((l) => l.kind === 'conv2d' || l.kind === 'maxpool2d');

/** A tfjs model of a spec (dense, conv2d, maxpool2d, flatten, dropout), like the model nodes build. */
function tfjsModel(spec: ModelSpec): tf.Sequential {
  const model = tf.sequential();
  const [rows, cols, channels] = spec.inputShape;
  const spatial = isSpatial(spec);
  spec.layers.forEach((l, i) => {
    const inputShape = i === 0 ? (spatial ? [rows, cols, channels] : [rows * cols * channels]) : undefined;
    switch (l.kind) {
      case 'dense': model.add(tf.layers.dense({ units: l.units, activation: l.activation, inputShape })); break;
      case 'conv2d': model.add(tf.layers.conv2d({ filters: l.filters, kernelSize: l.kernelSize, activation: l.activation, inputShape })); break;
      case 'maxpool2d': model.add(tf.layers.maxPooling2d({ poolSize: l.poolSize, inputShape })); break;
      case 'flatten': model.add(tf.layers.flatten({ inputShape })); break;
      case 'dropout': model.add(tf.layers.dropout({ rate: l.rate, inputShape })); break;
    }
  });
  return model;
}

function randomWeights(spec: ModelSpec, seed: number): Weights {
  const r = rng(seed);
  const model = tfjsModel(spec);
  const weights = model.getWeights().map((w) => Float32Array.from({ length: w.size }, () => (r() * 2 - 1) * 0.6));
  model.dispose();
  return weights;
}

function makeOptimizer(o: TrainOptions): tf.Optimizer {
  if (o.optimizer === 'adam') return tf.train.adam(o.learningRate);
  return o.momentum > 0 ? tf.train.momentum(o.learningRate, o.momentum) : tf.train.sgd(o.learningRate);
}

/** The batch's pixels as tfjs training sees them (dataset.ts toFloats), shaped for the model. */
function batchTensors(spec: ModelSpec, data: TrainData, batch: Int32Array): [tf.Tensor, tf.Tensor] {
  const size = data.rows * data.cols;
  const mean = data.normalization?.mean ?? 0;
  const std = data.normalization?.std ?? 1;
  const x = new Float32Array(batch.length * size);
  batch.forEach((s, i) => { for (let j = 0; j < size; j++) x[i * size + j] = data.images[s * size + j] * (1 / (255 * std)) - mean / std; });
  const shape = isSpatial(spec) ? [batch.length, ...spec.inputShape] : [batch.length, size];
  const labels = tf.tensor1d(Array.from(batch, (s) => data.labels[s]), 'int32');
  const y = tf.oneHot(labels, data.classes).toFloat();
  labels.dispose();
  return [tf.tensor(x, shape), y];
}

/** tfjs's losses per batch and its weights after each checkpoint (a number of batches done). */
function tfjsTrain(spec: ModelSpec, weights: Weights, data: TrainData, o: TrainOptions, batches: Int32Array[], checkpoints: number[]) {
  const model = tfjsModel(spec);
  const optimizer = makeOptimizer(o);
  const losses: number[] = [];
  const snapshots: Weights[] = [];
  try {
    const init = model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape));
    model.setWeights(init);
    tf.dispose(init);
    batches.forEach((b, i) => {
      losses.push(tf.tidy(() => {
        const [x, y] = batchTensors(spec, data, b);
        const l = optimizer.minimize(() => lossFn(o.loss, y, model.apply(x, { training: true }) as tf.Tensor), true) as tf.Scalar;
        return l.dataSync()[0];
      }));
      if (checkpoints.includes(i + 1)) snapshots.push(model.getWeights().map((w) => Float32Array.from(w.dataSync())));
    });
  } finally {
    optimizer.dispose();
    for (const v of Object.values(optimizer)) if (v instanceof tf.Tensor && !v.isDisposed) v.dispose();
    model.dispose();
  }
  return { losses, snapshots };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= TOLERANCE * Math.abs(expected[i]) + 1e-6)) assert.fail(`${what}[${i}]: native ${actual[i]} vs tfjs ${expected[i]} (difference ${d})`);
  }
}

function batchesOf(count: number, size: number, seed: number, n: number): Int32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, (_x, i) => Int32Array.from({ length: i === n - 1 ? size - 2 : size }, () => Math.floor(r() * count)));
}

const dense = (units: number, activation: LayerSpec extends infer L ? L extends { kind: 'dense'; activation: infer A } ? A : never : never): LayerSpec => ({ kind: 'dense', units, activation });

describe('native engine (onnxruntime-node) equals tfjs', function () {
  let backend: string;
  const spec = (activation: Parameters<typeof dense>[1]): ModelSpec => ({ inputShape: [1, 7, 1], layers: [dense(5, activation), dense(3, activation), dense(4, 'linear')] });

  before(async function () {
    if (!(await nativeAvailable())) {
      console.log('      onnxruntime-node is not installed or does not load here: native engine specs skipped');
      this.skip();
    }
    backend = tf.getBackend();
    await tf.setBackend('cpu');
  });
  after(async () => { if (backend) await tf.setBackend(backend); });

  const cases: Array<[string, Partial<TrainOptions>, Parameters<typeof dense>[1]]> = [
    ['sgd + momentum, mse', { optimizer: 'sgd', momentum: 0.9, learningRate: 0.1, loss: 'mse' }, 'relu'],
    ['sgd + momentum, crossentropy', { optimizer: 'sgd', momentum: 0.9, learningRate: 0.1, loss: 'crossentropy' }, 'relu'],
    ['plain sgd, mse', { optimizer: 'sgd', momentum: 0, learningRate: 0.2, loss: 'mse' }, 'relu'],
    ['plain sgd, crossentropy', { optimizer: 'sgd', momentum: 0, learningRate: 0.2, loss: 'crossentropy' }, 'relu'],
    ['adam, mse', { optimizer: 'adam', learningRate: 0.01, loss: 'mse' }, 'relu'],
    ['adam, crossentropy', { optimizer: 'adam', learningRate: 0.01, loss: 'crossentropy' }, 'relu'],
    ['tanh, sgd + momentum, crossentropy', { optimizer: 'sgd', momentum: 0.5, learningRate: 0.1, loss: 'crossentropy' }, 'tanh'],
    ['sigmoid, adam, mse', { optimizer: 'adam', learningRate: 0.02, loss: 'mse' }, 'sigmoid'],
    ['elu, adam, crossentropy', { optimizer: 'adam', learningRate: 0.01, loss: 'crossentropy' }, 'elu'],
    ['selu, sgd, crossentropy', { optimizer: 'sgd', momentum: 0, learningRate: 0.1, loss: 'crossentropy' }, 'selu'],
    ['linear hidden layers, adam, mse', { optimizer: 'adam', learningRate: 0.01, loss: 'mse' }, 'linear'],
  ];

  cases.forEach(([name, opts, activation], n) => {
    it(`${name}: loss and weights after 1 and 3 steps (batch 6, then a partial batch of 4)`, async () => {
      const o = { ...TRAIN_DEFAULTS, ...opts };
      const s = spec(activation);
      const data = randomData(20, 1, 7, 4, 100 + n, n % 2 ? { mean: 0.45, std: 0.29 } : null);
      const weights = randomWeights(s, 200 + n);
      const batches = batchesOf(data.count, 6, 300 + n, 3);
      const before = tf.memory().numTensors;
      const ref = tfjsTrain(s, weights, data, o, batches, [1, 3]);
      assert.strictEqual(tf.memory().numTensors, before, 'the tfjs reference leaked tensors');

      const session = await nativeEngine(1).open(s, weights, data, o);
      try {
        const first = await session.run(batches.slice(0, 1));
        assertClose(first, ref.losses.slice(0, 1), 'loss of step 1');
        (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[0][i], `weight ${i} after 1 step`));
        const rest = await session.run(batches.slice(1));
        assertClose(rest, ref.losses.slice(1), 'losses of steps 2-3');
        (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[1][i], `weight ${i} after 3 steps`));
      } finally {
        session.dispose();
      }
    });
  });

  for (const optimizer of ['sgd', 'adam'] as const) {
    it(`${optimizer}: ${STEPS_PER_RUN} chained steps in one run, then single steps, equal tfjs batch by batch`, async () => {
      const o = { ...TRAIN_DEFAULTS, optimizer, learningRate: optimizer === 'adam' ? 0.01 : 0.05, loss: 'crossentropy' as const };
      const s = spec('relu');
      const data = randomData(50, 1, 7, 4, 7, { mean: 0.5, std: 0.3 });
      const weights = randomWeights(s, 8);
      const batches = batchesOf(data.count, 6, 9, STEPS_PER_RUN + 3);
      const ref = tfjsTrain(s, weights, data, o, batches, [batches.length]);
      const session = await nativeEngine(2).open(s, weights, data, o);
      try {
        assertClose(await session.run(batches), ref.losses, 'losses');
        (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[0][i], `weight ${i} at the end`));
      } finally {
        session.dispose();
      }
    });
  }

  for (const optimizer of ['sgd', 'adam'] as const) {
    it(`${optimizer}: a learning rate changed between steps (lrDecay) gives tfjs's steps, optimizer state kept`, async () => {
      const o = { ...TRAIN_DEFAULTS, optimizer, momentum: 0.9, learningRate: optimizer === 'adam' ? 0.01 : 0.05, loss: 'crossentropy' as const };
      const s = spec('relu');
      const data = randomData(40, 1, 7, 4, 11, { mean: 0.5, std: 0.3 });
      const weights = randomWeights(s, 12);
      const batches = batchesOf(data.count, 6, 13, 4);
      const [native, reference] = [await nativeEngine(1).open(s, weights, data, o), await tfjsEngine.open(s, weights, data, o)];
      try {
        for (const session of [native, reference]) {
          await session.run(batches.slice(0, 2));
          await session.setLearningRate(o.learningRate * 0.3);
        }
        assertClose(await native.run(batches.slice(2)), await reference.run(batches.slice(2)), 'losses after the change');
        const expected = await reference.getWeights();
        (await native.getWeights()).forEach((w, i) => assertClose(w, expected[i], `weight ${i} after the change`));
      } finally {
        native.dispose();
        reference.dispose();
      }
    });
  }

  it('setImages (an augmented copy) replaces the pixels the next steps read, as on tfjs', async () => {
    const o = { ...TRAIN_DEFAULTS, optimizer: 'adam' as const, learningRate: 0.01, loss: 'crossentropy' as const };
    const s = spec('relu');
    const data = randomData(30, 1, 7, 4, 21, { mean: 0.5, std: 0.3 });
    const other = randomData(30, 1, 7, 4, 22, null).images;
    const weights = randomWeights(s, 23);
    const batches = batchesOf(data.count, 6, 24, 3);
    const [native, reference, unchanged] = [await nativeEngine(1).open(s, weights, data, o), await tfjsEngine.open(s, weights, data, o), await nativeEngine(1).open(s, weights, data, o)];
    try {
      await native.setImages(other);
      await reference.setImages(other);
      const losses = await native.run(batches);
      assertClose(losses, await reference.run(batches), 'losses on the new pixels');
      assert.notDeepEqual(Array.from(losses), Array.from(await unchanged.run(batches)), 'the new pixels were read');
    } finally {
      native.dispose();
      reference.dispose();
      unchanged.dispose();
    }
  });

  it('setWeights replaces the weights the next step starts from', async () => {
    const o = { ...TRAIN_DEFAULTS, optimizer: 'sgd' as const, momentum: 0, learningRate: 0.1 };
    const s = spec('relu');
    const data = randomData(12, 1, 7, 4, 1, null);
    const [w1, w2] = [randomWeights(s, 1), randomWeights(s, 2)];
    const batch = batchesOf(12, 6, 3, 1);
    const ref = tfjsTrain(s, w2, data, o, batch, [1]);
    const session = await nativeEngine(1).open(s, w1, data, o);
    try {
      await session.run(batch);
      await session.setWeights(w2);
      (await session.getWeights()).forEach((w, i) => assert.deepStrictEqual(w, w2[i]));
      assertClose(await session.run(batch), ref.losses, 'loss');
      (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[0][i], `weight ${i}`));
    } finally {
      session.dispose();
    }
  });

  it('refuses what it cannot train with a coded error, so the caller can fall back to tfjs', async () => {
    const data = randomData(4, 1, 7, 4, 1, null);
    const o = { ...TRAIN_DEFAULTS };
    const bad: ModelSpec[] = [
      { inputShape: [1, 7, 1], layers: [dense(5, 'relu'), dense(4, 'relu')] },
      { inputShape: [1, 7, 1], layers: [dense(5, 'relu'), { kind: 'conv2d', filters: 2, kernelSize: 3, activation: 'relu' }, dense(4, 'linear')] },
      { inputShape: [1, 7, 1], layers: [{ kind: 'dense', units: 4, activation: 'softmax' as never }] },
    ];
    for (const s of bad) {
      await assert.rejects(nativeEngine(1).open(s, randomWeights({ inputShape: [1, 7, 1], layers: [dense(4, 'linear')] }, 1), data, o),
        (e: Error & { code?: string }) => e.code === 'native-unsupported' && /falls back to tfjs/.test(e.message));
    }
    await assert.rejects(nativeEngine(1).open(spec('relu'), randomWeights(spec('relu'), 1), randomData(4, 2, 7, 4, 1, null), o),
      (e: Error & { code?: string }) => e.code === 'native-input-size');
  });

  it('trains inside a worker_threads Worker, on images in a SharedArrayBuffer, as on the main thread', async () => {
    const o = { ...TRAIN_DEFAULTS, optimizer: 'adam' as const, learningRate: 0.01, loss: 'crossentropy' as const };
    const s = spec('relu');
    const plain = randomData(40, 1, 7, 4, 5, { mean: 0.5, std: 0.3 });
    const shared = new Uint8Array(new SharedArrayBuffer(plain.images.length));
    shared.set(plain.images);
    const data = { ...plain, images: shared };
    const weights = randomWeights(s, 6);
    const batches = batchesOf(data.count, 6, 7, STEPS_PER_RUN + 2);
    const session = await nativeEngine(1).open(s, weights, plain, o);
    const expected = await session.run(batches);
    session.dispose();
    // The worker loads the TypeScript sources through ts-node, as mocha does here.
    const worker = new Worker(`
      require('ts-node').register({ transpileOnly: true });
      const { parentPort, workerData } = require('worker_threads');
      const { nativeEngine } = require(workerData.engine);
      (async () => {
        const { spec, weights, data, options, batches } = workerData;
        const session = await nativeEngine(2).open(spec, weights, data, options);
        parentPort.postMessage({ losses: await session.run(batches), weights: await session.getWeights() });
        session.dispose();
      })().catch((e) => parentPort.postMessage({ error: e.message }));
    `, { eval: true, workerData: { engine: path.join(__dirname, '../src/lib/engine/native.ts'), spec: s, weights, data, options: o, batches } });
    // The main thread's event loop keeps turning while the worker trains.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const result = await new Promise<{ losses?: Float32Array; error?: string }>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    clearInterval(timer);
    await worker.terminate();
    assert.ifError(result.error);
    assertClose(result.losses as Float32Array, expected, 'losses in the worker');
    assert.ok(ticks > 0, 'the main thread ran timers while the worker trained');
  });

  const convSpec: ModelSpec = {
    inputShape: [9, 9, 1],
    layers: [
      { kind: 'conv2d', filters: 3, kernelSize: 3, activation: 'relu' },
      { kind: 'maxpool2d', poolSize: 2 },
      { kind: 'conv2d', filters: 4, kernelSize: 2, activation: 'tanh' },
      { kind: 'flatten' },
      dense(5, 'relu'),
      dense(4, 'linear'),
    ],
  };
  for (const [name, opts] of [
    ['adam, crossentropy', { optimizer: 'adam', learningRate: 0.01, loss: 'crossentropy' }],
    ['sgd + momentum, mse', { optimizer: 'sgd', momentum: 0.9, learningRate: 0.05, loss: 'mse' }],
  ] as Array<[string, Partial<TrainOptions>]>) {
    it(`conv2d, odd max-pool, conv2d, flatten, dense (${name}): losses and weights in tfjs layout after 1 and 3 steps`, async () => {
      const o = { ...TRAIN_DEFAULTS, ...opts };
      const data = randomData(20, 9, 9, 4, 11, { mean: 0.4, std: 0.3 });
      const weights = randomWeights(convSpec, 12);
      const batches = batchesOf(data.count, 6, 13, 3);
      const before = tf.memory().numTensors;
      const ref = tfjsTrain(convSpec, weights, data, o, batches, [1, 3]);
      assert.strictEqual(tf.memory().numTensors, before, 'the tfjs reference leaked tensors');
      const session = await nativeEngine(1).open(convSpec, weights, data, o);
      try {
        assertClose(await session.run(batches.slice(0, 1)), ref.losses.slice(0, 1), 'loss of step 1');
        (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[0][i], `weight ${i} after 1 step`));
        assertClose(await session.run(batches.slice(1)), ref.losses.slice(1), 'losses of steps 2-3');
        (await session.getWeights()).forEach((w, i) => assertClose(w, ref.snapshots[1][i], `weight ${i} after 3 steps`));
      } finally {
        session.dispose();
      }
    });
  }

  it('dropout in training: each input is dropped or scaled by 1 / (1 - rate), as tfjs does', async () => {
    // One plain SGD step on one sample through [dropout 0.5, dense 4]: the kernel's change in row j
    // is -lr * x_j * mask_j * 2 * dz, so every row changes by 0 or by the same vector times x_j.
    const s: ModelSpec = { inputShape: [1, 24, 1], layers: [{ kind: 'dropout', rate: 0.5 }, dense(4, 'linear')] };
    const o = { ...TRAIN_DEFAULTS, optimizer: 'sgd' as const, momentum: 0, learningRate: 1, loss: 'mse' as const };
    const data = randomData(1, 1, 24, 4, 21, null);
    for (let j = 0; j < 24; j++) data.images[j] = 10 + 10 * j;
    const weights = randomWeights(s, 22);
    const session = await nativeEngine(1).open(s, weights, data, o);
    try {
      const [lossValue] = await session.run([Int32Array.of(0)]);
      const [after] = await session.getWeights();
      const x = Array.from(data.images, (b) => b / 255);
      const rows = x.map((xj, j) => Array.from({ length: 4 }, (_u, u) => (weights[0][j * 4 + u] - after[j * 4 + u]) / xj));
      const kept = rows.map((r) => r.some((v) => Math.abs(v) > 1e-6));
      assert.ok(kept.some(Boolean) && !kept.every(Boolean), `some inputs kept, some dropped (kept: ${kept.map(Number).join('')})`);
      const ref = rows[kept.indexOf(true)];
      rows.forEach((r, j) => { if (kept[j]) assertClose(r, ref, `row ${j} / x_j`); });
      // The loss is the forward pass of the kept inputs scaled by 2.
      const logits = [0, 1, 2, 3].map((u) => weights[1][u] + x.reduce((acc, xj, j) => acc + (kept[j] ? 2 * xj * weights[0][j * 4 + u] : 0), 0));
      const target = [0, 1, 2, 3].map((u) => (u === data.labels[0] ? 1 : 0));
      assertClose([lossValue], [logits.reduce((acc, l, u) => acc + (l - target[u]) ** 2, 0) / 4], 'loss');
      // dz = 2 * (logits - target) / 4 for mse; the kept rows moved by lr * 2 (dropout scale) * dz per unit x_j.
      assertClose(ref, logits.map((l, u) => 2 * 2 * (l - target[u]) / 4), 'kept row change / x_j');
    } finally {
      session.dispose();
    }
  });

  it('dropout between dense layers: a dropped hidden unit gets no gradient on either side', async () => {
    const s: ModelSpec = { inputShape: [1, 7, 1], layers: [dense(24, 'tanh'), { kind: 'dropout', rate: 0.5 }, dense(4, 'linear')] };
    const o = { ...TRAIN_DEFAULTS, optimizer: 'sgd' as const, momentum: 0, learningRate: 0.5, loss: 'crossentropy' as const };
    const data = randomData(6, 1, 7, 4, 31, null);
    const weights = randomWeights(s, 32);
    const session = await nativeEngine(1).open(s, weights, data, o);
    try {
      await session.run([Int32Array.of(0)]); // one sample: one mask
      const [k1, , k2] = await session.getWeights();
      const moved = (a: Float32Array, b: Float32Array, idx: number[]) => idx.some((i) => Math.abs(a[i] - b[i]) > 1e-7);
      const hidden = Array.from({ length: 24 }, (_h, h) => ({
        into: moved(k1, weights[0], Array.from({ length: 7 }, (_i, i) => i * 24 + h)), // kernel 1 column h
        out: moved(k2, weights[2], [0, 1, 2, 3].map((u) => h * 4 + u)), // kernel 2 row h
      }));
      hidden.forEach((h, i) => assert.strictEqual(h.into, h.out, `hidden unit ${i}: gradient on one side only`));
      assert.ok(hidden.some((h) => h.out) && !hidden.every((h) => h.out), 'some hidden units dropped, some kept');
    } finally {
      session.dispose();
    }
  });
});

describe('ONNX export of a trained model', function () {
  let backend: string;
  before(async function () {
    if (!(await nativeAvailable())) {
      console.log('      onnxruntime-node is not installed or does not load here: ONNX export specs skipped');
      this.skip();
    }
    backend = tf.getBackend();
    await tf.setBackend('cpu');
  });
  after(async () => { if (backend) await tf.setBackend(backend); });

  const specs: Array<[string, ModelSpec, TrainData['normalization']]> = [
    ['dense 784-32-16-10 with normalization', { inputShape: [28, 28, 1], layers: [dense(32, 'relu'), dense(16, 'selu'), dense(10, 'linear')] }, { mean: 0.1307, std: 0.3081 }],
    ['conv, max-pool, dropout, flatten, dense with normalization', { inputShape: [12, 10, 1], layers: [
      { kind: 'conv2d', filters: 4, kernelSize: 3, activation: 'relu' }, { kind: 'maxpool2d', poolSize: 2 }, { kind: 'dropout', rate: 0.25 },
      { kind: 'flatten' }, dense(6, 'elu'), dense(3, 'linear')] }, { mean: 0.2, std: 0.5 }],
    ['dense without normalization', { inputShape: [3, 5, 1], layers: [dense(4, 'sigmoid'), dense(3, 'linear')] }, null],
  ];
  for (const [name, s, normalization] of specs) {
    it(`${name}: the same probabilities as the tfjs model (1e-5)`, async () => {
      const ort = await loadOrt();
      const [rows, cols] = s.inputShape;
      const classes = (s.layers[s.layers.length - 1] as { units: number }).units;
      const weights = randomWeights(s, 41);
      const n = 9;
      const r = rng(42);
      const pixels = Float32Array.from({ length: n * rows * cols }, () => r());
      const before = tf.memory().numTensors;
      const model = tfjsModel(s);
      const expected = tf.tidy(() => {
        model.setWeights(model.getWeights().map((w, i) => tf.tensor(weights[i], w.shape)));
        let x = tf.tensor(pixels, isSpatial(s) ? [n, rows, cols, 1] : [n, rows * cols]);
        if (normalization) x = x.sub(normalization.mean).div(normalization.std);
        return (model.predict(x) as tf.Tensor).softmax().dataSync();
      });
      model.dispose();
      assert.strictEqual(tf.memory().numTensors, before, 'the tfjs side leaked tensors');
      const bytes = exportOnnx(s, weights, normalization, { classes: Array.from({ length: classes }, (_c, i) => String(i)) });
      const session = await ort.InferenceSession.create(bytes);
      const dims = isSpatial(s) ? [n, 1, rows, cols] : [n, rows * cols];
      const out = await session.run({ pixels: new ort.Tensor('float32', pixels, dims) });
      await session.release();
      const p = out.probabilities.data as Float32Array;
      assert.deepStrictEqual(Array.from(out.probabilities.dims), [n, classes]);
      p.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 1e-5, `probability ${i}: onnx ${v} vs tfjs ${expected[i]}`));
    });
  }
});
