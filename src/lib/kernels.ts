/**
 * Performance overrides for the tfjs wasm and cpu backends.
 *
 * wasm:
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
import { registerConvKernels, sumRows, unregisterConvKernels } from './kernels-conv';
import type { CpuBackend, CpuKernelArgs, KernelArgs, KernelFunc, WasmBackend } from './kernels-conv';

type TensorInfo = tf.TensorInfo;

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
    dst.set(sumRows(src, cols));
    return out;
  };
  return fast as unknown as KernelFunc;
}

/**
 * Row gather and row slice on the wasm heap. Training takes each shuffled batch with
 * tf.gather(images, indices): the stock wasm GatherV2 walks element by element (~10 ms for
 * 512 rows of 784), and the stock Slice of leading rows costs time in proportion to the whole
 * source (79 ms for 512 of 60,000 rows). Both are row copies; anything else goes to the original.
 */
function makeFastGather(original: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo, indices = inputs.indices as TensorInfo;
    const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
    if (axis !== 0 || attrs.batchDims || indices.dtype !== 'int32' || x.shape.length < 1 ||
        (x.dtype !== 'float32' && x.dtype !== 'int32')) {
      return original(args as never) as TensorInfo;
    }
    const rows = x.shape[0];
    const row = tf.util.sizeFromShape(x.shape.slice(1));
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    const src = backend.typedArrayFromHeap(x), dst = backend.typedArrayFromHeap(out);
    const idx = backend.typedArrayFromHeap(indices) as unknown as Int32Array;
    for (let i = 0; i < idx.length; i++) {
      const r = idx[i];
      if (r < 0 || r >= rows) {
        backend.disposeData(out.dataId);
        throw new Error(`GatherV2: the index value ${r} is not in [0, ${rows - 1}]`);
      }
      dst.set(src.subarray(r * row, (r + 1) * row), i * row);
    }
    return out;
  };
  return fast as unknown as KernelFunc;
}

function makeFastSlice(original: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo;
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin as number[], attrs.size as number[]);
    const rowsOnly = x.shape.every((d, i) => i === 0 || (begin[i] === 0 && size[i] === d));
    if (!rowsOnly || (x.dtype !== 'float32' && x.dtype !== 'int32')) return original(args as never) as TensorInfo;
    const row = tf.util.sizeFromShape(x.shape.slice(1));
    const out = backend.makeOutput(size, x.dtype);
    const src = backend.typedArrayFromHeap(x), dst = backend.typedArrayFromHeap(out);
    dst.set(src.subarray(begin[0] * row, (begin[0] + size[0]) * row));
    return out;
  };
  return fast as unknown as KernelFunc;
}

// ------------------------------------------------------------------ cpu

/*
 * cpu: the stock BatchMatMul (tfjs-backend-cpu kernels/BatchMatMul.js) walks
 * both operands with strides, one output element at a time: ~0.2 G
 * multiply-adds/s, ~95 % of a training step. Ours copies each operand into
 * the layout where the shared dimension is contiguous (A as [m,k], B as
 * [n,k]; O(n^2) work) and computes 4x4 output tiles with 16 accumulators in
 * locals (doubles), so each load feeds four multiply-adds. The stock
 * _FusedMatMul calls the stock matmul directly, so it is replaced too.
 */


/** Copies `rows x cols` planes, transposed, from src into a new array. */
function transposePlanes(src: Float32Array, rows: number, cols: number): Float32Array {
  const dst = new Float32Array(src.length);
  const plane = rows * cols;
  for (let off = 0; off < src.length; off += plane) {
    // 8-column strips keep the reads of a strip within a few cache lines per row.
    for (let j0 = 0; j0 < cols; j0 += 8) {
      const j1 = Math.min(j0 + 8, cols);
      for (let i = 0; i < rows; i++) {
        const s = off + i * cols;
        for (let j = j0; j < j1; j++) dst[off + j * rows + i] = src[s + j];
      }
    }
  }
  return dst;
}

/**
 * C[m,n] (at cOff) = A[m,k] (at aOff) times the transpose of Bt[n,k] (at bOff); every
 * row has its k values contiguous. Accumulates in doubles.
 */
