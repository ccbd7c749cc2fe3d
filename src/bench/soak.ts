/**
 * npm run soak -- --minutes N [--json] [--rate R] [--train-every M] [--engine auto|native|tfjs] [--snapshots] [--glibc-defaults]
 *
 * A long mixed run of a real Node-RED (child process, temporary user directory) with this
 * package's nodes and all four example flows deployed through the admin API. For N minutes:
 *   - HTTP predict traffic at a steady rate (R requests/s, default 5) to the HTTP example;
 *   - a connected dashboard client (Engine.IO/socket.io protocol over a WebSocket, as the
 *     Dashboard 2.0 page speaks it; it reconnects after every redeploy like the page does);
 *   - a full 60k training every M minutes (default 3), in turn: the HTTP example (Adam, then
 *     evaluate and model-save), the tutorial (SGD + MSE, evaluate, plots, a 10k batch predict),
 *     the dashboard (its Train form, live loss chart, then a drawn digit to predict), the folder
 *     example (Adam, evaluate, model-save);
 *   - every minute: a predict from the saved folder (the folder example's three files) and a
 *     full redeploy through the admin API.
 * Node-RED is measured from inside by bench/probe.js (a plugin only the soak installs) and every
 * minute one line is printed: RSS, JS heap, wasm heap, external memory, tensors, registry
 * entries, open handles, event-loop lag p50/p99/max, HTTP answers. The last line (with --json) is
 * one JSON object. Exit 1 on growth (tensors or registry entries not back to their baselines,
 * idle RSS after a training 100 MB or more above before it, an RSS slope of 5 MB/h or more over a
 * window of at least 10 minutes after the warm-up) or on any unexpected error.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import { diff } from './heapdiff';
import type { Metrics } from './metrics';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any -- ws ships with Node-RED (untyped here); debug and dashboard messages are untyped JSON */
const WebSocket = require('ws');

const ROOT = path.resolve(__dirname, '..');
const EXAMPLES = ['MNIST tutorial pipeline.json', 'predict images over HTTP.json', 'MNIST dashboard.json', 'predict a folder of images.json'];


interface Args { minutes: number; json: boolean; rate: number; trainEvery: number; engine?: string; snapshots: boolean; glibcDefaults: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 10, json: false, rate: 5, trainEvery: 3, snapshots: false, glibcDefaults: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--minutes') a.minutes = Number(v());
    else if (k === '--json') a.json = true;
    else if (k === '--rate') a.rate = Number(v());
    else if (k === '--train-every') a.trainEvery = Number(v());
    else if (k === '--engine') a.engine = v();
    else if (k === '--snapshots') a.snapshots = true;
    else if (k === '--glibc-defaults') a.glibcDefaults = true;
    else throw new Error(`unknown option ${k} (use --minutes N, --json, --rate R, --train-every M, --engine auto|native|tfjs, --snapshots, --glibc-defaults)`);
  }
  if (!(a.minutes >= 1) || !Number.isInteger(a.minutes)) throw new Error('--minutes must be a whole number of at least 1');
  if (!(a.rate > 0 && a.rate <= 200)) throw new Error('--rate must be between 0 and 200 requests per second');
  if (!(a.trainEvery >= 1) || !Number.isInteger(a.trainEvery)) throw new Error('--train-every must be a whole number of minutes');
  return a;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** What counts against the run: every unexpected error, with its text (the first ones are printed). */
class Errors {
  list: string[] = [];
  add(what: string): void {
    this.list.push(`${new Date().toISOString().slice(11, 19)} ${what}`);
  }
}

// --- Node-RED in a child process ------------------------------------------------------------

interface Red {
  port: number;
  url: string;
  userDir: string;
  started: () => number;
  tail: () => string;
  exited: () => boolean;
  stop: () => Promise<void>;
}

/**
 * A fresh user directory: this package linked into node_modules as `npm install <folder>` does,
 * the probe plugin beside it, an empty flow file (the flows are deployed through the admin API).
 */
