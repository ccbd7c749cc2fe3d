// A ModelSpec as ONNX ops: each layer's forward pass, its hand-written backward pass, the losses
// and the optimizer updates, checked against tfjs in test/native.spec.ts. The training step
// (native.ts) and the inference export (onnx-export.ts) both build on these.
//
// Tensors are NCHW inside the graph (ONNX's Conv and MaxPool layout); weights convert from and to
// tfjs's layout at the boundary (ParamInfo.toOnnx / toTfjs), so no transposes run per step.
import type { Activation } from './types';
import { MnistError } from '../messages';
import type { LossName, OptimizerName } from './types';
import { AttrValue, Graph } from './onnx';
import type { LayerSpec, ModelSpec } from './types';

export const NATIVE_ACTIVATIONS: Activation[] = ['relu', 'tanh', 'sigmoid', 'elu', 'selu', 'linear'];

// tfjs's selu constants (tfjs-core selu_util.ts): y = scale * x for x > 0, scaleAlpha * (e^x - 1) otherwise.
const SELU_SCALE = 1.0507009873554805;
const SELU_SCALEALPHA = 1.7580993408473768;

/** One weight tensor: its tfjs and ONNX shapes and the conversions between the two layouts. */
export interface ParamInfo {
  tfjsShape: number[];
  onnxShape: number[];
  toOnnx(w: Float32Array): Float32Array;
  toTfjs(w: Float32Array): Float32Array;
}

/** A layer's per-sample output: flat [features], or spatial [channels, height, width]. */
type Shape = { flat: number; from?: [number, number, number] } | { chw: [number, number, number] };

/**
 * What the optimizer makes of a weight's gradient g: scale * g + beta * add. A layer folds it into
 * the Gemm that computes g (alpha, beta, C) where it can, saving passes over the largest tensors:
 * plain SGD asks for w - lr * g (the new weight), momentum for lr * g + momentum * u.
 */
export interface GradSink { scale: number; add?: string; beta?: number }

function sink(g: Graph, grad: string, s: GradSink): string {
  const scaled = s.scale === 1 ? grad : g.op('Mul', [grad, g.scalar(s.scale)]);
  if (!s.add) return scaled;
  return g.op('Add', [s.beta === undefined || s.beta === 1 ? s.add : g.op('Mul', [s.add, g.scalar(s.beta)]), scaled]);
}

/** The first layer's real input is scale * x - shift (the normalization of raw pixel values). */
export interface InputAffine { scale: number; shift: number }

interface Layer {
  readonly params: ParamInfo[];
  /** Whether forward/backward accept an InputAffine (as the first layer) instead of normalized input. */
  readonly foldsInput?: boolean;
  /** `training` adds what the backward pass needs (dropout masks); inference skips it. */
  forward(g: Graph, x: string, w: string[], training: boolean, affine?: InputAffine): { y: string; saved: string[] };
  /** dx is null when not asked for (the first layer); grads[i] is sinks[i] applied to weight i's gradient. */
  backward(g: Graph, dy: string, saved: string[], w: string[], needDx: boolean, sinks: GradSink[], affine?: InputAffine): { dx: string | null; grads: string[] };
}

export interface Compiled {
  layers: Layer[];
  params: ParamInfo[];
  /** per-sample input: rows*cols*channels flat values for a dense-first model, else [C, H, W] */
  input: Shape;
  classes: number;
}

const same = (w: Float32Array) => w;

function activate(g: Graph, act: Activation, z: string): string {
  switch (act) {
    case 'relu': return g.op('Relu', [z]);
    case 'tanh': return g.op('Tanh', [z]);
    case 'sigmoid': return g.op('Sigmoid', [z]);
    case 'elu': return g.op('Elu', [z], { alpha: { float: 1 } });
    case 'selu': return g.op('Selu', [z], { alpha: { float: SELU_SCALEALPHA / SELU_SCALE }, gamma: { float: SELU_SCALE } });
    case 'linear': return z;
  }
}

