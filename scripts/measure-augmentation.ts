// Does training-time augmentation help? (issue 12) Trains the default CNN (and the tutorial's
// MLP with Adam) on MNIST for 3 epochs, each epoch on the original images or on a fresh randomly
// shifted / rotated / scaled copy of them, and reads the MNIST test set and our own 520 digit
// images (test/own-images.ts). Both arms train epoch by epoch through train(), so they differ only
// in the images. Run: node -r ts-node/register/transpile-only scripts/measure-augmentation.ts [seeds=2] [cnn|mlp|both]
import { initBackend } from '../src/lib/backend';
import { SplitView, loadDataset, toFloats } from '../src/lib/dataset';
import { ModelEntry, createCnn, createMlp } from '../src/lib/model';
import { classify, decodeInputs } from '../src/lib/predict';
import { rng } from '../src/lib/random';
import { train } from '../src/lib/train';
import { makeImageSet } from '../test/own-images';

/** Each image turned by up to ±maxDeg, scaled by 1±maxScale and shifted by up to ±maxShift pixels about its centre (bilinear). */
function augment(images: Uint8Array, count: number, side: number, random: () => number, maxDeg = 12, maxScale = 0.1, maxShift = 2.5): Uint8Array {
  const out = new Uint8Array(images.length);
  const c = (side - 1) / 2;
  for (let n = 0; n < count; n++) {
    const a = ((random() * 2 - 1) * maxDeg * Math.PI) / 180;
    const s = 1 + (random() * 2 - 1) * maxScale;
    const dx = (random() * 2 - 1) * maxShift;
    const dy = (random() * 2 - 1) * maxShift;
    const cos = Math.cos(a) / s;
    const sin = Math.sin(a) / s;
    const src = images.subarray(n * side * side, (n + 1) * side * side);
    const dst = out.subarray(n * side * side, (n + 1) * side * side);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        // the source point that lands on (x, y)
        const u = cos * (x - c - dx) + sin * (y - c - dy) + c;
        const v = -sin * (x - c - dx) + cos * (y - c - dy) + c;
        const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
        const at = (xx: number, yy: number) => (xx < 0 || yy < 0 || xx >= side || yy >= side ? 0 : src[yy * side + xx]);
        const val = at(x0, y0) * (1 - fx) * (1 - fy) + at(x0 + 1, y0) * fx * (1 - fy) + at(x0, y0 + 1) * (1 - fx) * fy + at(x0 + 1, y0 + 1) * fx * fy;
        dst[y * side + x] = Math.round(val);
      }
    }
  }
  return out;
}

async function main(): Promise<void> {
  const seeds = Number(process.argv[2] ?? 2);
  const which = process.argv[3] ?? 'both';
  await initBackend(undefined, () => undefined);
  const ds = await loadDataset({ source: 'embedded' });
  const normalization = { mean: 0.1307, std: 0.3081 };
  const base: SplitView = { ...ds.train!, normalization };
  const test: SplitView = { ...ds.test!, normalization: null };
  const own = await makeImageSet();
  const ownPixels = (await decodeInputs(own.map((s) => s.image), { rows: 28, cols: 28 })).pixels;
  const raw = toFloats(test);
  const testPixels = Array.from({ length: test.count }, (_, i) => raw.subarray(i * 784, (i + 1) * 784));
  const rate = (e: ModelEntry, px: Float32Array[], truth: (i: number) => number) => classify(e, px).filter((p, i) => p.label === truth(i)).length / px.length;
  const kinds = which === 'both' ? ['mlp', 'cnn'] : [which];
  for (const kind of kinds) {
    for (const augmented of [false, true]) {
      const results: string[] = [];
      for (let seed = 1; seed <= seeds; seed++) {
        const model = kind === 'cnn'
          ? createCnn({ inputShape: [28, 28], filters: [32, 64], kernelSize: 3, dense: [128], dropout: 0.25, activation: 'relu', classes: 10, seed })
          : createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed });
        const random = rng(seed * 1000 + 17);
        for (let epoch = 1; epoch <= 3; epoch++) {
          const view = augmented ? { ...base, images: augment(base.images, base.count, 28, random) } : base;
          await train(model, view, 10, { epochs: 1, batchSize: 128, learningRate: 0.001, momentum: 0, optimizer: 'adam', loss: 'crossentropy', shuffle: true, seed: seed * 10 + epoch });
        }
        const entry: ModelEntry = { model, meta: { classes: ds.classes, inputShape: [28, 28], normalization } };
        results.push(`MNIST ${(100 * rate(entry, testPixels, (i) => test.labels[i])).toFixed(2)} % / own ${(100 * rate(entry, ownPixels, (i) => own[i].digit)).toFixed(1)} %`);
        model.dispose();
      }
      console.log(`${kind} ${augmented ? 'augmented' : 'plain    '}: ${results.join(';  ')}`);
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
