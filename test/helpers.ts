import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/lib/backend';

// eslint-disable-next-line @typescript-eslint/no-var-requires
export const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));

export const NODES = ['mnist-dataset', 'normalize', 'mlp-model', 'sgd-train', 'evaluate', 'predict', 'plot']
  .map((name) => require(`../src/nodes/${name}`));

export async function backend(): Promise<string> {
  return initBackend(undefined, () => undefined);
}

export function tensors(): number {
  return tf.memory().numTensors;
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
