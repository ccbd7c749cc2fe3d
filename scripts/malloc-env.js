// glibc's malloc settings for a long-running Node-RED (npm start and npm run soak use them; a
// service sets them in its environment, see docs/ROBUSTNESS.md). With glibc's defaults, memory
// freed after large short-lived buffers (a training's data, an evaluation's chunks, image
// decodes) stays in its arenas, and Node-RED's idle RSS climbs in steps for the first half hour;
// with these it stays flat and about 90 MB lower. Values already in the environment are kept.
//   MALLOC_ARENA_MAX=2          at most two arenas (glibc's default is 8 per core)
//   MALLOC_MMAP_THRESHOLD_=131072  buffers of 128 KB and more always get their own mapping, given
//                               back on free (the default threshold rises after the first free)
const TUNING = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' };

/** The environment for a Node-RED child process: `env` with the tuning added where unset. */
function mallocEnv(env = process.env) {
  const out = { ...env };
  for (const [k, v] of Object.entries(TUNING)) if (out[k] === undefined) out[k] = v;
  return out;
}

module.exports = { TUNING, mallocEnv };
