import sharp from 'sharp';
import { rng } from '../src/lib/random';

// A handwriting style MNIST models read poorly: digits written as seven-segment strokes (as on a
// clock display), each with its own slant, stroke width, wobble and position. Deterministic per
// (digit, seed), so the samples a user "teaches" and the ones held back never coincide.

/** Segments a-g of a seven-segment digit, as line ends on a 2 x 4 box (x right, y down). */
const SEGMENTS: Record<string, [number, number, number, number]> = {
  a: [0, 0, 2, 0], b: [2, 0, 2, 2], c: [2, 2, 2, 4], d: [0, 4, 2, 4], e: [0, 2, 0, 4], f: [0, 0, 0, 2], g: [0, 2, 2, 2],
};
const DIGITS = ['abcdef', 'bc', 'abged', 'abgcd', 'fgbc', 'afgcd', 'afgedc', 'abc', 'abcdefg', 'abcdfg'];

/** A 112x112 PNG of `digit` in the seven-segment style, dark ink on light paper. */
export async function sevenSegment(digit: number, seed: number): Promise<Buffer> {
  const r = rng(digit * 7919 + seed * 104729 + 1);
  const between = (lo: number, hi: number) => lo + (hi - lo) * r();
  const unit = between(9, 13);
  const slant = between(-0.25, 0.1);
  const width = between(5, 9);
  const ox = between(30, 50);
  const oy = between(18, 30);
  const wobble = () => between(-0.18, 0.18);
  const point = (x: number, y: number) => {
    const px = x + wobble(), py = y + wobble();
    return `${(ox + (px - slant * py) * unit).toFixed(1)},${(oy + py * unit * 1.05).toFixed(1)}`;
  };
  const lines = [...DIGITS[digit]].map((s) => {
    const [x1, y1, x2, y2] = SEGMENTS[s];
    return `<polyline points="${point(x1, y1)} ${point((x1 + x2) / 2, (y1 + y2) / 2)} ${point(x2, y2)}"/>`;
  }).join('');
  const ink = Math.round(between(20, 70));
  const paper = Math.round(between(225, 250));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="112" height="112"><rect width="112" height="112" fill="rgb(${paper},${paper},${paper - 5})"/>`
    + `<g fill="none" stroke="rgb(${ink},${ink},${ink + 10})" stroke-width="${width.toFixed(1)}" stroke-linecap="round" stroke-linejoin="round">${lines}</g></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** `perDigit` images of every digit, with labels, from seeds starting at `firstSeed`. */
export async function sevenSegmentSet(perDigit: number, firstSeed: number): Promise<Array<{ label: number; png: Buffer }>> {
  const out: Array<{ label: number; png: Buffer }> = [];
  for (let k = 0; k < perDigit; k++) {
    for (let d = 0; d < 10; d++) out.push({ label: d, png: await sevenSegment(d, firstSeed + k) });
  }
  return out;
}
