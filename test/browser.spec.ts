import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { Browser, CHROMIUM, openBrowser } from './browser/chromium';
import { NodeRed, ROOT, startNodeRed } from './browser/node-red';

// The editor and the example dashboard in headless Chromium, against Node-RED in a child
// process. `npm test` builds first; the screenshots of each step go to test-output/screenshots.
const SHOTS = path.join(ROOT, 'test-output', 'screenshots');

/** The seven nodes, where each sits on the tutorial tab, and a field its edit dialog must show. */
const NODES = [
  { type: 'mnist-dataset', id: 'ds', field: 'source' },
  { type: 'normalize', id: 'norm', field: 'mean' },
  { type: 'mlp-model', id: 'mlp', field: 'hidden' },
  { type: 'sgd-train', id: 'train', field: 'optimizer' },
  { type: 'evaluate', id: 'eval', field: 'split' },
  { type: 'predict', id: 'predict', field: 'threshold' },
  { type: 'plot', id: 'plot_conf', field: 'kind' },
];

/** Pixels of the loss line's colour (#0095ff) in a screenshot of the chart. */
async function linePixels(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    if (data[i] < 60 && Math.abs(data[i + 1] - 149) < 50 && data[i + 2] > 200) n++;
  }
  return n;
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

  it('shows the seven nodes in the "machine learning" palette with their icons', async () => {
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
    const served = await editor.evaluate(async () => (await fetch('icons/node-red-mnist/mnist.svg')).text());
    assert.equal(served, fs.readFileSync(path.join(ROOT, 'nodes', 'icons', 'mnist.svg'), 'utf8'));
    await category.scrollIntoViewIfNeeded();
    await shot(editor, '01-editor-palette');
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

  it('trains from the dashboard: live loss chart, test accuracy and confusion matrix', async () => {
    dashboard = await browser!.context.newPage();
    await dashboard.setViewportSize({ width: 1400, height: 1200 });
    await dashboard.goto(`${red!.url}dashboard`);
    await dashboard.waitForSelector('#mnist-train', { timeout: 30000 });
    const chart = dashboard.locator('.mnist-loss-chart');
    await chart.waitFor({ state: 'visible' });
    await dashboard.waitForTimeout(500);
    assert.ok(await linePixels(await chart.screenshot()) < 20, 'the loss chart has a line before training');
    await shot(dashboard, '03-dashboard-start');

    await dashboard.fill('#mnist-limit', '2000');
    await dashboard.fill('#mnist-epochs', '1');
    await dashboard.click('#mnist-train');
    await dashboard.waitForFunction(() => /\d+(\.\d)? % of \d+ test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 120000 });
    const accuracy = await dashboard.locator('.mnist-accuracy').innerText();
    const percent = Number(/([\d.]+) %/.exec(accuracy)![1]);
    assert.ok(percent > 50, `test accuracy ${percent} % after one epoch on 2000 samples`);
    await dashboard.waitForFunction(() => {
      const img = document.querySelector('img.mnist-confusion-img') as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth > 100;
    }, null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-status').innerText(), /done: 1 epoch/);
    await dashboard.waitForTimeout(1000); // the chart animates its last points
    const pixels = await linePixels(await chart.screenshot());
    assert.ok(pixels > 100, `the loss chart shows no line (${pixels} pixels of its colour)`);
    await shot(dashboard, '04-dashboard-trained');
  });

  it('predicts a digit drawn on the canvas and shows the 28x28 image the model saw', async () => {
    const canvas = dashboard.locator('#mnist-canvas');
    await canvas.scrollIntoViewIfNeeded();
    const box = (await canvas.boundingBox())!;
    const at = (x: number, y: number): [number, number] => [box.x + x * box.width, box.y + y * box.height];
    // A 7: the top bar, then the stroke down to the left.
    await dashboard.mouse.move(...at(0.25, 0.2));
    await dashboard.mouse.down();
    for (const [x, y] of [[0.5, 0.2], [0.75, 0.2], [0.65, 0.45], [0.55, 0.65], [0.45, 0.85]]) {
      await dashboard.mouse.move(...at(x, y), { steps: 8 });
    }
    await dashboard.mouse.up();
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

  it('predicts an uploaded image', async () => {
    // A dark 1 on a light background, like a photo of a digit on paper.
    const png = await sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="240">'
      + '<rect width="200" height="240" fill="#f2efe6"/>'
      + '<polyline points="70,60 110,30 110,210" fill="none" stroke="#202020" stroke-width="18" stroke-linecap="round" stroke-linejoin="round"/></svg>'))
      .png().toBuffer();
    await dashboard.locator('.mnist-upload input[type=file]').setInputFiles({ name: 'one.png', mimeType: 'image/png', buffer: png });
    await dashboard.locator('.mnist-upload button', { hasText: 'Upload' }).click();
    await dashboard.waitForFunction(() => /uploaded: one\.png/.test(document.querySelector('.mnist-prediction-source')?.textContent || ''), null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-prediction-label').innerText(), /^\d$/);
    const width = await dashboard.locator('img.mnist-preprocessed').evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
    assert.equal(width, 28);
    console.log(`      the uploaded 1 was read as ${await dashboard.locator('.mnist-prediction-label').innerText()}`);
    await shot(dashboard, '06-dashboard-uploaded-image');
  });

  it('shows the confusion matrix in the editor\'s "MNIST plots" sidebar', async () => {
    await editor.bringToFront();
    await editor.evaluate(() => (window as any).RED.sidebar.show('mnist-plots'));
    const picture = editor.locator('[data-plot="dash_plot_conf"] img');
    await picture.waitFor({ state: 'visible', timeout: 30000 });
    const width = await picture.evaluate(async (img: HTMLImageElement) => { await img.decode(); return img.naturalWidth; });
    assert.ok(width > 100, `the sidebar picture is ${width} px wide`);
    assert.equal(await editor.locator('[data-plot="dash_plot_conf"] .mnist-plot-title').innerText(), 'confusion matrix');
    await shot(editor, '07-editor-plots-sidebar');
  });

  it('stops a running training from the dashboard; the model keeps what it learned', async () => {
    await dashboard.bringToFront();
    await dashboard.fill('#mnist-limit', '0');
    await dashboard.fill('#mnist-epochs', '5');
    await dashboard.click('#mnist-train');
    const status = dashboard.locator('.mnist-status');
    await dashboard.waitForFunction(() => /epoch 1\/5 · batch ([2-9]\d|\d{3})\//.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 60000 });
    await dashboard.click('#mnist-train'); // a second Train is refused with a notice
    await dashboard.getByText('Already training').waitFor({ state: 'visible', timeout: 10000 });
    await dashboard.locator('button', { hasText: 'Stop' }).click();
    await dashboard.waitForFunction(() => /stopped: 1 epoch/.test(document.querySelector('.mnist-status')?.textContent || ''), null, { timeout: 30000 });
    await dashboard.waitForFunction(() => / % of 10000 test images/.test(document.querySelector('.mnist-accuracy')?.textContent || ''), null, { timeout: 60000 });
    console.log(`      ${await status.innerText()}; ${await dashboard.locator('.mnist-accuracy').innerText()}`);
    // The stopped model is the one predict uses now (the last prediction came from the upload).
    await dashboard.click('#mnist-predict');
    await dashboard.waitForFunction(() => document.querySelector('.mnist-prediction-source')?.textContent === 'your drawing', null, { timeout: 30000 });
    assert.match(await dashboard.locator('.mnist-prediction-label').innerText(), /^\d$/);
    await shot(dashboard, '08-dashboard-stopped');
  });

  it('logged no errors', () => {
    const errors = red!.log().split('\n').filter((l) => /\[error\]/.test(l));
    assert.deepEqual(errors, []);
  });
});
