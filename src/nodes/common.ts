import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow, NodeStatus } from 'node-red';
import { initBackend } from '../lib/backend';
import { SplitView } from '../lib/dataset';
import { ModelEntry, describe } from '../lib/model';
import * as registry from '../lib/registry';

export type Msg = NodeMessageInFlow & Record<string, any>;
export type Output = NodeMessage | null | Array<NodeMessage | null>;

export interface Job {
  msg: Msg;
  node: Node;
  /** Aborted by close/redeploy (and by msg.stop where a node supports it). */
  signal: AbortSignal;
  backend: string;
  status: (text: string, fill?: NodeStatus['fill']) => void;
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
  let running: { controller: AbortController; promise: Promise<void> } | null = null;
  let closed = false;
  const waiting: Array<{ msg: Msg; send: Send; done: Done }> = [];
  const settings = RED.settings as unknown as Record<string, unknown>;

  const start = (msg: Msg, send: Send, done: Done) => {
    const controller = new AbortController();
    const promise = (async () => {
      try {
        if (!waiting.length) node.status({ fill: 'blue', shape: 'dot', text: 'working…' });
        const backend = await initBackend(settings.mnistBackend as string | undefined, (m) => RED.log.info(m));
        const job: Job = {
          msg, node, signal: controller.signal, backend,
          status: (text, fill = 'blue') => node.status({ fill, shape: fill === 'blue' ? 'dot' : 'ring', text }),
          send: (out) => { if (!closed && out) send(out as NodeMessage); },
        };
        const out = await runner.run(job);
        if (closed) return done();
        if (out) send(out as NodeMessage);
        node.status({ fill: 'green', shape: 'dot', text: runner.doneText ? runner.doneText(out, job) : 'done' });
        done();
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        if (!closed) node.status({ fill: 'red', shape: 'ring', text: short(err.message) });
        done(err);
      } finally {
        running = null;
        const next = closed ? undefined : waiting.shift();
        if (next) start(next.msg, next.send, next.done);
      }
    })();
    running = { controller, promise };
  };

  node.on('input', (msg: Msg, send: Send, done: Done) => {
    if (runner.stoppable && msg.stop === true) {
      if (running) {
        running.controller.abort();
        node.status({ fill: 'yellow', shape: 'ring', text: 'stopping…' });
      } else {
        node.warn('nothing to stop: no training is running');
      }
      return done();
    }
    if (!running) return start(msg, send, done);
    if (waiting.length < (runner.queue ?? 0)) {
      waiting.push({ msg, send, done });
      return;
    }
    if (runner.queue) return done(new Error(`busy: ${waiting.length} messages are already waiting; try again later`));
    node.warn('still busy with the previous message; this one was ignored (send msg.stop = true to stop the running one)');
    done();
  });

  node.on('close', (_removed: boolean, done: () => void) => {
    closed = true;
    for (const w of waiting.splice(0)) w.done(new Error('the node was closed or redeployed before this message was handled'));
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

/** Config fields arrive as strings from the editor, or missing from hand-written flows. */
export function num(value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isFinite(n) ? n : NaN;
}

export function bool(value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || value === '') return fallback;
  return value === true || value === 'true';
}

/** msg.dataset with the named split resolved, or a clear error. */
export function needDataset(msg: Msg): { name: string; classes: string[]; train?: registry.Handle; test?: registry.Handle; normalization?: unknown } {
  const ds = msg.dataset;
  if (!ds || typeof ds !== 'object' || !Array.isArray(ds.classes)) {
    throw new Error('msg.dataset is missing: wire an mnist-dataset node (and normalize) before this node');
  }
  return ds;
}

/** Registers a split and returns its JSON-safe handle. */
export function splitHandle(owner: string, dataset: string, which: string, view: SplitView) {
  return registry.register(owner, 'split', view, {
    name: dataset, split: which, count: view.count, shape: [view.rows, view.cols], normalization: view.normalization,
  });
}

/** Registers a model (owned by `owner`) and returns its handle; the registry frees it later. */
export function modelHandle(owner: string, entry: ModelEntry): registry.Handle {
  const d = describe(entry.model);
  return registry.register(owner, 'model', entry, {
    layers: d.layers, parameters: d.parameters, inputSize: d.inputSize, classes: entry.meta.classes,
  }, () => entry.model.dispose());
}

/** Checks that a model fits a split (input size and classes) and says how to fix it if not. */
export function checkFit(entry: ModelEntry, view: SplitView, classes: number): void {
  const inputSize = Number(entry.model.inputs[0].shape[1]);
  const outputs = Number(entry.model.outputs[0].shape[1]);
  if (inputSize !== view.rows * view.cols) {
    throw new Error(`the model takes ${inputSize} inputs but the images have ${view.rows}x${view.cols} = ${view.rows * view.cols} pixels; build the model from this dataset`);
  }
  if (outputs !== classes) throw new Error(`the model has ${outputs} outputs but the dataset has ${classes} classes; build the model from this dataset`);
}
