import * as tf from '@tensorflow/tfjs';
import { MnistError, shown } from './messages';
import { Normalization } from './dataset';
import { buildModel, shapes } from './engine/spec';
import { ACTIVATIONS, Activation, LayerSpec, ModelSpec } from './engine/types';

export interface MlpOptions {
  inputSize: number;
  hidden: number[];
  activation: Activation;
  classes: number;
  seed: number;
}

/** The convolutional network: blocks of conv (valid, stride 1) + max-pool 2, then dense layers. */
export interface CnnOptions {
  inputShape: [number, number];
  /** filters of each conv block, e.g. [32, 64] */
  filters: number[];
  kernelSize: number;
  /** hidden dense layers after the blocks, e.g. [128] */
  dense: number[];
  /** dropout rate before each dense layer (0 = none) */
  dropout: number;
  activation: Activation;
  classes: number;
  seed: number;
}

/** What travels with a model: enough to use, save and explain it without the flow that made it. */
export interface ModelMeta {
  classes: string[];
  inputShape: [number, number];
  normalization: Normalization | null;
  architecture?: ({ kind: 'mlp' } & MlpOptions) | ({ kind: 'cnn' } & CnnOptions);
  training?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
}

export interface ModelEntry {
  model: tf.LayersModel;
  meta: ModelMeta;
}

/** Deeper MLPs do not train with plain SGD here anyway; the bound keeps a typo from building 5000 layers. */
export const MAX_HIDDEN_LAYERS = 16;
export const MAX_UNITS = 8192;

/** "256,64" or [256, 64] -> [256, 64], with a clear error for anything else. */
export function parseHidden(spec: unknown): number[] {
  const parts = Array.isArray(spec) ? spec : String(spec ?? '').split(/[,\s]+/).filter(Boolean);
  const sizes = parts.map(Number);
  if (sizes.length > MAX_HIDDEN_LAYERS || !sizes.every((n) => Number.isInteger(n) && n > 0 && n <= MAX_UNITS)) {
    throw new MnistError('hidden-invalid', { hidden: shown(parts.join(','), 60), layers: MAX_HIDDEN_LAYERS, units: MAX_UNITS });
  }
  return sizes;
}

/** The tutorial's network: Linear layers with the activation between, logits out (PyTorch's initialisation). */
export function createMlp(opts: MlpOptions): tf.Sequential {
  if (!ACTIVATIONS.includes(opts.activation)) throw new MnistError('option-enum', { name: 'activation', value: shown(opts.activation), values: ACTIVATIONS.join(', ') });
  return buildModel(mlpSpec(opts), opts.seed);
}

/** The spec of an MLP (for the memory budget before it is built). */
export function mlpSpec(opts: MlpOptions): ModelSpec {
  return { inputShape: [opts.inputSize, 1, 1], layers: [...opts.hidden.map((units) => ({ kind: 'dense' as const, units, activation: opts.activation })), { kind: 'dense', units: opts.classes, activation: 'linear' }] };
}

/** Floats one sample occupies across a model: its input and every layer's output. */
export function activationsPerSample(model: tf.LayersModel): number {
  const size = (shape: unknown[]) => shape.slice(1).reduce<number>((a, d) => a * Number(d), 1);
  return size(model.inputs[0].shape) + model.layers.reduce((sum, l) => sum + size(l.outputShape as unknown[]), 0);
}

/** The spec of a CNN, its output shapes checked: each block must leave an image of at least 1x1. */
export function cnnSpec(opts: CnnOptions): ModelSpec {
  const layers: LayerSpec[] = [];
  for (const filters of opts.filters) {
    layers.push({ kind: 'conv2d', filters, kernelSize: opts.kernelSize, activation: opts.activation }, { kind: 'maxpool2d', poolSize: 2 });
  }
  layers.push({ kind: 'flatten' });
  for (const units of opts.dense) {
    if (opts.dropout > 0) layers.push({ kind: 'dropout', rate: opts.dropout });
    layers.push({ kind: 'dense', units, activation: opts.activation });
  }
  if (opts.dropout > 0) layers.push({ kind: 'dropout', rate: opts.dropout });
  layers.push({ kind: 'dense', units: opts.classes, activation: 'linear' });
  const spec: ModelSpec = { inputShape: [opts.inputShape[0], opts.inputShape[1], 1], layers };
  const small = shapes(spec).find((s) => s.length === 3 && (s[0] < 1 || s[1] < 1));
  if (small) throw new MnistError('cnn-too-small', { rows: opts.inputShape[0], cols: opts.inputShape[1], blocks: opts.filters.length, kernel: opts.kernelSize });
  return spec;
}

export function createCnn(opts: CnnOptions): tf.Sequential {
  return buildModel(cnnSpec(opts), opts.seed);
}


export function parameterCount(model: tf.LayersModel): number {
  return model.countParams();
}

/** Values one input of a model holds: 784 for [null,784] and for [null,28,28,1] alike. */
export function inputSize(model: tf.LayersModel): number {
  return model.inputs[0].shape.slice(1).reduce<number>((a, d) => a * Number(d), 1);
}

export function describe(model: tf.LayersModel): { layers: string[]; parameters: number; inputSize: number; outputs: number } {
  return {
    layers: model.layers.map((l) => {
      const cfg = l.getConfig() as { units?: number; activation?: string; filters?: number; kernelSize?: number[]; poolSize?: number[]; rate?: number };
      const name = l.getClassName();
      if (cfg.units !== undefined) return `${name}(${cfg.units}, ${cfg.activation})`;
      if (cfg.filters !== undefined) return `${name}(${cfg.filters}, ${cfg.kernelSize?.join('x')}, ${cfg.activation})`;
      if (cfg.poolSize !== undefined) return `${name}(${cfg.poolSize.join('x')})`;
      if (cfg.rate !== undefined) return `${name}(${cfg.rate})`;
      return name;
    }),
    parameters: model.countParams(),
    inputSize: inputSize(model),
    outputs: Number(model.outputs[0].shape[model.outputs[0].shape.length - 1]),
  };
}
