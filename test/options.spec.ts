import { strict as assert } from 'assert';
import { OPTIONS, Option, parseOption } from '../src/nodes/options';
import { catalogLookup, loadEditor } from './editor';

// Each node's options are declared once, in src/nodes/options.ts. The editor files repeat the
// defaults (Node-RED reads them from `defaults`) and the bounds (in their validators): these
// checks keep them equal, so a new node starts with what the runtime would use, and a value the
// runtime would refuse shows red in the editor instead of failing at run time.
const TYPES = Object.keys(OPTIONS) as Array<keyof typeof OPTIONS>;

/** Values around an option's bounds: the bounds themselves, just outside them, and odd inputs. */
function probes(o: Option & { min: number; max: number }): string[] {
  const step = (bound: number) => (o.type === 'int' ? 1 : 1e-6 * Math.max(1, Math.abs(bound)));
  const values = [o.min, o.max, o.min - step(o.min), o.max + step(o.max)].map(String);
  if (o.type === 'int') values.push(String(o.min + 0.5));
  return [...values, '', 'abc', 'NaN', 'Infinity', '1e400'];
}

describe('options: editor defaults and bounds equal the runtime\'s', () => {
  for (const type of TYPES) {
    describe(type, () => {
      const table: Record<string, Option> = OPTIONS[type];
      const { definition, template } = loadEditor(type);
      const editorOptions = Object.keys(definition.defaults).filter((name) => name !== 'name');

      it('has the same options as the table, each with the runtime default', () => {
        assert.deepEqual(editorOptions.sort(), Object.keys(table).sort());
        for (const [name, o] of Object.entries(table)) {
          // A blank field is how the editor says "automatic" (NaN at run time, e.g. a chart's width).
          const expected = Number.isNaN(o.default) ? '' : o.default;
          assert.equal(definition.defaults[name].value, expected, `${type}.${name}: editor default`);
          assert.ok(Object.is(parseOption(name, o, definition.defaults[name].value), o.default), `${type}.${name}: the runtime reads the editor default as its default`);
        }
      });

      it('has validators Node-RED asks for a message (two parameters: with one, a returned text counts as valid)', () => {
        for (const name of editorOptions) {
          const validate = definition.defaults[name].validate;
          // A validator that explains (returns text for a bad value) must take two parameters.
          const says = validate && typeof validate.call({ _: (key: string) => key }, 'not a value', {}) === 'string';
          if (says) assert.equal(validate.length, 2, `${type}.${name}: validate takes ${validate.length} parameter(s)`);
        }
      });

      it('has a form field for every option, with the table\'s choices', () => {
        for (const [name, o] of Object.entries(table)) {
          const field = new RegExp(`<(input|select)([^>]*)id="node-input-${name}"[^>]*>`).exec(template);
          assert.ok(field, `${type}: the dialog has no field for ${name}`);
          if (o.type === 'bool') assert.match(field[0], /type="checkbox"/, `${type}.${name} is not a checkbox`);
          if (o.type === 'enum') {
            const select = new RegExp(`<select id="node-input-${name}">([\\s\\S]*?)</select>`).exec(template);
            assert.ok(select, `${type}.${name} is not a select`);
            const values = [...select[1].matchAll(/<option value="([^"]*)"/g)].map((m) => m[1]);
            assert.deepEqual(values.sort(), [...o.values].sort(), `${type}.${name}: the choices differ from the table`);
          }
        }
      });

      const numbers = Object.entries(table).filter((e): e is [string, Option & { min: number; max: number }] => e[1].type === 'int' || e[1].type === 'number');
      if (numbers.length) {
        it('marks exactly the number values the runtime refuses, naming the bounds', () => {
          const node = { _: catalogLookup('en-US', type) };
          for (const [name, o] of numbers) {
            const validate = definition.defaults[name]?.validate;
            assert.ok(validate, `${type}.${name} has no validator`);
            for (const value of [definition.defaults[name].value, ...probes(o)]) {
              const runtimeOk = (() => { try { parseOption(name, o, value); return true; } catch { return false; } })();
              const verdict: unknown = validate.call(node, value, {});
              assert.equal(verdict === true, runtimeOk, `${type}.${name} = ${JSON.stringify(value)}: the editor says ${JSON.stringify(verdict)}, the runtime ${runtimeOk ? 'accepts' : 'refuses'} it`);
              if (!runtimeOk) {
                assert.equal(typeof verdict, 'string', `${type}.${name} = ${JSON.stringify(value)}: no reason given`);
                assert.ok((verdict as string).includes(String(o.min)) && (verdict as string).includes(String(o.max)), `${type}.${name}: "${verdict}" does not name the bounds`);
              }
            }
          }
        });
      }
    });
  }
});
