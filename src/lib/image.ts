// Turns a user's image into the 28x28 MNIST-style input the models were trained on.
// Measured on non-MNIST digits with MNIST-trained models: this recipe (polarity fix, background
// removal, crop, aspect-preserving fit to 20 px, centre-of-mass centring) takes a small CNN from
// 0.77 (naive resize) to 0.96, and leaving out any one step costs 3-54 points.
import sharp from 'sharp';
import * as zlib from 'zlib';
import type { Metadata, OutputInfo, Sharp } from 'sharp';
import { MnistError } from './messages';
import { analysePage, digitInk, Grey8, PageAnalysis } from './photo';

// A long-running Node-RED process would otherwise keep decoded images in libvips' cache.
sharp.cache(false);

export interface ImageLimits { maxBytes: number; maxPixels: number }

export const DEFAULT_IMAGE_LIMITS: ImageLimits = { maxBytes: 10 * 1024 * 1024, maxPixels: 40_000_000 };

/** Encoded images one message may hold by default (predict's Max images): each may cost a full decode. */
export const DEFAULT_MAX_IMAGES = 64;

/** Grey image, row-major, values in [0,1]. */
export interface Grey { data: Float32Array; width: number; height: number }
export interface Box { left: number; top: number; width: number; height: number }

export interface DigitImage {
    /** 784 values, ink bright, in [0,1], row-major 28x28 */
    pixels: Float32Array;
    /** that 28x28 as an 8-bit grey PNG: what the model saw */
    png: Buffer;
    /** where the digit is, in the input image's pixels */
    box: Box;
}

export interface Preprocessed extends DigitImage {
    inverted: boolean;
    /** which pipeline read the image: the drawing one (clean background) or the photo one */
    method: 'drawing' | 'photo' | 'resize';
    /** every digit found, left to right (one unless `many`); the first is the one above */
    digits: DigitImage[];
    /** the input's size (after its EXIF orientation) */
    width: number;
    height: number;
    /** with `region`: the input (at most REGION_SIDE px on a side) with each digit's box drawn, JPEG */
    region?: Buffer;
}

/**
 * drawing: the image is a clean drawing or upload (uniform background: border polarity, all ink).
 * photo: a camera picture of paper or a board (illumination, rulings, shadows, desk).
 * auto: photo-grade analysis unless the image is clean.
 */
export type ImageMode = 'auto' | 'photo' | 'drawing';

export interface PreprocessOptions {
    /** false: plain resize to 28x28 (for images that are already MNIST-like) */
    preprocess?: boolean;
    limits?: ImageLimits;
    mode?: ImageMode;
    /** find every digit (a number written on paper), left to right */
    many?: boolean;
    /** also draw the digits' boxes on the input (Preprocessed.region) */
    region?: boolean;
}

/** The longer side of the region picture: enough for a dashboard or a camera view. */
export const REGION_SIDE = 800;

const SIZE = 28;
const BOX = 20;           // MNIST digits fill a 20x20 box inside the 28x28 frame
const PRESHRINK = 384;    // statistics on anything bigger only cost time
const INK_THRESHOLD = 0.1;

// ---------------------------------------------------------------- input handling

/** Names the format from the first bytes, or null when it is not an image sharp can read. */
export function sniffFormat(buf: Buffer): string | null {
    if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47) return 'png';
    if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
    if (buf.length >= 6 && buf.toString('latin1', 0, 4) === 'GIF8') return 'gif';
    if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') return 'webp';
    if (buf.length >= 4 && (buf.toString('latin1', 0, 4) === 'II*\0' || buf.toString('latin1', 0, 4) === 'MM\0*')) return 'tiff';
    if (buf.length >= 12 && buf.toString('latin1', 4, 8) === 'ftyp') return 'heif';
    // SVG is text: allow a BOM, XML declaration, comments or a doctype before <svg.
    const head = buf.toString('utf8', 0, Math.min(buf.length, 4096)).replace(/^\uFEFF/, '').trimStart();
    if (head.startsWith('<') && /<svg[\s>]/i.test(head)) return 'svg';
    return null;
}

const BASE64_RE = /^[A-Za-z0-9+/_-]+={0,2}$/;

function decodedBase64Length(b64: string): number {
    return Math.floor((b64.length * 3) / 4);
}

function tooBig(bytes: number, limits: ImageLimits): Error {
    return new MnistError('image-too-many-bytes', { bytes, max: limits.maxBytes });
}

