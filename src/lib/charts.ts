/**
 * Headless charts for the MNIST tutorial: Vega-Lite spec -> Vega view -> SVG -> PNG (sharp/librsvg).
 * Digits are embedded as data-URL PNG `image` marks; librsvg rasterises those, so no canvas is needed.
 */
import sharp from 'sharp';
import { pathToFileURL } from 'url';
import { MnistError, Params, message, shown } from './messages';
import type * as Vega from 'vega';
// (vega-lite's types are found only through its exports map, which this moduleResolution does not read)
import type * as VegaLite from 'vega-lite/build/index';

export interface ChartOptions {
  width?: number; height?: number; title?: string; logScale?: boolean /* loss only */;
  /** a chart's words in the user's language (catalog keys chart.*); English by default */
  text?: (key: string, params?: Params) => string;
}
export interface Rendered { png: Buffer; svg: string; }
export interface History {
  loss: number[] /* per batch */;
  epochs: { epoch: number; loss: number; seconds: number; valLoss?: number; valAccuracy?: number }[];
  batchesPerEpoch?: number;
}
/** images: Float32Array or Uint8Array with n*784 values (28x28 row-major); values either 0..255 (Uint8Array) or any float range (normalised data: map min..max of each image to black..white). */
export interface ImageSet { pixels: Float32Array | Uint8Array; count: number; rows?: number; cols?: number }

type GridOptions = ChartOptions & { rows?: number; cols?: number; classNames?: string[] };

// CJK fonts after the Latin ones: librsvg falls back per glyph, so Chinese labels render too.
const FONT = 'DejaVu Sans, Liberation Sans, WenQuanYi Zen Hei, Noto Sans CJK SC, sans-serif';
const RED = '#d62728';
const TEXT = '#222222';

const CONFIG = {
  // The output is a picture; aria labels would only duplicate every caption in the SVG.
  aria: false,
  font: FONT,
  background: 'white',
  title: { fontSize: 16, subtitleFontSize: 12, subtitleColor: '#555', anchor: 'start' as const },
  axis: { labelFontSize: 12, titleFontSize: 13, labelColor: TEXT, titleColor: TEXT },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  view: { stroke: null },
};

/** Beyond this a confusion matrix has more cells than a picture can show (and takes seconds to draw). */
export const MAX_CHART_CLASSES = 100;

// Nothing in a chart should ever be fetched: data is inline and images are data: URLs.
const refuse = async (uri: string): Promise<never> => {
  throw new Error(`charts: refusing to load external resource ${String(uri).slice(0, 60)}`);
};
const LOADER = {
  sanitize: async (uri: string) => {
    if (typeof uri === 'string' && uri.startsWith('data:')) return { href: uri };
    return refuse(uri);
  },
  load: refuse,
  http: refuse,
  file: refuse,
};

// vega 6 and vega-lite 6 are ES modules only. TypeScript's CommonJS output turns import() into
// require(), so the import is a real one, of the file require.resolve finds (our own dependency,
// wherever npm put it), loaded once on the first chart.
const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;
let libraries: Promise<{ vega: typeof Vega; vl: typeof VegaLite }> | undefined;
function vegaLibraries(): Promise<{ vega: typeof Vega; vl: typeof VegaLite }> {
  libraries ??= Promise.all(['vega', 'vega-lite'].map((name) => importModule(pathToFileURL(require.resolve(name)).href)))
    .then(([vega, vl]) => ({ vega: vega as typeof Vega, vl: vl as typeof VegaLite }));
  return libraries;
}

async function render(spec: object): Promise<Rendered> {
  const { vega, vl } = await vegaLibraries();
  /* eslint-disable @typescript-eslint/no-explicit-any -- vega's config and loader types are narrower than what they accept */
  const compiled = vl.compile(spec as VegaLite.TopLevelSpec, { config: CONFIG as any }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', loader: LOADER as any });
  /* eslint-enable @typescript-eslint/no-explicit-any */
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg)).flatten({ background: '#ffffff' }).png().toBuffer();
    return { png, svg };
  } finally {
    view.finalize();
  }
}

export function toDataUrl(png: Buffer): string {
  return 'data:image/png;base64,' + png.toString('base64');
}

function size(v: number | undefined, def: number, name: string): number {
  if (v === undefined) return def;
  if (!Number.isFinite(v) || v < 50 || v > 10000) throw new Error(`charts: ${name} must be a number between 50 and 10000, got ${v}`);
  return Math.round(v);
}

