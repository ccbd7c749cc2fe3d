import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import {
  backend, fails, file, flow, helper, idx, next, NODES, protoModel, protoSplit, ready, scratch, tensors, works, writeSet,
} from './helpers';

import { cacheKey } from '../src/lib/dataset';
// Bad input of every kind, sent to every node: each must give a clear error that a Catch node
// receives, turn the node's status red, leave Node-RED working for the next good message, and
// free every tensor when the flow is unloaded.

const tmp = scratch();

describe('robustness: malformed input to every node', function () {
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
  });

  it('normalize, mlp-model, evaluate and plot refuse missing, wrong-typed and forged msg.dataset', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const classes = good.dataset.classes;
    const forged = [
      [undefined, /msg\.dataset is missing/],
      ['mnist', /msg\.dataset is missing/],
      [42, /msg\.dataset is missing/],
      [{ classes: 'abc' }, /msg\.dataset is missing/],
      [JSON.parse('{"__proto__": {"classes": ["0","1"]}, "train": {"id":"x","kind":"split"}}'), /msg\.dataset is missing/],
      [{ classes, train: { id: 5, kind: 'split' } }, /msg\.dataset\.train is not a split handle/],
      [{ classes, train: { id: { toString: 'x' }, kind: 'split' } }, /msg\.dataset\.train is not a split handle/],
      [{ classes, train: protoSplit() }, /msg\.dataset\.train is not a split handle/],
      [{ classes, train: { constructor: { prototype: {} } } }, /msg\.dataset\.train is not a split handle/],
      [{ classes, train: good.model }, /msg\.dataset\.train is not a split handle/],
      [{ classes, train: { id: good.model.id, kind: 'split' } }, /msg\.dataset\.train \(model-.*\) is gone/],
      [{ classes, train: { id: '__proto__', kind: 'split' } }, /is gone.*re-run the mnist-dataset/],
      [{ classes, train: { id: 'constructor', kind: 'split', count: 1e9, shape: [1e5, 1e5] } }, /is gone/],
    ] as const;
    for (const [dataset, text] of forged) {
      await fails('t-norm', { dataset }, text);
      await fails('t-eval', { dataset: dataset && typeof dataset === 'object' && 'train' in dataset ? { ...dataset, test: dataset.train } : dataset, model: good.model }, text.source.includes('train') ? new RegExp(text.source.replace('train', 'test')) : text);
      if (dataset !== undefined) await fails('t-mlp', { dataset }, text);
    }
    await fails('t-norm', { dataset: { classes } }, /neither a train nor a test split/);
    await fails('t-mlp', { dataset: { classes: ['only'] } }, /2 to 256 classes/);
    await fails('t-mlp', { dataset: { classes: Array.from({ length: 300 }, String) } }, /2 to 256 classes/);
    await fails('t-eval', { dataset: { classes, train: good.dataset.train } , model: good.model }, /msg\.dataset\.test is missing/);
    await fails('t-plot', {}, /msg\.dataset is missing/);
    await fails('t-plot', { plot: 'evil' }, /msg\.plot "evil" is invalid/);
    await fails('t-plot', { plot: '__proto__' }, /msg\.plot "__proto__" is invalid/);
    await fails('t-plot', { plot: 'loss', history: 'nope' }, /msg\.history is missing/);
    await fails('t-plot', { plot: 'confusion', metrics: { confusion: 'x' } }, /msg\.metrics is missing/);
    await fails('t-plot', { plot: 'predictions', dataset: good.dataset, model: protoModel() }, /msg\.model is not a model handle/);

    // Still working: the good message goes through every node.
    assert.equal((await works('t-norm', { dataset: good.dataset })).dataset.train.count, 300);
    assert.equal((await works('t-mlp', { dataset: good.dataset })).model.inputSize, 784);
    assert.equal((await works('t-mlp', {})).model.classes.length, 10);
    assert.ok((await works('t-eval', { dataset: good.dataset, model: good.model })).payload.accuracy >= 0);
    assert.ok(Buffer.isBuffer((await works('t-plot', { dataset: good.dataset })).payload));
  });

  it('sgd-train, evaluate and predict refuse missing, wrong-typed and forged msg.model', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const models = [
      [undefined, /msg\.model is not a model handle; wire an mlp-model node/],
      ['model-1', /msg\.model is not a model handle/],
      [{ id: 42, kind: 'model' }, /msg\.model is not a model handle/],
      [{ id: { id: 'x' }, kind: 'model' }, /msg\.model is not a model handle/],
      [protoModel(), /msg\.model is not a model handle/],
      [{ constructor: { prototype: {} } }, /msg\.model is not a model handle/],
      [good.dataset.train, /msg\.model is not a model handle/],
      [{ id: good.dataset.train.id, kind: 'model' }, /msg\.model \(split-.*\) is gone/],
      [{ id: 'constructor', kind: 'model' }, /msg\.model \(constructor\) is gone/],
      [{ id: '__proto__', kind: 'model' }, /msg\.model \(__proto__\) is gone/],
    ] as const;
    for (const [model, text] of models) {
      await fails('t-train', { dataset: good.dataset, model }, text);
      await fails('t-eval', { dataset: good.dataset, model }, text);
      await fails('t-predict', { payload: new Array(784).fill(0), model: model ?? 'x' }, text.source.startsWith('msg\\.model is not') || model === undefined ? /msg\.model is not a model handle/ : text);
    }
    await fails('t-train', { model: good.model }, /msg\.dataset is missing/);
    await fails('t-train', { dataset: { ...good.dataset, train: undefined }, model: good.model }, /msg\.dataset\.train is missing/);
    const trained = await works('t-train', { dataset: good.dataset, model: good.model });
    assert.equal(trained.history.epochs.length, 1);
    assert.ok((await works('t-eval', { dataset: good.dataset, model: good.model })).payload.accuracy >= 0);
  });

  it('sgd-train refuses invalid settings from its config and msg.train, and ignores prototype tricks', async () => {
    await helper.load(NODES, flow([
      { id: 'bad-epochs', type: 'sgd-train', epochs: 'abc', wires: [['out'], []] },
      { id: 'bad-batch', type: 'sgd-train', batchSize: '0', wires: [['out'], []] },
      { id: 'bad-opt', type: 'sgd-train', optimizer: 'rmsprop', wires: [['out'], []] },
    ]));
    const good = await ready();
    const msg = (train?: unknown) => ({ dataset: good.dataset, model: good.model, train });
    await fails('bad-epochs', msg(), /epochs "abc" is invalid: use a whole number from 1 to 1000/);
    await fails('bad-batch', msg(), /batchSize "0" is invalid: use a whole number from 1 to 65536/);
    await fails('bad-opt', msg(), /optimizer "rmsprop" is invalid: use one of sgd, adam/);
    await fails('t-train', msg('fast'), /msg\.train must be an object/);
    await fails('t-train', msg([1, 2]), /msg\.train must be an object/);
    await fails('t-train', msg({ epochs: 'abc' }), /epochs "abc" is invalid/);
    await fails('t-train', msg({ epochs: 2.5 }), /epochs 2\.5 is invalid/);
    await fails('t-train', msg({ batchSize: 0 }), /batchSize 0 is invalid/);
    await fails('t-train', msg({ learningRate: -1 }), /learningRate -1 is invalid: use a number above 0/);
    await fails('t-train', msg({ learningRate: 'Infinity' }), /learningRate "Infinity" is invalid/);
    await fails('t-train', msg({ momentum: 1 }), /momentum 1 is invalid/);
    await fails('t-train', msg({ loss: { toString: 'mse' } }), /loss .* is invalid: use one of mse, crossentropy/);
    // An own "__proto__" key (what JSON.parse makes of one) must not smuggle options in.
    const t = await works('t-train', msg(JSON.parse('{"__proto__": {"epochs": 1000}, "batchSize": 150}')));
    assert.equal(t.history.epochs.length, 1);
    assert.equal(t.history.batchesPerEpoch, 2);
  });

  it('a handle from before a redeploy gives a clear "gone" error, and the fresh one works', async () => {
    await helper.load(NODES, flow());
    const old = await ready();
    await helper.unload();
    assert.equal(tensors(), base);
    await helper.load(NODES, flow());
    await fails('t-train', { dataset: old.dataset, model: old.model }, /msg\.dataset\.train \(split-.*\) is gone: the node that made it ran again, was redeployed or closed; re-run the mnist-dataset/);
    const fresh = await ready();
    await fails('t-train', { dataset: fresh.dataset, model: old.model }, /msg\.model \(model-.*\) is gone.*re-run the mlp-model node/);
    await fails('t-eval', { dataset: old.dataset, model: fresh.model }, /msg\.dataset\.test \(split-.*\) is gone/);
    await fails('t-predict', { payload: new Array(784).fill(0), model: old.model }, /msg\.model \(model-.*\) is gone/);
    await fails('t-mlp', { dataset: old.dataset }, /is gone/);
    // A node running again frees what it made before: the first run's handles die too.
    const again = await ready();
    await fails('t-train', { dataset: fresh.dataset, model: again.model }, /msg\.dataset\.train \(split-.*\) is gone/);
    assert.equal((await works('t-train', { dataset: again.dataset, model: again.model })).history.epochs.length, 1);
  });

  it('a model and a dataset that do not fit each other (classes, image size) are refused with a fix', async () => {
    const three = writeSet('three-classes', { classes: 3 });
    const small = writeSet('small-images', { rows: 14, cols: 14, gz: true });
    await helper.load(NODES, flow([
      { id: 'ds3', type: 'mnist-dataset', source: 'folder', folder: three, classes: 'a,b,c', wires: [['ready3']] },
      { id: 'ready3', type: 'helper' },
      { id: 'ds14', type: 'mnist-dataset', source: 'folder', folder: small, wires: [['ready14']] },
      { id: 'ready14', type: 'helper' },
    ]));
    const good = await ready();
    const load = async (id: string) => { const got = next(helper.getNode(`ready${id.slice(2)}`)); helper.getNode(id).receive({}); return got; };
    const d3 = await load('ds3');
    const d14 = await load('ds14');
    assert.deepEqual(d3.payload.classes, ['a', 'b', 'c']);
    assert.deepEqual(d14.payload.imageShape, [14, 14]);
    await fails('t-train', { dataset: d3.dataset, model: good.model }, /the model has 10 outputs but the dataset has 3 classes; build the model from this dataset/);
    await fails('t-eval', { dataset: d3.dataset, model: good.model }, /the model has 10 outputs but the dataset has 3 classes/);
    await fails('t-train', { dataset: d14.dataset, model: good.model }, /the model takes 784 inputs but the images have 14x14 = 196 pixels/);
    await fails('t-eval', { dataset: d14.dataset, model: good.model }, /the model takes 784 inputs but the images have 14x14 = 196 pixels/);
    // A model built from the 14x14 set fits it, and refuses 784-number inputs in predict.
    const m14 = await works('t-mlp', { dataset: d14.dataset });
    assert.equal(m14.model.inputSize, 196);
    assert.equal((await works('t-train', { dataset: d14.dataset, model: m14.model })).history.epochs.length, 1);
    await fails('t-predict', { payload: new Array(784).fill(0), model: m14.model }, /784 numbers; one image needs 196/);
    assert.equal((await works('t-predict', { payload: new Array(196).fill(0.5), model: m14.model })).payload.probabilities.length, 10);
    await fails('t-train', { dataset: good.dataset, model: m14.model }, /the model takes 196 inputs but the images have 28x28 = 784 pixels/);
  });

  it('predict refuses bad number arrays (NaN, Infinity, empty, wrong lengths, strings, huge)', async () => {
    await helper.load(NODES, flow());
    const good = await ready();
    const model = good.model;
    const img = (v: number) => new Array(784).fill(0).map((_, i) => (i === 400 ? v : 0));
    await fails('t-predict', { payload: img(NaN), model }, /msg\.payload\[400\] is NaN; pixel values must be finite numbers/);
    await fails('t-predict', { payload: img(Infinity), model }, /msg\.payload\[400\] is Infinity/);
    await fails('t-predict', { payload: [img(0), img(-Infinity)], model }, /msg\.payload\[1\]\[400\] is -Infinity/);
    await fails('t-predict', { payload: Array.from({ length: 28 }, (_, r) => new Array(28).fill(r === 3 ? 'x' : 0)), model }, /msg\.payload\[3\]\[0\] is "x"; pixel values must be finite numbers/);
    await fails('t-predict', { payload: [], model }, /msg\.payload is an empty array/);
    await fails('t-predict', { payload: [1, 2, 3], model }, /msg\.payload has 3 numbers; one image needs 784/);
    await fails('t-predict', { payload: new Array(783).fill(0), model }, /has 783 numbers; one image needs 784/);
    await fails('t-predict', { payload: [img(0), [1, 2]], model }, /msg\.payload\[1\] is not an image of 784 numbers/);
    await fails('t-predict', { payload: [img(0), null], model }, /msg\.payload\[1\] is null/);
    await fails('t-predict', { payload: new Array(2_000_000).fill(0), model }, /msg\.payload has 2000000 numbers; one image needs 784/);
    await fails('t-predict', { payload: Array.from({ length: 100001 }, () => []), model }, /holds 100001 images; send at most 100000/);
    await fails('t-predict', { payload: 'not an image', model }, /msg\.payload/);
    await fails('t-predict', { payload: { constructor: { prototype: {} } }, model }, /msg\.payload must be an image/);
    await fails('t-predict', { payload: protoSplit(), model }, /msg\.payload/);
    const one = await works('t-predict', { payload: img(255), model });
    assert.equal(one.payload.probabilities.length, 10);
    const batch = await works('t-predict', { payload: Array.from({ length: 1000 }, () => img(1)), model });
    assert.equal(batch.payload.length, 1000);
  });

  it('mnist-dataset refuses corrupt idx files, a missing folder and invalid settings, naming the file', async () => {
    const dirs = {
      truncated: writeSet('truncated', {}, (d) => {
        const f = file(d, 'train-images-idx3-ubyte');
        fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 5000));
      }),
      magic: writeSet('magic', {}, (d) => {
        const f = file(d, 'train-images-idx3-ubyte');
        const b = fs.readFileSync(f); b[0] = 0x50; b[1] = 0x4b; fs.writeFileSync(f, b);
      }),
      mismatch: writeSet('mismatch', {}, (d) => fs.writeFileSync(file(d, 'train-labels-idx1-ubyte'), idx([59], new Uint8Array(59)))),
      garbage: writeSet('garbage', { gz: true }, (d) => {
        const f = file(d, 't10k-images-idx3-ubyte.gz');
        const b = fs.readFileSync(f); b.fill(0x55, 10, b.length - 8); fs.writeFileSync(f, b);
      }),
      label: writeSet('label', { classes: 10 }),
      header: writeSet('header', {}, (d) => fs.writeFileSync(file(d, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 8, 3, 0, 0]))),
      bytes: writeSet('bytes', {}, (d) => fs.writeFileSync(file(d, 'train-images-idx3-ubyte'), Buffer.from([0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]))),
      empty: writeSet('empty', {}, (d) => fs.writeFileSync(file(d, 'train-images-idx3-ubyte'), idx([60, 0, 28], new Uint8Array(0)))),
      missingFile: writeSet('missing-file', {}, (d) => fs.rmSync(file(d, 't10k-labels-idx1-ubyte'))),
    };
    const dsNode = (id: string, cfg: Record<string, unknown>) => ({ id, type: 'mnist-dataset', source: 'folder', ...cfg, wires: [['out']] });
    await helper.load(NODES, flow([
      ...Object.entries(dirs).map(([k, folder]) => dsNode(`ds-${k}`, { folder, classes: k === 'label' ? 'a,b,c' : '' })),
      dsNode('ds-nowhere', { folder: path.join(tmp, 'does-not-exist') }),
      dsNode('ds-nofolder', { folder: '' }),
      dsNode('ds-limit', { source: 'embedded', limit: '-5' }),
      dsNode('ds-seed', { source: 'embedded', seed: 'x' }),
      dsNode('ds-classes', { source: 'embedded', classes: 'digit' }),
      dsNode('ds-source', { source: 'ftp' }),
      dsNode('ds-url', { source: 'url', url: 'file:///etc/passwd' }),
      dsNode('ds-good', { folder: dirs.label }),
    ]));
    await fails('ds-truncated', {}, /train-images-idx3-ubyte is truncated or padded: header says 60x28x28 = 47040 bytes of data, file has 4984/);
    await fails('ds-magic', {}, /train-images-idx3-ubyte is not an IDX file \(wrong magic number\)/);
    await fails('ds-mismatch', {}, /train split has 60 images but 59 labels; the idx files do not belong together/);
    await fails('ds-garbage', {}, /t10k-images-idx3-ubyte\.gz looks gzipped but does not decompress .*download it again/);
    await fails('ds-label', {}, /train-labels-idx1-ubyte has label 3 at 3, but only 3 classes are configured/);
    await fails('ds-header', {}, /train-images-idx3-ubyte has a broken IDX header/);
    await fails('ds-bytes', {}, /holds IDX data type 0xd; only unsigned bytes/);
    await fails('ds-empty', {}, /train-images-idx3-ubyte holds no pixels \(60x0x28\)/);
    await fails('ds-missingFile', {}, /t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte\.gz\) not found in .*missing-file/);
    await fails('ds-nowhere', {}, /dataset folder .*does-not-exist does not exist/);
    await fails('ds-nofolder', {}, /no dataset folder configured/);
    await fails('ds-limit', {}, /limit "-5" is invalid/);
    await fails('ds-good', { limit: -1 }, /limit -1 is invalid: use a whole number/);
    await fails('ds-good', { limit: 'lots' }, /limit "lots" is invalid/);
    await fails('ds-seed', {}, /seed "x" is invalid/);
    await fails('ds-classes', {}, /the dataset has 1 classes; a model needs 2 to 256 classes/);
    await fails('ds-source', {}, /source "ftp" is invalid/);
    await fails('ds-url', {}, /URL base "file:\/\/\/etc\/passwd" is invalid: use an http:\/\/ or https:\/\/ address/);
    // The good folder (labels 0-9 with 10 classes) still loads after all that.
    assert.equal((await works('ds-good', { limit: 10 })).payload.train.count, 10);
  });

  it('mnist-dataset takes msg.folder / msg.url only when "allow msg.folder / msg.url" is ticked', async () => {
    const other = writeSet('other', { rows: 7, cols: 7, classes: 2 });
    await helper.load(NODES, flow([
      { id: 'ds-closed', type: 'mnist-dataset', limit: 10, wires: [['out']] },
      { id: 'ds-open', type: 'mnist-dataset', limit: 10, allowMsgPath: true, wires: [['out']] },
    ]));
    await fails('ds-closed', { folder: other }, /msg\.folder was refused: this node does not take paths from messages; tick "allow msg\.folder \/ msg\.url"/);
    await fails('ds-closed', { url: 'http://127.0.0.1:9/' }, /msg\.url was refused: this node does not take paths from messages/);
    await fails('ds-closed', { folder: '' }, /msg\.folder was refused/);
    assert.equal((await works('ds-closed', {})).payload.name, 'mnist');
    await fails('ds-open', { folder: 42 }, /msg\.folder must be a non-empty string/);
    await fails('ds-open', { folder: ' ' }, /msg\.folder must be a non-empty string/);
    await fails('ds-open', { folder: other, url: 'http://127.0.0.1:9/' }, /msg\.folder and msg\.url were both set/);
    await fails('ds-open', { folder: path.join(tmp, 'nope') }, /dataset folder .*nope does not exist/);
    await fails('ds-open', { url: 'javascript:alert(1)' }, /URL base "javascript:alert\(1\)" is invalid/);
    const m = await works('ds-open', { folder: other });
    assert.deepEqual(m.payload.imageShape, [7, 7]);
    assert.equal((await works('ds-open', {})).payload.name, 'mnist');
  });

  it('a diverging training (lr 10 with sgd/mse) stops with a clear error and puts the weights back', async () => {
    await helper.load(NODES, flow([
      { id: 'wild', type: 'sgd-train', learningRate: '10', epochs: '3', batchSize: '50', wires: [['out'], []] },
    ]));
    const good = await ready();
    const before = await works('t-predict', { payload: new Array(784).fill(0.3), model: good.model });
    const text = await fails('wild', { dataset: good.dataset, model: good.model }, /training diverged: .* of epoch (\d); the model's weights were put back as they were before epoch \1\. Use a smaller learning rate \(now 10, e\.g\. 1\)/);
    const epoch = Number(/of epoch (\d)/.exec(text)![1]);
    const after = await works('t-predict', { payload: new Array(784).fill(0.3), model: good.model });
    assert.ok(after.payload.probabilities.every(Number.isFinite), 'no NaN model');
    if (epoch === 1) assert.deepEqual(after.payload.probabilities, before.payload.probabilities, 'the model is as it was before training');
    // Training again with a sane learning rate works on the same model.
    const t = await works('t-train', { dataset: good.dataset, model: good.model });
    assert.ok(Number.isFinite(t.payload.loss));
    const m = await works('t-eval', { dataset: good.dataset, model: good.model });
    assert.ok(Number.isFinite(m.payload.loss) && m.payload.accuracy >= 0);
  });

  it('a diverging Adam training (huge learning rate) is stopped the same way', async () => {
    await helper.load(NODES, flow([
      { id: 'wild', type: 'sgd-train', optimizer: 'adam', loss: 'mse', learningRate: '100', epochs: '5', batchSize: '30', wires: [['out'], []] },
    ]));
    const good = await ready();
    await fails('wild', { dataset: good.dataset, model: good.model }, /training diverged: .*weights were put back .*Use a smaller learning rate \(now 100, e\.g\. 10\)/);
    const p = await works('t-predict', { payload: new Array(784).fill(0.3), model: good.model });
    assert.ok(p.payload.probabilities.every(Number.isFinite));
  });
});

