import { strict as assert } from 'assert';
import { fails, helper, NODES, statusOf, tensors, unloadFreesTensors, works } from './helpers';

// mlp-model's contract: the tutorial's MLP by default, sized from the dataset, one model per node.
describe('mlp-model node', function () {
  unloadFreesTensors('the model is freed on unload');

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'mlp-model', name: 'mlp' }]);
    assert.equal(helper.getNode('n1').name, 'mlp');
  });

  it('builds the tutorial\'s 784-256-64-10 MLP, and a new one each run (the old one freed)', async () => {
    await helper.load(NODES, [
      { id: 'mlp', type: 'mlp-model', wires: [['out']] },
      { id: 'deep', type: 'mlp-model', hidden: '32,32,32', activation: 'tanh', wires: [['out']] },
      { id: 'out', type: 'helper' }, { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    const m = await works('mlp', {});
    assert.equal(m.model.kind, 'model');
    assert.equal(m.model.parameters, 784 * 256 + 256 + 256 * 64 + 64 + 64 * 10 + 10);
    assert.deepEqual(m.payload.layers, m.model.layers);
    assert.equal(m.model.inputSize, 784);
    assert.equal(statusOf(helper.getNode('mlp')).text, '218,058 parameters');
    const before = tensors();
    const again = await works('mlp', {});
    assert.notEqual(again.model.id, m.model.id);
    assert.equal(tensors(), before, 'the first model was freed when the node ran again');
    const d = await works('deep', {});
    assert.equal(d.model.layers.filter((l: string) => /tanh/.test(l)).length, 3);
  });

  it('refuses hidden sizes it cannot read, naming the option', async () => {
    await helper.load(NODES, [
      { id: 'bad', type: 'mlp-model', hidden: '256,abc', wires: [['out']] },
      { id: 'out', type: 'helper' }, { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    await fails('bad', {}, /hidden/);
  });
});
