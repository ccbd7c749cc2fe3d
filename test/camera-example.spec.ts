import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { backend, helper, withCoreNodes } from './helpers';
import { textSvg } from './own-images';

// The camera example (issue 13): frames from any node reach predict at a bounded rate, the newest
// one winning; nothing queues up however fast the frames come.
describe('the camera frames example runs as shipped', function () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-camera-example-'));
  const { nodes, http } = withCoreNodes();
  before(async () => {
    await backend();
    const { createMlp } = await import('../src/lib/model');
    const { saveModel } = await import('../src/lib/persist');
    const model = createMlp({ inputSize: 784, hidden: [16], activation: 'relu', classes: 10, seed: 3 });
    await saveModel({ model, meta: { classes: '0123456789'.split(''), inputShape: [28, 28], normalization: { mean: 0.1307, std: 0.3081 } } }, path.join(dir, 'mnist-cnn'));
    model.dispose();
    helper.settings({ userDir: dir, fileWorkingDirectory: dir });
  });
  afterEach(async () => { await helper.unload(); });
  after(() => { helper.settings({}); fs.rmSync(dir, { recursive: true, force: true }); });

  it('answers every POSTed frame at once, reads at most 2 a second (the newest), and serves the latest answer', async () => {
    const flow = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'examples', 'camera frames into predict.json'), 'utf8'));
    await helper.load(nodes, flow);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const request = require('supertest');
    let res = await request(http()).get('/mnist/frame/latest');
    assert.deepEqual(res.body, { label: null });
    const read: number[] = [];
    helper.getNode('cam_predict').on('input', (m: any) => read.push(m.received));
    // A 640x480 JPEG frame of a digit on grey paper, 30 times as fast as HTTP allows.
    const frame = await sharp(textSvg(7, 'DejaVu Sans')).resize(480, 480).flatten({ background: '#b0b0b0' })
      .extend({ left: 80, right: 80, background: '#b0b0b0' }).jpeg({ quality: 80 }).toBuffer();
    const started = Date.now();
    let last = 0;
    for (let i = 0; i < 30; i++) {
      res = await request(http()).post('/mnist/frame').set('Content-Type', 'image/jpeg').send(frame);
      assert.equal(res.status, 202);
      last = Date.now();
    }
    await new Promise((r) => setTimeout(r, 1200)); // one more release of the latest frame
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(read.length >= 1, 'frames were read');
    assert.ok(read.length <= Math.ceil(elapsed * 2) + 1, `${read.length} frames read in ${elapsed.toFixed(1)} s: at most 2 a second`);
    assert.ok(read.length < 30, 'frames that arrived while one waited were replaced, not queued');
    await new Promise((r) => setTimeout(r, 300));
    res = await request(http()).get('/mnist/frame/latest');
    assert.equal(typeof res.body.label, 'number');
    assert.ok(res.body.received >= last - 1000 && res.body.received <= last, 'the answer is for one of the newest frames');
    assert.ok(res.body.answered >= res.body.received);
  });
});
