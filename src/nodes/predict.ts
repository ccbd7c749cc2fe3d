import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { SplitView, toFloats } from '../lib/dataset';
import { MnistError } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import { folderStamp, loadModel } from '../lib/persist';
import { FoundDigit, MAX_ENSEMBLE, Prediction, classify, classifyInParts, decodeInputs } from '../lib/predict';
import * as registry from '../lib/registry';
import { attach, modelHandle, options } from './common';

/** A dataset split handle as [0,1] images (normalization is the model's business). */
function splitImages(handle: registry.Handle): Float32Array[] {
  const view = registry.resolve<SplitView>(handle, 'split', 'msg.payload');
  const raw = toFloats({ ...view, normalization: null });
  const size = view.rows * view.cols;
  return Array.from({ length: view.count }, (_, i) => raw.subarray(i * size, (i + 1) * size));
}

/** What predict answers for an image read with "several digits": the number and each digit. */
interface NumberReading {
  /** the digits' labels left to right; '?' where a digit is below the threshold */
  text: string;
  /** the least sure digit's confidence */
  confidence: number;
  digits: Array<{ label: number | null; className: string | null; confidence: number; box: FoundDigit['box']; topK: Prediction['topK'] }>;
}

/** Each image's digits classified in one call, then read left to right. */
function readNumbers(entries: ModelEntry[], found: FoundDigit[][], opts: Parameters<typeof classify>[2]): NumberReading[] {
  const preds = classify(entries, found.flat().map((d) => d.pixels), opts);
  let at = 0;
  return found.map((ds) => {
    const digits = ds.map((d) => {
      const p = preds[at++];
      return { label: p.label, className: p.className, confidence: p.confidence, box: d.box, topK: p.topK };
    });
    return {
      text: digits.map((d) => d.className ?? '?').join(''),
      confidence: digits.reduce((m, d) => Math.min(m, d.confidence), 1),
      digits,
    };
  });
}

export = (RED: NodeAPI) => {
  function PredictNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    // The queue is read once (it sizes the node); an invalid one fails every message clearly.
    let queue = 0;
    let invalid: unknown;
    try { ({ queue } = options('predict', { queue: (config as { queue?: unknown }).queue })); } catch (e) { invalid = e; }

    // The model from the folder: loaded on first use, owned by this node (freed on close/redeploy
    // through the registry), and reloaded when a new save replaces model.json.
    let saved: { handle: registry.Handle; entry: ModelEntry; stamp: string } | null = null;
    async function folderModel(folder: string, log: (text: string) => void): Promise<ModelEntry> {
      const stamp = await folderStamp(folder);
      if (saved && stamp === saved.stamp) return saved.entry;
      if (saved) { registry.disposeOne(saved.handle.id); saved = null; }
      if (stamp === null) throw new MnistError('no-saved-model', { folder });
      const { model, meta } = await loadModel(folder);
      const entry = { model, meta };
      saved = { handle: modelHandle(node.id, entry), entry, stamp };
      log(folder);
      return entry;
    }

    // A burst (e.g. HTTP requests) waits in a bounded queue; beyond it messages fail fast with a
    // "busy" error (the HTTP example answers 503) instead of piling up in memory.
    attach(RED, node, {
      queue,
      async run({ msg, signal, t, memoryMB }) {
        if (invalid) throw invalid;
        const o = options('predict', config);
        const folder = o.modelFolder.trim() ? path.resolve(userDir, o.modelFolder.trim()) : '';
        // msg.model: one handle, or several (an ensemble: their probabilities are averaged).
        const absent = msg.model === undefined || msg.model === null;
        const ensemble = Array.isArray(msg.model);
        if (ensemble && (msg.model.length < 1 || msg.model.length > MAX_ENSEMBLE)) throw new MnistError('ensemble-size', { count: msg.model.length, max: MAX_ENSEMBLE });
        const resolve = (): ModelEntry[] => (ensemble ? msg.model : [msg.model]).map((h: unknown, i: number) => registry.resolve<ModelEntry>(h, 'model', ensemble ? `msg.model[${i}]` : 'msg.model'));
        let entries: ModelEntry[];
        if (absent && folder) entries = [await folderModel(folder, (f) => node.log(t('predict.log.loaded', { folder: f })))];
        else if (absent) throw new MnistError('no-model-or-folder');
        else entries = resolve();
        const entry = entries[0];
        const [rows, cols] = entry.meta.inputShape;
        const p = msg.payload;
        let images: Float32Array[];
        let batch: boolean;
        let pngs: Array<Buffer | null> = [];
        let found: Array<FoundDigit[] | null> | undefined;
        let regions: Array<Buffer | null> | undefined;
        const many = o.digits === 'many';
        if (p && typeof p === 'object' && !Buffer.isBuffer(p) && (p as registry.Handle).kind === 'split') {
          images = splitImages(p as registry.Handle);
          batch = true;
        } else {
          const limits = { maxBytes: o.maxBytes, maxPixels: o.maxPixels };
          ({ pixels: images, pngs, batch, digits: found, regions } = await decodeInputs(p, {
            rows, cols, preprocess: o.preprocess, limits, signal, mode: o.mode, many, region: o.region, maxImages: o.maxImages,
          }));
        }
        // Decoding awaited: the model may have been rebuilt or freed meanwhile (a clear "gone" error then).
        if (!absent) entries = resolve();
        const how = { threshold: o.threshold, topK: o.topK, limitMB: memoryMB };
        const one = <T>(list: T[]) => (batch ? list : list[0]);
        if (many && found) {
          // A number-array input is one digit: its own single "number".
          const groups = found.map((ds, i) => ds ?? [{ pixels: images[i], png: Buffer.alloc(0), box: { left: 0, top: 0, width: cols, height: rows } }]);
          msg.payload = one(readNumbers(entries, groups, how));
          msg.preprocessed = one(found.map((ds) => (ds ? ds.map((d) => d.png) : null)));
        } else {
          // In parts, with the event loop free between them (a big batch does not stall Node-RED).
          msg.payload = one(await classifyInParts(entries, images, how, signal));
          if (pngs.some((b) => b !== null)) msg.preprocessed = one(pngs);
          else delete msg.preprocessed;
        }
        if (regions) msg.region = one(regions);
        else delete msg.region;
        return msg;
      },
      doneText: (out, { t }) => {
        const p = (out as { payload: { label: number | null; confidence: number; text?: string } | unknown[] }).payload;
        if (Array.isArray(p)) return t('predict.status.batch', { count: p.length });
        if (typeof p.text === 'string') return t('predict.status.number', { text: p.text, percent: (p.confidence * 100).toFixed(0) });
        const percent = (p.confidence * 100).toFixed(0);
        return p.label === null ? t('predict.status.unsure', { percent }) : t('predict.status.one', { label: p.label, percent });
      },
    });
  }
  RED.nodes.registerType('predict', PredictNode);
};
