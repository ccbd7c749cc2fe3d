/**
 * Convolution kernels for training CNNs on the tfjs wasm and cpu backends.
 *
 * wasm has no Conv2DBackpropFilter at all, so no CNN could train on it; here it is im2col plus
 * one XNNPACK matmul. The stock Conv2DBackpropInput and MaxPoolGrad are scalar loops (~80 % of
 * a training step of the default CNN); the first becomes a forward XNNPACK conv, the second a
 * scatter to each window's first maximum. Identity and same-dtype Cast share data
 * instead of copying it.
 *
 * cpu: the stock Conv2DBackpropFilter is a naive loop (~1 sample/s), and Conv2D,
 * Conv2DBackpropInput and MaxPoolGrad walk tensor buffers element by element; here the
 * convolutions are im2col (or its adjoint) around the registered cpu BatchMatMul.
 *
 * Every override hands what it does not handle to the kernel it replaced. None of these kernels
 * is also overridden in kernels.ts (which registers these with one call), so the two layers
 * install and uninstall independently. No imports from kernels.ts: matmuls go through the
 * registered BatchMatMul kernel, fast or stock.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { MnistError } from './messages';

type TensorInfo = tf.TensorInfo;
export type KernelFunc = tf.KernelConfig['kernelFunc'];
type ConvInfo = tf.backend_util.Conv2DInfo;

// The wasm backend object; only the members we use (kernels.ts shares these types).
export interface WasmBackend {
  disposeData(dataId: object): boolean;
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}
export interface KernelArgs {
  inputs: Record<string, TensorInfo | undefined>;
  backend: WasmBackend;
  attrs: Record<string, unknown>;
}

const FAST = Symbol('nodeRedMnistConvKernel');

/**
 * maxCols: above this many floats in one im2col buffer, the batch is processed in chunks so a
 * big batch cannot exhaust the wasm heap (which never shrinks). Tests lower it to reach the
 * chunked path with small tensors.
 */
export const CONV_LIMITS = { maxCols: 1 << 24 };

function callKernel(name: string, backendName: string, args: { inputs: object; backend: unknown; attrs: object }): TensorInfo {
  const k = tf.getKernel(name, backendName);
  if (k == null) throw new Error(`${backendName} kernel ${name} is not registered`);
  return k.kernelFunc(args as never) as TensorInfo;
}

/** The geometry of a conv whose gradient is asked for, from the kernel's attrs. */
function convInfo(xShape: number[], filterShape: number[], attrs: Record<string, unknown>, kernel: string): ConvInfo {
  const format = tf.backend_util.convertConv2DDataFormat((attrs.dataFormat as 'NHWC' | 'NCHW') ?? 'NHWC');
  if (format !== 'channelsLast') throw new MnistError('conv-data-format', { kernel, format: String(attrs.dataFormat) });
  return tf.backend_util.computeConv2DInfo(xShape as [number, number, number, number],
      filterShape as [number, number, number, number], attrs.strides as [number, number],
      (attrs.dilations as [number, number] | undefined) ?? 1, attrs.pad as 'valid',
      attrs.dimRoundingMode as 'floor' | undefined, false, format);
}

/**
 * Writes the patches of samples [n0, n1) of x (NHWC) into dst as rows of [fh, fw, c] (the
 * filter's own layout), one row per output pixel in (n, oh, ow) order (dy's layout); 0 where a
 * tap falls in the padding. Each filter row's taps inside the image are one contiguous run of x.
 */
