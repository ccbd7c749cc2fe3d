import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow, NodeStatus } from 'node-red';
import { initBackend, noteFailure } from '../lib/backend';
import { DEFAULT_MEMORY_MB } from '../lib/engine/budget';
import { STOP } from '../lib/engine/run';
import { DIGITS, SplitView } from '../lib/dataset';
import { MnistError, Params, message } from '../lib/messages';
import { ModelEntry, describe, inputSize } from '../lib/model';
import * as registry from '../lib/registry';
import { OPTIONS, Values, readOptions } from './options';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a message carries whatever flows put in it; nodes check what they read
export type Msg = NodeMessageInFlow & Record<string, any>;
export type Output = NodeMessage | null | Array<NodeMessage | null>;

/** Text in the user's language: a catalog key (common.json or the node's own) and its parameters. */
export type T = (key: string, params?: Params) => string;

export interface Job {
  msg: Msg;
  node: Node;
  /** Aborted by close/redeploy (and by msg.stop where a node supports it). */
  signal: AbortSignal;
  backend: string;
  /** the memory one operation may take (setting mnistMemoryLimitMB) */
  memoryMB: number;
  t: T;
  /** Sets a blue (or other) status from a catalog key. */
  status: (key: string, params?: Params, fill?: NodeStatus['fill']) => void;
  send: (out: Output) => void;
}

export interface Runner {
  /** Handles one message; returns what to send when done (null: nothing). */
  run: (job: Job) => Promise<Output>;
  /** A msg.stop=true aborts the running job instead of starting one (long-running nodes). */
  stoppable?: boolean;
  /** Messages that may wait while one runs; beyond that they fail with a "busy" error. 0: warn and drop. */
  queue?: number;
  /** Text for the status once a run succeeds. */
  doneText?: (out: Output, job: Job) => string;
}

/**
 * Node-RED's RED._ for this node's catalog (locales/<lang>/<type>.json, common.json merged in at
 * build time), in the runtime's language. Where no catalog is loaded (the test helper's RED._
 * returns the key), the English text from locales/en-US is used.
 */
export function translator(RED: NodeAPI, type: string): T {
  const _ = (RED as unknown as { _?: (key: string, params?: Params) => string })._;
  return (key, params = {}) => {
    const text = _?.(key, params);
    return typeof text === 'string' && text !== '' && text !== key ? text : message(key, params, [type]);
  };
}

/** An error in the user's language: MnistError codes are translated, anything else is kept. */
export function translateError(t: T, e: unknown): Error {
  // tfjs's own words when a model was freed under a running operation: say what happened instead.
  if (e instanceof Error && !(e instanceof MnistError) && /is already disposed|Tensor is disposed/.test(e.message)) {
    e = new MnistError('model-freed-in-use');
  }
  if (e instanceof MnistError) {
    const text = t(`errors.${e.code}`, e.params);
    const err = new Error(e.where ? `${e.where}: ${text}` : text) as Error & { code?: string };
    err.code = e.code;
    return err;
  }
  return e instanceof Error ? e : new Error(String(e));
}