export function gemmABt(A: Float32Array, aOff: number, Bt: Float32Array, bOff: number,
    C: Float32Array, cOff: number, m: number, n: number, k: number): void {
  const m4 = m - (m % 4), n4 = n - (n % 4);
  // Column blocks of Bt small enough to stay in L2 while every row tile of A passes over them.
  const jBlock = Math.max(4, (Math.floor(32768 / Math.max(k, 1)) >> 2) << 2);
  for (let jb = 0; jb < n; jb += jBlock) {
    const jEnd = Math.min(jb + jBlock, n);
    const jEnd4 = Math.min(jEnd, n4);
    for (let i = 0; i < m4; i += 4) {
      const a0 = aOff + i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
      let j = jb;
      for (; j < jEnd4; j += 4) {
        const b0 = bOff + j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (let p = 0; p < k; p++) {
          const x0 = A[a0 + p], x1 = A[a1 + p], x2 = A[a2 + p], x3 = A[a3 + p];
          const y0 = Bt[b0 + p], y1 = Bt[b1 + p], y2 = Bt[b2 + p], y3 = Bt[b3 + p];
          c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
          c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
          c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
          c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
        }
        let c = cOff + i * n + j;
        C[c] = c00; C[c + 1] = c01; C[c + 2] = c02; C[c + 3] = c03; c += n;
        C[c] = c10; C[c + 1] = c11; C[c + 2] = c12; C[c + 3] = c13; c += n;
        C[c] = c20; C[c + 1] = c21; C[c + 2] = c22; C[c + 3] = c23; c += n;
        C[c] = c30; C[c + 1] = c31; C[c + 2] = c32; C[c + 3] = c33;
      }
      for (; j < jEnd; j++) { // leftover columns of this block
        const b0 = bOff + j * k;
        let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (let p = 0; p < k; p++) {
          const y = Bt[b0 + p];
          c0 += A[a0 + p] * y; c1 += A[a1 + p] * y; c2 += A[a2 + p] * y; c3 += A[a3 + p] * y;
        }
        const c = cOff + i * n + j;
        C[c] = c0; C[c + n] = c1; C[c + 2 * n] = c2; C[c + 3 * n] = c3;
      }
    }
    for (let i = m4; i < m; i++) { // leftover rows
      const a0 = aOff + i * k;
      for (let j = jb; j < jEnd; j++) {
        const b0 = bOff + j * k;
        let s0 = 0, s1 = 0;
        let p = 0;
        for (; p + 1 < k; p += 2) { s0 += A[a0 + p] * Bt[b0 + p]; s1 += A[a0 + p + 1] * Bt[b0 + p + 1]; }
        if (p < k) s0 += A[a0 + p] * Bt[b0 + p];
        C[cOff + i * n + j] = s0 + s1;
      }
    }
  }
}

/**
 * C[m,n] = A[m,k] B[k,n] for a few rows (e.g. one image): streams B's rows once, no
 * transpose of B (which would cost more than the product itself).
 */
function gemmFewRows(A: Float32Array, aOff: number, B: Float32Array, bOff: number,
    C: Float32Array, cOff: number, m: number, n: number, k: number): void {
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    const a0 = aOff + i * k;
    for (let p = 0; p < k; p++) {
      const x = A[a0 + p];
      if (x === 0) continue; // relu outputs and MNIST backgrounds are mostly zeros
      const b0 = bOff + p * n;
      for (let j = 0; j < n; j++) acc[j] += x * B[b0 + j];
    }
    C.set(acc, cOff + i * n);
  }
}

const FEW_ROWS = 4;

function cpuValues(backend: CpuBackend, t: TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

/** The product of a and b as a new float32 array plus the output shape, or null if we do not handle it. */
function cpuMatMul(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean,
    backend: CpuBackend): { shape: number[]; values: Float32Array } | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return null;
  const ra = a.shape.length, rb = b.shape.length;
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) return null; // the stock kernel words the error
  const av = cpuValues(backend, a), bv = cpuValues(backend, b);
  if (!(av instanceof Float32Array) || !(bv instanceof Float32Array)) return null;
  const batchA = batchSize(a), batchB = batchSize(b);
  const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const out = new Float32Array(batch * m * n);
  if (m * n * k === 0) return { shape: [...outer, m, n], values: out };
  const A = transposeA ? transposePlanes(av, k, m) : av; // -> [m,k] per batch
  if (m <= FEW_ROWS && !transposeB) {
    for (let bi = 0; bi < batch; bi++) {
      gemmFewRows(A, (bi % batchA) * m * k, bv, (bi % batchB) * k * n, out, bi * m * n, m, n, k);
    }
  } else {
    const Bt = transposeB ? bv : transposePlanes(bv, k, n); // -> [n,k] per batch
    for (let bi = 0; bi < batch; bi++) {
      gemmABt(A, (bi % batchA) * m * k, Bt, (bi % batchB) * n * k, out, bi * m * n, m, n, k);
    }
  }
  return { shape: [...outer, m, n], values: out };
}

function makeCpuMatMul(original: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const r = cpuMatMul(inputs.a as TensorInfo, inputs.b as TensorInfo,
        !!attrs.transposeA, !!attrs.transposeB, backend);
    if (!r) return original(args as never) as TensorInfo;
    return backend.makeTensorInfo(r.shape, 'float32', r.values);
  };
  return fast as unknown as KernelFunc;
}

