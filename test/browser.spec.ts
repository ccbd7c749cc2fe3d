import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { loadSamples } from '../src/lib/samples';
import { digitVideo } from './browser/camera';
import { Browser, CHROMIUM, openBrowser } from './browser/chromium';
import { EXAMPLES, NodeRed, ROOT, startNodeRed } from './browser/node-red';

// The editor (with every example deployed) and the example dashboard in headless Chromium,
// against Node-RED in a child process. `npm test` builds first; the screenshots of each step go
// to test-output/screenshots.
const SHOTS = path.join(ROOT, 'test-output', 'screenshots');

/** Every node of the package, one instance of each in the examples, and a field its edit dialog must show. */
const NODES = [
  { type: 'mnist-dataset', id: 'ds', field: 'source' },
  { type: 'normalize', id: 'norm', field: 'mean' },
  { type: 'mlp-model', id: 'mlp', field: 'hidden' },
  { type: 'sgd-train', id: 'train', field: 'optimizer' },
  { type: 'evaluate', id: 'eval', field: 'split' },
  { type: 'predict', id: 'predict', field: 'threshold' },
  { type: 'plot', id: 'plot_conf', field: 'kind' },
  { type: 'model-save', id: 'h_save', field: 'folder' },
  { type: 'mnist-samples', id: 'dash_samples', field: 'folder' },
  { type: 'cnn-model', id: 'cnn', field: 'filters' },
];

/** A phone photo of a digit: 4032x3024 JPEG of about 3 MB (noisy paper, a dark 7). */
async function phonePhoto(): Promise<Buffer> {
  const [w, h] = [4032, 3024];
  const paper = await sharp({ create: { width: w, height: h, channels: 3, noise: { type: 'gaussian', mean: 215, sigma: 9 } } }).png().toBuffer();
  const seven = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">`
    + '<polyline points="1500,900 2500,900 1900,2300" fill="none" stroke="#1a1a1a" stroke-width="160" stroke-linecap="round" stroke-linejoin="round"/></svg>');
  return sharp(paper).composite([{ input: seven }]).jpeg({ quality: 90 }).toBuffer();
}

/** Draws a 7 on the dashboard's canvas with the mouse: the top bar, then the stroke down to the left. */
async function drawSeven(page: Page): Promise<void> {
  const canvas = page.locator('#mnist-canvas');
  await canvas.scrollIntoViewIfNeeded();
  const box = (await canvas.boundingBox())!;
  const at = (x: number, y: number): [number, number] => [box.x + x * box.width, box.y + y * box.height];
  await page.mouse.move(...at(0.25, 0.2));
  await page.mouse.down();
  for (const [x, y] of [[0.5, 0.2], [0.75, 0.2], [0.65, 0.45], [0.55, 0.65], [0.45, 0.85]]) {
    await page.mouse.move(...at(x, y), { steps: 8 });
  }
  await page.mouse.up();
}

/** The admin API: deploy these flows the way the editor's Deploy menu does. */
async function deploy(red: NodeRed, type: 'full' | 'nodes' | 'reload', edit?: (flows: any[]) => void): Promise<void> {
  const get = await fetch(`${red.url}flows`, { headers: { 'Node-RED-API-Version': 'v2' } });
  const { rev, flows } = await get.json();
  edit?.(flows);
  const res = await fetch(`${red.url}flows`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': type },
    body: JSON.stringify({ rev, flows }),
  });
  assert.equal(res.status, 200, `deploy (${type}): HTTP ${res.status} ${await res.text()}`);
}

/** Pixels of the loss line's colour (#0095ff), or the held-out line's (#ff0000), in a screenshot of a chart. */
async function linePixels(png: Buffer, colour: 'blue' | 'red' = 'blue'): Promise<number> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    if (colour === 'blue' ? data[i] < 60 && Math.abs(data[i + 1] - 149) < 50 && data[i + 2] > 200
      : data[i] > 200 && data[i + 1] < 60 && data[i + 2] < 60) n++;
  }
  return n;
}

/** Picks an item of one of the dashboard's drop-down lists (a Vuetify v-select) by its title. */
async function choose(page: Page, id: string, title: string): Promise<void> {
  await page.locator(`.v-select:has(#${id})`).click();
  await page.locator('.v-overlay--active .v-list-item', { hasText: title }).click();
  await page.waitForFunction(([sel, t]) => document.querySelector(sel)?.textContent?.includes(t), [`.v-select:has(#${id}) .v-select__selection-text`, title] as const);
}

