import type { Node, NodeAPI, NodeDef } from 'node-red';
import { Activation, createMlp, parseHidden } from '../lib/model';
import * as registry from '../lib/registry';
import { DIGITS, SplitView } from '../lib/dataset';
import { attach, needDataset, num, modelHandle } from './common';

/** 200 MB of float32 weights, before gradients and optimizer state: far beyond any MNIST MLP. */
const MAX_PARAMETERS = 50_000_000;

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
        // Without msg.dataset: the MNIST shape. With one, the real split decides the input size
        // (a message's own summary fields could claim any shape).
        const ds = msg.dataset === undefined || msg.dataset === null ? undefined : needDataset(msg);
        const classes: string[] = ds ? ds.classes.map(String) : DIGITS;
        if (classes.length < 2 || classes.length > 256) throw new Error(`msg.dataset.classes has ${classes.length} names; a model needs 2 to 256 classes`);
        const which = ds?.train ? 'train' : ds?.test ? 'test' : undefined;
        const view = which ? registry.resolve<SplitView>(ds![which], 'split', `msg.dataset.${which}`) : undefined;
        const inputShape: [number, number] = view ? [view.rows, view.cols] : [28, 28];
        const architecture = { inputSize: inputShape[0] * inputShape[1], hidden, activation: config.activation || 'relu', classes: classes.length, seed };
        const sizes = [architecture.inputSize, ...hidden, classes.length];
        const parameters = sizes.slice(1).reduce((sum, units, i) => sum + (sizes[i] + 1) * units, 0);
        if (parameters > MAX_PARAMETERS) {
          throw new Error(`hidden layers "${hidden.join(',')}" make ${parameters.toLocaleString('en')} parameters; at most ${MAX_PARAMETERS.toLocaleString('en')} fit in memory, use fewer or smaller layers`);
        }
        registry.disposeOwner(node.id);
        const model = createMlp(architecture);
        msg.model = modelHandle(node.id, { model, meta: { classes, inputShape, normalization: view?.normalization ?? null, architecture } });
        msg.payload = { layers: msg.model.layers, parameters: msg.model.parameters };
        return msg;
      },
      doneText: (out) => `${(out as { payload: { parameters: number } }).payload.parameters.toLocaleString('en')} parameters`,
    });
  }
  RED.nodes.registerType('mlp-model', MlpModelNode);
};