export function im2col(x: Float32Array, c: ConvInfo, n0: number, n1: number, dst: Float32Array): void {
  const { inHeight: IH, inWidth: IW, inChannels: CI, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = c;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = c;
  const top = c.padInfo.top, left = c.padInfo.left;
  const rowLen = FW * CI;
  let d = 0;
  for (let n = n0; n < n1; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const iw0 = ow * sw - left;
        // The filter columns whose input column lies inside the image.
        const fw0 = Math.min(FW, Math.max(0, Math.ceil(-iw0 / dw)));
        const fw1 = Math.max(fw0, Math.min(FW, Math.ceil((IW - iw0) / dw)));
        for (let fh = 0; fh < FH; fh++, d += rowLen) {
          const ih = oh * sh + fh * dh - top;
          if (ih < 0 || ih >= IH) { dst.fill(0, d, d + rowLen); continue; }
          if (fw0 > 0) dst.fill(0, d, d + fw0 * CI);
          if (fw1 < FW) dst.fill(0, d + fw1 * CI, d + rowLen);
          const s = ((n * IH + ih) * IW + iw0) * CI;
          if (dw === 1 && (fw1 - fw0) * CI >= 16) {
            // Long runs: a native copy is ~3x faster than a JS loop; short ones are not worth the call.
            dst.set(x.subarray(s + fw0 * CI, s + fw1 * CI), d + fw0 * CI);
            continue;
          }
          for (let fw = fw0; fw < fw1; fw++) {
            const a = s + fw * dw * CI, b = d + fw * CI;
            for (let ci = 0; ci < CI; ci++) dst[b + ci] = x[a + ci];
          }
        }
      }
    }
  }
}

/** The adjoint of im2col: adds each row of cols [P, K] back onto the pixels its taps read. */
export function col2im(cols: Float32Array, c: ConvInfo, dx: Float32Array): void {
  const { inHeight: IH, inWidth: IW, inChannels: CI, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = c;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = c;
  const top = c.padInfo.top, left = c.padInfo.left;
  dx.fill(0);
  let d = 0;
  for (let n = 0; n < c.batchSize; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const iw0 = ow * sw - left;
        const fw0 = Math.min(FW, Math.max(0, Math.ceil(-iw0 / dw)));
        const fw1 = Math.max(fw0, Math.min(FW, Math.ceil((IW - iw0) / dw)));
        for (let fh = 0; fh < FH; fh++, d += FW * CI) {
          const ih = oh * sh + fh * dh - top;
          if (ih < 0 || ih >= IH) continue;
          const s = ((n * IH + ih) * IW + iw0) * CI;
          for (let fw = fw0; fw < fw1; fw++) {
            const a = s + fw * dw * CI, b = d + fw * CI;
            for (let ci = 0; ci < CI; ci++) dx[a + ci] += cols[b + ci];
          }
        }
      }
    }
  }
}

/**
 * The column sums of src read as rows of `cols` values (a bias gradient), in doubles. Four rows
 * per pass over the accumulators: 2-4x faster than one, since the adds of a row then need no
 * load and store of the accumulator each.
 */
export function sumRows(src: Float32Array, cols: number): Float64Array {
  const acc = new Float64Array(cols);
  const rows = Math.floor(src.length / cols), c2 = 2 * cols, c3 = 3 * cols;
  let off = 0;
  for (let r = 0; r + 4 <= rows; r += 4, off += 4 * cols) {
    for (let j = 0; j < cols; j++) {
      const k = off + j;
      acc[j] += (src[k] + src[k + cols]) + (src[k + c2] + src[k + c3]);
    }
  }
  for (; off < src.length; off += cols) {
    for (let j = 0; j < cols; j++) acc[j] += src[off + j];
  }
  return acc;
}

/** Samples per chunk so that one chunk's im2col stays under CONV_LIMITS.maxCols floats. */
function chunkSize(c: ConvInfo): number {
  const perSample = c.filterHeight * c.filterWidth * c.inChannels * c.outHeight * c.outWidth;
  return Math.max(1, Math.min(c.batchSize, Math.floor(CONV_LIMITS.maxCols / Math.max(perSample, 1))));
}

// ------------------------------------------------------------------ wasm

function transpose2d(x: TensorInfo, backend: WasmBackend): TensorInfo {
  return callKernel('Transpose', 'wasm', { inputs: { x }, backend, attrs: { perm: [1, 0] } });
}

/**
 * The filter gradient, the one training kernel wasm lacks: cols = im2col(x) ([P, K]: P output
 * pixels, K filter taps), dW = cols^T dy ([K, CO]). The matmul must be untransposed for
 * XNNPACK, whose right operand costs ~10 ns per element to pack on every call (it is new data
 * each step): so the smaller of dy (P x CO) and cols (P x K) goes right, as dW = colsT dy or
 * dW^T = dyT cols. The 2-D transposes run in the wasm Transpose kernel (~0.7 ns per element).
 */
