import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { fails, flow, helper, NODES, ready, scratch, statusOf, unloadFreesTensors, works } from './helpers';

// model-save's contract: a folder predict (and TF.js) can load, with metadata describing the model.
describe('model-save node', function () {
  unloadFreesTensors();

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'model-save', name: 'save' }]);
    assert.equal(helper.getNode('n1').name, 'save');
  });

  it('writes model.json, weights.bin and metadata.json, and says where', async () => {
    await helper.load(NODES, flow([], { limit: 100 }));
    const good = await ready();
    const m = await works('t-save', { dataset: good.dataset, model: good.model });
    const folder = path.join(scratch(), 'saved');
    assert.equal(m.payload.folder, folder);
    assert.deepEqual([...m.payload.files].sort(), ['metadata.json', 'model.json', 'weights.bin']);
    const meta = JSON.parse(fs.readFileSync(path.join(folder, 'metadata.json'), 'utf8'));
    assert.equal(meta.classes.length, 10);
    assert.deepEqual(meta.normalization, { mean: 0.1307, std: 0.3081 });
    assert.equal(fs.statSync(path.join(folder, 'weights.bin')).size, m.payload.bytes - fs.statSync(path.join(folder, 'model.json')).size - fs.statSync(path.join(folder, 'metadata.json')).size);
    assert.match(statusOf(helper.getNode('t-save')).text!, /kB/);
  });

  it('refuses a message without a model', async () => {
    await helper.load(NODES, flow([], { limit: 100 }));
    await fails('t-save', {}, /msg\.model is not a model handle; wire an mlp-model node/);
  });
});