/** dL/dz from dL/dy for y = act(z), in tfjs's gradient forms (the relu and selu masks are z > 0). */
function activationGrad(g: Graph, act: Activation, dy: string, z: string, y: string): string {
  const zero = () => g.scalar(0);
  const one = () => g.scalar(1);
  switch (act) {
    // Sign(relu(z)) is exactly the 0/1 mask z > 0; Mul is much faster than Where on big tensors.
    case 'relu': return g.op('Mul', [dy, g.op('Sign', [y])]);
    case 'tanh': return g.op('Mul', [dy, g.op('Sub', [one(), g.op('Mul', [y, y])])]);
    case 'sigmoid': return g.op('Mul', [dy, g.op('Mul', [y, g.op('Sub', [one(), y])])]);
    // tfjs EluGrad: dy where y >= 0, else dy * (y + 1)
    case 'elu': return g.op('Where', [g.op('GreaterOrEqual', [y, zero()]), dy, g.op('Mul', [dy, g.op('Add', [y, one()])])]);
    case 'selu': return g.op('Where', [
      g.op('Greater', [z, zero()]),
      g.op('Mul', [dy, g.scalar(SELU_SCALE)]),
      g.op('Mul', [g.op('Mul', [dy, g.scalar(SELU_SCALEALPHA)]), g.op('Exp', [z])]),
    ]);
    case 'linear': return dy;
  }
}

/** Row permutation of a dense kernel that reads a flattened [C,H,W]: tfjs rows are (h, w, c), ONNX rows (c, h, w). */
function flattenPermutation([c, h, w]: [number, number, number]): Int32Array {
  const perm = new Int32Array(c * h * w); // perm[onnxRow] = tfjsRow
  for (let ci = 0; ci < c; ci++) for (let hi = 0; hi < h; hi++) for (let wi = 0; wi < w; wi++) perm[(ci * h + hi) * w + wi] = (hi * w + wi) * c + ci;
  return perm;
}

function permuteRows(src: Float32Array, cols: number, perm: Int32Array, inverse: boolean): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < perm.length; r++) {
    const [to, from] = inverse ? [perm[r], r] : [r, perm[r]];
    out.set(src.subarray(from * cols, (from + 1) * cols), to * cols);
  }
  return out;
}

/** [rows, cols] <-> [cols, rows] */
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

/**
 * The kernel is kept as [units, inputs] (tfjs's [inputs, units] transposed, PyTorch's layout):
 * then the forward Gemm transposes the small kernel, not the batch, and the weight gradient's
 * Gemm transposes dz [batch, units], the smaller of its two operands (measured faster).
 */
function dense(units: number, act: Activation, input: Shape): Layer {
  if (!('flat' in input)) throw new MnistError('native-unsupported', { what: 'a dense layer on a conv2d or maxpool2d output without a flatten layer between' });
  const inputs = input.flat;
  const perm = input.from ? flattenPermutation(input.from) : null;
  const kernel: ParamInfo = {
    tfjsShape: [inputs, units],
    onnxShape: [units, inputs],
    toOnnx: (w) => transpose(perm ? permuteRows(w, units, perm, false) : w, inputs, units),
    toTfjs: (w) => { const t = transpose(w, units, inputs); return perm ? permuteRows(t, units, perm, true) : t; },
  };
  const bias: ParamInfo = { tfjsShape: [units], onnxShape: [units], toOnnx: same, toTfjs: same };
  return {
    params: [kernel, bias],
    foldsInput: true,
    forward(g, x, [k, b], _training, affine) {
      // With an affine input: (a x - t) W^T + b = a (x W^T) + (b - t * rowsum(W)), so the batch is
      // never normalized element by element.
      const z = affine
        ? g.op('Gemm', [x, k, g.op('Sub', [b, g.op('Mul', [g.op('ReduceSum', [k, g.ints([1])], { keepdims: 0 }), g.scalar(affine.shift)])])], { transB: 1, alpha: { float: affine.scale } })
        : g.op('Gemm', [x, k, b], { transB: 1 });
      const y = activate(g, act, z);
      return { y, saved: [x, z, y] };
    },
    backward(g, dy, [x, z, y], [k], needDx, [sk, sb], affine) {
      const dz = activationGrad(g, act, dy, z, y);
      const db = g.op('ReduceSum', [dz, g.ints([0])], { keepdims: 0 });
      // dW^T = dz^T (a x - t) = a dz^T x - t db (each row); the sink's scale * dW^T + beta * add
      // is one Gemm: alpha = scale * a, beta, C = add - (scale * t / beta) db (a column broadcast).
      const scale = sk.scale * (affine ? affine.scale : 1);
      const beta = sk.add ? sk.beta ?? 1 : 1;
      let c = sk.add;
      if (affine) {
        const column = g.op('Mul', [g.op('Unsqueeze', [db, g.ints([1])]), g.scalar((sk.scale * affine.shift) / beta)]);
        c = c ? g.op('Sub', [c, column]) : g.op('Neg', [column]);
      }
      const gemm: Record<string, AttrValue> = { transA: 1 };
      if (scale !== 1) gemm.alpha = { float: scale };
      if (c && beta !== 1) gemm.beta = { float: beta };
      return {
        dx: needDx ? g.op('Gemm', [dz, k]) : null,
        grads: [g.op('Gemm', c ? [dz, x, c] : [dz, x], gemm), sink(g, db, sb)],
      };
    },
  };
}