function wasmConv2DBackpropFilter(args: KernelArgs): TensorInfo {
  const { inputs, backend, attrs } = args;
  const x = inputs.x as TensorInfo, dy = inputs.dy as TensorInfo;
  // Gradients are float32; there is no stock kernel to hand anything else to.
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error(`Conv2DBackpropFilter: float32 inputs expected, got ${x.dtype} and ${dy.dtype}`);
  const filterShape = attrs.filterShape as number[];
  const c = convInfo(x.shape, filterShape, attrs, 'Conv2DBackpropFilter');
  const K = c.filterHeight * c.filterWidth * c.inChannels, CO = c.outChannels;
  const pixels = c.outHeight * c.outWidth;
  const out = backend.makeOutput(filterShape, 'float32');
  backend.typedArrayFromHeap(out).fill(0);
  if (K * CO * pixels === 0) return out;
  const dyRight = CO <= K;
  const chunk = chunkSize(c);
  const temps: TensorInfo[] = [];
  const temp = (t: TensorInfo) => { temps.push(t); return t; };
  try {
    for (let n0 = 0; n0 < c.batchSize; n0 += chunk) {
      const n1 = Math.min(c.batchSize, n0 + chunk), P = (n1 - n0) * pixels;
      const cols = temp(backend.makeOutput([P, K], 'float32'));
      // Views after makeOutput: allocating may grow (and detach) the heap.
      im2col(backend.typedArrayFromHeap(x), c, n0, n1, backend.typedArrayFromHeap(cols));
      let dyPart: TensorInfo = { ...dy, shape: [P, CO] };
      if (n1 - n0 < c.batchSize) {
        dyPart = temp(backend.makeOutput([P, CO], 'float32'));
        backend.typedArrayFromHeap(dyPart).set(backend.typedArrayFromHeap(dy).subarray(n0 * pixels * CO, n1 * pixels * CO));
      }
      const matmul = (a: TensorInfo, b: TensorInfo) => temp(callKernel('BatchMatMul', 'wasm', {
        inputs: { a: { ...a, shape: [1, ...a.shape] }, b: { ...b, shape: [1, ...b.shape] } }, backend,
        attrs: { transposeA: false, transposeB: false },
      }));
      const part = dyRight
        ? matmul(temp(transpose2d(cols, backend)), dyPart) // colsT dy
        : temp(transpose2d({ ...matmul(temp(transpose2d(dyPart, backend)), cols), shape: [CO, K] }, backend)); // (dyT cols)^T
      const dst = backend.typedArrayFromHeap(out), src = backend.typedArrayFromHeap(part);
      for (let i = 0; i < src.length; i++) dst[i] += src[i];
      for (const t of temps.splice(0)) backend.disposeData(t.dataId);
    }
  } catch (e) {
    backend.disposeData(out.dataId);
    throw e;
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
  return out;
}

/**
 * Conv2DBackpropInput as a forward conv (the stock wasm one is a scalar loop, ~30x slower than
 * its XNNPACK Conv2D): dx is dy, zero-stuffed by the stride and padded by the filter size less
 * the forward padding, correlated with the filter rotated 180 degrees and with its in and out
 * channels swapped. Padding the conv cannot express (negative) keeps the stock kernel.
 */
function makeWasmConv2DBackpropInput(original?: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const dy = inputs.dy as TensorInfo, filter = inputs.filter as TensorInfo;
    const stock = () => original!(args as never) as TensorInfo;
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || attrs.dataFormat === 'NCHW') return stock();
    const c = convInfo(attrs.inputShape as number[], filter.shape, attrs, 'Conv2DBackpropInput');
    const { filterHeight: FH, filterWidth: FW, strideHeight: sh, strideWidth: sw } = c;
    const stuffedH = (c.outHeight - 1) * sh + 1, stuffedW = (c.outWidth - 1) * sw + 1;
    const top = FH - 1 - c.padInfo.top, left = FW - 1 - c.padInfo.left;
    const bottom = c.inHeight + FH - 1 - stuffedH - top, right = c.inWidth + FW - 1 - stuffedW - left;
    if (Math.min(top, left, bottom, right) < 0 || tf.util.sizeFromShape(dy.shape) === 0 ||
        tf.util.sizeFromShape(filter.shape) === 0) {
      return stock();
    }
    const temps: TensorInfo[] = [];
    try {
      const rotated = backend.makeOutput([FH, FW, c.outChannels, c.inChannels], 'float32');
      temps.push(rotated);
      rotateFilter(backend.typedArrayFromHeap(filter), FH, FW, c.inChannels, c.outChannels, backend.typedArrayFromHeap(rotated));
      let stuffed = dy;
      if (sh > 1 || sw > 1) {
        stuffed = backend.makeOutput([c.batchSize, stuffedH, stuffedW, c.outChannels], 'float32');
        temps.push(stuffed);
        strideStuff(backend.typedArrayFromHeap(dy), c, backend.typedArrayFromHeap(stuffed));
      }
      return callKernel('Conv2D', 'wasm', {
        inputs: { x: stuffed, filter: rotated }, backend,
        attrs: { strides: 1, dilations: 1, dataFormat: 'NHWC', pad: [[0, 0], [top, bottom], [left, right], [0, 0]] },
      });
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  };
  return fast as unknown as KernelFunc;
}

