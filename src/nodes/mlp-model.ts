import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MAX_PARAMETERS } from '../lib/engine/budget';
import { parameterCount } from '../lib/engine/spec';
import { MnistError } from '../lib/messages';
import { createMlp, mlpSpec, parseHidden } from '../lib/model';
import * as registry from '../lib/registry';
import { attach, modelHandle, modelInputs, options, waitForOwnOutput } from './common';

export = (RED: NodeAPI) => {
  function MlpModelNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg, signal }) {
        // What it built last time may still be in another node's hands (being predicted, say).
        await waitForOwnOutput(node.id, signal);
        const o = options('mlp-model', config);
        const hidden = parseHidden(o.hidden);
        const { classes, inputShape, normalization } = modelInputs(msg, node.id);
        const architecture = { kind: 'mlp' as const, inputSize: inputShape[0] * inputShape[1], hidden, activation: o.activation, classes: classes.length, seed: o.seed };
        const parameters = parameterCount(mlpSpec(architecture));
        if (parameters > MAX_PARAMETERS) {
          throw new MnistError('too-many-parameters', { hidden: hidden.join(','), parameters: parameters.toLocaleString('en'), max: MAX_PARAMETERS.toLocaleString('en') });
        }
        registry.disposeOwner(node.id);
        const model = createMlp(architecture);
        msg.model = modelHandle(node.id, { model, meta: { classes, inputShape, normalization, architecture } });
        msg.payload = { layers: msg.model.layers, parameters: msg.model.parameters };
        return msg;
      },
      doneText: (out, { t }) => t('mlp-model.status.done', { parameters: (out as { payload: { parameters: number } }).payload.parameters.toLocaleString('en') }),
    });
  }
  RED.nodes.registerType('mlp-model', MlpModelNode);
};
