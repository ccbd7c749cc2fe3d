// Training-time augmentation (sgd-train's Augment option): every epoch trains on a fresh copy of
// the images, each turned, scaled and shifted a little at random about its centre. Measured on
// MNIST over 3 epochs (scripts/measure-augmentation.ts, docs/BENCHMARKS.md): it helps the CNN
// (test accuracy and our own non-MNIST digits) and does little for the MLP.

/** The default magnitudes: up to ±12°, ±10 % and ±2.5 pixels. */
export const AUGMENT = { degrees: 12, scale: 0.1, shift: 2.5 };

/**
 * `count` images of rows x cols bytes, each warped by its own random rotation, scale and shift
 * (bilinear, black outside), written into `out` (allocated when not given).
 */
export function augmentImages(
  images: Uint8Array, count: number, rows: number, cols: number, random: () => number,
  magnitude = AUGMENT, out: Uint8Array = new Uint8Array(count * rows * cols),
): Uint8Array {
  const size = rows * cols;
  const cx = (cols - 1) / 2;
  const cy = (rows - 1) / 2;
  for (let n = 0; n < count; n++) {
    const angle = ((random() * 2 - 1) * magnitude.degrees * Math.PI) / 180;
    const scale = 1 + (random() * 2 - 1) * magnitude.scale;
    const dx = (random() * 2 - 1) * magnitude.shift;
    const dy = (random() * 2 - 1) * magnitude.shift;
    const cos = Math.cos(angle) / scale;
    const sin = Math.sin(angle) / scale;
    const src = images.subarray(n * size, (n + 1) * size);
    const at = (x: number, y: number) => (x < 0 || y < 0 || x >= cols || y >= rows ? 0 : src[y * cols + x]);
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < cols; x++) {
        // the source point that lands on (x, y): the inverse of turn-and-scale, then shift
        const u = cos * (x - cx - dx) + sin * (y - cy - dy) + cx;
        const v = -sin * (x - cx - dx) + cos * (y - cy - dy) + cy;
        const x0 = Math.floor(u);
        const y0 = Math.floor(v);
        const fx = u - x0;
        const fy = v - y0;
        const value = at(x0, y0) * (1 - fx) * (1 - fy) + at(x0 + 1, y0) * fx * (1 - fy) + at(x0, y0 + 1) * (1 - fx) * fy + at(x0 + 1, y0 + 1) * fx * fy;
        out[n * size + y * cols + x] = Math.round(value);
      }
    }
  }
  return out;
}
