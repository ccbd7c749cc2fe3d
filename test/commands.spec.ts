import { strict as assert } from 'assert';
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { EXAMPLES, NodeRed, PACKAGE, ROOT, freePort, startNodeRed as startWithExamples } from './browser/node-red';
import { startNodeRed } from './runtime';

// Every command a user is told to type, run as written: the sh blocks of the README and the
// command lines in the examples' comments. What a line cannot run here is named below with the
// reason, and the first test fails when the README gains a command this spec does not know.
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const TYPES = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))['node-red'].nodes);

/** Lines of the README's ```sh blocks, without their comments. */
function readmeBlocks(): string[][] {
  return [...README.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1].split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean));
}

/** Command lines in the examples' comments (indented code in a comment's markdown). */
function exampleCommands(): Array<{ example: string; line: string }> {
  const out: Array<{ example: string; line: string }> = [];
  for (const f of EXAMPLES) {
    for (const n of JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8'))) {
      for (const l of String(n.info ?? '').split('\n')) if (/^ {4}\S/.test(l)) out.push({ example: f, line: l.trim() });
    }
  }
  return out;
}

const INSTALL = 'Installing into your own Node-RED';
/** README lines no test runs, and why. */
const NOT_RUN: Record<string, string> = {
  'npm ci && npm test': 'the whole suite, this spec among them: .ci/run runs it',
  'npm install @tensorflow/tfjs-node@4.22.0': 'optional; its install script downloads libtensorflow from storage.googleapis.com',
};

function bash(script: string, opts: { cwd: string; env?: NodeJS.ProcessEnv }): string {
  return execFileSync('bash', ['-e', '-o', 'pipefail', '-c', script], {
    cwd: opts.cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024,
  });
}

/** A dark 7 on light paper, as a phone would photograph it. */
function digitPng(): Promise<Buffer> {
  return sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="240"><rect width="200" height="240" fill="#f2efe6"/>'
    + '<polyline points="50,50 150,50 90,210" fill="none" stroke="#202020" stroke-width="18" stroke-linecap="round" stroke-linejoin="round"/></svg>')).png().toBuffer();
}

