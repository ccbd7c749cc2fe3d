import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MnistError } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import * as registry from '../lib/registry';
import { chanceLoss } from '../lib/engine/driver';
import { ENGINES, EnginePreference } from '../lib/engine/pick';
import { LossName } from '../lib/engine/types';
import { TrainResult, train } from '../lib/train';
import { attach, checkFit, needDataset, needSplit, options } from './common';

/**
 * The loss of the last tenth of the steps is still near that of a model that knows nothing: with
 * the tutorial's SGD + MSE that is what 12 steps on 2,000 images give (10 % accuracy).
 */
function learnedLittle(losses: number[], loss: LossName, classes: number): boolean {
  const k = Math.max(1, Math.floor(losses.length / 10));
  const last = losses.slice(-k).reduce((s, v) => s + v, 0) / k;
  return last > 0.85 * chanceLoss(loss, classes);
}

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
        const { progressEvery: every, validation, validationFraction, earlyStopping, patience, ...trainOptions } = options('sgd-train', config, msg);
        if (earlyStopping && validation === 'none') throw new MnistError('early-stopping-needs-validation');
        const setup = validation === 'none' ? undefined : {
          fraction: validation === 'split' ? validationFraction : undefined,
          view: validation === 'test' ? needSplit(msg, 'test') : undefined,
          patience: earlyStopping ? patience : undefined,
        };
        const release = registry.acquire(msg.model, node.id);
        const handle = msg.model;
        // The splits it reads stay registered: their maker refuses to run again until this ends.
        const unread: Array<() => void> = [];
        let result: TrainResult;
        try {
          for (const h of [ds.train, setup?.view ? ds.test : undefined]) if (h) unread.push(registry.read(h, node.id));
          status('sgd-train.status.starting');
          let used = '';
          result = await train(entry.model, view, view.classes, trainOptions, {
            signal,
            engine,
            threads,
            backend: settings.mnistBackend,
            memoryLimitMB: memoryMB,
            modelAlive: () => registry.isAlive(handle),
            validation: setup,
            onEpoch: (r) => {
              if (r.valAccuracy !== undefined) {
                status('sgd-train.status.validated', { engine: used, epoch: r.epoch, epochs: trainOptions.epochs, accuracy: (r.valAccuracy * 100).toFixed(1) });
              }
              send([null, { topic: 'epoch', payload: r }]);
            },
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
          for (const done of unread) done();
        }
        entry.meta.normalization = view.normalization;
        // Metrics described the weights before this training: they no longer do.
        entry.meta.metrics = undefined;
        entry.meta.training = { ...trainOptions, dataset: ds.name, samples: result.trainedOn, seconds: result.seconds, engine: result.engine, stopped: result.stopped };
        const epochs = result.history.epochs;
        const last = epochs[epochs.length - 1];
        msg.history = result.history;
        const payload: Record<string, unknown> = {
          loss: result.finalLoss, seconds: result.seconds, samplesPerSecond: Math.round(result.samplesPerSecond),
          epochs: epochs.filter((e) => !e.partial).length, steps: result.history.loss.length,
          engine: result.engine, threads: result.threads, stopped: result.stopped,
          validation: setup ? {
            samples: result.heldOut, loss: last?.valLoss ?? null, accuracy: last?.valAccuracy ?? null,
            stoppedEarly: result.stoppedEarly ?? false, bestEpoch: result.bestEpoch ?? null,
          } : null,
        };
        msg.payload = payload;
        // A few steps that barely moved the loss leave a model at chance level: say why and what to change.
        const losses = result.history.loss;
        if (losses.length && !result.stopped && learnedLittle(losses, trainOptions.loss, view.classes)) {
          node.warn(t('sgd-train.warnings.little', { steps: losses.length, first: losses[0].toFixed(3), last: result.finalLoss.toFixed(3) }));
          payload.learnedLittle = true;
        }
        return [msg, null];
      },
      doneText: (out, { t }) => {
        const p = (out as [{ payload: { loss: number; seconds: number; stopped: boolean; steps: number; learnedLittle?: boolean; validation: { stoppedEarly: boolean; bestEpoch: number | null; accuracy: number | null } | null } }])[0].payload;
        const params = { loss: p.loss.toFixed(3), seconds: p.seconds.toFixed(1), steps: p.steps, epoch: p.validation?.bestEpoch ?? 0, accuracy: ((p.validation?.accuracy ?? 0) * 100).toFixed(1) };
        if (p.learnedLittle) return t('sgd-train.status.little', params);
        if (p.validation?.stoppedEarly) return t('sgd-train.status.early', params);
        if (p.stopped) return t('sgd-train.status.stopped', params);
        return t(p.validation ? 'sgd-train.status.done-val' : 'sgd-train.status.done', params);
      },
    });
  }
  RED.nodes.registerType('sgd-train', SgdTrainNode);
};
