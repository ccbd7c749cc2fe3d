// The native engine (ONNX Runtime) against tfjs on the cpu backend: the same model, weights,
// batches, optimizer and loss must give the same losses and weights, step by step.
import * as assert from 'assert';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';
import { lossFn, TRAIN_DEFAULTS, TrainOptions } from '../src/lib/train';
import { nativeAvailable, nativeEngine, STEPS_PER_RUN } from '../src/lib/engine/native';
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

/** A tfjs model of a spec (dense, conv2d, maxpool2d, flatten, dropout), like the model nodes build. */
function tfjsModel(spec: ModelSpec): tf.Sequential {
  const model = tf.sequential();
  const [rows, cols, channels] = spec.inputShape;
  const spatial = spec.layers[0].kind !== 'dense';
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
  const shape = spec.layers[0].kind === 'dense' ? [batch.length, size] : [batch.length, ...spec.inputShape];
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
});
