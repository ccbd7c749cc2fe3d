// Times preprocessImage on 280x280 PNGs of MNIST test digits (what bench's "PNG predict" sends), in
// each mode, and counts which pipeline auto chose. Run: node -r ts-node/register/transpile-only scripts/time-png.ts
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { embeddedFolder } from '../src/lib/dataset';
import { preprocessImage } from '../src/lib/image';

async function main(): Promise<void> {
  const idx = fs.readFileSync(path.join(embeddedFolder(), 't10k-images-idx3-ubyte'));
  const pngs: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const px = Buffer.from(idx.subarray(16 + i * 784, 16 + (i + 1) * 784).map((v) => 255 - v));
    pngs.push(await sharp(px, { raw: { width: 28, height: 28, channels: 1 } }).resize(280, 280, { kernel: 'lanczos3' }).png().toBuffer());
  }
  for (const mode of ['drawing', 'auto', 'drawing', 'auto'] as const) {
    const ms: number[] = [];
    const methods: Record<string, number> = {};
    for (const p of pngs) {
      const t0 = process.hrtime.bigint();
      const r = await preprocessImage(p, { mode });
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      methods[r.method] = (methods[r.method] ?? 0) + 1;
    }
    ms.sort((a, b) => a - b);
    console.log(`${mode}: median ${ms[ms.length >> 1].toFixed(2)} ms, p90 ${ms[Math.floor(ms.length * 0.9)].toFixed(2)} ms`, methods);
  }
}
void main();
