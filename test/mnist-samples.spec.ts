import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { fails, helper, next, NODES, scratch, statusOf, unloadFreesTensors, works } from './helpers';
import { sevenSegment, sevenSegmentSet } from './style';

// mnist-samples keeps a user's own labelled digits on disk; mnist-dataset mixes them into the
// train split; a model fine-tuned on them learns the user's handwriting (issue 13).
describe('mnist-samples node', function () {
  const dir = path.join(scratch(), 'my-samples');
  unloadFreesTensors('every tensor freed after unload');

  const store = (extra: any[] = []) => [
    { id: 'store', type: 'mnist-samples', folder: dir, wires: [['out']] },
    { id: 'out', type: 'helper' },
    { id: 'catcher', type: 'catch', wires: [['caught']] },
    { id: 'caught', type: 'helper' },
    ...extra,
  ];

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'mnist-samples', name: 'mine' }]);
    assert.equal(helper.getNode('n1').name, 'mine');
  });

  it('adds, lists and deletes samples that survive a redeploy, and says what is wrong with a bad one', async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await helper.load(NODES, store());
    const a = await works('store', { payload: await sevenSegment(3, 1), label: 3 });
    assert.equal(a.payload.action, 'add');
    assert.equal(a.payload.count, 1);
    const b = await works('store', { payload: new Array(784).fill(0).map((_, i) => (i % 28 > 10 && i % 28 < 16 ? 200 : 0)), label: '1' });
    assert.equal(b.payload.label, 1);
    assert.equal(statusOf(helper.getNode('store')).text, '2 samples');
    await fails('store', { payload: await sevenSegment(3, 2), label: 12 }, /label 12 is not a class of this set \(0 to 10/);
    await fails('store', { payload: await sevenSegment(3, 2) , label: 'three', topic: 'add' }, /msg\.label "three" does not name the digit/);
    await fails('store', { payload: [await sevenSegment(3, 2), await sevenSegment(4, 2)], label: 3 }, /send one image per sample/);
    await fails('store', { topic: 'rename' }, /msg\.topic "rename" is not an action of this node/);

    await helper.unload();
    await helper.load(NODES, store());
    const list = await works('store', { topic: 'list' });
    assert.equal(list.payload.count, 2);
    assert.deepEqual(list.payload.perClass, [0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert.match(list.payload.samples[0].image, /^data:image\/png;base64,/);
    const gone = await works('store', { topic: 'delete', id: list.payload.samples[0].id });
    assert.equal(gone.payload.removed, 1);
    assert.equal(gone.payload.count, 1);
    assert.equal((await works('store', { topic: 'clear' })).payload.removed, 1);
  });

  it('teaches a trained model a handwriting style: +10 points on that style, at most -1 point on MNIST', async function () {
    fs.rmSync(dir, { recursive: true, force: true });
    await helper.load(NODES, store([
      { id: 'ds', type: 'mnist-dataset', wires: [['norm']] },
      { id: 'norm', type: 'normalize', wires: [['mlp']] },
      { id: 'mlp', type: 'mlp-model', wires: [['train']] },
      { id: 'train', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '128', epochs: '3', progressEvery: '0', wires: [['trained'], []] },
      { id: 'trained', type: 'helper' },
      { id: 'eval', type: 'evaluate', wires: [['evaluated']] },
      { id: 'evaluated', type: 'helper' },
      { id: 'reader', type: 'predict', topK: '1', maxImages: '1000', wires: [['predicted']] }, // 200 images in one message
      { id: 'predicted', type: 'helper' },
      // Fine-tuning: a few thousand MNIST images with the samples mixed in, a small learning rate.
      { id: 'ds-ft', type: 'mnist-dataset', limit: '5000', samples: dir, samplesRepeat: '20', wires: [['norm-ft']] },
      { id: 'norm-ft', type: 'normalize', wires: [['tuned-data']] },
      { id: 'tuned-data', type: 'helper' },
      { id: 'tune', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.0003', batchSize: '64', epochs: '2', progressEvery: '0', wires: [['tuned'], []] },
      { id: 'tuned', type: 'helper' },
    ]));
    const ask = async (id: string, msg: any, out: string) => { const got = next(helper.getNode(out)); helper.getNode(id).receive(msg); return got; };
    const held = await sevenSegmentSet(20, 1000); // never taught
    const styleAccuracy = async (model: any) => {
      const m = await ask('reader', { payload: held.map((h) => h.png), model }, 'predicted');
      return m.payload.filter((p: any, i: number) => p.label === held[i].label).length / held.length;
    };
    const trained = await ask('ds', {}, 'trained');
    const mnistBefore = (await ask('eval', trained, 'evaluated')).payload.accuracy;
    const styleBefore = await styleAccuracy(trained.model);

    for (const s of await sevenSegmentSet(10, 1)) await works('store', { payload: s.png, label: s.label });
    const data = await ask('ds-ft', {}, 'tuned-data');
    assert.equal(data.dataset.train.count, 5000 + 100 * 20);
    const tuned = await ask('tune', { dataset: data.dataset, model: trained.model }, 'tuned');
    const mnistAfter = (await ask('eval', { dataset: trained.dataset, model: tuned.model }, 'evaluated')).payload.accuracy;
    const styleAfter = await styleAccuracy(tuned.model);
    console.log(`      style: ${(styleBefore * 100).toFixed(1)} % -> ${(styleAfter * 100).toFixed(1)} %; MNIST test: ${(mnistBefore * 100).toFixed(2)} % -> ${(mnistAfter * 100).toFixed(2)} %`);
    assert.ok(styleAfter - styleBefore >= 0.10, `the style rose by ${((styleAfter - styleBefore) * 100).toFixed(1)} points`);
    assert.ok(mnistBefore - mnistAfter <= 0.01, `MNIST fell by ${((mnistBefore - mnistAfter) * 100).toFixed(2)} points`);
  });
});
