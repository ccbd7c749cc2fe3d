// Single-digit photos with a CNN (issue 14: >= 98 % once the CNN has landed). Generates the same
// 200 photos as test/photo.spec.ts (test/photo-kit.ts), trains the CNN with the flow test's recipe
// (cnn-model defaults, Adam 0.002, lrDecay 0.4, cross-entropy, batch 128, 3 epochs) and reads them
// through predict's preprocessing. Run: node -r ts-node/register/transpile-only scripts/measure-photos-cnn.ts [seed=0]
import { initBackend } from '../src/lib/backend';
import { SplitView, loadDataset } from '../src/lib/dataset';
import { ModelEntry, createCnn } from '../src/lib/model';
import { classify, decodeInputs } from '../src/lib/predict';
import { train } from '../src/lib/train';
import { makePhoto, Photo } from '../test/photo-kit';

async function main(): Promise<void> {
  const seed = Number(process.argv[2] ?? 0);
  await initBackend(undefined, () => undefined);
  const photos: Photo[] = [];
  for (let i = 0; i < 200; i++) photos.push(await makePhoto(i));
  const ds = await loadDataset({ source: 'embedded' });
  const normalization = { mean: 0.1307, std: 0.3081 };
  const view: SplitView = { ...ds.train!, normalization };
  const model = createCnn({ inputShape: [28, 28], filters: [32, 64], kernelSize: 3, dense: [128], dropout: 0.25, activation: 'relu', classes: 10, seed });
  const r = await train(model, view, 10, { epochs: 3, batchSize: 128, learningRate: 0.002, lrDecay: 0.4, momentum: 0, optimizer: 'adam', loss: 'crossentropy', shuffle: true, seed: 0 });
  const entry: ModelEntry = { model, meta: { classes: ds.classes, inputShape: [28, 28], normalization } };
  let right = 0;
  const misses: string[] = [];
  for (let i = 0; i < photos.length; i += 50) {
    const batch = photos.slice(i, i + 50);
    const { pixels } = await decodeInputs(batch.map((p) => p.image), { rows: 28, cols: 28, maxImages: 1000 });
    classify(entry, pixels).forEach((p, k) => {
      if (p.label === batch[k].labels[0]) right++;
      else misses.push(`${batch[k].labels[0]}->${p.label}`);
    });
  }
  console.log(`CNN seed ${seed} (${r.seconds.toFixed(0)} s on ${r.engine}): single-digit photos ${right} of ${photos.length} (${(100 * right / photos.length).toFixed(1)} %); misses ${misses.join(' ')}`);
  model.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
