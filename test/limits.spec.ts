import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import sharp from 'sharp';
import * as zlib from 'zlib';
import { cacheKey, loadDataset } from '../src/lib/dataset';
import {
  backend, caughtFrom, fails, flow, helper, NODES, next, ready, scratch, statusOf, tensors, works, writeSet,
} from './helpers';

// Issue 9: nothing a message or a setting can do takes Node-RED down. Each case was reproduced
// first; now it gives a clear error (status and Catch), the process stays healthy (a normal
// predict and training work right after, in this same process), memory stays bounded and every
// tensor is freed.

const tmp = scratch();
const MB = 2 ** 20;

/** A real, decodable 1-bit grey PNG of width x height, all black: 20000x20000 packs into about 50 kB. */
function hugePng(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const chunk = (type: string, body: Buffer) => {
    const out = Buffer.alloc(12 + body.length);
    out.writeUInt32BE(body.length, 0);
    out.write(type, 4, 'latin1');
    body.copy(out, 8);
    let c = 0xffffffff;
    for (const b of out.subarray(4, 8 + body.length)) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    out.writeUInt32BE((c ^ 0xffffffff) >>> 0, 8 + body.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth 1, colour type 0 (grey)
  const rows = Buffer.alloc((1 + Math.ceil(width / 8)) * height); // filter 0, all pixels 0
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(rows, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

/** An SVG of 200x200 px showing `images` (data URLs or any text for the href). */
function svgWith(hrefs: string[], attr = 'xlink:href', head = ''): Buffer {
  return Buffer.from(`${head}<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="200" height="200">` +
    '<rect width="200" height="200" fill="#fff"/>' +
    hrefs.map((h) => `<image x="0" y="0" width="200" height="200" ${attr}="${h}"/>`).join('') + '</svg>');
}

const dataUrl = (buf: Buffer, type = 'image/png') => `data:${type};base64,${buf.toString('base64')}`;

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

  it('2. an SVG embedding a 20000x20000 PNG is refused before its raster is decoded; an embedded digit still reads', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const big = hugePng(20000, 20000);
    const bomb = svgWith([dataUrl(big)]);
    assert.ok(bomb.length < 150_000, `the SVG is ${bomb.length} bytes`);
    // The bypass: the SVG itself declares 200x200, far under Max pixels; its raster is 400 megapixels.
    const meta = await sharp(bomb).metadata();
    assert.deepEqual([meta.width, meta.height], [200, 200]);
    const raster = await sharp(big, { limitInputPixels: false }).metadata();
    assert.deepEqual([raster.width, raster.height], [20000, 20000]);
    const rss = process.memoryUsage().rss;
    const where = /msg\.payload: Image too large: the SVG embeds raster images of 400000000 pixels in all, the limit is 40000000 pixels/;
    await fails('t-predict', { payload: bomb, model: good.model }, where);
    // However the raster is named or wrapped: SVG 2's plain href, a filter's feImage, an SVG inside the SVG, SVG text.
    await fails('t-predict', { payload: svgWith([dataUrl(big)], 'href'), model: good.model }, where);
    const filter = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><filter id="f">' +
      `<feImage href="${dataUrl(big)}"/></filter><rect width="200" height="200" filter="url(#f)"/></svg>`);
    await fails('t-predict', { payload: filter, model: good.model }, where);
    await fails('t-predict', { payload: svgWith([dataUrl(bomb, 'image/svg+xml')]), model: good.model }, where);
    await fails('t-predict', { payload: bomb.toString(), model: good.model }, where);
    await fails('t-predict', { payload: dataUrl(bomb, 'image/svg+xml'), model: good.model }, where);
    // Addresses the scan cannot read are refused rather than trusted.
    const entity = svgWith([`&d;${dataUrl(big).slice(4)}`], 'xlink:href', '<!DOCTYPE svg [<!ENTITY d "data">]>');
    await fails('t-predict', { payload: entity, model: good.model }, /declares XML entities or spells an embedded image's address with character references/);
    await fails('t-predict', { payload: svgWith([`&#100;ata:image/png;base64,${big.toString('base64')}`]), model: good.model }, /character references/);
    await fails('t-predict', { payload: svgWith(Array(101).fill(dataUrl(await sharp({ create: { width: 2, height: 2, channels: 3, background: '#000' } }).png().toBuffer()))), model: good.model }, /embeds more than 100 images/);
    await fails('t-predict', { payload: svgWith(['data:image/png;base64,AAAA']), model: good.model }, /embeds an image whose size cannot be read before decoding/);
    assert.ok(process.memoryUsage().rss - rss < 300 * MB, `RSS grew ${Math.round((process.memoryUsage().rss - rss) / MB)} MB`);
    // A digit drawn as a PNG inside an SVG is read as before.
    const four = await sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="200" height="200" fill="#fff"/>' +
      '<text x="100" y="170" text-anchor="middle" font-family="DejaVu Sans" font-size="160">4</text></svg>')).png().toBuffer();
    const p = await works('t-predict', { payload: svgWith([dataUrl(four)]), model: good.model });
    assert.equal(p.payload.probabilities.length, 10);
    await healthy();
  });

  it('3. images per message are bounded (default 64, configurable) before any is decoded: 48,000 tiny PNGs are refused at once', async () => {
    await helper.load(NODES, flow([{ id: 'p100', type: 'predict', topK: '1', maxImages: '100', wires: [['out']] }]));
    const good = await ready();
    const tiny = (await sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="20" height="24"><rect width="20" height="24" fill="#fff"/>' +
      '<text x="10" y="20" text-anchor="middle" font-family="DejaVu Sans" font-size="20">7</text></svg>')).png().toBuffer()).toString('base64');
    const rss = process.memoryUsage().rss;
    await fails('t-predict', { payload: new Array(48000).fill(tiny), model: good.model },
      /msg\.payload holds 48000 images; this predict node reads at most 64 images per message \(Max images\)/);
    assert.ok(process.memoryUsage().rss - rss < 200 * MB, `RSS grew ${Math.round((process.memoryUsage().rss - rss) / MB)} MB`);
    // Numbers are not counted: they cost no decoding.
    const digit = new Array(784).fill(0);
    await fails('t-predict', { payload: [...new Array(65).fill(tiny), digit], model: good.model }, /holds 65 images; .* at most 64/);
    assert.equal((await works('t-predict', { payload: [...new Array(64).fill(tiny), digit], model: good.model })).payload.length, 65);
    assert.equal((await works('p100', { payload: new Array(100).fill(tiny), model: good.model })).payload.length, 100);
    await fails('p100', { payload: new Array(101).fill(tiny), model: good.model }, /at most 100 images/);
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

  it('9. a model rebuilt while predict decodes an image waits for the prediction: the answer comes, then the new model', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const sharp = (await import('sharp')).default;
    const png = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#ffffff' } })
      .composite([{ input: Buffer.from('<svg width="2000" height="2000"><text x="600" y="1600" font-size="1600">7</text></svg>') }]).png().toBuffer();
    const order: string[] = [];
    const rebuilt = next(helper.getNode('ready')).then((m) => { order.push('rebuilt'); return m; });
    const answer = works('t-predict', { payload: png, model: good.model }).then((m) => { order.push('predicted'); return m; });
    helper.getNode('mlp').receive({ dataset: good.dataset }); // the model it built last time is in predict's hands
    const [m, fresh] = await Promise.all([answer, rebuilt]);
    assert.match(String(m.payload.label), /^\d$/);
    assert.deepEqual(order, ['predicted', 'rebuilt'], 'mlp-model waited for the prediction');
    assert.notEqual(fresh.model.id, good.model.id);
    // The old model is freed now: using it says so.
    await fails('t-predict', { payload: new Array(784).fill(0.2), model: good.model }, /msg\.model \(model-.*\) is gone: the node that made it ran again/);
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
