import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MnistError } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { ENGINES, EnginePreference } from '../lib/engine/pick';
import { TrainResult, train } from '../lib/train';
import { attach, checkFit, needDataset, needSplit, options } from './common';

export = (RED: NodeAPI) => {
  const settings = RED.settings as unknown as { mnistBackend?: string; mnistEngine?: string; mnistThreads?: number };
  const wish = String(settings.mnistEngine || process.env.MNIST_ENGINE || 'auto');
  const engine: EnginePreference = ENGINES.includes(wish as EnginePreference) ? wish as EnginePreference : 'auto';
  const threads = Number(settings.mnistThreads) >= 1 ? Math.floor(Number(settings.mnistThreads)) : undefined;
  // "The native engine is not installed here, so training runs on wasm" is said once per process.
  let fallbackSaid = false;
  function SgdTrainNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    attach(RED, node, {
      stoppable: true,
      async run({ msg, signal, status, send, t, memoryMB }) {
        const ds = needDataset(msg);
        const view = needSplit(msg, 'train');
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        checkFit(entry, view);
        if (msg.train !== undefined && (typeof msg.train !== 'object' || msg.train === null || Array.isArray(msg.train))) {
          throw new MnistError('train-not-object');
        }
        const { progressEvery: every, ...trainOptions } = options('sgd-train', config, msg);
        const release = registry.acquire(msg.model, node.id);
        const handle = msg.model;
        let result: TrainResult;
        try {
          status('sgd-train.status.starting');
          let used = '';
          result = await train(entry.model, view, view.classes, trainOptions, {
            signal,
            engine,
            threads,
            backend: settings.mnistBackend,
            memoryLimitMB: memoryMB,
            modelAlive: () => registry.isAlive(handle),
            onEngine: (e) => {
              used = e.name;
              if (e.fallback && !fallbackSaid) {
                fallbackSaid = true;
                node.log(t(`errors.${e.fallback.code}`, e.fallback.params));
              }
              status(e.fallback ? 'sgd-train.status.fallback' : 'sgd-train.status.start', { engine: used, epochs: trainOptions.epochs });
            },
            onBatch: (p) => {
              const step = (p.epoch - 1) * p.batches + p.batch;
              if (every > 0 && (step % every === 0 || p.batch === p.batches)) {
                status('sgd-train.status.progress', { engine: used, epoch: p.epoch, epochs: p.epochs, loss: p.loss.toFixed(3) });
                send([null, { topic: 'loss', payload: { epoch: p.epoch, batch: p.batch, batches: p.batches, step, loss: p.loss } }]);
              }
            },
          });
        } finally {
          release();
        }
        entry.meta.normalization = view.normalization;
        // Metrics described the weights before this training: they no longer do.
        entry.meta.metrics = undefined;
        entry.meta.training = { ...trainOptions, dataset: ds.name, samples: view.count, seconds: result.seconds, engine: result.engine, stopped: result.stopped };
        msg.history = result.history;
        msg.payload = {
          loss: result.finalLoss, seconds: result.seconds, samplesPerSecond: Math.round(result.samplesPerSecond),
          epochs: result.history.epochs.length, engine: result.engine, threads: result.threads, stopped: result.stopped,
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
