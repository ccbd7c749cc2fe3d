import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { MnistError } from '../lib/messages';
import { ModelEntry } from '../lib/model';
import { saveModel } from '../lib/persist';
import * as registry from '../lib/registry';
import { attach, options } from './common';

export = (RED: NodeAPI) => {
  function ModelSaveNode(this: Node, config: NodeDef) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    attach(RED, node, {
      queue: 10,
      async run({ msg }) {
        // The folder comes from the node only: a message must not choose where files are written.
        const o = options('model-save', config);
        const configured = o.folder.trim();
        if (!configured) throw new MnistError('no-save-folder');
        const folder = path.resolve(userDir, configured);
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        const release = registry.acquire(msg.model, node.id);
        try {
          const r = await saveModel(entry, folder, { onnx: o.onnx });
          msg.payload = { folder: r.folder, files: r.files, bytes: r.bytes, classes: r.metadata.classes, metrics: r.metadata.metrics ?? null };
        } finally {
          release();
        }
        return msg;
      },
      doneText: (out, { t }) => t('model-save.status.done', { kb: Math.round((out as { payload: { bytes: number } }).payload.bytes / 1024) }),
    });
  }
  RED.nodes.registerType('model-save', ModelSaveNode);
};
