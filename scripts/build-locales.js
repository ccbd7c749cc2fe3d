#!/usr/bin/env node
// Node-RED loads a node's message catalog from locales/<lang>/<type>.json beside its .js file,
// one catalog per node file. Texts every node needs (engine errors, shared statuses) are written
// once in locales/<lang>/common.json; this merges them into each node's catalog under nodes/locales
// and copies the help pages (<type>.html). `npm run build` runs it after tsc.
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const source = path.join(root, 'locales');
const target = path.join(root, 'nodes', 'locales');

function merge(base, own) {
  const out = { ...base };
  for (const [k, v] of Object.entries(own)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k], v) : v;
  }
  return out;
}

fs.rmSync(target, { recursive: true, force: true });
for (const lang of fs.readdirSync(source)) {
  const dir = path.join(source, lang);
  const common = JSON.parse(fs.readFileSync(path.join(dir, 'common.json'), 'utf8'));
  fs.mkdirSync(path.join(target, lang), { recursive: true });
  for (const file of fs.readdirSync(dir)) {
    if (file === 'common.json') continue;
    const from = path.join(dir, file);
    const to = path.join(target, lang, file);
    if (file.endsWith('.json')) fs.writeFileSync(to, JSON.stringify(merge(common, JSON.parse(fs.readFileSync(from, 'utf8'))), null, 2));
    else if (file.endsWith('.html')) fs.copyFileSync(from, to);
  }
}
