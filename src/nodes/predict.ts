import type { Node, NodeAPI, NodeDef } from 'node-red';
import { SplitView, toFloats } from '../lib/dataset';
import { ModelEntry } from '../lib/model';
import { arrayInputs, classify } from '../lib/predict';
import * as registry from '../lib/registry';
import { attach, num } from './common';

interface Config extends NodeDef { threshold?: string; topK?: string }

/** A dataset split handle as [0,1] images (normalization is the model's business). */
function splitImages(handle: registry.Handle): Float32Array[] {
  const view = registry.resolve<SplitView>(handle, 'split', 'msg.payload');
  const raw = toFloats({ ...view, normalization: null });
  const size = view.rows * view.cols;
  return Array.from({ length: view.count }, (_, i) => raw.subarray(i * size, (i + 1) * size));
}

export = (RED: NodeAPI) => {
  function PredictNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const threshold = num(config.threshold, 0);
    const topK = num(config.topK, 3);
    attach(RED, node, {
      queue: 100,
      async run({ msg }) {
        if (!(threshold >= 0 && threshold <= 1)) throw new Error(`confidence threshold ${config.threshold} is invalid: use a number from 0 to 1`);
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        const [rows, cols] = entry.meta.inputShape;
        const p = msg.payload;
        let images: Float32Array[];
        let batch: boolean;
        if (p && typeof p === 'object' && (p as registry.Handle).kind === 'split') {
          images = splitImages(p as registry.Handle);
          batch = true;
        } else {
          const arrays = arrayInputs(p, rows, cols);
          if (!arrays) throw new Error(`msg.payload must be ${rows * cols} numbers, ${rows}x${cols} nested arrays, a batch of those, or a dataset split handle`);
          ({ pixels: images, batch } = arrays);
        }
        const predictions = classify(entry, images, { threshold, topK });
        msg.payload = batch ? predictions : predictions[0];
        return msg;
      },
      doneText: (out) => {
        const p = (out as { payload: { label: number | null; confidence: number } | unknown[] }).payload;
        if (Array.isArray(p)) return `${p.length} predictions`;
        return p.label === null ? `not sure (${(p.confidence * 100).toFixed(0)} %)` : `${p.label} (${(p.confidence * 100).toFixed(0)} %)`;
      },
    });
  }
  RED.nodes.registerType('predict', PredictNode);
};
