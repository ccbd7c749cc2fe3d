import { strict as assert } from 'assert';
import { fails, helper, NODES, unloadFreesTensors, works } from './helpers';

// predict with several models in msg.model: an ensemble, whose probabilities are the average of
// each model's (each applying its own normalization). What 5 CNNs give on our own images is
// measured by scripts/measure-ensemble.ts (docs/BENCHMARKS.md).
describe('predict with an ensemble of models', function () {
  unloadFreesTensors();

  const train = (id: string, seed: number, wires: string[]) => [
    { id: `${id}-mlp`, type: 'mlp-model', hidden: '32', seed: String(seed), wires: [[`${id}-train`]] },
    { id: `${id}-train`, type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '50', epochs: '1', progressEvery: '0', wires: [wires, []] },
  ];

  it('averages the probabilities of several models, and refuses models that do not belong together', async () => {
    await helper.load(NODES, [
      { id: 'ds', type: 'mnist-dataset', limit: 1000, wires: [['norm', 'raw']] },
      { id: 'norm', type: 'normalize', wires: [['a-mlp', 'b-mlp']] },
      { id: 'raw', type: 'mlp-model', hidden: '8', wires: [['c']] }, // no normalization, same classes
      ...train('a', 1, ['a']), ...train('b', 2, ['b']),
      { id: 'a', type: 'helper' }, { id: 'b', type: 'helper' }, { id: 'c', type: 'helper' },
      { id: 'other', type: 'mnist-dataset', limit: 100, classes: '0,1,2,3,4,5,6,7,8,9,x', source: 'embedded', wires: [['odd']] },
      { id: 'odd', type: 'mlp-model', hidden: '8', wires: [['d']] }, { id: 'd', type: 'helper' },
      { id: 'reader', type: 'predict', topK: '1', wires: [['out']] }, { id: 'out', type: 'helper' },
      { id: 'catcher', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    const got = ['a', 'b', 'c'].map((id) => new Promise<any>((r) => helper.getNode(id).on('input', r)));
    helper.getNode('ds').receive({});
    const [a, b, c] = await Promise.all(got);
    const d = await works('other', {}, 'd');
    const images = Array.from({ length: 5 }, (_, i) => Array.from({ length: 784 }, (_, j) => ((i * 31 + j * 7) % 50) / 50));
    const one = async (model: unknown) => (await works('reader', { payload: images, model })).payload;
    const [pa, pb, pc] = [await one(a.model), await one(b.model), await one(c.model)];
    const both = await one([a.model, b.model]);
    const three = await one([a.model, b.model, c.model]);
    both.forEach((p: any, i: number) => p.probabilities.forEach((v: number, k: number) => {
      assert.ok(Math.abs(v - (pa[i].probabilities[k] + pb[i].probabilities[k]) / 2) < 1e-6);
      assert.ok(Math.abs(three[i].probabilities[k] - (pa[i].probabilities[k] + pb[i].probabilities[k] + pc[i].probabilities[k]) / 3) < 1e-6);
    }));
    assert.equal(both[0].label, both[0].probabilities.indexOf(Math.max(...both[0].probabilities)));
    await fails('reader', { payload: images, model: [a.model, d.model] }, /msg\.model\[1\] does not match msg\.model\[0\] \(11 classes and 784 inputs against 10 and 784\)/);
    await fails('reader', { payload: images, model: [] }, /msg\.model holds 0 models; an ensemble averages 1 to 10/);
    await fails('reader', { payload: images, model: new Array(11).fill(a.model) }, /holds 11 models/);
    await fails('reader', { payload: images, model: [a.model, { id: 'model-x', kind: 'model' }] }, /msg\.model\[1\] \(model-x\) is gone/);
  });
});
