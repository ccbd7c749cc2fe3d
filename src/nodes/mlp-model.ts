import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Activation, ModelEntry, createMlp, describe, parseHidden } from '../lib/model';
import * as registry from '../lib/registry';
import { DIGITS } from '../lib/dataset';
import { attach, num, modelHandle } from './common';

interface Config extends NodeDef { hidden?: string; activation?: Activation; seed?: string | number }

export = (RED: NodeAPI) => {
  function MlpModelNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg }) {
        const busy = registry.busyOf(node.id);
        if (busy) throw new Error(`the previous model is still in use (${busy}); stop it (msg.stop = true to sgd-train) before building a new one`);
        const hidden = parseHidden(config.hidden ?? '256,64');
        const seed = num(config.seed, 0);
        if (!Number.isInteger(seed)) throw new Error(`seed ${JSON.stringify(config.seed)} is invalid: use a whole number`);
        const ds = msg.dataset;
        const classes: string[] = ds && Array.isArray(ds.classes) ? ds.classes : DIGITS;
        const shape = (ds?.train || ds?.test)?.shape as [number, number] | undefined;
        const inputShape: [number, number] = shape || [28, 28];
        const architecture = { inputSize: inputShape[0] * inputShape[1], hidden, activation: config.activation || 'relu', classes: classes.length, seed };
        registry.disposeOwner(node.id);
        const model = createMlp(architecture);
        msg.model = modelHandle(node.id, { model, meta: { classes, inputShape, normalization: ds?.normalization ?? null, architecture } });
        msg.payload = { layers: msg.model.layers, parameters: msg.model.parameters };
        return msg;
      },
      doneText: (out) => `${(out as { payload: { parameters: number } }).payload.parameters.toLocaleString('en')} parameters`,
    });
  }
  RED.nodes.registerType('mlp-model', MlpModelNode);
};
