import type { Node, NodeAPI, NodeDef } from 'node-red';
import { DIGITS, SplitView } from '../lib/dataset';
import { MnistError } from '../lib/messages';
import { Activation } from '../lib/engine/types';
import { createMlp, parseHidden } from '../lib/model';
import * as registry from '../lib/registry';
import { attach, modelHandle, needDataset, options } from './common';

/** 200 MB of float32 weights, before gradients and optimizer state: far beyond any MNIST MLP. */
const MAX_PARAMETERS = 50_000_000;

export = (RED: NodeAPI) => {
  function MlpModelNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg }) {
        const busy = registry.busyOf(node.id);
        if (busy) throw new MnistError('model-in-use', { by: busy });
        const o = options('mlp-model', config);
        const hidden = parseHidden(o.hidden);
        // Without msg.dataset: the MNIST shape. With one, the real split decides the input size
        // (a message's own summary fields could claim any shape).
        const ds = msg.dataset === undefined || msg.dataset === null ? undefined : needDataset(msg);
        const classes: string[] = ds ? ds.classes.map(String) : DIGITS;
        if (classes.length < 2 || classes.length > 256) throw new MnistError('class-count', { count: classes.length });
        const which = ds?.train ? 'train' : ds?.test ? 'test' : undefined;
        const view = which ? registry.resolve<SplitView>(ds![which], 'split', `msg.dataset.${which}`) : undefined;
        if (view && view.classes !== classes.length) throw new MnistError('class-names-mismatch', { names: classes.length, classes: view.classes });
        const inputShape: [number, number] = view ? [view.rows, view.cols] : [28, 28];
        const architecture = { inputSize: inputShape[0] * inputShape[1], hidden, activation: o.activation as Activation, classes: classes.length, seed: o.seed };
        const sizes = [architecture.inputSize, ...hidden, classes.length];
        const parameters = sizes.slice(1).reduce((sum, units, i) => sum + (sizes[i] + 1) * units, 0);
        if (parameters > MAX_PARAMETERS) {
          throw new MnistError('too-many-parameters', { hidden: hidden.join(','), parameters: parameters.toLocaleString('en'), max: MAX_PARAMETERS.toLocaleString('en') });
        }
        registry.disposeOwner(node.id);
        const model = createMlp(architecture);
        msg.model = modelHandle(node.id, { model, meta: { classes, inputShape, normalization: view?.normalization ?? null, architecture } });
        msg.payload = { layers: msg.model.layers, parameters: msg.model.parameters };
        return msg;
      },
      doneText: (out, { t }) => t('mlp-model.status.done', { parameters: (out as { payload: { parameters: number } }).payload.parameters.toLocaleString('en') }),
    });
  }
  RED.nodes.registerType('mlp-model', MlpModelNode);
};
