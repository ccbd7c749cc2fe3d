// Finding the digits in a photo of paper (or a board), the way a phone or a webcam takes it:
// light that falls off toward one side, shadows, rulings and grid lines, the desk around the
// page, JPEG noise. Thresholding against one global background reads such photos at chance level;
// what works (measured on simulated photos, docs/PHOTOS.md) is, in order:
//   1. the page's own brightness, estimated by a closing much wider than any pen stroke, divided
//      out (estimatePage, inkMap);
//   2. an ink threshold chosen from the corrected image (Otsu, never below the noise) (inkThreshold);
//   3. the ink's connected strokes (components), keeping those that are ink on the page and
//      dropping rulings, grid lines, the page's and shadows' edges and specks (scoreComponents);
//   4. the digit (or, for a number, each digit left to right) from what is left (pickDigits).
// Ink polarity (dark ink on paper or chalk on a board) comes from the page around the ink, never
// from the image border, which may be the desk.
// Pure JavaScript on the decoded 8-bit grey pixels; image.ts decodes and renders the 28x28.

/** 8-bit grey, row-major. */
export interface Grey8 { data: Uint8Array; width: number; height: number }
export interface Rect { left: number; top: number; width: number; height: number }

/** dark: dark ink on a light page; bright: light ink (chalk, white pen) on a dark board. */
export type Polarity = 'dark' | 'bright';

// ---------------------------------------------------------------- page and ink

/**
 * Grey-level hole filling (morphological reconstruction by erosion from the image border,
 * Vincent's hybrid algorithm: two raster scans, then a queue): every dark region that does not
 * reach the border is raised to the darkest level of the rim around it. Pen strokes are such
 * regions and vanish; what reaches the border stays as it is: the desk around a page, a shadow
 * falling across it, the light's falloff, and rulings and grid lines that run off the page.
 */
export function fillHoles(img: Grey8): Uint8Array {
  const { data: src, width: w, height: h } = img;
  const out = new Uint8Array(src.length).fill(255);
  for (let x = 0; x < w; x++) { out[x] = src[x]; out[(h - 1) * w + x] = src[(h - 1) * w + x]; }
  for (let y = 0; y < h; y++) { out[y * w] = src[y * w]; out[y * w + w - 1] = src[y * w + w - 1]; }
  // Forward scan: the rim level flows in from the top and the left.
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      const m = Math.min(out[i], out[i - 1], out[i - w - 1], out[i - w], out[i - w + 1]);
      out[i] = Math.max(src[i], m);
    }
  }
  // Backward scan, queueing the pixels that can still drop.
  const queue = new Int32Array(src.length);
  let head = 0, tail = 0;
  for (let y = h - 2; y >= 1; y--) {
    for (let x = w - 2; x >= 1; x--) {
      const i = y * w + x;
      const m = Math.min(out[i], out[i + 1], out[i + w - 1], out[i + w], out[i + w + 1]);
      const v = Math.max(src[i], m);
      out[i] = v;
      for (const j of [i + 1, i + w - 1, i + w, i + w + 1]) {
        if (out[j] > v && out[j] > src[j]) { queue[tail++] = i; break; }
      }
    }
  }
  // Propagation: each pixel's level spreads to the neighbours still above it.
  const enqueued = (j: number, v: number) => {
    const nv = Math.max(v, src[j]);
    if (out[j] > nv) { out[j] = nv; queue[tail] = j; tail = (tail + 1) % queue.length; }
  };
  while (head !== tail) {
    const i = queue[head];
    head = (head + 1) % queue.length;
    const x = i % w, y = (i - x) / w, v = out[i];
    if (y > 1) { if (x > 1) enqueued(i - w - 1, v); enqueued(i - w, v); if (x < w - 2) enqueued(i - w + 1, v); }
    if (x > 1) enqueued(i - 1, v);
    if (x < w - 2) enqueued(i + 1, v);
    if (y < h - 2) { if (x > 1) enqueued(i + w - 1, v); enqueued(i + w, v); if (x < w - 2) enqueued(i + w + 1, v); }
  }
  return out;
}