function say(opts: ChartOptions, key: string, params?: Params): string {
  return opts.text ? opts.text(`chart.${key}`, params) : message(`chart.${key}`, params);
}

function nameOf(classNames: string[] | undefined, k: number): string {
  return classNames?.[k] ?? String(k);
}

function checkClassNames(classNames: string[] | undefined, n?: number): void {
  if (classNames === undefined) return;
  if (!Array.isArray(classNames)) throw new Error('charts: classNames must be an array of strings');
  if (n !== undefined && classNames.length !== n) throw new MnistError('chart-class-names', { names: classNames.length, classes: n });
}

// ---------- digit images ----------

function checkImages(images: ImageSet): { h: number; w: number } {
  if (!images || !(images.pixels instanceof Float32Array || images.pixels instanceof Uint8Array)) {
    throw new Error('charts: images.pixels must be a Float32Array or Uint8Array');
  }
  const h = images.rows ?? 28, w = images.cols ?? 28;
  if (!Number.isInteger(images.count) || images.count <= 0) throw new Error(`charts: images.count must be a positive integer, got ${images.count}`);
  if (!Number.isInteger(h) || !Number.isInteger(w) || h <= 0 || w <= 0) throw new Error('charts: images.rows/cols must be positive integers');
  if (images.pixels.length !== images.count * h * w) {
    throw new Error(`charts: images.pixels has ${images.pixels.length} values, expected count*${h}*${w} = ${images.count * h * w}`);
  }
  return { h, w };
}

function checkLength(name: string, arr: ArrayLike<number>, n: number): void {
  if (!arr || typeof arr.length !== 'number') throw new Error(`charts: ${name} must be an array of numbers`);
  if (arr.length !== n) throw new Error(`charts: ${name} has ${arr.length} entries but there are ${n} images`);
}

/** Grey PNG data URL of image i, scaled up with nearest-neighbour so pixels stay crisp. */
async function digitUrl(images: ImageSet, i: number, px: number): Promise<string> {
  const h = images.rows ?? 28, w = images.cols ?? 28, n = h * w;
  const src = images.pixels.subarray(i * n, (i + 1) * n);
  let raw: Uint8Array;
  if (src instanceof Uint8Array) {
    raw = src;
  } else {
    // Normalised floats can have any range (e.g. z-scored), so stretch each image to 0..255.
    let lo = Infinity, hi = -Infinity;
    for (const v of src) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
    const span = hi > lo ? 255 / (hi - lo) : 0;
    raw = new Uint8Array(n);
    for (let k = 0; k < n; k++) raw[k] = Number.isFinite(src[k]) ? Math.round((src[k] - lo) * span) : 0;
  }
  const png = await sharp(Buffer.from(raw.buffer, raw.byteOffset, n), { raw: { width: w, height: h, channels: 1 } })
    .resize(px, px, { kernel: 'nearest', fit: 'fill' }).png().toBuffer();
  return toDataUrl(png);
}

interface Cell { index: number; lines: string[]; color: string; wrong: boolean }

/**
 * Grid of digits with captions. Positions are computed here (scale: null = raw pixels) instead of
 * faceting, so the output size is exactly width x height and cells never reflow.
 */
