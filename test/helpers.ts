import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gzipSync } from 'zlib';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/lib/backend';

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

export const NODES = ['mnist-dataset', 'mnist-samples', 'normalize', 'mlp-model', 'cnn-model', 'sgd-train', 'evaluate', 'predict', 'plot', 'model-save']
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- Node-RED node modules are CommonJS
  .map((name) => require(`../src/nodes/${name}`));

/** Our nodes and the Node-RED core nodes the examples use; `http()` is the app serving their http-in routes. */
export function withCoreNodes(): { nodes: unknown[]; http: () => unknown } {
  let app: unknown;
  const core = ['common/20-inject.js', 'common/21-debug.js', 'common/90-comment.js', 'function/10-function.js', 'function/15-change.js', 'function/89-delay.js',
    'sequence/17-split.js', 'storage/10-file.js', 'network/21-httpin.js']
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- Node-RED's core nodes are CommonJS
    .map((p) => require(`@node-red/nodes/core/${p}`));
  // The helper's request() reaches only the admin app; http-in routes live on RED.httpNode.
  return { nodes: [...NODES, ...core, (RED: { httpNode: unknown }) => { app = RED.httpNode; }], http: () => app };
}

export async function backend(): Promise<string> {
  return initBackend(undefined, () => undefined);
}

export function tensors(): number {
  return tf.memory().numTensors;
}

/**
 * A flow spec's hooks: the backend started once; after each test the flow unloaded and, when the
 * test passed, every tensor freed (`what` says what the spec promises).
 */
export function unloadFreesTensors(what = 'every tensor freed after unload'): void {
  let base = 0;
  before(async () => { await backend(); });
  beforeEach(() => { base = tensors(); });
  afterEach(async function () {
    await helper.unload();
    if (this.currentTest?.state === 'passed') assert.equal(tensors(), base, what);
  });
}

/** Resolves with the next message a helper node receives (rejects after `ms`). */
export function next(node: { on: (ev: string, fn: (msg: any) => void) => void }, ms = 240000): Promise<any> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message arrived')), ms);
    node.on('input', (msg: any) => { clearTimeout(t); resolve(msg); });
  });
}

