import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { loadModel, saveModel } from '../src/lib/persist';
import { createMlp } from '../src/lib/model';
import { backend, helper, NODES, tensors } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ALL = [...NODES, require('@node-red/nodes/core/common/25-catch.js')];

/** Saves the way plain TensorFlow.js code does: model.json + a weights shard, no metadata.json. */
async function savePlain(model: tf.LayersModel, folder: string, shard = 'group1-shard1of1.bin'): Promise<void> {
  fs.mkdirSync(folder, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (a) => {
    fs.writeFileSync(path.join(folder, 'model.json'), JSON.stringify({
      modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy,
      weightsManifest: [{ paths: [shard], weights: a.weightSpecs }],
    }));
    fs.writeFileSync(path.join(folder, shard), Buffer.from(tf.io.CompositeArrayBuffer.join(a.weightData!)));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

function plainModel(inputs: number, softmax = true): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.dense({ units: 16, inputShape: [inputs], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.dense({ units: 10, activation: softmax ? 'softmax' : 'linear', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  return m;
}

const digitPng = () => sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="140"><rect width="120" height="140" fill="#fff"/>' +
  '<path d="M20 20 L 100 20 L 50 125" stroke="#000" stroke-width="12" fill="none"/></svg>')).png().toBuffer();

describe('saving and loading models', function () {
  let dir: string;
  before(async () => { await backend(); });
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-persist-')); });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('save -> load round-trips weights, classes and normalization, and frees what it loads', async () => {
    const base = tensors();
    const model = createMlp({ inputSize: 784, hidden: [32], activation: 'relu', classes: 10, seed: 7 });
    const meta = { classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], inputShape: [28, 28] as [number, number], normalization: { mean: 0.1307, std: 0.3081 } };
    await saveModel({ model, meta }, dir);
    const loaded = await loadModel(dir);
    assert.equal(loaded.assumed, false);
    assert.deepEqual(loaded.meta.classes, meta.classes);
    assert.deepEqual(loaded.meta.normalization, meta.normalization);
    const x = tf.randomUniform([5, 784], 0, 1, 'float32', 3);
    const a = model.predict(x) as tf.Tensor, b = loaded.model.predict(x) as tf.Tensor;
    assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    model.dispose();
    loaded.model.dispose();
    assert.equal(tensors(), base);
  });

  it('model-save writes into a folder under the user directory; predict loads it from there, and reloads after a new save', async () => {
    helper.settings({ userDir: dir });
    await helper.load(ALL, [
      { id: 'mlp', type: 'mlp-model', hidden: '32', seed: 1, wires: [['save']] },
      { id: 'mlp2', type: 'mlp-model', hidden: '8', seed: 2, wires: [['save']] },
      { id: 'save', type: 'model-save', folder: 'models/digits', wires: [['saved']] },
      { id: 'saved', type: 'helper' },
      { id: 'pf', type: 'predict', modelFolder: 'models/digits', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ]);
    const saved = () => new Promise<any>((r) => helper.getNode('saved').once('input', r));
    const out = () => new Promise<any>((r) => helper.getNode('out').once('input', r));
    let s = saved();
    helper.getNode('mlp').receive({ payload: true });
    const m = await s;
    assert.equal(m.payload.folder, path.join(dir, 'models', 'digits'));
    assert.deepEqual(m.payload.files, ['model.json', 'weights.bin', 'metadata.json']);
    assert.ok(fs.existsSync(path.join(dir, 'models', 'digits', 'weights.bin')));
    const img = await digitPng();
    let o = out();
    helper.getNode('pf').receive({ payload: img });
    const first = (await o).payload;

    s = saved();
    helper.getNode('mlp2').receive({ payload: true });
    await s;
    o = out();
    helper.getNode('pf').receive({ payload: img });
    const second = (await o).payload;
    assert.notDeepEqual(second.probabilities, first.probabilities, 'the new save was picked up');
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'models', 'digits', 'metadata.json'), 'utf8'));
    assert.deepEqual(meta.architecture.hidden, [8]);
    assert.equal(meta.seed, 2);
  });

  describe('predict with "model from folder"', () => {
    const results = new Map<number, (r: { msg: any; error?: string }) => void>();
    let tag = 0;
    async function flow(folder: string) {
      await helper.load(ALL, [
        { id: 'pf', type: 'predict', modelFolder: folder, wires: [['out']] },
        { id: 'out', type: 'helper' },
        { id: 'catcher', type: 'catch', wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ]);
      helper.getNode('out').on('input', (m: any) => results.get(m.tag)?.({ msg: m }));
      helper.getNode('caught').on('input', (m: any) => results.get(m.tag)?.({ msg: m, error: m.error.message }));
    }
    const ask = (payload: unknown) => new Promise<{ msg: any; error?: string }>((resolve) => {
      results.set(++tag, resolve);
      helper.getNode('pf').receive({ payload, tag });
    });

    it('loads a model saved by plain tfjs (no metadata.json): digits 0-9, no normalization, softmax not applied twice', async () => {
      const model = plainModel(784);
      await savePlain(model, dir);
      await flow(dir);
      const pixels = Array.from({ length: 784 }, (_, i) => (i % 29) / 28);
      const r = await ask(pixels);
      assert.equal(r.error, undefined, r.error);
      const expected = tf.tidy(() => Array.from((model.predict(tf.tensor2d(pixels, [1, 784])) as tf.Tensor).dataSync()));
      r.msg.payload.probabilities.forEach((p: number, i: number) => assert.ok(Math.abs(p - expected[i]) < 1e-6, `p[${i}] ${p} vs ${expected[i]}`));
      assert.deepEqual(r.msg.payload.topK.map((t: any) => t.className), r.msg.payload.topK.map((t: any) => String(t.label)));
      model.dispose();
    });

    it('a plain model taking 28x28x1 images (e.g. a CNN) gets its input in that shape', async () => {
      const m = tf.sequential();
      m.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
      m.add(tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
      await savePlain(m, dir);
      m.dispose();
      await flow(dir);
      const r = await ask(await digitPng());
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.msg.payload.probabilities.length, 10);
    });

    it('says which input shape a saved model takes when it does not fit 784 / 28x28', async () => {
      const model = plainModel(100);
      await savePlain(model, dir);
      model.dispose();
      const base = tensors();
      await flow(dir);
      const r = await ask(await digitPng());
      assert.match(r.error!, /the saved model takes \[null,100\] inputs; predict needs a model taking 784 \(28x28\) values/);
      assert.equal(tensors(), base, 'the unfitting model was freed');
    });

    it('a broken model.json, a missing weights file, a weights path outside the folder and a missing folder give clear errors', async () => {
      await flow(dir);
      const img = await digitPng();
      let r = await ask(img);
      assert.match(r.error!, /no saved model in .*: model\.json not found; save one there with a model-save node/);

      fs.writeFileSync(path.join(dir, 'model.json'), '{ "modelTopology": { broken');
      r = await ask(img);
      assert.match(r.error!, /model\.json is broken: it is not valid JSON/);

      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ hello: 1 }));
      r = await ask(img);
      assert.match(r.error!, /is broken: modelTopology is missing or wrong, so it is not a TensorFlow\.js layers model/);

      const model = plainModel(784);
      await savePlain(model, dir, 'w.bin');
      model.dispose();
      fs.unlinkSync(path.join(dir, 'w.bin'));
      r = await ask(img);
      assert.match(r.error!, /the weights file .*w\.bin named in model\.json cannot be read \(ENOENT\)/);

      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      json.weightsManifest[0].paths = ['../../etc/passwd'];
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      r = await ask(img);
      assert.match(r.error!, /points to weights outside its folder/);

      json.weightsManifest[0].paths = ['w.bin'];
      json.modelTopology.config.layers[0].class_name = 'NoSuchLayer';
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.alloc(4));
      r = await ask(img);
      assert.match(r.error!, /is broken: TensorFlow\.js cannot build the model from it/);
    });

    it('metadata.json with classes that do not match the outputs is refused', async () => {
      const model = plainModel(784);
      await savePlain(model, dir);
      model.dispose();
      fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ classes: ['cat', 'dog'] }));
      await flow(dir);
      const r = await ask(await digitPng());
      assert.match(r.error!, /names 2 classes but the model has 10 outputs/);
    });

    it('without msg.model and without a folder, says what to do', async () => {
      await helper.load(ALL, [
        { id: 'pf', type: 'predict', wires: [[]] },
        { id: 'catcher', type: 'catch', wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ]);
      const got = new Promise<any>((r) => helper.getNode('caught').once('input', r));
      helper.getNode('pf').receive({ payload: await digitPng() });
      assert.match((await got).error.message, /msg\.model is missing: wire an mlp-model \(and sgd-train\) node before this one, or set "model from folder" on this predict node/);
    });
  });

  it('model-save needs a folder and a model', async () => {
    await helper.load(ALL, [
      { id: 'nofolder', type: 'model-save', folder: '  ', wires: [[]] },
      { id: 'save', type: 'model-save', folder: dir, wires: [[]] },
      { id: 'catcher', type: 'catch', wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ]);
    const errors: string[] = [];
    const two = new Promise<void>((r) => helper.getNode('caught').on('input', (m: any) => { errors.push(m.error.message); if (errors.length === 2) r(); }));
    helper.getNode('nofolder').receive({ payload: 1 });
    helper.getNode('save').receive({ payload: 1 });
    await two;
    assert.ok(errors.some((e) => /no folder is set/.test(e)), errors.join('\n'));
    assert.ok(errors.some((e) => /msg\.model is not a model handle/.test(e)), errors.join('\n'));
  });
});