async function digitGrid(images: ImageSet, cells: Cell[], rows: number, cols: number, title: string | undefined, opts: ChartOptions): Promise<Rendered> {
  const pad = 10, titleH = title ? 32 : 0;
  const lineCount = Math.max(1, ...cells.map((c) => c.lines.length));
  const captionH = 16 * lineCount + 6;
  const width = size(opts.width, pad * 2 + cols * 112, 'width');
  const height = size(opts.height, pad * 2 + titleH + rows * (84 + captionH + 12), 'height');
  const cellW = (width - 2 * pad) / cols, cellH = (height - 2 * pad - titleH) / rows;
  const img = Math.floor(Math.min(cellW - 8, cellH - captionH - 8));
  if (img < 14) throw new MnistError('chart-too-small', { width, height, rows, cols });

  const values = await Promise.all(cells.map(async (c, k) => {
    const r = Math.floor(k / cols), col = k % cols;
    const cx = pad + (col + 0.5) * cellW, top = pad + titleH + r * cellH;
    return {
      url: await digitUrl(images, c.index, img),
      x: cx, y: top + captionH + 2 + img / 2, tx: cx, ty: top + 2,
      caption: c.lines.join('\n'), color: c.color, stroke: c.wrong ? RED : 'transparent',
    };
  }));
  const layers: object[] = [
    { mark: { type: 'image', width: img, height: img },
      encoding: { x: { field: 'x', type: 'quantitative', scale: null }, y: { field: 'y', type: 'quantitative', scale: null }, url: { field: 'url', type: 'nominal' } } },
    // The frame makes mistakes visible at a glance, even when captions are tiny.
    { mark: { type: 'rect', width: img + 4, height: img + 4, strokeWidth: 3, fillOpacity: 0 },
      encoding: { x: { field: 'x', type: 'quantitative', scale: null }, y: { field: 'y', type: 'quantitative', scale: null }, stroke: { field: 'stroke', type: 'nominal', scale: null } } },
    { mark: { type: 'text', baseline: 'top', align: 'center', fontSize: Math.min(13, Math.max(9, img / 6.5)), lineBreak: '\n', lineHeight: 16 },
      encoding: { x: { field: 'tx', type: 'quantitative', scale: null }, y: { field: 'ty', type: 'quantitative', scale: null },
        text: { field: 'caption' }, color: { field: 'color', type: 'nominal', scale: null } } },
  ];
  if (title) {
    layers.push({ data: { values: [{ t: title }] }, mark: { type: 'text', baseline: 'top', align: 'left', fontSize: 16, fontWeight: 'bold', color: TEXT, x: pad, y: pad }, encoding: { text: { field: 't' } } });
  }
  return render({ width, height, autosize: { type: 'none' }, padding: 0, data: { values }, layer: layers });
}

function gridShape(opts: { rows?: number; cols?: number }, defRows: number, defCols: number): { rows: number; cols: number } {
  const rows = opts.rows ?? defRows, cols = opts.cols ?? defCols;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0 || rows * cols > 400) {
    throw new Error(`charts: rows and cols must be positive integers (at most 400 cells), got ${rows}x${cols}`);
  }
  return { rows, cols };
}

/** The first rows*cols images captioned "label: 5", like the tutorial's sample figure. */
export async function sampleGrid(images: ImageSet, labels: ArrayLike<number>, opts: GridOptions = {}): Promise<Rendered> {
  checkImages(images);
  checkLength('labels', labels, images.count);
  checkClassNames(opts.classNames);
  const shape = gridShape(opts, 2, 3);
  const n = Math.min(images.count, shape.rows * shape.cols);
  const cells = Array.from({ length: n }, (_, i) => ({ index: i, lines: [say(opts, 'label', { name: nameOf(opts.classNames, labels[i]) })], color: TEXT, wrong: false }));
  return digitGrid(images, cells, Math.ceil(n / shape.cols), shape.cols, opts.title, opts);
}

/** Predictions captioned "pred 3 (true 5)"; wrong ones get a red caption and frame. */
export async function predictionGrid(images: ImageSet, labels: ArrayLike<number>, predicted: ArrayLike<number>, opts: GridOptions = {}): Promise<Rendered> {
  checkImages(images);
  checkLength('labels', labels, images.count);
  checkLength('predicted', predicted, images.count);
  checkClassNames(opts.classNames);
  const shape = gridShape(opts, 4, 5);
  const n = Math.min(images.count, shape.rows * shape.cols);
  let right = 0;
  const cells = Array.from({ length: n }, (_, i) => {
    const wrong = predicted[i] !== labels[i];
    if (!wrong) right++;
    return { index: i, lines: [say(opts, 'pred', { pred: nameOf(opts.classNames, predicted[i]), true: nameOf(opts.classNames, labels[i]) })], color: wrong ? RED : TEXT, wrong };
  });
  const title = opts.title ?? say(opts, 'predictions', { right, n });
  return digitGrid(images, cells, Math.ceil(n / shape.cols), shape.cols, title, opts);
}

/**
 * The most confident wrong predictions, most confident first; with `pair`, only the images of
 * one class read as another (a cell of the confusion matrix).
 */
