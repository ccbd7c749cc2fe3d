// The main thread's side of a training run: starts the training process, relays its progress,
// asks it to stop (a msg.stop keeps what was learned; a close discards it), and settles only once
// the process has exited, so its memory is back before the next run starts.
//
// A child process, not a worker thread: memory that ONNX Runtime (native code) frees on a
// worker thread stays in glibc's malloc arena of the process, so every Node-RED that trained
// once with the native engine kept about 100 MB more for good (found by npm run soak). A process
// that exits gives all of it back to the system.
import { ChildProcess, fork } from 'child_process';
import * as path from 'path';
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
 * The training process is asked to stop, which it does within one run of steps (it is not killed
 * while it may be inside native code); only one that does not exit within this time is killed.
 */
const EXIT_GRACE_MS = 30000;

export interface RunResult extends DriveResult { engine: string; threads: number }

/** The training script beside this file (built .js, or .ts under ts-node in the tests). */
function workerScript(): { file: string; execArgv: string[] } {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `worker${ext}`);
  // Not the parent's debugger port (it is taken); its other flags (e.g. --expose-gc) do no harm.
  const inherited = process.execArgv.filter((a) => !/^--inspect/.test(a));
  return { file, execArgv: ext === '.ts' ? [...inherited, '--require', 'ts-node/register/transpile-only'] : inherited };
}

/**
 * The image bytes go to the training process through its stdin, straight from the split's memory:
 * sent as IPC messages they were serialized into copies on Node-RED's heap (malloc), which kept
 * RSS about 50 MB higher after a training (and in one message, Node kept the 45 MB buffer for good).
 */
function streamImages(child: ChildProcess, parts: Uint8Array[]): void {
  child.stdin!.on('error', () => undefined); // a process that died early: its exit says why
  for (const p of parts) if (p.length) child.stdin!.write(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  child.stdin!.end();
}

export function runInWorker(request: WorkerRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const { file, execArgv } = workerScript();
  return new Promise<RunResult>((resolve, reject) => {
    if (hooks.signal?.aborted && hooks.signal.reason !== STOP) return reject(new MnistError('training-closed'));
    let child: ChildProcess;
    try {
      // 'advanced' serialization carries typed arrays as bytes (JSON would not).
      child = fork(file, [], { execArgv, serialization: 'advanced', stdio: ['pipe', 'inherit', 'inherit', 'ipc'] });
    } catch (e) {
      return reject(new MnistError('engine-failed', { reason: (e as Error).message }));
    }
    const { data, validation } = request;
    // Everything but the images in one message; the images follow on stdin.
    const none = new Uint8Array(0);
    child.send({
      type: 'start',
      request: {
        ...request,
        data: { ...data, images: none, labels: data.labels.slice() },
        validation: validation && { ...validation, held: { ...validation.held, images: none, labels: validation.held.labels.slice() } },
      },
      sizes: { data: data.images.length, held: validation?.held.images.length ?? 0 },
    });
    streamImages(child, validation ? [data.images, validation.held.images] : [data.images]);
    let engine = { name: '?', threads: 1 };
    let outcome: (() => void) | undefined;
    let discard = false;
    let killer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      discard = hooks.signal!.reason !== STOP;
      if (child.connected) child.send({ type: 'stop' });
      killer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
    };
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    if (hooks.signal?.aborted) onAbort();
    child.on('message', (m: WorkerReply) => {
      if (m.type === 'engine') { engine = { name: m.name, threads: m.threads }; hooks.onEngine?.(m); }
      else if (m.type === 'batch') { if (!discard) hooks.onBatch?.(m.progress); }
      else if (m.type === 'epoch') { if (!discard) hooks.onEpoch?.(m.record); }
      else if (m.type === 'done') outcome = () => resolve({ ...m.result, engine: engine.name, threads: engine.threads });
      else outcome = () => reject(new MnistError(m.error.code, m.error.params));
    });
    let failure: Error | undefined;
    child.on('error', (e) => { failure = e; });
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      hooks.signal?.removeEventListener('abort', onAbort);
      if (discard) return reject(new MnistError('training-closed'));
      if (outcome) return outcome();
      reject(new MnistError('engine-failed', { reason: failure?.message ?? `the training process exited (${signal ?? code})` }));
    });
  });
}
