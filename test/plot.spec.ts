import { strict as assert } from 'assert';
import sharp from 'sharp';
import { backend, helper, next, NODES, pipeline, statusOf, tensors } from './helpers';

const KINDS = ['loss', 'samples', 'predictions', 'confusion', 'perclass', 'mistakes'];

describe('plot node', function () {
  before(async () => { await backend(); });
  afterEach(async () => { await helper.unload(); });

  it('should be loaded with defaults', async () => {
    await helper.load(NODES, [{ id: 'n1', type: 'plot', name: 'plot' }]);
    assert.equal(helper.getNode('n1').name, 'plot');
  });

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

  it('draws validation loss and accuracy beside the training loss, and averages very long histories', async () => {
    await helper.load(NODES, [{ id: 'p', type: 'plot', kind: 'loss', format: 'svg', wires: [['out']] }, { id: 'out', type: 'helper' }]);
    const epochs = [1, 2, 3].map((epoch) => ({ epoch, loss: 0.5 / epoch, seconds: 1, valLoss: 0.6 / epoch, valAccuracy: 0.8 + epoch * 0.05 }));
    const history = { loss: Array.from({ length: 300 }, (_, i) => 1 / (1 + i)), epochs, batchesPerEpoch: 100 };
    const a = next(helper.getNode('out'));
    helper.getNode('p').receive({ history });
    const svg: string = (await a).payload;
    for (const text of ['validation loss', 'validation accuracy', 'loss per batch', 'mean loss per epoch', '94.0%']) assert.ok(svg.includes(text), `the chart shows ${text}`);
    // 400,000 batches (1,000 epochs of the tutorial) draw as at most 2,000 points, quickly.
    const long = { loss: Array.from({ length: 400000 }, (_, i) => 1 / Math.sqrt(1 + i)), epochs: [{ epoch: 1, loss: 0.1, seconds: 9 }], batchesPerEpoch: 400000 };
    const b = next(helper.getNode('out'));
    helper.getNode('p').receive({ history: long });
    const line = /class="mark-line[^"]*"[^>]*>\s*<path[^>]*d="(M[^"]+)"/.exec((await b).payload)![1];
    const points = line.split(/[ML]/).filter(Boolean).length;
    assert.ok(points > 1000 && points <= 2000, `${points} points`);
  });

  it('draws one cell of the confusion matrix: the test images of a true class read as another', async () => {
    const flow = pipeline({ limit: 1000, train: { epochs: 1 } }, [
      { id: 'pair', type: 'plot', kind: 'loss', format: 'svg', wires: [['got']] }, { id: 'got', type: 'helper' },
    ]);
    flow.find((n) => n.id === 'eval').wires[0].push('pair');
    await helper.load(NODES, flow);
    const evaluated = next(helper.getNode('out'));
    helper.getNode('ds').receive({ payload: true });
    const m = await evaluated;
    // The most frequent confusion of this model.
    const c: number[][] = m.metrics.confusion;
    let best = { t: 0, p: 1, n: -1 };
    c.forEach((row, t) => row.forEach((n, p) => { if (t !== p && n > best.n) best = { t, p, n }; }));
    const got = next(helper.getNode('got'));
    helper.getNode('pair').receive({ ...m, plot: { kind: 'mistakes', true: best.t, predicted: best.p } });
    const svg: string = (await got).payload;
    assert.ok(svg.includes(`True ${best.t}, read as ${best.p}: ${best.n} images`), 'the title names the cell and its count');
    assert.equal((svg.match(/<image/g) || []).length, Math.min(best.n, 10), 'its images, up to the count option');
    const caught = next(helper.getNode('caught'));
    helper.getNode('pair').receive({ ...m, plot: { kind: 'mistakes', true: 12, predicted: 3 } });
    assert.match((await caught).error.message, /true 12 read as 3, but the split has classes 0 to 10/);
  });
});