/** Accepts a Buffer of an encoded image, a data URL ('data:image/png;base64,...') or a bare base64 string. */
export function toImageBuffer(input: Buffer | string, limits: ImageLimits = DEFAULT_IMAGE_LIMITS): Buffer {
    let buf: Buffer;
    if (Buffer.isBuffer(input)) {
        buf = input;
    } else if (typeof input === 'string') {
        const s = input.trim();
        if (s.length === 0) throw new MnistError('image-empty-string');
        const m = /^data:([^,]*?),/i.exec(s);
        if (m) {
            const body = s.slice(m[0].length);
            if (/;base64$/i.test(m[1])) {
                const b64 = body.replace(/\s+/g, '');
                // Refuse before allocating: a huge string must not become a huge Buffer.
                if (decodedBase64Length(b64) > limits.maxBytes) throw tooBig(decodedBase64Length(b64), limits);
                buf = Buffer.from(b64, 'base64');
            } else {
                if (body.length > limits.maxBytes) throw tooBig(body.length, limits);
                let text: string;
                try { text = decodeURIComponent(body); } catch { throw new MnistError('image-data-url-encoding'); }
                buf = Buffer.from(text, 'utf8');
            }
        } else if (s.startsWith('<')) {
            // SVG text, as an HTTP body sent with Content-Type image/svg+xml arrives.
            if (Buffer.byteLength(s, 'utf8') > limits.maxBytes) throw tooBig(Buffer.byteLength(s, 'utf8'), limits);
            buf = Buffer.from(s, 'utf8');
        } else {
            const b64 = s.replace(/\s+/g, '');
            if (!BASE64_RE.test(b64)) throw new MnistError('image-string-kind');
            if (decodedBase64Length(b64) > limits.maxBytes) throw tooBig(decodedBase64Length(b64), limits);
            buf = Buffer.from(b64, 'base64');
        }
    } else {
        throw new MnistError('image-input-type', { type: input === null ? 'null' : typeof input });
    }
    if (buf.length === 0) throw new MnistError('image-empty');
    if (buf.length > limits.maxBytes) throw tooBig(buf.length, limits);
    if (!sniffFormat(buf) && isMultipartForm(buf)) throw new MnistError('image-multipart');
    if (!sniffFormat(buf)) throw new MnistError('image-unknown-format');
    return buf;
}

/** A multipart/form-data body (curl -F, an HTML form), which an HTTP In node passes on as it came. */
function isMultipartForm(buf: Buffer): boolean {
    const head = buf.subarray(0, 2048).toString('latin1');
    return /^--[^\r\n]{1,200}\r\n/.test(head) && /content-disposition:\s*form-data/i.test(head);
}

/** Buffer, data URL, or a long base64 string that decodes to a known image signature. */
export function isImageInput(x: unknown): boolean {
    if (Buffer.isBuffer(x)) return x.length > 0;
    if (typeof x !== 'string') return false;
    const s = x.trimStart();
    if (/^data:image\//i.test(s)) return true;
    if (s.startsWith('<')) return sniffFormat(Buffer.from(s.slice(0, 4096), 'utf8')) === 'svg';
    if (s.length < 32) return false;
    // Only the head needs decoding to see the signature (64 chars -> 48 bytes, a multiple of 4).
    const head = s.slice(0, 4096).replace(/\s+/g, '').slice(0, 64);
    if (!/^[A-Za-z0-9+/_-]+$/.test(head)) return false;
    return sniffFormat(Buffer.from(head, 'base64')) !== null;
}

/** The most images an SVG may embed, and how deep SVGs may nest inside one another. */
const SVG_MAX_IMAGES = 100;
const SVG_MAX_DEPTH = 3;

/** Attributes of the tag that starts at `from` (just after its name), quotes respected. */
function tagAttributes(text: string, from: number): Map<string, string> {
    const attrs = new Map<string, string>();
    const re = /\s*([\w:.-]+)\s*=\s*("([^"]*)"|'([^']*)')|\s*(\/?>)|\s*([^\s])/gy;
    re.lastIndex = from;
    for (let m = re.exec(text); m && !m[5]; m = re.exec(text)) {
        if (m[1]) attrs.set(m[1].toLowerCase(), m[3] ?? m[4]);
    }
    return attrs;
}

/**
 * Refuses an SVG whose embedded rasters (<image>, <feImage> with data: URLs; librsvg does not
 * fetch other addresses) would decode beyond the pixel limit together, before librsvg decodes
 * them at their full size: a 100 kB SVG may hold a 20000x20000 PNG. Their sizes come from their
 * headers; an SVG inside is checked the same way. Entities could hide an address from this scan,
 * so an SVG that declares any (or writes an address with character references) is refused.
 * Returns the embedded pixels counted.
 */