describe('commands in the README and in the examples, run as written', function () {
  this.timeout(900000);

  it('every line of the README\'s sh blocks is run below, or named with the reason it is not', () => {
    const blocks = readmeBlocks();
    const installBlock = blocks.find((b) => b.some((l) => l.includes('/path/to/node-red-mnist')));
    assert.ok(installBlock, `the README has a sh block under "${INSTALL}"`);
    const run = new Set(['npm ci && npm start', ...installBlock]);
    const unknown = blocks.flat().filter((l) => !run.has(l) && !(l in NOT_RUN));
    assert.deepEqual(unknown, [], 'commands in the README that no test runs');
  });

  it('`npm start`: Node-RED with every example deployed, and the dashboard allowed photos up to 15 MB', async () => {
    // `npm ci` before it would reinstall the node_modules every other spec runs on: not run here.
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-npm-start-'));
    const port = await freePort();
    let output = '';
    const child: ChildProcess = spawn('bash', ['-c', 'npm start'], {
      cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORT: String(port), MNIST_USER_DIR: userDir },
    });
    child.stdout!.on('data', (d) => { output += d; });
    child.stderr!.on('data', (d) => { output += d; });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      const deadline = Date.now() + 240000;
      while (!/Started flows/.test(output)) {
        if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output}`);
        if (Date.now() > deadline) throw new Error(`npm start: no "Started flows" within 240 s:\n${output}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      const flows = await (await fetch(`http://127.0.0.1:${port}/flows`)).json() as Array<{ type: string; label?: string }>;
      const tabs = EXAMPLES.map((f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')).find((n: { type: string }) => n.type === 'tab').label);
      assert.deepEqual(flows.filter((n) => n.type === 'tab').map((n) => n.label).sort(), tabs.sort());
      assert.equal((await fetch(`http://127.0.0.1:${port}/dashboard`)).status, 200);
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const settings = require(path.join(userDir, 'settings.js'));
      assert.equal(settings.dashboard.maxHttpBufferSize, 15e6);
      assert.doesNotMatch(output, /\[error\]/);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it(`"${INSTALL}": a fresh clone, packed and installed into ~/.node-red, gives Node-RED every node and the dashboard`, async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-readme-install-'));
    try {
      // The clone: every file git would commit now (tracked and new, not ignored).
      const clone = path.join(work, 'src', 'node-red-mnist');
      const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
      for (const f of files) {
        if (!fs.existsSync(path.join(ROOT, f))) continue; // deleted in the working tree
        fs.mkdirSync(path.dirname(path.join(clone, f)), { recursive: true });
        fs.copyFileSync(path.join(ROOT, f), path.join(clone, f));
      }
      const home = path.join(work, 'home');
      fs.mkdirSync(path.join(home, '.node-red'), { recursive: true });
      // What Node-RED writes into a new user directory.
      fs.writeFileSync(path.join(home, '.node-red', 'package.json'), JSON.stringify({ name: 'node-red-project', description: 'A Node-RED Project', version: '0.0.1', private: true }));
      const block = readmeBlocks().find((b) => b.some((l) => l.includes('/path/to/node-red-mnist')))!;
      // `npm ci` in the clone would download every dev dependency again: a link to this working
      // tree's node_modules stands in for it (the build itself runs in `npm pack`, as `prepare`).
      const script = block.filter((l) => !(l in NOT_RUN))
        .map((l) => l.replace(/\/path\/to\/node-red-mnist/g, clone).replace(/&& npm ci$/, `&& ln -s ${path.join(ROOT, 'node_modules')} node_modules`))
        .join('\n');
      const cache = execFileSync('npm', ['config', 'get', 'cache'], { encoding: 'utf8' }).trim();
      bash(script, { cwd: work, env: { ...process.env, HOME: home, npm_config_cache: cache, npm_config_loglevel: 'error', npm_config_fund: 'false', npm_config_audit: 'false' } });

      const installed = path.join(home, '.node-red', 'node_modules', PACKAGE);
      assert.ok(!fs.lstatSync(installed).isSymbolicLink(), 'installed from the tarball, not linked');
      for (const type of TYPES) assert.ok(fs.existsSync(path.join(installed, 'nodes', `${type}.js`)), `${type}.js was built and shipped`);
      const red = await startNodeRed(process.execPath, require.resolve('node-red/red.js'), path.join(home, '.node-red'));
      try {
        const sets = await (await fetch(`${red.url}/nodes`, { headers: { Accept: 'application/json' } })).json() as Array<{ module: string; types: string[]; enabled: boolean; err?: string }>;
        const ours = sets.filter((s) => s.module === PACKAGE);
        assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...TYPES].sort());
        for (const s of ours) assert.ok(s.enabled && !s.err, `${s.types}: ${s.err}`);
        assert.ok(sets.some((s) => s.module === '@flowfuse/node-red-dashboard' && s.types.includes('ui-template')), 'Dashboard 2.0 is installed');
      } finally {
        await red.stop();
      }
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  describe('the examples\' curl lines, against every example deployed (models trained small first)', () => {
    let red: NodeRed;
    let cwd: string;

    /** Runs a line in bash as written; curl reaches this test's Node-RED for localhost:1880. */
    const run = (line: string): { status: number; body: any } => {
      const out = bash(`curl() { command curl --connect-to localhost:1880:127.0.0.1:${new URL(red.url).port} -w '\\n%{http_code}' "$@"; }\n${line}`, { cwd });
      const lines = out.trimEnd().split('\n');
      const status = Number(lines.pop());
      return { status, body: JSON.parse(lines.join('\n')) };
    };

    before(async function () {
      if (!fs.existsSync(path.join(ROOT, 'nodes', 'sgd-train.js'))) throw new Error('nodes/*.js are missing: run `npm run build` first (npm test does)');
      const flows = EXAMPLES.flatMap((f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')));
      // Small trainings: 2000 samples for the MLP of the HTTP example, 500 for the CNN, one epoch.
      const inj = (id: string) => flows.find((n: { id: string }) => n.id === id);
      inj('h_inj_train').props = [{ p: 'payload' }, { p: 'limit', v: '2000', vt: 'num' }, { p: 'train', v: '{"epochs":1}', vt: 'json' }];
      inj('inj_cnn').props = [{ p: 'payload' }, { p: 'limit', v: '500', vt: 'num' }, { p: 'train', v: '{"epochs":1}', vt: 'json' }];
      red = await startWithExamples({ flows });
      cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-curl-'));
      fs.writeFileSync(path.join(cwd, 'digit.png'), await digitPng());
      fs.writeFileSync(path.join(cwd, 'frame.jpg'), await sharp(await digitPng()).resize(640, 480, { fit: 'contain', background: '#b0b0b0' }).jpeg().toBuffer());
      for (const id of ['h_inj_train', 'inj_cnn']) {
        // The flows start a moment after Node-RED says so.
        for (let i = 0; ; i++) {
          const res = await fetch(`${red.url}inject/${id}`, { method: 'POST' });
          if (res.ok) break;
          if (i > 100) throw new Error(`inject ${id}: HTTP ${res.status}`);
          await new Promise((r) => setTimeout(r, 300));
        }
      }
      // model.json is renamed into place last: a complete save.
      const deadline = Date.now() + 600000;
      for (const folder of ['mnist-model', 'mnist-cnn']) {
        while (!fs.existsSync(path.join(red.userDir, folder, 'model.json'))) {
          if (Date.now() > deadline) throw new Error(`no model saved in ${folder}:\n${red.log().slice(-4000)}`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    });

    after(async () => {
      await red?.stop();
      if (cwd) fs.rmSync(cwd, { recursive: true, force: true });
    });

    it('every command line of every example\'s comments answers with its result, in the order written', async () => {
      const commands = exampleCommands();
      assert.deepEqual([...new Set(commands.map((c) => c.example))].sort(),
        ['CNN, ensemble and your handwriting.json', 'camera frames into predict.json', 'predict images over HTTP.json']);
      assert.ok(commands.length >= 7);
      for (const { example, line } of commands) {
        assert.match(line, /^curl /, `${example}: a command this spec knows how to run: ${line}`);
        let { status, body } = run(line);
        if (/\/mnist\/frame\/latest/.test(line)) {
          // The frame POSTed just before is read within half a second (the delay node's rate).
          for (const deadline = Date.now() + 60000; body.label === null && Date.now() < deadline;) {
            await new Promise((r) => setTimeout(r, 250));
            ({ status, body } = run(line));
          }
        }
        if (/\/mnist\/frame /.test(line + ' ')) {
          assert.equal(status, 202, `${example}: ${line}\n${JSON.stringify(body)}`);
          assert.deepEqual(body, { accepted: true });
          console.log(`      ${line.slice(0, 70)}… -> ${status} ${JSON.stringify(body)}`);
          continue;
        }
        assert.equal(status, 200, `${example}: ${line}\n${JSON.stringify(body)}`);
        if (/\/mnist\/teach/.test(line)) {
          assert.equal(body.action, 'add', JSON.stringify(body));
        } else {
          assert.ok(Number.isInteger(body.label) && body.label >= 0 && body.label <= 9, `${line}: ${JSON.stringify(body)}`);
          assert.ok(body.confidence > 0 && body.confidence <= 1);
        }
        console.log(`      ${line.slice(0, 70)}… -> ${JSON.stringify(body).slice(0, 60)}`);
      }
    });

    it('a form without a file, and a form where a raw body is expected, are answered 400 with what to send', () => {
      const noFile = run('curl -s -X POST -F note=hello http://localhost:1880/mnist/predict');
      assert.equal(noFile.status, 400);
      assert.match(noFile.body.error, /the form holds no file: send the image as a file field, e\.g\. curl -F image=@digit\.png/);
      const form = run('curl -s -X POST -F image=@digit.png http://localhost:1880/mnist/cnn');
      assert.equal(form.status, 400);
      assert.match(form.body.error, /multipart form .* send the image itself as the body, e\.g\. curl --data-binary @digit\.png/);
    });
  });
});
