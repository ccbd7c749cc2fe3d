import { strict as assert } from 'assert';
import { fails, helper, NODES, statusOf, unloadFreesTensors } from './helpers';

// normalize's contract: views of the same bytes with (x - mean) / std attached, the tutorial's
// constants by default, or computed from the train split.
describe('normalize node', function () {
  unloadFreesTensors();

  const nodes = (extra: object[]) => [
    { id: 'ds', type: 'mnist-dataset', limit: 1000, wires: [['norm', 'fromData']] },
    ...extra,
    { id: 'out', type: 'helper' }, { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
  ];

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'normalize', name: 'norm' }]);
    assert.equal(helper.getNode('n1').name, 'norm');
  });

  it('attaches the tutorial\'s mean and std to new split handles, or the train split\'s own', async () => {
    await helper.load(NODES, nodes([
      { id: 'norm', type: 'normalize', wires: [['a']] }, { id: 'a', type: 'helper' },
      { id: 'fromData', type: 'normalize', fromData: true, wires: [['b']] }, { id: 'b', type: 'helper' },
    ]));
    const a = new Promise<any>((r) => helper.getNode('a').on('input', r));
    const b = new Promise<any>((r) => helper.getNode('b').on('input', r));
    helper.getNode('ds').receive({});
    const [ma, mb] = await Promise.all([a, b]);
    assert.deepEqual(ma.dataset.normalization, { mean: 0.1307, std: 0.3081 });
    assert.equal(ma.dataset.train.normalization.mean, 0.1307);
    assert.ok(Math.abs(ma.payload.min - (0 - 0.1307) / 0.3081) < 1e-9);
    assert.ok(Math.abs(ma.payload.max - (1 - 0.1307) / 0.3081) < 1e-9);
    // Computed from 1000 training images: close to MNIST's, not equal.
    assert.ok(Math.abs(mb.payload.mean - 0.1307) < 0.02 && Math.abs(mb.payload.std - 0.3081) < 0.02, JSON.stringify(mb.payload));
    assert.notEqual(mb.payload.mean, 0.1307);
    assert.notEqual(ma.dataset.train.id, mb.dataset.train.id);
    assert.equal(statusOf(helper.getNode('norm')).fill, 'green');
  });

  it('refuses a message without a dataset, naming the node to wire', async () => {
    await helper.load(NODES, nodes([{ id: 'norm', type: 'normalize', wires: [['out']] }]));
    await fails('norm', {}, /msg\.dataset is missing/);
  });
});
