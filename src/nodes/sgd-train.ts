import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MnistError } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { TrainResult, train } from '../lib/train';
import { attach, checkFit, needDataset, needSplit, options } from './common';

export = (RED: NodeAPI) => {
  function SgdTrainNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      stoppable: true,
      async run({ msg, signal, status, send, backend }) {
        const ds = needDataset(msg);
        const view = needSplit(msg, 'train');
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        checkFit(entry, view, ds.classes.length);
        if (msg.train !== undefined && (typeof msg.train !== 'object' || msg.train === null || Array.isArray(msg.train))) {
          throw new MnistError('train-not-object');
        }
        const { progressEvery: every, ...trainOptions } = options('sgd-train', config, msg);
        const release = registry.acquire(msg.model, node.id);
        const handle = msg.model;
        let result: TrainResult;
        try {
          status('sgd-train.status.start', { backend, epochs: trainOptions.epochs });
          result = await train(entry.model, view, ds.classes.length, trainOptions, {
            signal,
            modelAlive: () => registry.isAlive(handle),
            onBatch: (p) => {
              const step = (p.epoch - 1) * p.batches + p.batch;
              if (every > 0 && (step % every === 0 || p.batch === p.batches)) {
                status('sgd-train.status.progress', { backend, epoch: p.epoch, epochs: p.epochs, loss: p.loss.toFixed(3) });
                send([null, { topic: 'loss', payload: { epoch: p.epoch, batch: p.batch, batches: p.batches, step, loss: p.loss } }]);
              }
            },
          });
        } finally {
          release();
        }
        entry.meta.normalization = view.normalization;
        entry.meta.training = { ...trainOptions, dataset: ds.name, samples: view.count, seconds: result.seconds, backend, stopped: result.stopped };
        msg.history = result.history;
        msg.payload = {
          loss: result.finalLoss, seconds: result.seconds, samplesPerSecond: Math.round(result.samplesPerSecond),
          epochs: result.history.epochs.length, backend, stopped: result.stopped,
        };
        return [msg, null];
      },
      doneText: (out, { t }) => {
        const p = (out as [{ payload: { loss: number; seconds: number; stopped: boolean } }])[0].payload;
        return t(p.stopped ? 'sgd-train.status.stopped' : 'sgd-train.status.done', { loss: p.loss.toFixed(3), seconds: p.seconds.toFixed(1) });
      },
    });
  }
  RED.nodes.registerType('sgd-train', SgdTrainNode);
};
