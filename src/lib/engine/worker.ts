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
  | { type: 'stop' };

// The request comes as a message, the image bytes (training, then held-out) on stdin (see run.ts).
let request: WorkerRequest | undefined;
let targets: Uint8Array[] = [];
let filled = 0;
let total = -1;
let received = false;
const early: Buffer[] = [];
function take(b: Buffer): void {
  let at = 0;
  while (at < b.length && targets.length) {
    const t = targets[0];
    const n = Math.min(b.length - at, t.length - filled);
    t.set(b.subarray(at, at + n), filled);
    at += n;
    filled += n;
    if (filled === t.length) { targets.shift(); filled = 0; }
  }
}
let started = false;
function startWhenReady(): void {
  if (started || !request || !received || total < 0) return;
  started = true;
  if (targets.length === 0) return void run(request);
  void post({ type: 'error', error: { code: 'engine-failed', params: { reason: 'the training data arrived incomplete' } } }).then(() => process.exit(0));
}
process.stdin.on('data', (b: Buffer) => { if (total < 0) early.push(b); else take(b); });
process.stdin.on('end', () => { received = true; startWhenReady(); });
process.on('message', (m: Incoming) => {
  if (m.type === 'start') {
    request = m.request;
    request.data.images = new Uint8Array(m.sizes.data);
    targets = [request.data.images];
    if (request.validation) {
      request.validation.held.images = new Uint8Array(m.sizes.held);
      targets.push(request.validation.held.images);
    }
    targets = targets.filter((t) => t.length > 0);
    total = m.sizes.data + m.sizes.held;
    for (const b of early.splice(0)) take(b);
    startWhenReady();
  } else if (m.type === 'stop') stopping = true;
});
// Node-RED gone (or the parent killed): nothing to train for.
process.on('disconnect', () => process.exit(0));
