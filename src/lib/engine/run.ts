// The main thread's side of a training run: starts the worker, relays its progress, asks it to
// stop (a msg.stop keeps what was learned; a close discards it), and settles only once the
// worker has exited, so its memory is back before the next run starts.
import * as path from 'path';
import { Worker } from 'worker_threads';
import { MnistError, Params } from '../messages';
import type { DriveResult, Validation } from './driver';
import type { EnginePreference } from './pick';
import { EpochRecord, ModelSpec, Progress, TrainData, TrainOptions, Weights } from './types';

export interface WorkerRequest {
  engine: EnginePreference;
  /** the tfjs backend to start in the worker (a setting or MNIST_TF_BACKEND) */
  backend?: string;
  /** native engine threads */
  threads?: number;
  spec: ModelSpec;
  weights: Weights;
  data: TrainData;
  options: TrainOptions;
  validation?: Validation;
}

export type WorkerReply =
  | { type: 'engine'; name: string; threads: number; fallback?: { code: string; params: Params } }
  | { type: 'batch'; progress: Progress }
  | { type: 'epoch'; record: EpochRecord }
  | { type: 'done'; result: DriveResult }
  | { type: 'error'; error: { code: string; params: Params } };

export interface RunHooks {
  onEngine?: (e: { name: string; threads: number; fallback?: { code: string; params: Params } }) => void;
  onBatch?: (p: Progress) => void;
  onEpoch?: (record: EpochRecord) => void;
  /** 'stop' as its reason ends training after the current steps with the weights so far; any other abort discards them */
  signal?: AbortSignal;
}

export const STOP = 'stop';

/**
 * A worker is never terminated while it may be inside native code (ONNX Runtime aborts the whole
 * process then); it is asked to stop, which it does within one run of steps. Only one that does
 * not exit within this time is terminated.
 */
const EXIT_GRACE_MS = 30000;

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
    let outcome: (() => void) | undefined;
    let discard = false;
    let killer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      discard = hooks.signal!.reason !== STOP;
      worker.postMessage({ type: 'stop' });
      killer = setTimeout(() => void worker.terminate(), EXIT_GRACE_MS);
    };
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal?.aborted) onAbort();
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'engine') { engine = { name: m.name, threads: m.threads }; hooks.onEngine?.(m); }
      else if (m.type === 'batch') { if (!discard) hooks.onBatch?.(m.progress); }
      else if (m.type === 'epoch') { if (!discard) hooks.onEpoch?.(m.record); }
      else if (m.type === 'done') outcome = () => resolve({ ...m.result, engine: engine.name, threads: engine.threads });
      else outcome = () => reject(new MnistError(m.error.code, m.error.params));
    });
    let failure: Error | undefined;
    worker.on('error', (e) => { failure = e; });
    worker.on('exit', (code) => {
      clearTimeout(killer);
      hooks.signal?.removeEventListener('abort', onAbort);
      if (discard) return reject(new MnistError('training-closed'));
      if (outcome) return outcome();
      reject(new MnistError('engine-failed', { reason: failure?.message ?? `the training thread exited (${code})` }));
    });
  });
}
