import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerFastKernels, unregisterFastKernels } from '../src/lib/kernels';
import { CONV_LIMITS, registerConvKernels, unregisterConvKernels } from '../src/lib/kernels-conv';
import { MnistError } from '../src/lib/messages';

// Deterministic pseudo-random data so failures reproduce.
function rand(n: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}
const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1);

/**
 * Relative 1e-4 of each value, or of 1 % of the largest for values near 0: the kernels sum in a
 * different order than the reference (float32 products, sums of up to a few thousand terms).
 */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 1e-6;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= 1e-4 * Math.max(Math.abs(expected[i]), 1e-2 * scale))) {
      assert.fail(`${what}: [${i}] got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

type Pad = 'valid' | 'same' | number[][];
interface ConvCase { x: number[]; f: number[]; strides: number | [number, number]; pad: Pad }

/** Batch 1 and 3, odd and even images, 1/3/5 channels, kernels 1/3/5, strides 1 and 2, both paddings. */
function convCases(): ConvCase[] {
  const out: ConvCase[] = [];
  for (const batch of [1, 3]) {
    for (const [h, w] of [[7, 9], [8, 6]]) {
      for (const ci of [1, 3, 5]) {
        for (const k of [1, 3, 5]) {
          for (const strides of [1, 2]) {
            for (const pad of ['valid', 'same'] as const) {
              out.push({ x: [batch, h, w, ci], f: [k, k, ci, (ci + k + strides) % 4 + 1], strides, pad });
            }
          }
        }
      }
    }
  }
  // Rectangular filters and strides, explicit padding, a filter as large as the image.
  out.push({ x: [2, 9, 7, 3], f: [3, 5, 3, 2], strides: [2, 1], pad: 'same' });
  out.push({ x: [2, 9, 7, 3], f: [5, 3, 3, 4], strides: [1, 2], pad: 'valid' });
  out.push({ x: [3, 7, 9, 2], f: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] });
  out.push({ x: [1, 5, 5, 3], f: [5, 5, 3, 2], strides: 1, pad: 'valid' });
  return out;
}

/** Both conv gradients of one case (through conv2d's own gradient) on the current backend. */
function convGrads(c: ConvCase): { dw: number[]; dx: number[]; shapes: number[][] } {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number],
        c.f as [number, number, number, number], c.strides, 1, c.pad as 'valid');
    const x = tf.tensor4d(rand(size(c.x), size(c.x) + 1), c.x as [number, number, number, number]);
    const f = tf.tensor4d(rand(size(c.f), size(c.f) + 2), c.f as [number, number, number, number]);
    const dy = tf.tensor4d(rand(size(info.outShape), 3), info.outShape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad as 'valid').mul(dy).sum())([x, f]);
    return { dw: Array.from(dw.dataSync()), dx: Array.from(dx.dataSync()), shapes: [dw.shape, dx.shape] };
  });
}

/**
 * tf.grads of a small fixed conv net with respect to its input and every weight: a same-padded
 * stride-2 conv + relu, an overlapping max pool, a valid 3x1 conv + relu, a 2x2 max pool, a
 * dense layer, softmax cross-entropy. Every conv kernel is on the path.
 */
function convNetGrads(): number[][] {
  const shapes = [[3, 11, 9, 3], [3, 3, 3, 5], [5], [3, 1, 5, 4], [4], [16, 3], [3]];
  return tf.tidy(() => {
    const y = tf.oneHot(tf.tensor1d([0, 2, 1], 'int32'), 3);
    const net = (x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor, b2: tf.Tensor, w3: tf.Tensor, b3: tf.Tensor) => {
      let h = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 2, 'same').add(b1)) as tf.Tensor4D;
      h = tf.maxPool(h, 2, 1, 'same');
      h = tf.relu(tf.conv2d(h, w2 as tf.Tensor4D, 1, 'valid').add(b2)) as tf.Tensor4D;
      const flat = tf.maxPool(h, 2, 2, 'valid').reshape([3, 16]);
      return tf.losses.softmaxCrossEntropy(y, flat.matMul(w3).add(b3)) as tf.Scalar;
    };
    const args = shapes.map((s, i) => tf.tensor(rand(size(s), 20 + i), s));
    return tf.grads(net as (...a: tf.Tensor[]) => tf.Scalar)(args).map((g) => Array.from(g.dataSync()));
  });
}

interface PoolCase { x: number[]; filterSize: number | [number, number]; strides: number; pad: 'valid' | 'same' }
const POOLS: PoolCase[] = [
  { x: [1, 7, 9, 3], filterSize: 2, strides: 2, pad: 'valid' },
  { x: [3, 7, 9, 5], filterSize: 3, strides: 2, pad: 'same' },
  { x: [3, 8, 6, 1], filterSize: 2, strides: 1, pad: 'same' },
  { x: [1, 9, 7, 2], filterSize: [3, 2], strides: 1, pad: 'valid' },
];

function poolGrad(c: PoolCase, values: number[]): number[] {
  return tf.tidy(() => {
    const g = tf.grad((x: tf.Tensor) => {
      const y = tf.maxPool(x as tf.Tensor4D, c.filterSize, c.strides, c.pad);
      // A different weight per output, so a gradient sent to the wrong input shows.
      return y.mul(tf.range(1, 1 + y.size).reshape(y.shape)).sum() as tf.Scalar;
    });
    return Array.from(g(tf.tensor4d(values, c.x as [number, number, number, number])).dataSync());
  });
}

/** Random values, all-negative values, and relu-like values with many tied zeros. */
function poolInputs(c: PoolCase): Array<[string, number[]]> {
  const r = rand(size(c.x), size(c.x) + 9);
  return [['random', r], ['negative', r.map((v) => v - 1)], ['ties', r.map((v) => Math.max(v, 0))]];
}

/** The backend's count of live data buffers (kernel temporaries are invisible to tf.memory()). */
const dataIds = () => tf.engine().backend.numDataIds();

async function on<T>(backend: string, fn: () => T): Promise<T> {
  await tf.setBackend(backend);
  return fn();
}

describe('kernels-conv: wasm convolution kernels', function () {
  let startBackend: string;

  before(async () => {
    await tf.ready();
    startBackend = tf.getBackend();
    await tf.setBackend('wasm');
    registerFastKernels('wasm');
  });

  after(async () => {
    await tf.setBackend(startBackend);
  });

  it('adds Conv2DBackpropFilter, which stock wasm lacks, and puts everything back on unregister', () => {
    const names = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'Identity', 'Cast'];
    const bpi = tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc;
    assert.deepEqual(registerConvKernels('wasm'), names);
    assert.equal(tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc, bpi, 'not wrapped twice');
    assert.deepEqual(unregisterConvKernels('wasm').sort(), [...names].sort());
    assert.equal(tf.getKernel('Conv2DBackpropFilter', 'wasm'), undefined);
    assert.notEqual(tf.getKernel('Conv2DBackpropInput', 'wasm')!.kernelFunc, bpi);
    assert.deepEqual(unregisterConvKernels('wasm'), []);
    assert.deepEqual(registerConvKernels('wasm', ['MaxPoolGrad']), ['MaxPoolGrad']);
    unregisterConvKernels('wasm');
    registerConvKernels('wasm');
    assert.deepEqual(registerConvKernels('webgl'), []);
  });

  it('Conv2DBackpropFilter and Conv2DBackpropInput match the cpu kernels on odd shapes', async () => {
    for (const c of convCases()) {
      const want = await on('cpu', () => convGrads(c));
      const got = await on('wasm', () => convGrads(c));
      const what = `x=${c.x} f=${c.f} strides=${c.strides} pad=${JSON.stringify(c.pad)}`;
      assert.deepEqual(got.shapes, want.shapes, what);
      assertClose(got.dw, want.dw, `dW ${what}`);
      assertClose(got.dx, want.dx, `dx ${what}`);
    }
  });

  it('the filter gradient of a batch split into chunks equals the whole batch\'s', async () => {
    const c: ConvCase = { x: [5, 9, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' };
    await tf.setBackend('wasm');
    const whole = convGrads(c);
    const saved = CONV_LIMITS.maxCols;
    try {
      for (const samples of [1, 2, 4]) { // chunks of 1, 2 and 4 samples (the last one shorter)
        CONV_LIMITS.maxCols = samples * 9 * 7 * 27;
        assertClose(convGrads(c).dw, whole.dw, `chunks of ${samples}`);
      }
    } finally {
      CONV_LIMITS.maxCols = saved;
    }
  });

  it('MaxPoolGrad matches cpu where the stock wasm kernel does not (ties, all-negative windows)', async () => {
    let stockWrong = 0;
    for (const c of POOLS) {
      for (const [kind, values] of poolInputs(c)) {
        const want = await on('cpu', () => poolGrad(c, values));
        const got = await on('wasm', () => poolGrad(c, values));
        assertClose(got, want, `maxPoolGrad ${kind} x=${c.x} filter=${c.filterSize} strides=${c.strides} ${c.pad}`);
        unregisterConvKernels('wasm');
        try {
          const stock = poolGrad(c, values);
          if (stock.some((v, i) => Math.abs(v - want[i]) > 1e-6)) stockWrong++;
        } finally {
          registerConvKernels('wasm');
        }
      }
    }
    // Why we override it: the stock kernel starts each window's max at +1.2e-38, so windows with
    // no positive value send their gradient to the tensor's first element.
    assert.ok(stockWrong > 0, 'the stock wasm MaxPoolGrad agreed with cpu everywhere');
  });

  it('Identity and same-dtype Cast share the data, and a clone outlives its original', () => {
    const a = tf.tensor2d([1.5, -2, 3, 4], [2, 2]);
    const before = dataIds();
    const b = a.clone(), c = a.cast('float32');
    assert.equal(dataIds(), before, 'no new buffer');
    a.dispose();
    assert.deepEqual(tf.tidy(() => Array.from(b.add(c).dataSync())), [3, -4, 6, 8]);
    const i = c.cast('int32');
    assert.equal(dataIds(), before + 1, 'a cast to another dtype copies');
    assert.deepEqual([i.dtype, Array.from(i.dataSync())], ['int32', [1, -2, 3, 4]]);
    tf.dispose([b, c, i]);
    assert.equal(dataIds(), before - 1, 'the buffer is freed with the last tensor');
    const s = tf.tensor1d(['a', 'b'], 'string');
    assert.deepEqual(s.clone().arraySync(), ['a', 'b']);
    tf.dispose(s);
  });

  it('gradients of a small conv net (weights and input) match cpu', async () => {
    const want = await on('cpu', convNetGrads);
    const got = await on('wasm', convNetGrads);
    assert.equal(got.length, want.length);
    want.forEach((w, i) => assertClose(got[i], w, `conv net grad ${i}`));
  });

  it('says what to change for channels-first data, in English and Chinese', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 2, 5, 5]), dy = tf.zeros([1, 3, 3, 3]);
    try {
      assert.throws(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy },
          { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 2, 3] } as never),
          (e: unknown) => e instanceof MnistError && e.code === 'conv-data-format' &&
            /Conv2DBackpropFilter .*channels-last \(NHWC\).*NCHW.*channelsLast/.test(e.message));
    } finally {
      tf.dispose([x, dy]);
    }
    const zh = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'locales', 'zh-CN', 'common.json'), 'utf8'));
    assert.match(zh.errors['conv-data-format'], /__kernel__.*__format__/);
  });

  it('does not leak tensors or wasm buffers', async () => {
    await tf.setBackend('wasm');
    const run = () => {
      convNetGrads();
      convGrads({ x: [3, 7, 9, 3], f: [3, 3, 3, 2], strides: 2, pad: 'same' });
      poolGrad(POOLS[1], rand(size(POOLS[1].x), 1));
    };
    run();
    const before = { ...tf.memory(), dataIds: dataIds() };
    const saved = CONV_LIMITS.maxCols;
    try {
      for (let i = 0; i < 5; i++) {
        CONV_LIMITS.maxCols = i % 2 ? 100 : saved; // chunked and whole
        run();
      }
    } finally {
      CONV_LIMITS.maxCols = saved;
    }
    const after = { ...tf.memory(), dataIds: dataIds() };
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    assert.equal(after.dataIds, before.dataIds);
  });
});

describe('kernels-conv: cpu convolution kernels', function () {
  let startBackend: string;

  // The reference is the stock cpu kernel itself: run once without, once with the overrides.
  async function stockVsFast<T>(fn: () => T): Promise<{ want: T; got: T }> {
    await tf.setBackend('cpu');
    unregisterFastKernels('cpu');
    const want = fn();
    registerFastKernels('cpu');
    try {
      return { want, got: fn() };
    } finally {
      unregisterFastKernels('cpu');
    }
  }

  before(async () => {
    await tf.ready();
    startBackend = tf.getBackend();
  });

  after(async () => {
    unregisterFastKernels('cpu');
    await tf.setBackend(startBackend);
  });

  it('Conv2D, Conv2DBackpropFilter and Conv2DBackpropInput match the stock kernels on odd shapes', async () => {
    for (const c of convCases()) {
      const what = `cpu x=${c.x} f=${c.f} strides=${c.strides} pad=${JSON.stringify(c.pad)}`;
      const { want, got } = await stockVsFast(() => {
        const grads = convGrads(c);
        const y = tf.tidy(() => Array.from(tf.conv2d(tf.tensor4d(rand(size(c.x), 4), c.x as [number, number, number, number]),
            tf.tensor4d(rand(size(c.f), 5), c.f as [number, number, number, number]), c.strides, c.pad as 'valid').dataSync()));
        return { ...grads, y };
      });
      assertClose(got.y, want.y, `conv2d ${what}`);
      assertClose(got.dw, want.dw, `dW ${what}`);
      assertClose(got.dx, want.dx, `dx ${what}`);
    }
  });

  it('Conv2D with dilation and FusedConv2D with biases and activations match stock', async () => {
    const x = rand(3 * 9 * 7 * 3, 1), f = rand(3 * 3 * 3 * 4, 2);
    for (const activation of ['linear', 'relu', 'elu', 'prelu'] as const) {
      for (const biasShape of [null, [4], [1, 1, 4], [1]]) {
        for (const dilations of [1, 2]) {
          const { want, got } = await stockVsFast(() => tf.tidy(() => {
            const out = tf.fused.conv2d({
              x: tf.tensor4d(x, [3, 9, 7, 3]), filter: tf.tensor4d(f, [3, 3, 3, 4]), strides: 1, pad: 'same', dilations,
              bias: biasShape ? tf.tensor(rand(size(biasShape), 3), biasShape) : undefined, activation,
              preluActivationWeights: activation === 'prelu' ? tf.tensor1d([0.1, 0.2, 0.3, 0.4]) : undefined,
            });
            return { shape: out.shape, data: Array.from(out.dataSync()) };
          }));
          const what = `fused ${activation} bias=${biasShape} dilations=${dilations}`;
          assert.deepEqual(got.shape, want.shape, what);
          assertClose(got.data, want.data, what);
        }
      }
    }
  });

  it('MaxPoolGrad and leading-axes Sum match stock', async () => {
    for (const c of POOLS) {
      for (const [kind, values] of poolInputs(c)) {
        const { want, got } = await stockVsFast(() => poolGrad(c, values));
        assertClose(got, want, `cpu maxPoolGrad ${kind} x=${c.x}`);
      }
    }
    const sums: Array<[number[], number | number[]]> = [
      [[3, 7, 9, 5], [0, 1, 2]], [[3, 7, 9, 5], 0], [[3, 7], [0, 1]], [[3, 7, 9], [1, 2]], [[3, 7, 9], [0, 2]]];
    for (const [shape, axis] of sums) {
      for (const keepDims of [false, true]) {
        const { want, got } = await stockVsFast(() => tf.tidy(() => {
          const out = tf.sum(tf.tensor(rand(size(shape), 6), shape), axis, keepDims);
          return { shape: out.shape, data: Array.from(out.dataSync()) };
        }));
        assert.deepEqual(got.shape, want.shape, `sum ${shape} ${axis}`);
        assertClose(got.data, want.data, `sum ${shape} ${axis} keepDims=${keepDims}`);
      }
    }
  });

  it('gradients of a small conv net match the stock kernels', async () => {
    const { want, got } = await stockVsFast(convNetGrads);
    want.forEach((w, i) => assertClose(got[i], w, `cpu conv net grad ${i}`));
  });

  it('does not leak tensors or data buffers', async () => {
    await tf.setBackend('cpu');
    registerFastKernels('cpu');
    try {
      const run = () => {
        convNetGrads();
        tf.tidy(() => tf.fused.conv2d({ x: tf.ones([2, 5, 5, 3]) as tf.Tensor4D, filter: tf.ones([3, 3, 3, 2]) as tf.Tensor4D, strides: 1, pad: 'same',
          bias: tf.ones([2]), activation: 'relu' }).dataSync());
      };
      run();
      const before = { ...tf.memory(), dataIds: dataIds() };
      for (let i = 0; i < 3; i++) run();
      assert.deepEqual({ ...tf.memory(), dataIds: dataIds() }, before);
    } finally {
      unregisterFastKernels('cpu');
    }
  });
});