/** tfjs [kh, kw, in, out] <-> ONNX [out, in, kh, kw] */
function convKernel(k: number, cin: number, cout: number): ParamInfo {
  return {
    tfjsShape: [k, k, cin, cout],
    onnxShape: [cout, cin, k, k],
    toOnnx(w) {
      const out = new Float32Array(w.length);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) {
        out[((o * cin + c) * k + i) * k + j] = w[((i * k + j) * cin + c) * cout + o];
      }
      return out;
    },
    toTfjs(w) {
      const out = new Float32Array(w.length);
      for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) {
        out[((i * k + j) * cin + c) * cout + o] = w[((o * cin + c) * k + i) * k + j];
      }
      return out;
    },
  };
}

/**
 * `pooledRelu`: a max-pool follows this relu conv and applies the relu mask at its own (quarter)
 * resolution, where it is the same mask: the pool routes each gradient to its window's maximum,
 * which is positive exactly when the pooled value is. Two passes over the largest tensor saved.
 */
function conv2d(filters: number, size: number, act: Activation, input: Shape, pooledRelu: boolean): { layer: Layer; out: Shape } {
  if (!('chw' in input)) throw new MnistError('native-unsupported', { what: 'a conv2d layer after a flatten or dense layer' });
  const [c, h, w] = input.chw;
  if (size > h || size > w) throw new MnistError('native-unsupported', { what: `a ${size}x${size} convolution of a ${h}x${w} input` });
  const bias: ParamInfo = { tfjsShape: [filters], onnxShape: [filters], toOnnx: same, toTfjs: same };
  return {
    out: { chw: [filters, h - size + 1, w - size + 1] },
    layer: {
      params: [convKernel(size, c, filters), bias],
      forward(g, x, [k, b]) {
        const z = g.op('Conv', [x, k, b], { kernel_shape: [size, size] });
        const y = activate(g, act, z);
        return { y, saved: [x, z, y] };
      },
      backward(g, dy, [x, z, y], [k], needDx, [sk, sb]) {
        const dz = pooledRelu ? dy : activationGrad(g, act, dy, z, y);
        // dW[f,c,i,j] = sum over n,p,q of dz[n,f,p,q] * x[n,c,p+i,q+j]: per sample, dz as [F, H'*W']
        // times the patches of x (im2col: k*k slices stacked on the channel axis) as [H'*W', k*k*C],
        // summed over the batch. Measured faster than one Gemm over transposed tensors and than a Conv
        // with the batch as channels (a skinny Gemm per channel).
        const [ho, wo] = [h - size + 1, w - size + 1];
        const patches: string[] = [];
        for (let i = 0; i < size; i++) {
          for (let j = 0; j < size; j++) patches.push(g.op('Slice', [x, g.ints([i, j]), g.ints([i + ho, j + wo]), g.ints([2, 3])]));
        }
        const cols = g.op('Reshape', [g.op('Concat', patches, { axis: 1 }), g.ints([0, size * size * c, ho * wo])]);
        const perSample = g.op('MatMul', [g.op('Reshape', [dz, g.ints([0, filters, ho * wo])]), g.op('Transpose', [cols], { perm: [0, 2, 1] })]);
        const dkt = g.op('ReduceSum', [perSample, g.ints([0])], { keepdims: 0 }); // [F, (i, j, c)]
        const dk = g.op('Transpose', [g.op('Reshape', [dkt, g.ints([filters, size, size, c])])], { perm: [0, 3, 1, 2] });
        return {
          dx: needDx ? g.op('ConvTranspose', [dz, k], { kernel_shape: [size, size] }) : null,
          grads: [sink(g, dk, sk), sink(g, g.op('ReduceSum', [dz, g.ints([0, 2, 3])], { keepdims: 0 }), sb)],
        };
      },
    },
  };
}

