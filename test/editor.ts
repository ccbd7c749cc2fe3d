import * as fs from 'fs';
import * as path from 'path';
import * as vm from 'vm';

// Runs a node's editor file (nodes/<type>.html) outside the browser, the way the editor does:
// RED.nodes.registerType gets the definition and gives it `_`, the node's catalog lookup.
export const ROOT = path.resolve(__dirname, '..');

export type Translate = (key: string, params?: Record<string, unknown>) => string;
type Validator = (this: unknown, value: unknown, opt?: object) => unknown;

export interface EditorDefinition {
  category: string;
  defaults: Record<string, { value: unknown; required?: boolean; validate?: Validator }>;
  outputs: number;
  label?: (this: Record<string, unknown>) => string;
  paletteLabel?: string | ((this: EditorDefinition) => string);
  outputLabels?: string[] | ((this: EditorDefinition, i: number) => string);
  _: Translate;
}

export interface Editor {
  definition: EditorDefinition;
  /** The edit dialog's HTML (data-template-name). */
  template: string;
  /** Sidebar tabs the file adds (RED.sidebar.addTab). */
  tabs: Array<{ id: string; label: string; name: string }>;
}

/** A jQuery stand-in: every call and property gives itself back. */
function chain(): unknown {
  const self: unknown = new Proxy(() => undefined, { get: () => self, apply: () => self });
  return self;
}

export function loadEditor(type: string, _: Translate = (key) => key): Editor {
  const file = path.join(ROOT, 'nodes', `${type}.html`);
  const html = fs.readFileSync(file, 'utf8');
  const code = [...html.matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)].map((m) => m[1]).join('\n');
  const template = new RegExp(`<script type="text/html" data-template-name="${type}">([\\s\\S]*?)</script>`).exec(html)?.[1];
  if (template === undefined) throw new Error(`nodes/${type}.html has no edit dialog`);
  const registered = new Map<string, EditorDefinition>();
  const tabs: Editor['tabs'] = [];
  const RED = {
    nodes: { registerType: (t: string, def: EditorDefinition) => { def._ = _; registered.set(t, def); }, getType: (t: string) => registered.get(t) },
    // Node-RED's validators, as far as the editor files use them.
    validators: {
      number: (blank?: boolean) => (v: unknown) => (blank === true && (v === '' || v === undefined)) || (v !== '' && !Number.isNaN(Number(v))),
      regex: (re: RegExp) => (v: unknown) => re.test(String(v)),
    },
    sidebar: { addTab: (tab: Editor['tabs'][number]) => tabs.push(tab) },
    comms: { subscribe: () => undefined },
    _,
  };
  // Scripts the file loads from this package's resources/ (served at resources/<package name>/…) run first.
  const context = vm.createContext({ RED, $: chain(), window: {} });
  vm.runInContext('var NodeRedMnist;', context);
  for (const m of html.matchAll(/<script src="resources\/@node-red-mnist\/nodes\/([\w.-]+)"><\/script>/g)) {
    const shared = path.join(ROOT, 'resources', m[1]);
    vm.runInContext(fs.readFileSync(shared, 'utf8'), context, { filename: shared });
    vm.runInContext('NodeRedMnist = window.NodeRedMnist;', context);
  }
  vm.runInContext(code, context, { filename: file });
  const definition = registered.get(type);
  if (!definition) throw new Error(`nodes/${type}.html does not register ${type}`);
  return { definition, template, tabs };
}

/** The text of a key in locales/<lang>/ (common.json and <type>.json, merged as the build does); throws if missing. */
export function catalogLookup(lang: string, type: string): Translate {
  const read = (name: string) => JSON.parse(fs.readFileSync(path.join(ROOT, 'locales', lang, `${name}.json`), 'utf8'));
  const trees = [read(type), read('common')];
  return (key, params = {}) => {
    for (const tree of trees) {
      const text = key.split('.').reduce<unknown>((at, part) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[part] : undefined), tree);
      if (typeof text === 'string') return text.replace(/__(.+?)__/g, (all, name: string) => (name in params ? String(params[name]) : all));
    }
    throw new Error(`${lang}: no text for "${key}" (${type})`);
  };
}
