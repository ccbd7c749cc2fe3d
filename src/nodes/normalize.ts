import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Normalization, SplitView, pixelStats } from '../lib/dataset';
import * as registry from '../lib/registry';
import { attach, bool, needDataset, num, splitHandle } from './common';

interface Config extends NodeDef { mean?: string | number; std?: string | number; fromData?: boolean | string }

function byteRange(view: SplitView): [number, number] {
  let lo = 255;
  let hi = 0;
  for (const v of view.images) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

export = (RED: NodeAPI) => {
  function NormalizeNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg }) {
        const ds = needDataset(msg);
        const train = ds.train ? registry.resolve<SplitView>(ds.train, 'split', 'msg.dataset.train') : undefined;
        const test = ds.test ? registry.resolve<SplitView>(ds.test, 'split', 'msg.dataset.test') : undefined;
        if (!train && !test) throw new Error('msg.dataset has neither a train nor a test split');
        let norm: Normalization;
        if (bool(config.fromData, false)) {
          if (!train) throw new Error('"compute from the training split" needs msg.dataset.train; load the train split too');
          norm = pixelStats(train);
        } else {
          norm = { mean: num(config.mean, 0.1307), std: num(config.std, 0.3081) };
        }
        if (!Number.isFinite(norm.mean) || !Number.isFinite(norm.std) || norm.std <= 0) {
          throw new Error(`mean ${config.mean} / std ${config.std} are invalid: use numbers with std > 0 (MNIST: 0.1307 / 0.3081)`);
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
      doneText: () => 'normalized',
    });
  }
  RED.nodes.registerType('normalize', NormalizeNode);
};
