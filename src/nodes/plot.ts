import type { Node, NodeAPI, NodeDef } from 'node-red';
import * as charts from '../lib/charts';
import { SplitView, toFloats } from '../lib/dataset';
import { MnistError, shown } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import { classify } from '../lib/predict';
import * as registry from '../lib/registry';
import { Msg, attach, needSplit, options } from './common';
import { Values } from './options';
import type { OPTIONS } from './options';

type PlotOptions = Values<typeof OPTIONS['plot']>;

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

/** msg.plot: a kind ("confusion"), or { kind: "mistakes", true: 5, predicted: 3 } for one cell of the confusion matrix. */
function plotRequest(msg: Msg): { kind?: unknown; pair?: { true: number; predicted: number } } {
  const p = msg.plot;
  if (p === undefined || p === null || typeof p !== 'object' || Array.isArray(p)) return { kind: p };
  if (!Object.hasOwn(p, 'true') && !Object.hasOwn(p, 'predicted')) return { kind: p.kind };
  const cls = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : NaN);
  const pair = { true: cls(p.true), predicted: cls(p.predicted) };
  if (Number.isNaN(pair.true) || Number.isNaN(pair.predicted)) throw new MnistError('plot-pair-invalid', { value: shown(p) });
  return { kind: p.kind ?? 'mistakes', pair };
}

async function render(msg: Msg, o: PlotOptions, chart: charts.ChartOptions, pair?: { true: number; predicted: number }): Promise<charts.Rendered> {
  const which = o.split as 'train' | 'test';
  const classNames: string[] | undefined = msg.dataset?.classes;
  switch (o.kind) {
    case 'samples': {
      const { images, labels } = firstImages(needSplit(msg, which), 6);
      return charts.sampleGrid(images, labels, { ...chart, classNames });
    }
    case 'loss':
      if (!msg.history || !Array.isArray(msg.history.loss)) throw new MnistError('no-history');
      return charts.lossCurve(msg.history, chart);
    case 'predictions': {
      const p = predictSplit(msg, needSplit(msg, which), 20);
      return charts.predictionGrid(p.images, p.labels, p.predicted, { ...chart, classNames });
    }
    case 'mistakes': {
      const view = needSplit(msg, which);
      if (pair && (pair.true >= view.classes || pair.predicted >= view.classes)) throw new MnistError('plot-pair-range', { true: pair.true, predicted: pair.predicted, classes: view.classes });
      const p = predictSplit(msg, view, Math.min(view.count, 10000));
      return charts.mistakesGallery(p.images, p.labels, p.predicted, p.confidence, { ...chart, classNames, count: o.count, pair });
    }
    default: {
      const m = msg.metrics;
      if (!m || !Array.isArray(m.confusion)) throw new MnistError('no-metrics');
      return o.kind === 'confusion' ? charts.confusionMatrix(m.confusion, { ...chart, classNames }) : charts.perClassAccuracy(m.perClass, { ...chart, classNames });
    }
  }
}

export = (RED: NodeAPI) => {
  function PlotNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    let kind = '';
    attach(RED, node, {
      async run({ msg, t }) {
        const request = plotRequest(msg);
        const o = options('plot', config, { ...msg, plot: request.kind });
        if (request.pair && o.kind !== 'mistakes') throw new MnistError('plot-pair-kind', { kind: o.kind });
        kind = o.kind;
        const chart: charts.ChartOptions = {
          text: t,
          width: Number.isNaN(o.width) ? undefined : o.width,
          height: Number.isNaN(o.height) ? undefined : o.height,
          title: o.title || undefined,
          logScale: o.logScale,
        };
        const out = await render(msg, o, chart, request.pair);
        const dataUrl = charts.toDataUrl(out.png);
        // The editor's "MNIST plots" sidebar shows the latest picture of each plot node.
        RED.comms.publish(`mnist-plot/${node.id}`, { id: node.id, name: config.name || o.kind, kind: o.kind, image: dataUrl }, true);
        msg.payload = o.format === 'png' ? out.png : o.format === 'svg' ? out.svg : dataUrl;
        msg.contentType = o.format === 'svg' ? 'image/svg+xml' : 'image/png';
        return msg;
      },
      doneText: (_out, { t }) => t('plot.status.done', { kind: t(`plot.short.${kind}`) }),
    });
  }
  RED.nodes.registerType('plot', PlotNode);
};