export async function mistakesGallery(images: ImageSet, labels: ArrayLike<number>, predicted: ArrayLike<number>, confidence: ArrayLike<number>,
  opts: ChartOptions & { count?: number; classNames?: string[]; pair?: { true: number; predicted: number } } = {}): Promise<Rendered> {
  checkImages(images);
  checkLength('labels', labels, images.count);
  checkLength('predicted', predicted, images.count);
  checkLength('confidence', confidence, images.count);
  checkClassNames(opts.classNames);
  const count = opts.count ?? 10;
  if (!Number.isInteger(count) || count <= 0 || count > 400) throw new Error(`charts: count must be an integer between 1 and 400, got ${count}`);
  const { pair } = opts;
  const wrong: number[] = [];
  for (let i = 0; i < images.count; i++) {
    if (pair ? labels[i] === pair.true && predicted[i] === pair.predicted : predicted[i] !== labels[i]) wrong.push(i);
  }
  const names = pair && { true: nameOf(opts.classNames, pair.true), pred: nameOf(opts.classNames, pair.predicted) };
  const title = opts.title ?? (names ? say(opts, 'pair', { ...names, count: wrong.length }) : say(opts, 'mistakes'));
  if (wrong.length === 0) {
    const width = size(opts.width, 400, 'width'), height = size(opts.height, 160, 'height');
    return noMistakesChart(title, names ? say(opts, 'no-pair', names) : say(opts, 'no-mistakes', { n: images.count }), width, height);
  }
  // NaN confidence would break the sort; treat it as least confident.
  const conf = (i: number) => (Number.isFinite(confidence[i]) ? confidence[i] : -Infinity);
  wrong.sort((a, b) => conf(b) - conf(a) || a - b);
  const picked = wrong.slice(0, count);
  const fmt = (c: number) => (Number.isFinite(c) ? (c <= 1 ? `${(c * 100).toFixed(1)}%` : c.toFixed(2)) : 'n/a');
  const cells = picked.map((i) => ({
    index: i,
    lines: [say(opts, 'pred', { pred: nameOf(opts.classNames, predicted[i]), true: nameOf(opts.classNames, labels[i]) }), say(opts, 'conf', { value: fmt(confidence[i]) })],
    color: pair && pair.true === pair.predicted ? TEXT : RED, wrong: !pair || pair.true !== pair.predicted,
  }));
  const cols = Math.min(5, picked.length);
  return digitGrid(images, cells, Math.ceil(picked.length / cols), cols, title, opts);
}

async function noMistakesChart(title: string, note: string, width: number, height: number): Promise<Rendered> {
  return render({
    width, height, autosize: { type: 'none' }, padding: 0,
    layer: [
      { data: { values: [{ t: title }] }, mark: { type: 'text', align: 'left', baseline: 'top', fontSize: 16, fontWeight: 'bold', x: 10, y: 10, color: TEXT }, encoding: { text: { field: 't' } } },
      { data: { values: [{ t: note }] }, mark: { type: 'text', align: 'center', fontSize: 18, x: width / 2, y: height / 2 + 10, color: TEXT }, encoding: { text: { field: 't' } } },
    ],
  });
}

// ---------- plain charts ----------

/** Points a loss curve draws at most: longer histories are averaged in buckets. */
export const MAX_CURVE_POINTS = 2000;

/**
 * Per-batch loss with a dashed rule and a dot (mean epoch loss) at every epoch end; with
 * validation, the held-out loss per epoch on the same axis and the held-out accuracy on its own.
 */