export async function checkSvgRasters(svg: Buffer, limits: ImageLimits, depth = 0): Promise<number> {
    const text = svg.toString('utf8');
    if (/<!ENTITY/i.test(text)) throw new MnistError('svg-entities');
    let total = 0, count = 0;
    for (const m of text.matchAll(/<(?:[\w-]+:)?(?:image|feImage)(?=[\s/>])/gi)) {
        if (++count > SVG_MAX_IMAGES) throw new MnistError('svg-images-too-many', { max: SVG_MAX_IMAGES });
        const attrs = tagAttributes(text, m.index + m[0].length);
        for (const [name, raw] of attrs) {
            if (name !== 'href' && !name.endsWith(':href')) continue;
            const url = raw.trim();
            if (url.includes('&')) throw new MnistError('svg-entities');
            const data = /^data:([^,]*?),/i.exec(url);
            if (!data) continue;
            let bytes: Buffer;
            try {
                const body = url.slice(data[0].length);
                bytes = /;base64$/i.test(data[1]) ? Buffer.from(body.replace(/\s+/g, ''), 'base64') : Buffer.from(decodeURIComponent(body), 'utf8');
            } catch {
                throw new MnistError('svg-image-unreadable');
            }
            const format = sniffFormat(bytes);
            let pixels: number;
            if (format === 'svg') {
                if (depth >= SVG_MAX_DEPTH) throw new MnistError('svg-image-unreadable');
                pixels = await checkSvgRasters(bytes, { ...limits, maxPixels: limits.maxPixels - total }, depth + 1);
            } else {
                let meta: Metadata;
                try { meta = await sharp(bytes, { limitInputPixels: false }).metadata(); } catch { throw new MnistError('svg-image-unreadable'); }
                if (!format || !meta.width || !meta.height) throw new MnistError('svg-image-unreadable');
                pixels = meta.width * meta.height;
            }
            total += pixels;
            if (total > limits.maxPixels) throw new MnistError('svg-image-too-large', { pixels: total, max: limits.maxPixels });
        }
    }
    return total;
}

// ---------------------------------------------------------------- pipeline steps

/** What sharp decodes to (8-bit grey, row-major; every later per-pixel step is a 256-entry table on it), and the input's own size. */
interface Decoded extends Grey8 { hasAlpha: boolean; sourceWidth: number; sourceHeight: number }

/** Decodes with transparency composited over white (dropping alpha would blank images whose hidden colour is black). */
export async function decodeGrey(buf: Buffer, limits: ImageLimits = DEFAULT_IMAGE_LIMITS, background = '#ffffff'): Promise<Grey & { hasAlpha: boolean }> {
    const g = await decodeGrey8(buf, limits, background);
    return { ...toFloat(g), hasAlpha: g.hasAlpha };
}

async function decodeGrey8(buf: Buffer, limits: ImageLimits, background = '#ffffff'): Promise<Decoded> {
    // The header is read without sharp's limit so the error can name the declared size.
    const open = (limitInputPixels: number | false) => sharp(buf, { limitInputPixels, autoOrient: true });
    let meta: Metadata;
    try {
        meta = await open(false).metadata();
    } catch (e) {
        throw decodeError(e);
    }
    const w = meta.width ?? 0, h = meta.height ?? 0;
    if (!(w > 0 && h > 0)) throw new MnistError('image-no-size');
    if (w * h > limits.maxPixels) throw new MnistError('image-too-many-pixels', { width: w, height: h, pixels: w * h, max: limits.maxPixels });
    // librsvg decodes an SVG's embedded rasters at their own size, whatever the SVG's size says.
    if (meta.format === 'svg') await checkSvgRasters(buf, limits);
    let pipeline = open(limits.maxPixels).flatten({ background }).greyscale();
    if (Math.max(w, h) > PRESHRINK) pipeline = pipeline.resize(PRESHRINK, PRESHRINK, { fit: 'inside', kernel: 'lanczos3' });
    let out: { data: Buffer; info: OutputInfo };
    try {
        // 'b-w' output: otherwise sharp hands back grey inputs as 3-channel sRGB.
        out = await pipeline.toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
    } catch (e) {
        throw decodeError(e);
    }
    const { data, info } = out;
    if (info.channels !== 1) throw new Error(`decode: expected 1 channel, got ${info.channels}`);
    const oriented = meta.autoOrient ?? { width: w, height: h };
    return { data, width: info.width, height: info.height, hasAlpha: !!meta.hasAlpha, sourceWidth: oriented.width, sourceHeight: oriented.height };
}

// A plain loop: Float32Array.from(bytes, mapFn) costs ~50 ns a pixel (4 ms on 280x280).
function toFloat(g: Grey8): Grey {
    const d = new Float32Array(g.data.length);
    for (let i = 0; i < d.length; i++) d[i] = g.data[i] / 255;
    return { data: d, width: g.width, height: g.height };
}

function decodeError(e: unknown): Error {
    const msg = e instanceof Error ? e.message : String(e);
    if (/pixel limit/i.test(msg)) {
        return new MnistError('image-pixel-limit', { reason: msg });
    }
    return new MnistError('image-undecodable', { reason: msg.trim() });
}

function quantile(values: Float32Array, q: number): number {
    if (values.length === 0) return NaN;
    const s = Float32Array.from(values).sort();
    return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1) + 0.5)))];
}

/** Pixels of a ring about 2% of the short side thick (at least 1 px): where the paper is. */
export function borderPixels(img: Grey): Float32Array {
    const { data, width: w, height: h } = img;
    const t = Math.max(1, Math.min(Math.round(Math.min(w, h) * 0.02), Math.floor(Math.min(w, h) / 2)));
    const out: number[] = [];
    for (let y = 0; y < h; y++) {
        const edgeRow = y < t || y >= h - t;
        for (let x = 0; x < w; x++) {
            if (edgeRow || x < t || x >= w - t) out.push(data[y * w + x]);
        }
    }
    return Float32Array.from(out);
}

