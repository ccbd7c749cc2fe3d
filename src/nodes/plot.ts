import type { Node, NodeAPI, NodeDef } from 'node-red';
import * as charts from '../lib/charts';
import { SplitView, toFloats } from '../lib/dataset';
import { ModelEntry } from '../lib/model';
import { classify } from '../lib/predict';
import * as registry from '../lib/registry';
import { Msg, attach, bool, needDataset, num } from './common';

const KINDS = ['samples', 'loss', 'predictions', 'confusion', 'perclass', 'mistakes'] as const;
type PlotKind = typeof KINDS[number];

interface Config extends NodeDef {
  kind?: PlotKind; split?: 'train' | 'test'; width?: string; height?: string; title?: string;
  logScale?: boolean | string; format?: 'png' | 'svg' | 'dataurl'; count?: string;
}

function splitOf(msg: Msg, which: 'train' | 'test'): SplitView {
  const ds = needDataset(msg);
  if (!ds[which]) throw new Error(`msg.dataset.${which} is missing: set mnist-dataset to load the ${which} split, or choose the other split`);
  return registry.resolve<SplitView>(ds[which], 'split', `msg.dataset.${which}`);
}

function firstImages(view: SplitView, n: number): { images: charts.ImageSet; labels: Uint8Array; pixels: Float32Array[] } {
  const size = view.rows * view.cols;
  const count = Math.min(n, view.count);
  const bytes = view.images.subarray(0, count * size);
  const unit = toFloats({ ...view, normalization: null }, 0, count); // classify() applies the model's own
  const pixels = Array.from({ length: count }, (_, i) => unit.subarray(i * size, (i + 1) * size));
  return { images: { pixels: bytes, count, rows: view.rows, cols: view.cols }, labels: view.labels.subarray(0, count), pixels };
}

/** Predicts the first `n` images of a split in one batch. */
function predictSplit(msg: Msg, view: SplitView, n: number) {
  const entry = registry.resolve<ModelEntry>(msg.model, 'model');
  const first = firstImages(view, n);
  const predictions = classify(entry, first.pixels, { topK: 1 });
  return { ...first, predicted: predictions.map((p) => p.topK[0].label), confidence: predictions.map((p) => p.confidence) };
}

async function render(kind: PlotKind, msg: Msg, config: Config, opts: charts.ChartOptions): Promise<charts.Rendered> {
  const which = config.split || 'test';
  const classNames: string[] | undefined = msg.dataset?.classes;
  switch (kind) {
    case 'samples': {
      const { images, labels } = firstImages(splitOf(msg, which), 6);
      return charts.sampleGrid(images, labels, { ...opts, classNames });
    }
    case 'loss':
      if (!msg.history || !Array.isArray(msg.history.loss)) throw new Error('msg.history is missing: wire the first output of sgd-train into this plot');
      return charts.lossCurve(msg.history, opts);
    case 'predictions': {
      const p = predictSplit(msg, splitOf(msg, which), 20);
      return charts.predictionGrid(p.images, p.labels, p.predicted, { ...opts, classNames });
    }
    case 'mistakes': {
      const view = splitOf(msg, which);
      const p = predictSplit(msg, view, Math.min(view.count, 10000));
      return charts.mistakesGallery(p.images, p.labels, p.predicted, p.confidence, { ...opts, classNames, count: num(config.count, 10) });
    }
    case 'confusion':
    case 'perclass': {
      const m = msg.metrics;
      if (!m || !Array.isArray(m.confusion)) throw new Error('msg.metrics is missing: wire an evaluate node into this plot');
      return kind === 'confusion' ? charts.confusionMatrix(m.confusion, { ...opts, classNames }) : charts.perClassAccuracy(m.perClass, { ...opts, classNames });
    }
    default:
      throw new Error(`plot kind "${kind}" is invalid: use one of ${KINDS.join(', ')}`);
  }
}

export = (RED: NodeAPI) => {
  function PlotNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg }) {
        const kind = (msg.plot ?? config.kind ?? 'loss') as PlotKind;
        const format = config.format || 'png';
        if (!['png', 'svg', 'dataurl'].includes(format)) throw new Error(`format "${format}" is invalid: use png, svg or dataurl`);
        const opts: charts.ChartOptions = {
          width: config.width ? num(config.width, NaN) : undefined,
          height: config.height ? num(config.height, NaN) : undefined,
          title: config.title || undefined,
          logScale: bool(config.logScale, false),
        };
        const out = await render(kind, msg, config, opts);
        const dataUrl = charts.toDataUrl(out.png);
        // The editor's "MNIST plots" sidebar shows the latest picture of each plot node.
        RED.comms.publish(`mnist-plot/${node.id}`, { id: node.id, name: config.name || kind, kind, image: dataUrl }, true);
        msg.payload = format === 'png' ? out.png : format === 'svg' ? out.svg : dataUrl;
        msg.contentType = format === 'svg' ? 'image/svg+xml' : 'image/png';
        return msg;
      },
      doneText: (_out, job) => `${job.msg.plot ?? config.kind ?? 'loss'} plotted`,
    });
  }
  RED.nodes.registerType('plot', PlotNode);
};
