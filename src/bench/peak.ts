/**
 * npm run peak [-- --json] [--no-cnn]: the peak memory of each operation the nodes run, each in a
 * fresh process so one operation's peak is not hidden by another's, for docs/ROBUSTNESS.md.
 *   - training the tutorial MLP (60k, 3 epochs, SGD + MSE, batch 512) on the native engine and
 *     on the tfjs (wasm) engine: Node-RED's process and the training process, each at its peak;
 *   - training the default CNN (60k, 1 epoch, Adam, batch 128) on the native engine;
 *   - a 10k evaluation and a 10k batch prediction (main thread, wasm);
 *   - predicting one 12 MP (4000x3000) JPEG photo (decode, preprocess, infer; main thread).
 * The peaks are the kernel's high-water marks (VmHWM) of each process, reset (clear_refs) just
 * before the operation; "before" is the process then: data loaded, model built.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import sharp from 'sharp';
import { initBackend } from '../lib/backend';
import { loadDataset, SplitView } from '../lib/dataset';
import { EnginePreference } from '../lib/engine/pick';
import { evaluate } from '../lib/metrics';
import { createCnn, createMlp, ModelEntry } from '../lib/model';
import { classify, decodeInputs } from '../lib/predict';
import { train } from '../lib/train';
import { TrainOptions } from '../lib/engine/types';

const MB = 1024;
const NORM = { mean: 0.1307, std: 0.3081 };

/** VmRSS and VmHWM (peak) of a process, in MB. */
function status(pid: number | 'self' = 'self'): { rss: number; peak: number } | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS') / MB, peak: kb('VmHWM') / MB };
  } catch {
    return null;
  }
}

/** Resets this process's high-water mark (Linux: clear_refs 5), so a peak is the operation's own. */
function resetPeak(): number {
  global.gc?.();
  fs.writeFileSync('/proc/self/clear_refs', '5');
  return status()!.rss;
}

/** The high-water marks of this process's children, read every 50 ms while `work` runs. */
async function watchChildren<T>(work: Promise<T>): Promise<{ value: T; childPeak: number }> {
  let childPeak = 0;
  const read = () => {
    for (const task of fs.readdirSync('/proc/self/task')) {
      let kids = '';
      try { kids = fs.readFileSync(`/proc/self/task/${task}/children`, 'utf8'); } catch { continue; }
      for (const pid of kids.split(' ').filter(Boolean)) {
        const peak = status(Number(pid))?.peak;
        if (peak !== undefined && Number.isFinite(peak)) childPeak = Math.max(childPeak, peak);
      }
    }
  };
  const timer = setInterval(read, 50);
  try {
    return { value: await work, childPeak };
  } finally {
    clearInterval(timer);
  }
}

interface Row { operation: string; beforeMB: number; peakMB: number; childPeakMB?: number; seconds: number; note: string }

