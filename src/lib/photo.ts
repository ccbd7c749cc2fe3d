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
  // Backward scan, queueing the pixels whose level can still flow to a neighbour.
  const queue = new Int32Array(src.length + 1);
  const size = queue.length;
  let head = 0, tail = 0;
  for (let y = h - 2; y >= 1; y--) {
    for (let x = w - 2; x >= 1; x--) {
      const i = y * w + x;
      let m = out[i];
      if (out[i + 1] < m) m = out[i + 1];
      if (out[i + w - 1] < m) m = out[i + w - 1];
      if (out[i + w] < m) m = out[i + w];
      if (out[i + w + 1] < m) m = out[i + w + 1];
      const v = src[i] > m ? src[i] : m;
      out[i] = v;
      if ((out[i + 1] > v && out[i + 1] > src[i + 1]) || (out[i + w - 1] > v && out[i + w - 1] > src[i + w - 1]) ||
        (out[i + w] > v && out[i + w] > src[i + w]) || (out[i + w + 1] > v && out[i + w + 1] > src[i + w + 1])) {
        queue[tail++] = i;
      }
    }
  }
  // Propagation: each pixel's level spreads to the neighbours still above it (the frame stays).
  while (head !== tail) {
    const i = queue[head];
    head = head + 1 === size ? 0 : head + 1;
    const x = i % w, y = (i - x) / w, v = out[i];
    for (let dy = -1; dy <= 1; dy++) {
      const yy = y + dy;
      if (yy < 1 || yy > h - 2) continue;
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx;
        if ((dx === 0 && dy === 0) || xx < 1 || xx > w - 2) continue;
        const j = yy * w + xx;
        const nv = src[j] > v ? src[j] : v;
        if (out[j] > nv) {
          out[j] = nv;
          queue[tail] = j;
          tail = tail + 1 === size ? 0 : tail + 1;
        }
      }
    }
  }
  return out;
}

/**
 * The page's brightness where the ink is not (0-1): the image with its dark holes filled (for
 * bright ink, its bright islands flattened), so dividing by it takes out the lamp's falloff and
 * shadows and leaves the desk and the rulings at zero ink. Filled on a copy pooled 2x2 to the
 * darkest pixel (for bright ink the brightest), which keeps every ruling and stroke: a quarter of
 * the work, and a pixel brighter than its block's fill is page anyway.
 */
export function estimatePage(img: Grey8, polarity: Polarity): Float32Array {
  const { data, width: w, height: h } = img;
  const dark = polarity === 'dark';
  const f = w >= 64 && h >= 64 ? 2 : 1;
  const lw = Math.ceil(w / f), lh = Math.ceil(h / f);
  // On the dark-ink scale (bright ink is inverted), pooled to each block's darkest pixel.
  const low = new Uint8Array(lw * lh).fill(255);
  const shift = f === 2 ? 1 : 0;
  for (let y = 0; y < h; y++) {
    const row = (y >> shift) * lw, src = y * w;
    for (let x = 0; x < w; x++) {
      const v = dark ? data[src + x] : 255 - data[src + x];
      const i = row + (x >> shift);
      if (v < low[i]) low[i] = v;
    }
  }
  const filled = fillHoles({ data: low, width: lw, height: lh });
  const level = new Float32Array(256);
  for (let u = 0; u < 256; u++) level[u] = dark ? u / 255 : 1 - u / 255;
  const out = new Float32Array(data.length);
  for (let y = 0; y < h; y++) {
    const row = (y >> shift) * lw, o = y * w;
    for (let x = 0; x < w; x++) out[o + x] = level[filled[row + (x >> shift)]];
  }
  return out;
}

/** Darkest level the light is divided out on; below it a pixel says nothing. */
const DARKEST = 0.03;

/**
 * The sensor's noise in grey levels (0-1): the robust spread of the differences between
 * horizontal neighbours, most of which lie on the page.
 */
