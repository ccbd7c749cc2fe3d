import * as tf from '@tensorflow/tfjs';
import { MnistError } from './messages';
import { SplitView, imagesTensor } from './dataset';
import { inferenceChunk } from './engine/budget';
import { lossFn } from './engine/tfjs';
import { activationsPerSample } from './model';
import { LossName } from './engine/types';

export interface Metrics {
  accuracy: number;
  loss: number;
  count: number;
  perClass: number[];
  confusion: number[][]; // rows: true class, columns: predicted
}

const CHUNK = 2000;
const nextTick = () => new Promise<void>((r) => setImmediate(r));

/** Accuracy, loss, per-class accuracy and the confusion matrix, in chunks that bound memory. */
export async function evaluate(
  model: tf.LayersModel, view: SplitView, classes: number, loss: LossName, signal?: AbortSignal, modelAlive?: () => boolean, limitMB?: number,
): Promise<Metrics> {
  const chunk = inferenceChunk(activationsPerSample(model), CHUNK, limitMB);
  if (view.count === 0) throw new MnistError('split-empty');
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let lossSum = 0;
  for (let lo = 0; lo < view.count; lo += chunk) {
    if (signal?.aborted) throw new MnistError('evaluation-stopped');
    if (modelAlive && !modelAlive()) throw new MnistError('model-freed-evaluating');
    const hi = Math.min(lo + chunk, view.count);
    const [pred, chunkLoss] = tf.tidy(() => {
      // One backend batch per chunk: predict()'s default of 32 would slice it 63 times.
      const dims = model.inputs[0].shape.slice(1).map(Number);
      const logits = model.predict(imagesTensor(view, lo, hi).reshape([hi - lo, ...dims]), { batchSize: hi - lo }) as tf.Tensor;
      const oneHot = tf.oneHot(tf.tensor1d(view.labels.subarray(lo, hi), 'int32'), classes).toFloat();
      return [logits.argMax(1).dataSync(), lossFn(loss, oneHot, logits).dataSync()[0]] as const;
    });
    for (let i = 0; i < pred.length; i++) confusion[view.labels[lo + i]][pred[i]]++;
    lossSum += chunkLoss * (hi - lo);
    await nextTick();
  }
  const correct = confusion.reduce((s, row, i) => s + row[i], 0);
  const perClass = confusion.map((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total ? row[i] / total : 0;
  });
  return { accuracy: correct / view.count, loss: lossSum / view.count, count: view.count, perClass, confusion };
}