/**
 * MaxPoolGrad as a scatter of dy to each window's first maximum, like the cpu kernel (the
 * stock wasm loop re-scans every window from every input pixel: 100 ms per conv-net step).
 */
function makeWasmMaxPoolGrad(original?: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const dy = inputs.dy as TensorInfo, x = inputs.input as TensorInfo;
    if (x.dtype !== 'float32' || dy.dtype !== 'float32') return original!(args as never) as TensorInfo;
    const c = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number],
        attrs.filterSize as number, attrs.strides as number, 1, attrs.pad as 'valid', attrs.dimRoundingMode as 'floor');
    const dx = backend.makeOutput(x.shape, 'float32');
    maxPoolBackprop(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(dy), c, backend.typedArrayFromHeap(dx));
    return dx;
  };
  return fast as unknown as KernelFunc;
}

/**
 * Identity, and Cast to the same dtype, share the data instead of copying it, as the cpu backend
 * does: the engine clones every tensor a gradient needs later and the relu gradient casts a
 * float32 mask to float32; each wasm copy of a conv activation costs ~2 ms a step. Backend data
 * is immutable (variables get new data on assign), so sharing is safe.
 */
function makeWasmShare(original?: KernelFunc): KernelFunc {
  const fast = (args: KernelArgs & { backend: { incRef(dataId: object): void } }): TensorInfo => {
    const x = args.inputs.x as TensorInfo;
    if (x.dtype === 'string' || (args.attrs?.dtype != null && args.attrs.dtype !== x.dtype)) {
      return original!(args as never) as TensorInfo;
    }
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  return fast as unknown as KernelFunc;
}

// ------------------------------------------------------------------ shared helpers

/** dst[fh, fw, co, ci] = w[FH-1-fh, FW-1-fw, ci, co]: the filter of the transposed conv. */
export function rotateFilter(w: Float32Array, FH: number, FW: number, CI: number, CO: number, dst: Float32Array): void {
  for (let fh = 0; fh < FH; fh++) {
    for (let fw = 0; fw < FW; fw++) {
      const s = ((FH - 1 - fh) * FW + (FW - 1 - fw)) * CI * CO, d = (fh * FW + fw) * CO * CI;
      for (let ci = 0; ci < CI; ci++) {
        for (let co = 0; co < CO; co++) dst[d + co * CI + ci] = w[s + ci * CO + co];
      }
    }
  }
}

/** dy [N, OH, OW, C] spread out to every stride-th pixel of [N, (OH-1)sh+1, (OW-1)sw+1, C], zeros between. */
function strideStuff(dy: Float32Array, c: ConvInfo, dst: Float32Array): void {
  const { outHeight: OH, outWidth: OW, outChannels: C, strideHeight: sh, strideWidth: sw } = c;
  const H = (OH - 1) * sh + 1, W = (OW - 1) * sw + 1;
  dst.fill(0);
  for (let n = 0; n < c.batchSize; n++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        const s = ((n * OH + oh) * OW + ow) * C;
        dst.set(dy.subarray(s, s + C), ((n * H + oh * sh) * W + ow * sw) * C);
      }
    }
  }
}