export function noiseLevel(img: Grey8): number {
  const { data, width: w } = img;
  const hist = new Uint32Array(256);
  let n = 0;
  for (let i = 0; i + 1 < data.length; i += 3) {
    if ((i + 1) % w === 0) continue;
    hist[Math.abs(data[i + 1] - data[i])]++;
    n++;
  }
  let seen = 0, median = 0;
  while (median < 255 && (seen += hist[median]) < n / 2) median++;
  return (1.4826 * median) / Math.SQRT2 / 255;
}

/**
 * How much ink each pixel holds, 0 (page) to 1, with the page's light divided out: for dark ink
 * 1 - pixel / page, for bright ink 1 - page / pixel. A black line reads the same in the shadow as
 * in full light, and chalk the same in a dim corner of the board. A pixel that differs from the
 * page by less than `floor` grey levels (the noise) holds none: in the dark, noise divided by a
 * dim page would look like ink.
 */
export function inkMap(img: Grey8, page: Float32Array, polarity: Polarity, floor = 0): Float32Array {
  const { data } = img;
  const ink = new Float32Array(data.length);
  const dark = polarity === 'dark';
  for (let i = 0; i < data.length; i++) {
    const v = data[i] / 255, p = page[i];
    if (dark) {
      if (p - v < floor || p < DARKEST) continue;
      ink[i] = 1 - v / p;
    } else {
      if (v - p < floor || v < DARKEST) continue;
      ink[i] = 1 - p / v;
    }
  }
  return ink;
}

function quantileOf(values: ArrayLike<number>, q: number): number {
  const s = Float32Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1) + 0.5)))];
}

/** Ink differs from the page by at least this many times the noise. */
const NOISE = 3;

/** Never call anything ink that is this close to the page, even in a noiseless drawing. */
const MIN_INK = 0.06;

/**
 * Otsu's threshold between page and ink over the ink map, never below MIN_INK: the page is
 * near 0 everywhere (rulings, the desk and shadows included), so the two classes are the page
 * and the ink, whatever the pen.
 */
export function inkThreshold(ink: Float32Array): number {
  const floor = MIN_INK;
  const hist = new Int32Array(256);
  for (let i = 0; i < ink.length; i++) hist[(ink[i] * 255.99) | 0]++;
  let sum = 0;
  for (let b = 0; b < 256; b++) sum += b * hist[b];
  const n = ink.length;
  let best = -1, bestT = 0, w0 = 0, s0 = 0;
  for (let t = 0; t < 255; t++) {
    w0 += hist[t]; s0 += t * hist[t];
    if (w0 === 0 || w0 === n) continue;
    const m0 = s0 / w0, m1 = (sum - s0) / (n - w0);
    const between = w0 * (n - w0) * (m0 - m1) * (m0 - m1);
    if (between > best) { best = between; bestT = t + 1; }
  }
  return Math.max(floor, bestT / 255.99);
}

/**
 * Ink pixels: at least the threshold, or half of it and connected to such a pixel (the paler
 * stretch of a stroke that runs into a shadow). Half the threshold is still far above anything
 * the page estimate leaves behind: rulings, the desk and shadows are at zero.
 */
