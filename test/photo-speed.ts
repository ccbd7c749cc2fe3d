// Issue 14's speed figure: a 12-megapixel phone JPEG (4000x3000, a digit on ruled paper under a
// lamp, from test/photo-kit.ts) through predict's whole path (decode, photo preprocessing, the
// MLP), median and p90 over repeated runs. A script, not a spec: timings depend on the machine
// and its load, so they are reported (docs/BENCHMARKS.md), never asserted.
//   node -r ts-node/register/transpile-only test/photo-speed.ts [runs]
import * as os from 'os';
import { backend } from './helpers';
import { preprocessImage } from '../src/lib/image';
import { createMlp, ModelEntry } from '../src/lib/model';
import { classify } from '../src/lib/predict';
import { makePhoto } from './photo-kit';

(async () => {
  const runs = Number(process.argv[2] ?? 30);
  await backend();
  // The tutorial's MLP (256,64), untrained: inference costs the same as a trained one's.
  const entry: ModelEntry = {
    model: createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed: 0 }),
    meta: { classes: '0123456789'.split(''), inputShape: [28, 28], normalization: { mean: 0.1307, std: 0.3081 } },
  };
  const photos = [];
  for (let i = 0; i < 3; i++) {
    photos.push((await makePhoto(i, { scene: { width: 4000, height: 3000, quality: 90, paper: 'ruled' } })).image);
  }
  const times: number[] = [];
  let cpu = 0;
  for (let r = 0; r < runs + 3; r++) {
    const img = photos[r % photos.length];
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const pre = await preprocessImage(img);
    classify(entry, [pre.pixels]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const c = process.cpuUsage(c0);
    if (r >= 3) { times.push(ms); cpu += (c.user + c.system) / 1000; }
  }
  times.sort((a, b) => a - b);
  const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))].toFixed(1);
  // CPU time (all of the process's threads, libvips' included) says what the work costs when the
  // machine is shared; wall time is what a user waits.
  console.log(`12 MP JPEG (${(photos[0].length / 1e6).toFixed(1)} MB) through predict: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms over ${times.length} runs; ` +
    `CPU ${(cpu / times.length).toFixed(1)} ms per image; load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`);
  process.exit(0);
})();
