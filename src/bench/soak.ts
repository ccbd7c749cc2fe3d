/**
 * Soak test (npm run soak): the nodes in a real Node-RED flow, run over and over the way a
 * long-lived deployment would. 5 trainings in a row on a 5,000-sample subset, then 10,000
 * single-image predictions through the predict node. Fails (exit 1) when tensors do not return
 * to the baseline or RSS grows more than 10 % after warm-up.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../lib/backend';
import { loadDataset } from '../lib/dataset';

const TRAININGS = 5;
const PREDICTIONS = 10000;
const SAMPLES = 5000;
const WARM_PREDICTIONS = 1000;
const RSS_LIMIT = 0.10;

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-require-imports -- the test helper and Node-RED messages are untyped CommonJS */
const helper = require('node-red-node-test-helper');
helper.init(require.resolve('node-red'));
const NODES = ['mnist-dataset', 'normalize', 'mlp-model', 'sgd-train', 'predict'].map((n) => require(`../nodes/${n}`));

const mib = (bytes: number) => bytes / 1024 / 1024;

/** The test helper records every node method call (with its message) in sinon spies: forget them. */
function forgetCalls(): void {
  helper._sandbox.resetHistory();
}

function rss(): number {
  forgetCalls();
  (global as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

function nextFrom(id: string): Promise<any> {
  const node = helper.getNode(id);
  return new Promise((resolve, reject) => {
    const ok = (m: any) => { node.removeListener('input', ok); helper.getNode('caught').removeListener('input', bad); resolve(m); };
    const bad = (m: any) => { node.removeListener('input', ok); helper.getNode('caught').removeListener('input', bad); reject(new Error(m.error.message)); };
    node.on('input', ok);
    helper.getNode('caught').on('input', bad);
  });
}

const FLOW = [
  { id: 'ds', type: 'mnist-dataset', limit: SAMPLES, wires: [['norm']] },
  { id: 'norm', type: 'normalize', wires: [['mlp']] },
  { id: 'mlp', type: 'mlp-model', wires: [['train']] },
  { id: 'train', type: 'sgd-train', epochs: '1', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '128', progressEvery: '0', wires: [['trained'], []] },
  { id: 'trained', type: 'helper' },
  { id: 'predictor', type: 'predict', topK: '1', wires: [['predicted']] },
  { id: 'predicted', type: 'helper' },
  { id: 'catcher', type: 'catch', wires: [['caught']] },
  { id: 'caught', type: 'helper' },
];

async function training(): Promise<any> {
  const done = nextFrom('trained');
  helper.getNode('ds').receive({ payload: true });
  return done;
}

const samples: number[] = [];

async function predictions(model: unknown, images: Array<{ pixels: number[]; label: number }>, n: number): Promise<number> {
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const got = nextFrom('predicted');
    helper.getNode('predictor').receive({ payload: images[i % images.length].pixels, model });
    const m = await got;
    if (i % 100 === 99) forgetCalls();
    if (i % 2000 === 1999) samples.push(mib(rss()));
    if (m.payload.label === images[i % images.length].label) correct++;
  }
  return correct / n;
}

async function main(): Promise<void> {
  const backend = await initBackend(undefined, () => undefined);
  const test = (await loadDataset({ source: 'embedded', splits: 'test', limit: 1000 })).test!;
  const size = test.rows * test.cols;
  const images = Array.from({ length: test.count }, (_, i) => ({ pixels: Array.from(test.images.subarray(i * size, (i + 1) * size)), label: test.labels[i] }));

  const tensorsStart = tf.memory().numTensors;
  await helper.load(NODES, FLOW);
  const rows: Array<[string, string]> = [];
  const t0 = Date.now();

  // Warm-up: the wasm heap grows to its working size over the first two trainings and never
  // shrinks (docs/ROBUSTNESS.md); a leak shows as growth after that.
  let t = await training();
  t = await training();
  await predictions(t.model, images, WARM_PREDICTIONS);
  const rssWarm = rss();
  rows.push([`warm-up (2 trainings, ${WARM_PREDICTIONS} predictions)`, `${((Date.now() - t0) / 1000).toFixed(1)} s`]);

  for (let i = 1; i <= TRAININGS; i++) {
    const s = Date.now();
    t = await training();
    rows.push([`training ${i} (${SAMPLES} samples, 1 epoch, Adam)`, `loss ${t.payload.loss.toFixed(4)} · ${((Date.now() - s) / 1000).toFixed(1)} s · ${tf.memory().numTensors} tensors · RSS ${mib(rss()).toFixed(0)} MiB`]);
  }
  const s = Date.now();
  const accuracy = await predictions(t.model, images, PREDICTIONS);
  const seconds = (Date.now() - s) / 1000;
  rows.push([`${PREDICTIONS} single predictions`, `${seconds.toFixed(1)} s · ${(seconds * 1000 / PREDICTIONS).toFixed(2)} ms each · accuracy ${(accuracy * 100).toFixed(1)} %`]);

  rows.push(['RSS every 2000 predictions', `${samples.slice(-PREDICTIONS / 2000).map((v) => v.toFixed(0)).join(' · ')} MiB`]);
  const tensorsLoaded = tf.memory().numTensors;
  const rssEnd = rss();
  await helper.unload();
  const tensorsEnd = tf.memory().numTensors;
  const growth = (rssEnd - rssWarm) / rssWarm;

  rows.push(['backend', backend]);
  rows.push(['tensors at start / deployed at end / after unload', `${tensorsStart} / ${tensorsLoaded} / ${tensorsEnd}`]);
  rows.push(['RSS after warm-up / at end', `${mib(rssWarm).toFixed(0)} MiB / ${mib(rssEnd).toFixed(0)} MiB (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)} %)`]);
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`\nnode-red-mnist soak (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);

  const failures: string[] = [];
  if (tensorsEnd !== tensorsStart) failures.push(`tensors did not return to the baseline: ${tensorsStart} -> ${tensorsEnd}`);
  if (growth > RSS_LIMIT) failures.push(`RSS grew ${(growth * 100).toFixed(1)} % after warm-up (limit ${RSS_LIMIT * 100} %)`);
  for (const f of failures) console.error(`FAIL: ${f}`);
  if (!failures.length) console.log('OK: tensors back to baseline, RSS within 10 %');
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