/** Short form of an error for the node status (the full one goes to done(err)). */
function short(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

type Done = (err?: Error) => void;
type Send = (out: NodeMessage | Array<NodeMessage | null>) => void;

/**
 * The one place that owns a node's life: input handling, one job at a time (with an optional
 * bounded queue), status colours, errors through done(err) so Catch nodes see them, and on
 * close: stop the job, free what the node made (registry), and finish within Node-RED's 15 s.
 */
export function attach(RED: NodeAPI, node: Node, runner: Runner): void {
  const t = translator(RED, node.type);
  let running: { controller: AbortController; promise: Promise<void> } | null = null;
  let closed = false;
  const waiting: Array<{ msg: Msg; send: Send; done: Done; release: () => void }> = [];
  const settings = RED.settings as unknown as Record<string, unknown>;
  const memoryMB = Number(settings.mnistMemoryLimitMB) > 0 ? Number(settings.mnistMemoryLimitMB) : DEFAULT_MEMORY_MB;

  const start = (msg: Msg, send: Send, done: Done, release: () => void) => {
    const controller = new AbortController();
    const promise = (async () => {
      try {
        if (!waiting.length) node.status({ fill: 'blue', shape: 'dot', text: t('status.working') });
        const backend = await initBackend(settings.mnistBackend as string | undefined, (key, params) => RED.log.info(t(key, params)));
        const job: Job = {
          msg, node, signal: controller.signal, backend, t, memoryMB,
          // A closed node says nothing more: a status after close's node.status({}) would stay for
          // good (a training that outlives close's 10 s wait still reports progress).
          status: (key, params, fill = 'blue') => { if (!closed) node.status({ fill, shape: fill === 'blue' ? 'dot' : 'ring', text: t(key, params) }); },
          send: (out) => { if (!closed && out) send(out as NodeMessage); },
        };
        const out = await runner.run(job);
        if (closed) return done();
        if (out) send(out as NodeMessage);
        node.status({ fill: 'green', shape: 'dot', text: runner.doneText ? runner.doneText(out, job) : t('status.done') });
        done();
      } catch (e) {
        // msg.stop on a node without partial results (a download, say): stopped, not failed.
        if (controller.signal.reason === STOP && !closed) {
          node.status({ fill: 'yellow', shape: 'ring', text: t('status.stopped') });
          return done();
        }
        noteFailure(e);
        const err = translateError(t, e);
        if (!closed) node.status({ fill: 'red', shape: 'ring', text: short(err.message) });
        done(err);
      } finally {
        // What it received is no longer in its hands: done with, or sent on. Released after Node-RED
        // has delivered what it sent (delivery is a setImmediate queued before this one), so the next
        // node holds it first and it is never out of every node's hands on its way.
        setImmediate(release);
        running = null;
        const next = closed ? undefined : waiting.shift();
        if (next) start(next.msg, next.send, next.done, next.release);
      }
    })();
    running = { controller, promise };
  };

  node.on('input', (msg: Msg, send: Send, done: Done) => {
    // The data and models this message carries are in this node's hands until it has handled it:
    // their maker must not free them meanwhile (waitForOwnOutput).
    const release = registry.pass(handlesIn(msg), node.id);
    const drop = (err?: Error) => { release(); done(err); };
    if (runner.stoppable && msg.stop === true) {
      if (running) {
        running.controller.abort(STOP);
        // Still at work until the job ends: a yellow dot (a yellow ring means stopped).
        node.status({ fill: 'yellow', shape: 'dot', text: t('status.stopping') });
      } else {
        node.warn(t('warnings.nothing-to-stop'));
      }
      return drop();
    }
    if (!running) return start(msg, send, done, release);
    if (waiting.length < (runner.queue ?? 0)) {
      waiting.push({ msg, send, done, release });
      return;
    }
    if (runner.queue) return drop(translateError(t, new MnistError('busy', { waiting: waiting.length })));
    node.warn(t(runner.stoppable ? 'warnings.busy-stoppable' : 'warnings.busy'));
    drop();
  });

  node.on('close', (_removed: boolean, done: () => void) => {
    closed = true;
    for (const w of waiting.splice(0)) { w.release(); w.done(translateError(t, new MnistError('closed-before-handled'))); }
    const current = running;
    current?.controller.abort();
    const finish = () => {
      registry.disposeOwner(node.id);
      node.status({});
      done();
    };
    if (!current) return finish();
    const timer = setTimeout(finish, 10000);
    current.promise.finally(() => { clearTimeout(timer); finish(); });
  });
}

/** How long a node waits for what it sent last time to be out of other nodes' hands. */
export const IN_HAND_WAIT_MS = 10000;

/**
 * Waits while another node has in hand a message carrying what `owner` sent last time (it is on
 * its way to a training, or being predicted or evaluated: registry.pass), so that running the
 * owner again does not free it under that node; refuses after IN_HAND_WAIT_MS. Two presses of
 * Train in quick succession: the second waits until the first one's data has reached the training,
 * which then refuses it (data-in-use, model-in-use) instead of losing the first.
 */
export async function waitForOwnOutput(owner: string, signal: AbortSignal): Promise<void> {
  const until = Date.now() + IN_HAND_WAIT_MS;
  // Read or in training: no waiting, the caller refuses at once (data-in-use, model-in-use).
  for (let by = registry.passingOf(owner); by && !registry.busyOf(owner); by = registry.passingOf(owner)) {
    if (signal.aborted) throw new MnistError('closed-before-handled');
    if (Date.now() > until) throw new MnistError('output-in-flight', { by, seconds: IN_HAND_WAIT_MS / 1000 });
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The handles a message carries: its dataset's splits and its model(s). */
function handlesIn(msg: Msg): unknown[] {
  const ds = msg.dataset && typeof msg.dataset === 'object' ? msg.dataset : {};
  return [ds.train, ds.test, ...(Array.isArray(msg.model) ? msg.model : [msg.model])].filter((h) => h && typeof h === 'object');
}

/** A node's options from its configuration and (where its table allows) the message. */
export function options<K extends keyof typeof OPTIONS>(type: K, config: object, msg?: Msg): Values<typeof OPTIONS[K]> {
  return readOptions(OPTIONS[type], config as Record<string, unknown>, msg);
}

/** msg.dataset with the named split resolved, or a clear error. */
export function needDataset(msg: Msg): { name: string; classes: string[]; train?: registry.Handle; test?: registry.Handle; normalization?: unknown } {
  const ds = msg.dataset;
  if (!ds || typeof ds !== 'object' || !Array.isArray(ds.classes)) throw new MnistError('no-dataset');
  return ds;
}

/** The split `which` of msg.dataset, resolved, or an error that says how to load it. */
export function needSplit(msg: Msg, which: 'train' | 'test'): SplitView {
  const ds = needDataset(msg);
  if (!ds[which]) throw new MnistError('no-split', { split: which });
  return registry.resolve<SplitView>(ds[which], 'split', `msg.dataset.${which}`);
}

/** Registers a split and returns its JSON-safe handle. */
export function splitHandle(owner: string, dataset: string, which: string, view: SplitView) {
  return registry.register(owner, 'split', view, {
    name: dataset, split: which, count: view.count, shape: [view.rows, view.cols], normalization: view.normalization,
  });
}

/**
 * What a model-building node needs from msg.dataset: the class names and the image shape of the
 * real split (a message's own summary fields could claim anything), or MNIST's without a dataset.
 * Refuses while the node's previous model is still being trained or saved (call waitForOwnOutput first).
 */
export function modelInputs(msg: Msg, owner: string): { classes: string[]; inputShape: [number, number]; normalization: SplitView['normalization'] } {
  const busy = registry.busyOf(owner);
  if (busy) throw new MnistError('model-in-use', { by: busy });
  const ds = msg.dataset === undefined || msg.dataset === null ? undefined : needDataset(msg);
  const classes: string[] = ds ? ds.classes.map(String) : DIGITS;
  if (classes.length < 2 || classes.length > 256) throw new MnistError('class-count', { count: classes.length });
  const which = ds?.train ? 'train' : ds?.test ? 'test' : undefined;
  const view = which ? registry.resolve<SplitView>(ds![which], 'split', `msg.dataset.${which}`) : undefined;
  if (view && view.classes !== classes.length) throw new MnistError('class-names-mismatch', { names: classes.length, classes: view.classes });
  return { classes, inputShape: view ? [view.rows, view.cols] : [28, 28], normalization: view?.normalization ?? null };
}

/** Registers a model (owned by `owner`) and returns its handle; the registry frees it later. */
export function modelHandle(owner: string, entry: ModelEntry): registry.Handle {
  const d = describe(entry.model);
  return registry.register(owner, 'model', entry, {
    layers: d.layers, parameters: d.parameters, inputSize: d.inputSize, classes: entry.meta.classes,
  }, () => entry.model.dispose());
}

/** Checks that a model fits a split (input size and the split's own classes) and says how to fix it if not. */
export function checkFit(entry: ModelEntry, view: SplitView): void {
  const classes = view.classes;
  const inputs = inputSize(entry.model);
  const outputs = Number(entry.model.outputs[0].shape[1]);
  const pixels = view.rows * view.cols;
  if (inputs !== pixels) throw new MnistError('model-input-mismatch', { inputs, rows: view.rows, cols: view.cols, pixels });
  if (outputs !== classes) throw new MnistError('model-classes-mismatch', { outputs, classes });
}
