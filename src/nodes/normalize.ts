import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Normalization, SplitView, pixelStats } from '../lib/dataset';
import { MnistError } from '../lib/messages';
import * as registry from '../lib/registry';
import { attach, needDataset, options, splitHandle, waitForOwnOutput } from './common';

function byteRange(view: SplitView): [number, number] {
  let lo = 255;
  let hi = 0;
  for (const v of view.images) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

export = (RED: NodeAPI) => {
  function NormalizeNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg, signal }) {
        // A training still reading the last run's views keeps them: refuse rather than free them.
        await waitForOwnOutput(node.id, signal);
        const reader = registry.busyOf(node.id);
        if (reader) throw new MnistError('data-in-use', { by: reader });
        const o = options('normalize', config);
        const ds = needDataset(msg);
        const train = ds.train ? registry.resolve<SplitView>(ds.train, 'split', 'msg.dataset.train') : undefined;
        const test = ds.test ? registry.resolve<SplitView>(ds.test, 'split', 'msg.dataset.test') : undefined;
        if (!train && !test) throw new MnistError('no-splits');
        let norm: Normalization;
        if (o.fromData) {
          if (!train) throw new MnistError('from-data-needs-train');
          norm = pixelStats(train);
          if (!(norm.std > 0)) throw new MnistError('std-zero', { mean: norm.mean.toPrecision(4), std: norm.std });
        } else {
          norm = { mean: o.mean, std: o.std };
        }
        registry.disposeOwner(node.id);
        const out: Record<string, unknown> = { ...ds, normalization: norm };
        const [lo, hi] = byteRange((train || test)!);
        for (const [which, view] of [['train', train], ['test', test]] as const) {
          if (view) out[which] = splitHandle(node.id, ds.name, which, { ...view, normalization: norm });
        }
        msg.dataset = out;
        msg.payload = { mean: norm.mean, std: norm.std, min: (lo / 255 - norm.mean) / norm.std, max: (hi / 255 - norm.mean) / norm.std };
        return msg;
      },
      doneText: (_out, { t }) => t('normalize.status.done'),
    });
  }
  RED.nodes.registerType('normalize', NormalizeNode);
};