/**
 * dx (NHWC) = dy scattered to the first maximum of each pooling window of x (strictly greater
 * wins, NaN never does: the cpu kernel's rule). Channels run innermost so reads stay contiguous.
 */
export function maxPoolBackprop(x: Float32Array, dy: Float32Array, c: ConvInfo, dx: Float32Array): void {
  const { inHeight: IH, inWidth: IW, inChannels: C, outHeight: OH, outWidth: OW } = c;
  const { strideHeight: sh, strideWidth: sw, filterHeight: FH, filterWidth: FW } = c;
  const top = c.padInfo.top, left = c.padInfo.left;
  const best = new Float32Array(C), pos = new Int32Array(C);
  dx.fill(0);
  for (let n = 0; n < c.batchSize; n++) {
    for (let oh = 0; oh < OH; oh++) {
      const r0 = Math.max(0, oh * sh - top), r1 = Math.min(IH, oh * sh - top + FH);
      for (let ow = 0; ow < OW; ow++) {
        const c0 = Math.max(0, ow * sw - left), c1 = Math.min(IW, ow * sw - left + FW);
        const o = ((n * OH + oh) * OW + ow) * C;
        if (r1 - r0 === 2 && c1 - c0 === 2) {
          // A whole 2x2 window (the usual pooling), unrolled: ~1.7x faster than the loops below.
          const a = ((n * IH + r0) * IW + c0) * C, b = a + C, d = a + IW * C, e = d + C;
          for (let ch = 0; ch < C; ch++) {
            let m = -Infinity, p = -1, v = x[a + ch];
            if (v > m) { m = v; p = a + ch; }
            v = x[b + ch];
            if (v > m) { m = v; p = b + ch; }
            v = x[d + ch];
            if (v > m) { m = v; p = d + ch; }
            v = x[e + ch];
            if (v > m) p = e + ch;
            if (p >= 0) dx[p] += dy[o + ch];
          }
          continue;
        }
        best.fill(-Infinity);
        pos.fill(-1);
        for (let r = r0; r < r1; r++) {
          for (let col = c0; col < c1; col++) {
            const base = ((n * IH + r) * IW + col) * C;
            for (let ch = 0; ch < C; ch++) {
              const v = x[base + ch];
              if (v > best[ch]) { best[ch] = v; pos[ch] = base + ch; }
            }
          }
        }
        for (let ch = 0; ch < C; ch++) if (pos[ch] >= 0) dx[pos[ch]] += dy[o + ch];
      }
    }
  }
}

// ------------------------------------------------------------------ cpu

export interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.TypedArray): TensorInfo;
  disposeIntermediateTensorInfo(t: TensorInfo): void;
}
export interface CpuKernelArgs {
  inputs: Record<string, TensorInfo | undefined>;
  backend: CpuBackend;
  attrs: Record<string, unknown>;
}

function cpuValues(backend: CpuBackend, t: TensorInfo): Float32Array {
  return backend.data.get(t.dataId).values as Float32Array;
}

/** a x b (optionally transposed) through the registered cpu BatchMatMul, as a plain array. */
function cpuMatMul(backend: CpuBackend, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): Float32Array {
  const out = callKernel('BatchMatMul', 'cpu', {
    inputs: { a: { ...a, shape: [1, ...a.shape] }, b: { ...b, shape: [1, ...b.shape] } }, backend,
    attrs: { transposeA, transposeB },
  });
  const values = cpuValues(backend, out);
  backend.disposeIntermediateTensorInfo(out);
  return values;
}

/** The conv's cols = im2col(x) as a temporary backend tensor [P, K]. */
function cpuCols(backend: CpuBackend, x: TensorInfo, c: ConvInfo): TensorInfo {
  const K = c.filterHeight * c.filterWidth * c.inChannels;
  const cols = new Float32Array(c.batchSize * c.outHeight * c.outWidth * K);
  im2col(cpuValues(backend, x), c, 0, c.batchSize, cols);
  return backend.makeTensorInfo([c.batchSize * c.outHeight * c.outWidth, K], 'float32', cols);
}

