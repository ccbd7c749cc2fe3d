// Which engine trains: the native one (ONNX Runtime) where it is installed and can train the
// model, else TensorFlow.js on the best backend this thread can start (tfjs-node, wasm, cpu).
import * as os from 'os';
import { initBackend } from '../backend';
import { MnistError, Params } from '../messages';
import { tfjsEngine } from './tfjs';
import { ModelSpec, TrainEngine } from './types';

export type EnginePreference = 'auto' | 'native' | 'tfjs';
export const ENGINES: EnginePreference[] = ['auto', 'native', 'tfjs'];

/** Compute threads for the native engine: every core (training runs beside an idle event loop). */
export function defaultThreads(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

export async function pickEngine(preference: EnginePreference, backend: string | undefined, spec: ModelSpec, threads = defaultThreads()):
  Promise<{ engine: TrainEngine; fallback?: { code: string; params: Params } }> {
  let fallback: { code: string; params: Params } | undefined;
  if (preference !== 'tfjs') {
    try {
      // Loaded only here: onnxruntime-node is optional, and a tfjs-only run never touches it.
      const native = await import('./native');
      native.nativeSupports(spec);
      await native.loadOrt();
      return { engine: native.nativeEngine(threads) };
    } catch (e) {
      if (preference === 'native') throw e;
      fallback = e instanceof MnistError ? { code: e.code, params: e.params } : { code: 'native-unavailable', params: { reason: String(e) } };
    }
  }
  await initBackend(backend, () => undefined);
  return { engine: tfjsEngine, fallback };
}
