// The TensorFlow.js engine: trains on whichever tfjs backend this thread started (tfjs-node,
// wasm with our kernels, or cpu). The split is uploaded once as one float tensor and each batch
// is gathered by index on the backend: no per-batch float copies in JS.
import * as tf from '@tensorflow/tfjs';
import { currentBackend } from '../backend';
import { LossName, TrainOptions } from './types';
import { buildModel } from './spec';
import { EngineSession, ModelSpec, TrainData, TrainEngine, Weights } from './types';

export function lossFn(name: LossName, oneHot: tf.Tensor, logits: tf.Tensor): tf.Scalar {
  return name === 'mse'
    ? tf.losses.meanSquaredError(oneHot, logits) as tf.Scalar
    : tf.losses.softmaxCrossEntropy(oneHot, logits) as tf.Scalar;
}

function makeOptimizer(o: TrainOptions): tf.Optimizer {
  if (o.optimizer === 'adam') return tf.train.adam(o.learningRate);
  return o.momentum > 0 ? tf.train.momentum(o.learningRate, o.momentum) : tf.train.sgd(o.learningRate);
}

/**
 * optimizer.dispose() leaves its own scalars (learning-rate and momentum constants) behind;
 * a flow that trains for months would leak them on every run.
 */
export function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  for (const v of Object.values(opt)) if (v instanceof tf.Tensor && !v.isDisposed) v.dispose();
}

/** Held-out samples evaluated per chunk: bounded memory for any model. */
const EVAL_CHUNK = 1000;

/** The split as one [count, ...input] float tensor, normalized as the data says. */
function dataTensor(data: TrainData, shape: number[]): tf.Tensor {
  const { images, normalization } = data;
  const out = new Float32Array(images.length);
  const scale = 1 / (255 * (normalization?.std ?? 1));
  const shift = normalization ? normalization.mean / normalization.std : 0;
  for (let i = 0; i < images.length; i++) out[i] = images[i] * scale - shift;
  return tf.tensor(out, [data.count, ...shape]);
}

export const tfjsEngine: TrainEngine = {
  get name() { return currentBackend(); },
  threads: 1,
  async open(spec: ModelSpec, weights: Weights, data: TrainData, options: TrainOptions): Promise<EngineSession> {
    const model = buildModel(spec);
    const shape = model.inputs[0].shape.slice(1).map(Number);
    let xs = dataTensor(data, shape);
    const ys = tf.tensor1d(data.labels, 'int32');
    const optimizer = makeOptimizer(options);
    const setWeights = (w: Weights) => tf.tidy(() => model.setWeights(w.map((v, i) => tf.tensor(v, model.weights[i].shape as number[]))));
    setWeights(weights);
    return {
      async run(batches) {
        const losses = new Float32Array(batches.length);
        batches.forEach((indices, i) => {
          losses[i] = tf.tidy(() => {
            const idx = tf.tensor1d(indices, 'int32');
            const x = tf.gather(xs, idx);
            const y = tf.oneHot(tf.gather(ys, idx), data.classes).toFloat();
            const loss = optimizer.minimize(() => lossFn(options.loss, y, model.apply(x, { training: true }) as tf.Tensor), true) as tf.Scalar;
            return loss.dataSync()[0];
          });
        });
        return losses;
      },
      async getWeights() {
        return model.getWeights().map((w) => w.dataSync() as Float32Array).map((a) => a.slice());
      },
      async setWeights(w) { setWeights(w); },
      async setImages(images) {
        const next = dataTensor({ ...data, images }, shape);
        xs.dispose();
        xs = next;
      },
      async setLearningRate(lr) {
        // SGD and momentum keep it as a scalar tensor (setLearningRate replaces it); Adam reads the number each step.
        // (tfjs's optimizer classes answer instanceof by duck typing, so the method is looked for.)
        const o = optimizer as unknown as { setLearningRate?: (v: number) => void; learningRate: number };
        if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
        else o.learningRate = lr;
      },
      async evaluate(held) {
        const predicted = new Int32Array(held.count);
        let lossSum = 0;
        const size = shape.reduce((a, b) => a * b, 1);
        for (let lo = 0; lo < held.count; lo += EVAL_CHUNK) {
          const hi = Math.min(lo + EVAL_CHUNK, held.count);
          const part = { ...data, images: held.images.subarray(lo * size, hi * size), labels: held.labels.subarray(lo, hi), count: hi - lo };
          const [pred, l] = tf.tidy(() => {
            const logits = model.predict(dataTensor(part, shape), { batchSize: hi - lo }) as tf.Tensor;
            const oneHot = tf.oneHot(tf.tensor1d(part.labels, 'int32'), data.classes).toFloat();
            return [logits.argMax(1).dataSync() as Int32Array, lossFn(options.loss, oneHot, logits).dataSync()[0]] as const;
          });
          predicted.set(pred, lo);
          lossSum += l * (hi - lo);
        }
        return { loss: lossSum / Math.max(held.count, 1), predicted };
      },
      dispose() {
        xs.dispose();
        ys.dispose();
        disposeOptimizer(optimizer);
        model.dispose();
      },
    };
  },
};