export function inkMask(ink: Float32Array, w: number, h: number, threshold: number): Uint8Array {
  const mask = new Uint8Array(ink.length);
  const stack = new Int32Array(ink.length);
  let top = 0;
  for (let i = 0; i < ink.length; i++) if (ink[i] >= threshold) { mask[i] = 1; stack[top++] = i; }
  const low = threshold / 2;
  while (top > 0) {
    const i = stack[--top];
    const x = i % w, y = (i - x) / w;
    const x0 = x > 0 ? -1 : 0, x1 = x < w - 1 ? 1 : 0, y0 = y > 0 ? -1 : 0, y1 = y < h - 1 ? 1 : 0;
    for (let dy = y0; dy <= y1; dy++) {
      for (let dx = x0; dx <= x1; dx++) {
        const j = i + dy * w + dx;
        if (mask[j] === 0 && ink[j] >= low) { mask[j] = 1; stack[top++] = j; }
      }
    }
  }
  return mask;
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
  // Union-find over provisional labels; a row never needs more than w/2 + 1 new ones.
  let parent = new Int32Array(1024);
  let next = 1;
  const find = (a: number) => {
    while (parent[a] !== a) { parent[a] = parent[parent[a]]; a = parent[a]; }
    return a;
  };
  const join = (a: number, b: number) => {
    if (!a) return b;
    if (!b || a === b) return a;
    const ra = find(a), rb = find(b);
    if (ra < rb) { parent[rb] = ra; return ra; }
    parent[ra] = rb;
    return rb;
  };
  for (let y = 0; y < h; y++) {
    if (next + w > parent.length) { const grown = new Int32Array(parent.length * 2 + w); grown.set(parent); parent = grown; }
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!mask[i]) continue;
      let l = x > 0 ? labels[i - 1] : 0;
      if (y > 0) {
        if (x > 0) l = join(l, labels[i - w - 1]);
        l = join(l, labels[i - w]);
        if (x < w - 1) l = join(l, labels[i - w + 1]);
      }
      if (!l) { l = next++; parent[l] = l; }
      labels[i] = l;
    }
  }
  const index = new Int32Array(next); // root -> 1-based position in list
  const list: Component[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if (!labels[i]) continue;
      const root = find(labels[i]);
      let k = index[root];
      if (!k) {
        list.push({ label: list.length + 1, area: 0, left: x, top: y, right: x, bottom: y, mass: 0, level: 0, touchesBorder: false });
        k = index[root] = list.length;
      }
      const c = list[k - 1];
      labels[i] = k;
      c.area++; c.mass += ink[i]; c.level += grey[i];
      if (x < c.left) c.left = x;
      if (x > c.right) c.right = x;
      if (y > c.bottom) c.bottom = y;
      if (x === 0 || y === 0 || x === w - 1 || y === h - 1) c.touchesBorder = true;
    }
  }
  for (const c of list) c.level /= 255 * c.area;
  return { labels, list };
}

export interface Candidate extends Component {
  /** how much darker (for bright ink: brighter) than the page around it the stroke is, in grey levels 0-1 */
  contrast: number;
  /** the same relative to the page's light: the mean of the ink map over it, 0-1 */
  strength: number;
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
    if (bw * bh > 0.1 * w * h && isRegion(thickness(labels, w, c), w, h)) continue;
    let diff = 0;
    for (let y = c.top; y <= c.bottom; y++) {
      for (let x = c.left; x <= c.right; x++) {
        const i = y * w + x;
        if (labels[i] === c.label) diff += page[i] - data[i] / 255;
      }
    }
    out.push({ ...c, contrast: Math.abs(diff) / c.area, strength: c.mass / c.area });
  }
  return out;
}

/**
 * Radius of the largest square that fits inside the component (chessboard distance transform,
 * two passes over its box): a few pixels for pen strokes, a good part of the frame for a page
 * or a board seen as a region.
 */
export function thickness(labels: Int32Array, w: number, c: Component): number {
  const bw = c.right - c.left + 1, bh = c.bottom - c.top + 1;
  const mask = new Uint8Array(bw * bh);
  for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) mask[y * bw + x] = labels[(c.top + y) * w + c.left + x] === c.label ? 1 : 0;
  return maskThickness(mask, bw, bh);
}

/** The same for a mask (non-zero pixels). */
export function maskThickness(mask: Uint8Array, w: number, h: number): number {
  const bw = w + 2, bh = h + 2; // a one-pixel frame of outside
  const d = new Int32Array(bw * bh);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) d[(y + 1) * bw + x + 1] = 1 << 20;
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

/**
 * Ink stands out from the page by at least this much in grey levels (0-1) and, relative to the
 * page's light, by at least MIN_STRENGTH: what a lamp's falloff, a shadow or the vignette leave
 * between two rulings stays below.
 */
const MIN_CONTRAST = 0.06;
const MIN_STRENGTH = 0.25;

export interface Digit {
  /** box in the analysed image's pixels */
  box: Rect;
  /** labels of the components it is made of */
  parts: number[];
}

