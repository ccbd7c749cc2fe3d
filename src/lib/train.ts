// Training as the nodes and the bench call it: the model's spec, weights and the split go to a
// worker thread (src/lib/engine/), and the trained weights come back into the same tfjs model,
// so predict, evaluate, plot and model-save never care which engine trained it.
import * as tf from '@tensorflow/tfjs';
import { SplitView } from './dataset';
import { checkTraining } from './engine/budget';
import { EnginePreference } from './engine/pick';
import { RunHooks, runInWorker } from './engine/run';
import { specOf } from './engine/spec';
import type { Validation } from './engine/driver';
import { HeldOut, History, Progress, TrainData, TrainOptions } from './engine/types';
import { MnistError } from './messages';

/**
 * Held-out samples measured after every epoch: the last `fraction` of the training split (it is
 * then not trained on), or another split (e.g. the test split); `patience` turns on early stopping.
 */
export interface ValidationSetup { fraction?: number; view?: SplitView; patience?: number }

export interface TrainResult {
  history: History;
  seconds: number;
  samples: number;
  samplesPerSecond: number;
  finalLoss: number;
  stopped: boolean;
  stoppedEarly?: boolean;
  bestEpoch?: number;
  /** samples trained on and held out */
  trainedOn: number;
  heldOut: number;
  /** the engine that trained: 'native', or the tfjs backend ('wasm', 'cpu', 'tensorflow') */
  engine: string;
  threads: number;
}

export interface TrainHooks extends RunHooks {
  onBatch?: (p: Progress) => void;
  validation?: ValidationSetup;
  /** false once the model was freed under us (its node ran again or closed): training ends */
  modelAlive?: () => boolean;
  engine?: EnginePreference;
  /** native engine threads (default: every core) */
  threads?: number;
  /** the memory one run may take (setting mnistMemoryLimitMB) */
  memoryLimitMB?: number;
  /** the tfjs backend the worker starts (a setting or MNIST_TF_BACKEND) */
  backend?: string;
}

/** The training data, and the held-out samples when validation is asked for. */
function heldOut(view: SplitView, classes: number, setup?: ValidationSetup): { data: TrainData; validation?: Validation } {
  const size = view.rows * view.cols;
  const data: TrainData = { images: view.images, labels: view.labels, count: view.count, rows: view.rows, cols: view.cols, normalization: view.normalization, classes };
  if (!setup || (!setup.view && !setup.fraction)) return { data };
  let held: HeldOut;
  if (setup.view) {
    const v = setup.view;
    if (v.rows !== view.rows || v.cols !== view.cols || v.classes !== view.classes) {
      throw new MnistError('validation-mismatch', { rows: v.rows, cols: v.cols, classes: v.classes, trainRows: view.rows, trainCols: view.cols, trainClasses: view.classes });
    }
    if (JSON.stringify(v.normalization) !== JSON.stringify(view.normalization)) throw new MnistError('validation-normalization');
    held = { images: v.images, labels: v.labels, count: v.count };
  } else {
    // The last samples of the split (mnist-dataset shuffles it with its seed), never trained on.
    const k = Math.round(view.count * setup.fraction!);
    if (k < 1 || view.count - k < 1) throw new MnistError('validation-too-small', { count: view.count, fraction: setup.fraction! });
    const n = view.count - k;
    data.count = n;
    data.images = view.images.subarray(0, n * size);
    data.labels = view.labels.subarray(0, n);
    held = { images: view.images.subarray(n * size, view.count * size), labels: view.labels.subarray(n, view.count), count: k };
  }
  return { data, validation: { held, patience: setup.patience } };
}

export async function train(model: tf.LayersModel, view: SplitView, classes: number, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  if (view.count === 0) throw new MnistError('split-empty');
  const spec = { ...specOf(model), inputShape: [view.rows, view.cols, 1] as [number, number, number] };
  const { data, validation } = heldOut(view, classes, hooks.validation);
  checkTraining(spec, data.count + (validation?.held.count ?? 0), options.batchSize, options.optimizer, options.momentum, hooks.memoryLimitMB);
  const weights = model.getWeights().map((w) => (w.dataSync() as Float32Array).slice());
  // A model freed mid-run (its node ran again or closed) ends the run at once.
  const controller = new AbortController();
  const relay = () => controller.abort(hooks.signal?.reason);
  hooks.signal?.addEventListener('abort', relay);
  if (hooks.signal?.aborted) relay();
  let freed = false;
  const alive = () => {
    if (hooks.modelAlive && !hooks.modelAlive() && !freed) { freed = true; controller.abort('freed'); }
    return !freed;
  };
  try {
    const r = await runInWorker({
      engine: hooks.engine ?? 'auto', backend: hooks.backend, threads: hooks.threads, spec, weights, options, data, validation,
    }, {
      signal: controller.signal,
      onEngine: hooks.onEngine,
      onEpoch: hooks.onEpoch,
      onBatch: (p) => { if (alive()) hooks.onBatch?.(p); },
    }).catch((e) => { throw freed ? new MnistError('model-freed-training') : e; });
    if (!alive()) throw new MnistError('model-freed-training');
    tf.tidy(() => model.setWeights(r.weights.map((w, i) => tf.tensor(w, model.weights[i].shape as number[]))));
    return {
      history: r.history,
      seconds: r.seconds,
      samples: r.samples,
      samplesPerSecond: r.samples / Math.max(r.seconds, 1e-3),
      finalLoss: r.history.loss.length ? r.history.loss[r.history.loss.length - 1] : NaN,
      stopped: r.stopped,
      stoppedEarly: r.stoppedEarly,
      bestEpoch: r.bestEpoch,
      trainedOn: data.count,
      heldOut: validation?.held.count ?? 0,
      engine: r.engine,
      threads: r.threads,
    };
  } finally {
    hooks.signal?.removeEventListener('abort', relay);
  }
}
