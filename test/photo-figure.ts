// Draws docs/photo-before-after.png for the README: simulated phone photos (test/photo-kit.ts),
// what the drawing pipeline alone made of them (the border's level taken for the paper: the
// shadow, the desk and the rulings become ink), and what the photo pipeline finds and feeds the
// model, with the detected region drawn on the photo.
//   node -r ts-node/register/transpile-only test/photo-figure.ts
import sharp from 'sharp';
import { preprocessImage } from '../src/lib/image';
import { makePhoto } from './photo-kit';

const ROW = 200, PHOTO_W = 266, TILE = 112, GAP = 10;

(async () => {
  const shots = [
    await makePhoto(3, { seed: 5, scene: { desk: true, shadow: 0.5, paper: 'ruled', ink: 'blue', size: 0.25 } }),
    await makePhoto(11, { seed: 5, scene: { desk: false, shadow: 0.45, paper: 'squared', ink: 'black', size: 0.3 } }),
    await makePhoto(4, { seed: 5, multi: true, scene: { desk: false, paper: 'ruled', ink: 'black', size: 0.22 } }),
  ];
  const layers: sharp.OverlayOptions[] = [];
  const width = PHOTO_W + 2 * GAP + TILE + GAP + 5 * (TILE / 2 + 4) + GAP;
  for (const [k, p] of shots.entries()) {
    const top = k * (ROW + GAP) + GAP;
    const many = p.labels.length > 1;
    const after = await preprocessImage(p.image, { mode: 'photo', many, region: true });
    const before = await preprocessImage(p.image, { mode: 'drawing' }).catch(() => null);
    layers.push({ input: await sharp(after.region!).resize(PHOTO_W, ROW, { fit: 'inside' }).toBuffer(), left: GAP, top });
    const tile = async (png: Buffer, side: number) => sharp(png).resize(side, side, { kernel: 'nearest' }).toBuffer();
    let x = PHOTO_W + 2 * GAP;
    if (before) layers.push({ input: await tile(before.png, TILE), left: x, top: top + 8 });
    x += TILE + GAP;
    const side = many ? TILE / 2 : TILE;
    for (const d of after.digits) { layers.push({ input: await tile(d.png, side), left: x, top: top + 8 }); x += side + 4; }
  }
  const caption = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="24">` +
    `<text x="${GAP}" y="16" font-family="DejaVu Sans" font-size="12" fill="#ddd">photo (found region in magenta)</text>` +
    `<text x="${PHOTO_W + 2 * GAP}" y="16" font-family="DejaVu Sans" font-size="12" fill="#ddd">before</text>` +
    `<text x="${PHOTO_W + 3 * GAP + TILE}" y="16" font-family="DejaVu Sans" font-size="12" fill="#ddd">after: what the model sees</text></svg>`);
  const height = shots.length * (ROW + GAP) + GAP;
  layers.push({ input: caption, left: 0, top: height });
  await sharp({ create: { width, height: height + 24, channels: 3, background: '#333' } }).composite(layers).png().toFile('docs/photo-before-after.png');
  console.log('docs/photo-before-after.png');
})();
