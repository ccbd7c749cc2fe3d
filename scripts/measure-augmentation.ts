// Does training-time augmentation help? (issue 12) Trains the default CNN (and the tutorial's
// MLP with Adam) on MNIST for 3 epochs, each epoch on the original images or on a fresh randomly
// shifted / rotated / scaled copy of them, and reads the MNIST test set and our own 520 digit
// images (test/own-images.ts). Both arms train epoch by epoch through train(), so they differ only
// in the images. Run: node -r ts-node/register/transpile-only scripts/measure-augmentation.ts [seeds=2] [cnn|mlp|both]
import { augmentImages } from '../src/lib/augment';
import { initBackend } from '../src/lib/backend';
import { SplitView, loadDataset, toFloats } from '../src/lib/dataset';
import { ModelEntry, createCnn, createMlp } from '../src/lib/model';
import { classify, decodeInputs } from '../src/lib/predict';
import { rng } from '../src/lib/random';
import { train } from '../src/lib/train';
import { makeImageSet } from '../test/own-images';

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
          const view = augmented ? { ...base, images: augmentImages(base.images, base.count, 28, 28, random) } : base;
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