export interface PageAnalysis {
  grey: Grey8;
  polarity: Polarity;
  ink: Float32Array;
  labels: Int32Array;
  threshold: number;
  digits: Digit[];
  /** slope of the line the digits sit on, degrees clockwise (0 for one digit) */
  angle: number;
  width: number;
  height: number;
}

/**
 * Candidates drawn with the same pen as the best one: at least this share of its strength (thin
 * or blurred strokes read paler than thick ones; a shadow does not change it).
 */
const SAME_PEN = 0.35;
/** A piece joins a digit if it is at least this share as strong (not chalk dust, not a smudge). */
const PIECE = 0.5;

/**
 * The digit: the heaviest candidate and the pieces around it drawn with the same pen (a 5's
 * flag, a broken stroke). `many`: every digit-sized group of candidates on the best one's line,
 * left to right.
 */
export function pickDigits(cands: Candidate[], w: number, h: number, many: boolean): Digit[] {
  const ink = cands.filter((c) => c.contrast >= MIN_CONTRAST && c.strength >= MIN_STRENGTH);
  if (!ink.length) return [];
  const best = ink.reduce((a, b) => (b.mass > a.mass ? b : a));
  const pen = ink.filter((c) => c.strength >= SAME_PEN * best.strength);
  const box = (c: { left: number; top: number; right: number; bottom: number }): Rect =>
    ({ left: c.left, top: c.top, width: c.right - c.left + 1, height: c.bottom - c.top + 1 });
  const minHeight = Math.max(4, 0.03 * Math.min(w, h));

  if (!many) {
    const group = grow([best], pen.filter((c) => c.strength >= PIECE * best.strength));
    const b = union(group);
    if (b.bottom - b.top + 1 < minHeight) return [];
    return [{ box: box(b), parts: group.map((c) => c.label) }];
  }
  // Groups: pieces that overlap in x belong to one digit; digits sit on one line.
  const sorted = pen.slice().sort((a, b) => a.left - b.left);
  const groups: Candidate[][] = [];
  for (const c of sorted) {
    const g = groups.find((gr) => {
      const u = union(gr);
      const overlap = Math.min(u.right, c.right) - Math.max(u.left, c.left) + 1;
      return overlap > 0.5 * Math.min(u.right - u.left + 1, c.right - c.left + 1);
    });
    if (g) g.push(c); else groups.push([c]);
  }
  const boxes = groups.map((g) => {
    const u = union(g);
    return { g, u, cx: (u.left + u.right) / 2, cy: (u.top + u.bottom) / 2, h: u.bottom - u.top + 1 };
  }).sort((a, b) => a.cx - b.cx);
  const anchor = boxes.find((b) => b.g.includes(best))!;
  const ah = anchor.h;
  const fits = boxes.filter((b) => b === anchor || (b.h >= Math.max(minHeight, 0.4 * ah) && b.h <= 2 * ah));
  // Follow the line from the best digit outward, both ways: the next digit sits where the line
  // through those found so far says (it may slope: a rotated photo), not too far off.
  const line = [anchor];
  const predict = (x: number) => {
    if (line.length < 2) return anchor.cy;
    const n = line.length, mx = line.reduce((s, b) => s + b.cx, 0) / n, my = line.reduce((s, b) => s + b.cy, 0) / n;
    const sxx = line.reduce((s, b) => s + (b.cx - mx) ** 2, 0), sxy = line.reduce((s, b) => s + (b.cx - mx) * (b.cy - my), 0);
    const slope = sxx > 0 ? Math.max(-0.6, Math.min(0.6, sxy / sxx)) : 0;
    return my + slope * (x - mx);
  };
  const at = fits.indexOf(anchor);
  for (const dir of [1, -1]) {
    let last = anchor;
    for (let j = at + dir; j >= 0 && j < fits.length; j += dir) {
      const b = fits[j];
      const gap = dir > 0 ? b.u.left - last.u.right : last.u.left - b.u.right;
      if (gap > 2.5 * ah) break;
      if (Math.abs(b.cy - predict(b.cx)) < 0.6 * ah) { line.push(b); last = b; }
    }
  }
  const inLine = new Set(line.flatMap((b) => b.g));
  const pieces = pen.filter((c) => !inLine.has(c) && c.strength >= PIECE * best.strength);
  return line.sort((a, b) => a.cx - b.cx).map(({ g }) => {
    const grown = grow(g, pieces);
    for (const c of grown) if (pieces.includes(c)) pieces.splice(pieces.indexOf(c), 1);
    return { box: box(union(grown)), parts: grown.map((c) => c.label) };
  });
}