async function startNodeRed(errors: Errors, warnings: string[], settings: Record<string, unknown>, glibcDefaults: boolean): Promise<Red> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-soak-'));
  const modules = path.join(userDir, 'node_modules');
  fs.mkdirSync(modules);
  fs.symlinkSync(ROOT, path.join(modules, 'node-red-mnist'), 'dir');
  const probe = path.join(modules, 'node-red-mnist-soak-probe');
  fs.mkdirSync(probe);
  fs.writeFileSync(path.join(probe, 'package.json'), JSON.stringify({
    name: 'node-red-mnist-soak-probe', version: '1.0.0', private: true, 'node-red': { plugins: { 'mnist-soak-probe': 'probe.js' } },
  }));
  fs.writeFileSync(path.join(probe, 'probe.js'), `module.exports = require(${JSON.stringify(path.join(ROOT, 'bench', 'probe.js'))});\n`);
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({
    name: 'node-red-project', private: true, dependencies: { 'node-red-mnist': `file:${ROOT}` },
  }));
  fs.writeFileSync(path.join(userDir, 'flows.json'), '[]');
  const port = await freePort();
  const settingsFile = path.join(userDir, 'settings.js');
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify({
    uiPort: port, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,
    telemetry: { enabled: false }, editorTheme: { tours: false, palette: { catalogues: [] } },
    logging: { console: { level: 'info' } },
    ...settings,
  })};\n`);

  // glibc's malloc tuned as `npm start` tunes it (scripts/malloc-env.js), unless --glibc-defaults.
  const { mallocEnv } = require(path.join(ROOT, 'scripts', 'malloc-env.js'));
  const child: ChildProcess = spawn(process.execPath,
    ['--expose-gc', require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', settingsFile, '--port', String(port)],
    { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'], env: glibcDefaults ? process.env : mallocEnv() });
  // The log is read line by line and only its tail kept: an hour of it is large.
  const tail: string[] = [];
  let startedFlows = 0;
  let partial = '';
  const onData = (d: Buffer) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 300) tail.shift();
      if (/\[error\]/.test(line)) errors.add(`Node-RED logged: ${line.trim()}`);
      else if (/\[warn\]/.test(line)) warnings.push(line.trim());
      if (/Started flows/.test(line)) startedFlows++;
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let gone = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => { gone = true; resolve(); }));
  const stop = async () => {
    if (!gone) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 90000;
  while (!tail.some((l) => /Server now running/.test(l))) {
    if (gone) { await stop(); throw new Error(`Node-RED exited:\n${tail.join('\n')}`); }
    if (Date.now() > deadline) { await stop(); throw new Error(`Node-RED did not start within 90 s:\n${tail.join('\n')}`); }
    await sleep(200);
  }
  return {
    port, url: `http://127.0.0.1:${port}`, userDir, started: () => startedFlows,
    tail: () => tail.join('\n'), exited: () => gone, stop,
  };
}

