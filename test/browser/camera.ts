import * as fs from 'fs';
import sharp from 'sharp';

/**
 * A video for Chromium's fake camera (--use-file-for-fake-video-capture): a Y4M file of a dark 7
 * written on paper, lit unevenly (brighter at the top left), with sensor noise that differs from frame
 * to frame. Y4M 4:2:0: per frame the grey (Y) plane and two neutral colour planes.
 */
export async function digitVideo(file: string, opts: { width?: number; height?: number; frames?: number } = {}): Promise<void> {
  const w = opts.width ?? 640, h = opts.height ?? 480, frames = opts.frames ?? 10;
  const ink = await sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#000"/>`
    + `<polyline points="${0.41 * w},${0.3 * h} ${0.59 * w},${0.3 * h} ${0.48 * w},${0.72 * h}" fill="none" stroke="#fff" stroke-width="${0.035 * w}" stroke-linecap="round" stroke-linejoin="round"/></svg>`))
    .greyscale().raw().toBuffer();
  let seed = 12345;
  const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const out = fs.openSync(file, 'w');
  try {
    fs.writeSync(out, `YUV4MPEG2 W${w} H${h} F10:1 Ip A1:1 C420jpeg\n`);
    const chroma = Buffer.alloc((w / 2) * (h / 2) * 2, 128);
    for (let f = 0; f < frames; f++) {
      const y = Buffer.alloc(w * h);
      for (let r = 0; r < h; r++) {
        for (let c = 0; c < w; c++) {
          const paper = 225 - 40 * (c / w) - 15 * (r / h); // uneven light: 225 top left, 170 bottom right
          const a = ink[r * w + c] / 255;
          const v = paper * (1 - a) + 40 * a + (random() - 0.5) * 24;
          y[r * w + c] = Math.max(16, Math.min(235, Math.round(v)));
        }
      }
      fs.writeSync(out, 'FRAME\n');
      fs.writeSync(out, y);
      fs.writeSync(out, chroma);
    }
  } finally {
    fs.closeSync(out);
  }
}
