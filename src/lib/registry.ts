/**
 * Tensors and models never travel in messages: Node-RED deep-clones messages, and a cloned
 * tf.Tensor or LayersModel is broken (see docs/ARCHITECTURE.md). Messages carry small JSON-safe
 * handles instead; the objects live here, each owned by the node that made it, and are freed
 * when that node runs again or closes.
 */

import { MnistError } from './messages';

export type Kind = 'split' | 'model';

export interface Handle {
  id: string;
  kind: Kind;
  [summary: string]: unknown;
}

interface Entry {
  kind: Kind;
  owner: string;
  value: unknown;
  dispose?: () => void;
  busy?: string;
  /** nodes reading it for a while (a training reads its split); several at once */
  readers?: string[];
  /** nodes with a message carrying it in hand (received, queued or at work): it is on its way */
  passing?: string[];
}


const entries = new Map<string, Entry>();
let counter = 0;

export function register<T>(owner: string, kind: Kind, value: T, summary: Record<string, unknown>, dispose?: () => void): Handle {
  const id = `${kind}-${Date.now().toString(36)}-${(++counter).toString(36)}`;
  entries.set(id, { kind, owner, value, dispose });
  return { ...summary, id, kind };
}

function isHandle(x: unknown): x is Handle {
  return typeof x === 'object' && x !== null && typeof (x as Handle).id === 'string' && typeof (x as Handle).kind === 'string';
}

/** The object behind a handle, or a clear error that says which node to run again. */
export function resolve<T>(handle: unknown, kind: Kind, what = kind === 'model' ? 'msg.model' : 'the dataset split'): T {
  if (!isHandle(handle) || handle.kind !== kind) throw new MnistError(`not-a-${kind}`, { what });
  const entry = entries.get(handle.id);
  if (!entry || entry.kind !== kind) throw new MnistError(`${kind}-gone`, { what, id: handle.id });
  return entry.value as T;
}

export function isAlive(handle: Handle): boolean {
  return entries.has(handle.id);
}

/** Marks an entry as in use by a node (e.g. a model being trained); returns a release function. */
export function acquire(handle: Handle, user: string): () => void {
  const entry = entries.get(handle.id);
  if (!entry) throw new MnistError(`${handle.kind}-gone`, { what: handle.kind, id: handle.id });
  if (entry.busy) throw new MnistError('handle-busy', { what: handle.kind, by: entry.busy });
  entry.busy = user;
  return () => { if (entry.busy === user) entry.busy = undefined; };
}

/**
 * Marks an entry as read by a node for a while (a training reads its split); unlike acquire,
 * several nodes may read one entry at once. Returns a release function.
 */
export function read(handle: Handle, user: string): () => void {
  const entry = entries.get(handle.id);
  if (!entry) throw new MnistError(`${handle.kind}-gone`, { what: handle.kind, id: handle.id });
  (entry.readers ??= []).push(user);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    entry.readers!.splice(entry.readers!.indexOf(user), 1);
  };
}

/**
 * Which node an owner's entries are busy with or read by, if any: a node must not free what it
 * made last time (a model in training, the split a training reads) by running again.
 */
export function busyOf(owner: string): string | undefined {
  for (const e of entries.values()) if (e.owner === owner && (e.busy || e.readers?.length)) return e.busy ?? e.readers![0];
  return undefined;
}

/**
 * Marks the entries a message carries (alive ones) as in the hands of a node that received it,
 * until the returned function is called (the node has handled the message). What a node sent is
 * thus never unmarked on its way through a flow (mnist-dataset -> normalize -> mlp-model ->
 * sgd-train): each node holds it until the next one has it, and the training then reads it.
 */
export function pass(handles: unknown[], user: string): () => void {
  const held: Entry[] = [];
  for (const h of handles) {
    const entry = isHandle(h) ? entries.get(h.id) : undefined;
    if (entry && !held.includes(entry)) { (entry.passing ??= []).push(user); held.push(entry); }
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    for (const entry of held) entry.passing!.splice(entry.passing!.indexOf(user), 1);
  };
}

/**
 * A node (other than the owner) that has a message carrying one of the owner's entries in hand:
 * running the owner again now would free that entry under it.
 */
export function passingOf(owner: string): string | undefined {
  for (const e of entries.values()) {
    const other = e.owner === owner ? e.passing?.find((u) => u !== owner) : undefined;
    if (other) return other;
  }
  return undefined;
}

export function disposeOne(id: string): void {
  const entry = entries.get(id);
  if (!entry) return;
  entries.delete(id);
  entry.dispose?.();
}

/** Frees everything a node made (called on a new run and on close). */
export function disposeOwner(owner: string): void {
  for (const [id, entry] of [...entries]) if (entry.owner === owner) disposeOne(id);
}

export function count(owner?: string): number {
  let n = 0;
  for (const e of entries.values()) if (!owner || e.owner === owner) n++;
  return n;
}
