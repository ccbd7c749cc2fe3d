// What an ensemble of CNNs reads (issue 12): trains N CNNs (different seeds, the cnn-model
// defaults, Adam 0.002 with lrDecay 0.4 + cross-entropy, 3 epochs) on the embedded MNIST, then reads the MNIST test
// set and our own 520 non-MNIST digit images (test/own-images.ts) with each model alone and with
// the first 1, 3, 5 averaged as predict averages them. Run: node -r ts-node/register/transpile-only scripts/measure-ensemble.ts [N=5] [epochs=3]
import { initBackend } from '../src/lib/backend';
import { SplitView, loadDataset, toFloats } from '../src/lib/dataset';
import { ModelEntry, createCnn } from '../src/lib/model';
import { classify, decodeInputs } from '../src/lib/predict';
import { train } from '../src/lib/train';
import { OPTIONS } from '../src/nodes/options';
import { makeImageSet } from '../test/own-images';

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5);
  const epochs = Number(process.argv[3] ?? 3);
  await initBackend(undefined, () => undefined);
  const ds = await loadDataset({ source: 'embedded' });
  const normalization = { mean: 0.1307, std: 0.3081 };
  const trainView: SplitView = { ...ds.train!, normalization };
  const testView: SplitView = { ...ds.test!, normalization: null };
  const d = OPTIONS['cnn-model'];
  const own = await makeImageSet();
  const ownPixels = (await decodeInputs(own.map((s) => s.image), { rows: 28, cols: 28 })).pixels;
  const testRaw = toFloats(testView);
  const testPixels = Array.from({ length: testView.count }, (_, i) => testRaw.subarray(i * 784, (i + 1) * 784));
  const entries: ModelEntry[] = [];
  const rows: string[] = [];
  const accuracy = (models: ModelEntry[], pixels: Float32Array[], truth: (i: number) => number) =>
    classify(models, pixels).filter((p, i) => p.label === truth(i)).length / pixels.length;
  for (let seed = 1; seed <= n; seed++) {
    const model = createCnn({ inputShape: [28, 28], filters: [32, 64], kernelSize: d.kernelSize.default, dense: [128], dropout: d.dropout.default, activation: 'relu', classes: 10, seed });
    const r = await train(model, trainView, 10, { epochs, batchSize: 128, learningRate: 0.002, lrDecay: 0.4, momentum: 0, optimizer: 'adam', loss: 'crossentropy', shuffle: true, seed });
    const entry: ModelEntry = { model, meta: { classes: ds.classes, inputShape: [28, 28], normalization } };
    entries.push(entry);
    const mnist = accuracy([entry], testPixels, (i) => testView.labels[i]);
    const mine = accuracy([entry], ownPixels, (i) => own[i].digit);
    rows.push(`CNN seed ${seed}: MNIST test ${(mnist * 100).toFixed(2)} %, own images ${(mine * 100).toFixed(1)} % (${r.seconds.toFixed(0)} s on ${r.engine})`);
    console.log(rows[rows.length - 1]);
  }
  for (const k of [3, 5].filter((k) => k <= n)) {
    const mnist = accuracy(entries.slice(0, k), testPixels, (i) => testView.labels[i]);
    const mine = accuracy(entries.slice(0, k), ownPixels, (i) => own[i].digit);
    console.log(`ensemble of ${k}: MNIST test ${(mnist * 100).toFixed(2)} %, own images ${(mine * 100).toFixed(1)} %`);
  }
  entries.forEach((e) => e.model.dispose());
}

main().catch((e) => { console.error(e); process.exit(1); });