/**
 * The page's brightness where the ink is not (0-1): the image with its dark holes filled (for
 * bright ink, its bright islands flattened), so dividing by it takes out the lamp's falloff and
 * shadows and leaves the desk and the rulings at zero ink.
 */
export function estimatePage(img: Grey8, polarity: Polarity): Float32Array {
  const { data } = img;
  const out = new Float32Array(data.length);
  if (polarity === 'dark') {
    const filled = fillHoles(img);
    for (let i = 0; i < data.length; i++) out[i] = filled[i] / 255;
  } else {
    const inverted = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) inverted[i] = 255 - data[i];
    const filled = fillHoles({ ...img, data: inverted });
    for (let i = 0; i < data.length; i++) out[i] = 1 - filled[i] / 255;
  }
  return out;
}

/** Darkest page the light is divided out on; below it a pixel says nothing. */
const DARKEST_PAGE = 0.04;

/**
 * How much ink each pixel holds, 0 (page) to 1, with the page's light divided out. Dark ink:
 * 1 - pixel / page (a black line in the shadow reads like one in full light). Bright ink: how
 * many times brighter than the board the pixel is, scaled so the brightest ink is 1.
 * `residual` is the same measure unclamped, for the noise estimate.
 */
export function inkMap(img: Grey8, page: Float32Array, polarity: Polarity): { ink: Float32Array; residual: Float32Array } {
  const { data } = img;
  const n = data.length;
  const residual = new Float32Array(n);
  if (polarity === 'dark') {
    for (let i = 0; i < n; i++) residual[i] = 1 - data[i] / 255 / Math.max(page[i], DARKEST_PAGE);
    const ink = new Float32Array(n);
    for (let i = 0; i < n; i++) ink[i] = Math.min(1, Math.max(0, residual[i]));
    return { ink, residual };
  }
  for (let i = 0; i < n; i++) residual[i] = data[i] / 255 / Math.max(page[i], DARKEST_PAGE) - 1;
  // Chalk is a few times brighter than the board; its brightest levels set the scale.
  const sigma = noiseSigma(residual);
  const strong: number[] = [];
  for (let i = 0; i < n; i++) if (residual[i] > 4 * sigma + 0.05) strong.push(residual[i]);
  const top = strong.length ? quantileOf(strong, 0.99) : 1;
  const ink = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    residual[i] /= top;
    ink[i] = Math.min(1, Math.max(0, residual[i]));
  }
  return { ink, residual };
}

function quantileOf(values: ArrayLike<number>, q: number): number {
  const s = Float32Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1) + 0.5)))];
}

/** Robust standard deviation (1.4826 x median absolute deviation) of the residual, from a sample. */
export function noiseSigma(residual: Float32Array): number {
  const stride = Math.max(1, Math.floor(residual.length / 20000));
  const sample = new Float32Array(Math.ceil(residual.length / stride));
  for (let i = 0, k = 0; i < residual.length; i += stride) sample[k++] = residual[i];
  const med = quantileOf(sample, 0.5);
  for (let i = 0; i < sample.length; i++) sample[i] = Math.abs(sample[i] - med);
  return 1.4826 * quantileOf(sample, 0.5);
}

/** Never call anything ink that is this close to the page, even in a noiseless drawing. */
const MIN_INK = 0.06;

/**
 * Otsu's threshold between page and ink over the ink map, never below the noise: the page is
 * near 0 everywhere (rulings, the desk and shadows included), so the two classes are the page
 * and the ink, whatever the pen.
 */
export function inkThreshold(ink: Float32Array, sigma: number): number {
  const floor = Math.max(MIN_INK, 4 * sigma);
  const hist = new Float64Array(256);
  let sum = 0;
  for (let i = 0; i < ink.length; i++) {
    const b = Math.min(255, Math.floor(ink[i] * 256));
    hist[b]++; sum += b;
  }
  const n = ink.length;
  let best = -1, bestT = 0, w0 = 0, s0 = 0;
  for (let t = 0; t < 255; t++) {
    w0 += hist[t]; s0 += t * hist[t];
    if (w0 === 0 || w0 === n) continue;
    const m0 = s0 / w0, m1 = (sum - s0) / (n - w0);
    const between = w0 * (n - w0) * (m0 - m1) * (m0 - m1);
    if (between > best) { best = between; bestT = t + 1; }
  }
  return Math.max(floor, bestT / 256);
}

