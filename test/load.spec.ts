import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import { initBackend } from '../src/lib/backend';
import { createMlp } from '../src/lib/model';
import { saveModel } from '../src/lib/persist';
import { NodeRed, ROOT, startNodeRed } from './browser/node-red';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const autocannon = require('autocannon');

const HTTP_EXAMPLE = path.join(ROOT, 'examples', 'predict images over HTTP.json');

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

interface Burst { requests: number; ok: number; busy: number; other: number; errors: number; rps: number; p50: number; p99: number }

/** A bounded burst (count and time) on loopback only. */
async function burst(url: string, body: Buffer, connections: number, amount: number): Promise<Burst> {
  const r = await autocannon({
    url, method: 'POST', body, headers: { 'content-type': 'image/png' },
    connections, amount, timeout: 20, pipelining: 1,
  });
  const codes = r.statusCodeStats as Record<string, { count: number }>;
  const count = (c: string) => codes[c]?.count ?? 0;
  return {
    requests: r.requests.total, ok: count('200'), busy: count('503'),
    other: Object.entries(codes).filter(([c]) => c !== '200' && c !== '503').reduce((s, [, v]) => s + v.count, 0),
    errors: r.errors + r.timeouts, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99,
  };
}

describe('load: the HTTP predict example under a burst', function () {
  let red: NodeRed;
  let png: Buffer;

  before(async function () {
    await initBackend(undefined, () => undefined);
    const flows = JSON.parse(fs.readFileSync(HTTP_EXAMPLE, 'utf8'));
    // A small queue so a burst of 64 connections certainly overflows it.
    // LOAD_QUEUE=100 measures the shipped queue (64 connections then all wait: no 503 expected).
    const queue = Number(process.env.LOAD_QUEUE || 8);
    for (const n of flows) if (n.type === 'predict') n.queue = queue;
    red = await startNodeRed({
      flows,
      prepare: async (userDir) => {
        const model = createMlp({ inputSize: 784, hidden: [256, 64], activation: 'relu', classes: 10, seed: 1 });
        await saveModel({ model, meta: { classes: '0123456789'.split(''), inputShape: [28, 28], normalization: { mean: 0.1307, std: 0.3081 } } }, path.join(userDir, 'mnist-model'));
        model.dispose();
      },
    });
    png = await sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="200" height="200" fill="#fff"/><text x="60" y="160" font-size="160" font-family="DejaVu Sans">7</text></svg>')).png().toBuffer();
  });

  after(async () => { await red?.stop(); });

  it('answers every request with 200 or 503, keeps memory bounded, and works after the burst', async () => {
    const url = `${red.url}mnist/predict`;
    const first = await fetch(url, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    assert.equal(first.status, 200);
    // The first burst warms up (JIT, buffers, the wasm heap); the later ones must not grow memory.
    const bursts: Burst[] = [];
    const rss: number[] = [];
    for (let i = 0; i < Number(process.env.LOAD_BURSTS || 3); i++) {
      bursts.push(await burst(url, png, 64, 3000));
      rss.push(rssMB(red.pid));
    }
    const b = bursts[bursts.length - 1];
    console.log(`      burst: ${b.requests} requests from 64 connections, ${b.ok} answered 200, ${b.busy} got 503 (queue ${process.env.LOAD_QUEUE || 8}), `
      + `${b.rps.toFixed(0)} req/s, latency p50 ${b.p50} ms, p99 ${b.p99} ms; Node-RED RSS after each burst ${rss.map((r) => r.toFixed(0)).join(' / ')} MB`);
    assert.equal(b.errors, 0, 'no connection errors or timeouts');
    assert.equal(b.other, 0, 'only 200 and 503 answers');
    assert.equal(b.ok + b.busy, b.requests);
    assert.ok(b.ok > 0, 'requests were answered');
    assert.ok(b.busy > 0, 'beyond the queue, requests get 503 instead of waiting');
    // RSS moves with garbage collection (tens of MB either way); growth with the request count
    // would show as a steady climb over 6,000 more requests.
    assert.ok(rss[rss.length - 1] < rss[0] * 1.5 && Math.max(...rss) < 800, `RSS ${rss.join(' / ')} MB over three bursts`);
    const after = await fetch(url, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } });
    assert.equal(after.status, 200);
    const answer = await after.json() as { label: number; probabilities: number[] };
    assert.equal(answer.probabilities.length, 10);
    const busy = await (async () => {
      for (let i = 0; i < 3; i++) {
        const rs = await Promise.all(Array.from({ length: 40 }, () => fetch(url, { method: 'POST', body: png, headers: { 'content-type': 'image/png' } })));
        const one = rs.find((r) => r.status === 503);
        await Promise.all(rs.map((r) => r.arrayBuffer()));
        if (one) return one;
      }
      return null;
    })();
    assert.ok(busy, 'a 503 is seen under 40 concurrent requests');
    assert.ok(!/\[error\].*(uncaught|crash)/i.test(red.log()), 'Node-RED logged no crash');
  });
});
