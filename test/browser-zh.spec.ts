import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { Page } from 'playwright-core';
import { Browser, CHROMIUM, openBrowser } from './browser/chromium';
import { NodeRed, ROOT, startNodeRed } from './browser/node-red';
import { catalogLookup } from './editor';

// A Chinese user: Node-RED's runtime in zh-CN (settings.lang) and the editor in a browser whose
// language is zh-CN. Palette, edit dialog, help and the statuses the nodes set at run time must all
// be the texts of locales/zh-CN. Screenshots go to test-output/screenshots/zh-*.png.
const SHOTS = path.join(ROOT, 'test-output', 'screenshots');
const TYPES = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))['node-red'].nodes);
const LIMIT = 300;

const FLOW = [
  { id: 'zh_tab', type: 'tab', label: 'MNIST' },
  { id: 'zh_inject', type: 'inject', z: 'zh_tab', name: '', props: [{ p: 'payload' }], payload: '', payloadType: 'date', repeat: '', crontab: '', once: false, onceDelay: 0.1, topic: '', x: 110, y: 80, wires: [['zh_ds']] },
  { id: 'zh_ds', type: 'mnist-dataset', z: 'zh_tab', name: '', source: 'embedded', folder: '', url: '', splits: 'both', limit: LIMIT, shuffle: true, seed: 0, classes: '', allowMsgPath: false, x: 290, y: 80, wires: [['zh_norm']] },
  { id: 'zh_norm', type: 'normalize', z: 'zh_tab', name: '', mean: 0.1307, std: 0.3081, fromData: false, x: 470, y: 80, wires: [['zh_mlp']] },
  { id: 'zh_mlp', type: 'mlp-model', z: 'zh_tab', name: '', hidden: '256,64', activation: 'relu', seed: 0, x: 650, y: 80, wires: [[]] },
];

/** Visible text of an HTML fragment, with whitespace collapsed. */
const text = (html: string) => html.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim();

