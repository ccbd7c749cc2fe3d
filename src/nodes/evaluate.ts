import type { Node, NodeAPI, NodeDef } from 'node-red';
import { evaluate } from '../lib/metrics';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { LossName } from '../lib/engine/types';
import { attach, checkFit, needSplit, options } from './common';

export = (RED: NodeAPI) => {
  function EvaluateNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      async run({ msg, signal, status, memoryMB }) {
        const o = options('evaluate', config);
        const which = o.split as 'test' | 'train';
        const view = needSplit(msg, which);
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        checkFit(entry, view);
        const loss = (o.loss || entry.meta.training?.loss || 'mse') as LossName;
        status('evaluate.status.running', { count: view.count });
        const handle = msg.model;
        const m = await evaluate(entry.model, view, view.classes, loss, signal, () => registry.isAlive(handle), memoryMB);
        const metrics = { split: which, ...m, lossFunction: loss };
        entry.meta.metrics = { split: which, accuracy: m.accuracy, loss: m.loss, count: m.count };
        msg.metrics = metrics;
        msg.payload = metrics;
        return msg;
      },
      doneText: (out, { t }) => t('evaluate.status.done', { accuracy: ((out as { payload: { accuracy: number } }).payload.accuracy * 100).toFixed(1) }),
    });
  }
  RED.nodes.registerType('evaluate', EvaluateNode);
};
