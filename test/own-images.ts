import sharp from 'sharp';

// Our own set of 520 non-MNIST digit images: 6 fonts x 8 kinds (polarity, transparency, coloured
// paper, JPEG/WebP, small and off-centre, rotated) and pen strokes as a mouse draws them.
export const FONTS = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono', 'Liberation Sans', 'Liberation Serif', 'Liberation Mono'];

export interface Sample { digit: number; kind: string; font?: string; image: Buffer }

export function textSvg(digit: number, font: string, o: {
  w?: number; h?: number; x?: number; y?: number; size?: number; ink?: string; paper?: string | null; rotate?: number;
} = {}): Buffer {
  const w = o.w ?? 200, h = o.h ?? 220, x = o.x ?? w / 2, y = o.y ?? 170, size = o.size ?? 160;
  const bg = o.paper === null ? '' : `<rect width="${w}" height="${h}" fill="${o.paper ?? '#ffffff'}"/>`;
  const rot = o.rotate ? ` transform="rotate(${o.rotate} ${x} ${y - size * 0.35})"` : '';
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${bg}` +
    `<text x="${x}" y="${y}" text-anchor="middle" font-family="${font}" font-size="${size}" fill="${o.ink ?? '#000000'}"${rot}>${digit}</text></svg>`);
}

// Digits as pen strokes (a 100x140 box), the way a mouse or finger draws them on a canvas.
export const STROKES = [
  'M50 15 C 95 15, 95 125, 50 125 C 5 125, 5 15, 50 15',
  'M56 15 L 44 125',
  'M18 42 C 20 5, 85 5, 80 45 C 75 75, 30 95, 15 125 L 85 125',
  'M20 28 C 45 0, 92 18, 75 50 C 66 64, 50 67, 42 67 C 95 66, 92 132, 50 125 C 36 123, 26 118, 18 110',
  'M65 125 L 65 15 L 15 88 L 90 88',
  'M80 15 L 32 15 L 26 64 C 50 50, 90 60, 85 95 C 80 130, 35 130, 20 114',
  'M76 18 C 40 8, 16 50, 18 90 C 20 130, 80 130, 80 95 C 80 65, 35 60, 19 88',
  'M15 15 L 85 15 L 42 125',
  'M50 67 C 12 60, 16 15, 50 15 C 84 15, 88 60, 50 67 C 6 74, 10 125, 50 125 C 90 125, 94 74, 50 67',
  'M80 48 C 80 10, 20 10, 20 45 C 20 80, 76 80, 80 48 L 74 125',
];

function strokeSvg(digit: number, width: number, ink: string, paper: string): Buffer {
  return Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="240" height="260" viewBox="-70 -60 240 260">' +
    `<rect x="-70" y="-60" width="240" height="260" fill="${paper}"/>` +
    `<path d="${STROKES[digit]}" stroke="${ink}" stroke-width="${width}" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>`);
}

export async function makeImageSet(): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const font of FONTS) {
    for (let d = 0; d < 10; d++) {
      const add = (kind: string, image: Buffer) => out.push({ digit: d, kind, font, image });
      add('dark on white png', await sharp(textSvg(d, font)).png().toBuffer());
      add('white on black png', await sharp(textSvg(d, font, { ink: '#ffffff', paper: '#000000' })).png().toBuffer());
      add('transparent png', await sharp(textSvg(d, font, { ink: '#101040', paper: null })).png().toBuffer());
      add('coloured paper jpeg', await sharp(textSvg(d, font, { ink: '#203080', paper: '#f1dfa8' })).jpeg({ quality: 80 }).toBuffer());
      add('small off-centre', await sharp(textSvg(d, font, { w: 640, h: 480, x: 90, y: 420, size: 56 })).png().toBuffer());
      add('rotated +10', await sharp(textSvg(d, font, { rotate: 10 })).png().toBuffer());
      add('rotated -10', await sharp(textSvg(d, font, { rotate: -10, ink: '#f0f0f0', paper: '#202020' })).png().toBuffer());
      add('webp', await sharp(textSvg(d, font, { ink: '#333333', paper: '#fafafa' })).webp({ quality: 80 }).toBuffer());
    }
  }
  for (let d = 0; d < 10; d++) {
    for (const width of [9, 16]) {
      out.push({ digit: d, kind: 'strokes', image: await sharp(strokeSvg(d, width, '#000000', '#ffffff')).png().toBuffer() });
      out.push({ digit: d, kind: 'strokes', image: await sharp(strokeSvg(d, width, '#ffffff', '#000000')).png().toBuffer() });
    }
  }
  return out;
}

