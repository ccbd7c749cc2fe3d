import { strict as assert } from 'assert';
import { fails, flow, helper, NODES, ready, statusOf, unloadFreesTensors, works } from './helpers';

// evaluate's contract: accuracy, loss, per-class figures and the confusion matrix of a split.
describe('evaluate node', function () {
  unloadFreesTensors();

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'evaluate', name: 'eval' }]);
    assert.equal(helper.getNode('n1').name, 'eval');
  });

  it('measures a trained model on the test split: counts that add up, and the same figures in msg.metrics', async () => {
    await helper.load(NODES, flow([
      { id: 'on-train', type: 'evaluate', split: 'train', wires: [['out']] },
      { id: 'trainer', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '32', epochs: '2', progressEvery: '0', wires: [['out'], []] },
    ], { limit: 1000 }));
    const good = await ready();
    await works('trainer', { dataset: good.dataset, model: good.model });
    const m = await works('t-eval', { dataset: good.dataset, model: good.model });
    const p = m.payload;
    assert.equal(p.split, 'test');
    assert.equal(p.count, 1000);
    assert.deepEqual(m.metrics, p);
    assert.equal(p.confusion.length, 10);
    assert.equal(p.confusion.flat().reduce((a: number, b: number) => a + b, 0), 1000);
    const right = p.confusion.reduce((a: number, row: number[], i: number) => a + row[i], 0);
    assert.ok(Math.abs(p.accuracy - right / 1000) < 1e-12);
    assert.ok(p.accuracy > 0.5, `accuracy ${p.accuracy}`);
    assert.ok(Number.isFinite(p.loss) && p.loss > 0);
    assert.equal(p.perClass.length, 10);
    assert.match(statusOf(helper.getNode('t-eval')).text!, /^accuracy \d+\.\d %$/);
    const t = await works('on-train', { dataset: good.dataset, model: good.model });
    assert.equal(t.payload.split, 'train');
  });

  it('refuses a message without a model', async () => {
    await helper.load(NODES, flow([], { limit: 100 }));
    const good = await ready();
    await fails('t-eval', { dataset: good.dataset }, /msg\.model is not a model handle; wire an mlp-model node/);
  });
});
