import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { freePort } from './browser/node-red';

// Node-RED as a user runs it: a runtime's red.js on a user directory where packages were
// installed with npm (test/install.spec.ts, test/commands.spec.ts).

export interface Running { url: string; port: number; log: () => string; stop: () => Promise<void> }

export async function startNodeRed(node: string, redJs: string, userDir: string): Promise<Running> {
  const port = await freePort();
  const settings = path.join(userDir, 'settings.js');
  fs.writeFileSync(settings, `module.exports = ${JSON.stringify({
    uiPort: port, uiHost: '127.0.0.1', flowFile: 'flows.json', credentialSecret: false,
    telemetry: { enabled: false }, editorTheme: { tours: false, palette: { catalogues: [] } },
  })};\n`);
  let output = '';
  const child: ChildProcess = spawn(node, [redJs, '--userDir', userDir, '--settings', settings], { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => { output += d; });
  child.stderr!.on('data', (d) => { output += d; });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(t);
    }
  };
  const deadline = Date.now() + 90000;
  while (!/Server now running/.test(output)) {
    if (child.exitCode !== null) throw new Error(`Node-RED exited (${child.exitCode}):\n${output}`);
    if (Date.now() > deadline) { await stop(); throw new Error(`Node-RED did not start:\n${output}`); }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url: `http://127.0.0.1:${port}`, port, log: () => output, stop };
}
