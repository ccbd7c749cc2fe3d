#!/usr/bin/env node
// Starts Node-RED with this package installed into a project-local user directory and the
// example flows (every one in examples/) deployed on first start. `npm start` runs it after building.
//   PORT=1880 (default)   MNIST_RESET=1 re-deploys the examples over the saved flows.
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const root = path.resolve(__dirname, '..');
const userDir = process.env.MNIST_USER_DIR || path.join(root, '.node-red-user');
const port = Number(process.env.PORT || 1880);

fs.mkdirSync(path.join(userDir, 'node_modules'), { recursive: true });

// "Install" this package the way `npm install <folder>` does: a link in the user dir's
// node_modules, so the editor's palette shows the nodes and a rebuild needs no reinstall.
const packageName = require(path.join(root, 'package.json')).name; // scoped: node_modules/@node-red-mnist/nodes
const link = path.join(userDir, 'node_modules', packageName);
try { fs.rmSync(link, { recursive: true, force: true }); } catch { /* first start */ }
fs.mkdirSync(path.dirname(link), { recursive: true });
fs.symlinkSync(root, link, 'dir');
fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({
  name: 'node-red-project', private: true, dependencies: { [packageName]: `file:${root}` },
}, null, 2));

const settingsFile = path.join(userDir, 'settings.js');
fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify({
  uiPort: port,
  flowFile: 'flows.json',
  credentialSecret: false,
  telemetry: { enabled: false },
  editorTheme: { tours: false, palette: { catalogues: [] } },
  logging: { console: { level: 'info' } },
  // Dashboard 2.0 drops a message over 1 MB from the page without a word (socket.io's limit). The
  // example's page shrinks photos before sending; this covers other widgets, e.g. a ui-file-input
  // with a phone photo: predict takes up to 10 MiB, which is 14 MB as a data URL.
  dashboard: { maxHttpBufferSize: 15e6 },
}, null, 2)};\n`);

const flowFile = path.join(userDir, 'flows.json');
if (!fs.existsSync(flowFile) || process.env.MNIST_RESET) {
  const examples = path.join(root, 'examples');
  const flows = fs.readdirSync(examples).filter((f) => f.endsWith('.json')).sort()
    .flatMap((f) => JSON.parse(fs.readFileSync(path.join(examples, f), 'utf8')));
  fs.writeFileSync(flowFile, JSON.stringify(flows, null, 2));
  console.log(`Deployed ${flows.length} nodes from the examples into ${flowFile}`);
}

console.log(`Starting Node-RED on http://localhost:${port}/ (user dir ${userDir})`);
// glibc's malloc tuned for a long-running process (scripts/malloc-env.js).
const red = spawn(process.execPath, [require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', settingsFile, '--port', String(port)],
  { stdio: 'inherit', env: require('./malloc-env').mallocEnv() });
const forward = (sig) => red.kill(sig);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
red.on('exit', (code) => process.exit(code ?? 0));