describe('in the browser, in Chinese: palette, edit dialog, help and statuses', function () {
  this.timeout(180000);
  let red: NodeRed | undefined;
  let browser: Browser | undefined;
  let editor: Page;
  const zh = (type: string) => catalogLookup('zh-CN', type);
  const shot = (name: string) => editor.screenshot({ path: path.join(SHOTS, `${name}.png`) });

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`    skipping the browser tests: ${CHROMIUM} is missing (apt-get install chromium)`);
      this.skip();
    }
    if (!fs.existsSync(path.join(ROOT, 'nodes', 'locales', 'zh-CN', 'normalize.json'))) throw new Error('nodes/locales is missing: run `npm run build` first (npm test does)');
    fs.mkdirSync(SHOTS, { recursive: true });
    // The checks read the page's text; only the screenshots need a font with Chinese glyphs.
    let fonts = '';
    try { fonts = execFileSync('fc-list', [':lang=zh'], { encoding: 'utf8' }); } catch { /* no fontconfig */ }
    if (!fonts.trim()) console.log('    no Chinese font: the zh-* screenshots will show boxes (apt-get install fonts-wqy-zenhei)');
    red = await startNodeRed({ flows: FLOW, settings: { lang: 'zh-CN' } });
    browser = await openBrowser({ locale: 'zh-CN' });
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

  it('lists the nodes under 机器学习 with their Chinese names', async () => {
    assert.equal(await editor.evaluate(() => navigator.language), 'zh-CN');
    const category = editor.locator('#red-ui-palette-container-machine_learning');
    assert.equal((await category.locator('.red-ui-palette-header span').innerText()).trim(), zh('normalize')('palette.label.machine_learning'));
    for (const type of TYPES) {
      const label = category.locator(`.red-ui-palette-node[data-palette-type="${type}"] .red-ui-palette-label`);
      assert.equal((await label.innerText()).replace(/\s+/g, ' ').trim(), zh(type)(`${type}.paletteLabel`), `${type} in the palette`);
    }
    // The "MNIST plots" sidebar tab too.
    assert.equal(await editor.evaluate(() => (window as any).RED.sidebar.containsTab('mnist-plots')), true);
    assert.match(await editor.locator('#red-ui-tab-mnist-plots').innerHTML(), new RegExp(zh('plot')('plot.sidebar.label')));
    await category.scrollIntoViewIfNeeded();
    await shot('zh-01-editor-palette');
  });

  it('opens the edit dialog with Chinese labels, choices and placeholders', async () => {
    const t = zh('mnist-dataset');
    await editor.locator('#red-ui-workspace-chart g[id="zh_ds"] rect.red-ui-flow-node').dblclick();
    const tray = editor.locator('.red-ui-tray');
    await tray.locator('#node-input-source').waitFor({ state: 'visible', timeout: 10000 });
    assert.equal((await tray.locator('label[for="node-input-source"]').innerText()).trim(), t('mnist-dataset.label.source'));
    assert.equal((await tray.locator('label[for="node-input-limit"]').innerText()).trim(), t('mnist-dataset.label.limit'));
    assert.equal(await tray.locator('#node-input-limit').getAttribute('placeholder'), t('mnist-dataset.placeholder.limit'));
    assert.equal((await tray.locator('#node-input-source option[value="embedded"]').innerText()).trim(), t('mnist-dataset.source.embedded'));
    assert.ok((await tray.innerText()).includes(t('mnist-dataset.hint.allowMsgPath')));
    // A limit the runtime would refuse shows red at once.
    const limit = tray.locator('#node-input-limit');
    await limit.fill('');
    await limit.pressSequentially('-1'); // Node-RED validates on keyup
    await editor.waitForFunction(() => document.querySelector('#node-input-limit')?.classList.contains('input-error'), null, { timeout: 5000 });
    await limit.fill('');
    await limit.pressSequentially(String(LIMIT));
    await editor.waitForFunction(() => !document.querySelector('#node-input-limit')?.classList.contains('input-error'), null, { timeout: 5000 });
    await editor.waitForTimeout(300); // the tray slides in
    await shot('zh-02-edit-mnist-dataset');
    await editor.locator('#node-dialog-cancel').click();
    await tray.waitFor({ state: 'detached', timeout: 10000 });
  });

  it('shows the Chinese help of a node in the sidebar', async () => {
    await editor.locator('#red-ui-workspace-chart g[id="zh_norm"] rect.red-ui-flow-node').click();
    await editor.evaluate(() => (window as any).RED.actions.invoke('core:show-node-help'));
    const help = editor.locator('.red-ui-sidebar-help-stack .red-ui-help').first();
    const first = /<p>([\s\S]*?)<\/p>/.exec(fs.readFileSync(path.join(ROOT, 'locales', 'zh-CN', 'normalize.html'), 'utf8'))![1];
    await editor.waitForFunction((expected) => (document.querySelector('.red-ui-sidebar-help-stack .red-ui-help') as HTMLElement | null)?.innerText.replace(/\s+/g, ' ').includes(expected), text(first), { timeout: 10000 });
    const shown = await help.innerText();
    assert.ok(shown.includes(zh('normalize')('normalize.label.mean')), 'the help names the 均值 field');
    await shot('zh-03-help-normalize');
  });

  it('shows the statuses the nodes set at run time in Chinese', async () => {
    const response = await fetch(`${red!.url}inject/zh_inject`, { method: 'POST' });
    assert.equal(response.status, 200);
    const expected = {
      zh_ds: [zh('mnist-dataset')('mnist-dataset.status.train', { count: LIMIT }), zh('mnist-dataset')('mnist-dataset.status.test', { count: LIMIT })].join(' · '),
      zh_norm: zh('normalize')('normalize.status.done'),
      zh_mlp: zh('mlp-model')('mlp-model.status.done', { parameters: (218058).toLocaleString('en') }),
    };
    for (const [id, status] of Object.entries(expected)) {
      const label = editor.locator(`#red-ui-workspace-chart g[id="${id}"] .red-ui-flow-node-status-label`);
      await editor.waitForFunction(([sel, want]) => document.querySelector(sel)?.textContent === want,
        [`#red-ui-workspace-chart g[id="${id}"] .red-ui-flow-node-status-label`, status] as const, { timeout: 60000 })
        .catch(async () => assert.fail(`${id}: status "${await label.textContent()}", expected "${status}"`));
    }
    await shot('zh-04-statuses');
  });

  it('logged no errors', () => {
    const errors = red!.log().split('\n').filter((l) => /\[error\]/.test(l));
    assert.deepEqual(errors, []);
  });
});
