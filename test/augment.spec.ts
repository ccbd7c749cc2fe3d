import { strict as assert } from 'assert';
import { AUGMENT, augmentImages } from '../src/lib/augment';
import { drive } from '../src/lib/engine/driver';
import { TRAIN_DEFAULTS } from '../src/lib/engine/types';
import type { EngineSession, ModelSpec, TrainData, TrainEngine } from '../src/lib/engine/types';
import { rng } from '../src/lib/random';

const SIDE = 28;
const C = (SIDE - 1) / 2;
function dot(x: number, y: number): Uint8Array {
  const img = new Uint8Array(SIDE * SIDE);
  img[y * SIDE + x] = 255;
  return img;
}
function centre(img: Uint8Array): [number, number] {
  let m = 0, sx = 0, sy = 0;
  img.forEach((v, i) => { m += v; sx += v * (i % SIDE); sy += v * Math.floor(i / SIDE); });
  return [sx / m, sy / m];
}

describe('augment: random turns, scales and shifts of training images', () => {
  it('leaves an image as it is with zero magnitudes, and writes into the buffer it is given', () => {
    const img = Uint8Array.from({ length: 2 * SIDE * SIDE }, (_, i) => (i * 37) % 256);
    const out = new Uint8Array(img.length);
    assert.equal(augmentImages(img, 2, SIDE, SIDE, Math.random, { degrees: 0, scale: 0, shift: 0 }, out), out);
    assert.deepEqual(out, img);
  });

  it('shifts, turns and scales about the centre as asked', () => {
    const max = () => 1; // every random draw at its top: +degrees, +scale, +shift
    const shifted = augmentImages(dot(10, 12), 1, SIDE, SIDE, max, { degrees: 0, scale: 0, shift: 2 });
    assert.deepEqual(centre(shifted).map((v) => Number(v.toFixed(6))), [12, 14]);
    // A dot at (+6.5, +0.5) from the centre, turned by 90 degrees, lands at (-0.5, +6.5).
    const turned = augmentImages(dot(20, 14), 1, SIDE, SIDE, max, { degrees: 90, scale: 0, shift: 0 });
    const [x, y] = centre(turned);
    assert.ok(Math.abs(x - (C - 0.5)) < 1e-6 && Math.abs(y - (C + 6.5)) < 1e-6, `${x}, ${y}`);
    // Scaled by 1.5, a dot 4 px from the centre ends 6 px from it.
    const scaled = augmentImages(dot(Math.round(C + 4.5), Math.round(C + 0.5)), 1, SIDE, SIDE, max, { degrees: 0, scale: 0.5, shift: 0 });
    assert.ok(Math.abs(centre(scaled)[0] - (C + 4.5 * 1.5)) < 0.05, String(centre(scaled)));
  });

  it('keeps digits whole within the default magnitudes (ink stays on the 28x28 canvas)', () => {
    const img = new Uint8Array(SIDE * SIDE);
    for (let y = 4; y < 24; y++) for (let x = 9; x < 19; x++) img[y * SIDE + x] = 200; // a 10x20 stroke box, MNIST's 20-px digit height
    const ink = (a: Uint8Array) => a.reduce((s, v) => s + v, 0);
    const random = rng(5);
    for (let i = 0; i < 50; i++) {
      const out = augmentImages(img, 1, SIDE, SIDE, random, AUGMENT);
      const ratio = ink(out) / ink(img);
      assert.ok(ratio > 0.75 && ratio < 1.3, `ink kept: ${ratio}`);
    }
  });

  it('the training loop hands the engine a fresh augmented copy every epoch, the same for the same seed', async () => {
    const count = 8;
    const data: TrainData = {
      images: Uint8Array.from({ length: count * SIDE * SIDE }, (_, i) => ((i % SIDE) > 8 && (i % SIDE) < 20 ? 255 : 0)),
      labels: Uint8Array.from({ length: count }, (_, i) => i % 2), count, rows: SIDE, cols: SIDE, normalization: null, classes: 2,
    };
    const spec: ModelSpec = { inputShape: [SIDE, SIDE, 1], layers: [{ kind: 'flatten' }, { kind: 'dense', units: 2, activation: 'linear' }] };
    const recording = (seen: Uint8Array[]): TrainEngine => ({
      name: 'recording', threads: 1,
      async open(): Promise<EngineSession> {
        return {
          async run(batches) { return new Float32Array(batches.length).fill(0.5); },
          async getWeights() { return [new Float32Array(SIDE * SIDE * 2), new Float32Array(2)]; },
          async setWeights() { /* nothing to keep */ },
          async evaluate() { return { loss: 0, predicted: new Int32Array(0) }; },
          async setLearningRate() { /* constant */ },
          async setImages(images) { seen.push(images.slice()); },
          dispose() { /* nothing held */ },
        };
      },
    });
    const weights = [new Float32Array(SIDE * SIDE * 2), new Float32Array(2)];
    const [a, b, none]: Uint8Array[][] = [[], [], []];
    await drive(recording(a), spec, weights, data, { ...TRAIN_DEFAULTS, epochs: 3, batchSize: 4, augment: true, seed: 9 });
    await drive(recording(b), spec, weights, data, { ...TRAIN_DEFAULTS, epochs: 3, batchSize: 4, augment: true, seed: 9 });
    await drive(recording(none), spec, weights, data, { ...TRAIN_DEFAULTS, epochs: 3, batchSize: 4 });
    assert.equal(a.length, 3, 'one copy per epoch');
    assert.equal(none.length, 0, 'no augmentation unless asked');
    assert.deepEqual(a, b, 'the same seed gives the same copies');
    assert.notDeepEqual(a[0], a[1]);
    assert.notDeepEqual(a[0], data.images);
    assert.equal(a[0].length, data.images.length);
  });
});
