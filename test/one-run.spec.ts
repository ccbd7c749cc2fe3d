import { strict as assert } from 'assert';
import { backend, helper, next, NODES, pipeline, tensors } from './helpers';

// Train pressed twice: the second message must not free what the first run's training (and the
// evaluation after it) still reads. mnist-dataset and normalize refuse to run again while a
// training reads the splits they made, with an error a Catch node receives; the first run ends
// with its result.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const ALL = [...NODES, require('@node-red/nodes/core/common/25-catch.js')];

/** Resolves once the training has sent its `step`-th loss point. */
function training(step = 2): Promise<void> {
  return new Promise((resolve) => helper.getNode('progress').on('input', (m: any) => { if (m.payload.step === step) resolve(); }));
}

describe('one run at a time: a second message while a training reads the data', function () {
  before(async () => { await backend(); });
  afterEach(async () => { await helper.unload(); });

  it('normalize refuses to run again while its splits are trained on; the first run gives its result', async () => {
    const base = tensors();
    await helper.load(ALL, pipeline({ limit: 5000, train: { epochs: 30 } }));
    const results: any[] = [];
    helper.getNode('out').on('input', (m: any) => results.push(m));
    const refused = next(helper.getNode('caught'), 60000);
    const started = training();
    helper.getNode('ds').receive({ payload: 1 });
    await started;
    helper.getNode('ds').receive({ payload: 2, run: 2 });
    const err = await refused;
    assert.equal(err.error.source.id, 'norm');
    assert.match(err.error.message, /the data this node made last time is still being read by node train \(a training\); wait for it to end or stop it \(msg\.stop = true to sgd-train\)/);
    assert.equal(err.run, 2, 'the second message is the one refused');
    helper.getNode('train').receive({ stop: true });
    const first = await next(helper.getNode('out'));
    assert.equal(first.payload.count, 5000, 'the first run was evaluated on its own test split');
    // Once the training has ended, the next message runs.
    const second = next(helper.getNode('trained'));
    helper.getNode('ds').receive({ payload: 3, train: { epochs: 1 } });
    assert.equal((await second).payload.stopped, false);
    await next(helper.getNode('out'));
    assert.equal(results.length, 2);
    await helper.unload();
    assert.equal(tensors(), base);
  });

  it('a second message right behind the first (its data not yet at the training) waits, and is refused once the training reads the data, instead of freeing it', async () => {
    const base = tensors();
    await helper.load(ALL, pipeline({ limit: 2000, train: { epochs: 30 } }));
    const results: any[] = [];
    helper.getNode('out').on('input', (m: any) => results.push(m));
    const refused = next(helper.getNode('caught'), 60000);
    // The moment the first message reaches mlp-model, a second one arrives at normalize: the first's
    // normalized splits are on their way (in mlp-model's hands), not yet read by the training.
    let loaded: any;
    helper.getNode('norm').once('input', (m: any) => { loaded = { dataset: m.dataset }; });
    helper.getNode('mlp').once('input', () => helper.getNode('norm').receive({ ...loaded, payload: 2, run: 2 }));
    const started = training();
    helper.getNode('ds').receive({ payload: 1 });
    const err = await refused;
    assert.equal(err.error.source.id, 'norm');
    assert.equal(err.run, 2);
    assert.match(err.error.message, /the data this node made last time is still being read by node train/);
    await started;
    helper.getNode('train').receive({ stop: true });
    const first = await next(helper.getNode('out'), 60000);
    assert.equal(first.payload.count, 2000, 'the first run was trained and evaluated on its own data');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(results.length, 1);
    await helper.unload();
    assert.equal(tensors(), base);
  });

  it('mnist-dataset refuses to load again while a training reads its splits (no normalize between)', async () => {
    const flow = pipeline({ limit: 3000, train: { epochs: 30 } });
    flow.find((n) => n.id === 'ds').wires = [['mlp']];
    await helper.load(ALL, flow);
    const refused = next(helper.getNode('caught'), 60000);
    const started = training();
    helper.getNode('ds').receive({ payload: 1 });
    await started;
    helper.getNode('ds').receive({ payload: 2 });
    const err = await refused;
    assert.equal(err.error.source.id, 'ds');
    assert.match(err.error.message, /still being read by node train/);
    helper.getNode('train').receive({ stop: true });
    assert.equal((await next(helper.getNode('out'))).payload.count, 3000);
  });

  it('two trainings may read one split at once, and its maker runs again once both have ended', async () => {
    const flow = pipeline({ limit: 2000, train: { epochs: 2 } }, [
      { id: 'mlp2', type: 'mlp-model', seed: 1, wires: [['train2']] },
      { id: 'train2', type: 'sgd-train', progressEvery: 0, epochs: 2, wires: [['trained2'], []] },
      { id: 'trained2', type: 'helper' },
    ]);
    flow.find((n) => n.id === 'norm').wires = [['mlp', 'mlp2']];
    await helper.load(ALL, flow);
    const errors: any[] = [];
    helper.getNode('caught').on('input', (m: any) => errors.push(m.error.message));
    const both = Promise.all([next(helper.getNode('trained')), next(helper.getNode('trained2')), next(helper.getNode('out'))]);
    helper.getNode('ds').receive({ payload: 1 });
    const [a, b] = await both;
    assert.equal(a.payload.stopped, false);
    assert.equal(b.payload.stopped, false);
    const again = next(helper.getNode('trained2'));
    helper.getNode('ds').receive({ payload: 2 });
    await again;
    assert.deepEqual(errors, []);
  });
});