/** `afterRelu`: the layer before is a relu conv that leaves its relu mask to this pool (see conv2d). */
function maxpool2d(size: number, input: Shape, afterRelu: boolean): { layer: Layer; out: Shape } {
  if (!('chw' in input)) throw new MnistError('native-unsupported', { what: 'a maxpool2d layer after a flatten or dense layer' });
  const [c, h, w] = input.chw;
  if (size > h || size > w) throw new MnistError('native-unsupported', { what: `a ${size}x${size} max-pool of a ${h}x${w} input` });
  const attrs = { kernel_shape: [size, size], strides: [size, size] };
  return {
    out: { chw: [c, Math.floor(h / size), Math.floor(w / size)] },
    layer: {
      params: [],
      forward(g, x, _w, training) {
        if (!training) return { y: g.op('MaxPool', [x], attrs), saved: [] };
        const [y, indices] = g.opN('MaxPool', [x], 2, attrs);
        return { y, saved: [x, indices, y] };
      },
      backward(g, dy, [x, indices, y]) {
        const masked = afterRelu ? g.op('Mul', [dy, g.op('Sign', [y])]) : dy;
        return { dx: g.op('MaxUnpool', [masked, indices, g.op('Shape', [x])], attrs), grads: [] };
      },
    },
  };
}

function flatten(input: Shape): { layer: Layer; out: Shape } {
  const out: Shape = 'chw' in input ? { flat: input.chw[0] * input.chw[1] * input.chw[2], from: input.chw } : input;
  return {
    out,
    layer: {
      params: [],
      forward(g, x) {
        return 'chw' in input ? { y: g.op('Flatten', [x], { axis: 1 }), saved: [x] } : { y: x, saved: [] };
      },
      backward(g, dy, [x]) {
        return { dx: x ? g.op('Reshape', [dy, g.op('Shape', [x])]) : dy, grads: [] };
      },
    },
  };
}

/**
 * tfjs's dropout: in training, zero each value with probability `rate` and scale the rest by
 * 1 / (1 - rate). Built from RandomUniformLike rather than ONNX Dropout: ONNX Runtime's optimizer
 * removes a Dropout whose mask output is unused (as in a first layer), training mode or not.
 */
function dropout(rate: number): Layer {
  return {
    params: [],
    forward(g, x, _w, training) {
      if (!training || rate === 0) return { y: x, saved: [] };
      const keep = g.op('Cast', [g.op('GreaterOrEqual', [g.op('RandomUniformLike', [x]), g.scalar(rate)])], { to: 1 });
      const scaledMask = g.op('Mul', [keep, g.scalar(1 / (1 - rate))]);
      return { y: g.op('Mul', [x, scaledMask]), saved: [scaledMask] };
    },
    backward(g, dy, [scaledMask]) {
      return { dx: scaledMask ? g.op('Mul', [dy, scaledMask]) : dy, grads: [] };
    },
  };
}

