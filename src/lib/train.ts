// Training as the nodes and the bench call it: the model's spec, weights and the split go to a
// worker thread (src/lib/engine/), and the trained weights come back into the same tfjs model,
// so predict, evaluate, plot and model-save never care which engine trained it.
import * as tf from '@tensorflow/tfjs';
import { SplitView } from './dataset';
import { checkTraining } from './engine/budget';
import { EnginePreference } from './engine/pick';
import { RunHooks, runInWorker } from './engine/run';
import { specOf } from './engine/spec';
import { History, Progress, TrainOptions } from './engine/types';
import { MnistError } from './messages';

export interface TrainResult {
  history: History;
  seconds: number;
  samples: number;
  samplesPerSecond: number;
  finalLoss: number;
  stopped: boolean;
  /** the engine that trained: 'native', or the tfjs backend ('wasm', 'cpu', 'tensorflow') */
  engine: string;
  threads: number;
}

export interface TrainHooks extends RunHooks {
  onBatch?: (p: Progress) => void;
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

export async function train(model: tf.LayersModel, view: SplitView, classes: number, options: TrainOptions, hooks: TrainHooks = {}): Promise<TrainResult> {
  if (view.count === 0) throw new MnistError('split-empty');
  const spec = { ...specOf(model), inputShape: [view.rows, view.cols, 1] as [number, number, number] };
  checkTraining(spec, view.count, options.batchSize, options.optimizer, options.momentum, hooks.memoryLimitMB);
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
      engine: hooks.engine ?? 'auto', backend: hooks.backend, threads: hooks.threads, spec, weights, options,
      data: { images: view.images, labels: view.labels, count: view.count, rows: view.rows, cols: view.cols, normalization: view.normalization, classes },
    }, {
      signal: controller.signal,
      onEngine: hooks.onEngine,
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
      engine: r.engine,
      threads: r.threads,
    };
  } finally {
    hooks.signal?.removeEventListener('abort', relay);
  }
}
