// Simulated phone and webcam photos of digits written on paper, for the photo tests and the
// benchmark. Everything is generated from a seed: handwriting from the MNIST *test* split (the
// models never trained on it), pen strokes and the fonts installed here, drawn on plain, ruled or
// squared paper (or chalk on a board), then photographed: the page rotated and in perspective,
// sometimes lying on a desk, lit by a lamp whose light falls off toward one side, sometimes with
// a shadow across it, blurred, noisy and saved as a JPEG.
import sharp, { Sharp } from 'sharp';
import { loadDataset } from '../src/lib/dataset';
import { rng } from '../src/lib/random';
import { FONTS, STROKES } from './own-images';

export type Paper = 'plain' | 'ruled' | 'squared' | 'board';
export type Ink = 'black' | 'blue' | 'chalk';
export type Source = 'mnist' | 'strokes' | 'font';
export interface Box { left: number; top: number; width: number; height: number }

/** Coverage 0-255, tight around the glyph. */
export interface Mask { data: Uint8Array; width: number; height: number }

export interface Scene {
  width: number; height: number;
  paper: Paper; ink: Ink;
  /** the page lies on a desk (or the board hangs on a wall) that shows around it */
  desk: boolean;
  /** digit height as a fraction of the frame height */
  size: number;
  /** where the digit (or the number) sits, as fractions of the frame; null: anywhere it fits */
  at: [number, number] | null;
  rotation: number;       // degrees, the camera's roll
  perspective: number;    // how far each page corner moves, as a fraction of the frame
  light: { direction: number; depth: number };  // radians; 0..1, how much darker the far side is
  shadow: number;         // 0: none, else how much light the shadow takes away
  blur: number;           // gaussian sigma in pixels
  noise: number;          // sensor noise sigma, 0-255 levels
  quality: number;        // JPEG quality
  seed: number;
}

export interface Photo {
  image: Buffer;
  labels: number[];
  /** each digit's box in the frame */
  boxes: Box[];
  scene: Scene;
  sources: Source[];
  /** the digits' ink before the photo was taken */
  glyphs: Mask[];
}

// ------------------------------------------------------------------ glyphs

let mnist: { images: Uint8Array; labels: Uint8Array; count: number } | undefined;
/** The MNIST test split (embedded in the package). */
export async function mnistTest(): Promise<{ images: Uint8Array; labels: Uint8Array; count: number }> {
  mnist ??= (await loadDataset({ source: 'embedded', splits: 'test' })).test!;
  return mnist;
}

async function toMask(img: Sharp): Promise<Mask> {
  const { data, info } = await img.extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return crop({ data: new Uint8Array(data), width: info.width, height: info.height });
}

/** Cropped to the pixels above 8, with a 2 px margin. */
function crop(m: Mask): Mask {
  let l = m.width, r = -1, t = m.height, b = -1;
  for (let y = 0; y < m.height; y++) for (let x = 0; x < m.width; x++) {
    if (m.data[y * m.width + x] > 8) { l = Math.min(l, x); r = Math.max(r, x); t = Math.min(t, y); b = Math.max(b, y); }
  }
  if (r < 0) throw new Error('empty glyph');
  l = Math.max(0, l - 2); t = Math.max(0, t - 2); r = Math.min(m.width - 1, r + 2); b = Math.min(m.height - 1, b + 2);
  const w = r - l + 1, h = b - t + 1, out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) out.set(m.data.subarray((t + y) * m.width + l, (t + y) * m.width + l + w), y * w);
  return { data: out, width: w, height: h };
}

/**
 * MNIST test digit `index` as pen ink `height` px tall: upscaled, smoothed and given crisp edges
 * (a pen line, not MNIST's soft scan); `weight` 0..1 thins or thickens the stroke.
 */
