// Starts a worker from the TypeScript sources (under tsx or vitest, where src/node/worker.ts is what
// exists): Node 20 does not apply a loader given in a worker's execArgv, so the worker registers tsx
// itself and then imports its entry. The built package starts dist/*/node/worker.js directly.
import { workerData } from "node:worker_threads";

const CTRL_READY = 2, CTRL_MSG_LEN = 3;
try {
  const { tsImport } = await import("tsx/esm/api");
  await tsImport(workerData.entry, import.meta.url);
} catch (e) {
  // The main thread is blocked waiting for CTRL_READY: tell it why it will never come.
  const ctrl = new Int32Array(workerData.ctrl);
  const bytes = new TextEncoder().encode(`the worker could not load ${workerData.entry}: ${e?.stack ?? e}`).subarray(0, 4096);
  new Uint8Array(workerData.message).set(bytes);
  ctrl[CTRL_MSG_LEN] = bytes.length;
  Atomics.store(ctrl, CTRL_READY, 2);
  Atomics.notify(ctrl, CTRL_READY);
}
