import * as tf from '@tensorflow/tfjs';
import { MnistError, shown } from './messages';
import { Normalization } from './dataset';
import { buildModel } from './engine/spec';
import { ACTIVATIONS, Activation, LayerSpec } from './engine/types';


export interface MlpOptions {
  inputSize: number;
  hidden: number[];
  activation: Activation;
  classes: number;
  seed: number;
}

/** What travels with a model: enough to use, save and explain it without the flow that made it. */
export interface ModelMeta {
  classes: string[];
  inputShape: [number, number];
  normalization: Normalization | null;
  architecture?: MlpOptions;
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
  const layers: LayerSpec[] = [
    ...opts.hidden.map((units) => ({ kind: 'dense' as const, units, activation: opts.activation })),
    { kind: 'dense', units: opts.classes, activation: 'linear' },
  ];
  return buildModel({ inputShape: [opts.inputSize, 1, 1], layers }, opts.seed);
}

/** Floats one sample occupies across a model: its input and every layer's output. */
export function activationsPerSample(model: tf.LayersModel): number {
  const size = (shape: unknown[]) => shape.slice(1).reduce<number>((a, d) => a * Number(d), 1);
  return size(model.inputs[0].shape) + model.layers.reduce((sum, l) => sum + size(l.outputShape as unknown[]), 0);
}

export function parameterCount(model: tf.LayersModel): number {
  return model.countParams();
}

export function describe(model: tf.LayersModel): { layers: string[]; parameters: number; inputSize: number; outputs: number } {
  const shape = model.inputs[0].shape;
  return {
    layers: model.layers.map((l) => {
      const cfg = l.getConfig() as { units?: number; activation?: string };
      return cfg.units !== undefined ? `${l.getClassName()}(${cfg.units}, ${cfg.activation})` : l.getClassName();
    }),
    parameters: model.countParams(),
    inputSize: Number(shape[shape.length - 1]),
    outputs: Number(model.outputs[0].shape[model.outputs[0].shape.length - 1]),
  };
}