function union(cs: Component[]): { left: number; top: number; right: number; bottom: number } {
  return {
    left: Math.min(...cs.map((c) => c.left)), top: Math.min(...cs.map((c) => c.top)),
    right: Math.max(...cs.map((c) => c.right)), bottom: Math.max(...cs.map((c) => c.bottom)),
  };
}

/**
 * Adds the pieces within a third of the digit's height of it (a 5's flag, a broken stroke), as
 * long as any is added, unless a piece would make it taller by more than half or wider than a
 * digit is.
 */
function grow<C extends Component>(group: C[], pool: C[]): C[] {
  const out = group.slice();
  for (let added = true; added;) {
    added = false;
    for (const c of pool) {
      if (out.includes(c)) continue;
      const u = union(out);
      const uh = u.bottom - u.top + 1, uw = u.right - u.left + 1, reach = 0.3 * uh;
      if (c.left > u.right + reach || c.right < u.left - reach || c.top > u.bottom + reach || c.bottom < u.top - reach) continue;
      const g = union([...out, c]);
      const gh = g.bottom - g.top + 1, gw = g.right - g.left + 1;
      if (gh > 1.5 * uh || gw > Math.max(uw, 1.2 * gh)) continue;
      out.push(c);
      added = true;
    }
  }
  return out;
}

/** The slope of the line through the digits' centres (least squares), in degrees clockwise. */
export function lineAngle(digits: Digit[]): number {
  if (digits.length < 2) return 0;
  const cs = digits.map((d) => [d.box.left + d.box.width / 2, d.box.top + d.box.height / 2]);
  const mx = cs.reduce((s, c) => s + c[0], 0) / cs.length, my = cs.reduce((s, c) => s + c[1], 0) / cs.length;
  const sxx = cs.reduce((s, c) => s + (c[0] - mx) ** 2, 0), sxy = cs.reduce((s, c) => s + (c[0] - mx) * (c[1] - my), 0);
  return sxx > 0 ? (Math.atan(sxy / sxx) * 180) / Math.PI : 0;
}

/**
 * A region this thick (the radius of the largest square inside it, as a share of the frame's
 * short side, and at least 16 px) is a page or a board, not writing: the thickest marker stroke
 * measured was 0.08 of the short side.
 */
export function isRegion(thickness: number, w: number, h: number): boolean {
  return thickness > Math.max(16, 0.12 * Math.min(w, h));
}

const inside = (a: Rect, b: Rect) =>
  a.left >= b.left && a.top >= b.top && a.left + a.width <= b.left + b.width && a.top + a.height <= b.top + b.height;

/**
 * Both polarities are tried. Each finds the other's holes: dark ink read as bright finds the
 * paper inside a 0 or an 8, chalk read as dark finds the board inside its loops; and a page
 * lying on a dark desk, read as bright, is one big bright region around the digit. When one
 * reading lies inside the other, the inner one is a hole of the digit around it, unless the
 * outer one is far thicker than a pen stroke (a page). Otherwise the one that stands out more wins.
 */