const isFloat = (...ts: Array<TensorInfo | undefined>) => ts.every((t) => t == null || t.dtype === 'float32');

/** Conv2D and FusedConv2D (bias of one value per channel, linear or relu; others stay stock). */
function makeCpuConv2D(original?: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo, filter = inputs.filter as TensorInfo, bias = inputs.bias;
    const activation = (attrs.activation as string | undefined) ?? 'linear';
    const simpleBias = bias == null || (tf.util.sizeFromShape(bias.shape) === filter.shape[3] && bias.shape.length <= 4);
    if (!isFloat(x, filter, bias) || attrs.dataFormat === 'NCHW' || !simpleBias ||
        (activation !== 'linear' && activation !== 'relu')) {
      return original!(args as never) as TensorInfo;
    }
    const c = convInfo(x.shape, filter.shape, attrs, 'Conv2D');
    const cols = cpuCols(backend, x, c);
    let y: Float32Array;
    try {
      y = cpuMatMul(backend, cols, { ...filter, shape: [cols.shape[1], c.outChannels] }, false, false);
    } finally {
      backend.disposeIntermediateTensorInfo(cols);
    }
    if (bias || activation === 'relu') {
      const b = bias ? cpuValues(backend, bias) : null, CO = c.outChannels, relu = activation === 'relu';
      for (let i = 0; i < y.length; i += CO) {
        for (let j = 0; j < CO; j++) {
          const v = b ? y[i + j] + b[j] : y[i + j];
          y[i + j] = relu && v < 0 ? 0 : v; // NaN stays NaN, as in tf.relu
        }
      }
    }
    return backend.makeTensorInfo(c.outShape, 'float32', y);
  };
  return fast as unknown as KernelFunc;
}

/** dW = cols^T dy. */
function makeCpuConv2DBackpropFilter(original?: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo, dy = inputs.dy as TensorInfo;
    if (!isFloat(x, dy) || attrs.dataFormat === 'NCHW') return original!(args as never) as TensorInfo;
    const filterShape = attrs.filterShape as number[];
    const c = convInfo(x.shape, filterShape, attrs, 'Conv2DBackpropFilter');
    const cols = cpuCols(backend, x, c);
    try {
      const dW = cpuMatMul(backend, cols, { ...dy, shape: [cols.shape[0], c.outChannels] }, true, false);
      return backend.makeTensorInfo(filterShape, 'float32', dW);
    } finally {
      backend.disposeIntermediateTensorInfo(cols);
    }
  };
  return fast as unknown as KernelFunc;
}

/** dx = col2im(dy W^T). */
function makeCpuConv2DBackpropInput(original?: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const dy = inputs.dy as TensorInfo, filter = inputs.filter as TensorInfo;
    if (!isFloat(dy, filter) || attrs.dataFormat === 'NCHW') return original!(args as never) as TensorInfo;
    const c = convInfo(attrs.inputShape as number[], filter.shape, attrs, 'Conv2DBackpropInput');
    const P = c.batchSize * c.outHeight * c.outWidth, K = c.filterHeight * c.filterWidth * c.inChannels;
    const dCols = cpuMatMul(backend, { ...dy, shape: [P, c.outChannels] }, { ...filter, shape: [K, c.outChannels] }, false, true);
    const dx = new Float32Array(tf.util.sizeFromShape(c.inShape));
    col2im(dCols, c, dx);
    return backend.makeTensorInfo(c.inShape, 'float32', dx);
  };
  return fast as unknown as KernelFunc;
}

function makeCpuMaxPoolGrad(original?: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const dy = inputs.dy as TensorInfo, x = inputs.input as TensorInfo;
    if (!isFloat(x, dy)) return original!(args as never) as TensorInfo;
    const c = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number],
        attrs.filterSize as number, attrs.strides as number, 1, attrs.pad as 'valid', attrs.dimRoundingMode as 'floor');
    const dx = new Float32Array(tf.util.sizeFromShape(x.shape));
    maxPoolBackprop(cpuValues(backend, x), cpuValues(backend, dy), c, dx);
    return backend.makeTensorInfo(x.shape, 'float32', dx);
  };
  return fast as unknown as KernelFunc;
}

