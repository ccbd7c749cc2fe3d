// Each node's options are declared once, here: type, default, bounds and the msg property that
// may override it. Parsing, validation, the error texts and the per-message overrides all derive
// from these tables, and test/options.spec.ts keeps each editor's `defaults` equal to them.
import { DEFAULT_IMAGE_LIMITS, DEFAULT_MAX_IMAGES } from '../lib/image';
import { MnistError, shown } from '../lib/messages';
import { TRAIN_DEFAULTS } from '../lib/engine/types';

interface Base { msg?: string }
export type Option = Base & (
  | { type: 'int'; default: number; min: number; max: number }
  /** `open`: the minimum itself is not allowed (a learning rate must be above 0) */
  | { type: 'number'; default: number; min: number; max: number; open?: 'min' | 'max' }
  | { type: 'bool'; default: boolean }
  | { type: 'enum'; default: string; values: readonly string[] }
  | { type: 'string'; default: string }
);
export type Table = Record<string, Option>;

type Value<O extends Option> = O extends { type: 'bool' } ? boolean : O extends { type: 'int' | 'number' } ? number
  : O extends { type: 'enum'; values: readonly (infer V)[] } ? V : string;
export type Values<T extends Table> = { [K in keyof T]: Value<T[K]> };

const unset = (v: unknown) => v === undefined || v === null || v === '';

/** A msg property by dotted path ("train.epochs"), own properties only (no prototype tricks). */
export function msgValue(msg: Record<string, unknown>, path: string): unknown {
  let at: unknown = msg;
  for (const part of path.split('.')) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

/** One option from its raw value (editor strings, hand-written flows, messages). */
export function parseOption(name: string, o: Option, raw: unknown): number | boolean | string {
  if (unset(raw)) return o.default;
  const value = shown(raw);
  switch (o.type) {
    case 'int':
    case 'number': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw.trim()) : NaN;
      const lowOk = o.type === 'number' && o.open === 'min' ? n > o.min : n >= o.min;
      const highOk = o.type === 'number' && o.open === 'max' ? n < o.max : n <= o.max;
      if (Number.isFinite(n) && lowOk && highOk && (o.type === 'number' || Number.isInteger(n))) return n;
      const code = o.type === 'int' ? 'option-int' : o.open ? `option-number-open-${o.open}` : 'option-number';
      throw new MnistError(code, { name, value, min: o.min, max: o.max });
    }
    case 'bool':
      if (raw === true || raw === 'true') return true;
      if (raw === false || raw === 'false') return false;
      throw new MnistError('option-bool', { name, value });
    case 'enum':
      if (typeof raw === 'string' && o.values.includes(raw)) return raw;
      throw new MnistError('option-enum', { name, value, values: o.values.join(', ') });
    case 'string':
      if (typeof raw === 'string') return raw;
      throw new MnistError('option-string', { name, value });
  }
}

/**
 * All options of a node: the message's override (where the table names one) wins over the
 * node's configuration, which wins over the default (a blank field takes the default; NaN
 * stands for "automatic", e.g. a chart's width).
 */
export function readOptions<T extends Table>(table: T, config: Record<string, unknown>, msg?: Record<string, unknown>): Values<T> {
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(table)) {
    const fromMsg = o.msg && msg ? msgValue(msg, o.msg) : undefined;
    if (!unset(fromMsg)) out[name] = parseOption(`msg.${o.msg}`, o, fromMsg);
    else out[name] = parseOption(name, o, config[name]);
  }
  return out as Values<T>;
}

const SEED: Option = { type: 'int', default: 0, min: -2147483648, max: 2147483647 };

