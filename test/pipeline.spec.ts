import { strict as assert } from 'assert';
import { nativeAvailable } from '../src/lib/engine/native';
import { backend, helper, next, NODES, pipeline, statusOf, tensors } from './helpers';

/** Every engine present trains the tutorial: the native one (ONNX Runtime) where it loads, and tfjs. */
const ENGINES = ['native', 'tfjs'] as const;

async function useEngine(test: Mocha.Context, engine: typeof ENGINES[number]): Promise<void> {
  if (engine === 'native' && !(await nativeAvailable())) {
    console.log('      onnxruntime-node is not installed here: the native engine is not tested');
    test.skip();
  }
  helper._settings.mnistEngine = engine;
}

describe('the tutorial pipeline as a flow', function () {
  before(async () => { await backend(); });
  afterEach(async () => { await helper.unload(); delete helper._settings.mnistEngine; });

  for (const engine of ENGINES) {
  it(`${engine}: trains with the tutorial settings on the full 60k, reaches 80 % on the real 10k test set, and frees every tensor on redeploy`, async function () {
    await useEngine(this, engine);
    const base = tensors();
    await helper.load(NODES, pipeline({ limit: 0, train: { epochs: 3 } }));
    const out = helper.getNode('out');
    const trained = helper.getNode('trained');
    const progress: any[] = [];
    helper.getNode('progress').on('input', (m: any) => { if (m.topic === 'loss') progress.push(m.payload); });
    const evaluated = next(out);
    const done = next(trained);
    helper.getNode('ds').receive({ payload: true });
    const t = await done;
    const m = await evaluated;
    assert.equal(t.history.epochs.length, 3);
    assert.equal(t.history.loss.length, 3 * Math.ceil(60000 / 512));
    assert.ok(t.history.loss[t.history.loss.length - 1] < t.history.loss[0], 'loss falls');
    assert.ok(progress.length === 3 * 118 && progress.every((p) => Number.isFinite(p.loss) && p.epoch >= 1));
    assert.equal(m.payload.count, 10000);
    assert.equal(m.payload.split, 'test');
    assert.ok(m.payload.accuracy >= 0.8, `accuracy ${m.payload.accuracy}`);
    assert.equal(m.metrics.confusion.length, 10);
    assert.equal(m.metrics.confusion.flat().reduce((a: number, b: number) => a + b, 0), 10000);
    assert.equal(m.model.parameters, 218058);
    assert.deepEqual(JSON.parse(JSON.stringify(m.dataset.normalization)), { mean: 0.1307, std: 0.3081 });
    assert.match(statusOf(helper.getNode('eval')).text!, /^accuracy 8\d\.\d %$/);
    assert.match(statusOf(helper.getNode('train')).text!, /^loss 0\.0\d\d · [\d.]+ s$/);
    assert.equal(t.payload.engine, engine === 'native' ? 'native' : await backend());
    assert.ok(tensors() > base, 'the model lives while the flow is deployed');
    await helper.unload();
    assert.equal(tensors(), base, 'redeploy frees the model and every training tensor');
  });

  it(`${engine}: reaches 97 % on the real test set with cross-entropy + Adam (full 60k, 3 epochs)`, async function () {
    await useEngine(this, engine);
    await helper.load(NODES, pipeline({ limit: 0, train: { epochs: 3, optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001, batchSize: 128 } }));
    const evaluated = next(helper.getNode('out'));
    helper.getNode('ds').receive({ payload: true });
    const m = await evaluated;
    assert.ok(m.payload.accuracy >= 0.97, `accuracy ${m.payload.accuracy}`);
    assert.equal(m.payload.lossFunction, 'crossentropy');
  });
  }

  it('normalize gives the tutorial min/max on the full training set', async () => {
    await helper.load(NODES, [
      { id: 'ds', type: 'mnist-dataset', splits: 'train', wires: [['norm']] },
      { id: 'norm', type: 'normalize', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const got = next(helper.getNode('out'));
    helper.getNode('ds').receive({ payload: true });
    const m = await got;
    assert.equal(m.dataset.train.count, 60000);
    assert.equal(m.payload.min.toFixed(4), '-0.4242');
    assert.equal(m.payload.max.toFixed(4), '2.8215');
  });

  it('takes per-message overrides in msg.train and msg.limit', async () => {
    await helper.load(NODES, pipeline({ limit: 5000 }));
    const done = next(helper.getNode('trained'));
    helper.getNode('ds').receive({ limit: 600, train: { epochs: 1, batchSize: 100, optimizer: 'adam', loss: 'crossentropy', learningRate: 0.001 } });
    const t = await done;
    assert.equal(t.dataset.train.count, 600);
    assert.equal(t.history.loss.length, 6);
    assert.equal(t.history.epochs.length, 1);
  });

  it('msg.stop stops a running training and returns what was learned so far', async () => {
    const base = tensors();
    await helper.load(NODES, pipeline({ limit: 20000, train: { epochs: 50 } }));
    const done = next(helper.getNode('trained'));
    const warnings: string[] = [];
    const train = helper.getNode('train');
    train.on('call:warn', (c: any) => warnings.push(String(c.args[0])));
    helper.getNode('progress').on('input', (m: any) => {
      if (m.payload.step === 3) {
        train.receive({ payload: 'again' }); // a second trigger while training is refused
        train.receive({ stop: true });
      }
    });
    helper.getNode('ds').receive({ payload: true });
    const t = await done;
    assert.equal(t.payload.stopped, true);
    assert.ok(t.history.loss.length >= 3 && t.history.loss.length < 50 * 40);
    assert.ok(warnings.some((w) => /busy/.test(w)), 'second trigger warned');
    await helper.unload();
    assert.equal(tensors(), base);
  });

  it('a redeploy during training ends it and frees its tensors; the next run works', async () => {
    const base = tensors();
    await helper.load(NODES, pipeline({ limit: 20000, train: { epochs: 50 } }));
    let steps = 0;
    const started = new Promise<void>((resolve) => helper.getNode('progress').on('input', () => { if (++steps === 2) resolve(); }));
    const trained: any[] = [];
    helper.getNode('trained').on('input', (m: any) => trained.push(m));
    helper.getNode('ds').receive({ payload: true });
    await started;
    await helper.unload();
    assert.equal(tensors(), base, 'tensors back to baseline after redeploy mid-training');
    assert.equal(trained.length, 0, 'nothing sent after close');
    await helper.load(NODES, pipeline({ limit: 1000, train: { epochs: 1 } }));
    const done = next(helper.getNode('out'));
    helper.getNode('ds').receive({ payload: true });
    assert.ok((await done).payload.accuracy > 0);
  });
});