export async function mnistGlyph(index: number, height: number, weight = 0.5): Promise<{ mask: Mask; label: number }> {
  const ds = await mnistTest();
  const px = ds.images.subarray(index * 784, (index + 1) * 784);
  const scale = Math.max(1, height / 20);
  const side = Math.round(28 * scale);
  const { data } = await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } })
    .resize(side, side, { kernel: 'cubic' }).blur(Math.max(0.3, scale * 0.35)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  const cut = 0.55 - 0.35 * weight; // where the soft scan becomes ink
  const soft = 0.12;
  const out = new Uint8Array(data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(255 * Math.min(1, Math.max(0, (data[i] / 255 - cut) / soft + 0.5)));
  return { mask: crop({ data: out, width: side, height: side }), label: ds.labels[index] };
}

/** A stroke digit, each control point moved by up to `jitter` units, pen `width` units wide. */
export async function strokeGlyph(digit: number, height: number, width: number, jitter: number, random: () => number): Promise<Mask> {
  const path = STROKES[digit].replace(/-?\d+(\.\d+)?/g, (n) => (Number(n) + (random() * 2 - 1) * jitter).toFixed(1));
  const s = height / 110;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${Math.ceil(160 * s)}" height="${Math.ceil(200 * s)}" viewBox="-30 -30 160 200">` +
    `<rect x="-30" y="-30" width="160" height="200" fill="#000"/>` +
    `<path d="${path}" stroke="#fff" stroke-width="${width}" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
  return toMask(sharp(Buffer.from(svg)));
}


/** A digit in one of the installed fonts, about `height` px tall. */
export async function fontGlyph(digit: number, font: string, height: number): Promise<Mask> {
  const size = height / 0.73; // digits are about 0.73 em tall in these fonts
  const w = Math.ceil(size), h = Math.ceil(size * 1.3);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#000"/>` +
    `<text x="${w / 2}" y="${size}" text-anchor="middle" font-family="${font}" font-size="${size}" fill="#fff">${digit}</text></svg>`;
  return toMask(sharp(Buffer.from(svg)));
}

// ------------------------------------------------------------------ geometry

type M3 = number[]; // row-major 3x3
type Pt = [number, number];

/** The projective map taking the four points `from` to the four points `to`. */
export function homography(from: Pt[], to: Pt[]): M3 {
  const a: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = from[i], [u, v] = to[i];
    a.push([x, y, 1, 0, 0, 0, -u * x, -u * y, u]);
    a.push([0, 0, 0, x, y, 1, -v * x, -v * y, v]);
  }
  for (let c = 0; c < 8; c++) {
    let p = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = a[r][c] / a[c][c];
      for (let k = c; k < 9; k++) a[r][k] -= f * a[c][k];
    }
  }
  return [...Array.from({ length: 8 }, (_, i) => a[i][8] / a[i][i]), 1];
}

export function mapPoint(m: M3, x: number, y: number): Pt {
  const w = m[6] * x + m[7] * y + m[8];
  return [(m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w];
}

// ------------------------------------------------------------------ the photo

type RGB = [number, number, number];

const INKS: Record<Ink, RGB> = { black: [28, 28, 34], blue: [38, 62, 168], chalk: [232, 232, 222] };

// Normal deviates by table lookup: a photo needs a million of them, Box-Muller each costs 0.1 us.
const NORMAL = (() => {
  const r = rng(12345);
  return Float32Array.from({ length: 65536 }, () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()));
})();

