import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { SplitView, toFloats } from '../lib/dataset';
import { DEFAULT_IMAGE_LIMITS, ImageLimits } from '../lib/image';
import { ModelEntry } from '../lib/model';
import { folderStamp, loadModel } from '../lib/persist';
import { classify, decodeInputs } from '../lib/predict';
import * as registry from '../lib/registry';
import { attach, bool, modelHandle, num } from './common';

interface Config extends NodeDef {
  threshold?: string; topK?: string; preprocess?: boolean | string;
  maxBytes?: string; maxPixels?: string; modelFolder?: string; queue?: string;
}

/** A dataset split handle as [0,1] images (normalization is the model's business). */
function splitImages(handle: registry.Handle): Float32Array[] {
  const view = registry.resolve<SplitView>(handle, 'split', 'msg.payload');
  const raw = toFloats({ ...view, normalization: null });
  const size = view.rows * view.cols;
  return Array.from({ length: view.count }, (_, i) => raw.subarray(i * size, (i + 1) * size));
}

function positive(value: number, what: string, raw: unknown): number {
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`${what} ${JSON.stringify(raw)} is invalid: use a positive whole number`);
  return Math.floor(value);
}

export = (RED: NodeAPI) => {
  function PredictNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const threshold = num(config.threshold, 0);
    const topK = num(config.topK, 3);
    const preprocess = bool(config.preprocess, true);
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    const folder = (config.modelFolder || '').trim() ? path.resolve(userDir, config.modelFolder!.trim()) : '';

    // The model from the folder: loaded on first use, owned by this node (freed on close/redeploy
    // through the registry), and reloaded when a new save replaces model.json.
    let saved: { handle: registry.Handle; entry: ModelEntry; stamp: string } | null = null;
    async function folderModel(): Promise<ModelEntry> {
      const stamp = await folderStamp(folder);
      if (saved && stamp === saved.stamp) return saved.entry;
      if (saved) { registry.disposeOne(saved.handle.id); saved = null; }
      if (stamp === null) throw new Error(`no saved model in ${folder}: model.json not found; save one there with a model-save node (or wire a model into msg.model)`);
      const { model, meta } = await loadModel(folder);
      const entry = { model, meta };
      saved = { handle: modelHandle(node.id, entry), entry, stamp };
      node.log(`loaded the model saved in ${folder}`);
      return entry;
    }

    // A burst (e.g. HTTP requests) waits in a bounded queue; beyond it messages fail fast with a
    // "busy" error (the HTTP example answers 503) instead of piling up in memory.
    let queue = num(config.queue, 100);
    if (!(Number.isInteger(queue) && queue >= 0 && queue <= 100000)) {
      node.warn(`queue ${JSON.stringify(config.queue)} is invalid: use a whole number from 0 to 100000; using 100`);
      queue = 100;
    }

    attach(RED, node, {
      queue,
      async run({ msg, signal }) {
        if (!(threshold >= 0 && threshold <= 1)) throw new Error(`confidence threshold ${config.threshold} is invalid: use a number from 0 to 1`);
        const limits: ImageLimits = {
          maxBytes: positive(num(config.maxBytes, DEFAULT_IMAGE_LIMITS.maxBytes), 'max bytes', config.maxBytes),
          maxPixels: positive(num(config.maxPixels, DEFAULT_IMAGE_LIMITS.maxPixels), 'max pixels', config.maxPixels),
        };
        let entry: ModelEntry;
        const absent = msg.model === undefined || msg.model === null;
        if (absent && folder) entry = await folderModel();
        else {
          try {
            entry = registry.resolve<ModelEntry>(msg.model, 'model');
          } catch (e) {
            if (!absent) throw e;
            throw new Error(`${(e as Error).message}, or set "model from folder" on this predict node to a folder saved by model-save`);
          }
        }
        const [rows, cols] = entry.meta.inputShape;
        const p = msg.payload;
        let images: Float32Array[];
        let batch: boolean;
        let pngs: Array<Buffer | null> = [];
        if (p && typeof p === 'object' && !Buffer.isBuffer(p) && (p as registry.Handle).kind === 'split') {
          images = splitImages(p as registry.Handle);
          batch = true;
        } else {
          ({ pixels: images, pngs, batch } = await decodeInputs(p, { rows, cols, preprocess, limits, signal }));
        }
        const predictions = classify(entry, images, { threshold, topK });
        msg.payload = batch ? predictions : predictions[0];
        if (pngs.some((b) => b !== null)) msg.preprocessed = batch ? pngs : pngs[0];
        else delete msg.preprocessed;
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
