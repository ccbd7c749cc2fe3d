import * as tf from '@tensorflow/tfjs';
import { SplitView, imagesTensor } from './dataset';
import { MnistError, Params } from './messages';
import { permutation, rng } from './random';

export type OptimizerName = 'sgd' | 'adam';
export type LossName = 'mse' | 'crossentropy';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  momentum: number;
  optimizer: OptimizerName;
  loss: LossName;
  shuffle: boolean;
  seed: number;
}

export const TRAIN_DEFAULTS: TrainOptions = {
  epochs: 3, batchSize: 512, learningRate: 0.005, momentum: 0.9, optimizer: 'sgd', loss: 'mse', shuffle: true, seed: 0,
};

export interface Progress { epoch: number; epochs: number; batch: number; batches: number; loss: number; samplesPerSecond: number }
export interface EpochRecord { epoch: number; loss: number; seconds: number }
export interface History { loss: number[]; epochs: EpochRecord[]; batchesPerEpoch: number }
export interface TrainResult {
  history: History;
  seconds: number;
  samples: number;
  samplesPerSecond: number;
  finalLoss: number;
  stopped: boolean;
}

export interface TrainHooks {
  onBatch?: (p: Progress) => void;
  onEpoch?: (e: EpochRecord, epochs: number) => void;
  signal?: AbortSignal;
  /** Checked between batches: false when the model was freed under us (its node closed). */
  modelAlive?: () => boolean;
}

function makeOptimizer(o: TrainOptions): tf.Optimizer {
  if (o.optimizer === 'adam') return tf.train.adam(o.learningRate);
  return o.momentum > 0 ? tf.train.momentum(o.learningRate, o.momentum) : tf.train.sgd(o.learningRate);
}

/**
 * optimizer.dispose() leaves its own scalars (learning-rate and momentum constants) behind;
 * a flow that trains for months would leak them on every run.
 */
export function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  for (const v of Object.values(opt)) if (v instanceof tf.Tensor && !v.isDisposed) v.dispose();
}

export function lossFn(name: LossName, oneHot: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return name === 'mse'
    ? tf.losses.meanSquaredError(oneHot, logits) as tf.Scalar
    : tf.losses.softmaxCrossEntropy(oneHot, logits) as tf.Scalar;
}

const nextTick = () => new Promise<void>((r) => setImmediate(r));

/**
 * A loss this many times the first batch's counts as diverged even while finite: a too-large
 * step (Adam especially) can throw the weights far off without ever overflowing.
 */
const RUNAWAY = 1000;

function weightsFinite(model: tf.LayersModel): boolean {
  return tf.tidy(() => model.getWeights().every((w) => w.isFinite().all().dataSync()[0] === 1));
}

function snapshot(model: tf.LayersModel): tf.Tensor[] {
  return model.getWeights().map((w) => w.clone());
}

/**
 * Mini-batch training that keeps the split on the backend as one tensor and gathers each batch
 * by index there: no per-batch float copies in JS. Yields to the event loop between batches so
 * Node-RED stays responsive and a stop or redeploy is seen within one batch.
 */
export async function train(model: tf.LayersModel, view: SplitView, classes: number, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  const n = view.count;
  if (n === 0) throw new MnistError('split-empty');
  const batchSize = Math.min(options.batchSize, n);
  const batches = Math.ceil(n / batchSize);
  const history: History = { loss: [], epochs: [], batchesPerEpoch: batches };
  const xs = imagesTensor(view);
  const ys = tf.tensor1d(view.labels, 'int32');
  const optimizer = makeOptimizer(options);
  const started = Date.now();
  let samples = 0;
  let stopped = false;
  // The weights as they were when the current epoch began: a diverging epoch puts them back, so
  // the model is never left full of NaN (the error says so).
  let saved: tf.Tensor[] = [];
  let firstLoss: number | undefined;
  const diverged = (code: string, params: Params) => {
    model.setWeights(saved);
    return new MnistError(code, { ...params, lr: options.learningRate, suggested: Number((options.learningRate / 10).toPrecision(2)) });
  };
  try {
    for (let epoch = 1; epoch <= options.epochs && !stopped; epoch++) {
      for (const t of saved) t.dispose();
      saved = snapshot(model);
      const epochStart = Date.now();
      const order = options.shuffle ? permutation(n, rng(options.seed * 7919 + epoch)) : null;
      let epochLoss = 0;
      let seen = 0;
      for (let b = 0; b < batches; b++) {
        if (hooks.signal?.aborted) { stopped = true; break; }
        if (hooks.modelAlive && !hooks.modelAlive()) throw new MnistError('model-freed-training');
        const lo = b * batchSize;
        const hi = Math.min(lo + batchSize, n);
        const lossValue = tf.tidy(() => {
          const idx = order ? tf.tensor1d(order.subarray(lo, hi), 'int32') : null;
          const x = idx ? tf.gather(xs, idx) : xs.slice([lo, 0], [hi - lo, -1]);
          const y = tf.oneHot(idx ? tf.gather(ys, idx) : ys.slice([lo], [hi - lo]), classes).toFloat();
          const loss = optimizer.minimize(() => lossFn(options.loss, y, model.apply(x, { training: true }) as tf.Tensor), true) as tf.Scalar;
          return loss.dataSync()[0];
        });
        if (!Number.isFinite(lossValue)) throw diverged('diverged-loss', { value: lossValue, batch: b + 1, epoch });
        firstLoss ??= Math.max(lossValue, 1e-3);
        if (lossValue > RUNAWAY * firstLoss) {
          throw diverged('diverged-runaway', { from: firstLoss.toPrecision(3), to: lossValue.toPrecision(3), batch: b + 1, epoch });
        }
        history.loss.push(lossValue);
        epochLoss += lossValue * (hi - lo);
        seen += hi - lo;
        samples += hi - lo;
        hooks.onBatch?.({ epoch, epochs: options.epochs, batch: b + 1, batches, loss: lossValue, samplesPerSecond: samples / Math.max((Date.now() - started) / 1000, 1e-3) });
        await nextTick();
      }
      if (seen > 0) {
        // The last update of an epoch can overflow the weights without any loss showing it yet.
        if (!weightsFinite(model)) throw diverged('diverged-weights', { epoch });
        const record = { epoch, loss: epochLoss / seen, seconds: (Date.now() - epochStart) / 1000 };
        history.epochs.push(record);
        hooks.onEpoch?.(record, options.epochs);
      }
    }
  } finally {
    for (const t of saved) t.dispose();
    xs.dispose();
    ys.dispose();
    disposeOptimizer(optimizer);
  }
  const seconds = (Date.now() - started) / 1000;
  return {
    history,
    seconds,
    samples,
    samplesPerSecond: samples / Math.max(seconds, 1e-3),
    finalLoss: history.loss.length ? history.loss[history.loss.length - 1] : NaN,
    stopped,
  };
}
