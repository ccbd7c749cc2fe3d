import { strict as assert } from 'assert';
import sharp from 'sharp';
import { backend, helper, next, NODES, pipeline, statusOf, tensors } from './helpers';

const KINDS = ['loss', 'samples', 'predictions', 'confusion', 'perclass', 'mistakes'];

describe('plot node', function () {
  before(async () => { await backend(); });
  afterEach(async () => { await helper.unload(); });

  it('draws every picture of a trained pipeline as a non-blank PNG and frees what it used', async () => {
    const base = tensors();
    const plots = KINDS.map((kind) => ({ id: `plot_${kind}`, type: 'plot', kind, wires: [[`got_${kind}`]] }));
    const sinks = KINDS.map((kind) => ({ id: `got_${kind}`, type: 'helper' }));
    const flow = pipeline({ limit: 1500, train: { epochs: 1 } }, [...plots, ...sinks]);
    flow.find((n) => n.id === 'eval').wires[0].push(...KINDS.map((k) => `plot_${k}`));
    await helper.load(NODES, flow);
    const got = KINDS.map((k) => next(helper.getNode(`got_${k}`)));
    helper.getNode('ds').receive({ payload: true });
    const msgs = await Promise.all(got);
    for (const [i, m] of msgs.entries()) {
      assert.ok(Buffer.isBuffer(m.payload), `${KINDS[i]} gives a Buffer`);
      assert.equal(m.contentType, 'image/png');
      const img = sharp(m.payload);
      const meta = await img.metadata();
      assert.equal(meta.format, 'png');
      const stats = await img.stats();
      assert.ok(stats.channels[0].stdev > 5, `${KINDS[i]} is not blank`);
      assert.match(statusOf(helper.getNode(`plot_${KINDS[i]}`)).text!, new RegExp(`${KINDS[i]} plotted`));
    }
    await helper.unload();
    assert.equal(tensors(), base);
  });

  it('gives a data URL or SVG when asked, and msg.plot picks the picture', async () => {
    await helper.load(NODES, [
      { id: 'p', type: 'plot', kind: 'samples', format: 'dataurl', wires: [['out']] },
      { id: 'q', type: 'plot', format: 'svg', wires: [['out2']] },
      { id: 'out', type: 'helper' }, { id: 'out2', type: 'helper' },
    ]);
    const history = { loss: [0.1, 0.08, 0.07, 0.05], epochs: [{ epoch: 1, loss: 0.09, seconds: 1 }, { epoch: 2, loss: 0.06, seconds: 1 }], batchesPerEpoch: 2 };
    const a = next(helper.getNode('out'));
    helper.getNode('p').receive({ plot: 'loss', history });
    assert.match((await a).payload, /^data:image\/png;base64,/);
    const b = next(helper.getNode('out2'));
    helper.getNode('q').receive({ history });
    const svg = (await b).payload;
    assert.match(svg, /^<svg/);
    assert.equal((await b).contentType, 'image/svg+xml');
  });

  it('says what is missing: history, metrics, dataset, or an unknown kind', async () => {
    await helper.load(NODES, [
      { id: 'p', type: 'plot', kind: 'loss', wires: [[]] },
      { id: 'c', type: 'catch', wires: [['caught']] }, { id: 'caught', type: 'helper' },
    ]);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{}, /msg.history is missing: wire the first output of sgd-train/],
      [{ plot: 'confusion' }, /msg.metrics is missing: wire an evaluate node/],
      [{ plot: 'samples' }, /msg.dataset is missing/],
      [{ plot: 'pie' }, /msg\.plot "pie" is invalid/],
      [{ history: { loss: [], epochs: [] } }, /./],
    ];
    for (const [msg, re] of cases) {
      const caught = next(helper.getNode('caught'));
      helper.getNode('p').receive(msg);
      assert.match((await caught).error.message, re);
      assert.equal(statusOf(helper.getNode('p')).fill, 'red');
    }
  });
});
