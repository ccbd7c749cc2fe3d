// What a model and a batch cost in memory, estimated before anything is allocated, so work that
// would exhaust a backend (the wasm heap stops at 4 GB, and a device may have 1 GB) is refused
// with a clear error instead of breaking TensorFlow for the whole process.
import { MnistError } from '../messages';
import { inputShapeOf, parameterCount, shapes } from './spec';
import { ModelSpec, OptimizerName } from './types';

/** The default budget of one training run, or of one evaluation/prediction chunk set (settings: mnistMemoryLimitMB). */
export const DEFAULT_MEMORY_MB = 2048;

const MB = 2 ** 20;

/** 200 MB of float32 weights, before gradients and optimizer state: far beyond any MNIST model. */
export const MAX_PARAMETERS = 50_000_000;
/** Floats one sample may occupy across a network (16 MB): a batch of 128 then needs 8 GB to train. */
export const MAX_ACTIVATIONS = 4_000_000;
const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Floats one sample occupies across the network: its input and every layer's output. */
export function activationsPerSample(spec: ModelSpec): number {
  return size(inputShapeOf(spec)) + shapes(spec).reduce((sum, s) => sum + size(s), 0);
}

/**
 * Bytes a training run needs: the split as floats, the weights with their gradients, optimizer
 * state, the epoch snapshot and the copy handed back, and a batch's activations with their
 * gradients, masks and transposes (about four copies).
 */
export function trainingBytes(spec: ModelSpec, count: number, batchSize: number, optimizer: OptimizerName, momentum: number): number {
  const state = optimizer === 'adam' ? 2 : momentum > 0 ? 1 : 0;
  const data = count * size(inputShapeOf(spec)) * 4;
  const weights = parameterCount(spec) * 4 * (4 + state);
  const batch = Math.min(batchSize, count) * activationsPerSample(spec) * 4 * 4;
  return data + weights + batch;
}

export function checkTraining(spec: ModelSpec, count: number, batchSize: number, optimizer: OptimizerName, momentum: number, limitMB = DEFAULT_MEMORY_MB): void {
  const need = trainingBytes(spec, count, batchSize, optimizer, momentum);
  if (need > limitMB * MB) {
    // The batch size that would fit, if the data and weights alone do.
    const fixed = trainingBytes(spec, count, 0, optimizer, momentum);
    const fits = Math.floor((limitMB * MB - fixed) / (activationsPerSample(spec) * 16));
    throw new MnistError(fits >= 1 ? 'training-too-big' : 'training-too-big-model', {
      needMB: Math.ceil(need / MB), limitMB, batchSize, fits: Math.max(1, Math.min(fits, batchSize)),
    });
  }
}

/**
 * Activations one chunk of an evaluation or prediction may hold on the main thread. Its tfjs
 * wasm heap grows to the largest chunk it ever ran and never shrinks, so a chunk of 10k samples
 * (about 90 MB for the tutorial's MLP) stayed in the process for good after the first 10k
 * prediction (found by npm run soak). With 8 MB chunks (about 940 samples of that MLP) the heap
 * stays at its initial 16 MB; a 10k prediction takes about 0.1 s longer (0.5 s instead of 0.4 s
 * on the 2-core test machine).
 */
export const INFERENCE_CHUNK_BYTES = 8 * MB;

/**
 * Samples per chunk of an evaluation or prediction (`floats` per sample across the network):
 * as many as fit in 8 MB of activations (and in a quarter of the budget), at most `max`.
 */
export function inferenceChunk(floats: number, max: number, limitMB = DEFAULT_MEMORY_MB): number {
  const bytes = Math.min(INFERENCE_CHUNK_BYTES, (limitMB * MB) / 4);
  return Math.max(1, Math.min(max, Math.floor(bytes / (floats * 4 * 2))));
}