// ---------------------------------------------------------------- strokes

export interface Component {
  label: number;
  area: number;
  left: number; top: number; right: number; bottom: number;
  /** sum of the ink map over the component */
  mass: number;
  /** mean grey level (0-1) of its pixels */
  level: number;
  touchesBorder: boolean;
}

/** 8-connected components of `mask` (non-zero pixels): a label per pixel (0: none) and their stats. */
export function components(mask: Uint8Array, w: number, h: number, ink: Float32Array, grey: Uint8Array): { labels: Int32Array; list: Component[] } {
  const labels = new Int32Array(w * h);
  const parent: number[] = [0];
  const find = (a: number) => {
    while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; }
    return a;
  };
  const union = (a: number, b: number) => {
    const ra = find(a), rb = find(b);
    if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      let l = 0;
      const see = (j: number) => {
        const m = labels[j];
        if (!m) return;
        if (!l) l = m; else if (m !== l) union(l, m);
      };
      if (x > 0) see(i - 1);
      if (y > 0) {
        if (x > 0) see(i - w - 1);
        see(i - w);
        if (x < w - 1) see(i - w + 1);
      }
      if (!l) { l = parent.length; parent.push(l); }
      labels[i] = l;
    }
  }
  const byRoot = new Map<number, Component>();
  const list: Component[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!labels[i]) continue;
      const root = find(labels[i]);
      let c = byRoot.get(root);
      if (!c) {
        c = { label: list.length + 1, area: 0, left: x, top: y, right: x, bottom: y, mass: 0, level: 0, touchesBorder: false };
        byRoot.set(root, c);
        list.push(c);
      }
      labels[i] = c.label;
      c.area++; c.mass += ink[i]; c.level += grey[i] / 255;
      if (x < c.left) c.left = x;
      if (x > c.right) c.right = x;
      if (y < c.top) c.top = y;
      if (y > c.bottom) c.bottom = y;
      if (x === 0 || y === 0 || x === w - 1 || y === h - 1) c.touchesBorder = true;
    }
  }
  for (const c of list) c.level /= c.area;
  return { labels, list };
}

export interface Candidate extends Component {
  /** how much darker (for bright ink: brighter) than the page around it the stroke is, 0-1 */
  contrast: number;
}

/** Up to this many of the heaviest components are examined; the rest are specks. */
const MAX_CANDIDATES = 40;

/**
 * The components that can be ink, with their contrast against the page around them (the
 * filled level). Dropped: specks; long lines as thin as a pen line that cross much of the frame
 * (a ruling the hole filling did not take); and big solid regions, which are a page or a board
 * seen against the desk or the wall, not writing.
 */
export function scoreComponents(img: Grey8, page: Float32Array, list: Component[], labels: Int32Array): Candidate[] {
  const { data, width: w, height: h } = img;
  const short = Math.min(w, h);
  const minArea = Math.max(4, Math.round((0.012 * short) ** 2));
  const heavy = list.filter((c) => c.area >= minArea).sort((a, b) => b.mass - a.mass).slice(0, MAX_CANDIDATES);
  const out: Candidate[] = [];
  for (const c of heavy) {
    const bw = c.right - c.left + 1, bh = c.bottom - c.top + 1;
    // A ruling or grid line, or the paper between two rulings.
    if ((bw > 0.4 * w || bh > 0.4 * h) && c.area / Math.max(bw, bh) < 0.012 * short) continue;
    if (bw > 0.35 * w && bw > 6 * bh) continue;
    if (bw * bh > 0.1 * w * h && thickness(labels, w, c) > 0.15 * short) continue;
    let diff = 0;
    for (let y = c.top; y <= c.bottom; y++) {
      for (let x = c.left; x <= c.right; x++) {
        const i = y * w + x;
        if (labels[i] === c.label) diff += page[i] - data[i] / 255;
      }
    }
    out.push({ ...c, contrast: Math.abs(diff) / c.area });
  }
  return out;
}