/**
 * Ink must be bright (as in MNIST). A light border means dark ink on light paper: invert.
 * `background` is the paper level on the ink-bright scale, for removeBackground.
 */
export function detectPolarity(img: Grey): { invert: boolean; background: number } {
    let level = quantile(borderPixels(img), 0.5);
    if (level > 0.35 && level < 0.65) level = quantile(img.data, 0.5); // mid-grey border says little
    const invert = level > 0.5;
    return { invert, background: invert ? 1 - level : level };
}

export function invertGrey(img: Grey): Grey {
    const d = new Float32Array(img.data.length);
    for (let i = 0; i < d.length; i++) d[i] = 1 - img.data[i];
    return { data: d, width: img.width, height: img.height };
}

/**
 * Subtracts the paper level, stretches so the brightest ink (99.9th percentile, ignoring
 * a few hot pixels) is 1, and zeroes what stays below 0.1. Returns null when nothing
 * stands out from the paper by at least 0.1.
 */
export function removeBackground(img: Grey, background: number): Grey | null {
    const d = new Float32Array(img.data.length);
    const candidates: number[] = [];
    for (let i = 0; i < d.length; i++) {
        const v = Math.max(0, img.data[i] - background);
        d[i] = v;
        if (v >= INK_THRESHOLD) candidates.push(v);
    }
    if (candidates.length === 0) return null;
    // Percentile over ink only: over all pixels a small digit on a big page would pick noise.
    const hi = quantile(Float32Array.from(candidates), 0.999);
    for (let i = 0; i < d.length; i++) {
        const v = Math.min(1, d[i] / hi);
        d[i] = v < INK_THRESHOLD ? 0 : v;
    }
    return { data: d, width: img.width, height: img.height };
}

export function inkBoundingBox(img: Grey): Box | null {
    const { data, width: w, height: h } = img;
    let l = w, r = -1, t = h, b = -1;
    for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
            if (data[y * w + x] > 0) {
                if (x < l) l = x;
                if (x > r) r = x;
                if (y < t) t = y;
                if (y > b) b = y;
            }
        }
    }
    return r < 0 ? null : { left: l, top: t, width: r - l + 1, height: b - t + 1 };
}

export function cropGrey(img: Grey, box: Box): Grey {
    const d = new Float32Array(box.width * box.height);
    for (let y = 0; y < box.height; y++) {
        const src = (box.top + y) * img.width + box.left;
        d.set(img.data.subarray(src, src + box.width), y * box.width);
    }
    return { data: d, width: box.width, height: box.height };
}

/** Resizes (Lanczos3) keeping the aspect ratio so the longer side is `side` px. */
export async function fitLongerSide(img: Grey, side = BOX): Promise<Grey> {
    const scale = side / Math.max(img.width, img.height);
    const w = Math.max(1, Math.round(img.width * scale));
    const h = Math.max(1, Math.round(img.height * scale));
    return w === img.width && h === img.height ? img : resizeTo(img, w, h);
}

/** Centre of mass in pixel-index coordinates (MNIST's own digits average (14.0, 14.0) this way). */
export function centreOfMass(img: Grey): { x: number; y: number } {
    let m = 0, sx = 0, sy = 0;
    for (let y = 0; y < img.height; y++) {
        for (let x = 0; x < img.width; x++) {
            const v = img.data[y * img.width + x];
            m += v; sx += v * x; sy += v * y;
        }
    }
    return m > 0 ? { x: sx / m, y: sy / m } : { x: (img.width - 1) / 2, y: (img.height - 1) / 2 };
}

/** Pastes into size x size, shifted by whole pixels so the centre of mass lands on (size/2, size/2), never clipping ink. */
export function pasteCentred(img: Grey, size = SIZE): Grey {
    if (img.width > size || img.height > size) throw new Error(`pasteCentred: ${img.width}x${img.height} does not fit in ${size}x${size}`);
    const c = centreOfMass(img);
    const clamp = (v: number, max: number) => Math.min(max, Math.max(0, v));
    const ox = clamp(Math.round(size / 2 - c.x), size - img.width);
    const oy = clamp(Math.round(size / 2 - c.y), size - img.height);
    const d = new Float32Array(size * size);
    for (let y = 0; y < img.height; y++) d.set(img.data.subarray(y * img.width, (y + 1) * img.width), (oy + y) * size + ox);
    return { data: d, width: size, height: size };
}

export function toUint8(img: Grey): Uint8Array {
    const u = new Uint8Array(img.data.length);
    for (let i = 0; i < u.length; i++) u[i] = Math.round(Math.min(1, Math.max(0, img.data[i])) * 255);
    return u;
}

export async function greyToPng(img: Grey): Promise<Buffer> {
    return encodeGreyPng(toUint8(img), img.width, img.height);
}

