import { strict as assert } from 'assert';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { gemmABt, registerFastKernels, unregisterFastKernels } from '../src/lib/kernels';

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

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 1e-6;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    if (err > 1e-4 * Math.max(Math.abs(expected[i]), 1e-2 * scale)) {
      assert.fail(`${what}: [${i}] got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Runs fn with fresh tensors on the given backend, returns plain data. */
async function on<T>(backend: string, fn: () => T): Promise<T> {
  await tf.setBackend(backend);
  return fn();
}

/** MSE gradients of a small fixed dense model, on whichever backend and kernels are active. */
function denseModelGrads(): tf.TypedArray[] {
  const xv = rand(31 * 785, 4), yv = rand(31 * 10, 5);
  const model = tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [785], units: 17, activation: 'relu' }),
    tf.layers.dense({ units: 10 }),
  ] });
  model.layers[0].setWeights([tf.tensor2d(rand(785 * 17, 6), [785, 17]), tf.tensor1d(rand(17, 7))]);
  model.layers[1].setWeights([tf.tensor2d(rand(17 * 10, 8), [17, 10]), tf.tensor1d(rand(10, 9))]);
  const out = tf.tidy(() => {
    const x = tf.tensor2d(xv, [31, 785]), y = tf.tensor2d(yv, [31, 10]);
    const { grads } = tf.variableGrads(
        () => tf.losses.meanSquaredError(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
        model.trainableWeights.map(w => (w as unknown as { val: tf.Variable }).val));
    return Object.values(grads).map(t => t.dataSync());
  });
  model.dispose();
  return out;
}

interface Case { aShape: number[]; bShape: number[]; tA: boolean; tB: boolean }

function cases(): Case[] {
  const out: Case[] = [];
  const dims: Array<[number, number, number]> = [
    [1, 1, 1], [3, 17, 1], [17, 3, 129], [129, 785, 17], [1, 785, 3], [64, 256, 10],
  ];
  const batches: Array<[number[], number[]]> = [
    [[], []], [[1], [1]], [[3], [3]], [[1], [4]], [[5], [1]], // rank 3, incl. broadcast
    [[4], []], [[], [3]], [[2, 3], []], [[2, 3], [1, 1]], [[2, 3], [2, 3]], // mixed rank, rank 4
  ];
  for (const [m, k, n] of dims) {
    for (const [ba, bb] of batches) {
      if (ba.length && m * k * n > 20000) continue; // keep the batched grid quick
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          out.push({
            aShape: [...ba, ...(tA ? [k, m] : [m, k])],
            bShape: [...bb, ...(tB ? [n, k] : [k, n])],
            tA, tB,
          });
        }
      }
    }
  }
  return out;
}

describe('kernels: wasm fast kernel overrides', function () {
  let startBackend: string;
  let overridden: string[];

  before(async () => {
    await tf.ready();
    startBackend = tf.getBackend();
    await tf.setBackend('wasm');
    await tf.ready();
    overridden = registerFastKernels('wasm');
  });

  after(async () => {
    await tf.setBackend(startBackend);
  });

  it('overrides the kernels, idempotently, and only for wasm', () => {
    // (The conv kernels come from kernels-conv.ts, tested in kernels-conv.spec.ts.)
    assert.deepEqual(overridden.sort(), ['BatchMatMul', 'Cast', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'GatherV2',
      'Identity', 'MaxPoolGrad', 'Slice', 'Sum', '_FusedMatMul']);
    const fn = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc;
    assert.deepEqual(registerFastKernels('wasm').sort(), overridden);
    assert.equal(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc, fn, 'not wrapped twice');
    // (cpu has its own overrides, tested below; installing them here would change the reference.)
    assert.deepEqual(registerFastKernels('webgl'), []);
  });

  it('BatchMatMul matches cpu for odd sizes, batches and all transposes', async () => {
    for (const c of cases()) {
      const av = rand(size(c.aShape), size(c.aShape) + 1);
      const bv = rand(size(c.bShape), size(c.bShape) + 7);
      const run = () => tf.tidy(() => {
        const out = tf.matMul(tf.tensor(av, c.aShape), tf.tensor(bv, c.bShape), c.tA, c.tB);
        return { shape: out.shape, data: out.dataSync() };
      });
      const want = await on('cpu', run);
      const got = await on('wasm', run);
      const what = `a=${c.aShape} b=${c.bShape} tA=${c.tA} tB=${c.tB}`;
      assert.deepEqual(got.shape, want.shape, what);
      assertClose(got.data, want.data, what);
    }
  });

  it('_FusedMatMul (bias + activation) matches cpu for all transposes', async () => {
    // [batchA, batchB, m, k, n]
    const shapes = [[1, 1, 17, 129, 3], [1, 1, 1, 785, 1], [3, 3, 5, 17, 129], [4, 1, 5, 17, 33],
      [1, 1, 64, 785, 256]];
    for (const [batchA, batchB, m, k, n] of shapes) {
      for (const activation of ['linear', 'relu'] as const) {
        for (const tA of [false, true]) {
          for (const tB of [false, true]) {
            const aShape = [batchA, ...(tA ? [k, m] : [m, k])];
            const bShape = [batchB, ...(tB ? [n, k] : [k, n])];
            const av = rand(size(aShape), 3 + m), bv = rand(size(bShape), 5 + n), biasv = rand(n, 11);
            const run = () => tf.tidy(() => tf.fused.matMul({
              a: tf.tensor3d(av, aShape as [number, number, number]),
              b: tf.tensor3d(bv, bShape as [number, number, number]),
              transposeA: tA, transposeB: tB, bias: tf.tensor1d(biasv), activation,
            }).dataSync());
            const want = await on('cpu', run);
            const got = await on('wasm', run);
            assertClose(got, want, `fused ${activation} a=${aShape} b=${bShape} tA=${tA} tB=${tB}`);
          }
        }
      }
    }
  });

  it('Sum matches cpu on leading, inner and mixed axes', async () => {
    const shapes = [[1, 1], [17, 3], [512, 257], [3, 17, 129], [2, 3, 5, 7]];
    for (const shape of shapes) {
      const xv = rand(size(shape), size(shape) + 3);
      const axesList: Array<number | number[] | undefined> = [undefined, 0, -1, [0, 1], 1];
      if (shape.length > 2) axesList.push([0, 2], [1, 2], [0, 1, 2]);
      for (const axis of axesList) {
        for (const keepDims of [false, true]) {
          const run = () => tf.tidy(() => {
            const out = tf.sum(tf.tensor(xv, shape), axis, keepDims);
            return { shape: out.shape, data: out.dataSync() };
          });
          const want = await on('cpu', run);
          const got = await on('wasm', run);
          const what = `sum ${shape} axis=${axis} keepDims=${keepDims}`;
          assert.deepEqual(got.shape, want.shape, what);
          assertClose(got.data, want.data, what);
        }
      }
    }
    // int32 sums go to the stock kernel and keep their dtype.
    const ints = await on('wasm', () => tf.tidy(() => {
      const out = tf.tensor2d([1, 2, 3, 4], [2, 2], 'int32').sum(0);
      return { dtype: out.dtype, data: Array.from(out.dataSync()) };
    }));
    assert.deepEqual(ints, { dtype: 'int32', data: [4, 6] });
  });

  it('GatherV2 and Slice match cpu for rows, other axes, int32 and bad indices', async () => {
    const shapes = [[1, 1], [7, 3], [60, 784], [5, 3, 4]];
    for (const shape of shapes) {
      const xv = rand(size(shape), size(shape) + 5);
      const idx = [shape[0] - 1, 0, Math.floor(shape[0] / 2), 0];
      const run = () => tf.tidy(() => {
        const x = tf.tensor(xv, shape);
        const outs = [
          tf.gather(x, tf.tensor1d(idx, 'int32')),
          tf.gather(x, tf.tensor2d([idx, idx], [2, idx.length], 'int32')),
          tf.gather(x, tf.tensor1d([0], 'int32'), shape.length - 1),
          tf.gather(tf.cast(x.mul(100), 'int32'), tf.tensor1d(idx, 'int32')),
          x.slice([Math.floor(shape[0] / 2)], [Math.ceil(shape[0] / 2)]),
          x.slice([0, 0], [1, 1]),
          tf.cast(x.mul(100), 'int32').slice([shape[0] - 1], [-1]),
        ];
        return outs.map((o) => ({ shape: o.shape, dtype: o.dtype, data: Array.from(o.dataSync()) }));
      });
      const want = await on('cpu', run);
      const got = await on('wasm', run);
      got.forEach((g, i) => {
        assert.deepEqual([g.shape, g.dtype], [want[i].shape, want[i].dtype], `case ${i} of ${shape}`);
        assertClose(g.data, want[i].data, `gather/slice case ${i} of ${shape}`);
      });
    }
    await tf.setBackend('wasm');
    assert.throws(() => tf.tidy(() => tf.gather(tf.tensor2d([1, 2, 3, 4], [2, 2]), tf.tensor1d([2], 'int32')).dataSync()), /index value 2 is not in \[0, 1\]/);
  });

  it('gradients of a matmul chain match cpu', async () => {
    const xv = rand(17 * 129, 1), w1v = rand(129 * 33, 2), w2v = rand(33 * 10, 3);
    const run = () => tf.tidy(() => {
      const f = (x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) =>
          tf.matMul(tf.relu(tf.matMul(x, w1)), w2, false, false).square().sum() as tf.Scalar;
      const g = tf.grads(f as (...args: tf.Tensor[]) => tf.Tensor);
      return g([tf.tensor2d(xv, [17, 129]), tf.tensor2d(w1v, [129, 33]), tf.tensor2d(w2v, [33, 10])])
          .map(t => t.dataSync());
    });
    const want = await on('cpu', run);
    const got = await on('wasm', run);
    want.forEach((w, i) => assertClose(got[i], w, `grad ${i}`));
  });

  it('gradients of a dense model match cpu', async () => {
    const run = denseModelGrads;
    const want = await on('cpu', run);
    const got = await on('wasm', run);
    want.forEach((w, i) => assertClose(got[i], w, `dense grad ${i}`));
  });

  it('does not leak tensors, data buffers or bytes', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor3d(rand(3 * 17 * 129, 1), [3, 17, 129]);
    const b = tf.tensor3d(rand(3 * 33 * 17, 2), [3, 33, 17]);
    const bias = tf.tensor1d(rand(33, 3));
    // Kernel-internal temporaries are invisible to tf.memory(); the backend's
    // own count of live data ids is what catches a missed disposeData.
    const dataIds = () => tf.engine().backend.numDataIds();
    const before = { ...tf.memory(), dataIds: dataIds() };
    for (let i = 0; i < 50; i++) {
      tf.tidy(() => {
        tf.matMul(a, b, true, true).dataSync();
        tf.matMul(a.slice([0, 0, 0], [1, 17, 129]), b, true, true).dataSync();
        tf.fused.matMul({ a, b, transposeA: true, transposeB: true, bias, activation: 'relu' }).dataSync();
        tf.matMul(a, b.slice([0, 0, 0], [1, 33, 17]), true, true).dataSync();
        tf.sum(a, [0, 1], true).dataSync();
      });
    }
    const after = { ...tf.memory(), dataIds: dataIds() };
    assert.equal(after.numTensors, before.numTensors);
    assert.equal(after.numBytes, before.numBytes);
    assert.equal(after.dataIds, before.dataIds);
    tf.dispose([a, b, bias]);
  });
});

describe('kernels: cpu fast kernel overrides', function () {
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
    await tf.setBackend('cpu');
  });

  after(async () => {
    unregisterFastKernels('cpu');
    await tf.setBackend(startBackend);
  });

  it('installs, is idempotent, and restores the stock kernels', () => {
    const all = ['BatchMatMul', 'Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'FusedConv2D', 'MaxPoolGrad', 'Sum', '_FusedMatMul'];
    const stock = tf.getKernel('BatchMatMul', 'cpu')!.kernelFunc;
    assert.deepEqual(registerFastKernels('cpu').sort(), all);
    const fast = tf.getKernel('BatchMatMul', 'cpu')!.kernelFunc;
    assert.notEqual(fast, stock);
    assert.deepEqual(registerFastKernels('cpu').sort(), all);
    assert.equal(tf.getKernel('BatchMatMul', 'cpu')!.kernelFunc, fast, 'not wrapped twice');
    assert.deepEqual(unregisterFastKernels('cpu').sort(), all);
    assert.equal(tf.getKernel('BatchMatMul', 'cpu')!.kernelFunc, stock);
    assert.deepEqual(unregisterFastKernels('cpu'), []);
  });

  it('gemmABt handles every tile remainder', () => {
    for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [4, 4, 4], [5, 9, 2], [13, 41, 131], [8, 300, 3]]) {
      const A = Float32Array.from(rand(m * k, m + k)), Bt = Float32Array.from(rand(n * k, n + 3));
      const C = new Float32Array(m * n + 2).fill(NaN);
      gemmABt(A, 0, Bt, 0, C, 1, m, n, k);
      const want: number[] = [];
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) s += A[i * k + p] * Bt[j * k + p];
          want.push(s);
        }
      }
      assertClose(C.subarray(1, 1 + m * n), want, `gemm ${m}x${n}x${k}`);
      assert.ok(Number.isNaN(C[0]) && Number.isNaN(C[m * n + 1]), 'writes only its own output');
    }
  });

  it('BatchMatMul matches the stock cpu kernel for odd sizes, batches and all transposes', async () => {
    for (const c of cases()) {
      const av = rand(size(c.aShape), size(c.aShape) + 1);
      const bv = rand(size(c.bShape), size(c.bShape) + 7);
      const { want, got } = await stockVsFast(() => tf.tidy(() => {
        const out = tf.matMul(tf.tensor(av, c.aShape), tf.tensor(bv, c.bShape), c.tA, c.tB);
        return { shape: out.shape, data: out.dataSync() };
      }));
      const what = `cpu a=${c.aShape} b=${c.bShape} tA=${c.tA} tB=${c.tB}`;
      assert.deepEqual(got.shape, want.shape, what);
      assertClose(got.data, want.data, what);
    }
  });

  it('_FusedMatMul matches stock for biases, activations and transposes', async () => {
    const shapes = [[1, 1, 17, 129, 3], [1, 1, 1, 785, 1], [3, 3, 5, 17, 129], [4, 1, 5, 17, 33], [1, 1, 64, 785, 256]];
    for (const [batchA, batchB, m, k, n] of shapes) {
      for (const activation of ['linear', 'relu', 'elu', 'relu6', 'sigmoid'] as const) {
        for (const biasShape of [null, [n], [1, n], [m, n]]) {
          for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]]) {
            const aShape = [batchA, ...(tA ? [k, m] : [m, k])];
            const bShape = [batchB, ...(tB ? [n, k] : [k, n])];
            const av = rand(size(aShape), 3 + m), bv = rand(size(bShape), 5 + n);
            const biasv = biasShape && rand(size(biasShape), 11);
            const { want, got } = await stockVsFast(() => tf.tidy(() => {
              const out = tf.fused.matMul({
                a: tf.tensor3d(av, aShape as [number, number, number]),
                b: tf.tensor3d(bv, bShape as [number, number, number]),
                transposeA: tA, transposeB: tB, bias: biasv ? tf.tensor(biasv, biasShape!) : undefined, activation,
              });
              return { shape: out.shape, data: out.dataSync() };
            }));
            const what = `cpu fused ${activation} bias=${biasShape} a=${aShape} b=${bShape} tA=${tA} tB=${tB}`;
            assert.deepEqual(got.shape, want.shape, what);
            assertClose(got.data, want.data, what);
          }
        }
      }
    }
  });

  it('keeps NaN and the stock errors', async () => {
    const { want, got } = await stockVsFast(() => tf.tidy(() =>
      Array.from(tf.fused.matMul({ a: tf.tensor2d([NaN, 1], [1, 2]), b: tf.tensor2d([1, 1], [2, 1]), activation: 'relu' }).dataSync())));
    assert.ok(Number.isNaN(want[0]) && Number.isNaN(got[0]));
    registerFastKernels('cpu');
    try {
      assert.throws(() => tf.matMul(tf.tensor2d([1, 2], [1, 2]), tf.tensor2d([1, 2, 3], [3, 1])), /inner shapes|must match/);
      const ints = tf.tidy(() => tf.matMul(tf.tensor2d([1, 2], [1, 2], 'int32'), tf.tensor2d([3, 4], [2, 1], 'int32')));
      assert.equal(ints.dtype, 'int32');
      assert.deepEqual(Array.from(ints.dataSync()), [11]);
      ints.dispose();
    } finally {
      unregisterFastKernels('cpu');
    }
  });

  it('gradients of a dense model match the stock kernels', async () => {
    const { want, got } = await stockVsFast(denseModelGrads);
    want.forEach((w, i) => assertClose(got[i], w, `cpu dense grad ${i}`));
  });

  it('does not leak tensors or data buffers', async () => {
    registerFastKernels('cpu');
    try {
      const a = tf.tensor3d(rand(3 * 17 * 129, 1), [3, 17, 129]);
      const b = tf.tensor3d(rand(3 * 33 * 17, 2), [3, 33, 17]);
      const bias = tf.tensor1d(rand(33, 3));
      const dataIds = () => tf.engine().backend.numDataIds();
      const before = { ...tf.memory(), dataIds: dataIds() };
      for (let i = 0; i < 20; i++) {
        tf.tidy(() => {
          tf.matMul(a, b, true, true).dataSync();
          tf.fused.matMul({ a, b, transposeA: true, transposeB: true, bias, activation: 'relu' }).dataSync();
          tf.fused.matMul({ a, b, transposeA: true, transposeB: true, bias, activation: 'elu' }).dataSync();
        });
      }
      const after = { ...tf.memory(), dataIds: dataIds() };
      assert.deepEqual(after, before);
      tf.dispose([a, b, bias]);
    } finally {
      unregisterFastKernels('cpu');
    }
  });
});
