// The Node-RED process measured from inside (bench/probe.js serves it to the soak).
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay, IntervalHistogram, PerformanceObserver } from 'perf_hooks';
import * as v8 from 'v8';
/* eslint-disable @typescript-eslint/no-require-imports -- the same module instances the nodes use, resolved from this package */
const tf = require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
const registry = require('../lib/registry') as typeof import('../lib/registry');
/* eslint-enable @typescript-eslint/no-require-imports */

const MB = 2 ** 20;

/** Event-loop delay sampled every 10 ms: one histogram per interval, one for the whole run. */
const RESOLUTION_MS = 10;
let interval: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
let total: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
interval.enable();
total.enable();

/** Garbage-collection pauses: the longest and the total of the interval (a long one shows as lag too). */
let gcMaxMs = 0;
let gcTotalMs = 0;
let forcing = false;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (forcing) continue;
    gcMaxMs = Math.max(gcMaxMs, e.duration);
    gcTotalMs += e.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** The bytes of the tfjs wasm heap on this thread (0 until the wasm backend started). */
function wasmHeap(): number {
  // engine().registry holds only backends that were initialized: reading it starts none.
  const wasm = (tf.engine() as unknown as { registry: Record<string, { wasm?: { HEAPU8?: Uint8Array } }> }).registry.wasm;
  return wasm?.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

/** The histogram holds the time between timer ticks: the lag is what exceeds the resolution. */
const ms = (ns: number) => Math.max(0, Math.round(ns / 1e4 - RESOLUTION_MS * 100) / 100);

function lag(h: IntervalHistogram) {
  return { p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max), samples: h.count };
}

/**
 * A full collection for idle figures, twice with a pause between (array buffers are freed by a
 * sweeper after the collection), kept out of the event-loop and gc figures: it is the soak's own
 * stop-the-world pause, not one the flows cause.
 */
export async function collect(): Promise<void> {
  const gc = (global as { gc?: () => void }).gc;
  if (!gc) return;
  const once = () => {
    forcing = true;
    interval.disable();
    total.disable();
    gc();
    interval.enable();
    total.enable();
  };
  once();
  await new Promise((r) => setTimeout(r, 200));
  once();
  // gc entries arrive after the collection: those of the forced ones are let through first.
  await new Promise((r) => setImmediate(r));
  forcing = false;
}

export function metrics(opts: { reset?: boolean; restart?: boolean } = {}) {
  const m = process.memoryUsage();
  const resources = process.getActiveResourcesInfo();
  const handles: Record<string, number> = {};
  for (const r of resources) handles[r] = (handles[r] ?? 0) + 1;
  const out = {
    rssMB: m.rss / MB,
    heapUsedMB: m.heapUsed / MB,
    heapTotalMB: m.heapTotal / MB,
    externalMB: m.external / MB,
    arrayBuffersMB: m.arrayBuffers / MB,
    wasmHeapMB: wasmHeap() / MB,
    // The engine's own count: tf.memory() would start a backend if none was chosen yet.
    tensors: tf.engine().state.numTensors,
    backend: tf.getBackend() ?? null,
    registry: registry.count(),
    handles: resources.length,
    handleKinds: handles,
    eventLoop: lag(interval),
    gc: { maxMs: Math.round(gcMaxMs), totalMs: Math.round(gcTotalMs) },
    eventLoopTotal: lag(total),
  };
  const fresh = (h: IntervalHistogram) => {
    h.disable();
    const next = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    next.enable();
    return next;
  };
  if (opts.reset || opts.restart) {
    interval = fresh(interval);
    gcMaxMs = 0;
    gcTotalMs = 0;
  }
  if (opts.restart) total = fresh(total);
  return out;
}

export type Metrics = ReturnType<typeof metrics>;

/** A V8 heap snapshot of this process in the temporary folder; its path. */
export function heapSnapshot(): string {
  return v8.writeHeapSnapshot(path.join(os.tmpdir(), `mnist-soak-${process.pid}-${Date.now()}.heapsnapshot`));
}