const CRC_TABLE = (() => {
    const t = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c;
    }
    return t;
})();

function crc32(buf: Uint8Array): number {
    let c = -1;
    for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
}

function pngChunk(type: string, body: Buffer): Buffer {
    const out = Buffer.alloc(12 + body.length);
    out.writeUInt32BE(body.length, 0);
    out.write(type, 4, 'latin1');
    body.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
    return out;
}

/**
 * 8-bit greyscale PNG, synchronously: for a 28x28 preview this takes ~20 us, where a sharp
 * round trip costs ~0.3-0.6 ms (a tenth of the whole per-image budget).
 */
export function encodeGreyPng(u8: Uint8Array, width: number, height: number): Buffer {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0);
    ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8;  // bit depth
    ihdr[9] = 0;  // colour type: greyscale
    const rows = Buffer.alloc((width + 1) * height); // filter byte 0 (none) before each row
    for (let y = 0; y < height; y++) rows.set(u8.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
    return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(rows)), pngChunk('IEND', Buffer.alloc(0))]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

// ---------------------------------------------------------------- whole pipeline


/**
 * Full MNIST-style pipeline (preprocess=true) or plain resize to 28x28 greyscale
 * (preprocess=false: for images that are already MNIST-like; no inversion, no crop).
 *
 * Gives the same result as chaining the exported steps (decodeGrey, detectPolarity, invertGrey,
 * removeBackground, inkBoundingBox, cropGrey, fitLongerSide, pasteCentred), but works on the
 * decoded 8-bit pixels: every per-pixel step up to the crop is a function of the byte alone, so
 * it becomes a 256-entry table, the medians and the percentile come from histograms, and the
 * full-size image is read twice (histograms, then bounding box) instead of being copied to
 * floats, inverted, sorted and rescanned.
 */
export async function preprocessImage(input: Buffer | string, opts: PreprocessOptions = {}): Promise<Preprocessed> {
    const limits = opts.limits ?? DEFAULT_IMAGE_LIMITS;
    const buf = toImageBuffer(input, limits);
    const grey = await decodeGrey8(buf, limits);
    const toSource = (b: Box): Box => scaleBox(b, grey.sourceWidth / grey.width, grey.sourceHeight / grey.height, grey.sourceWidth, grey.sourceHeight);

    const mode = opts.mode ?? 'auto';
    if (opts.preprocess === false && opts.many) throw new MnistError('many-needs-preprocess');
    let digits: Array<{ out: Grey; box: Box }>;
    let inverted = false;
    let method: Preprocessed['method'] = 'resize';
    if (opts.preprocess === false) {
        const out = grey.width === SIZE && grey.height === SIZE ? toFloat(grey) : toFloat(await resize8(grey, SIZE, SIZE));
        digits = [{ out, box: { left: 0, top: 0, width: grey.sourceWidth, height: grey.sourceHeight } }];
    } else {
        let found = mode === 'photo' ? null : findInk8(grey);
        // Light ink on a transparent canvas vanishes over white; only then try black.
        if (!found && grey.hasAlpha && mode !== 'photo') found = findInk8(await decodeGrey8(buf, limits, '#000000'));
        // A pristine drawing or upload is read as a drawing at once: the page analysis (rulings,
        // shadows, the desk) costs three times the rest of a 280x280 PNG's preprocessing.
        const skipPage = mode === 'drawing' || (mode === 'auto' && !opts.many && !!found?.pristine);
        let page = skipPage ? null : analysePage(found?.grey ?? grey, !!opts.many);
        if (!page && grey.hasAlpha && mode === 'photo') page = analysePage(await decodeGrey8(buf, limits, '#000000'), !!opts.many);
        // Both readings agree on a clean image (then the drawing pipeline's crop is kept: it is
        // the one measured on MNIST); on a photo the drawing reading takes rulings, shadows and
        // the desk for ink.
        const drawing = mode === 'drawing' || (found && !opts.many && drawingFits(found, page));
        if (drawing) {
            if (!found) throw new MnistError('no-digit');
            inverted = found.inverted;
            method = 'drawing';
            digits = [{ out: pasteCentred(await fitCrop(found.grey, found), SIZE), box: toSource(found.box) }];
        } else {
            if (!page) throw new MnistError('no-digit');
            const a = page;
            inverted = a.polarity === 'dark';
            method = 'photo';
            // A number written along a slope (a rotated photo) is turned level, digit by digit.
            const level = Math.abs(a.angle) >= MIN_TURN ? -a.angle : 0;
            digits = await Promise.all(a.digits.map(async (d) => ({
                out: pasteCentred(await fitLongerSide(await turn(digitInk(a, d), level), BOX), SIZE),
                box: toSource(d.box),
            })));
        }
    }

    const images = digits.map(({ out, box }) => {
        // Quantised so `pixels` is exactly what the PNG shows.
        const u8 = toUint8(out);
        const pixels = new Float32Array(u8.length);
        for (let i = 0; i < u8.length; i++) pixels[i] = u8[i] / 255;
        return { pixels, png: encodeGreyPng(u8, out.width, out.height), box };
    });
    const region = opts.region ? await drawRegions(buf, limits, images.map((d) => d.box)) : undefined;
    return { ...images[0], inverted, method, digits: images, width: grey.sourceWidth, height: grey.sourceHeight, region };
}