async function api(red: Red, method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${red.url}${route}`, {
    method,
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Node-RED-Deployment-Type': 'full' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
}

const probe = (red: Red, gc = false, reset = false, restart = false): Promise<Metrics> =>
  api(red, 'GET', `/mnist-soak/metrics?gc=${gc ? 1 : 0}&reset=${reset ? 1 : 0}&restart=${restart ? 1 : 0}`);

/** A full deploy of `flows`; resolves once the runtime has started them again. */
async function deploy(red: Red, flows: unknown[]): Promise<void> {
  const before = red.started();
  await api(red, 'POST', '/flows', flows);
  const deadline = Date.now() + 60000;
  while (red.started() === before) {
    if (Date.now() > deadline) throw new Error('the flows did not start within 60 s of a deploy');
    await sleep(100);
  }
}

// --- the editor's debug sidebar stream (/comms) ---------------------------------------------

type Listener = (msg: any) => void;

/**
 * The debug messages the editor receives, by debug node id, and every node's status (the nodes
 * show a blue status while they work); reconnects like the editor.
 */
class Debug {
  private ws: any;
  private listeners = new Map<string, Set<Listener>>();
  private closed = false;
  private statuses = new Map<string, { blue: boolean; at: number }>();
  constructor(private red: Red) { this.connect(); }
  private connect(): void {
    this.ws = new WebSocket(`ws://127.0.0.1:${this.red.port}/comms`);
    this.ws.on('open', () => {
      this.ws.send(JSON.stringify({ subscribe: 'debug' }));
      this.ws.send(JSON.stringify({ subscribe: 'status/#' }));
    });
    this.ws.on('message', (data: string) => {
      for (const m of JSON.parse(String(data))) {
        if (typeof m.topic === 'string' && m.topic.startsWith('status/')) {
          this.statuses.set(m.topic.slice('status/'.length), { blue: m.data?.fill === 'blue', at: Date.now() });
        }
        if (m.topic !== 'debug') continue;
        for (const l of this.listeners.get(m.data.id) ?? []) l(m.data.msg);
      }
    });
    this.ws.on('error', () => undefined);
    this.ws.on('close', () => { if (!this.closed) setTimeout(() => this.connect(), 500); });
  }
  on(id: string, l: Listener): () => void {
    if (!this.listeners.has(id)) this.listeners.set(id, new Set());
    this.listeners.get(id)!.add(l);
    return () => this.listeners.get(id)!.delete(l);
  }
  /** The next `count` messages from debug node `id`. */
  next(id: string, ms: number, count = 1): Promise<any[]> {
    return new Promise((resolve, reject) => {
      const got: any[] = [];
      const off = this.on(id, (m) => {
        got.push(m);
        if (got.length === count) { clearTimeout(timer); off(); resolve(got); }
      });
      const timer = setTimeout(() => { off(); reject(new Error(`${got.length} of ${count} messages from debug node ${id} within ${ms / 1000} s`)); }, ms);
    });
  }
  /** Until no node (but those in `ignore`) shows a working (blue) status or changed it for `quietMs`. */
  async idle(quietMs: number, ms: number, ignore: string[]): Promise<void> {
    const deadline = Date.now() + ms;
    for (;;) {
      const watched = [...this.statuses].filter(([id]) => !ignore.includes(id));
      const busy = watched.filter(([, v]) => v.blue || Date.now() - v.at < quietMs);
      if (!busy.length) return;
      if (Date.now() > deadline) throw new Error(`nodes still working after ${ms / 1000} s: ${busy.map(([id]) => id).join(', ')}`);
      await sleep(200);
    }
  }
  close(): void { this.closed = true; this.ws.close(); }
}

// --- a Dashboard 2.0 client ---------------------------------------------------------------------

