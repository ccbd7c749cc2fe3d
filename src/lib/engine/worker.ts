// Training runs in a child process: the event loop of Node-RED never waits for it (the editor
// and dashboards stay responsive), a crash of an engine cannot break Node-RED's tfjs, and all the
// memory it took (the wasm heap, native buffers, malloc arenas) is returned when it exits.
import { MnistError } from '../messages';
import { drive } from './driver';
import { pickEngine } from './pick';
import type { WorkerRequest, WorkerReply } from './run';

let stopping = false;
const post = (m: WorkerReply) => new Promise<void>((resolve) => process.send!(m, undefined, {}, () => resolve()));

async function run(request: WorkerRequest): Promise<void> {
  try {
    const { engine, fallback } = await pickEngine(request.engine, request.backend, request.spec, request.threads);
    void post({ type: 'engine', name: engine.name, threads: engine.threads, fallback });
    const result = await drive(engine, request.spec, request.weights, request.data, request.options, {
      stopped: () => stopping,
      onBatch: (p) => void post({ type: 'batch', progress: p }),
      onEpoch: (record) => void post({ type: 'epoch', record }),
    }, request.validation);
    await post({ type: 'done', result });
  } catch (e) {
    const error = e instanceof MnistError ? { code: e.code, params: e.params }
      : { code: 'engine-failed', params: { reason: e instanceof Error ? e.message : String(e) } };
    await post({ type: 'error', error });
  } finally {
    // Everything sent: the process ends, and its heap and native memory go with it.
    process.exit(0);
  }
}

type Incoming =
  | { type: 'start'; request: WorkerRequest; sizes: { data: number; held: number } }
  | { type: 'images'; which: 'data' | 'held'; at: number; bytes: Uint8Array }
  | { type: 'go' }
  | { type: 'stop' };

// The request, then its images in chunks (see run.ts), then 'go'.
let request: WorkerRequest | undefined;
process.on('message', (m: Incoming) => {
  if (m.type === 'start') {
    request = m.request;
    request.data.images = new Uint8Array(m.sizes.data);
    if (request.validation) request.validation.held.images = new Uint8Array(m.sizes.held);
  } else if (m.type === 'images') {
    (m.which === 'data' ? request!.data : request!.validation!.held).images.set(m.bytes, m.at);
  } else if (m.type === 'go') void run(request!);
  else if (m.type === 'stop') stopping = true;
});
// Node-RED gone (or the parent killed): nothing to train for.
process.on('disconnect', () => process.exit(0));