/**
 * The input image (upright, transparency over white, at most REGION_SIDE px on a side) with a
 * box drawn around each region given in the input's pixels: where the digits were found.
 */
export async function drawRegions(buf: Buffer, limits: ImageLimits, boxes: Box[]): Promise<Buffer> {
    const base = await sharp(buf, { limitInputPixels: limits.maxPixels, autoOrient: true })
        .flatten({ background: '#ffffff' })
        .resize(REGION_SIDE, REGION_SIDE, { fit: 'inside', withoutEnlargement: true })
        .toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
        .catch((e) => { throw decodeError(e); });
    const meta = await sharp(buf, { limitInputPixels: false, autoOrient: true }).metadata();
    const upright = meta.autoOrient ?? { width: meta.width ?? base.info.width, height: meta.height ?? base.info.height };
    const { width: w, height: h, channels } = base.info;
    const sx = w / upright.width, sy = h / upright.height;
    const line = Math.max(2, Math.round(Math.max(w, h) / 200));
    const rects = boxes.map((b) => `<rect x="${(b.left * sx).toFixed(1)}" y="${(b.top * sy).toFixed(1)}" ` +
        `width="${(b.width * sx).toFixed(1)}" height="${(b.height * sy).toFixed(1)}"/>`).join('');
    const overlay = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">` +
        `<g fill="none" stroke="#ff2a6d" stroke-width="${line}">${rects}</g></svg>`);
    return sharp(base.data, { raw: { width: w, height: h, channels } })
        .composite([{ input: overlay, top: 0, left: 0 }])
        .jpeg({ quality: 85 }).toBuffer();
}

/**
 * The drawing reading is the right one for this image: it found the same digit as the photo
 * reading (same polarity, its box around the photo reading's box and hardly bigger: a clean
 * image); or the image is clean and the photo reading found nothing or only the digit's holes;
 * or the image is clean and its ink reaches the frame (an MNIST digit cut at the edge): the photo
 * reading takes what touches the border for the desk and sees only the rest.
 */
function drawingFits(found: Ink8, page: PageAnalysis | null): boolean {
    if (!page) return found.clean;
    if (found.clean && page.digits.length === 1 && runsOffFrame(found, page)) return true;
    const a = found.box, b = page.digits.length === 1 ? page.digits[0].box : null;
    const within = (inner: Box, outer: Box, m: number) => inner.left >= outer.left - m && inner.top >= outer.top - m &&
        inner.left + inner.width <= outer.left + outer.width + m && inner.top + inner.height <= outer.top + outer.height + m;
    if (found.inverted !== (page.polarity === 'dark')) return false;
    if (!b) return false;
    const m = 2 + 0.1 * Math.max(b.width, b.height);
    return within(b, a, 1) && within(a, b, m);
}

/**
 * The digit the photo reading found (its strokes) runs off the frame in the drawing reading: its ink
 * there is connected to ink on the frame's edge (an MNIST digit cut at the edge, whose part on
 * the edge the photo reading took for the desk), and that stroke is no more than 8 times the
 * digit's own ink. A lit half of a board that the drawing reading takes for ink is far bigger.
 */
function runsOffFrame(found: Ink8, page: PageAnalysis): boolean {
    const { data, width: w, height: h } = found.grey;
    if (page.width !== w || page.height !== h) return false;
    const { box, parts } = page.digits[0];
    const own = new Set(parts);
    const seen = new Uint8Array(w * h);
    const stack: number[] = [];
    for (let y = box.top; y < box.top + box.height; y++) {
        for (let x = box.left; x < box.left + box.width; x++) {
            const i = y * w + x;
            if (own.has(page.labels[i]) && found.level[data[i]] > 0) { seen[i] = 1; stack.push(i); }
        }
    }
    // The whole connected ink, not just a path to the edge: a lit region joined to the digit is big.
    let budget = 8 * stack.length, edge = false;
    while (stack.length) {
        if (--budget < 0) return false;
        const i = stack.pop()!;
        const x = i % w, y = (i - x) / w;
        if (x === 0 || y === 0 || x === w - 1 || y === h - 1) { edge = true; continue; }
        for (const j of [i - 1, i + 1, i - w, i + w, i - w - 1, i - w + 1, i + w - 1, i + w + 1]) {
            if (!seen[j] && found.level[data[j]] > 0) { seen[j] = 1; stack.push(j); }
        }
    }
    return edge;
}

/** Below this slope (degrees) a line of digits is left as it is. */
const MIN_TURN = 3;