/**
 * Sum over leading axes (the conv bias gradient: [N, H, W, C] -> [C]): the stock cpu Sum
 * transposes the whole input first (170 ms for [32, 26, 26, 32]); summing rows in place does
 * not. Accumulates in doubles. Every other case goes to the original kernel.
 */
function makeCpuSum(original?: KernelFunc): KernelFunc {
  const fast = (args: CpuKernelArgs): TensorInfo => {
    const { inputs, backend, attrs } = args;
    const x = inputs.x as TensorInfo;
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
    const k = axes.length;
    if (x.dtype !== 'float32' || k === 0 || k === x.shape.length || !axes.every((ax, i) => ax === i) ||
        tf.util.sizeFromShape(x.shape) === 0) {
      return original!(args as never) as TensorInfo;
    }
    const kept = x.shape.slice(k);
    const sums = sumRows(cpuValues(backend, x), tf.util.sizeFromShape(kept));
    return backend.makeTensorInfo(attrs.keepDims ? [...axes.map(() => 1), ...kept] : kept, 'float32', Float32Array.from(sums));
  };
  return fast as unknown as KernelFunc;
}

// ------------------------------------------------------------------ registration

/** New kernels (the backend has none) and overrides (wrapping the backend's own), per backend. */
const KERNELS: Record<string, Record<string, (original?: KernelFunc) => KernelFunc>> = {
  wasm: {
    Conv2DBackpropFilter: () => wasmConv2DBackpropFilter as unknown as KernelFunc,
    Conv2DBackpropInput: makeWasmConv2DBackpropInput,
    MaxPoolGrad: makeWasmMaxPoolGrad,
    Identity: makeWasmShare,
    Cast: makeWasmShare,
  },
  cpu: {
    Conv2D: makeCpuConv2D,
    FusedConv2D: makeCpuConv2D,
    Conv2DBackpropFilter: makeCpuConv2DBackpropFilter,
    Conv2DBackpropInput: makeCpuConv2DBackpropInput,
    MaxPoolGrad: makeCpuMaxPoolGrad,
    Sum: makeCpuSum,
  },
};

/** What was registered before ours (null: nothing), per backend, so it can be put back. */
const ORIGINALS = new Map<string, Map<string, tf.KernelConfig | null>>();

const isOurs = (config: tf.KernelConfig | undefined) =>
  config != null && (config.kernelFunc as unknown as Record<symbol, boolean>)[FAST] === true;

/**
 * Registers the conv kernels for a backend (`only`: just these, for measuring one against the
 * stock rest). Idempotent; returns the kernel names.
 */
export function registerConvKernels(backendName: string, only?: string[]): string[] {
  const kernels = Object.entries(KERNELS[backendName] ?? {}).filter(([name]) => !only || only.includes(name));
  for (const [name, make] of kernels) {
    const config = tf.getKernel(name, backendName);
    if (isOurs(config)) continue;
    const kernelFunc = make(config?.kernelFunc);
    (kernelFunc as unknown as Record<symbol, boolean>)[FAST] = true;
    if (!ORIGINALS.has(backendName)) ORIGINALS.set(backendName, new Map());
    ORIGINALS.get(backendName)!.set(name, config ?? null);
    if (config) tf.unregisterKernel(name, backendName);
    // setupFunc/disposeFunc stay: a re-initialised backend still wires up the original.
    tf.registerKernel({ ...(config ?? {}), kernelName: name, backendName, kernelFunc });
  }
  return kernels.map(([name]) => name);
}

/** Puts back what registerConvKernels replaced (or removes what it added). Returns the names. */
export function unregisterConvKernels(backendName: string): string[] {
  const originals = ORIGINALS.get(backendName);
  if (!originals) return [];
  const done: string[] = [];
  for (const [name, config] of originals) {
    if (!isOurs(tf.getKernel(name, backendName))) continue;
    tf.unregisterKernel(name, backendName);
    if (config) tf.registerKernel(config);
    done.push(name);
  }
  ORIGINALS.delete(backendName);
  return done;
}