/**
 * Radius of the largest square that fits inside the component (chessboard distance transform,
 * two passes over its box): a few pixels for pen strokes, a good part of the frame for a page
 * or a board seen as a region.
 */
export function thickness(labels: Int32Array, w: number, c: Component): number {
  const bw = c.right - c.left + 3, bh = c.bottom - c.top + 3; // a one-pixel frame of outside
  const d = new Int32Array(bw * bh);
  for (let y = 1; y < bh - 1; y++) {
    for (let x = 1; x < bw - 1; x++) if (labels[(c.top + y - 1) * w + c.left + x - 1] === c.label) d[y * bw + x] = 1 << 20;
  }
  for (let y = 1; y < bh - 1; y++) {
    for (let x = 1; x < bw - 1; x++) {
      const i = y * bw + x;
      if (d[i]) d[i] = Math.min(d[i], d[i - 1] + 1, d[i - bw - 1] + 1, d[i - bw] + 1, d[i - bw + 1] + 1);
    }
  }
  let best = 0;
  for (let y = bh - 2; y >= 1; y--) {
    for (let x = bw - 2; x >= 1; x--) {
      const i = y * bw + x;
      if (!d[i]) continue;
      d[i] = Math.min(d[i], d[i + 1] + 1, d[i + bw - 1] + 1, d[i + bw] + 1, d[i + bw + 1] + 1);
      if (d[i] > best) best = d[i];
    }
  }
  return best;
}

// ---------------------------------------------------------------- digits

/** A candidate must stand out from the page by this much (grey levels 0-1) to be ink at all. */
const MIN_CONTRAST = 0.12;

export interface Digit {
  /** box in the analysed image's pixels */
  box: Rect;
  /** labels of the components it is made of */
  parts: number[];
}

export interface PageAnalysis {
  polarity: Polarity;
  ink: Float32Array;
  labels: Int32Array;
  threshold: number;
  digits: Digit[];
  width: number;
  height: number;
}

/** Candidates drawn with the same pen as the best one: at least this share of its contrast and ink. */
const SAME_PEN = 0.45;

/**
 * The digit: the heaviest candidate and the pieces around it drawn with the same pen (a 5's
 * flag, a broken stroke). `many`: every digit-sized group of candidates on the best one's line,
 * left to right.
 */
export function pickDigits(cands: Candidate[], w: number, h: number, many: boolean): Digit[] {
  const ink = cands.filter((c) => c.contrast >= MIN_CONTRAST);
  if (!ink.length) return [];
  const best = ink.reduce((a, b) => (b.mass * b.contrast > a.mass * a.contrast ? b : a));
  const bestMean = best.mass / best.area;
  const pen = ink.filter((c) => c.contrast >= SAME_PEN * best.contrast && c.mass / c.area >= SAME_PEN * bestMean);
  const box = (c: { left: number; top: number; right: number; bottom: number }): Rect =>
    ({ left: c.left, top: c.top, width: c.right - c.left + 1, height: c.bottom - c.top + 1 });
  const minHeight = Math.max(4, 0.03 * Math.min(w, h));

  if (!many) {
    const group = grow([best], pen);
    const b = union(group);
    if (b.bottom - b.top + 1 < minHeight) return [];
    return [{ box: box(b), parts: group.map((c) => c.label) }];
  }
  // Groups: pieces that overlap in x belong to one digit; digits sit on one line.
  const sorted = pen.slice().sort((a, b) => a.left - b.left);
  const groups: Component[][] = [];
  for (const c of sorted) {
    const g = groups.find((gr) => {
      const u = union(gr);
      const overlap = Math.min(u.right, c.right) - Math.max(u.left, c.left) + 1;
      return overlap > 0.5 * Math.min(u.right - u.left + 1, c.right - c.left + 1);
    });
    if (g) g.push(c); else groups.push([c]);
  }
  const boxes = groups.map((g) => ({ g, u: union(g) }));
  const anchor = boxes.find((b) => b.g.includes(best))!;
  const ah = anchor.u.bottom - anchor.u.top + 1, acy = (anchor.u.top + anchor.u.bottom) / 2;
  const line = boxes.filter(({ u }) => {
    const gh = u.bottom - u.top + 1, cy = (u.top + u.bottom) / 2;
    return gh >= Math.max(minHeight, 0.4 * ah) && gh <= 2 * ah && Math.abs(cy - acy) < 0.6 * ah;
  });
  return line.sort((a, b) => a.u.left - b.u.left).map(({ g, u }) => ({ box: box(u), parts: g.map((c) => c.label) }));
}

