import { strict as assert } from 'assert';
import { fails, helper, NODES, statusOf, unloadFreesTensors, works, writeSet } from './helpers';

// mnist-dataset's contract: what it writes (handles and a summary), its options, its status.
// Loading details (idx files, URLs, caches, limits) are in test/dataset.spec.ts and test/limits.spec.ts.
describe('mnist-dataset node', function () {
  unloadFreesTensors('datasets hold no tensors');

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'mnist-dataset', name: 'data' }]);
    assert.equal(helper.getNode('n1').name, 'data');
  });

  it('writes msg.dataset handles and a summary of the embedded MNIST, and says what it loaded', async () => {
    await helper.load(NODES, [{ id: 'ds', type: 'mnist-dataset', wires: [['out']] }, { id: 'out', type: 'helper' }, { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' }]);
    const m = await works('ds', { payload: true });
    assert.deepEqual(m.payload.train.count, 60000);
    assert.deepEqual(m.payload.test.count, 10000);
    assert.deepEqual(m.dataset.train.shape, [28, 28]);
    assert.equal(m.dataset.train.kind, 'split');
    assert.equal(m.dataset.classes.length, 10);
    assert.equal(m.dataset.normalization, null);
    assert.equal(statusOf(helper.getNode('ds')).text, '60000 train · 10000 test');
    // msg.limit takes a shuffled subset of each split.
    const small = await works('ds', { limit: 500 });
    assert.equal(small.payload.train.count, 500);
    assert.equal(small.payload.test.count, 500);
  });

  it('reads one split of a folder, with its own class names, and refuses a folder that is not there', async () => {
    const dir = writeSet('three', { count: 30, classes: 3 });
    await helper.load(NODES, [
      { id: 'ds', type: 'mnist-dataset', source: 'folder', folder: dir, splits: 'test', classes: 'cat,dog,bird', wires: [['out']] },
      { id: 'gone', type: 'mnist-dataset', source: 'folder', folder: `${dir}-missing`, wires: [['out']] },
      { id: 'out', type: 'helper' }, { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    const m = await works('ds', {});
    assert.ok(!m.dataset.train, 'no train split asked for');
    assert.equal(m.payload.test.count, 30);
    assert.deepEqual(m.dataset.classes, ['cat', 'dog', 'bird']);
    await fails('gone', {}, /folder .*missing.* does not exist/);
    assert.equal(statusOf(helper.getNode('gone')).fill, 'red');
  });
});
