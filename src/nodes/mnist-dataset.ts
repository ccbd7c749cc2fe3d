import type { Node, NodeAPI, NodeDef } from 'node-red';
import * as path from 'path';
import { Dataset, SourceKind, Splits, loadDataset } from '../lib/dataset';
import { MnistError } from '../lib/messages';
import { loadSamples } from '../lib/samples';
import * as registry from '../lib/registry';
import { attach, options, splitHandle, waitForOwnOutput } from './common';

export = (RED: NodeAPI) => {
  function MnistDatasetNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    attach(RED, node, {
      stoppable: true,
      async run({ msg, signal, status, t }) {
        // A training still reading the last run's splits keeps them: refuse rather than free them.
        const refuseIfRead = async () => {
          await waitForOwnOutput(node.id, signal);
          const reader = registry.busyOf(node.id);
          if (reader) throw new MnistError('data-in-use', { by: reader });
        };
        await refuseIfRead();
        const o = options('mnist-dataset', config, msg);
        // Paths are read from the node's own configuration; a message may choose one only when
        // the user ticked "allow msg.folder / msg.url" (a flow may feed messages from outside).
        let source = o.source as SourceKind;
        let { folder, url } = o;
        const fromMsg = (['folder', 'url'] as const).filter((k) => msg[k] !== undefined && msg[k] !== null);
        if (fromMsg.length && !o.allowMsgPath) throw new MnistError('msg-path-refused', { key: fromMsg[0] });
        if (fromMsg.length > 1) throw new MnistError('msg-path-both');
        const [key] = fromMsg;
        if (key) {
          const value = msg[key];
          if (typeof value !== 'string' || !value.trim()) throw new MnistError('msg-path-empty', { key });
          source = key;
          if (key === 'folder') folder = value.trim(); else url = value.trim();
        }
        status('mnist-dataset.status.loading');
        const data: Dataset = await loadDataset({
          source,
          folder: folder ? path.resolve(userDir, folder) : undefined,
          url,
          cacheDir: path.join(userDir, '.mnist-cache'),
          splits: o.splits as Splits,
          limit: o.limit,
          shuffle: o.shuffle,
          seed: o.seed,
          classes: o.classes.split(',').map((s) => s.trim()).filter(Boolean),
          signal,
          samples: o.samples.trim() ? { items: loadSamples(path.resolve(userDir, o.samples.trim())), repeat: o.samplesRepeat } : undefined,
        });
        for (const note of data.notes) node.warn(t(`warnings.${note.code}`, note.params));
        await refuseIfRead();
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
      doneText: (out, { t }) => {
        const p = (out as { payload: { train: { count: number } | null; test: { count: number } | null } }).payload;
        return [p.train && t('mnist-dataset.status.train', { count: p.train.count }), p.test && t('mnist-dataset.status.test', { count: p.test.count })]
          .filter(Boolean).join(' · ');
      },
    });
  }
  RED.nodes.registerType('mnist-dataset', MnistDatasetNode);
};
