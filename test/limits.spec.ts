import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { cacheKey, loadDataset } from '../src/lib/dataset';
import {
  backend, caughtFrom, fails, flow, helper, NODES, ready, scratch, statusOf, tensors, works, writeSet,
} from './helpers';

// Issue 9: nothing a message or a setting can do takes Node-RED down. Each case was reproduced
// first; now it gives a clear error (status and Catch), the process stays healthy (a normal
// predict and training work right after, in this same process), memory stays bounded and every
// tensor is freed.

const tmp = scratch();
const MB = 2 ** 20;

/** An HTTP server on loopback; `route` answers each request. */
function serve(route: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const srv = http.createServer(route);
  return new Promise<{ base: string; close: () => Promise<void> }>((resolve) => {
    srv.listen(0, '127.0.0.1', () => resolve({
      base: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
      close: () => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
    }));
  });
}

/** Serves the four gzipped idx files of `dir` under any path ending in their names. */
function files(dir: string) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const f = path.join(dir, path.basename(req.url || ''));
    if (!fs.existsSync(f)) { res.statusCode = 404; res.end(); return; }
    res.end(fs.readFileSync(f));
  };
}

/** The process is still healthy: a prediction and a short training work on a fresh model. */
async function healthy(): Promise<void> {
  const good = await ready();
  const p = await works('t-predict', { payload: new Array(784).fill(0.2), model: good.model });
  assert.ok(p.payload.probabilities.every(Number.isFinite));
  const t = await works('t-train', { dataset: good.dataset, model: good.model });
  assert.ok(Number.isFinite(t.payload.loss));
}

