import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
/** This package's name (scoped: node_modules/@node-red-mnist/nodes). */
export const PACKAGE: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).name;

/** Every example, as Import > Examples offers them. */
export const EXAMPLES = fs.readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.json')).sort();

export interface NodeRed {
  url: string;
  userDir: string;
  pid: number;
  /** Everything Node-RED printed so far. */
  log: () => string;
  stop: () => Promise<void>;
  /** Stops Node-RED (SIGTERM, as a service manager does) and starts it again on the same user dir and port. */
  restart: () => Promise<void>;
}

export function freePort(): Promise<number> {
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

/**
 * Node-RED in a child process, set up the way `npm start` does it: a fresh user dir with this
 * package linked into its node_modules and every example deployed as flows.json (unless `flows`
 * says otherwise). The dashboard is found next to node-red in this repo's node_modules.
 */
export async function startNodeRed(opts: {
  flows?: unknown[];
  prepare?: (userDir: string) => Promise<void>;
  /** Added to settings.js, e.g. { lang: 'zh-CN' } for the runtime's language. */
  settings?: Record<string, unknown>;
} = {}): Promise<NodeRed> {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mnist-browser-red-'));
  await opts.prepare?.(userDir);
  const link = path.join(userDir, 'node_modules', PACKAGE);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(ROOT, link, 'dir');
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({
    name: 'node-red-project', private: true, dependencies: { [PACKAGE]: `file:${ROOT}` },
  }));
  const flows = opts.flows ?? EXAMPLES.flatMap((f) => JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8')));
  fs.writeFileSync(path.join(userDir, 'flows.json'), JSON.stringify(flows));
  const port = await freePort();
  const settingsFile = path.join(userDir, 'settings.js');
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify({
    uiPort: port,
    uiHost: '127.0.0.1',
    flowFile: 'flows.json',
    credentialSecret: false,
    telemetry: { enabled: false },
    editorTheme: { tours: false, palette: { catalogues: [] } },
    logging: { console: { level: 'info' } },
    ...opts.settings,
  })};\n`);

  let output = '';
  // "Started flows" in the runtime's language.
  const lang = typeof opts.settings?.lang === 'string' ? opts.settings.lang : 'en-US';
  const catalog = path.join(path.dirname(require.resolve('@node-red/runtime/package.json')), 'locales', lang, 'runtime.json');
  const started = JSON.parse(fs.readFileSync(catalog, 'utf8')).nodes.flows['started-flows'] as string;
  let child: ChildProcess;
  let exited: Promise<void>;
  const end = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
  };
  const stop = async () => {
    await end();
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  const launch = async () => {
    const from = output.length;
    child = spawn(process.execPath,
      [require.resolve('node-red/red.js'), '--userDir', userDir, '--settings', settingsFile, '--port', String(port)],
      { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => { output += d; });
    child.stderr!.on('data', (d) => { output += d; });
    const self = child;
    exited = new Promise<void>((resolve) => self.once('exit', () => resolve()));
    const deadline = Date.now() + 60000;
    while (!output.slice(from).includes(started)) {
      if (child.exitCode !== null) { await stop(); throw new Error(`Node-RED exited (${child.exitCode}):\n${output}`); }
      if (Date.now() > deadline) { await stop(); throw new Error(`Node-RED did not start within 60 s:\n${output}`); }
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await launch();
  const restart = async () => { await end(); await launch(); };
  return { url: `http://127.0.0.1:${port}/`, userDir, get pid() { return child.pid!; }, log: () => output, stop, restart };
}