export function analysePage(img: Grey8, many = false): PageAnalysis | null {
  const found: Array<{ a: PageAnalysis; score: number; box: Rect; page: boolean }> = [];
  const floor = NOISE * noiseLevel(img);
  for (const polarity of ['dark', 'bright'] as Polarity[]) {
    const page = estimatePage(img, polarity);
    const ink = inkMap(img, page, polarity, floor);
    const threshold = inkThreshold(ink);
    const mask = inkMask(ink, img.width, img.height, threshold);
    const { labels, list } = components(mask, img.width, img.height, ink, img.data);
    const cands = scoreComponents(img, page, list, labels);
    const digits = pickDigits(cands, img.width, img.height, many);
    if (!digits.length) continue;
    const parts = new Set(digits.flatMap((d) => d.parts));
    const used = cands.filter((c) => parts.has(c.label));
    const area = used.reduce((s, c) => s + c.area, 0);
    const strength = used.reduce((s, c) => s + c.mass, 0) / area;
    const box = digits.map((d) => d.box).reduce((u, b) => {
      const l = Math.min(u.left, b.left), t = Math.min(u.top, b.top);
      return { left: l, top: t, width: Math.max(u.left + u.width, b.left + b.width) - l, height: Math.max(u.top + u.height, b.top + b.height) - t };
    });
    const main = used.reduce((x, y) => (y.area > x.area ? y : x));
    const large = isRegion(thickness(labels, img.width, main), img.width, img.height);
    found.push({ a: { grey: img, polarity, ink, labels, threshold, digits, angle: lineAngle(digits), width: img.width, height: img.height }, score: strength, box, page: large });
  }
  if (found.length < 2) return found[0]?.a ?? null;
  const [d, b] = found;
  // One reading lies inside the other: the outer one is the digit and the inner one its hole,
  // unless the outer one is a region, not strokes: a page seen against the desk.
  for (const [inner, outer] of [[d, b], [b, d]]) {
    if (inside(inner.box, outer.box) && !inside(outer.box, inner.box)) return outer.page ? inner.a : outer.a;
  }
  return d.score >= b.score ? d.a : b.a;
}

// ---------------------------------------------------------------- one digit's pixels

/** Pixels within a (2r+1)-square of a set pixel. */
export function dilateSquare(mask: Uint8Array, w: number, h: number, r: number): Uint8Array {
  const rows = new Uint8Array(mask.length);
  for (let y = 0; y < h; y++) {
    let last = -1e9;
    for (let x = 0; x < w; x++) { if (mask[y * w + x]) last = x; if (x - last <= r) rows[y * w + x] = 1; }
    last = 1e9;
    for (let x = w - 1; x >= 0; x--) { if (mask[y * w + x]) last = x; if (last - x <= r) rows[y * w + x] = 1; }
  }
  const out = new Uint8Array(mask.length);
  for (let x = 0; x < w; x++) {
    let last = -1e9;
    for (let y = 0; y < h; y++) { if (rows[y * w + x]) last = y; if (y - last <= r) out[y * w + x] = 1; }
    last = 1e9;
    for (let y = h - 1; y >= 0; y--) { if (rows[y * w + x]) last = y; if (last - y <= r) out[y * w + x] = 1; }
  }
  return out;
}

/**
 * The largest (or smallest) value within r of each of `n` values read with `get`, the window
 * cut at the ends (van Herk / Gil-Werman: three passes whatever r is).
 */
function slidingExtreme(get: (i: number) => number, n: number, r: number, largest: boolean, out: Uint8Array): void {
  const k = 2 * r + 1, m = n + 2 * r, pad = largest ? 0 : 255;
  const p = new Uint8Array(m), g = new Uint8Array(m), hh = new Uint8Array(m);
  for (let j = 0; j < m; j++) p[j] = j < r || j >= n + r ? pad : get(j - r);
  const pick = largest ? (a: number, b: number) => (a > b ? a : b) : (a: number, b: number) => (a < b ? a : b);
  for (let j = 0; j < m; j++) g[j] = j % k === 0 ? p[j] : pick(g[j - 1], p[j]);
  for (let j = m - 1; j >= 0; j--) hh[j] = j % k === k - 1 || j === m - 1 ? p[j] : pick(hh[j + 1], p[j]);
  for (let i = 0; i < n; i++) out[i] = pick(hh[i], g[i + 2 * r]);
}