describe('limits: bounded memory, bounded work, honest errors (issue 9)', function () {
  let base = 0;
  before(async () => {
    await backend();
    helper._settings.userDir = tmp; // the download cache goes under the user directory
  });
  after(() => { delete helper._settings.userDir; });
  beforeEach(() => { base = tensors(); });
  afterEach(async function () {
    await helper.unload();
    if (this.currentTest?.state === 'passed') assert.equal(tensors(), base, 'every tensor freed after unload');
    assert.ok(process.memoryUsage().rss < 1.5 * 1024 * MB, `RSS ${Math.round(process.memoryUsage().rss / MB)} MB`);
  });

  it('1. a training whose batch would not fit in memory is refused before anything is allocated, with the batch size that fits', async () => {
    await helper.load(NODES, flow([
      { id: 'huge', type: 'mlp-model', hidden: '8192', wires: [['out']] },
    ], { limit: 0 }));
    const good = await ready();
    const big = await works('huge', { dataset: good.dataset });
    assert.equal(big.model.parameters, 8192 * 785 + 10 * 8193);
    const text = await fails('t-train', { dataset: good.dataset, model: big.model, train: { batchSize: 65536 } },
      /this training needs about \d+ MB, more than the 2048 MB allowed \(setting mnistMemoryLimitMB\); use a batch size of at most (\d+) \(now 65536\)/);
    const fits = Number(/at most (\d+)/.exec(text)![1]);
    assert.ok(fits >= 1000 && fits < 60000, `suggested batch size ${fits}`);
    // Evaluating and predicting with the wide model are split into chunks that fit.
    const m = await works('t-eval', { dataset: good.dataset, model: big.model });
    assert.equal(m.payload.count, 10000);
    const p = await works('t-predict', { payload: good.dataset.test, model: big.model });
    assert.equal(p.payload.length, 10000);
    await healthy();
  });

  it('3. out-of-range pixel values are refused, not answered with confidence 1.0', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const img = (v: number) => new Array(784).fill(0).map((_, i) => (i === 300 ? v : 0));
    await fails('t-predict', { payload: img(-1000), model: good.model }, /msg\.payload\[300\] is -1000; pixel values must be from 0 to 255 \(or 0 to 1\)/);
    await fails('t-predict', { payload: img(5000), model: good.model }, /msg\.payload\[300\] is 5000/);
    await fails('t-predict', { payload: [img(0), img(1e38)], model: good.model }, /msg\.payload\[1\]\[300\] is 1e\+38/);
    assert.equal((await works('t-predict', { payload: img(255), model: good.model })).payload.probabilities.length, 10);
  });

  it('4. training an already trained model further with batch size 1 and lr 1e-4 is not called diverged', async () => {
    await helper.load(NODES, flow([
      { id: 'pre', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.001', batchSize: '32', epochs: '3', progressEvery: '0', wires: [['out'], []] },
      { id: 'fine', type: 'sgd-train', optimizer: 'adam', loss: 'crossentropy', learningRate: '0.0001', batchSize: '1', epochs: '1', progressEvery: '0', wires: [['out'], []] },
    ], { limit: 1000 }));
    const good = await ready();
    await works('pre', { dataset: good.dataset, model: good.model });
    const t = await works('fine', { dataset: good.dataset, model: good.model });
    assert.equal(t.history.loss.length, 1000);
    assert.ok(Math.min(...t.history.loss) < 1e-3 && Math.max(...t.history.loss) > 1, 'single samples range from tiny to large losses');
    assert.equal(t.payload.stopped, false);
  });

  it('5, 6, 12. downloads: a wrong answer is never cached, a broken cached copy is dropped and fetched again, URLs never share a cache entry, and two nodes may fetch one URL at once', async () => {
    const good = writeSet('good-served', { count: 50, gz: true });
    let html = true;
    const srv = await serve((req, res) => {
      if (html) { res.setHeader('content-type', 'text/html'); res.end('<html><body>Welcome to our site</body></html>'); return; }
      files(good)(req, res);
    });
    try {
      const dsFlow = (url: string) => [
        { id: 'ds1', type: 'mnist-dataset', source: 'url', url, wires: [['out']] },
        { id: 'ds2', type: 'mnist-dataset', source: 'url', url, wires: [['out']] },
        { id: 'out', type: 'helper' },
        { id: 'catcher', type: 'catch', wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ];
      const url = `${srv.base}/a/b/`;
      const cache = path.join(tmp, '.mnist-cache', cacheKey(url));
      await helper.load(NODES, dsFlow(url));
      await fails('ds1', {}, /\/a\/b\/train-images-idx3-ubyte\.gz did not deliver an MNIST-format file \(.*not an IDX file.*\); nothing was cached/);
      assert.deepEqual(fs.existsSync(cache) ? fs.readdirSync(cache) : [], [], 'nothing cached, no part file left');

      html = false;
      // Both nodes at once: each downloads into its own part file; both end with the same cache.
      const sent: any[] = [];
      const two = new Promise<void>((r) => helper.getNode('out').on('input', (m: any) => { sent.push(m); if (sent.length === 2) r(); }));
      helper.getNode('ds1').receive({});
      helper.getNode('ds2').receive({});
      await two;
      assert.deepEqual(sent.map((m) => m.payload.train.count), [50, 50]);
      assert.deepEqual(fs.readdirSync(cache).sort(), ['t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']);

      // A cached copy that no longer parses is dropped, said so, and fetched again.
      fs.writeFileSync(path.join(cache, 'train-labels-idx1-ubyte.gz'), 'garbage');
      const warned = new Promise<string>((r) => helper.getNode('ds1').on('call:warn', (c: any) => r(String(c.args[0]))));
      assert.equal((await works('ds1', {})).payload.train.count, 50);
      assert.match(await warned, /the cached copy .*train-labels-idx1-ubyte\.gz did not parse .*; it was removed and downloaded again/);

      // Distinct URL bases never share an entry, however alike they look.
      assert.notEqual(cacheKey(`${srv.base}/a_b/`), cacheKey(`${srv.base}/a/b/`));
      assert.notEqual(cacheKey('http://x/a b/'), cacheKey('http://x/a_b/'));
    } finally {
      await srv.close();
    }
  });

  it('8. a download that stalls or crawls is given up, and msg.stop stops one at once', async () => {
    const good = writeSet('dripped', { count: 50, gz: true });
    const srv = await serve((req, res) => {
      const body = fs.readFileSync(path.join(good, path.basename(req.url || '')));
      let at = 0;
      const timer = setInterval(() => { if (!res.destroyed) res.write(body.subarray(at, ++at)); }, 2000);
      res.on('close', () => clearInterval(timer));
    });
    try {
      // The engine's limits, short enough for a test: no data for 300 ms is a stall.
      const t0 = Date.now();
      await assert.rejects(loadDataset({ source: 'url', url: `${srv.base}/drip/`, cacheDir: path.join(tmp, 'drip-cache'), downloadLimits: { idleMs: 300, totalMs: 60000 } }),
        /the download of .*train-images-idx3-ubyte\.gz stalled: no data for 0\.3 s/);
      assert.ok(Date.now() - t0 < 5000);
      // A crawl that never stalls ends at the overall limit.
      await assert.rejects(loadDataset({ source: 'url', url: `${srv.base}/crawl/`, cacheDir: path.join(tmp, 'drip-cache'), downloadLimits: { idleMs: 5000, totalMs: 500 } }),
        /took longer than 0\.0083\d* minutes and was given up/);
      const left = fs.existsSync(path.join(tmp, 'drip-cache')) ? fs.readdirSync(path.join(tmp, 'drip-cache'), { recursive: true }) : [];
      assert.ok(!left.some((f) => String(f).endsWith('.part')), 'no part files left');

      await helper.load(NODES, [
        { id: 'ds', type: 'mnist-dataset', source: 'url', url: `${srv.base}/slow/`, wires: [['out']] },
        { id: 'out', type: 'helper' },
        { id: 'catcher', type: 'catch', wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ]);
      const node = helper.getNode('ds');
      node.receive({});
      await new Promise((r) => setTimeout(r, 300));
      const errors: any[] = [];
      helper.getNode('caught').on('input', (m: any) => errors.push(m));
      node.receive({ stop: true });
      for (let i = 0; i < 50 && statusOf(node).text !== 'stopped'; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(statusOf(node).text, 'stopped');
      assert.equal(statusOf(node).fill, 'yellow');
      assert.deepEqual(errors, [], 'a stop is not an error');
    } finally {
      await srv.close();
    }
  });

  it('7. class names a message edits cannot change what a split holds', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const edited = { ...good.dataset, classes: ['a', 'b', 'c'] };
    await fails('t-mlp', { dataset: edited }, /msg\.dataset\.classes has 3 names but the split has 10 classes/);
    // A model built before the edit trains and evaluates on the split's real 10 classes.
    assert.ok(Number.isFinite((await works('t-train', { dataset: edited, model: good.model })).payload.loss));
    const m = await works('t-eval', { dataset: edited, model: good.model });
    assert.equal(m.payload.confusion.length, 10);
    await fails('t-plot', { dataset: edited, model: good.model, metrics: m.payload, plot: 'confusion' }, /msg\.dataset\.classes has 3 names but the chart has 10 classes/);
  });

  it('9. a model rebuilt while predict decodes an image gives a clear error, not tfjs\'s own words', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const sharp = (await import('sharp')).default;
    const png = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#ffffff' } })
      .composite([{ input: Buffer.from('<svg width="2000" height="2000"><text x="600" y="1600" font-size="1600">7</text></svg>') }]).png().toBuffer();
    const err = caughtFrom('t-predict');
    helper.getNode('t-predict').receive({ payload: png, model: good.model });
    helper.getNode('mlp').receive({ dataset: good.dataset }); // frees the model the prediction holds
    const m = await err;
    assert.match(m.error.message, /msg\.model \(model-.*\) is gone: the node that made it ran again/);
    await healthy();
  });

  it('10. metadata saved with a model describes the weights saved, not an evaluation from before more training', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const m = await works('t-eval', { dataset: good.dataset, model: good.model });
    assert.ok(m.payload.accuracy >= 0);
    const s1 = await works('t-save', { model: good.model });
    assert.equal(s1.payload.metrics.accuracy, m.payload.accuracy);
    await works('t-train', { dataset: good.dataset, model: good.model });
    const s2 = await works('t-save', { model: good.model });
    assert.equal(s2.payload.metrics, null, 'no stale metrics');
    const meta = JSON.parse(fs.readFileSync(path.join(s2.payload.folder, 'metadata.json'), 'utf8'));
    assert.equal(meta.metrics, undefined);
    const again = await works('t-eval', { dataset: good.dataset, model: good.model });
    assert.equal((await works('t-save', { model: good.model })).payload.metrics.accuracy, again.payload.accuracy);
  });

  it('13. normalize "from data" on images of one value names the mean and std it computed', async () => {
    const flat = writeSet('flat', { pixel: () => 7 });
    await helper.load(NODES, flow([
      { id: 'dsflat', type: 'mnist-dataset', source: 'folder', folder: flat, wires: [['normflat']] },
      { id: 'normflat', type: 'normalize', fromData: true, mean: '0.5', std: '0.25', wires: [['out']] },
    ]));
    const err = caughtFrom('normflat');
    helper.getNode('dsflat').receive({});
    const m = await err;
    assert.match(m.error.message, /all have the same value \(mean 0\.02745, std 0\)/);
    assert.doesNotMatch(m.error.message, /0\.25/);
  });

  it('15. a huge confusion matrix and thousands of hidden layers are refused with a clear error', async () => {
    await helper.load(NODES, flow([
      { id: 'deep', type: 'mlp-model', hidden: Array(5000).fill(8).join(','), wires: [['out']] },
    ]));
    const good = await ready();
    const confusion = Array.from({ length: 300 }, () => new Array(300).fill(1));
    await fails('t-plot', { plot: 'confusion', metrics: { confusion, perClass: new Array(300).fill(0.5) } }, /300 classes are too many to draw \(at most 100\)/);
    await fails('t-plot', { plot: 'perclass', metrics: { confusion, perClass: new Array(300).fill(0.5) } }, /300 classes are too many to draw/);
    await fails('deep', {}, /must be a comma-separated list of at most 16 whole numbers from 1 to 8192/);
    assert.ok(good.model);
    await healthy();
  });
});
