// The main thread's side of a training run: starts the worker, relays its progress, stops it
// gracefully on a stop (keeping what was learned) or at once on a close, and returns the result.
import * as path from 'path';
import { Worker } from 'worker_threads';
import { MnistError, Params } from '../messages';
import type { DriveResult } from './driver';
import type { EnginePreference } from './pick';
import { ModelSpec, Progress, TrainData, TrainOptions, Weights } from './types';

export interface WorkerRequest {
  engine: EnginePreference;
  /** the tfjs backend to start in the worker (a setting or MNIST_TF_BACKEND) */
  backend?: string;
  spec: ModelSpec;
  weights: Weights;
  data: TrainData;
  options: TrainOptions;
}

export type WorkerReply =
  | { type: 'engine'; name: string; threads: number; fallback?: { code: string; params: Params } }
  | { type: 'batch'; progress: Progress }
  | { type: 'done'; result: DriveResult }
  | { type: 'error'; error: { code: string; params: Params } };

export interface RunHooks {
  onEngine?: (e: { name: string; threads: number; fallback?: { code: string; params: Params } }) => void;
  onBatch?: (p: Progress) => void;
  /** 'stop' as its reason ends training after the current steps with the weights so far; any other abort ends it at once. */
  signal?: AbortSignal;
}

export const STOP = 'stop';

export interface RunResult extends DriveResult { engine: string; threads: number }

/** The worker script beside this file (built .js, or .ts under ts-node in the tests). */
function workerScript(): { file: string; execArgv?: string[] } {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `worker${ext}`);
  return ext === '.ts' ? { file, execArgv: [...process.execArgv, '--require', 'ts-node/register/transpile-only'] } : { file };
}

export function runInWorker(request: WorkerRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const { file, execArgv } = workerScript();
  return new Promise<RunResult>((resolve, reject) => {
    if (hooks.signal?.aborted && hooks.signal.reason !== STOP) return reject(new MnistError('training-closed'));
    const worker = new Worker(file, { workerData: request, execArgv });
    let engine = { name: '?', threads: 1 };
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      hooks.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      if (hooks.signal!.reason === STOP) worker.postMessage({ type: 'stop' });
      else finish(() => { void worker.terminate(); reject(new MnistError('training-closed')); });
    };
    hooks.signal?.addEventListener('abort', onAbort);
    if (hooks.signal?.aborted) onAbort();
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'engine') { engine = { name: m.name, threads: m.threads }; hooks.onEngine?.(m); }
      else if (m.type === 'batch') { if (!settled) hooks.onBatch?.(m.progress); }
      else if (m.type === 'done') finish(() => resolve({ ...m.result, engine: engine.name, threads: engine.threads }));
      else finish(() => reject(new MnistError(m.error.code, m.error.params)));
    });
    worker.on('error', (e) => finish(() => reject(new MnistError('engine-failed', { reason: e.message }))));
    worker.on('exit', (code) => finish(() => reject(new MnistError('engine-failed', { reason: `the training thread exited (${code})` }))));
  });
}