/** A plain HTTP request (no Origin header: the dashboard refuses cross-origin sockets). */
function request(url: string, method: 'GET' | 'POST', body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' }, timeout: 30000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`${method} ${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * What the dashboard page does over its socket, as socket.io-client does it: an Engine.IO 4
 * handshake by HTTP long-polling (the dashboard refuses a direct WebSocket), the namespace
 * connect, then the upgrade to a WebSocket; it answers pings, asks every widget for its state
 * when the config arrives, sends widget actions, and reconnects when the server drops it (every
 * full redeploy does).
 */
class DashboardClient {
  private ws: any;
  private closed = false;
  connects = 0;
  events = 0;
  private handlers = new Map<string, Set<(arg: any) => void>>();
  constructor(private red: Red) { void this.connect(); }
  private packet(data: string): void {
    if (data === '2') this.ws?.send('3');
    else if (data.startsWith('40')) this.connects++;
    else if (data.startsWith('42')) {
      const [event, ...args] = JSON.parse(data.slice(2));
      this.events++;
      if (event === 'ui-config') for (const id of Object.keys(args[1]?.widgets ?? {})) this.emit('widget-load', id);
      for (const h of this.handlers.get(event) ?? []) h(args[0]);
    }
  }
  private async connect(): Promise<void> {
    if (this.closed) return;
    const base = `http://127.0.0.1:${this.red.port}/dashboard/socket.io/?EIO=4&transport=polling`;
    try {
      const open = JSON.parse((await request(base, 'GET')).slice(1));
      const sid = open.sid as string;
      await request(`${base}&sid=${sid}`, 'POST', '40');
      for (const p of (await request(`${base}&sid=${sid}`, 'GET')).split('\x1e')) this.packet(p);
      const ws = new WebSocket(`ws://127.0.0.1:${this.red.port}/dashboard/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
      this.ws = ws;
      ws.on('open', () => ws.send('2probe'));
      ws.on('message', (data: string | Buffer) => {
        if (typeof data !== 'string') return; // binary attachments (Buffers in a msg) are not read
        if (data === '3probe') ws.send('5');
        else this.packet(data);
      });
      ws.on('error', () => undefined);
      ws.on('close', () => { if (!this.closed) setTimeout(() => void this.connect(), 500); });
    } catch {
      setTimeout(() => void this.connect(), 1000);
    }
  }
  get connected(): boolean { return this.ws?.readyState === WebSocket.OPEN; }
  emit(event: string, ...args: unknown[]): void {
    if (this.connected) this.ws.send(`42${JSON.stringify([event, ...args])}`);
  }
  on(event: string, h: (arg: any) => void): () => void {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(h);
    return () => this.handlers.get(event)!.delete(h);
  }
  /** The next msg a widget receives that satisfies `test`. */
  next(widget: string, test: (msg: any) => boolean, ms: number): Promise<any> {
    return new Promise((resolve, reject) => {
      const off = this.on(`msg-input:${widget}`, (m) => { if (test(m)) { clearTimeout(timer); off(); resolve(m); } });
      const timer = setTimeout(() => { off(); reject(new Error(`no message for dashboard widget ${widget} within ${ms / 1000} s`)); }, ms);
    });
  }
  async waitConnected(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.connected || this.connects === 0) {
      if (Date.now() > deadline) throw new Error(`the dashboard client did not connect within ${ms / 1000} s`);
      await sleep(100);
    }
  }
  close(): void { this.closed = true; this.ws?.close(); }
}

// --- HTTP predict traffic -----------------------------------------------------------------------

/** Requests at a steady rate; answers other than 200 count as errors unless a redeploy was under way. */
class Traffic {
  ok = 0;
  duringRedeploy = 0;
  latencies: number[] = [];
  private timer?: NodeJS.Timeout;
  private inFlight = 0;
  private redeployUntil = 0;
  private sent = 0;
  constructor(private url: string, private images: Array<{ body: Buffer; type: string }>, private errors: Errors) {}
  start(rate: number): void {
    this.timer = setInterval(() => void this.fire(), 1000 / rate);
  }
  /** Requests begun from now until `until()` settles (plus a second) may meet a runtime that restarts. */
  async redeploying<T>(until: () => Promise<T>): Promise<T> {
    this.redeployUntil = Infinity;
    try { return await until(); } finally { this.redeployUntil = Date.now() + 1000; }
  }
  private async fire(): Promise<void> {
    if (this.inFlight >= 50) { this.errors.add('HTTP: 50 requests in flight, Node-RED is not answering'); return; }
    const image = this.images[this.sent++ % this.images.length];
    const t0 = Date.now();
    this.inFlight++;
    const expected = () => t0 <= this.redeployUntil || Date.now() <= this.redeployUntil;
    try {
      const res = await fetch(this.url, { method: 'POST', body: new Uint8Array(image.body), headers: { 'content-type': image.type }, signal: AbortSignal.timeout(30000) });
      const text = await res.text();
      if (res.status === 200 && JSON.parse(text).probabilities?.length === 10) { this.ok++; this.latencies.push(Date.now() - t0); }
      else if (expected()) this.duringRedeploy++;
      else this.errors.add(`HTTP ${res.status}: ${text.slice(0, 200)}`);
    } catch (e) {
      if (expected()) this.duringRedeploy++;
      else this.errors.add(`HTTP request failed: ${(e as Error).message}`);
    } finally {
      this.inFlight--;
    }
  }
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.inFlight > 0) await sleep(50);
  }
  /** p50/p99 of the answers since the last call, and how many. */
  take(): { count: number; p50: number; p99: number } {
    const l = this.latencies.splice(0).sort((a, b) => a - b);
    const q = (p: number) => (l.length ? l[Math.min(l.length - 1, Math.floor(p * l.length))] : 0);
    return { count: l.length, p50: q(0.5), p99: q(0.99) };
  }
}

// --- the run ------------------------------------------------------------------------------------

async function digitImages(): Promise<Array<{ body: Buffer; type: string }>> {
  const svg = (w: number, h: number, digit: string) => Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#fff"/><text x="${w * 0.3}" y="${h * 0.8}" font-size="${h * 0.8}" font-family="DejaVu Sans">${digit}</text></svg>`);
  return [
    { body: await sharp(svg(200, 200, '7')).png().toBuffer(), type: 'image/png' },
    { body: await sharp(svg(280, 280, '3')).png().toBuffer(), type: 'image/png' },
    // A phone-camera-sized picture now and then: 1600x1200 JPEG.
    { body: await sharp(svg(1600, 1200, '4')).jpeg({ quality: 85 }).toBuffer(), type: 'image/jpeg' },
    { body: await sharp(svg(200, 200, '1')).png().toBuffer(), type: 'image/png' },
  ];
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxy = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return sxx ? sxy / sxx : 0;
}

// 'cnn': the dashboard with its Model set to the CNN (one 60k epoch).
const TRAININGS = ['http', 'tutorial', 'dashboard', 'folder', 'cnn'] as const;
type Training = typeof TRAININGS[number];
const TRAIN_TIMEOUT = 15 * 60000;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const say = (line: string) => console.log(line);
  const errors = new Errors();
  const warnings: string[] = [];
  const settings: Record<string, unknown> = {};
  if (args.engine) settings.mnistEngine = args.engine;
  const red = await startNodeRed(errors, warnings, settings, args.glibcDefaults);
  const t0 = Date.now();
  const clock = () => `${String(Math.floor((Date.now() - t0) / 60000)).padStart(2)}:${String(Math.floor((Date.now() - t0) / 1000) % 60).padStart(2, '0')}`;
  let debug: Debug | undefined;
  let dashboard: DashboardClient | undefined;
  let traffic: Traffic | undefined;
  let exitCode = 1;
  try {
    const flows = EXAMPLES.flatMap((f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')));
    await deploy(red, flows);
    debug = new Debug(red);
    for (const id of ['dbg_err', 'f_err']) debug.on(id, (m) => errors.add(`debug node ${id}: ${typeof m === 'string' ? m : JSON.stringify(m)}`));
    dashboard = new DashboardClient(red);
    await dashboard.waitConnected(30000);
    dashboard.on('msg-input:dash_status', (m) => { if (/^error:/.test(String(m?.payload))) errors.add(`dashboard status: ${m.payload}`); });
    dashboard.on('msg-input:dash_notify', (m) => errors.add(`dashboard notice: ${m?.payload}`));
    const images = await digitImages();
    traffic = new Traffic(`${red.url}/mnist/predict`, images, errors);
    const drawing = `data:image/png;base64,${images[1].body.toString('base64')}`;

    // Baselines: the flows deployed, the dashboard connected, nothing run yet.
    const start = await probe(red, true, true, true);
    say(`node-red-mnist soak: ${args.minutes} min, Node-RED ${red.url} (user dir ${red.userDir}), HTTP ${args.rate}/s, a full training every ${args.trainEvery} min, glibc malloc ${args.glibcDefaults ? 'defaults' : 'tuned (scripts/malloc-env.js)'}`);
    say(`${clock()} start     rss ${start.rssMB.toFixed(0)} MB · heap ${start.heapUsedMB.toFixed(0)} MB · tensors ${start.tensors} · registry ${start.registry} · handles ${start.handles}`);

    const trainingPairs: Array<{ kind: Training; before: number; after: number; warm: boolean }> = [];
    const idle: Array<[number, number]> = []; // [minutes since start, idle RSS after the redeploy]
    let samplesWritten = false;

    const train = async (kind: Training, warm = false) => {
      await sleep(2000);
      const b = await probe(red, true);
      const before = b.rssMB;
      const s = Date.now();
      let detail = '';
      if (kind === 'http') {
        const saved = debug!.next('h_dbg_saved', TRAIN_TIMEOUT);
        await api(red, 'POST', '/inject/h_inj_train');
        detail = `saved ${JSON.parse((await saved)[0]).folder}`;
      } else if (kind === 'folder') {
        const saved = debug!.next('f_dbg_saved', TRAIN_TIMEOUT);
        await api(red, 'POST', '/inject/f_inj_train');
        detail = `saved ${JSON.parse((await saved)[0]).folder}`;
      } else if (kind === 'tutorial') {
        const accuracy = debug!.next('dbg_acc', TRAIN_TIMEOUT);
        await api(red, 'POST', '/inject/inj_train');
        detail = `test accuracy ${(Number((await accuracy)[0]) * 100).toFixed(1)} %`;
      } else {
        let points = 0;
        const offChart = dashboard!.on('msg-input:dash_chart', () => { points++; });
        const accuracy = dashboard!.next('dash_accuracy', (m) => /%/.test(String(m?.payload)), TRAIN_TIMEOUT);
        const cnn = kind === 'cnn';
        dashboard!.emit('widget-action', 'dash_settings', { topic: 'train', payload: { model: cnn ? 'cnn' : 'mlp', epochs: cnn ? 1 : 3, learningRate: 0.001, optimizer: 'adam', loss: 'crossentropy', batchSize: 128, limit: 0 } });
        detail = `${(await accuracy).payload}, ${points} loss-chart updates`;
        offChart();
        // A digit drawn on the canvas, predicted with the model the dashboard keeps.
        const answer = dashboard!.next('dash_pred_view', (m) => m?.payload !== undefined, 60000);
        dashboard!.emit('widget-action', 'dash_canvas', { topic: 'drawing', payload: drawing });
        const p = (await answer).payload;
        if (p?.error) errors.add(`dashboard prediction: ${p.error}`);
        else detail += `, drawing predicted`;
      }
      const seconds = (Date.now() - s) / 1000;
      // The rest of the flow (plots, the tutorial's 10k batch predict) ends: no node works any more.
      await debug!.idle(3000, 120000, ['h_predict']);
      await sleep(2000);
      const a = await probe(red, true);
      const after = a.rssMB;
      trainingPairs.push({ kind, before, after, warm });
      say(`${clock()} ${warm ? 'warm-up ' : 'training'}  ${kind}: ${seconds.toFixed(0)} s, ${detail}; idle RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB`
        + ` (wasm ${b.wasmHeapMB.toFixed(0)} -> ${a.wasmHeapMB.toFixed(0)}, js heap ${b.heapUsedMB.toFixed(0)}/${b.heapTotalMB.toFixed(0)} -> ${a.heapUsedMB.toFixed(0)}/${a.heapTotalMB.toFixed(0)},`
        + ` array buffers ${b.arrayBuffersMB.toFixed(0)} -> ${a.arrayBuffersMB.toFixed(0)}, registry ${b.registry} -> ${a.registry})`);
    };

    const folderPredict = async () => {
      if (!samplesWritten) {
        await api(red, 'POST', '/inject/f_inj_samples');
        await sleep(1000);
        samplesWritten = true;
      }
      const answers = debug!.next('f_debug', 60000, 3);
      await api(red, 'POST', '/inject/f_inj_files');
      return (await answers).map((a) => (typeof a === 'string' ? JSON.parse(a) : a).digit).join('');
    };

    const redeploy = () => traffic!.redeploying(async () => deploy(red, await api(red, 'GET', '/flows')));

    // Warm-up: every example runs once, so what the first use of each loads for good (the wasm
    // backend, vega and fonts for the plots, JIT-compiled code) is not taken for growth; the
    // trainings of the warm-up are printed but not judged.
    say(`${clock()} warm-up: each example trains once, then the ${args.minutes} measured minutes begin`);
    for (const kind of TRAININGS) {
      try {
        await train(kind, true);
        // The HTTP example's model folder exists from here on: its traffic starts.
        if (kind === 'http') traffic.start(args.rate);
      } catch (e) {
        errors.add(`warm-up ${kind}: ${(e as Error).message}`);
      }
    }
    try {
      say(`${clock()} warm-up   folder predicted ${await folderPredict()}`);
      await redeploy();
    } catch (e) {
      errors.add(`warm-up: ${(e as Error).message}`);
    }
    const t1 = Date.now();
    const snapshot = async () => (await api(red, 'GET', '/mnist-soak/metrics?gc=1&snapshot=1')).snapshot as string;
    const firstSnapshot = args.snapshots ? await snapshot() : undefined;

    // The RSS slope is taken after a further settling time (10 minutes of a long run).
    const settle = args.minutes >= 20 ? 10 : Math.max(1, Math.floor(args.minutes / 3));
    for (let minute = 1; minute <= args.minutes; minute++) {
      const deadline = t1 + minute * 60000;
      if (red.exited()) throw new Error('Node-RED exited');
      let what = '';
      try {
        if ((minute - 1) % args.trainEvery === 0) await train(TRAININGS[Math.floor((minute - 1) / args.trainEvery) % TRAININGS.length]);
        what = `folder predicted ${await folderPredict()}`;
      } catch (e) {
        errors.add(`minute ${minute}: ${(e as Error).message}`);
      }
      await sleep(deadline - Date.now());
      try {
        await redeploy();
      } catch (e) {
        errors.add(`redeploy at minute ${minute}: ${(e as Error).message}`);
      }
      // The HTTP traffic loads the saved model again after the redeploy; the figures settle.
      await sleep(3000);
      const m = await probe(red, true, true);
      if (minute > settle || minute === args.minutes) idle.push([(Date.now() - t1) / 60000, m.rssMB]);
      const h = traffic.take();
      const lag = m.eventLoop;
      say(`${clock()} minute ${String(minute).padStart(2)}: rss ${m.rssMB.toFixed(0)} MB · js heap ${m.heapUsedMB.toFixed(0)}/${m.heapTotalMB.toFixed(0)} MB · wasm ${m.wasmHeapMB.toFixed(0)} MB · external ${m.externalMB.toFixed(0)} MB (array buffers ${m.arrayBuffersMB.toFixed(0)})`
        + ` · tensors ${m.tensors} · registry ${m.registry} · handles ${m.handles} · event loop p50 ${lag.p50Ms} p99 ${lag.p99Ms} max ${lag.maxMs} ms (longest gc ${m.gc.maxMs} ms)`
        + ` · HTTP ${h.count} ok (p50 ${h.p50} p99 ${h.p99} ms), ${traffic.duringRedeploy} during redeploys · dashboard connects ${dashboard.connects}, events ${dashboard.events}`
        + ` · errors ${errors.list.length}${what ? ` · ${what}` : ''}`);
    }

    // The end: traffic stopped, one more full redeploy frees what the flows hold; back to baseline?
    await traffic.stop();
    await deploy(red, await api(red, 'GET', '/flows'));
    await sleep(3000);
    const end = await probe(red, true);
    if (firstSnapshot) {
      const last = await snapshot();
      say(`          JS heap growth from the warm-up's end (${firstSnapshot}) to the end (${last}):`);
      for (const line of diff(firstSnapshot, last)) say(`            ${line}`);
    }
    // The training whose idle RSS grew most, of the measured ones.
    const judged = trainingPairs.filter((p) => !p.warm);
    const worst = judged.reduce<typeof judged[number] | undefined>((w, p) => (!w || p.after - p.before > w.after - w.before ? p : w), undefined);
    const windowMinutes = idle.length > 1 ? idle[idle.length - 1][0] - idle[0][0] : 0;
    const result = {
      minutes: args.minutes,
      rssSlopeMBPerHour: round(slope(idle) * 60, 2),
      rssStartMB: round(idle[0]?.[1] ?? start.rssMB),
      rssEndMB: round(idle[idle.length - 1]?.[1] ?? end.rssMB),
      tensorsStart: start.tensors,
      tensorsEnd: end.tensors,
      registryStart: start.registry,
      registryEnd: end.registry,
      eventLoopP99Ms: end.eventLoopTotal.p99Ms,
      idleRssBeforeTrainMB: round(worst?.before ?? NaN),
      idleRssAfterTrainMB: round(worst?.after ?? NaN),
      errors: errors.list.length,
    };
    say(`${clock()} end       rss ${end.rssMB.toFixed(0)} MB · tensors ${end.tensors} (start ${start.tensors}) · registry ${end.registry} (start ${start.registry}) · handles ${end.handles} (start ${start.handles}: ${JSON.stringify(end.handleKinds)})`);
    say(`          event loop over the run: p50 ${end.eventLoopTotal.p50Ms} p99 ${end.eventLoopTotal.p99Ms} max ${end.eventLoopTotal.maxMs} ms (2 shared cores: figures are pessimistic)`);
    const pairs = (list: typeof trainingPairs) => list.map((p) => `${p.kind} ${p.before.toFixed(0)}->${p.after.toFixed(0)}`).join(', ');
    say(`          idle RSS before -> after each training: warm-up ${pairs(trainingPairs.filter((p) => p.warm))}; measured ${pairs(judged)} MB`);
    say(`          RSS slope ${result.rssSlopeMBPerHour} MB/h over ${windowMinutes.toFixed(0)} min after the warm-up and ${settle} more min (${idle.map((p) => p[1].toFixed(0)).join(' ')} MB)`);
    say(`          HTTP: ${traffic.ok} answered 200, ${traffic.duringRedeploy} failed while a redeploy was under way; Node-RED warnings: ${warnings.length}`);
    for (const w of warnings.slice(0, 5)) say(`          warn: ${w}`);
    for (const e of errors.list.slice(0, 20)) say(`          ERROR ${e}`);

    const failures: string[] = [];
    if (result.errors > 0) failures.push(`${result.errors} unexpected errors`);
    if (result.tensorsEnd !== result.tensorsStart) failures.push(`tensors ${result.tensorsStart} -> ${result.tensorsEnd}`);
    if (result.registryEnd !== result.registryStart) failures.push(`registry entries ${result.registryStart} -> ${result.registryEnd}`);
    if (!worst) failures.push('no measured training completed');
    else if (!(result.idleRssAfterTrainMB - result.idleRssBeforeTrainMB < 100)) failures.push(`idle RSS ${result.idleRssBeforeTrainMB} MB before a training, ${result.idleRssAfterTrainMB} MB after (limit +100 MB)`);
    if (windowMinutes >= 10 && !(result.rssSlopeMBPerHour < 5)) failures.push(`RSS grows ${result.rssSlopeMBPerHour} MB/h (limit 5)`);
    if (windowMinutes < 10) say('          (RSS slope not judged: fewer than 10 minutes after the warm-up)');
    if (result.eventLoopP99Ms >= 50) say(`          note: event-loop p99 ${result.eventLoopP99Ms} ms is over 50 ms (timing, not growth: reported, not failed)`);
    for (const f of failures) say(`FAIL: ${f}`);
    if (!failures.length) say('OK: no growth, no unexpected errors');
    if (args.json) say(JSON.stringify(result));
    exitCode = failures.length ? 1 : 0;
  } catch (e) {
    console.error(`soak aborted: ${(e as Error).stack}\n--- Node-RED log (tail) ---\n${red.tail().slice(-5000)}`);
  } finally {
    await traffic?.stop();
    dashboard?.close();
    debug?.close();
    await red.stop();
  }
  process.exit(exitCode);
}

main().catch((e) => { console.error(e); process.exit(1); });
