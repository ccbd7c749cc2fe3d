import { gunzipSync } from 'zlib';

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
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`${name} unpacks to more than ${MAX_IDX_BYTES} bytes; that is not an MNIST-format file`);
      throw new Error(`${name} looks gzipped but does not decompress (${(e as Error).message}); the file is corrupt, download it again`);
    }
  }
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new Error(`${name} is not an IDX file (wrong magic number); expected MNIST-format files such as train-images-idx3-ubyte`);
  }
  if (buf[2] !== 0x08) {
    throw new Error(`${name} holds IDX data type 0x${buf[2].toString(16)}; only unsigned bytes (0x08) are supported`);
  }
  const rank = buf[3];
  if (rank < 1 || rank > 3 || buf.length < 4 + 4 * rank) {
    throw new Error(`${name} has a broken IDX header (rank ${rank}, ${buf.length} bytes)`);
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * rank;
  if (buf.length - offset !== expected) {
    throw new Error(`${name} is truncated or padded: header says ${dims.join('x')} = ${expected} bytes of data, file has ${buf.length - offset}`);
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + offset, expected) };
}
