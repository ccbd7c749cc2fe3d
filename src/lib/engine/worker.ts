// Training runs in a worker thread: the event loop of Node-RED never waits for it (the editor
// and dashboards stay responsive), a crash of an engine cannot break the main thread's tfjs,
// and all the memory it took (the wasm heap, native buffers) is returned when it exits.
import { parentPort, workerData } from 'worker_threads';
import { MnistError } from '../messages';
import { drive } from './driver';
import { pickEngine } from './pick';
import type { WorkerRequest, WorkerReply } from './run';

const request = workerData as WorkerRequest;
let stopping = false;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer);
parentPort!.on('message', (m: { type: string }) => { if (m.type === 'stop') stopping = true; });

(async () => {
  try {
    const { engine, fallback } = await pickEngine(request.engine, request.backend, request.spec, request.threads);
    post({ type: 'engine', name: engine.name, threads: engine.threads, fallback });
    const result = await drive(engine, request.spec, request.weights, request.data, request.options, {
      stopped: () => stopping,
      onBatch: (p) => post({ type: 'batch', progress: p }),
      onEpoch: (record) => post({ type: 'epoch', record }),
    }, request.validation);
    post({ type: 'done', result }, result.weights.map((w) => w.buffer as ArrayBuffer));
  } catch (e) {
    const error = e instanceof MnistError ? { code: e.code, params: e.params }
      : { code: 'engine-failed', params: { reason: e instanceof Error ? e.message : String(e) } };
    post({ type: 'error', error });
  } finally {
    // Nothing else keeps this thread alive: it exits, and its heap and native memory go with it.
    parentPort!.close();
  }
})();
