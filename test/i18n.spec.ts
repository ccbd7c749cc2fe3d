import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { OPTIONS, Option } from '../src/nodes/options';
import { catalogLookup, loadEditor } from './editor';

// Every text the user sees comes from locales/<lang>/ (Node-RED's catalogs): these checks keep
// the catalogs complete in every language and in step with the code and the editor files.
const ROOT = path.resolve(__dirname, '..');
const LANGS = ['en-US', 'zh-CN'];
const TYPES = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))['node-red'].nodes);

const read = (lang: string, file: string) => JSON.parse(fs.readFileSync(path.join(ROOT, 'locales', lang, file), 'utf8'));

/** key -> text for every string leaf of a catalog. */
function leaves(tree: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (typeof tree === 'string') out.set(prefix, tree);
  else if (tree && typeof tree === 'object') for (const [k, v] of Object.entries(tree)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  return out;
}

const placeholders = (text: string) => [...text.matchAll(/__(.+?)__/g)].map((m) => m[1]).sort().join(',');

function sources(dir: string): string {
  return fs.readdirSync(dir, { withFileTypes: true }).map((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? fs.readFileSync(p, 'utf8') : '';
  }).join('\n');
}

describe('i18n: catalogs in every language', () => {
  const files = ['common.json', ...TYPES.map((t) => `${t}.json`)];

  it('has a catalog and a help page for every node in every language', () => {
    for (const lang of LANGS) {
      for (const type of TYPES) {
        assert.ok(fs.existsSync(path.join(ROOT, 'locales', lang, `${type}.json`)), `${lang}/${type}.json is missing`);
        const help = fs.readFileSync(path.join(ROOT, 'locales', lang, `${type}.html`), 'utf8');
        assert.match(help, new RegExp(`data-help-name="${type}"`), `${lang}/${type}.html has no help for ${type}`);
      }
    }
  });

  it('every language has the same keys as en-US, with the same placeholders', () => {
    for (const file of files) {
      const en = leaves(read('en-US', file));
      for (const lang of LANGS.slice(1)) {
        const other = leaves(read(lang, file));
        assert.deepEqual([...other.keys()].sort(), [...en.keys()].sort(), `${lang}/${file} keys differ from en-US`);
        for (const [key, text] of en) assert.equal(placeholders(other.get(key)!), placeholders(text), `${lang}/${file} ${key}: placeholders differ`);
      }
    }
  });

  it('every error code the code raises has its text', () => {
    const src = sources(path.join(ROOT, 'src'));
    const codes = new Set([...src.matchAll(/MnistError\('([a-z0-9-]+)'/g)].map((m) => m[1]));
    // Codes built from a kind or a bound ("not-a-split", "option-number-open-min", …).
    for (const kind of ['split', 'model']) { codes.add(`not-a-${kind}`); codes.add(`${kind}-gone`); }
    for (const side of ['min', 'max']) codes.add(`option-number-open-${side}`);
    codes.add('option-int'); codes.add('option-number');
    assert.ok(codes.size > 50, `only ${codes.size} codes found: is the scan broken?`);
    for (const lang of LANGS) {
      const errors = leaves(read(lang, 'common.json').errors);
      const missing = [...codes].filter((c) => !errors.has(c));
      assert.deepEqual(missing, [], `${lang}/common.json lacks errors: ${missing.join(', ')}`);
    }
  });

  it('every status, warning and log key the nodes use has its text', () => {
    for (const type of TYPES) {
      const file = path.join(ROOT, 'src', 'nodes', `${type}.ts`);
      const src = fs.readFileSync(file, 'utf8') + fs.readFileSync(path.join(ROOT, 'src', 'nodes', 'common.ts'), 'utf8');
      const keys = [...src.matchAll(/\b(?:t|status)\('([a-z][\w-]*(?:\.[\w-]+)+)'/g)].map((m) => m[1]);
      for (const lang of LANGS) {
        const known = new Map([...leaves(read(lang, 'common.json')), ...leaves(read(lang, `${type}.json`))]);
        for (const key of keys) assert.ok(known.has(key), `${lang}: ${type} uses "${key}" but no catalog has it`);
      }
    }
  });

  it('every data-i18n key and this._() key of the editor files is in the node\'s catalog', () => {
    for (const type of TYPES) {
      const html = fs.readFileSync(path.join(ROOT, 'nodes', `${type}.html`), 'utf8');
      assert.doesNotMatch(html, /data-help-name/, `nodes/${type}.html still holds help text: it belongs in locales/<lang>/${type}.html`);
      const keys = [
        ...[...html.matchAll(/data-i18n="([^"]+)"/g)].flatMap((m) => m[1].split(';').map((k) => k.replace(/^\[[a-z]+\]/, ''))),
        ...[...html.matchAll(/\b_\('([^']+)'/g)].map((m) => m[1]),
      ].filter((k) => !k.startsWith('node-red:'));
      assert.ok(keys.length > 0, `nodes/${type}.html has no translated text`);
      for (const lang of LANGS) {
        const known = new Map([...leaves(read(lang, 'common.json')), ...leaves(read(lang, `${type}.json`))]);
        for (const key of keys) {
          // A key ending in "." is completed at run time ('plot.short.' + kind): its group must exist.
          const found = key.endsWith('.') ? [...known.keys()].some((k) => k.startsWith(key)) : known.has(key);
          assert.ok(found, `${lang}: nodes/${type}.html uses "${key}" but ${type}.json lacks it`);
        }
      }
    }
  });
});

describe('i18n: the editor in every language', () => {
  const CJK = /[\u4e00-\u9fff]/;

  it('has no hard-coded text in the edit dialogs', () => {
    for (const type of TYPES) {
      const { template } = loadEditor(type);
      assert.doesNotMatch(template, /\s(placeholder|title)="/, `nodes/${type}.html: a placeholder or title that is not translated`);
      const text = template
        .replace(/<option value="([^"]+)">\1<\/option>/g, '') // a choice shown as its value (relu, tanh…)
        .replace(/<[^>]+>/g, '')
        .replace(/[\s×]/g, '');
      assert.equal(text, '', `nodes/${type}.html shows text that is not in locales/: ${text}`);
    }
  });

  it('names each node, palette entry, output and sidebar tab from the catalog of the language', () => {
    for (const type of TYPES) {
      const names = new Map<string, string[]>();
      for (const lang of LANGS) {
        const { definition, tabs } = loadEditor(type, catalogLookup(lang, type));
        const own = (f: unknown, self: unknown, ...args: unknown[]) => (typeof f === 'function' ? f.call(self, ...args) : f);
        const texts = [own(definition.paletteLabel, definition) as string];
        // The node's label for every choice of its options (a missing key throws).
        const base = Object.fromEntries(Object.entries(definition.defaults).map(([k, d]) => [k, d.value]));
        for (const [name, o] of Object.entries(OPTIONS[type as keyof typeof OPTIONS] as Record<string, Option>)) {
          const choices = o.type === 'enum' ? o.values : o.type === 'bool' ? [true, false] : [base[name]];
          for (const value of choices) texts.push(definition.label!.call({ ...base, [name]: value, _: definition._ }));
        }
        for (let i = 0; i < definition.outputs && definition.outputLabels; i++) texts.push(own(definition.outputLabels, definition, i) as string);
        for (const tab of tabs) texts.push(tab.label, tab.name);
        for (const text of texts) assert.ok(typeof text === 'string' && text.trim() !== '', `${lang}: ${type} has an empty name`);
        names.set(lang, texts);
      }
      assert.match(names.get('zh-CN')![0], CJK, `${type}: the zh-CN palette label is not Chinese`);
      assert.notDeepEqual(names.get('zh-CN'), names.get('en-US'), `${type}: the zh-CN names are the English ones`);
    }
  });

  it('explains every field of each edit dialog in the help of each language', () => {
    for (const lang of LANGS) {
      for (const type of TYPES) {
        const help = fs.readFileSync(path.join(ROOT, 'locales', lang, `${type}.html`), 'utf8');
        const labels = leaves(read(lang, `${type}.json`)[type].label);
        assert.ok(labels.size > 0, `${lang}/${type}.json has no field labels`);
        for (const [key, label] of labels) assert.ok(help.includes(`<b>${label}</b>`), `${lang}/${type}.html does not explain <b>${label}</b> (${type}.label.${key})`);
        if (lang === 'zh-CN') assert.match(help, CJK, `${lang}/${type}.html is not in Chinese`);
      }
    }
  });
});
