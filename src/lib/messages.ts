// Every user-facing text lives in locales/<lang>/*.json (Node-RED's message catalogs). The engine
// raises errors as codes with parameters (MnistError); the node layer translates them with
// Node-RED's RED._ into the user's language. The English text is also the error's own message, so
// the engine stays usable (and its errors readable) without Node-RED.
import * as fs from 'fs';
import * as path from 'path';

export type Params = Record<string, string | number | boolean | null | undefined>;

/** This package's name on the registry (scoped, as Node-RED's catalogue asks of new packages). */
export const PACKAGE_NAME = '@node-red-mnist/nodes';

let root: string | undefined;

/** This package's folder (src/lib and the built lib/ sit at different depths). */
export function packageRoot(): string {
  if (!root) {
    for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      try {
        if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === PACKAGE_NAME) { root = dir; break; }
      } catch { /* not here */ }
    }
    root ??= path.resolve(__dirname, '..');
  }
  return root;
}

const catalogs = new Map<string, Record<string, unknown>>();

/** One catalog file, locales/<lang>/<name>.json (empty when absent). */
export function catalog(name: string, lang = 'en-US'): Record<string, unknown> {
  const file = path.join(packageRoot(), 'locales', lang, `${name}.json`);
  let c = catalogs.get(file);
  if (!c) {
    try { c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>; } catch { c = {}; }
    catalogs.set(file, c);
  }
  return c;
}

function find(tree: Record<string, unknown>, key: string): string | undefined {
  let at: unknown = tree;
  for (const part of key.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return typeof at === 'string' ? at : undefined;
}

/** Fills __name__ placeholders (Node-RED's i18next interpolation syntax). */
export function fill(text: string, params: Params = {}): string {
  return text.replace(/__(.+?)__/g, (all, name: string) => (Object.hasOwn(params, name) ? String(params[name]) : all));
}

/** The English text of a key, looked up in common.json and then in the named catalogs. */
export function message(key: string, params: Params = {}, names: string[] = []): string {
  for (const name of ['common', ...names]) {
    const text = find(catalog(name), key);
    if (text !== undefined) return fill(text, params);
  }
  return Object.keys(params).length ? `${key} ${JSON.stringify(params)}` : key;
}

/**
 * An error the user can act on: a catalog code (errors.<code>) and its parameters, optionally
 * prefixed by where it happened (a property path such as msg.payload[3], the same in every language).
 */
export class MnistError extends Error {
  readonly code: string;
  readonly params: Params;
  readonly where?: string;
  constructor(code: string, params: Params = {}, where?: string) {
    const text = message(`errors.${code}`, params);
    super(where ? `${where}: ${text}` : text);
    this.name = 'MnistError';
    this.code = code;
    this.params = params;
    this.where = where;
  }
}

/** The same error, said to have happened at `where`. */
export function at(where: string, e: unknown): Error {
  if (e instanceof MnistError) return new MnistError(e.code, e.params, e.where ? `${where}: ${e.where}` : where);
  return new Error(`${where}: ${e instanceof Error ? e.message : String(e)}`);
}

/** A short quoted form of any value for an error message ("abc", 12, [object]). */
export function shown(value: unknown, max = 40): string {
  let s: string;
  try { s = JSON.stringify(value) ?? String(value); } catch { s = String(value); }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}