/** Rotates (clockwise degrees) and crops to the ink again. */
async function turn(img: Grey, degrees: number): Promise<Grey> {
    if (!degrees) return img;
    const { data, info } = await rawGrey8({ data: toUint8(img), width: img.width, height: img.height })
        .rotate(degrees, { background: '#000000' }).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const out = toFloat({ data, width: info.width, height: info.height });
    const box = inkBoundingBox(out);
    return box ? cropGrey(out, box) : out;
}

function scaleBox(b: Box, sx: number, sy: number, maxW: number, maxH: number): Box {
    const left = Math.max(0, Math.floor(b.left * sx)), top = Math.max(0, Math.floor(b.top * sy));
    const right = Math.min(maxW, Math.ceil((b.left + b.width) * sx)), bottom = Math.min(maxH, Math.ceil((b.top + b.height) * sy));
    return { left, top, width: right - left, height: bottom - top };
}

// 8-bit on purpose: sharp treats float/16-bit raw input as other colour spaces and ranges,
// and the result ends up 8-bit anyway. 'b-w' keeps the output one channel.
function rawGrey8(img: Grey8): Sharp {
    return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 1 } }).toColourspace('b-w');
}

interface Ink8 {
    grey: Grey8;
    /** cleaned value (ink bright, [0,1], float32 as removeBackground stores it) of each byte level */
    level: Float32Array;
    box: Box;
    inverted: boolean;
    /**
     * The image is a clean drawing or upload: the background is one level (within 6 %) almost
     * everywhere, the ink is a minority and does not span the frame. A photo's page is not:
     * light falls off, rulings and the desk count as ink.
     */
    clean: boolean;
    /**
     * Cleaner still: the background is one level (within 1 %) nearly everywhere and the ink does not
     * run across the frame (as a ruling or a grid line would). A canvas drawing or an upload is; no
     * photo is (light, paper and noise vary), so the photo reading need not be tried.
     */
    pristine: boolean;
}

/** How far from the border's level the background of a clean image may stray (0-1). */
const FLAT = 0.06;
/** How far from it 90 % of the background of a pristine one may stray (0-1): photos are far from that (at most 75 % measured). */
const EXACT = 0.01;

/** The k-th smallest of the float32 levels fround(u/255) counted in `hist` (quantile()'s index rule). */
function histQuantile(hist: Uint32Array, n: number, q: number): number {
    const k = Math.min(n - 1, Math.max(0, Math.floor(q * (n - 1) + 0.5)));
    let seen = 0;
    for (let u = 0; u < 256; u++) {
        seen += hist[u];
        if (seen > k) return Math.fround(u / 255);
    }
    return NaN;
}

/** detectPolarity + removeBackground (both polarities if needed) + inkBoundingBox on 8-bit pixels. */
function findInk8(grey: Grey8): Ink8 | null {
    const { data, width: w, height: h } = grey;
    const all = new Uint32Array(256);
    for (let i = 0; i < data.length; i++) all[data[i]]++;
    // Border ring exactly as borderPixels() takes it.
    const border = new Uint32Array(256);
    const t = Math.max(1, Math.min(Math.round(Math.min(w, h) * 0.02), Math.floor(Math.min(w, h) / 2)));
    let nBorder = 0;
    for (let y = 0; y < h; y++) {
        const row = y * w;
        if (y < t || y >= h - t) {
            for (let x = 0; x < w; x++) border[data[row + x]]++;
            nBorder += w;
        } else {
            for (let x = 0; x < Math.min(t, w); x++) { border[data[row + x]]++; nBorder++; }
            for (let x = Math.max(t, w - t); x < w; x++) { border[data[row + x]]++; nBorder++; }
        }
    }
    let level = histQuantile(border, nBorder, 0.5);
    if (level > 0.35 && level < 0.65) level = histQuantile(all, data.length, 0.5);
    const invert = level > 0.5;
    const background = invert ? 1 - level : level;

    let inverted = invert;
    let lut = cleanLevels(all, inverted, background);
    if (!lut) {
        inverted = !inverted;
        lut = cleanLevels(all, inverted, 1 - background);
    }
    if (!lut) return null;
    // Bounding box: ink is every pixel whose level cleans to > 0.
    const ink = new Uint8Array(256);
    for (let u = 0; u < 256; u++) ink[u] = lut[u] > 0 ? 1 : 0;
    let l = w, r = -1, top = -1, b = -1;
    for (let y = 0; y < h; y++) {
        const row = y * w;
        let x0 = 0;
        while (x0 < w && !ink[data[row + x0]]) x0++;
        if (x0 === w) continue;
        if (top < 0) top = y;
        b = y;
        if (x0 < l) l = x0;
        let x1 = w - 1;
        while (x1 > r && !ink[data[row + x1]]) x1--;
        if (x1 > r) r = x1;
    }
    if (r < 0) return null;
    let page = 0, flat = 0, exact = 0, inkPixels = 0;
    for (let u = 0; u < 256; u++) {
        if (lut[u] > 0) inkPixels += all[u];
        else {
            page += all[u];
            if (Math.abs(u / 255 - level) <= FLAT) flat += all[u];
            if (Math.abs(u / 255 - level) <= EXACT) exact += all[u];
        }
    }
    const box = { left: l, top, width: r - l + 1, height: b - top + 1 };
    const clean = flat >= 0.95 * page && inkPixels <= 0.35 * data.length && !(box.width >= 0.95 * w && box.height >= 0.95 * h);
    const pristine = clean && exact >= 0.9 * page && box.width < 0.9 * w;
    return { grey, level: lut, box, inverted, clean, pristine };
}

