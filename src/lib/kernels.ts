/**
 * Performance overrides for the tfjs wasm backend.
 *
 * The wasm matmul (batch_mat_mul_impl.cc) only uses XNNPACK when neither
 * input is transposed AND both batch dims are 1; everything else runs a
 * scalar triple loop that is ~10x slower. Backprop always asks for
 * transposed matmuls, so training spends most of its time in that loop.
 * We materialise the transpose ourselves (O(n^2)), then hand the
 * untransposed problem to the ORIGINAL kernel (O(n^3) on XNNPACK). Batched
 * problems are folded into one batch-1 matmul or split into batch-1 slices
 * for the same reason.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

type TensorInfo = tf.TensorInfo;
type KernelFunc = tf.KernelConfig['kernelFunc'];
// The wasm backend object; only the members we use.
interface WasmBackend {
  disposeData(dataId: object): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}
interface KernelArgs {
  inputs: Record<string, TensorInfo | undefined>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const BACKEND = 'wasm';
const FAST = Symbol('nodeRedMnistFastKernel');

function callKernel(name: string, args: KernelArgs): TensorInfo {
  const k = tf.getKernel(name, BACKEND);
  if (k == null) throw new Error(`wasm kernel ${name} is not registered`);
  return k.kernelFunc(args as never) as TensorInfo;
}

/**
 * Swaps the last two dims into new backend data. Done in JS on the wasm
 * heap because the wasm Transpose kernel is ~4x slower here (1.9 ms vs
 * 0.4 ms for 512x784), which would eat much of the matmul gain.
 */
function transposeLast2(x: TensorInfo, backend: WasmBackend): TensorInfo {
  const r = x.shape.length;
  const rows = x.shape[r - 2], cols = x.shape[r - 1];
  const out = backend.makeOutput([...x.shape.slice(0, -2), cols, rows], x.dtype);
  // Views taken after makeOutput: allocating may grow (and detach) the heap.
  const src = backend.typedArrayFromHeap(x), dst = backend.typedArrayFromHeap(out);
  const plane = rows * cols;
  for (let off = 0; off < src.length; off += plane) {
    for (let j = 0; j < cols; j++) {
      const d = off + j * rows;
      for (let i = 0; i < rows; i++) dst[d + i] = src[off + i * cols + j];
    }
  }
  return out;
}

function batchSize(x: TensorInfo): number {
  return x.shape.slice(0, -2).reduce((p, d) => p * d, 1);
}

/** One batch entry of a rank-3 tensor, as a new [1, m, n] tensor. */
function sliceBatch(x: TensorInfo, i: number, backend: WasmBackend): TensorInfo {
  const [, m, n] = x.shape;
  return callKernel('Slice', {
    inputs: { x }, backend, attrs: { begin: [i, 0, 0], size: [1, m, n] },
  });
}

/**
 * Wraps a wasm matmul kernelFunc so that the original only ever sees
 * untransposed, batch-1 operands (its XNNPACK path). The original kernel
 * reads `a`, `b` and the transpose attrs; other inputs/attrs (bias,
 * activation) pass through untouched.
 */
