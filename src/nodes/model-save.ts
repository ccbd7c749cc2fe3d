import * as path from 'path';
import type { Node, NodeAPI, NodeDef } from 'node-red';
import { ModelEntry } from '../lib/model';
import { saveModel } from '../lib/persist';
import * as registry from '../lib/registry';
import { attach } from './common';

interface Config extends NodeDef { folder?: string }

export = (RED: NodeAPI) => {
  function ModelSaveNode(this: Node, config: Config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const userDir = (RED.settings as unknown as { userDir?: string }).userDir || process.cwd();
    attach(RED, node, {
      queue: 10,
      async run({ msg }) {
        // The folder comes from the node only: a message must not choose where files are written.
        const configured = (config.folder || '').trim();
        if (!configured) throw new Error('no folder is set: enter the folder to save into (relative paths are under the Node-RED user directory)');
        const folder = path.resolve(userDir, configured);
        const entry = registry.resolve<ModelEntry>(msg.model, 'model');
        const release = registry.acquire(msg.model, `saving in ${node.id}`);
        try {
          const r = await saveModel(entry, folder);
          msg.payload = { folder: r.folder, files: r.files, bytes: r.bytes, classes: r.metadata.classes, metrics: r.metadata.metrics ?? null };
        } finally {
          release();
        }
        return msg;
      },
      doneText: (out) => `saved · ${Math.round((out as { payload: { bytes: number } }).payload.bytes / 1024)} kB`,
    });
  }
  RED.nodes.registerType('model-save', ModelSaveNode);
};