export async function lossCurve(history: History, opts: ChartOptions = {}): Promise<Rendered> {
  if (!history || !Array.isArray(history.loss) || !Array.isArray(history.epochs)) throw new MnistError('history-invalid');
  if (history.loss.length === 0) throw new MnistError('history-empty');
  const log = !!opts.logScale;
  // Log axes cannot show zero/negative values and NaN would break the line.
  const ok = (v: number) => Number.isFinite(v) && (!log || v > 0);
  const total = history.loss.length;
  const bucket = Math.ceil(total / MAX_CURVE_POINTS);
  const batches: Array<{ batch: number; loss: number }> = [];
  for (let lo = 0; lo < total; lo += bucket) {
    const part = history.loss.slice(lo, lo + bucket).filter(ok);
    if (part.length) batches.push({ batch: lo + (Math.min(bucket, total - lo) + 1) / 2, loss: part.reduce((s, v) => s + v, 0) / part.length });
  }
  if (batches.length === 0) throw new MnistError(log ? 'history-no-positive' : 'history-no-finite');

  const nEp = history.epochs.length;
  const bpe = history.batchesPerEpoch ?? (nEp > 0 ? total / nEp : 0);
  if (!Number.isFinite(bpe) || bpe < 0) throw new MnistError('history-batches', { value: shown(history.batchesPerEpoch) });
  const epochs = history.epochs.map((e, i) => ({
    end: Math.min(Math.round((i + 1) * bpe), total), loss: e.loss, label: say(opts, 'epoch', { n: e.epoch }),
    valLoss: e.valLoss, valAccuracy: e.valAccuracy,
  }));
  const dots = epochs.filter((e) => ok(e.loss));
  const validated = epochs.filter((e) => ok(e.valLoss as number));
  const seconds = history.epochs.reduce((s, e) => s + (Number.isFinite(e.seconds) ? e.seconds : 0), 0);
  // Kept short: headless Vega over-estimates text width (0.8em/char) and a long subtitle squeezes the plot.
  const subtitle = nEp > 0 ? say(opts, 'loss-subtitle', { epochs: nEp, seconds: seconds.toFixed(1) }) : say(opts, 'batches', { count: total });

  const series = [say(opts, 'train-loss'), say(opts, 'epoch-loss'), ...(validated.length ? [say(opts, 'val-loss'), say(opts, 'val-accuracy')] : [])];
  const colors = ['#4c78a8', '#f58518', '#54a24b', '#e45756'];
  const color = (k: number) => ({ datum: series[k], scale: { domain: series, range: colors.slice(0, series.length) }, legend: validated.length ? { orient: 'bottom', title: null, columns: 2, columnPadding: 24, labelLimit: 260, symbolType: 'stroke' } : null });
  const x = { field: 'batch', type: 'quantitative', title: say(opts, 'batch'), scale: { domain: [1, Math.max(2, total)], nice: false } };
  const y = { field: 'loss', type: 'quantitative', title: say(opts, log ? 'loss-log' : 'loss'), scale: log ? { type: 'log' } : { zero: false } };
  const lossLayers: object[] = [
    { data: { values: batches }, mark: { type: 'line', strokeWidth: 1.2 }, encoding: { x, y, color: color(0) } },
  ];
  if (epochs.length > 0) {
    lossLayers.push({ data: { values: epochs }, mark: { type: 'rule', color: '#999', strokeDash: [4, 3] }, encoding: { x: { ...x, field: 'end' } } });
    if (epochs.length <= 12) {
      lossLayers.push({ data: { values: epochs }, mark: { type: 'text', align: 'right', baseline: 'top', dx: -3, dy: 3, fontSize: 10, color: '#666' },
        encoding: { x: { ...x, field: 'end' }, y: { value: 0 }, text: { field: 'label' } } });
    }
    if (dots.length > 0) {
      lossLayers.push({ data: { values: dots }, mark: { type: 'point', filled: true, size: 50 }, encoding: { x: { ...x, field: 'end' }, y, color: color(1) } });
    }
    if (validated.length > 0) {
      lossLayers.push({ data: { values: validated }, mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
        encoding: { x: { ...x, field: 'end' }, y: { ...y, field: 'valLoss' }, color: color(2) } });
    }
  }
  const accuracy = validated.filter((e) => Number.isFinite(e.valAccuracy));
  const layer = accuracy.length === 0 ? lossLayers : [
    { layer: lossLayers },
    { data: { values: accuracy }, mark: { type: 'line', point: { filled: true, size: 50 }, strokeDash: [6, 3], strokeWidth: 2 },
      encoding: { x: { ...x, field: 'end' }, color: color(3),
        y: { field: 'valAccuracy', type: 'quantitative', title: say(opts, 'val-accuracy'), scale: { zero: false }, axis: { format: '.1%', orient: 'right' } } } },
  ];
  return render({
    width: size(opts.width, 480, 'width'), height: size(opts.height, accuracy.length ? 360 : 320, 'height'),
    autosize: { type: 'fit', contains: 'padding' }, padding: 8,
    title: { text: opts.title ?? say(opts, 'loss-title'), subtitle },
    layer,
    ...(accuracy.length ? { resolve: { scale: { y: 'independent' } } } : {}),
  });
}