/** Activations applied in place for the fused matmul; others go through their kernels. */
const INLINE_ACTIVATIONS = new Set([undefined, null, 'linear', 'relu']);

function makeCpuFusedMatMul(original: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const bias = inputs.bias;
    const n = (inputs.b as TensorInfo).shape[(inputs.b as TensorInfo).shape.length - (attrs.transposeB ? 2 : 1)];
    // Bias as [n] (or [1..,n]) broadcast along rows and relu/linear: all done here.
    // Other biases and activations (prelu, elu, ...) keep the stock kernel.
    const simpleBias = bias == null ||
        (bias.dtype === 'float32' && tf.util.sizeFromShape(bias.shape) === n && bias.shape[bias.shape.length - 1] === n);
    if (!simpleBias || !INLINE_ACTIVATIONS.has(attrs.activation as string) || inputs.preluActivationWeights != null) {
      return original(args as never) as TensorInfo;
    }
    const r = cpuMatMul(inputs.a as TensorInfo, inputs.b as TensorInfo,
        !!attrs.transposeA, !!attrs.transposeB, backend);
    if (!r) return original(args as never) as TensorInfo;
    const v = r.values;
    const bv = bias ? cpuValues(backend, bias) : null;
    const relu = attrs.activation === 'relu';
    if (bv || relu) {
      for (let off = 0; off < v.length; off += n) {
        for (let j = 0; j < n; j++) {
          let x = bv ? v[off + j] + bv[j] : v[off + j];
          if (relu && !(x > 0)) x = x !== x ? x : 0; // keep NaN like tf.relu
          v[off + j] = x;
        }
      }
    }
    // A bias with more leading dims than the product broadens the output shape.
    let shape = r.shape;
    if (bias && bias.shape.length > shape.length) {
      shape = tf.backend_util.assertAndGetBroadcastShape(shape, bias.shape);
    }
    return backend.makeTensorInfo(shape, 'float32', v);
  };
  return fast as unknown as KernelFunc;
}

const OVERRIDES: Record<string, Record<string, (original: KernelFunc) => KernelFunc>> = {
  wasm: {
    BatchMatMul: makeFastMatMul,
    _FusedMatMul: makeFastMatMul,
    Sum: makeFastSum,
    GatherV2: makeFastGather,
    Slice: makeFastSlice,
  },
  cpu: {
    BatchMatMul: makeCpuMatMul,
    _FusedMatMul: makeCpuFusedMatMul,
  },
};

/** The stock configs we replaced, per backend, so the overrides can be undone. */
const ORIGINALS = new Map<string, Map<string, tf.KernelConfig>>();

/**
 * Re-registers slow wasm or cpu kernels with fast equivalents. Idempotent.
 * Returns the names of kernels overridden (the same list on every call
 * once installed). Call after tf.setBackend(name) + tf.ready().
 * No-op (returns []) for other backends.
 */
export function registerFastKernels(backendName: string): string[] {
  const overrides = OVERRIDES[backendName];
  if (!overrides) return [];
  const done: string[] = [];
  for (const [name, make] of Object.entries(overrides)) {
    const config = tf.getKernel(name, backendName);
    if (config == null) continue;
    if (!(config.kernelFunc as unknown as Record<symbol, boolean>)[FAST]) {
      const kernelFunc = make(config.kernelFunc);
      (kernelFunc as unknown as Record<symbol, boolean>)[FAST] = true;
      // Keep setupFunc/disposeFunc so a re-initialised backend still wires
      // up the original kernel's wasm function that we delegate to.
      const fast = { ...config, kernelFunc };
      if (!ORIGINALS.has(backendName)) ORIGINALS.set(backendName, new Map());
      ORIGINALS.get(backendName)!.set(name, config);
      tf.unregisterKernel(name, backendName);
      tf.registerKernel(fast);
    }
    done.push(name);
  }
  return [...done, ...registerConvKernels(backendName)];
}

/**
 * Puts the stock kernels back (for measuring them against ours). Returns the names restored.
 */
export function unregisterFastKernels(backendName: string): string[] {
  const originals = ORIGINALS.get(backendName);
  if (!originals) return [];
  const done: string[] = [];
  for (const [name, config] of originals) {
    const current = tf.getKernel(name, backendName);
    if (current && !(current.kernelFunc as unknown as Record<symbol, boolean>)[FAST]) continue;
    if (current) tf.unregisterKernel(name, backendName);
    tf.registerKernel(config);
    done.push(name);
  }
  ORIGINALS.delete(backendName);
  return [...done, ...unregisterConvKernels(backendName)];
}