function union(cs: Component[]): { left: number; top: number; right: number; bottom: number } {
  return {
    left: Math.min(...cs.map((c) => c.left)), top: Math.min(...cs.map((c) => c.top)),
    right: Math.max(...cs.map((c) => c.right)), bottom: Math.max(...cs.map((c) => c.bottom)),
  };
}

/** Adds the pieces within a third of the digit's height of it, as long as any is added. */
function grow(group: Component[], pool: Component[]): Component[] {
  const out = group.slice();
  for (let added = true; added;) {
    added = false;
    const u = union(out);
    const reach = 0.3 * (u.bottom - u.top + 1);
    for (const c of pool) {
      if (out.includes(c)) continue;
      if (c.left <= u.right + reach && c.right >= u.left - reach && c.top <= u.bottom + reach && c.bottom >= u.top - reach) {
        const grown = union([...out, c]);
        // A piece may not make the digit much taller or wider than a digit is.
        if (grown.bottom - grown.top + 1 > 1.6 * (u.bottom - u.top + 1) || grown.right - grown.left + 1 > 1.6 * (u.right - u.left + 1)) continue;
        out.push(c);
        added = true;
      }
    }
  }
  return out;
}

const inside = (a: Rect, b: Rect) =>
  a.left >= b.left && a.top >= b.top && a.left + a.width <= b.left + b.width && a.top + a.height <= b.top + b.height;

/**
 * Both polarities are tried. Each finds the other's holes: dark ink read as bright finds the
 * paper inside a 0 or an 8, chalk read as dark finds the board inside its loops. A hole lies
 * inside the digit that makes it, never the other way round, so when one reading's digit lies
 * inside the other's, the outer one is the ink. Otherwise the stronger (contrast, size) wins.
 */
export function analysePage(img: Grey8, many = false): PageAnalysis | null {
  const found: Array<{ a: PageAnalysis; score: number; box: Rect }> = [];
  for (const polarity of ['dark', 'bright'] as Polarity[]) {
    const page = estimatePage(img, polarity);
    const { ink, residual } = inkMap(img, page, polarity);
    const threshold = inkThreshold(ink, noiseSigma(residual));
    const mask = new Uint8Array(ink.length);
    for (let i = 0; i < ink.length; i++) mask[i] = ink[i] >= threshold ? 1 : 0;
    const { labels, list } = components(mask, img.width, img.height, ink, img.data);
    const cands = scoreComponents(img, page, list, labels);
    const digits = pickDigits(cands, img.width, img.height, many);
    if (!digits.length) continue;
    const parts = new Set(digits.flatMap((d) => d.parts));
    const used = cands.filter((c) => parts.has(c.label));
    const area = used.reduce((s, c) => s + c.area, 0);
    const contrast = used.reduce((s, c) => s + c.contrast * c.area, 0) / area;
    const box = digits.map((d) => d.box).reduce((u, b) => {
      const l = Math.min(u.left, b.left), t = Math.min(u.top, b.top);
      return { left: l, top: t, width: Math.max(u.left + u.width, b.left + b.width) - l, height: Math.max(u.top + u.height, b.top + b.height) - t };
    });
    found.push({ a: { polarity, ink, labels, threshold, digits, width: img.width, height: img.height }, score: contrast * Math.sqrt(area), box });
  }
  if (found.length < 2) return found[0]?.a ?? null;
  const [d, b] = found;
  if (inside(b.box, d.box) && !inside(d.box, b.box)) return d.a;
  if (inside(d.box, b.box) && !inside(b.box, d.box)) return b.a;
  return d.score >= b.score ? d.a : b.a;
}