export const OPTIONS = {
  'mnist-dataset': {
    source: { type: 'enum', default: 'embedded', values: ['embedded', 'folder', 'url'] },
    folder: { type: 'string', default: '' },
    url: { type: 'string', default: '' },
    splits: { type: 'enum', default: 'both', values: ['both', 'train', 'test'] },
    limit: { type: 'int', default: 0, min: 0, max: 10_000_000, msg: 'limit' },
    shuffle: { type: 'bool', default: true },
    seed: SEED,
    classes: { type: 'string', default: '' },
    allowMsgPath: { type: 'bool', default: false },
    samples: { type: 'string', default: '' },
    samplesRepeat: { type: 'int', default: 10, min: 1, max: 1000 },
  },
  'mnist-samples': {
    folder: { type: 'string', default: 'mnist-samples' },
    classes: { type: 'string', default: '' },
    preprocess: { type: 'bool', default: true },
  },
  normalize: {
    mean: { type: 'number', default: 0.1307, min: -1000, max: 1000 },
    std: { type: 'number', default: 0.3081, min: 0, max: 1000, open: 'min' },
    fromData: { type: 'bool', default: false },
  },
  'mlp-model': {
    hidden: { type: 'string', default: '256,64' },
    activation: { type: 'enum', default: 'relu', values: ['relu', 'tanh', 'sigmoid', 'elu', 'selu', 'linear'] },
    seed: SEED,
  },
  'cnn-model': {
    filters: { type: 'string', default: '32,64' },
    kernelSize: { type: 'int', default: 3, min: 1, max: 9 },
    dense: { type: 'string', default: '128' },
    dropout: { type: 'number', default: 0.25, min: 0, max: 0.9 },
    activation: { type: 'enum', default: 'relu', values: ['relu', 'tanh', 'sigmoid', 'elu', 'selu', 'linear'] },
    seed: SEED,
  },
  'sgd-train': {
    optimizer: { type: 'enum', default: TRAIN_DEFAULTS.optimizer, values: ['sgd', 'adam'], msg: 'train.optimizer' },
    loss: { type: 'enum', default: TRAIN_DEFAULTS.loss, values: ['mse', 'crossentropy'], msg: 'train.loss' },
    learningRate: { type: 'number', default: TRAIN_DEFAULTS.learningRate, min: 0, max: 100, open: 'min', msg: 'train.learningRate' },
    momentum: { type: 'number', default: TRAIN_DEFAULTS.momentum, min: 0, max: 1, open: 'max', msg: 'train.momentum' },
    lrDecay: { type: 'number', default: 1, min: 0, max: 1, open: 'min', msg: 'train.lrDecay' },
    batchSize: { type: 'int', default: TRAIN_DEFAULTS.batchSize, min: 1, max: 65536, msg: 'train.batchSize' },
    epochs: { type: 'int', default: TRAIN_DEFAULTS.epochs, min: 1, max: 1000, msg: 'train.epochs' },
    shuffle: { type: 'bool', default: TRAIN_DEFAULTS.shuffle, msg: 'train.shuffle' },
    augment: { type: 'bool', default: false, msg: 'train.augment' },
    seed: { ...SEED, default: TRAIN_DEFAULTS.seed, msg: 'train.seed' },
    progressEvery: { type: 'int', default: 10, min: 0, max: 1_000_000 },
    validation: { type: 'enum', default: 'none', values: ['none', 'split', 'test'], msg: 'train.validation' },
    validationFraction: { type: 'number', default: 0.1, min: 0.01, max: 0.5, msg: 'train.validationFraction' },
    earlyStopping: { type: 'bool', default: false, msg: 'train.earlyStopping' },
    patience: { type: 'int', default: 3, min: 1, max: 100, msg: 'train.patience' },
  },
  evaluate: {
    split: { type: 'enum', default: 'test', values: ['test', 'train'] },
    loss: { type: 'enum', default: '', values: ['', 'mse', 'crossentropy'] },
  },
  predict: {
    modelFolder: { type: 'string', default: '' },
    threshold: { type: 'number', default: 0, min: 0, max: 1 },
    topK: { type: 'int', default: 3, min: 1, max: 256 },
    preprocess: { type: 'bool', default: true },
    mode: { type: 'enum', default: 'auto', values: ['auto', 'photo', 'drawing'] },
    digits: { type: 'enum', default: 'one', values: ['one', 'many'] },
    region: { type: 'bool', default: false },
    maxBytes: { type: 'int', default: DEFAULT_IMAGE_LIMITS.maxBytes, min: 1, max: 1 << 30 },
    maxPixels: { type: 'int', default: DEFAULT_IMAGE_LIMITS.maxPixels, min: 1, max: 268_402_689 },
    maxImages: { type: 'int', default: DEFAULT_MAX_IMAGES, min: 1, max: 100_000 },
    queue: { type: 'int', default: 100, min: 0, max: 100_000 },
  },
  plot: {
    kind: { type: 'enum', default: 'loss', values: ['loss', 'samples', 'predictions', 'confusion', 'perclass', 'mistakes'], msg: 'plot' },
    split: { type: 'enum', default: 'test', values: ['test', 'train'] },
    width: { type: 'int', default: NaN, min: 50, max: 4000 },
    height: { type: 'int', default: NaN, min: 50, max: 4000 },
    title: { type: 'string', default: '' },
    logScale: { type: 'bool', default: false },
    count: { type: 'int', default: 10, min: 1, max: 100 },
    format: { type: 'enum', default: 'png', values: ['png', 'svg', 'dataurl'] },
  },
  'model-save': {
    folder: { type: 'string', default: 'mnist-model' },
    onnx: { type: 'bool', default: false },
  },
} as const satisfies Record<string, Table>;