/** Checks a spec against what the native graphs can express; throws MnistError('native-unsupported') otherwise. */
export function compile(spec: ModelSpec): Compiled {
  const [rows, cols, channels] = spec.inputShape;
  const first = spec.layers[0];
  if (!first) throw new MnistError('native-unsupported', { what: 'a model without layers' });
  const spatial = spec.layers.some((l) => l.kind === 'conv2d' || l.kind === 'maxpool2d');
  if (spatial && channels !== 1) throw new MnistError('native-unsupported', { what: `convolutions of ${channels}-channel images` });
  const input: Shape = spatial ? { chw: [channels, rows, cols] } : { flat: rows * cols * channels };
  let shape = input;
  const layers: Layer[] = [];
  const pooledRelu = (i: number) => {
    const [l, next] = [spec.layers[i], spec.layers[i + 1]];
    return l?.kind === 'conv2d' && l.activation === 'relu' && next?.kind === 'maxpool2d';
  };
  spec.layers.forEach((l: LayerSpec, i) => {
    if ((l.kind === 'dense' || l.kind === 'conv2d') && !NATIVE_ACTIVATIONS.includes(l.activation)) {
      throw new MnistError('native-unsupported', { what: `the activation ${l.activation}` });
    }
    switch (l.kind) {
      case 'dense': {
        layers.push(dense(l.units, l.activation, shape));
        shape = { flat: l.units };
        break;
      }
      case 'conv2d': { const r = conv2d(l.filters, l.kernelSize, l.activation, shape, pooledRelu(i)); layers.push(r.layer); shape = r.out; break; }
      case 'maxpool2d': { const r = maxpool2d(l.poolSize, shape, pooledRelu(i - 1)); layers.push(r.layer); shape = r.out; break; }
      case 'flatten': { const r = flatten(shape); layers.push(r.layer); shape = r.out; break; }
      case 'dropout': {
        if (!(l.rate >= 0 && l.rate < 1)) throw new MnistError('native-unsupported', { what: `a dropout rate of ${l.rate}` });
        layers.push(dropout(l.rate));
        break;
      }
      default: throw new MnistError('native-unsupported', { what: `layer ${(l as { kind: string }).kind}` });
    }
  });
  const last = spec.layers[spec.layers.length - 1];
  if (last.kind !== 'dense' || last.activation !== 'linear' || !('flat' in shape)) {
    throw new MnistError('native-unsupported', { what: 'a model whose last layer is not a dense layer with linear outputs (logits)' });
  }
  return { layers, params: layers.flatMap((l) => l.params), input, classes: shape.flat };
}

/** Splits the flat weight list into per-layer slices. */
function perLayer<T>(c: Compiled, all: T[]): T[][] {
  let at = 0;
  return c.layers.map((l) => { const s = all.slice(at, at + l.params.length); at += l.params.length; return s; });
}

/** Logits of a batch x (flat [N, D] or [N, C, H, W]); `affine`: x is raw, see InputAffine (needs foldsInput). */
export function forward(g: Graph, c: Compiled, x: string, weights: string[], training: boolean, affine?: InputAffine): { logits: string; saved: string[][] } {
  if (affine && !c.layers[0].foldsInput) throw new Error('graph: the first layer cannot take an affine input');
  const w = perLayer(c, weights);
  const saved: string[][] = [];
  let y = x;
  c.layers.forEach((l, i) => { const r = l.forward(g, y, w[i], training, i === 0 ? affine : undefined); y = r.y; saved.push(r.saved); });
  return { logits: y, saved };
}

/** Every weight's gradient with its sink applied (see GradSink), in the flat weight order, from dL/dlogits. */
export function backward(g: Graph, c: Compiled, dLogits: string, saved: string[][], weights: string[], sinks: GradSink[], affine?: InputAffine): string[] {
  const w = perLayer(c, weights);
  const s = perLayer(c, sinks);
  const grads: string[][] = [];
  let dy = dLogits;
  for (let i = c.layers.length - 1; i >= 0; i--) {
    // No layer before a weightless head needs dx; the first layer never does.
    const needDx = c.layers.slice(0, i).some((l) => l.params.length > 0);
    const r = c.layers[i].backward(g, dy, saved[i], w[i], needDx, s[i], i === 0 ? affine : undefined);
    grads[i] = r.grads;
    if (!needDx) break;
    dy = r.dx as string;
  }
  return c.layers.flatMap((_l, i) => grads[i] ?? []);
}