/** Heatmap, rows = true class, columns = predicted class, with the count written in each cell. */
export async function confusionMatrix(matrix: number[][], opts: ChartOptions & { classNames?: string[] } = {}): Promise<Rendered> {
  if (!Array.isArray(matrix) || matrix.length === 0) throw new MnistError('confusion-empty');
  if (matrix.length > MAX_CHART_CLASSES) throw new MnistError('chart-too-many-classes', { classes: matrix.length, max: MAX_CHART_CLASSES });
  const n = matrix.length;
  matrix.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== n) throw new MnistError('confusion-not-square', { row: i, entries: Array.isArray(row) ? row.length : 0, expected: n });
    row.forEach((v, j) => { if (!Number.isFinite(v) || v < 0) throw new MnistError('confusion-entry', { row: i, col: j, value: shown(v) }); });
  });
  checkClassNames(opts.classNames, n);
  const names = Array.from({ length: n }, (_, k) => nameOf(opts.classNames, k));
  const max = Math.max(...matrix.flat());
  const values = matrix.flatMap((row, i) => row.map((count, j) => ({ true: names[i], pred: names[j], count })));
  const total = values.reduce((s, d) => s + d.count, 0);
  const diag = matrix.reduce((s, row, i) => s + row[i], 0);
  const side = size(opts.width, 440, 'width');
  const enc = {
    x: { field: 'pred', type: 'ordinal', sort: names, title: say(opts, 'predicted'), axis: { labelAngle: 0, orient: 'top' } },
    y: { field: 'true', type: 'ordinal', sort: names, title: say(opts, 'true') },
  };
  return render({
    width: side, height: size(opts.height, side + 30, 'height'),
    autosize: { type: 'fit', contains: 'padding' }, padding: 8,
    title: { text: opts.title ?? say(opts, 'confusion'), subtitle: total > 0 ? say(opts, 'confusion-subtitle', { accuracy: ((100 * diag) / total).toFixed(2), total }) : say(opts, 'no-samples') },
    data: { values },
    layer: [
      { mark: { type: 'rect', stroke: '#e6e6e6', strokeWidth: 1 },
        encoding: { ...enc, // symlog so that the few confusions (the interesting cells) are visibly coloured next to ~1000 on the diagonal.
        color: { condition: { test: 'datum.count === 0', value: '#ffffff' },
          field: 'count', type: 'quantitative', scale: { type: 'symlog', domain: [0, Math.max(1, max)], scheme: 'blues' }, legend: null } } },
      { mark: { type: 'text', fontSize: n <= 12 ? 11 : 8 },
        encoding: { ...enc, text: { field: 'count', type: 'quantitative', format: 'd' },
          // Dark cells get white text so counts stay legible.
          color: { condition: { test: `log(1 + datum.count) > ${0.55 * Math.log1p(max)}`, value: 'white' }, value: TEXT } } },
    ],
  });
}

/** One bar per class, accuracy on a fixed 0..1 axis so charts from different runs compare. */
export async function perClassAccuracy(accuracy: number[], opts: ChartOptions & { classNames?: string[] } = {}): Promise<Rendered> {
  if (!Array.isArray(accuracy) || accuracy.length === 0) throw new MnistError('perclass-empty');
  if (accuracy.length > MAX_CHART_CLASSES) throw new MnistError('chart-too-many-classes', { classes: accuracy.length, max: MAX_CHART_CLASSES });
  accuracy.forEach((a, i) => { if (!Number.isFinite(a) || a < 0 || a > 1) throw new MnistError('perclass-entry', { index: i, value: shown(a) }); });
  checkClassNames(opts.classNames, accuracy.length);
  const names = accuracy.map((_, k) => nameOf(opts.classNames, k));
  const values = accuracy.map((acc, k) => ({ cls: names[k], acc }));
  const mean = accuracy.reduce((s, a) => s + a, 0) / accuracy.length;
  const x = { field: 'cls', type: 'ordinal', sort: names, title: say(opts, 'class'), axis: { labelAngle: 0 } };
  const y = { field: 'acc', type: 'quantitative', title: say(opts, 'accuracy'), scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  return render({
    width: size(opts.width, 480, 'width'), height: size(opts.height, 300, 'height'),
    autosize: { type: 'fit', contains: 'padding' }, padding: 8,
    title: { text: opts.title ?? say(opts, 'perclass'), subtitle: say(opts, 'mean', { value: (mean * 100).toFixed(1) }) },
    data: { values },
    layer: [
      { mark: { type: 'bar', color: '#4c78a8' }, encoding: { x, y } },
      { mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10, color: TEXT }, encoding: { x, y, text: { field: 'acc', type: 'quantitative', format: '.1%' } } },
    ],
  });
}
