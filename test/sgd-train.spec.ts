import { strict as assert } from 'assert';
import { OPTIONS } from '../src/nodes/options';
import { fails, flow, helper, NODES, ready, statusOf, unloadFreesTensors, works } from './helpers';

// sgd-train's contract beyond the tutorial runs (test/pipeline.spec.ts): options, validation,
// early stopping and what it says when a training learns little.
describe('sgd-train node', function () {
  unloadFreesTensors('every tensor freed after unload');

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'sgd-train', name: 'train' }]);
    const n1 = helper.getNode('n1');
    assert.equal(n1.name, 'train');
    assert.equal(n1.type, 'sgd-train');
    assert.equal(OPTIONS['sgd-train'].learningRate.default, 0.005);
    assert.equal(OPTIONS['sgd-train'].batchSize.default, 512);
  });

  it('holds out part of the train split and reports validation loss and accuracy after every epoch', async () => {
    await helper.load(NODES, flow([
      { id: 'val', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '64', epochs: '3', validation: 'split', validationFraction: '0.2', progressEvery: '0', wires: [['out'], ['progress']] },
      { id: 'progress', type: 'helper' },
    ], { limit: 2000 }));
    const good = await ready();
    const epochs: any[] = [];
    helper.getNode('progress').on('input', (m: any) => { if (m.topic === 'epoch') epochs.push(m.payload); });
    const t = await works('val', { dataset: good.dataset, model: good.model });
    assert.equal(t.payload.validation.samples, 400);
    assert.equal(t.history.batchesPerEpoch, Math.ceil(1600 / 64), 'the held-out fifth is not trained on');
    assert.equal(epochs.length, 3);
    for (const e of t.history.epochs) {
      assert.ok(e.valLoss > 0 && e.valAccuracy > 0.5 && e.valAccuracy <= 1, JSON.stringify(e));
    }
    assert.deepEqual(epochs.map((e) => e.valAccuracy), t.history.epochs.map((e: any) => e.valAccuracy));
    assert.equal(t.payload.validation.accuracy, t.history.epochs[2].valAccuracy);
    assert.match(statusOf(helper.getNode('val')).text!, /^loss \d\.\d{3} · val \d+\.\d % · [\d.]+ s$/);
  });

  it('decays the learning rate after each epoch (lrDecay, also from msg.train) and records each epoch\'s rate', async () => {
    await helper.load(NODES, flow([
      { id: 'decay', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.004', lrDecay: '0.5', batchSize: '50', epochs: '3', progressEvery: '0', wires: [['out'], []] },
      { id: 'bad', type: 'sgd-train', lrDecay: '0', wires: [['out'], []] },
    ]));
    const good = await ready();
    const t = await works('decay', { dataset: good.dataset, model: good.model });
    assert.deepEqual(t.history.epochs.map((e: any) => e.learningRate), [0.004, 0.002, 0.001]);
    const m = await works('decay', { dataset: good.dataset, model: good.model, train: { lrDecay: 1, epochs: 2 } });
    assert.deepEqual(m.history.epochs.map((e: any) => e.learningRate), [0.004, 0.004]);
    await fails('bad', { dataset: good.dataset, model: good.model }, /lrDecay/);
  });

  it('stops early on a plateau of the held-out loss and keeps the best epoch\'s weights', async () => {
    // 300 images learnt at a high rate overfit within a few epochs: the test loss then rises.
    await helper.load(NODES, flow([
      { id: 'early', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.01', batchSize: '32', epochs: '40', validation: 'test', earlyStopping: true, patience: '2', progressEvery: '0', wires: [['out'], []] },
    ]));
    const good = await ready();
    const t = await works('early', { dataset: good.dataset, model: good.model });
    const v = t.payload.validation;
    assert.equal(v.stoppedEarly, true);
    assert.ok(t.history.epochs.length < 40, `stopped after ${t.history.epochs.length} epochs`);
    assert.equal(t.history.epochs.length, v.bestEpoch + 2, 'two epochs without improvement after the best');
    const losses = t.history.epochs.map((e: any) => e.valLoss);
    assert.equal(Math.min(...losses), losses[v.bestEpoch - 1], 'the best epoch has the lowest held-out loss');
    // The model holds the best epoch's weights: evaluate gives that epoch's held-out loss again.
    const m = await works('t-eval', { dataset: good.dataset, model: good.model });
    assert.ok(Math.abs(m.payload.loss - losses[v.bestEpoch - 1]) < 1e-4, `${m.payload.loss} vs ${losses[v.bestEpoch - 1]}`);
    assert.match(statusOf(helper.getNode('early')).text!, new RegExp(`^stopped early · best epoch ${v.bestEpoch} · val`));
  });

  it('refuses early stopping without validation, and validation against another dataset\'s split', async () => {
    await helper.load(NODES, flow([
      { id: 'bad', type: 'sgd-train', earlyStopping: true, progressEvery: '0', wires: [['out'], []] },
    ]));
    const good = await ready();
    const { fails } = await import('./helpers');
    await fails('bad', { dataset: good.dataset, model: good.model }, /early stopping needs held-out samples to judge by/);
    await fails('t-train', { dataset: good.dataset, model: good.model, train: { validation: 'split', validationFraction: 0.9 } }, /msg\.train\.validationFraction 0\.9 is invalid: use a number from 0\.01 to 0\.5/);
  });

  it('says so when a short training with the tutorial settings learns little, and what to change', async () => {
    await helper.load(NODES, flow([
      { id: 'short', type: 'sgd-train', progressEvery: '0', wires: [['out'], []] },
    ], { limit: 2000 }));
    const good = await ready();
    const warned = new Promise<string>((r) => helper.getNode('short').on('call:warn', (c: any) => r(String(c.args[0]))));
    const t = await works('short', { dataset: good.dataset, model: good.model });
    assert.equal(t.payload.steps, 12);
    assert.equal(t.payload.learnedLittle, true);
    assert.match(await warned, /the loss hardly fell in 12 training steps .*more samples \(mnist-dataset's limit\), more epochs or a smaller batch size; or use Adam with cross-entropy/);
    assert.match(statusOf(helper.getNode('short')).text!, /^little learned in 12 steps/);
    // Adam with cross-entropy on the same data learns: no warning.
    const adam = await works('t-train', { dataset: good.dataset, model: good.model, train: { optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001, epochs: 2 } });
    assert.equal(adam.payload.learnedLittle, undefined);
  });
});
