// Saves and loads models as TensorFlow.js layers-format folders (model.json + weights.bin) plus
// our metadata.json. @tensorflow/tfjs has no file:// handler in Node (only tfjs-node does), so
// the files are written and read here with fs, through tf.io.withSaveHandler / tf.io.fromMemory.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { exportOnnx } from './engine/onnx-export';
import { specOf } from './engine/spec';
import { MnistError, PACKAGE_NAME } from './messages';
import { DIGITS, Normalization } from './dataset';
import { ModelEntry, ModelMeta } from './model';

export const MODEL_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
export const METADATA_FILE = 'metadata.json';
export const ONNX_FILE = 'model.onnx';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** What metadata.json holds: everything needed to use and explain the model without its flow. */
export interface SavedMetadata {
  format: 'node-red-mnist-model';
  formatVersion: 1;
  classes: string[];
  inputShape: [number, number];
  normalization: Normalization | null;
  /** How inputs must look before normalization (images go through predict's MNIST-style pipeline). */
  preprocessing: Record<string, unknown>;
  architecture?: unknown;
  training?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  /** present when the model was also written as ONNX: the file and how to call it */
  onnx?: { file: string; input: string; output: string };
  seed: number | null;
  package: { name: string; version: string };
  tfjs: string;
  savedAt: string;
}

export interface SaveResult { folder: string; files: string[]; bytes: number; metadata: SavedMetadata }

export interface Loaded extends ModelEntry {
  /** true when the folder had no metadata.json (e.g. saved by plain tf.LayersModel.save) and defaults were assumed */
  assumed: boolean;
}

/** The pipeline predict applies to images, recorded so a model's users can reproduce its inputs. */
export const IMAGE_PREPROCESSING = {
  pixels: '0-1, ink bright on dark, 28x28 row-major',
  images: 'greyscale over white, polarity from the border, background removed, cropped to the ink, longer side 20 px, centre of mass at (14, 14)',
};

let packageInfo: { name: string; version: string } | undefined;
function ownPackage(): { name: string; version: string } {
  if (!packageInfo) {
    packageInfo = { name: PACKAGE_NAME, version: 'unknown' };
    // src/lib and the built lib/ sit at different depths: walk up to our package.json.
    for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
        if (pkg.name === PACKAGE_NAME) { packageInfo = { name: pkg.name, version: String(pkg.version) }; break; }
      } catch { /* not here */ }
    }
  }
  return packageInfo;
}

function weightBytes(data: tf.io.WeightData | undefined): Buffer {
  if (!data) return Buffer.alloc(0);
  return Buffer.from(tf.io.CompositeArrayBuffer.join(data));
}