/**
 * removeBackground's arithmetic for each byte level (after invertGrey when `inverted`), the
 * 99.9th percentile taken from the histogram. Null when no level stands out by INK_THRESHOLD.
 */
function cleanLevels(hist: Uint32Array, inverted: boolean, background: number): Float32Array | null {
    const sub = new Float32Array(256);
    const isCandidate = new Uint8Array(256);
    let n = 0;
    for (let u = 0; u < 256; u++) {
        let f = Math.fround(u / 255);
        if (inverted) f = Math.fround(1 - f);
        const v = Math.max(0, f - background);
        sub[u] = v;
        if (v >= INK_THRESHOLD && hist[u] > 0) { isCandidate[u] = 1; n += hist[u]; }
    }
    if (n === 0) return null;
    // Candidates in ascending order of their value: increasing bytes, or decreasing when inverted.
    const k = Math.min(n - 1, Math.max(0, Math.floor(0.999 * (n - 1) + 0.5)));
    let hi = NaN, seen = 0;
    for (let j = 0; j < 256; j++) {
        const u = inverted ? 255 - j : j;
        if (!isCandidate[u]) continue;
        seen += hist[u];
        if (seen > k) { hi = sub[u]; break; }
    }
    const out = new Float32Array(256);
    for (let u = 0; u < 256; u++) {
        const v = Math.min(1, sub[u] / hi);
        out[u] = v < INK_THRESHOLD ? 0 : v;
    }
    return out;
}

/** cropGrey + fitLongerSide for the cleaned 8-bit image: only the crop is ever turned into floats or bytes. */
async function fitCrop(grey: Grey8, ink: Ink8, side = BOX): Promise<Grey> {
    const { box, level } = ink;
    const scale = side / Math.max(box.width, box.height);
    const w = Math.max(1, Math.round(box.width * scale));
    const h = Math.max(1, Math.round(box.height * scale));
    const src = grey.data, W = grey.width;
    if (w === box.width && h === box.height) {
        const d = new Float32Array(w * h);
        for (let y = 0; y < h; y++) {
            const row = (box.top + y) * W + box.left;
            for (let x = 0; x < w; x++) d[y * w + x] = level[src[row + x]];
        }
        return { data: d, width: w, height: h };
    }
    const bytes = new Uint8Array(256); // what toUint8 would make of each cleaned level
    for (let u = 0; u < 256; u++) bytes[u] = Math.round(Math.min(1, Math.max(0, level[u])) * 255);
    const crop = new Uint8Array(box.width * box.height);
    for (let y = 0; y < box.height; y++) {
        const row = (box.top + y) * W + box.left, o = y * box.width;
        for (let x = 0; x < box.width; x++) crop[o + x] = bytes[src[row + x]];
    }
    return toFloat(await resize8({ data: crop, width: box.width, height: box.height }, w, h));
}

function findInk(grey: Grey): { clean: Grey; box: Box; inverted: boolean } | null {
    const pol = detectPolarity(grey);
    let inverted = pol.invert;
    let clean = removeBackground(inverted ? invertGrey(grey) : grey, pol.background);
    if (!clean) {
        // Dark ink on dark (e.g. red) paper reads as "dark background": try the other polarity.
        inverted = !inverted;
        clean = removeBackground(inverted ? invertGrey(grey) : grey, 1 - pol.background);
    }
    const box = clean && inkBoundingBox(clean);
    return clean && box ? { clean, box, inverted } : null;
}

/**
 * The pipeline spelled out with the exported float steps: the reference that preprocessImage's
 * 8-bit path must match (the tests compare them). Returns the 28x28 before quantisation.
 */
export async function preprocessGreyReference(grey: Grey): Promise<{ out: Grey; inverted: boolean } | null> {
    const found = findInk(grey);
    if (!found) return null;
    return { out: pasteCentred(await fitLongerSide(cropGrey(found.clean, found.box), BOX), SIZE), inverted: found.inverted };
}

async function resize8(img: Grey8, w: number, h: number): Promise<Grey8> {
    const { data, info } = await rawGrey8(img)
        .resize(w, h, { fit: 'fill', kernel: 'lanczos3' })
        .raw()
        .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1) throw new Error(`resize: expected 1 channel, got ${info.channels}`);
    return { data, width: info.width, height: info.height };
}

async function resizeTo(img: Grey, w: number, h: number): Promise<Grey> {
    return toFloat(await resize8({ data: toUint8(img), width: img.width, height: img.height }, w, h));
}
