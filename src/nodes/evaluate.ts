import type { Node, NodeAPI, NodeDef } from 'node-red';
import { SplitView } from '../lib/dataset';
import { evaluate } from '../lib/metrics';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { LossName } from '../lib/train';
import { attach, needDataset, checkFit } from './common';

interface Config extends NodeDef { split?: 'test' | 'train'; loss?: '' | LossName }

export = (RED: NodeAPI) => {
  function EvaluateNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg, signal, status }) {
        const ds = needDataset(msg);
        const which = config.split || 'test';
        if (!ds[which]) throw new Error(`msg.dataset.${which} is missing: set mnist-dataset to load the ${which} split`);
        const view = registry.resolve<SplitView>(ds[which], 'split', `msg.dataset.${which}`);
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        checkFit(entry, view, ds.classes.length);
        const loss = (config.loss || entry.meta.training?.loss || 'mse') as LossName;
        status(`evaluating ${view.count} images…`);
        const handle = msg.model;
        const m = await evaluate(entry.model, view, ds.classes.length, loss, signal, () => registry.isAlive(handle));
        const metrics = { split: which, ...m, lossFunction: loss };
        entry.meta.metrics = { split: which, accuracy: m.accuracy, loss: m.loss, count: m.count };
        msg.metrics = metrics;
        msg.payload = metrics;
        return msg;
      },
      doneText: (out) => `accuracy ${((out as { payload: { accuracy: number } }).payload.accuracy * 100).toFixed(1)} %`,
    });
  }
  RED.nodes.registerType('evaluate', EvaluateNode);
};