async function operation(name: string): Promise<Row> {
  await initBackend('wasm', () => undefined);
  const needTrain = name.startsWith('train');
  const ds = await loadDataset({ source: 'embedded', splits: needTrain ? 'train' : 'test', shuffle: true, seed: 0 });
  const view = (split: typeof ds.train): SplitView => ({ ...split!, normalization: NORM });
  const mlp = () => createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed: 0 });
  const entry = (model: ReturnType<typeof mlp>): ModelEntry => ({ model, meta: { classes: '0123456789'.split(''), inputShape: [28, 28], normalization: NORM } } as ModelEntry);
  const t0 = Date.now();
  const done = (operation: string, before: number, note: string, childPeakMB?: number): Row => ({
    operation, beforeMB: before, peakMB: status()!.peak, childPeakMB, seconds: (Date.now() - t0) / 1000, note,
  });
  if (name === 'train-mlp-native' || name === 'train-mlp-tfjs') {
    const model = mlp();
    const engine: EnginePreference = name.endsWith('native') ? 'native' : 'tfjs';
    const options: TrainOptions = { epochs: 3, batchSize: 512, learningRate: 0.005, momentum: 0.9, optimizer: 'sgd', loss: 'mse', shuffle: true, seed: 0 };
    const before = resetPeak();
    const { value, childPeak } = await watchChildren(train(model, view(ds.train), 10, options, { engine }));
    return done(`train MLP 784-256-64-10, 60k x 3 epochs (${value.engine} engine)`, before, `loss ${value.finalLoss.toFixed(4)}`, childPeak);
  }
  if (name === 'train-cnn-native') {
    const model = createCnn({ inputShape: [28, 28], filters: [32, 64], kernelSize: 3, dense: [128], dropout: 0, activation: 'relu', classes: 10, seed: 0 });
    const options: TrainOptions = { epochs: 1, batchSize: 128, learningRate: 0.001, momentum: 0.9, optimizer: 'adam', loss: 'crossentropy', shuffle: true, seed: 0 };
    const before = resetPeak();
    const { value, childPeak } = await watchChildren(train(model, view(ds.train), 10, options, { engine: 'native' }));
    return done(`train CNN conv32-conv64-dense128, 60k x 1 epoch (${value.engine} engine)`, before, `loss ${value.finalLoss.toFixed(4)}`, childPeak);
  }
  if (name === 'evaluate-10k') {
    const model = mlp();
    const before = resetPeak();
    const m = await evaluate(model, view(ds.test), 10, 'crossentropy');
    return done('evaluate the MLP on the 10k test split (main thread, wasm)', before, `${m.count} images`);
  }
  if (name === 'predict-10k') {
    const model = mlp();
    const v = view(ds.test);
    const images = Array.from({ length: v.count }, (_, i) => Float32Array.from(v.images.subarray(i * 784, (i + 1) * 784), (b) => b / 255));
    const before = resetPeak();
    const p = classify([entry(model)], images, { topK: 3 });
    return done('predict a batch of 10k images with the MLP (main thread, wasm)', before, `${p.length} predictions`);
  }
  if (name === 'predict-photo') {
    const model = mlp();
    // A 12 MP phone photo of a digit on paper: 4000x3000 JPEG with noise, so it does not compress to nothing.
    const w = 4000;
    const h = 3000;
    const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#e8e4da"/><text x="1300" y="2500" font-size="2600" font-family="DejaVu Sans" fill="#222">5</text></svg>`);
    const noise = await sharp({ create: { width: w, height: h, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 0, sigma: 40 } } }).png().toBuffer();
    const photo = await sharp(svg).composite([{ input: noise, blend: 'soft-light' }]).jpeg({ quality: 90 }).toBuffer();
    const before = resetPeak();
    const { pixels } = await decodeInputs(photo, { rows: 28, cols: 28, preprocess: true });
    const p = classify([entry(model)], pixels, { topK: 3 });
    return done('predict one 12 MP photo (4000x3000 JPEG, decode + preprocess + infer, main thread)', before, `${(photo.length / 2 ** 20).toFixed(1)} MB JPEG, label ${p[0].label} (untrained model)`);
  }
  throw new Error(`unknown operation ${name}`);
}

const OPERATIONS = ['train-mlp-native', 'train-mlp-tfjs', 'train-cnn-native', 'evaluate-10k', 'predict-10k', 'predict-photo'];

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--one') {
    const row = await operation(argv[1]);
    process.stdout.write(`${JSON.stringify(row)}\n`);
    process.exit(0);
  }
  const json = argv.includes('--json');
  const ops = argv.includes('--no-cnn') ? OPERATIONS.filter((o) => !o.includes('cnn')) : OPERATIONS;
  const rows: Row[] = [];
  for (const op of ops) {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', __filename, '--one', op], { stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d) => { text += d; });
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`${op} failed (${code}): ${text}`))));
    });
    const row = JSON.parse(out.trim().split('\n').pop()!) as Row;
    rows.push(row);
    if (!json) {
      const child = row.childPeakMB ? ` · training process peak ${row.childPeakMB.toFixed(0)} MB` : '';
      console.log(`${row.operation}: Node-RED-side ${row.beforeMB.toFixed(0)} MB before, peak ${row.peakMB.toFixed(0)} MB${child} · ${row.seconds.toFixed(1)} s · ${row.note}`);
    }
  }
  if (json) console.log(JSON.stringify(rows));
}

main().catch((e) => { console.error(e); process.exit(1); });
