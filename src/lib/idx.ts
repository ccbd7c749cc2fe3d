import { gunzipSync } from 'zlib';
import { MnistError } from './messages';

/** Larger than any MNIST-format set in use (EMNIST byclass is 0.55 GB); stops a gzip bomb. */
export const MAX_IDX_BYTES = 1 << 30;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/**
 * Parses an IDX file (the MNIST format), gzipped or not. Only unsigned-byte data (type 0x08)
 * is accepted: that is what MNIST and Fashion-MNIST use.
 */
export function parseIdx(file: Buffer, name = 'idx file'): IdxArray {
  let buf = file;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf, { maxOutputLength: MAX_IDX_BYTES });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new MnistError('idx-too-big', { file: name, max: MAX_IDX_BYTES });
      throw new MnistError('idx-gzip', { file: name, reason: (e as Error).message });
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new MnistError('idx-magic', { file: name });
  }
  if (buf[2] !== 0x08) {
    throw new MnistError('idx-type', { file: name, type: `0x${buf[2].toString(16)}` });
  }
  const rank = buf[3];
  if (rank < 1 || rank > 3 || buf.length < 4 + 4 * rank) {
    throw new MnistError('idx-header', { file: name, rank, bytes: buf.length });
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * rank;
  if (buf.length - offset !== expected) {
    throw new MnistError('idx-length', { file: name, dims: dims.join('x'), expected, actual: buf.length - offset });
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, expected) };
}
