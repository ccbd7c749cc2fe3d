/**
 * What grew between two V8 heap snapshots (`node bench/heapdiff.js a.heapsnapshot b.heapsnapshot`):
 * objects counted and summed by constructor or kind, the largest growth first. The soak takes the
 * snapshots with --snapshots (after the warm-up and at the end).
 */
import * as fs from 'fs';

interface Totals { count: number; bytes: number }

export function summarize(file: string): Map<string, Totals> {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const fields: string[] = snap.snapshot.meta.node_fields;
  const types: string[] = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map<string, Totals>();
  const nodes: number[] = snap.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + iType]];
    const key = type === 'object' || type === 'closure' ? `${type} ${snap.strings[nodes[i + iName]]}` : `(${type})`;
    const t = out.get(key) ?? { count: 0, bytes: 0 };
    t.count++;
    t.bytes += nodes[i + iSize];
    out.set(key, t);
  }
  return out;
}

export function diff(a: string, b: string, top = 15): string[] {
  const before = summarize(a);
  const after = summarize(b);
  const rows = [...after].map(([k, v]) => {
    const w = before.get(k) ?? { count: 0, bytes: 0 };
    return { k, count: v.count - w.count, bytes: v.bytes - w.bytes };
  }).sort((x, y) => y.bytes - x.bytes);
  return rows.slice(0, top).map((r) => `${(r.bytes / 1024).toFixed(0).padStart(8)} KB ${String(r.count).padStart(8)} objects  ${r.k.slice(0, 100)}`);
}

if (require.main === module) {
  const [a, b] = process.argv.slice(2);
  for (const line of diff(a, b)) console.log(line);
}