/** Writes next to the target and renames, so a reader never sees half a file. */
async function writeAtomic(file: string, data: Buffer | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now().toString(36)}.tmp`;
  await fs.promises.writeFile(tmp, data);
  await fs.promises.rename(tmp, file);
}

/**
 * Saves model.json + weights.bin (the standard layers format any TensorFlow.js can load) and
 * metadata.json. model.json is renamed into place last, so its change marks a complete save.
 */
export async function saveModel(entry: ModelEntry, folder: string, opts: { onnx?: boolean } = {}): Promise<SaveResult> {
  await fs.promises.mkdir(folder, { recursive: true });
  let artifacts: tf.io.ModelArtifacts | undefined;
  await entry.model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  if (!artifacts || !artifacts.modelTopology) throw new MnistError('model-not-serializable');
  const weights = weightBytes(artifacts.weightData);
  const modelJson = JSON.stringify({
    modelTopology: artifacts.modelTopology,
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: null,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
  });
  const meta = entry.meta;
  const metadata: SavedMetadata = {
    format: 'node-red-mnist-model',
    formatVersion: 1,
    classes: meta.classes,
    inputShape: meta.inputShape,
    normalization: meta.normalization,
    preprocessing: { ...IMAGE_PREPROCESSING, normalization: meta.normalization ? 'then (x - mean) / std' : 'none' },
    architecture: meta.architecture,
    training: meta.training,
    metrics: meta.metrics,
    seed: typeof meta.architecture?.seed === 'number' ? meta.architecture.seed : null,
    package: ownPackage(),
    tfjs: tf.version.tfjs,
    savedAt: new Date().toISOString(),
  };
  // The same network as a standalone ONNX inference model: the normalization runs inside it.
  let onnx: Uint8Array | undefined;
  if (opts.onnx) {
    const spec = { ...specOf(entry.model), inputShape: [meta.inputShape[0], meta.inputShape[1], 1] as [number, number, number] };
    onnx = exportOnnx(spec, entry.model.getWeights().map((w) => w.dataSync() as Float32Array), meta.normalization, { classes: meta.classes });
    metadata.onnx = {
      file: ONNX_FILE,
      input: spec.layers[0].kind === 'dense' ? `pixels: float32 [N, ${meta.inputShape[0] * meta.inputShape[1]}], 0-1, ink bright` : `pixels: float32 [N, 1, ${meta.inputShape[0]}, ${meta.inputShape[1]}], 0-1, ink bright`,
      output: `probabilities: float32 [N, ${meta.classes.length}] (softmax); the normalization is applied inside`,
    };
  }
  const metadataJson = JSON.stringify(metadata, null, 2);
  await writeAtomic(path.join(folder, WEIGHTS_FILE), weights);
  await writeAtomic(path.join(folder, METADATA_FILE), metadataJson);
  if (onnx) await writeAtomic(path.join(folder, ONNX_FILE), Buffer.from(onnx));
  await writeAtomic(path.join(folder, MODEL_FILE), modelJson);
  return {
    folder,
    files: [MODEL_FILE, WEIGHTS_FILE, METADATA_FILE, ...(onnx ? [ONNX_FILE] : [])],
    bytes: weights.length + Buffer.byteLength(modelJson) + Buffer.byteLength(metadataJson) + (onnx?.length ?? 0),
    metadata,
  };
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new MnistError('file-unreadable', { file, reason: (e as Error).message });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MnistError('file-not-json', { file, reason: (e as Error).message });
  }
}

/** Numbers in a shape, with null for the batch dimension, as the error message shows them. */
function shapeText(shape: unknown[]): string {
  return `[${shape.map((d) => (d === null || d === undefined ? 'null' : String(d))).join(',')}]`;
}

/** True for [null,784], [null,28,28] and [null,28,28,1]: inputs predict can fill from a 28x28 image. */
export function takesMnistInput(shape: unknown[]): boolean {
  const dims = shape.slice(1);
  if (dims.length === 1) return dims[0] === PIXELS;
  if (dims.length === 2) return dims[0] === SIDE && dims[1] === SIDE;
  if (dims.length === 3) return dims[0] === SIDE && dims[1] === SIDE && dims[2] === 1;
  return false;
}

/** A manifest path must stay inside the model's folder (model.json is data, not a licence to read elsewhere). */
function insideFolder(folder: string, rel: unknown): string {
  if (typeof rel !== 'string' || rel === '') throw new MnistError('weights-unnamed', { folder });
  const file = path.resolve(folder, rel);
  if (path.relative(folder, file).startsWith('..') || path.isAbsolute(path.relative(folder, file))) {
    throw new MnistError('weights-outside', { folder, path: rel });
  }
  return file;
}

function isNormalization(x: unknown): x is Normalization {
  const n = x as Normalization;
  return !!n && typeof n === 'object' && Number.isFinite(n.mean) && Number.isFinite(n.std) && n.std > 0;
}

/**
 * Loads a saved model folder. Folders without metadata.json (plain tf.LayersModel.save) get the
 * MNIST defaults: 28x28 input, classes '0'-'9', no normalization.
 */
export async function loadModel(folder: string): Promise<Loaded> {
  const modelFile = path.join(folder, MODEL_FILE);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- TF.js model.json, checked field by field below
  const json = readJson(modelFile) as Record<string, any> | undefined;
  if (json === undefined) {
    throw new MnistError('no-saved-model', { folder });
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || typeof json.modelTopology !== 'object') {
    throw new MnistError('model-file-broken', { file: modelFile, reason: 'modelTopology' });
  }
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw new MnistError('model-file-broken', { file: modelFile, reason: 'weightsManifest' });
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Buffer[] = [];
  for (const group of manifest) {
    if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
      throw new MnistError('model-file-broken', { file: modelFile, reason: 'weightsManifest[].paths/weights' });
    }
    weightSpecs.push(...group.weights);
    for (const rel of group.paths) {
      const file = insideFolder(folder, rel);
      try {
        buffers.push(await fs.promises.readFile(file));
      } catch (e) {
        throw new MnistError('weights-unreadable', { file, reason: (e as NodeJS.ErrnoException).code || (e as Error).message });
      }
    }
  }
  const weightData = new Uint8Array(Buffer.concat(buffers)).buffer;

  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
  } catch (e) {
    throw new MnistError('model-file-unbuildable', { file: modelFile, reason: (e as Error).message });
  }

  try {
    const inputShape = model.inputs[0].shape as unknown[];
    if (model.inputs.length !== 1 || !takesMnistInput(inputShape)) {
      throw new MnistError('saved-model-input', { shape: shapeText(inputShape), pixels: PIXELS, side: SIDE });
    }
    const outputShape = model.outputs[0].shape;
    const outputs = Number(outputShape[outputShape.length - 1]);
    const saved = readJson(path.join(folder, METADATA_FILE)) as Partial<SavedMetadata> | undefined;
    const classes = Array.isArray(saved?.classes) ? saved!.classes.map(String)
      : outputs === DIGITS.length ? [...DIGITS] : Array.from({ length: outputs }, (_, i) => String(i));
    if (classes.length !== outputs) {
      throw new MnistError('saved-model-classes', { folder, classes: classes.length, outputs });
    }
    const meta: ModelMeta = {
      classes,
      inputShape: [SIDE, SIDE],
      normalization: isNormalization(saved?.normalization) ? { mean: saved!.normalization!.mean, std: saved!.normalization!.std } : null,
      architecture: saved?.architecture as ModelMeta['architecture'],
      training: saved?.training,
      metrics: saved?.metrics,
    };
    return { model, meta, assumed: saved === undefined };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** A cheap fingerprint of a saved folder: changes when a new save lands (model.json is written last). */
export async function folderStamp(folder: string): Promise<string | null> {
  const parts: string[] = [];
  for (const name of [MODEL_FILE, METADATA_FILE]) {
    try {
      const s = await fs.promises.stat(path.join(folder, name));
      parts.push(`${s.mtimeMs}:${s.size}:${s.ino}`);
    } catch {
      if (name === MODEL_FILE) return null;
      parts.push('-');
    }
  }
  return parts.join('|');
}
