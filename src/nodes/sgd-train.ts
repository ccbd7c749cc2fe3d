import type { Node, NodeAPI, NodeDef } from 'node-red';
import { SplitView } from '../lib/dataset';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { TrainResult, train, trainOptions } from '../lib/train';
import { attach, needDataset, num, checkFit } from './common';

interface Config extends NodeDef {
  optimizer?: string; loss?: string; learningRate?: string; momentum?: string; batchSize?: string;
  epochs?: string; shuffle?: boolean | string; seed?: string; progressEvery?: string;
}

export = (RED: NodeAPI) => {
  function SgdTrainNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      stoppable: true,
      async run({ msg, signal, status, send, backend }) {
        const ds = needDataset(msg);
        if (!ds.train) throw new Error('msg.dataset.train is missing: set mnist-dataset to load the train split');
        const view = registry.resolve<SplitView>(ds.train, 'split', 'msg.dataset.train');
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        checkFit(entry, view, ds.classes.length);
        if (msg.train !== undefined && (typeof msg.train !== 'object' || msg.train === null || Array.isArray(msg.train))) {
          throw new Error('msg.train must be an object such as { epochs: 3, learningRate: 0.005 }');
        }
        const options = trainOptions({
          optimizer: config.optimizer, loss: config.loss, learningRate: config.learningRate, momentum: config.momentum,
          batchSize: config.batchSize, epochs: config.epochs, shuffle: config.shuffle, seed: config.seed,
        }, msg.train);
        const every = num(config.progressEvery, 10);
        const release = registry.acquire(msg.model, `training in ${node.id}`);
        const handle = msg.model;
        let result: TrainResult;
        try {
          status(`${backend} · epoch 1/${options.epochs}`);
          result = await train(entry.model, view, ds.classes.length, options, {
            signal,
            modelAlive: () => registry.isAlive(handle),
            onBatch: (p) => {
              const step = (p.epoch - 1) * p.batches + p.batch;
              if (every > 0 && (step % every === 0 || p.batch === p.batches)) {
                status(`${backend} · epoch ${p.epoch}/${p.epochs} · loss ${p.loss.toFixed(3)}`);
                send([null, { topic: 'loss', payload: { epoch: p.epoch, batch: p.batch, batches: p.batches, step, loss: p.loss } }]);
              }
            },
          });
        } finally {
          release();
        }
        entry.meta.normalization = view.normalization;
        entry.meta.training = { ...options, dataset: ds.name, samples: view.count, seconds: result.seconds, backend, stopped: result.stopped };
        msg.history = result.history;
        msg.payload = {
          loss: result.finalLoss, seconds: result.seconds, samplesPerSecond: Math.round(result.samplesPerSecond),
          epochs: result.history.epochs.length, backend, stopped: result.stopped,
        };
        return [msg, null];
      },
      doneText: (out) => {
        const p = (out as [{ payload: { loss: number; seconds: number; stopped: boolean } }])[0].payload;
        return `${p.stopped ? 'stopped · ' : ''}loss ${p.loss.toFixed(3)} · ${p.seconds.toFixed(1)} s`;
      },
    });
  }
  RED.nodes.registerType('sgd-train', SgdTrainNode);
};
