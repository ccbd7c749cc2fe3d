// A user's own labelled digits, kept on disk (one JSON file in a folder under the Node-RED user
// directory) so they survive restarts: added when predict was wrong and the user said the right
// digit, listed, deleted, and merged into a training split to fine-tune a model on them.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { MnistError } from './messages';

export const SAMPLES_FILE = 'samples.json';
/** Enough for a thorough personal set (1,000 per digit), small enough to load at once (8 MB). */
export const MAX_SAMPLES = 10000;
const SIDE = 28;
const PIXELS = SIDE * SIDE;

export interface Sample {
  id: string;
  label: number;
  /** ISO time it was added */
  created: string;
  /** 28x28 bytes, ink bright on dark, as predict's preprocessing makes them */
  pixels: Uint8Array;
}

interface StoredFile {
  format: 'node-red-mnist-samples';
  formatVersion: 1;
  rows: number;
  cols: number;
  samples: Array<{ id: string; label: number; created: string; pixels: string }>;
}

function read(folder: string): Sample[] {
  const file = path.join(folder, SAMPLES_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new MnistError('file-unreadable', { file, reason: (e as Error).message });
  }
  let stored: StoredFile;
  try {
    stored = JSON.parse(text);
  } catch (e) {
    throw new MnistError('samples-broken', { file, reason: (e as Error).message });
  }
  if (stored?.format !== 'node-red-mnist-samples' || !Array.isArray(stored.samples) || stored.rows !== SIDE || stored.cols !== SIDE) {
    throw new MnistError('samples-broken', { file, reason: 'not a node-red-mnist samples file' });
  }
  return stored.samples.map((s, i) => {
    const pixels = new Uint8Array(Buffer.from(String(s.pixels), 'base64'));
    if (pixels.length !== PIXELS || !Number.isInteger(s.label) || s.label < 0 || s.label > 255 || typeof s.id !== 'string') {
      throw new MnistError('samples-broken', { file, reason: `sample ${i}` });
    }
    return { id: s.id, label: s.label, created: String(s.created), pixels };
  });
}

function write(folder: string, samples: Sample[]): void {
  fs.mkdirSync(folder, { recursive: true });
  const stored: StoredFile = {
    format: 'node-red-mnist-samples', formatVersion: 1, rows: SIDE, cols: SIDE,
    samples: samples.map((s) => ({ id: s.id, label: s.label, created: s.created, pixels: Buffer.from(s.pixels).toString('base64') })),
  };
  // Written beside and renamed: a crash mid-write never leaves half a file.
  const file = path.join(folder, SAMPLES_FILE);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(stored));
  fs.renameSync(tmp, file);
}

/** The samples in a folder (none when it has no samples file yet). */
export function loadSamples(folder: string): Sample[] {
  return read(folder);
}

export function addSample(folder: string, label: number, pixels: Uint8Array, classes: number): Sample {
  if (!Number.isInteger(label) || label < 0 || label >= classes) throw new MnistError('sample-label', { label, classes });
  if (pixels.length !== PIXELS) throw new MnistError('image-size-mismatch', { inputs: PIXELS, values: pixels.length });
  const samples = read(folder);
  if (samples.length >= MAX_SAMPLES) throw new MnistError('samples-full', { max: MAX_SAMPLES, folder });
  const sample = { id: `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`, label, created: new Date().toISOString(), pixels };
  write(folder, [...samples, sample]);
  return sample;
}

/** Removes the samples with these ids; returns how many were removed. */
export function removeSamples(folder: string, ids: string[]): number {
  const samples = read(folder);
  const kept = samples.filter((s) => !ids.includes(s.id));
  if (kept.length !== samples.length) write(folder, kept);
  return samples.length - kept.length;
}

export function clearSamples(folder: string): number {
  const n = read(folder).length;
  if (n) write(folder, []);
  return n;
}