/** The batch's mean loss (tfjs's reduction) and its gradient with respect to the logits. */
export function loss(g: Graph, name: LossName, logits: string, oneHot: string): { loss: string; dLogits: string } {
  if (name === 'mse') {
    // tf.losses.meanSquaredError: mean over batch * classes
    const diff = g.op('Sub', [logits, oneHot]);
    const count = g.op('Cast', [g.op('Size', [logits])], { to: 1 });
    return {
      loss: g.op('ReduceMean', [g.op('Mul', [diff, diff])], { keepdims: 0 }),
      dLogits: g.op('Mul', [diff, g.op('Div', [g.scalar(2), count])]),
    };
  }
  // tf.losses.softmaxCrossEntropy: -sum(onehot * logSoftmax) per sample, mean over the batch
  const logp = g.op('LogSoftmax', [logits], { axis: -1 });
  const n = g.op('Cast', [g.op('Shape', [logits], { start: 0, end: 1 })], { to: 1 });
  const perSample = g.op('ReduceSum', [g.op('Mul', [oneHot, logp]), g.ints([1])], { keepdims: 0 });
  return {
    loss: g.op('Neg', [g.op('ReduceMean', [perSample], { keepdims: 0 })]),
    dLogits: g.op('Div', [g.op('Sub', [g.op('Exp', [logp]), oneHot]), n]),
  };
}

export interface OptimizerSpec { optimizer: OptimizerName; learningRate: number; momentum: number }

export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };

/** Optimizer state tensors per weight: none (plain SGD), a velocity (momentum) or two moments (Adam). */
export function stateSlots(o: OptimizerSpec): number {
  return o.optimizer === 'adam' ? 2 : o.momentum > 0 ? 1 : 0;
}

/**
 * One optimizer step in tfjs's forms, in two parts: sinks() says what each weight's gradient
 * should come out as, apply() finishes the update from those. `state` holds stateSlots() names per
 * weight, weight by weight. Momentum keeps u = lr * velocity (tfjs keeps the velocity): the same
 * update, with lr * g + momentum * u folded into the gradient's Gemm.
 */
export function optimizerStep(g: Graph, o: OptimizerSpec, weights: string[], state: string[]): {
  sinks: GradSink[];
  /** `adam` is a [2] tensor of (1 - beta1^t, 1 - beta2^t), Adam's bias corrections for this step */
  apply(grads: string[], adam?: string): { weights: string[]; state: string[] };
} {
  if (o.optimizer === 'adam') {
    return {
      sinks: weights.map(() => ({ scale: 1 })),
      apply(grads, adam) {
        const { beta1, beta2, epsilon } = ADAM;
        const c1 = g.op('Gather', [adam as string, g.constant('int64', [], [0])]);
        const c2 = g.op('Gather', [adam as string, g.constant('int64', [], [1])]);
        const newWeights: string[] = [];
        const newState: string[] = [];
        weights.forEach((w, i) => {
          const [m, v] = [state[2 * i], state[2 * i + 1]];
          const m1 = g.op('Add', [g.op('Mul', [m, g.scalar(beta1)]), g.op('Mul', [grads[i], g.scalar(1 - beta1)])]);
          const v1 = g.op('Add', [g.op('Mul', [v, g.scalar(beta2)]), g.op('Mul', [g.op('Mul', [grads[i], grads[i]]), g.scalar(1 - beta2)])]);
          const step = g.op('Div', [g.op('Div', [m1, c1]), g.op('Add', [g.op('Sqrt', [g.op('Div', [v1, c2])]), g.scalar(epsilon)])]);
          newWeights.push(g.op('Add', [g.op('Mul', [step, g.scalar(-o.learningRate)]), w]));
          newState.push(m1, v1);
        });
        return { weights: newWeights, state: newState };
      },
    };
  }
  if (o.momentum > 0) {
    return {
      sinks: weights.map((_w, i) => ({ scale: o.learningRate, add: state[i], beta: o.momentum })),
      apply: (u1) => ({ weights: weights.map((w, i) => g.op('Sub', [w, u1[i]])), state: u1 }),
    };
  }
  return {
    sinks: weights.map((w) => ({ scale: -o.learningRate, add: w, beta: 1 })),
    apply: (w1) => ({ weights: w1, state: [] }),
  };
}
