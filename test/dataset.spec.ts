import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { gzipSync } from 'zlib';
import { FILES, embeddedFolder, loadDataset, pixelStats, toFloats } from '../src/lib/dataset';
import { parseIdx } from '../src/lib/idx';

const FASHION = '/usr/share/datasets/fashion-mnist';

describe('datasets', () => {
  it('loads the embedded MNIST: 60k train, 10k test, 28x28, labels 0-9', async () => {
    const ds = await loadDataset({ source: 'embedded' });
    assert.equal(ds.name, 'mnist');
    assert.equal(ds.train!.count, 60000);
    assert.equal(ds.test!.count, 10000);
    assert.deepEqual([ds.train!.rows, ds.train!.cols], [28, 28]);
    assert.equal(ds.train!.images.length, 60000 * 784);
    const counts = new Array(10).fill(0);
    for (const l of ds.test!.labels) counts[l]++;
    assert.deepEqual(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    const s = pixelStats(ds.train!);
    assert.equal(s.mean.toFixed(4), '0.1307');
    assert.equal(s.std.toFixed(4), '0.3081');
  });

  it('a limit keeps a reproducible, seeded subset of each split', async () => {
    const a = await loadDataset({ source: 'embedded', limit: 500, shuffle: true, seed: 7 });
    const b = await loadDataset({ source: 'embedded', limit: 500, shuffle: true, seed: 7 });
    const c = await loadDataset({ source: 'embedded', limit: 500, shuffle: true, seed: 8 });
    assert.equal(a.train!.count, 500);
    assert.equal(a.test!.count, 500);
    assert.deepEqual(a.train!.labels, b.train!.labels);
    assert.notDeepEqual(a.train!.labels, c.train!.labels);
    const first = await loadDataset({ source: 'embedded', limit: 3, shuffle: false, splits: 'test' });
    assert.equal(first.train, undefined);
    assert.deepEqual(Array.from(first.test!.labels), [7, 2, 1]);
  });

  it('loads a folder of gzipped idx files', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-gz-'));
    for (const base of [...FILES.train, ...FILES.test]) {
      fs.writeFileSync(path.join(dir, `${base}.gz`), gzipSync(fs.readFileSync(path.join(embeddedFolder(), base))));
    }
    const ds = await loadDataset({ source: 'folder', folder: dir, limit: 100, shuffle: false });
    const ref = await loadDataset({ source: 'embedded', limit: 100, shuffle: false });
    assert.deepEqual(ds.test!.images, ref.test!.images);
    assert.deepEqual(ds.train!.labels, ref.train!.labels);
  });

  (fs.existsSync(FASHION) ? it : it.skip)('loads Fashion-MNIST from Debian\'s dataset-fashion-mnist folder', async () => {
    const classes = 'T-shirt,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot'.split(',');
    const ds = await loadDataset({ source: 'folder', folder: FASHION, classes });
    assert.equal(ds.train!.count, 60000);
    assert.equal(ds.test!.count, 10000);
    assert.equal(ds.classes[9], 'Ankle boot');
    assert.notEqual(pixelStats(ds.train!).mean.toFixed(3), '0.131');
  });

  it('scales bytes to [0,1] and applies the normalization', () => {
    const view = { images: new Uint8Array([0, 255, 51]), labels: new Uint8Array([0]), count: 1, rows: 1, cols: 3, normalization: { mean: 0.1307, std: 0.3081 } };
    const f = toFloats(view);
    assert.equal(f[0].toFixed(4), '-0.4242');
    assert.equal(f[1].toFixed(4), '2.8215');
    assert.deepEqual(Array.from(toFloats({ ...view, normalization: null })).map((v) => v.toFixed(2)), ['0.00', '1.00', '0.20']);
  });

  describe('broken idx files give errors that name the problem', () => {
    const header = (magic: number[], dims: number[]) => Buffer.concat([Buffer.from(magic), ...dims.map((d) => { const b = Buffer.alloc(4); b.writeUInt32BE(d); return b; })]);
    it('wrong magic', () => assert.throws(() => parseIdx(Buffer.from('hello world'), 'x'), /not an IDX file/));
    it('truncated data', () => assert.throws(() => parseIdx(Buffer.concat([header([0, 0, 8, 3], [2, 28, 28]), Buffer.alloc(100)]), 'x'), /truncated or padded.*2x28x28/));
    it('unsupported type', () => assert.throws(() => parseIdx(header([0, 0, 0x0d, 1], [1]), 'x'), /only unsigned bytes/));
    it('gzipped garbage', () => assert.throws(() => parseIdx(Buffer.from([0x1f, 0x8b, 1, 2, 3]), 'x'), /does not decompress/));
    it('a missing folder', () => assert.rejects(loadDataset({ source: 'folder', folder: '/nonexistent/mnist' }), /does not exist/));
    it('a folder without the files', () => assert.rejects(loadDataset({ source: 'folder', folder: os.tmpdir() }), /train-images-idx3-ubyte.*not found/));
    it('images and labels that do not belong together', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-bad-'));
      fs.writeFileSync(path.join(dir, FILES.test[0]), Buffer.concat([header([0, 0, 8, 3], [2, 2, 2]), Buffer.alloc(8)]));
      fs.writeFileSync(path.join(dir, FILES.test[1]), Buffer.concat([header([0, 0, 8, 1], [3]), Buffer.alloc(3)]));
      await assert.rejects(loadDataset({ source: 'folder', folder: dir, splits: 'test' }), /2 images but 3 labels/);
    });
  });
});