describe('in the browser: editor and dashboard', function () {
  this.timeout(180000);
  let red: NodeRed | undefined;
  let browser: Browser | undefined;
  let editor: Page;
  let dashboard: Page;
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`    skipping the browser tests: ${CHROMIUM} is missing (apt-get install chromium)`);
      this.skip();
    }
    if (!fs.existsSync(path.join(ROOT, 'nodes', 'sgd-train.js'))) throw new Error('nodes/*.js are missing: run `npm run build` first (npm test does)');
    fs.mkdirSync(SHOTS, { recursive: true });
    red = await startNodeRed();
    browser = await openBrowser();
    editor = await browser.context.newPage();
    await editor.goto(red.url);
    await editor.waitForSelector('#red-ui-palette-container-machine_learning', { timeout: 60000 });
    await editor.waitForFunction(() => document.querySelectorAll('#red-ui-workspace-chart .red-ui-flow-node-group').length > 0);
  });

  after(async function () {
    this.timeout(30000);
    await browser?.close();
    await red?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && red) console.log(`--- Node-RED log ---\n${red.log().slice(-4000)}`);
  });

  it('shows every node in the "machine learning" palette with its icon', async () => {
    const types = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))['node-red'].nodes);
    assert.deepEqual(NODES.map((n) => n.type).sort(), types.sort(), 'this test knows every node of package.json');
    const category = editor.locator('#red-ui-palette-container-machine_learning');
    await assert.doesNotReject(category.waitFor({ state: 'visible' }));
    for (const { type } of NODES) {
      const entry = category.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
      assert.equal(await entry.count(), 1, `${type} is not in the "machine learning" category`);
      const icon = await entry.evaluate(async (el) => {
        const fa = el.querySelector('i.red-ui-palette-icon-fa');
        if (fa) return { kind: 'font-awesome', glyph: getComputedStyle(fa, '::before').content, classes: fa.className, url: '' };
        const div = el.querySelector('.red-ui-palette-icon') as HTMLElement | null;
        const url = div ? (getComputedStyle(div).backgroundImage.match(/url\("?(.*?)"?\)/) || [])[1] : '';
        if (!url) return { kind: 'none', glyph: '', classes: '', url: '' };
        const img = new Image();
        img.src = url;
        await img.decode();
        return { kind: 'image', glyph: '', classes: '', url, width: img.naturalWidth };
      });
      if (icon.kind === 'font-awesome') {
        // Node-RED only makes an <i> for a glyph font-awesome knows; otherwise it falls back to arrow-in.svg.
        assert.ok(icon.glyph && icon.glyph !== 'none' && icon.glyph !== '""', `${type}: font-awesome icon ${icon.classes} has no glyph`);
      } else {
        assert.equal(icon.kind, 'image', `${type} has no icon`);
        assert.doesNotMatch(icon.url, /node-red\/(arrow-in|node)\.svg/, `${type} shows the default icon: ${icon.url}`);
        assert.ok((icon as { width?: number }).width! > 0, `${type}: icon ${icon.url} did not load`);
      }
    }
    // mnist-dataset's own SVG is served from nodes/icons (not Node-RED's fallback icon).
    const served = await editor.evaluate(async () => (await fetch('icons/@node-red-mnist/nodes/mnist.svg')).text());
    assert.equal(served, fs.readFileSync(path.join(ROOT, 'nodes', 'icons', 'mnist.svg'), 'utf8'));
    await category.scrollIntoViewIfNeeded();
    await shot(editor, '01-editor-palette');
  });

  it('lays every example out inside a 1280x800 editor: every node fully in view, none over another', async () => {
    const page = await browser!.context.newPage();
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(red!.url);
    await page.waitForSelector('#red-ui-palette-container-machine_learning', { timeout: 60000 });
    const tabs = EXAMPLES.map((f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')).find((n: any) => n.type === 'tab'));
    assert.equal(tabs.length, EXAMPLES.length);
    for (const tab of tabs) {
      await page.evaluate((id) => (window as any).RED.workspaces.show(id), tab.id);
      await page.waitForFunction((id) => (window as any).RED.workspaces.active() === id
        && document.querySelectorAll('#red-ui-workspace-chart g.red-ui-flow-node-group').length > 0, tab.id);
      await page.waitForTimeout(300);
      // The boxes the editor drew: a node with its ports, an inject's button, a debug node's toggle.
      const { view, boxes } = await page.evaluate((id) => {
        const chart = document.getElementById('red-ui-workspace-chart')!;
        const c = chart.getBoundingClientRect();
        const all: Array<{ id: string; l: number; r: number; t: number; b: number }> = [];
        (window as any).RED.nodes.eachNode((n: any) => {
          if (n.z !== id) return;
          const g = document.querySelector(`#red-ui-workspace-chart g.red-ui-flow-node-group[id="${n.id}"]`);
          const b = g ? g.getBoundingClientRect() : { left: NaN, right: NaN, top: NaN, bottom: NaN };
          all.push({ id: n.id, l: b.left, r: b.right, t: b.top, b: b.bottom });
        });
        return { view: { l: c.left, t: c.top, r: c.left + chart.clientWidth, b: c.top + chart.clientHeight }, boxes: all };
      }, tab.id);
      await page.screenshot({ path: path.join(SHOTS, `00-layout-${tab.label.replace(/\W+/g, '-')}.png`) });
      const count = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', EXAMPLES[tabs.indexOf(tab)]), 'utf8')).filter((n: any) => n.z === tab.id).length;
      assert.equal(boxes.length, count, `${tab.label}: every node is drawn`);
      const outside = boxes.filter((b) => !(b.l >= view.l && b.t >= view.t && b.r <= view.r && b.b <= view.b)).map((b) => b.id);
      assert.deepEqual(outside, [], `${tab.label}: nodes not fully inside the ${view.r - view.l}x${view.b - view.t} workspace`);
      const over: string[] = [];
      for (const a of boxes) for (const b of boxes) if (a.id < b.id && a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b) over.push(`${a.id}/${b.id}`);
      assert.deepEqual(over, [], `${tab.label}: nodes over each other`);
    }
    await page.close();
  });

  it('loads the dashboard example with every node valid', async () => {
    const invalid = await editor.evaluate(() => {
      const RED = (window as any).RED;
      const bad: string[] = [];
      const check = (n: any) => { if (String(n.id).startsWith('dash_') && n.valid === false) bad.push(`${n.type} ${n.id}`); };
      RED.nodes.eachNode(check);
      RED.nodes.eachConfig(check);
      return bad;
    });
    assert.deepEqual(invalid, [], 'nodes of "MNIST dashboard" the editor marks as invalid');
    // The whole dashboard flow: sidebar hidden, zoomed out.
    const act = (name: string) => editor.evaluate((a) => (window as any).RED.actions.invoke(a), name);
    await editor.evaluate(() => (window as any).RED.workspaces.show('mnist_tab_dashboard'));
    await act('core:toggle-sidebar');
    for (let i = 0; i < 3; i++) { await act('core:zoom-out'); await editor.waitForTimeout(250); }
    await shot(editor, '02-editor-dashboard-flow');
    await act('core:zoom-reset');
    await act('core:toggle-sidebar');
  });

  it('opens the edit dialog of each node with its form', async () => {
    await editor.evaluate(() => (window as any).RED.workspaces.show('mnist_tab_tutorial'));
    for (const { type, id, field } of NODES) {
      await editor.evaluate((nodeId) => (window as any).RED.view.reveal(nodeId), id);
      await editor.locator(`#red-ui-workspace-chart g[id="${id}"] rect.red-ui-flow-node`).dblclick();
      const tray = editor.locator('.red-ui-tray');
      await tray.locator(`#node-input-${field}`).waitFor({ state: 'visible', timeout: 10000 });
      assert.ok(await tray.locator('#node-input-name').isVisible(), `${type}: the dialog has no Name field`);
      await editor.waitForTimeout(300); // the tray slides in
      await shot(editor, `02-edit-${type}`);
      await editor.locator('#node-dialog-cancel').click();
      await tray.waitFor({ state: 'detached', timeout: 10000 });
    }
  });

  it('Train pressed twice on the tutorial tab, and again while it trains: one result, and a notice for each extra press', async () => {
    await editor.evaluate(() => {
      const w = window as any;
      w.mnistDebug = [];
      w.RED.comms.subscribe('debug', (_topic: string, m: any) => w.mnistDebug.push({ id: m.id, level: m.level, msg: String(m.msg) }));
      w.RED.workspaces.show('mnist_tab_tutorial');
    });
    const statusOf = (id: string) => editor.locator(`#red-ui-workspace-chart g[id="${id}"] .red-ui-flow-node-status-label`);
    const button = editor.locator('#red-ui-workspace-chart g[id="inj_train"] .red-ui-flow-node-button');
    await button.click();
    await editor.waitForTimeout(400);
    await button.click();
    // Once sgd-train runs, mnist-dataset has long finished: only the guard on the data can refuse.
    await editor.waitForFunction(() => /epoch/.test(document.querySelector('#red-ui-workspace-chart g[id="train"] .red-ui-flow-node-status-label')?.textContent || ''), null, { timeout: 120000 });
    await button.click();
    // The progress debug node's status: epoch, batch and a rounded loss, not a raw float.
    await editor.waitForFunction(() => /\/118 ·/.test(document.querySelector('#red-ui-workspace-chart g[id="dbg_progress"] .red-ui-flow-node-status-label')?.textContent || ''), null, { timeout: 60000 });
    assert.match(await statusOf('dbg_progress').textContent() ?? '', /^epoch [1-3] · \d+\/118 · loss \d+\.\d{3}$/);
    await editor.waitForFunction(() => (window as any).mnistDebug.some((m: any) => m.id === 'dbg_acc'), null, { timeout: 180000 });
    // The plots and the 10,000 predictions after it, then nothing more arrives.
    await editor.waitForFunction(() => document.querySelector('#red-ui-workspace-chart g[id="predict"] .red-ui-flow-node-status-label')?.textContent?.includes('10000'), null, { timeout: 60000 });
    await editor.waitForTimeout(1000);
    const seen = await editor.evaluate(() => (window as any).mnistDebug as Array<{ id: string; level?: number; msg: string }>);
    const results = seen.filter((m) => m.id === 'dbg_acc');
    assert.equal(results.length, 1, `one test accuracy: ${JSON.stringify(seen)}`);
    assert.ok(Number(results[0].msg) > 0.7, `test accuracy ${results[0].msg}`);
    // The second press is refused by mnist-dataset (still loading the first, or its data still on
    // the way to the training) or by normalize (its data in training); the third by normalize.
    const busy = seen.filter((m) => /still busy with the previous message|has not reached the node that works on it yet/.test(m.msg));
    const read = seen.filter((m) => /the data this node made last time is still being read by node train/.test(m.msg));
    assert.equal(busy.length + read.length, 2, `a notice for each extra press: ${JSON.stringify(seen)}`);
    assert.ok(read.length >= 1, 'the press during training is refused by normalize');
    assert.match(await statusOf('dbg_progress').textContent() ?? '', /^epoch 3 done · loss \d+\.\d{3}$/);
    console.log(`      test accuracy ${results[0].msg}; notices: ${[...busy, ...read].map((m) => m.msg.slice(0, 60)).join(' | ')}`);
    await shot(editor, '02-tutorial-pressed-three-times');
  });

  it('trains from the dashboard: live loss chart, held-out accuracy chart, test accuracy and confusion matrix', async () => {
    dashboard = await browser!.context.newPage();
    await dashboard.setViewportSize({ width: 1400, height: 1200 });
    await dashboard.goto(`${red!.url}dashboard`);
    await dashboard.waitForSelector('#mnist-train', { timeout: 30000 });
    const chart = dashboard.locator('.mnist-loss-chart');
    await chart.waitFor({ state: 'visible' });
    await dashboard.waitForTimeout(500);
    assert.ok(await linePixels(await chart.screenshot()) < 20, 'the loss chart has a line before training');
    const heldOut = dashboard.locator('.mnist-accuracy-chart');
    assert.ok(await linePixels(await heldOut.screenshot(), 'red') < 20, 'the held-out accuracy chart has a line before training');
    await shot(dashboard, '03-dashboard-start');

    // The defaults: the tutorial's MLP, 10 % of the training images held out.
    assert.match(await dashboard.locator('.v-select:has(#mnist-model) .v-select__selection-text').innerText(), /^MLP 784-256-64-10/);
    assert.match(await dashboard.locator('.v-select:has(#mnist-validation) .v-select__selection-text').innerText(), /^10 % of the training images/);
    await dashboard.fill('#mnist-limit', '2000');
    await dashboard.fill('#mnist-epochs', '2');
    await dashboard.click('#mnist-train');
    await dashboard.waitForFunction(() => /\d+(\.\d)? % of \d+ test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 120000 });
    const accuracy = await dashboard.locator('.mnist-accuracy').innerText();
    const percent = Number(/([\d.]+) %/.exec(accuracy)![1]);
    assert.ok(percent > 50, `test accuracy ${percent} % after one epoch on 2000 samples`);
    // The confusion matrix: 10x10 cells whose counts add up to the test images.
    await dashboard.waitForFunction(() => document.querySelectorAll('td.mnist-cell').length === 100, null, { timeout: 30000 });
    const cells = await dashboard.locator('td.mnist-cell').allInnerTexts();
    assert.equal(cells.reduce((s, n) => s + Number(n), 0), 2000);
    assert.match(await dashboard.locator('.mnist-status').innerText(), /done: 2 epochs in [\d.]+ s · loss [\d.]+ · held-out [\d.]+ % · MLP on /);
    await dashboard.waitForTimeout(1000); // the chart animates its last points
    const pixels = await linePixels(await chart.screenshot());
    assert.ok(pixels > 100, `the loss chart shows no line (${pixels} pixels of its colour)`);
    // Two epochs, two held-out points joined by a line; and the held-out loss on the loss chart.
    const accuracyPixels = await linePixels(await heldOut.screenshot(), 'red');
    assert.ok(accuracyPixels > 100, `the held-out accuracy chart shows no line (${accuracyPixels} pixels of its colour)`);
    const lossChart = await chart.screenshot();
    const heldOutLoss = await linePixels(lossChart, 'red');
    assert.ok(heldOutLoss > 30, `the loss chart shows no held-out loss (${heldOutLoss} pixels of its colour)`);
    // Its left third (the first epoch's batches, before any held-out point) has the training line only, in blue.
    const { width, height } = await sharp(lossChart).metadata();
    const left = await sharp(lossChart).extract({ left: 0, top: 0, width: Math.round(width! / 3), height: height! }).png().toBuffer();
    assert.deepEqual([await linePixels(left, 'blue') > 30, await linePixels(left, 'red')], [true, 0], 'the training loss is the blue line');
    await shot(dashboard, '04-dashboard-trained');
  });

  it('trains the CNN when the page asks for it, and predicts with it; early stopping ends a training that stops improving', async () => {
    await choose(dashboard, 'mnist-model', 'CNN, 2 conv layers');
    await dashboard.fill('#mnist-limit', '2000');
    await dashboard.fill('#mnist-epochs', '1');
    await dashboard.click('#mnist-train');
    await dashboard.waitForFunction(() => /done: 1 epoch .* · CNN on /.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 180000 });
    await dashboard.waitForFunction(() => / % of 2000 test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 60000 });
    const percent = Number(/([\d.]+) %/.exec(await dashboard.locator('.mnist-accuracy').innerText())![1]);
    console.log(`      CNN, 1 epoch on 1800 images: ${percent} % of 2000 test images; ${await dashboard.locator('.mnist-status').innerText()}`);
    assert.ok(percent > 50, `CNN test accuracy ${percent} %`);
    // In the editor: cnn-model built it, mlp-model did not run.
    await editor.evaluate(() => (window as any).RED.workspaces.show('mnist_tab_dashboard'));
    await editor.waitForFunction(() => /param/.test(document.querySelector('#red-ui-workspace-chart g[id="dash_cnn"] .red-ui-flow-node-status-label')?.textContent || ''), null, { timeout: 30000 });
    await drawSeven(dashboard);
    await dashboard.click('#mnist-predict');
    await dashboard.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'your drawing', null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-prediction-label').innerText(), /^\d$/);
    await shot(dashboard, '04b-dashboard-cnn');

    // Early stopping: 40 epochs of 180 images overfit them long before the end.
    await choose(dashboard, 'mnist-model', 'MLP 784-256-64-10');
    await dashboard.locator('#mnist-early').check();
    await dashboard.fill('#mnist-limit', '200');
    await dashboard.fill('#mnist-epochs', '40');
    await dashboard.fill('#mnist-lr', '0.01');
    await dashboard.click('#mnist-train');
    await dashboard.waitForFunction(() => /stopped early: epoch \d+ was the best/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 120000 });
    console.log(`      ${await dashboard.locator('.mnist-status').innerText()}`);
    await dashboard.locator('#mnist-early').uncheck();
    await dashboard.fill('#mnist-lr', '0.001');
  });

  it('predicts a digit drawn on the canvas and shows the 28x28 image the model saw', async () => {
    await drawSeven(dashboard);
    await dashboard.click('#mnist-predict');
    const label = dashboard.locator('.mnist-prediction-label');
    await label.waitFor({ state: 'visible', timeout: 30000 });
    assert.match(await label.innerText(), /^\d$/);
    assert.equal(await dashboard.locator('.mnist-bar-row').count(), 10);
    const seen = await dashboard.locator('img.mnist-preprocessed').evaluate(async (img: HTMLImageElement) => {
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    });
    assert.deepEqual(seen, [28, 28]);
    assert.match(await dashboard.locator('.mnist-prediction-source').innerText(), /drawing/);
    console.log(`      the drawn 7 was read as ${await label.innerText()} (${await dashboard.locator('.mnist-prediction-confidence').innerText()})`);
    await shot(dashboard, '05-dashboard-drawn-digit');
  });

  it('predicts a 3 MB phone photo (sent at most 1024 px on a side), and says when a file is no image', async () => {
    const photo = await phonePhoto();
    assert.ok(photo.length > 2.5e6, `the photo has ${photo.length} bytes`);
    await dashboard.locator('input.mnist-upload-input').setInputFiles({ name: 'phone.jpg', mimeType: 'image/jpeg', buffer: photo });
    await dashboard.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'uploaded: phone.jpg', null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-prediction-label').innerText(), /^\d$/);
    const width = await dashboard.locator('img.mnist-preprocessed').evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
    assert.equal(width, 28);
    console.log(`      the photographed 7 was read as ${await dashboard.locator('.mnist-prediction-label').innerText()}`);
    await shot(dashboard, '06-dashboard-phone-photo');
    await dashboard.locator('input.mnist-upload-input').setInputFiles({ name: 'notes.txt', mimeType: 'image/jpeg', buffer: Buffer.from('not a picture') });
    const note = dashboard.locator('.mnist-upload-note');
    await note.waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await note.innerText(), 'This browser cannot read notes.txt as an image: use a JPEG, PNG or WebP photo.');
  });

  it('a click on a cell of the confusion matrix shows the test images of that pair', async () => {
    // The most frequent mistake: the biggest count off the diagonal.
    const cells = await dashboard.locator('td.mnist-cell').evaluateAll((tds) => tds.map((td) => ({
      t: Number(td.getAttribute('data-true')), p: Number(td.getAttribute('data-predicted')), n: Number(td.textContent),
    })));
    const worst = cells.filter((c) => c.t !== c.p).sort((a, b) => b.n - a.n)[0];
    assert.ok(worst.n > 0, 'the model made mistakes to look at');
    await dashboard.locator(`td.mnist-cell[data-true="${worst.t}"][data-predicted="${worst.p}"]`).click();
    const picture = dashboard.locator('img.mnist-cell-img');
    await picture.waitFor({ state: 'visible', timeout: 60000 });
    const width = await picture.evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
    assert.ok(width > 100, `the picture is ${width} px wide`);
    assert.equal(await dashboard.locator('.mnist-cell-caption').innerText(), `${worst.n} test images of ${worst.t} read as ${worst.p}`);
    console.log(`      ${worst.n} test images of ${worst.t} read as ${worst.p}`);
    await dashboard.locator('.mnist-cell-view').scrollIntoViewIfNeeded();
    await shot(dashboard, '06b-dashboard-confusion-cell');
  });

  it('shows the confusion matrix and the pictures of a cell in the editor\'s "MNIST plots" sidebar', async () => {
    await editor.bringToFront();
    await editor.evaluate(() => (window as any).RED.sidebar.show('mnist-plots'));
    for (const [id, title] of [['plot_conf', 'confusion matrix'], ['dash_plot_conf', 'mistakes of a cell']]) {
      const picture = editor.locator(`[data-plot="${id}"] img`);
      await picture.waitFor({ state: 'visible', timeout: 30000 });
      const width = await picture.evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
      assert.ok(width > 100, `the sidebar picture of ${id} is ${width} px wide`);
      assert.equal(await editor.locator(`[data-plot="${id}"] .mnist-plot-title`).innerText(), title);
    }
    await shot(editor, '07-editor-plots-sidebar');
  });

  it('stops a running training from the dashboard; the model keeps what it learned', async () => {
    await dashboard.bringToFront();
    await dashboard.fill('#mnist-limit', '0');
    await dashboard.fill('#mnist-epochs', '30');
    await dashboard.click('#mnist-train');
    const status = dashboard.locator('.mnist-status');
    await dashboard.waitForFunction(() => /epoch 1\/30 · batch ([2-9]\d|\d{3})\/\d+ · loss/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 60000 });
    await dashboard.click('#mnist-train'); // a second Train is refused with a notice
    await dashboard.getByText('Already training').waitFor({ state: 'visible', timeout: 10000 });
    await dashboard.click('#mnist-stop');
    await dashboard.waitForFunction(() => /stopped: (epoch [12]\/30 · batch \d+\/\d+|[12] epochs?) in/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 30000 });
    await dashboard.waitForFunction(() => / % of 10000 test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 60000 });
    console.log(`      ${await status.innerText()}; ${await dashboard.locator('.mnist-accuracy').innerText()}`);
    // The stopped model is the one predict uses now (the last prediction came from the upload).
    await dashboard.click('#mnist-predict');
    await dashboard.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'your drawing', null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-prediction-label').innerText(), /^\d$/);
    await shot(dashboard, '08-dashboard-stopped');
  });

  it('a deploy in the middle of a training ends it, the page says so, and Train works again', async () => {
    const status = () => dashboard.locator('.mnist-status').innerText();
    const trainingRuns = async () => {
      await dashboard.fill('#mnist-limit', '0');
      // Long enough that the deploy comes while it runs (the native engine does an epoch in ~2 s).
      await dashboard.fill('#mnist-epochs', '30');
      await dashboard.click('#mnist-train');
      // A progress line ("… batch 85/422 · loss 0.31"): the previous test's last line, "stopped: epoch
      // 1/30 · batch 85/422 in …", must not pass for it (the deploy then came before this training started).
      await dashboard.waitForFunction(() => /epoch 1\/30 · batch \d+\/\d+ · loss/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 60000 });
    };
    // Modified nodes only (sgd-train): the rest of the flow sees its status cleared mid-run.
    await trainingRuns();
    await deploy(red!, 'nodes', (flows) => { flows.find((n) => n.id === 'dash_train').seed = 1; });
    await dashboard.waitForFunction(() => /Training interrupted: the flows were deployed again/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 30000 })
      .catch(async (e) => {
        // What the gate believes is at work, and what the page says, for the report.
        const gate = await (await fetch(`${red!.url}context/node/dash_gate`)).text();
        throw new Error(`${e.message}\nstatus: ${await status()}\ngate context: ${gate}`);
      });
    await shot(dashboard, '09-dashboard-interrupted');
    // Restart Flows and a full deploy: every node starts afresh and the page is reset.
    for (const type of ['reload', 'full'] as const) {
      await trainingRuns();
      await deploy(red!, type);
      await dashboard.waitForFunction(() => /Ready: choose the settings and press Train/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 30000 });
      assert.equal(await dashboard.locator('.mnist-accuracy').innerText().then((t) => t.replace('Test accuracy', '').trim()), '', `${type}: no accuracy of a freed model`);
      assert.equal(await dashboard.locator('td.mnist-cell').count(), 0, `${type}: no confusion matrix of a freed model`);
    }
    await drawSeven(dashboard); // the page was rebuilt by the full deploy: an empty canvas
    await dashboard.click('#mnist-predict');
    await dashboard.getByText('No trained model yet: press Train and wait for it to finish.').waitFor({ state: 'visible', timeout: 10000 });
    await dashboard.click('#mnist-stop');
    await dashboard.getByText('Nothing to stop: no training is running.').waitFor({ state: 'visible', timeout: 10000 });
    await dashboard.fill('#mnist-limit', '2000');
    await dashboard.fill('#mnist-epochs', '1');
    await dashboard.click('#mnist-train');
    await dashboard.waitForFunction(() => /done: 1 epoch/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 60000 });
    await dashboard.waitForFunction(() => / % of 2000 test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 30000 });
    await dashboard.waitForFunction(() => document.querySelectorAll('td.mnist-cell').length === 100, null, { timeout: 30000 });
    await dashboard.click('#mnist-predict');
    await dashboard.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'your drawing', null, { timeout: 30000 });
    console.log(`      ${await status()}`);
    await shot(dashboard, '10-dashboard-after-deploys');
  });

  it('says why the camera does not start: no camera in this browser', async () => {
    await dashboard.locator('#mnist-camera-start').click();
    const note = dashboard.locator('.mnist-camera-note');
    await note.waitFor({ state: 'visible', timeout: 30000 });
    // Headless Chromium without a fake device has no camera, or refuses the permission outright.
    assert.match(await note.innerText(), /^(No camera found on this device\.|Camera permission was refused: allow the camera for this page in the browser)/);
  });

  describe('with a camera (Chromium\'s fake camera films a 7 on unevenly lit paper)', () => {
    let cameraBrowser: Browser | undefined;
    let page: Page;
    const video = path.join(ROOT, 'test-output', 'digit-7.y4m');

    before(async () => {
      await digitVideo(video);
      cameraBrowser = await openBrowser({ args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
        `--use-file-for-fake-video-capture=${video}`, '--host-resolver-rules=MAP mnist.test 127.0.0.1'] });
      page = await cameraBrowser.context.newPage();
      await page.setViewportSize({ width: 1400, height: 1400 });
    });

    after(async function () {
      this.timeout(30000);
      await cameraBrowser?.close();
    });

    it('a page that is not a secure origin says the camera needs https or localhost', async () => {
      await page.goto(`${red!.url.replace('127.0.0.1', 'mnist.test')}dashboard`);
      await page.locator('#mnist-camera-start').click();
      assert.match(await page.locator('.mnist-camera-note').innerText(), /^The camera needs a secure page: open the dashboard over https, or as http:\/\/localhost:1880\/dashboard/);
    });

    it('Snapshot reads the 7 the camera films inside the square; Live predicts frame after frame', async () => {
      await page.goto(`${red!.url}dashboard`);
      // A model trained on all of MNIST for one epoch.
      await page.fill('#mnist-limit', '0');
      await page.fill('#mnist-epochs', '1');
      await page.click('#mnist-train');
      await page.waitForFunction(() => /done: 1 epoch/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 180000 });
      await page.locator('#mnist-camera-start').click();
      await page.waitForFunction(() => (document.querySelector('.mnist-camera-video') as HTMLVideoElement | null)?.videoWidth === 640, null, { timeout: 30000 });
      await page.click('#mnist-snapshot');
      await page.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'camera', null, { timeout: 30000 });
      const label = await page.locator('.mnist-prediction-label').innerText();
      const sure = await page.locator('.mnist-prediction-confidence').innerText();
      console.log(`      the filmed 7 was read as ${label} (${sure})`);
      await page.locator('.mnist-camera').scrollIntoViewIfNeeded();
      await shot(page, '11-dashboard-camera-snapshot');
      assert.equal(label, '7');
      const width = await page.locator('img.mnist-preprocessed').evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
      assert.equal(width, 28);
      await page.click('#mnist-live');
      await page.waitForFunction(() => Number(/^(\d+) frames predicted/.exec(document.querySelector('.mnist-camera-count')?.textContent || '')?.[1]) >= 6, null, { timeout: 60000 });
      await page.click('#mnist-live');
      const count = await page.locator('.mnist-camera-count').innerText();
      console.log(`      live: ${count}`);
      assert.equal(await page.locator('.mnist-prediction-label').innerText(), '7');
      await page.click('#mnist-camera-off');
      await page.locator('#mnist-camera-start').waitFor({ state: 'visible', timeout: 10000 });
    });

    it('"Wrong? It is a …" keeps the picture as a sample on disk; after a restart of Node-RED the next Train learns from it', async () => {
      const folder = path.join(red!.userDir, 'mnist-samples');
      assert.equal(loadSamples(folder).length, 0);
      await page.locator('.mnist-teach-digit[data-label="7"]').click();
      const note = page.locator('.mnist-teach-note');
      await note.waitFor({ state: 'visible', timeout: 30000 });
      assert.equal(await note.innerText(), 'Kept as a 7: 1 sample of your handwriting, on disk. The next Train learns from them.');
      assert.equal(await page.locator('.mnist-prediction-source').innerText(), 'camera', 'the prediction stays on the page');
      await page.locator('.mnist-teach').scrollIntoViewIfNeeded();
      await shot(page, '12-dashboard-taught');
      assert.deepEqual(loadSamples(folder).map((x) => x.label), [7]);
      // Node-RED stopped (SIGTERM, as a service manager or a reboot does) and started again: the
      // open page reconnects by itself and is reset; the sample is still on disk.
      await red!.restart();
      await page.waitForFunction(() => /Ready: choose the settings and press Train/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 60000 });
      assert.deepEqual(loadSamples(folder).map((x) => x.label), [7]);
      await editor.reload();
      await editor.waitForFunction(() => document.querySelectorAll('#red-ui-workspace-chart .red-ui-flow-node-group').length > 0, null, { timeout: 60000 });
      await page.fill('#mnist-limit', '2000');
      await page.fill('#mnist-epochs', '1');
      await page.click('#mnist-train');
      await page.waitForFunction(() => /done: 1 epoch/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 120000 });
      // mnist-dataset's status in the editor: 2000 MNIST images and the sample 10 times.
      await editor.evaluate(() => (window as any).RED.workspaces.show('mnist_tab_dashboard'));
      await editor.waitForFunction(() => /train/.test(document.querySelector('#red-ui-workspace-chart g[id="dash_ds"] .red-ui-flow-node-status-label')?.textContent || ''), null, { timeout: 30000 });
      assert.equal(await editor.locator('#red-ui-workspace-chart g[id="dash_ds"] .red-ui-flow-node-status-label').textContent(), '2010 train · 2000 test');
    });
  });

  // Nested suites run after the tests of this one: this check comes last.
  describe('at the end', () => {
    it('logged no errors', () => {
      const errors = red!.log().split('\n').filter((l) => /\[error\]/.test(l));
      assert.deepEqual(errors, []);
    });
  });
});
