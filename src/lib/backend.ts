import * as tf from '@tensorflow/tfjs';
import { registerFastKernels } from './kernels';
import { MnistError, Params, message } from './messages';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
const ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let chosen: Promise<string> | undefined;
let broken: string | undefined;

/**
 * A WebAssembly trap (out-of-bounds memory, say) leaves the backend in an unknown state: from
 * then on work is refused with a clear error instead of giving wrong answers. (Training runs in
 * its own thread and cannot cause this; the memory budget keeps evaluation and prediction from it.)
 */
export function noteFailure(e: unknown): void {
  if (e instanceof WebAssembly.RuntimeError) broken = e.message;
}

/** Loads a backend's package; false when it is not installed or cannot load here. */
function load(name: BackendName): boolean {
  try {
    /* eslint-disable @typescript-eslint/no-require-imports -- optional packages, loaded only when chosen */
    if (name === 'tensorflow') require('@tensorflow/tfjs-node');
    if (name === 'wasm') require('@tensorflow/tfjs-backend-wasm');
    /* eslint-enable @typescript-eslint/no-require-imports */
    return true;
  } catch {
    return false;
  }
}

async function activate(name: BackendName): Promise<boolean> {
  if (!load(name)) return false;
  try {
    if (!(await tf.setBackend(name))) return false;
    await tf.ready();
  } catch {
    return false;
  }
  // The performance layer (wasm and cpu; tfjs-node's native kernels need none).
  registerFastKernels(name);
  return true;
}

/**
 * Picks the fastest backend present once per process: tfjs-node ('tensorflow'), then wasm, then
 * cpu. `preferred` (a setting or MNIST_TF_BACKEND) is tried first. Every caller awaits the same
 * promise, so the choice is made and logged once.
 */
export function initBackend(preferred?: string, log: (key: string, params?: Params) => void = (k, p) => console.log(message(k, p))): Promise<string> {
  if (broken) return Promise.reject(new MnistError('backend-broken', { reason: broken }));
  if (!chosen) {
    chosen = (async () => {
      const wish = (preferred || process.env.MNIST_TF_BACKEND || '').trim();
      if (wish && !ORDER.includes(wish as BackendName)) {
        log('log.unknown-backend', { wish });
      }
      const order = ORDER.includes(wish as BackendName) ? [wish as BackendName, ...ORDER.filter((b) => b !== wish)] : ORDER;
      // tfjs-layers keeps the execution order of the last 100 models it ran (an LRU cache), and
      // with it each model's layer objects after the model was disposed: a long-lived flow that
      // reloads or rebuilds models held up to 100 of them (npm run soak --snapshots). 10 is
      // enough for an ensemble run over and over.
      tf.env().set('TOPOLOGICAL_SORT_CACHE_MAX_ENTRIES', 10);
      for (const name of order) {
        if (await activate(name)) {
          log('log.backend', { version: tf.version.tfjs, name });
          return name;
        }
      }
      throw new MnistError('no-backend');
    })();
    chosen.catch(() => { chosen = undefined; });
  }
  return chosen;
}

export function currentBackend(): string {
  return tf.getBackend();
}
