import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { encodeGreyPng } from '../lib/image';
import { MnistError, shown } from '../lib/messages';
import { decodeInputs } from '../lib/predict';
import { Sample, addSample, clearSamples, loadSamples, removeSamples } from '../lib/samples';
import { Msg, attach, options } from './common';

const ACTIONS = ['add', 'list', 'delete', 'clear'] as const;

function perClass(samples: Sample[], classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (const s of samples) if (s.label < classes) counts[s.label]++;
  return counts;
}

/** msg.label as a class index: a number, or a class name ("7", "Sneaker"). */
function labelOf(msg: Msg, names: string[]): number {
  const l = msg.label;
  if (typeof l === 'number' && Number.isInteger(l)) return l;
  if (typeof l === 'string' && names.includes(l.trim())) return names.indexOf(l.trim());
  throw new MnistError('sample-label-missing', { value: shown(l), names: names.join(', ') });
}

export = (RED: NodeAPI) => {
  function MnistSamplesNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    attach(RED, node, {
      queue: 100,
      async run({ msg, signal }) {
        const o = options('mnist-samples', config);
        const folder = path.resolve(userDir, o.folder.trim() || 'mnist-samples');
        const names = o.classes.split(',').map((s) => s.trim()).filter(Boolean);
        const classes = names.length ? names : Array.from({ length: 10 }, (_, i) => String(i));
        const action = msg.topic === undefined || msg.topic === '' ? (msg.label !== undefined ? 'add' : 'list') : msg.topic;
        if (!(ACTIONS as readonly string[]).includes(action)) throw new MnistError('sample-action', { value: shown(action), actions: ACTIONS.join(', ') });
        let result: Record<string, unknown> = { action };
        if (action === 'add') {
          const label = labelOf(msg, classes);
          const { pixels, batch } = await decodeInputs(msg.payload, { rows: 28, cols: 28, preprocess: o.preprocess, signal });
          if (batch) throw new MnistError('sample-one-image');
          const sample = addSample(folder, label, Uint8Array.from(pixels[0], (v) => Math.round(v * 255)), classes.length);
          result = { ...result, id: sample.id, label, className: classes[label] };
        } else if (action === 'delete') {
          const ids = [msg.id ?? msg.payload].flat().filter((x): x is string => typeof x === 'string');
          if (!ids.length) throw new MnistError('sample-delete-id');
          result.removed = removeSamples(folder, ids);
        } else if (action === 'clear') {
          result.removed = clearSamples(folder);
        }
        const samples = loadSamples(folder);
        result = { ...result, folder, count: samples.length, perClass: perClass(samples, classes.length) };
        if (action === 'list') {
          result.samples = samples.map((s) => ({
            id: s.id, label: s.label, className: classes[s.label] ?? String(s.label), created: s.created,
            image: `data:image/png;base64,${encodeGreyPng(s.pixels, 28, 28).toString('base64')}`,
          }));
        }
        msg.payload = result;
        return msg;
      },
      doneText: (out, { t }) => t('mnist-samples.status.done', { count: (out as { payload: { count: number } }).payload.count }),
    });
  }
  RED.nodes.registerType('mnist-samples', MnistSamplesNode);
};