const smoothstep = (e0: number, e1: number, x: number) => {
  const t = Math.min(1, Math.max(0, (x - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
};

interface Placed { mask: Mask; x: number; y: number }  // page coordinates of the mask's corner

/**
 * Renders `glyphs` (left to right, each about `scene.size` of the frame tall) as ink on a page
 * and photographs it. Returns null when the layout does not fit the frame (the caller draws a
 * new scene).
 */
export async function photograph(scene: Scene, glyphs: Mask[]): Promise<{ image: Buffer; boxes: Box[] } | null> {
  const random = rng(scene.seed);
  const { width: W, height: H } = scene;
  const board = scene.paper === 'board';

  // Where the page's corners land in the frame: rotated, in perspective, covering the frame or
  // lying inside it on a desk.
  const S = scene.desk ? 0.62 + 0.2 * random() : 1.5;
  const PW = Math.round(S * W), PH = Math.round(S * H);
  const rad = (scene.rotation * Math.PI) / 180;
  const cx = W / 2 + (scene.desk ? (random() - 0.5) * 0.1 * W : 0), cy = H / 2 + (scene.desk ? (random() - 0.5) * 0.1 * H : 0);
  const corners: Pt[] = [[0, 0], [PW, 0], [PW, PH], [0, PH]];
  const inFrame = corners.map(([x, y]): Pt => {
    const dx = x - PW / 2, dy = y - PH / 2;
    const jx = (random() * 2 - 1) * scene.perspective * W, jy = (random() * 2 - 1) * scene.perspective * H;
    return [cx + dx * Math.cos(rad) - dy * Math.sin(rad) + jx, cy + dx * Math.sin(rad) + dy * Math.cos(rad) + jy];
  });
  const toFrame = homography(corners, inFrame);
  const toPage = homography(inFrame, corners);

  // Layout in page coordinates: the digits side by side on one line, centred where asked.
  const gaps = glyphs.slice(1).map(() => (0.15 + 0.3 * random()) * glyphs[0].height);
  const lineWidth = glyphs.reduce((s, g) => s + g.width, 0) + gaps.reduce((s, g) => s + g, 0);
  const lineHeight = Math.max(...glyphs.map((g) => g.height));
  let placed: Placed[] | null = null;
  for (let attempt = 0; attempt < 60 && !placed; attempt++) {
    const mx = (lineWidth / 2 + 0.04 * W) / W, my = (lineHeight / 2 + 0.04 * H) / H;
    if (mx >= 0.5 || my >= 0.5) return null;
    const f: Pt = scene.at && attempt === 0 ? scene.at : [mx + random() * (1 - 2 * mx), my + random() * (1 - 2 * my)];
    const [px, py] = mapPoint(toPage, f[0] * W, f[1] * H);
    let x = px - lineWidth / 2;
    const tries = glyphs.map((g, i) => {
      const p = { mask: g, x: Math.round(x), y: Math.round(py - g.height / 2 + (random() - 0.5) * 0.08 * g.height) };
      x += g.width + (gaps[i] ?? 0);
      return p;
    });
    // Every glyph corner must be on the page and in the frame.
    const ok = tries.every((p) => [[p.x, p.y], [p.x + p.mask.width, p.y], [p.x, p.y + p.mask.height], [p.x + p.mask.width, p.y + p.mask.height]]
      .every(([gx, gy]) => {
        const [fx, fy] = mapPoint(toFrame, gx, gy);
        return gx > 0.03 * PW && gx < 0.97 * PW && gy > 0.03 * PH && gy < 0.97 * PH && fx > 2 && fx < W - 2 && fy > 2 && fy < H - 2;
      }));
    if (ok) placed = tries;
  }
  if (!placed) return null;

  // The page: paper (or board), its rulings, then the ink.
  const paper: RGB = board
    ? (random() < 0.5 ? [34, 58, 46] : [36, 36, 40])
    : [236 + 10 * random(), 234 + 10 * random(), 222 + 14 * random()];
  const page = new Float32Array(PW * PH * 3);
  for (let i = 0; i < PW * PH; i++) { page[3 * i] = paper[0]; page[3 * i + 1] = paper[1]; page[3 * i + 2] = paper[2]; }
  const line = (horizontal: boolean, at: number, thick: number, rgb: RGB, alpha: number) => {
    const n = horizontal ? PW : PH;
    for (let t = 0; t < thick; t++) {
      const k = Math.round(at) + t;
      if (k < 0 || k >= (horizontal ? PH : PW)) continue;
      for (let j = 0; j < n; j++) {
        const i = 3 * (horizontal ? k * PW + j : j * PW + k);
        for (let c = 0; c < 3; c++) page[i + c] += (rgb[c] - page[i + c]) * alpha;
      }
    }
  };
  if (scene.paper === 'ruled' || scene.paper === 'squared') {
    const rule: RGB = random() < 0.6 ? [120, 160, 225] : [150, 150, 160];
    const alpha = 0.35 + 0.35 * random();
    const step = (scene.paper === 'ruled' ? 0.035 + 0.02 * random() : 0.025 + 0.015 * random()) * H;
    const thick = random() < 0.5 ? 1 : 2;
    const off = random() * step;
    for (let y = off; y < PH; y += step) line(true, y, thick, rule, alpha);
    if (scene.paper === 'squared') for (let x = off; x < PW; x += step) line(false, x, thick, rule, alpha);
    else if (random() < 0.5) line(false, 0.12 * PW + 0.2 * random() * PW, 2, [220, 70, 70], 0.6); // the margin
  }
  if (board) {
    // Chalk dust: faint smears of old writing.
    for (let k = 0; k < 6; k++) {
      const sx = random() * PW, sy = random() * PH, r = (0.05 + 0.1 * random()) * H, a = 0.04 + 0.06 * random();
      for (let y = Math.max(0, Math.floor(sy - r)); y < Math.min(PH, sy + r); y++) {
        for (let x = Math.max(0, Math.floor(sx - r)); x < Math.min(PW, sx + r); x++) {
          const d = Math.hypot(x - sx, y - sy) / r;
          if (d < 1) for (let c = 0; c < 3; c++) page[3 * (y * PW + x) + c] += (200 - page[3 * (y * PW + x) + c]) * a * (1 - d);
        }
      }
    }
  }
  const ink = INKS[scene.ink];
  const strength = 0.85 + 0.15 * random();
  for (const p of placed) {
    const { mask } = p;
    for (let y = 0; y < mask.height; y++) {
      for (let x = 0; x < mask.width; x++) {
        let a = (mask.data[y * mask.width + x] / 255) * strength;
        if (a <= 0) continue;
        if (scene.ink === 'chalk') a *= 0.55 + 0.45 * random();
        const i = 3 * ((p.y + y) * PW + p.x + x);
        for (let c = 0; c < 3; c++) page[i + c] += (ink[c] - page[i + c]) * a;
      }
    }
  }

  // The photo: the page through the camera's geometry, the desk around it, the lamp and a shadow.
  const desk: RGB = board ? [200, 196, 184] : random() < 0.5 ? [92, 62, 40] : [48, 48, 52];
  const grain = 0.02 + 0.03 * random();
  const { direction, depth } = scene.light;
  const dx = Math.cos(direction), dy = Math.sin(direction), half = Math.hypot(W, H) / 2;
  const sAngle = random() * 2 * Math.PI, sx = Math.cos(sAngle), sy = Math.sin(sAngle);
  const sOff = (random() - 0.2) * 0.5 * half, sSoft = (0.01 + 0.05 * random()) * W;
  const frame = new Uint8ClampedArray(W * H * 3);
  const exposure = 0.9 + 0.1 * random();
  const m = toPage;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const X = x + 0.5, Y = y + 0.5, w = m[6] * X + m[7] * Y + m[8];
      const u = (m[0] * X + m[1] * Y + m[2]) / w, v = (m[3] * X + m[4] * Y + m[5]) / w;
      let r: number, g: number, b: number;
      if (u >= 0 && v >= 0 && u < PW - 1 && v < PH - 1) {
        const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
        const i00 = 3 * (y0 * PW + x0), i10 = i00 + 3, i01 = i00 + 3 * PW, i11 = i01 + 3;
        const w00 = (1 - fx) * (1 - fy), w10 = fx * (1 - fy), w01 = (1 - fx) * fy, w11 = fx * fy;
        r = page[i00] * w00 + page[i10] * w10 + page[i01] * w01 + page[i11] * w11;
        g = page[i00 + 1] * w00 + page[i10 + 1] * w10 + page[i01 + 1] * w01 + page[i11 + 1] * w11;
        b = page[i00 + 2] * w00 + page[i10 + 2] * w10 + page[i01 + 2] * w01 + page[i11 + 2] * w11;
      } else {
        const k = 1 + grain * Math.sin(y * 0.09 + 4 * Math.sin(x * 0.013)) - grain;
        r = desk[0] * k; g = desk[1] * k; b = desk[2] * k;
      }
      const rx = x - W / 2, ry = y - H / 2;
      const ramp = ((rx * dx + ry * dy) / half + 1) / 2;      // 0 near the lamp, 1 far from it
      let light = (1 - depth * ramp) * (1 - 0.12 * ((rx * rx + ry * ry) / (half * half))) * exposure;
      if (scene.shadow > 0) light *= 1 - scene.shadow * smoothstep(-sSoft, sSoft, rx * sx + ry * sy - sOff);
      const o = 3 * (y * W + x);
      frame[o] = r * light; frame[o + 1] = g * light; frame[o + 2] = b * light; // Uint8ClampedArray rounds and clamps
    }
  }
  let img = sharp(Buffer.from(frame.buffer), { raw: { width: W, height: H, channels: 3 } });
  if (scene.blur >= 0.3) img = img.blur(scene.blur);
  const blurred = await img.raw().toBuffer();
  const noisy = new Uint8ClampedArray(blurred.length);
  let k = 0;
  for (let i = 0; i < blurred.length; i++) {
    k = (i & 255) === 0 ? Math.floor(random() * 65536) : (k + 1) & 65535;
    noisy[i] = blurred[i] + NORMAL[k] * scene.noise;
  }
  const image = await sharp(Buffer.from(noisy.buffer), { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: scene.quality }).toBuffer();

  const boxes = placed.map((p) => {
    const pts = [[p.x, p.y], [p.x + p.mask.width, p.y], [p.x, p.y + p.mask.height], [p.x + p.mask.width, p.y + p.mask.height]]
      .map(([gx, gy]) => mapPoint(toFrame, gx, gy));
    const xs = pts.map((q) => q[0]), ys = pts.map((q) => q[1]);
    const left = Math.floor(Math.min(...xs)), top = Math.floor(Math.min(...ys));
    return { left, top, width: Math.ceil(Math.max(...xs)) - left, height: Math.ceil(Math.max(...ys)) - top };
  });
  return { image, boxes };
}

// ------------------------------------------------------------------ test sets

const PAPERS: Paper[] = ['plain', 'ruled', 'squared', 'plain', 'ruled', 'squared', 'board'];

/** A scene drawn from the ranges the issue lists; `i` spreads paper, ink and source evenly. */
export function randomScene(i: number, seed: number, multi = false): Scene {
  const r = rng(seed);
  const paper = PAPERS[i % PAPERS.length];
  const shape = r();
  const [width, height] = shape < 0.6 ? [800, 600] : shape < 0.8 ? [600, 800] : [640, 480];
  const lo = multi ? 0.1 : 0.1, hi = multi ? 0.3 : 0.5;
  return {
    width, height, paper,
    ink: paper === 'board' ? 'chalk' : Math.floor(i / PAPERS.length) % 2 === 0 ? 'black' : 'blue',
    desk: r() < 0.3,
    size: lo * Math.pow(hi / lo, r()),
    at: null,
    rotation: (r() * 2 - 1) * 15,
    perspective: 0.08 * r(),
    light: { direction: r() * 2 * Math.PI, depth: 0.15 + 0.45 * r() },
    shadow: r() < 0.4 ? 0.3 + 0.3 * r() : 0,
    blur: r() < 0.3 ? 0 : 2 * r(),
    noise: 1.5 + 4.5 * r(),
    quality: Math.round(35 + 60 * r()),
    seed: seed * 7 + 1,
  };
}

/** Which source a photo's digits come from: 3 in 5 real handwriting, then strokes, then fonts. */
export function sourceFor(i: number): Source {
  return (['mnist', 'mnist', 'mnist', 'strokes', 'font'] as Source[])[i % 5];
}

async function glyph(source: Source, height: number, r: () => number, digit?: number): Promise<{ mask: Mask; label: number }> {
  if (source === 'mnist') {
    const ds = await mnistTest();
    let index = Math.floor(r() * ds.count);
    if (digit !== undefined) while (ds.labels[index] !== digit) index = (index + 1) % ds.count;
    return mnistGlyph(index, height, r());
  }
  const label = digit ?? Math.floor(r() * 10);
  if (source === 'strokes') return { mask: await strokeGlyph(label, height, 7 + 9 * r(), 5, r), label };
  return { mask: await fontGlyph(label, FONTS[Math.floor(r() * FONTS.length)], height), label };
}

/** Photo number `i` of a set: one digit, or (multi) a number of 2-5 digits. */
export async function makePhoto(i: number, opts: { seed?: number; multi?: boolean; scene?: Partial<Scene> } = {}): Promise<Photo> {
  const base = (opts.seed ?? 1) * 100003 + i * 7919 + (opts.multi ? 55 : 0);
  for (let attempt = 0; ; attempt++) {
    const seed = base + attempt * 104729;
    const scene = { ...randomScene(i, seed, opts.multi), ...opts.scene };
    const r = rng(seed + 3);
    const count = opts.multi ? 2 + Math.floor(r() * 4) : 1;
    const source = sourceFor(i + attempt);
    const glyphs: Array<{ mask: Mask; label: number }> = [];
    for (let k = 0; k < count; k++) glyphs.push(await glyph(source, scene.size * scene.height * (0.92 + 0.16 * r()), r));
    const shot = await photograph(scene, glyphs.map((g) => g.mask));
    if (shot) return { ...shot, labels: glyphs.map((g) => g.label), scene, sources: glyphs.map(() => source), glyphs: glyphs.map((g) => g.mask) };
    if (attempt > 20) throw new Error(`photo ${i}: no layout fits`);
  }
}

/** The digit glyphs of a photo set, drawn plainly (black on white, no camera): the baseline. */
export async function plainImage(mask: Mask): Promise<Buffer> {
  const pad = Math.round(mask.height * 0.3);
  const w = mask.width + 2 * pad, h = mask.height + 2 * pad;
  const out = new Uint8Array(w * h).fill(255);
  for (let y = 0; y < mask.height; y++) for (let x = 0; x < mask.width; x++) out[(y + pad) * w + x + pad] = 255 - mask.data[y * mask.width + x];
  return sharp(out, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
}
