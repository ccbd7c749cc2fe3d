// The training loop every engine shares: epochs of shuffled mini-batches, progress, stop,
// divergence (with the weights put back), history. Engines only run optimizer steps.
import { MnistError } from '../messages';
import { AUGMENT, augmentImages } from '../augment';
import { permutation, rng } from '../random';
import { EpochRecord, HeldOut, History, ModelSpec, Progress, TrainData, TrainEngine, TrainOptions, Weights } from './types';

export interface DriveHooks {
  onBatch?: (p: Progress) => void;
  onEpoch?: (e: EpochRecord, epochs: number) => void;
  /** Checked between runs of steps: a stop keeps what was learned so far. */
  stopped?: () => boolean;
}

export interface DriveResult {
  weights: Weights;
  history: History;
  seconds: number;
  samples: number;
  stopped: boolean;
  /** early stopping ended the training; the weights are those of `bestEpoch` */
  stoppedEarly?: boolean;
  bestEpoch?: number;
}

/** Held-out samples measured after every epoch, and early stopping on their loss. */
export interface Validation {
  held: HeldOut;
  /** stop once the held-out loss has not improved for this many epochs, keeping the best weights */
  patience?: number;
}

/** Batches handed to an engine per run: enough to amortise a native call, few enough to stop quickly. */
const STEPS_PER_RUN = 8;

/** Batch losses judged together: one odd batch (batch size 1, say) is not a divergence. */
const WINDOW = 20;
/**
 * A loss this many times the chance level (an untrained model's loss) counts as diverged while
 * still finite: a too-large step (Adam especially) throws the weights far off without overflow.
 * Training, continued or not, never gets near it.
 */
const RUNAWAY = 100;

/** The loss of a model that knows nothing: MSE against one-hot of all-zero logits, or log(classes). */
export function chanceLoss(loss: TrainOptions['loss'], classes: number): number {
  return loss === 'mse' ? 1 / classes : Math.log(classes);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const allFinite = (weights: Weights) => weights.every((w) => w.every(Number.isFinite));
const nextTick = () => new Promise<void>((r) => setImmediate(r));

export async function drive(
  engine: TrainEngine, spec: ModelSpec, weights: Weights, data: TrainData, options: TrainOptions, hooks: DriveHooks = {}, validation?: Validation,
): Promise<DriveResult> {
  const n = data.count;
  if (n === 0) throw new MnistError('split-empty');
  const batchSize = Math.min(options.batchSize, n);
  const batches = Math.ceil(n / batchSize);
  const history: History = { loss: [], epochs: [], batchesPerEpoch: batches };
  const runaway = RUNAWAY * chanceLoss(options.loss, data.classes);
  const recent: number[] = [];
  const session = await engine.open(spec, weights, data, options);
  const started = Date.now();
  let samples = 0;
  let stopped = false;
  let best: { loss: number; epoch: number; weights: Weights } | undefined;
  let stoppedEarly = false;
  let lr = options.learningRate;
  let augmented: Uint8Array | undefined;
  try {
    for (let epoch = 1; epoch <= options.epochs && !stopped; epoch++) {
      if (epoch > 1 && options.lrDecay !== undefined && options.lrDecay !== 1) {
        lr *= options.lrDecay;
        await session.setLearningRate(lr);
      }
      if (options.augment) {
        augmented = augmentImages(data.images, n, data.rows, data.cols, rng(options.seed * 104729 + epoch), AUGMENT, augmented);
        await session.setImages(augmented);
      }
      // The weights as they were when this epoch began: a diverging epoch puts them back, so the
      // model is never left full of NaN (the error says so).
      const saved = await session.getWeights();
      const diverged = (code: string, params: Record<string, number | string>) => new MnistError(code, {
        ...params, epoch, lr: Number(lr.toPrecision(3)), suggested: Number((lr / 10).toPrecision(2)),
      });
      const epochStart = Date.now();
      const order = options.shuffle ? permutation(n, rng(options.seed * 7919 + epoch)) : null;
      let epochLoss = 0;
      let seen = 0;
      for (let b = 0; b < batches && !stopped;) {
        if (hooks.stopped?.()) { stopped = true; break; }
        const run: Int32Array[] = [];
        for (; run.length < STEPS_PER_RUN && b < batches; b++) {
          const lo = b * batchSize;
          const hi = Math.min(lo + batchSize, n);
          run.push(order ? order.subarray(lo, hi) : Int32Array.from({ length: hi - lo }, (_, i) => lo + i));
        }
        const losses = await session.run(run);
        for (let i = 0; i < run.length; i++) {
          const loss = losses[i];
          const batch = b - run.length + i + 1;
          if (!Number.isFinite(loss)) {
            await session.setWeights(saved);
            throw diverged('diverged-loss', { value: loss, batch });
          }
          recent.push(loss);
          if (recent.length > WINDOW) recent.shift();
          const typical = median(recent);
          if (typical > runaway) {
            await session.setWeights(saved);
            throw diverged('diverged-runaway', { from: chanceLoss(options.loss, data.classes).toPrecision(3), to: typical.toPrecision(3), batch });
          }
          const size = run[i].length;
          history.loss.push(loss);
          epochLoss += loss * size;
          seen += size;
          samples += size;
          hooks.onBatch?.({ epoch, epochs: options.epochs, batch, batches, loss, samplesPerSecond: samples / Math.max((Date.now() - started) / 1000, 1e-3) });
        }
        await nextTick();
      }
      if (seen > 0) {
        // The last update of an epoch can overflow the weights without any loss showing it yet.
        if (!allFinite(await session.getWeights())) {
          await session.setWeights(saved);
          throw diverged('diverged-weights', {});
        }
        const record: EpochRecord = { epoch, loss: epochLoss / seen, seconds: (Date.now() - epochStart) / 1000, learningRate: lr };
        if (seen < n) record.partial = seen / n;
        if (validation) {
          const { held, patience } = validation;
          const v = await session.evaluate(held);
          let correct = 0;
          for (let i = 0; i < held.count; i++) if (v.predicted[i] === held.labels[i]) correct++;
          record.valLoss = v.loss;
          record.valAccuracy = correct / held.count;
          if (patience !== undefined && !record.partial) {
            if (!best || v.loss < best.loss) best = { loss: v.loss, epoch, weights: await session.getWeights() };
            else if (epoch - best.epoch >= patience) stoppedEarly = true;
          }
        }
        history.epochs.push(record);
        hooks.onEpoch?.(record, options.epochs);
        if (stoppedEarly) break;
      }
    }
    // Early stopping (and a stop after the best epoch) keeps the best weights seen.
    if (best && (stoppedEarly || stopped) && best.epoch < history.epochs.length) await session.setWeights(best.weights);
    const result: DriveResult = { weights: await session.getWeights(), history, seconds: (Date.now() - started) / 1000, samples, stopped };
    if (best) Object.assign(result, { stoppedEarly, bestEpoch: best.epoch });
    return result;
  } finally {
    session.dispose();
  }
}
