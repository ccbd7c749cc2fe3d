import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MAX_ACTIVATIONS, MAX_PARAMETERS, activationsPerSample } from '../lib/engine/budget';
import { parameterCount } from '../lib/engine/spec';
import { MnistError, shown } from '../lib/messages';
import { cnnSpec, createCnn } from '../lib/model';
import * as registry from '../lib/registry';
import { attach, modelHandle, modelInputs, options, waitForOwnOutput } from './common';

/** "32,64" -> [32, 64]: whole numbers from 1 to `max`, at most `count` of them (at least one if `min1`). */
function sizes(name: string, raw: string, max: number, count: number, min1: boolean): number[] {
  const parts = raw.split(/[,\s]+/).filter(Boolean);
  const n = parts.map(Number);
  if (n.length > count || (min1 && n.length === 0) || !n.every((v) => Number.isInteger(v) && v >= 1 && v <= max)) {
    throw new MnistError('sizes-invalid', { name, value: shown(raw, 60), count, max });
  }
  return n;
}

export = (RED: NodeAPI) => {
  function CnnModelNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg, signal }) {
        // What it built last time may still be in another node's hands (being predicted, say).
        await waitForOwnOutput(node.id, signal);
        const o = options('cnn-model', config);
        const { classes, inputShape, normalization } = modelInputs(msg, node.id);
        const architecture = {
          kind: 'cnn' as const, inputShape, filters: sizes('filters', o.filters, 1024, 4, true), kernelSize: o.kernelSize,
          dense: sizes('dense', o.dense, 4096, 4, false), dropout: o.dropout, activation: o.activation, classes: classes.length, seed: o.seed,
        };
        const spec = cnnSpec(architecture);
        const parameters = parameterCount(spec);
        const floats = activationsPerSample(spec);
        if (parameters > MAX_PARAMETERS || floats > MAX_ACTIVATIONS) {
          throw new MnistError('cnn-too-big', { parameters: parameters.toLocaleString('en'), max: MAX_PARAMETERS.toLocaleString('en'), floats: floats.toLocaleString('en'), maxFloats: MAX_ACTIVATIONS.toLocaleString('en') });
        }
        registry.disposeOwner(node.id);
        const model = createCnn(architecture);
        msg.model = modelHandle(node.id, { model, meta: { classes, inputShape, normalization, architecture } });
        msg.payload = { layers: msg.model.layers, parameters: msg.model.parameters };
        return msg;
      },
      doneText: (out, { t }) => t('cnn-model.status.done', { parameters: (out as { payload: { parameters: number } }).payload.parameters.toLocaleString('en') }),
    });
  }
  RED.nodes.registerType('cnn-model', CnnModelNode);
};