/** A flow of the tutorial's pipeline on a small subset; `extra` nodes are appended. */
export function pipeline(opts: { limit?: number; train?: Record<string, unknown> } = {}, extra: any[] = []): any[] {
  return [
    { id: 'ds', type: 'mnist-dataset', limit: opts.limit ?? 2000, wires: [['norm']] },
    { id: 'norm', type: 'normalize', wires: [['mlp']] },
    { id: 'mlp', type: 'mlp-model', wires: [['train']] },
    { id: 'train', type: 'sgd-train', progressEvery: 1, ...(opts.train || {}), wires: [['eval', 'trained'], ['progress']] },
    { id: 'eval', type: 'evaluate', wires: [['out']] },
    { id: 'out', type: 'helper' },
    { id: 'trained', type: 'helper' },
    { id: 'progress', type: 'helper' },
    { id: 'catcher', type: 'catch', wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    ...extra,
  ];
}

/** The node's current status as the editor shows it (the helper spies on node.status). */
export function statusOf(node: any): { fill?: string; text?: string } {
  const calls = node.status.getCalls().filter((c: any) => c.thisValue === node);
  return calls.length ? calls[calls.length - 1].args[0] : {};
}

// ---- shared by the specs that feed bad input and limits to every node ----

/** A scratch folder for this test process, removed when it exits. */
let scratchDir: string | undefined;
export function scratch(): string {
  if (!scratchDir) {
    scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-test-'));
    const dir = scratchDir;
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return scratchDir;
}

export function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

export interface SetSpec { count?: number; rows?: number; cols?: number; classes?: number; gz?: boolean; pixel?: (i: number) => number }

/** The four idx files of a small dataset in a scratch folder; `tweak` may then spoil one of them. */
export function writeSet(name: string, spec: SetSpec = {}, tweak?: (dir: string) => void): string {
  const { count = 60, rows = 28, cols = 28, classes = 10, gz = false, pixel = (i: number) => (i * 37) % 256 } = spec;
  const dir = path.join(scratch(), name);
  fs.mkdirSync(dir, { recursive: true });
  const files: Record<string, Buffer> = {};
  for (const [img, lbl] of [['train-images-idx3-ubyte', 'train-labels-idx1-ubyte'], ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']]) {
    files[img] = idx([count, rows, cols], Uint8Array.from({ length: count * rows * cols }, (_, i) => pixel(i)));
    files[lbl] = idx([count], Uint8Array.from({ length: count }, (_, i) => i % classes));
  }
  for (const [f, buf] of Object.entries(files)) fs.writeFileSync(path.join(dir, gz ? `${f}.gz` : f), gz ? gzipSync(buf) : buf);
  tweak?.(dir);
  return dir;
}

export const file = (dir: string, f: string) => path.join(dir, f);

/**
 * Waiters for the Catch node's (id "caught") messages. One listener per node forwards to them:
 * Node-RED's input callbacks must not be removed while it is calling them.
 */
const catchWaiters = new WeakMap<object, Set<(m: any) => boolean>>();
function onCaught(fn: (m: any) => boolean): () => void {
  const caught = helper.getNode('caught');
  let waiters = catchWaiters.get(caught);
  if (!waiters) {
    const set = new Set<(m: any) => boolean>();
    waiters = set;
    catchWaiters.set(caught, set);
    caught.on('input', (m: any) => { for (const w of [...set]) if (w(m)) set.delete(w); });
  }
  const set = waiters;
  set.add(fn);
  return () => set.delete(fn);
}

/** Resolves with the next error a Catch node (id "caught") reports for node `id`. */
export function caughtFrom(id: string, ms = 240000): Promise<any> {
  return new Promise((resolve, reject) => {
    const cancel = onCaught((m) => {
      if (m.error?.source?.id !== id) return false;
      clearTimeout(t);
      resolve(m);
      return true;
    });
    const t = setTimeout(() => { cancel(); reject(new Error(`no error caught from ${id}`)); }, ms);
  });
}

function describeMsg(msg: any): string {
  try { return JSON.stringify(msg).slice(0, 80); } catch { return String(msg); }
}

/** Sends `msg` to node `id` and checks the error: Catch sees it, it names the problem, status red. */
export async function fails(id: string, msg: any, text: RegExp): Promise<string> {
  const got = caughtFrom(id);
  const sent = next(helper.getNode('out')).then((o) => { throw new Error(`${id} sent ${describeMsg(o.payload)} instead of failing`); });
  sent.catch(() => undefined);
  helper.getNode(id).receive(msg);
  const m = await Promise.race([got, sent]);
  assert.match(m.error.message, text, `${id}: "${m.error.message}" for ${describeMsg(msg)}`);
  assert.equal(statusOf(helper.getNode(id)).fill, 'red', `${id} status is red`);
  return m.error.message;
}

/** Sends `msg` to node `id` and resolves with what its first output sends (no error). */
export async function works(id: string, msg: any, out = 'out'): Promise<any> {
  const got = next(helper.getNode(out));
  let cancel = () => false as boolean;
  const err = new Promise<never>((_resolve, reject) => {
    cancel = onCaught((m) => {
      if (m.error?.source?.id !== id) return false;
      reject(new Error(`unexpected error from ${id}: ${m.error.message}`));
      return true;
    });
  });
  helper.getNode(id).receive(msg);
  const m = await Promise.race([got, err]).finally(cancel);
  assert.notEqual(statusOf(helper.getNode(id)).fill, 'red');
  return m;
}

export const protoModel = () => JSON.parse('{"__proto__": {"kind":"model"}, "id":"x"}');
export const protoSplit = () => JSON.parse('{"__proto__": {"kind":"split"}, "id":"x"}');

/** A producer of good messages (embedded MNIST subset, normalized, with a model), plus every node under test. */
export function flow(extra: any[] = [], opts: { limit?: number; splits?: string } = {}): any[] {
  return [
    { id: 'ds', type: 'mnist-dataset', limit: opts.limit ?? 300, splits: opts.splits ?? 'both', wires: [['norm']] },
    { id: 'norm', type: 'normalize', wires: [['mlp']] },
    { id: 'mlp', type: 'mlp-model', hidden: '32', wires: [['ready']] },
    { id: 'ready', type: 'helper' },
    { id: 't-norm', type: 'normalize', wires: [['out']] },
    { id: 't-mlp', type: 'mlp-model', hidden: '16', wires: [['out']] },
    { id: 't-train', type: 'sgd-train', epochs: '1', batchSize: '100', progressEvery: '0', wires: [['out'], []] },
    { id: 't-eval', type: 'evaluate', wires: [['out']] },
    { id: 't-plot', type: 'plot', kind: 'samples', wires: [['out']] },
    { id: 't-predict', type: 'predict', topK: '1', wires: [['out']] },
    { id: 't-save', type: 'model-save', folder: path.join(scratch(), 'saved'), wires: [['out']] },
    { id: 'out', type: 'helper' },
    { id: 'catcher', type: 'catch', wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    ...extra,
  ];
}

/** Runs the producer once: resolves with its message (dataset and model handles). */
export async function ready(): Promise<any> {
  const got = next(helper.getNode('ready'));
  helper.getNode('ds').receive({ payload: true });
  return got;
}
