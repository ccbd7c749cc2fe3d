/**
 * A Node-RED plugin that only `npm run soak` installs (into its temporary user directory, never
 * into a user's): it measures the Node-RED process from inside and answers
 * GET /mnist-soak/metrics on the admin API, behind Node-RED's admin permissions
 * (`mnist-soak.read`; open like the rest of the admin API when adminAuth is not set).
 *   ?gc=1     collect garbage first (Node-RED runs with --expose-gc under the soak), for idle
 *             figures; these forced pauses are kept out of the event-loop and gc figures
 *   ?reset=1  start a new interval for the event-loop figures after answering
 *   ?restart=1  the same for the whole-run figures too
 *   ?snapshot=1 write a V8 heap snapshot to the temporary folder (blocks for seconds) and answer its path
 */
import type { NodeAPI } from 'node-red';
import { collect, heapSnapshot, metrics } from './metrics';

export = (RED: NodeAPI) => {
  (RED.plugins as unknown as { registerPlugin: (id: string, def: object) => void }).registerPlugin('mnist-soak-probe', { type: 'mnist-soak-probe' });
  RED.httpAdmin.get('/mnist-soak/metrics', RED.auth.needsPermission('mnist-soak.read'), async (req, res) => {
    if (req.query.gc === '1') await collect();
    if (req.query.snapshot === '1') return res.json({ snapshot: heapSnapshot() });
    res.json(metrics({ reset: req.query.reset === '1', restart: req.query.restart === '1' }));
  });
};
