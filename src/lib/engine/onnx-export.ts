// A trained model as a standalone inference ONNX file, for ONNX Runtime in any language, the
// browser, or a serving system that takes ONNX.
import type { Normalization } from '../dataset';
import { compile, forward } from './graph';
import { Graph } from './onnx';
import type { ModelSpec, Weights } from './types';

export interface OnnxExportOptions {
  /** class names, stored in the model's metadata as JSON ("classes") */
  classes?: string[];
}

/**
 * The inference model of `spec` with `weights` (tfjs layout, model.getWeights() order).
 * Input "pixels": float 0-1, [N, rows*cols] for a model whose first layer is dense or flatten,
 * [N, 1, rows, cols] (NCHW) for a model that starts with a convolution. The model's normalization
 * ((x - mean) / std) runs first, inside the graph. Output "probabilities": softmax, [N, classes].
 */
export function exportOnnx(spec: ModelSpec, weights: Weights, normalization: Normalization | null, options: OnnxExportOptions = {}): Uint8Array {
  const c = compile(spec);
  if (weights.length !== c.params.length) throw new Error(`onnx export: expected ${c.params.length} weight tensors, got ${weights.length}`);
  const g = new Graph();
  const [rows, cols] = spec.inputShape;
  const dims: Array<number | string> = 'chw' in c.input ? ['N', ...c.input.chw] : ['N', rows * cols * spec.inputShape[2]];
  let x = g.input('pixels', 'float', dims);
  if (normalization) x = g.op('Div', [g.op('Sub', [x, g.scalar(normalization.mean)]), g.scalar(normalization.std)]);
  const params = c.params.map((p, i) => g.initializer(`param${i}`, 'float', p.onnxShape, Float32Array.from(p.toOnnx(weights[i]))));
  const { logits } = forward(g, c, x, params, false);
  g.output(g.op('Softmax', [logits], { axis: -1 }), 'probabilities', 'float', ['N', c.classes]);
  const metadata: Record<string, string> = {};
  if (options.classes) metadata.classes = JSON.stringify(options.classes);
  if (normalization) metadata.normalization = JSON.stringify(normalization);
  return g.toModel('mnist-classifier', metadata);
}