function makeFastMatMul(original: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    let a = inputs.a as TensorInfo;
    let b = inputs.b as TensorInfo;
    // Cases the stock kernel rejects or we do not speed up: let it decide.
    if (a.dtype !== 'float32' || b.dtype !== 'float32' ||
        a.shape.length < 2 || b.shape.length < 2 ||
        tf.util.sizeFromShape(a.shape) === 0 || tf.util.sizeFromShape(b.shape) === 0) {
      return original(args as never) as TensorInfo;
    }
    const temps: TensorInfo[] = [];
    try {
      if (attrs.transposeA) temps.push(a = transposeLast2(a, backend));
      if (attrs.transposeB) temps.push(b = transposeLast2(b, backend));
      const plain = { ...attrs, transposeA: false, transposeB: false };
      const run = (x: TensorInfo, y: TensorInfo) => original(
          { inputs: { ...inputs, a: x, b: y }, backend, attrs: plain } as never) as TensorInfo;

      const batchA = batchSize(a), batchB = batchSize(b);
      // PReLU weights may be laid out per batch entry: keep such calls whole.
      if (Math.max(batchA, batchB) === 1 || inputs.preluActivationWeights != null) {
        return run(a, b);
      }
      if (batchB === 1) {
        // Shared right operand: stack a's batches as rows, one big matmul.
        const [m, k] = a.shape.slice(-2), n = b.shape[b.shape.length - 1];
        const out = run({ ...a, shape: [1, batchA * m, k] }, { ...b, shape: [1, k, n] });
        out.shape = [...tf.backend_util.assertAndGetBroadcastShape(
            a.shape.slice(0, -2), b.shape.slice(0, -2)), m, n];
        return out;
      }
      // Split only rank-3 operands whose batch dims are equal or 1 (the
      // broadcasts the stock kernel itself supports); the rest stay stock.
      if (a.shape.length === 3 && b.shape.length === 3 && (batchA === batchB || batchA === 1)) {
        return batchedRun(a, b, batchA, batchB, backend, run);
      }
      return run(a, b);
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
  return fast as unknown as KernelFunc;
}

/** Runs `run` per batch entry and stacks the [1, m, n] results. */
function batchedRun(a: TensorInfo, b: TensorInfo, batchA: number, batchB: number,
    backend: WasmBackend, run: (x: TensorInfo, y: TensorInfo) => TensorInfo): TensorInfo {
  const batch = Math.max(batchA, batchB);
  const parts: TensorInfo[] = [];
  try {
    for (let i = 0; i < batch; i++) {
      const ai = batchA === 1 ? a : sliceBatch(a, i, backend);
      const bi = batchB === 1 ? b : sliceBatch(b, i, backend);
      try {
        parts.push(run(ai, bi));
      } finally {
        if (ai !== a) backend.disposeData(ai.dataId);
        if (bi !== b) backend.disposeData(bi.dataId);
      }
    }
    return callKernel('Concat', { inputs: parts as never, backend, attrs: { axis: 0 } });
  } finally {
    for (const p of parts) backend.disposeData(p.dataId);
  }
}

/**
 * Sum over leading axes (the bias gradient: [batch, units] -> [units]).
 * The wasm Sum can only reduce innermost axes, so it transposes the whole
 * input first (0.6 ms for 512x256); summing rows in place is ~5x cheaper.
 * Every other case goes to the original kernel.
 */
function makeFastSum(original: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
    const k = axes.length;
    const leading = axes.every((ax, i) => ax === i);
    if (x.dtype !== 'float32' || !leading || k === 0 || k === x.shape.length ||
        tf.util.sizeFromShape(x.shape) === 0) {
      return original(args as never) as TensorInfo;
    }
    const kept = x.shape.slice(k);
    const cols = tf.util.sizeFromShape(kept);
    const out = backend.makeOutput(attrs.keepDims ? [...axes.map(() => 1), ...kept] : kept, 'float32');
    const src = backend.typedArrayFromHeap(x), dst = backend.typedArrayFromHeap(out);
    const acc = new Float64Array(cols);
    for (let off = 0; off < src.length; off += cols) {
      for (let j = 0; j < cols; j++) acc[j] += src[off + j];
    }
    dst.set(acc);
    return out;
  };
  return fast as unknown as KernelFunc;
}

const OVERRIDES: Record<string, (original: KernelFunc) => KernelFunc> = {
  BatchMatMul: makeFastMatMul,
  _FusedMatMul: makeFastMatMul,
  Sum: makeFastSum,
};

/**
 * Re-registers slow wasm kernels with fast equivalents. Idempotent.
 * Returns the names of kernels overridden (the same list on every call
 * once installed). Call after tf.setBackend('wasm') + tf.ready().
 * No-op (returns []) for other backends.
 */
export function registerFastKernels(backendName: string): string[] {
  if (backendName !== BACKEND) return [];
  const done: string[] = [];
  for (const [name, make] of Object.entries(OVERRIDES)) {
    const config = tf.getKernel(name, BACKEND);
    if (config == null) continue;
    if (!(config.kernelFunc as unknown as Record<symbol, boolean>)[FAST]) {
      const kernelFunc = make(config.kernelFunc);
      (kernelFunc as unknown as Record<symbol, boolean>)[FAST] = true;
      // Keep setupFunc/disposeFunc so a re-initialised backend still wires
      // up the original kernel's wasm function that we delegate to.
      const fast = { ...config, kernelFunc };
      tf.unregisterKernel(name, BACKEND);
      tf.registerKernel(fast);
    }
    done.push(name);
  }
  return done;
}
