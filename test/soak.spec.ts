import { strict as assert } from 'assert';
import { spawn } from 'child_process';
import * as path from 'path';

// The 3-minute version of `npm run soak` (the 60-minute one is in docs/ROBUSTNESS.md): a real
// Node-RED with the four examples, HTTP traffic, a dashboard client, a redeploy every minute,
// and a full 60k training each minute (the HTTP example's, with model-save; the tutorial's, with
// its plots and 10k batch prediction; the dashboard's, with a drawn digit; after the warm-up, which
// also trains the folder example's and one 60k epoch of the dashboard's CNN). Asserted: what the
// soak's JSON line says about growth and errors. Its timings (event-loop lag, HTTP latency) are
// printed, not asserted.
const ROOT = path.resolve(__dirname, '..');
const FIELDS = ['minutes', 'rssSlopeMBPerHour', 'rssStartMB', 'rssEndMB', 'tensorsStart', 'tensorsEnd', 'registryStart', 'registryEnd',
  'eventLoopP99Ms', 'idleRssBeforeTrainMB', 'idleRssAfterTrainMB', 'errors'];

describe('soak: 3 minutes of a real Node-RED with the examples', function () {
  this.timeout(10 * 60000);

  it('ends with no unexpected errors, tensors and registry entries back to their baselines, and memory back after each training', async () => {
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'soak.js'), '--minutes', '3', '--train-every', '1', '--json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (d) => { text += d; });
      child.stderr.on('data', (d) => { text += d; });
      child.on('error', reject);
      child.on('exit', (c) => resolve({ code: c, output: text }));
    });
    const lines = output.trim().split('\n');
    const result = JSON.parse(lines[lines.length - 1]);
    console.log(lines.filter((l) => /training|minute|event loop|trainings/.test(l)).map((l) => `      ${l.slice(0, 240)}`).join('\n'));
    assert.deepEqual(Object.keys(result), FIELDS, output);
    assert.equal(result.minutes, 3);
    assert.equal(result.errors, 0, output);
    assert.equal(result.tensorsEnd, result.tensorsStart, output);
    assert.equal(result.registryEnd, result.registryStart, output);
    assert.ok(result.idleRssBeforeTrainMB > 0 && result.idleRssAfterTrainMB > 0, 'a training was measured');
    assert.ok(result.idleRssAfterTrainMB - result.idleRssBeforeTrainMB < 100,
      `idle RSS ${result.idleRssBeforeTrainMB} MB before a training, ${result.idleRssAfterTrainMB} MB after\n${output}`);
    assert.equal(code, 0, `the soak reports growth or errors:\n${output}`);
  });
});
