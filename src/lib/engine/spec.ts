// A model as a plain ModelSpec (what engines train) and as a tfjs LayersModel (what predict,
// evaluate, plot and model-save use): built one from the other, with PyTorch's initialisation.
import * as tf from '@tensorflow/tfjs';
import { MnistError } from '../messages';
import { Activation, LayerSpec, ModelSpec } from './types';

/** Output shape of one layer for an input of `shape` ([features] or [rows, cols, channels]). */
export function outputShape(layer: LayerSpec, shape: number[]): number[] {
  switch (layer.kind) {
    case 'dense': return [layer.units];
    case 'conv2d': return [shape[0] - layer.kernelSize + 1, shape[1] - layer.kernelSize + 1, layer.filters];
    case 'maxpool2d': return [Math.floor(shape[0] / layer.poolSize), Math.floor(shape[1] / layer.poolSize), shape[2]];
    case 'flatten': return [shape.reduce((a, b) => a * b, 1)];
    case 'dropout': return shape;
  }
}

/** The input shape of the first layer: flat for a dense-first model, an image for a conv net. */
export function inputShapeOf(spec: ModelSpec): number[] {
  const [rows, cols, channels] = spec.inputShape;
  return spec.layers[0]?.kind === 'dense' ? [rows * cols * channels] : [rows, cols, channels];
}

/** Every layer's output shape, in order. */
export function shapes(spec: ModelSpec): number[][] {
  const out: number[][] = [];
  let shape = inputShapeOf(spec);
  for (const layer of spec.layers) out.push(shape = outputShape(layer, shape));
  return out;
}

/** Weights and biases, in tfjs order: [kernel, bias] per dense/conv layer. */
export function weightShapes(spec: ModelSpec): number[][] {
  const out: number[][] = [];
  let shape = inputShapeOf(spec);
  for (const layer of spec.layers) {
    if (layer.kind === 'dense') out.push([shape[shape.length - 1], layer.units], [layer.units]);
    if (layer.kind === 'conv2d') out.push([layer.kernelSize, layer.kernelSize, shape[2], layer.filters], [layer.filters]);
    shape = outputShape(layer, shape);
  }
  return out;
}

export function parameterCount(spec: ModelSpec): number {
  return weightShapes(spec).reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
}

/**
 * The tfjs model of a spec. Weights AND biases start uniform in ±1/sqrt(fan_in) like PyTorch's
 * nn.Linear and nn.Conv2d; tfjs's glorot/zeros default costs the tutorial recipe several points.
 */
export function buildModel(spec: ModelSpec, seed = 0): tf.Sequential {
  const model = tf.sequential();
  let shape = inputShapeOf(spec);
  let first = true;
  let weighted = 0;
  const input = () => (first ? { inputShape: shape } : {});
  for (const layer of spec.layers) {
    const fanIn = layer.kind === 'dense' ? shape[shape.length - 1] : layer.kind === 'conv2d' ? shape[2] * layer.kernelSize ** 2 : 1;
    const bound = 1 / Math.sqrt(fanIn);
    const init = (k: number) => tf.initializers.randomUniform({ minval: -bound, maxval: bound, seed: seed * 1000 + 2 * weighted + k });
    switch (layer.kind) {
      case 'dense':
        model.add(tf.layers.dense({ ...input(), units: layer.units, activation: layer.activation, kernelInitializer: init(0), biasInitializer: init(1) }));
        weighted++;
        break;
      case 'conv2d':
        model.add(tf.layers.conv2d({
          ...input(), filters: layer.filters, kernelSize: layer.kernelSize, activation: layer.activation,
          padding: 'valid', kernelInitializer: init(0), biasInitializer: init(1),
        }));
        weighted++;
        break;
      case 'maxpool2d':
        model.add(tf.layers.maxPooling2d({ ...input(), poolSize: layer.poolSize, strides: layer.poolSize, padding: 'valid' }));
        break;
      case 'flatten':
        model.add(tf.layers.flatten(input()));
        break;
      case 'dropout':
        model.add(tf.layers.dropout({ ...input(), rate: layer.rate, seed: seed * 1000 + 999 }));
        break;
    }
    first = false;
    shape = outputShape(layer, shape);
  }
  return model;
}

/** The spec of a tfjs model made of the layers engines train; an error names any other layer. */
export function specOf(model: tf.LayersModel): ModelSpec {
  const inShape = model.inputs[0].shape.slice(1).map(Number);
  const inputShape: [number, number, number] = inShape.length === 3 ? [inShape[0], inShape[1], inShape[2]]
    : inShape.length === 2 ? [inShape[0], inShape[1], 1] : [inShape[0], 1, 1];
  const layers: LayerSpec[] = model.layers.map((l) => {
    const c = l.getConfig() as Record<string, unknown>;
    const activation = (c.activation ?? 'linear') as Activation;
    switch (l.getClassName()) {
      case 'Dense':
        if (c.useBias === false) break;
        return { kind: 'dense', units: Number(c.units), activation };
      case 'Conv2D': {
        const k = c.kernelSize as number[];
        const s = c.strides as number[];
        if (c.useBias === false || c.padding !== 'valid' || k[0] !== k[1] || s.some((x) => x !== 1) || (c.dilationRate as number[]).some((x) => x !== 1)) break;
        return { kind: 'conv2d', filters: Number(c.filters), kernelSize: k[0], activation };
      }
      case 'MaxPooling2D': {
        const p = c.poolSize as number[];
        const s = c.strides as number[];
        if (p[0] !== p[1] || s[0] !== p[0] || s[1] !== p[1] || c.padding !== 'valid') break;
        return { kind: 'maxpool2d', poolSize: p[0] };
      }
      case 'Flatten': return { kind: 'flatten' };
      case 'Dropout': return { kind: 'dropout', rate: Number(c.rate) };
    }
    throw new MnistError('layer-not-trainable', { layer: l.getClassName(), name: l.name });
  });
  // A flat-input model reads an image of rows x cols as its features.
  if (inShape.length === 1 && layers[0]?.kind !== 'dense') throw new MnistError('layer-not-trainable', { layer: model.layers[0].getClassName(), name: model.layers[0].name });
  return { inputShape, layers };
}
