import type { Node, NodeAPI, NodeDef } from 'node-red';
import * as path from 'path';
import { Dataset, SourceKind, Splits, loadDataset } from '../lib/dataset';
import * as registry from '../lib/registry';
import { attach, bool, num, splitHandle } from './common';

interface Config extends NodeDef {
  source?: SourceKind; folder?: string; url?: string; splits?: Splits;
  limit?: string | number; shuffle?: boolean | string; seed?: string | number; classes?: string;
  allowMsgPath?: boolean | string;
}

export = (RED: NodeAPI) => {
  function MnistDatasetNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    const allowMsgPath = bool(config.allowMsgPath, false);
    attach(RED, node, {
      async run({ msg, signal, status }) {
        // Paths are read from the node's own configuration; a message may choose one only when
        // the user ticked "allow msg.folder / msg.url" (a flow may feed messages from outside).
        let source = config.source || 'embedded';
        let folder = config.folder;
        let url = config.url;
        const fromMsg = (['folder', 'url'] as const).filter((k) => msg[k] !== undefined && msg[k] !== null);
        if (fromMsg.length && !allowMsgPath) {
          throw new Error(`msg.${fromMsg[0]} was refused: this node does not take paths from messages; tick "allow msg.folder / msg.url" in its settings to allow it`);
        }
        if (fromMsg.length > 1) throw new Error('msg.folder and msg.url were both set: send one of them');
        const [key] = fromMsg;
        if (key) {
          const value = msg[key];
          if (typeof value !== 'string' || !value.trim()) throw new Error(`msg.${key} must be a non-empty string`);
          source = key;
          if (key === 'folder') folder = value.trim(); else url = value.trim();
        }
        if (!['embedded', 'folder', 'url'].includes(source)) throw new Error(`source "${source}" is invalid: use embedded, folder or url`);
        const limit = num(msg.limit ?? config.limit, 0);
        if (!Number.isInteger(limit) || limit < 0) throw new Error(`sample limit ${JSON.stringify(msg.limit ?? config.limit)} is invalid: use a whole number (0 = all samples)`);
        const seed = num(config.seed, 0);
        if (!Number.isInteger(seed)) throw new Error(`seed ${JSON.stringify(config.seed)} is invalid: use a whole number`);
        const splits = config.splits || 'both';
        if (!['both', 'train', 'test'].includes(splits)) throw new Error(`splits "${splits}" is invalid: use both, train or test`);
        status('loading…');
        const data: Dataset = await loadDataset({
          source,
          folder: folder ? path.resolve(userDir, folder) : undefined,
          url,
          cacheDir: path.join(userDir, '.mnist-cache'),
          splits,
          limit,
          shuffle: bool(config.shuffle, true),
          seed,
          classes: (config.classes || '').split(',').map((s) => s.trim()).filter(Boolean),
          signal,
        });
        registry.disposeOwner(node.id); // the previous run's splits
        const handles: Record<string, registry.Handle> = {};
        for (const which of ['train', 'test'] as const) {
          const split = data[which];
          if (split) handles[which] = splitHandle(node.id, data.name, which, { ...split, normalization: null });
        }
        const first = data.train || data.test!;
        msg.dataset = { name: data.name, classes: data.classes, ...handles, normalization: null };
        msg.payload = {
          name: data.name,
          classes: data.classes,
          train: data.train ? { count: data.train.count } : null,
          test: data.test ? { count: data.test.count } : null,
          imageShape: [first.rows, first.cols],
        };
        return msg;
      },
      doneText: (out) => {
        const p = (out as { payload: { train: { count: number } | null; test: { count: number } | null } }).payload;
        return [p.train && `${p.train.count} train`, p.test && `${p.test.count} test`].filter(Boolean).join(' · ');
      },
    });
  }
  RED.nodes.registerType('mnist-dataset', MnistDatasetNode);
};