describe('robustness: stop and redeploy in the middle of work', function () {
  let base = 0;
  before(async () => {
    await backend();
    helper._settings.userDir = tmp; // the download cache goes under the user directory
  });
  after(() => { delete helper._settings.userDir; });
  beforeEach(() => { base = tensors(); });
  afterEach(async () => { await helper.unload(); });

  /** Serves gzipped idx files; `drip` sends the big images file a few bytes at a time. */
  function server(dir: string, drip: boolean) {
    const requests: Array<{ url: string; aborted: boolean; finished: boolean }> = [];
    let sentSome: () => void = () => undefined;
    const started = new Promise<void>((r) => { sentSome = r; });
    const srv = http.createServer((req, res) => {
      const rec = { url: req.url || '', aborted: false, finished: false };
      requests.push(rec);
      const f = path.join(dir, path.basename(req.url || ''));
      if (!rec.url.startsWith('/mnist/') || !fs.existsSync(f)) { res.statusCode = 404; res.end(); return; }
      const body = fs.readFileSync(f);
      res.on('close', () => { rec.aborted = !res.writableFinished; });
      res.setHeader('content-length', body.length);
      if (!drip || !/train-images/.test(req.url || '')) { res.end(body, () => { rec.finished = true; }); return; }
      let at = 0;
      const timer = setInterval(() => {
        if (res.destroyed) { clearInterval(timer); return; }
        res.write(body.subarray(at, at + 64));
        at += 64;
        if (at > 1024) sentSome();
        if (at >= body.length) { clearInterval(timer); res.end(); }
      }, 20);
      res.on('close', () => clearInterval(timer));
    });
    return new Promise<{ url: string; requests: typeof requests; started: Promise<void>; close: () => Promise<void> }>((resolve) => {
      srv.listen(0, '127.0.0.1', () => resolve({
        url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/mnist/`,
        requests,
        started,
        close: () => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }),
      }));
    });
  }

  // Only this test's servers' cache folders: other specs share the user directory's cache.
  function cacheFiles(...urls: string[]): string[] {
    const dirs = urls.map((u) => path.join(tmp, '.mnist-cache', cacheKey(u))).filter((d) => fs.existsSync(d));
    return dirs.flatMap((d) => fs.readdirSync(d).filter((f) => f.includes('ubyte')));
  }

  it('a redeploy during a URL download aborts it, leaves no half-written cache file, and the next run works', async () => {
    const files = writeSet('served', { count: 2000, gz: true });
    const slow = await server(files, true);
    const fast = await server(files, false);
    try {
      const dsFlow = (url: string) => [
        { id: 'ds', type: 'mnist-dataset', source: 'url', url, wires: [['out']] },
        { id: 'out', type: 'helper' },
        { id: 'catcher', type: 'catch', wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ];
      await helper.load(NODES, dsFlow(slow.url));
      const sent: any[] = [];
      helper.getNode('out').on('input', (m: any) => sent.push(m));
      helper.getNode('ds').receive({});
      await slow.started;
      await helper.unload();
      await new Promise((r) => setTimeout(r, 100)); // the server sees the socket close
      const download = slow.requests.find((r) => r.url.includes('train-images'))!;
      assert.ok(download.aborted, 'the download was aborted');
      assert.equal(sent.length, 0, 'nothing sent after close');
      assert.deepEqual(cacheFiles(slow.url).filter((f) => /train-images|\.part$/.test(f)), [], 'no half-written or cached images file');
      assert.equal(tensors(), base);

      await helper.load(NODES, dsFlow(fast.url));
      const m = await works('ds', { });
      assert.equal(m.payload.train.count, 2000);
      assert.equal(cacheFiles(fast.url).length, 4);
      assert.ok(cacheFiles(fast.url).every((f) => f.endsWith('.gz')));
      // Served from the cache now: no new requests.
      const n = fast.requests.length;
      await works('ds', {});
      assert.equal(fast.requests.length, n);
      // A server answering 404 gives an error naming the file and the status.
      await helper.unload();
      await helper.load(NODES, dsFlow(fast.url.replace('/mnist/', '/elsewhere/')));
      await fails('ds', {}, /could not download http:\/\/127\.0\.0\.1:\d+\/elsewhere\/train-images-idx3-ubyte\.gz: HTTP 404/);
    } finally {
      await slow.close();
      await fast.close();
    }
  });

  it('a redeploy during a big folder load ends it; the next load works', async () => {
    await helper.load(NODES, flow([], { limit: 0 }));
    const sent: any[] = [];
    helper.getNode('ready').on('input', (m: any) => sent.push(m));
    helper.getNode('ds').receive({});
    await new Promise((r) => setImmediate(r));
    await helper.unload();
    assert.equal(sent.length, 0);
    assert.equal(tensors(), base);
    await helper.load(NODES, flow());
    assert.equal((await ready()).dataset.train.count, 300);
  });

  it('a redeploy during a 10k batch prediction and a 10k evaluation ends them and frees every tensor', async () => {
    await helper.load(NODES, flow([], { limit: 10000, splits: 'test' }));
    const good = await ready();
    assert.equal(good.dataset.test.count, 10000);
    const sent: any[] = [];
    helper.getNode('out').on('input', (m: any) => sent.push(m));
    helper.getNode('t-predict').receive({ payload: good.dataset.test, model: good.model });
    helper.getNode('t-eval').receive({ dataset: good.dataset, model: good.model });
    helper.getNode('t-predict').receive({ payload: Array.from({ length: 10000 }, () => new Array(784).fill(0.5)), model: good.model });
    await helper.unload();
    assert.equal(tensors(), base);
    await helper.load(NODES, flow([], { limit: 10000, splits: 'test' }));
    const again = await ready();
    const p = await works('t-predict', { payload: again.dataset.test, model: again.model });
    assert.equal(p.payload.length, 10000);
  });

  it('mlp-model running again during an evaluation waits for it: the evaluation ends with its result, then the new model comes', async () => {
    await helper.load(NODES, flow([], { limit: 10000, splits: 'test' }));
    const good = await ready();
    const evaluate = helper.getNode('t-eval');
    const order: string[] = [];
    const rebuilt = next(helper.getNode('ready')).then((m) => { order.push('rebuilt'); return m; });
    // Once the first chunk is under way, the model's maker runs again.
    evaluate.on('call:status', (c: any) => { if (/^evaluating/.test(c.args[0]?.text)) helper.getNode('mlp').receive({ dataset: good.dataset }); });
    const result = works('t-eval', { dataset: good.dataset, model: good.model }).then((m) => { order.push('evaluated'); return m; });
    const [m] = await Promise.all([result, rebuilt]);
    assert.equal(m.payload.count, 10000);
    assert.deepEqual(order, ['evaluated', 'rebuilt']);
  });
});