/** The brightest (dark ink) or darkest (bright ink) grey level within r of each pixel of `rect`, 0-1. */
export function localPage(img: Grey8, rect: Rect, r: number, polarity: Polarity): Float32Array {
  const { data, width: w, height: h } = img;
  const dark = polarity === 'dark';
  const l = Math.max(0, rect.left - r), t = Math.max(0, rect.top - r);
  const rr = Math.min(w - 1, rect.left + rect.width - 1 + r), b = Math.min(h - 1, rect.top + rect.height - 1 + r);
  const ew = rr - l + 1, eh = b - t + 1;
  // Rows of the grown region, then columns of the rect only.
  const rows = new Uint8Array(ew * eh);
  const line = new Uint8Array(Math.max(ew, eh));
  for (let y = t; y <= b; y++) {
    const row = y * w + l;
    slidingExtreme((i) => data[row + i], ew, r, dark, line);
    rows.set(line.subarray(0, ew), (y - t) * ew);
  }
  const out = new Float32Array(rect.width * rect.height);
  for (let x = 0; x < rect.width; x++) {
    const col = rect.left + x - l;
    slidingExtreme((i) => rows[i * ew + col], eh, r, dark, line);
    for (let y = 0; y < rect.height; y++) out[y * rect.width + x] = line[rect.top + y - t] / 255;
  }
  return out;
}

/** Ink below this (after stretching) is page, as in the drawing pipeline. */
const CLEAN = 0.1;

/**
 * One digit's ink, cropped, 0-1, ready to be fitted into 20x20: the strokes measured against the
 * page right around them (a stroke that runs from the light into a shadow reads evenly), their
 * soft edges within 2 px, nothing else (no ruling, no neighbour); stretched so the ink is 1 and
 * cleaned below 0.1 like the drawing pipeline, then cropped to what is left.
 */
export function digitInk(a: PageAnalysis, d: Digit): { data: Float32Array; width: number; height: number } {
  const { grey, ink, labels, width: w, height: h, polarity } = a;
  const edge = 2;
  const l = Math.max(0, d.box.left - edge), t = Math.max(0, d.box.top - edge);
  const rect = { left: l, top: t, width: Math.min(w, d.box.left + d.box.width + edge) - l, height: Math.min(h, d.box.top + d.box.height + edge) - t };
  const cw = rect.width, ch = rect.height;
  const parts = new Set(d.parts);
  const own = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) own[y * cw + x] = parts.has(labels[(y + t) * w + x + l]) ? 1 : 0;
  const near = dilateSquare(own, cw, ch, edge);
  const page = localPage(grey, rect, 2 * maskThickness(own, cw, ch) + 2, polarity);
  const vals = new Float32Array(cw * ch);
  const strong: number[] = [];
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const i = y * cw + x, j = (y + t) * w + x + l;
      if (!near[i]) continue;
      let v = ink[j];
      if (own[i]) {
        const g = grey.data[j] / 255, p = page[i];
        const local = polarity === 'dark' ? (p > 0 ? 1 - g / p : 0) : (g > 0 ? 1 - p / g : 0);
        v = Math.max(v, local);
      }
      vals[i] = v;
      if (v >= CLEAN) strong.push(v);
    }
  }
  const hi = strong.length ? quantileOf(strong, 0.999) : 1;
  let left = cw, right = -1, top = ch, bottom = -1;
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const i = y * cw + x;
      const v = Math.min(1, vals[i] / hi);
      vals[i] = v < CLEAN ? 0 : v;
      if (vals[i] > 0) { left = Math.min(left, x); right = Math.max(right, x); top = Math.min(top, y); bottom = Math.max(bottom, y); }
    }
  }
  if (right < 0) return { data: vals, width: cw, height: ch };
  const ow = right - left + 1, oh = bottom - top + 1;
  const out = new Float32Array(ow * oh);
  for (let y = 0; y < oh; y++) out.set(vals.subarray((top + y) * cw + left, (top + y) * cw + left + ow), y * ow);
  return { data: out, width: ow, height: oh };
}
