/**
 * Both cores, in Node: `setThreads(model, n)` splits each large call's batch across this thread and
 * n - 1 worker threads (node:worker_threads), through the platform-neutral pool of threads/pool.ts.
 */
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import { pathToFileURL } from "node:url";
import { Sequential } from "../model.js";
import { type HostThread, type ThreadHost, type ThreadOptions, createPool } from "../threads/pool.js";
import type { Message, WorkerInit } from "../threads/protocol.js";
import { ValueError, fmtInstance } from "../errors.js";

export type { ThreadOptions };

/**
 * This module's URL, in both builds: the CommonJS one has `__filename` (so do vitest's transformed
 * modules), the ES module one `import.meta.url` (which CommonJS cannot parse; the CommonJS build
 * rewrites it, see scripts/build.mjs, and never reaches it).
 */
const here: string = typeof __filename === "string" ? pathToFileURL(__filename).href : import.meta.url;
/** Under tsx or vitest the sources run as .ts, and a worker must load them through tsx (boot.mjs). */
const fromSource = here.endsWith(".ts");

class NodeThread implements HostThread {
  readonly worker: Worker;
  /** Set by the Worker's 'error' or 'exit' event, which only runs when this thread's event loop does. */
  private done = false;

  constructor(init: WorkerInit) {
    const script = new URL(fromSource ? "./boot.mjs" : "./worker.js", here);
    const entry = new URL(fromSource ? "./worker.ts" : "./worker.js", here).href;
    this.worker = new Worker(script, {
      workerData: { ...init, entry },
      // Under tsx the parent's loader flags do nothing useful in a worker (boot.mjs registers tsx itself).
      ...(fromSource ? { execArgv: [] } : {}),
    });
    // An idle worker must not keep the process alive; one that is computing has a caller blocked on it.
    this.worker.unref();
    // These listeners see only this object: a running Worker is a GC root, and through its listeners it
    // must not reach the model (see threads/pool.ts). The 'error' one also keeps a worker's error from
    // being rethrown here.
    this.worker.on("error", () => { this.done = true; });
    this.worker.on("exit", () => { this.done = true; });
  }

  get ended(): boolean {
    return this.done;
  }

  post(message: Message): void {
    this.worker.postMessage(message);
  }

  terminate(): void {
    void this.worker.terminate().catch(() => undefined);
  }
}

/** Worker threads from node:worker_threads. */
export const nodeThreads: ThreadHost = {
  startsWhileBlocked: true,
  cores: () => availableParallelism(),
  spawn: (init) => new NodeThread(init),
};

/**
 * Splits each large call (trainOnBatch, fit, computeGradients, testOnBatch, evaluate, predict) of `model`
 * across `threads` threads: this one plus worker threads, each taking a slice of the batch. Results equal
 * one thread's to rounding (the gradients of the slices are summed weighted by their share of the
 * batch). Calls estimated below `minFlops` stay on this thread. Workers start at the first large call
 * and never keep the process alive; `model.dispose()` stops them. `setThreads(model, 1)` goes back to one
 * thread. If a worker fails mid-call, the call throws a StateError, nothing of it is applied, and the next
 * call starts new workers.
 *
 * @example
 * import { setThreads } from "longshort/node";
 * setThreads(model, 2);                       // or "auto" for every core
 * model.trainOnBatch(x, y);                   // a 64-row batch: 32 rows here, 32 in a worker
 * model.dispose();                            // stop the workers when done
 */
export function setThreads(model: Sequential, threads: number | "auto", options: ThreadOptions = {}): void {
  if (!(model instanceof Sequential)) throw new ValueError(`setThreads model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  const next = createPool(model.engine, threads, options, nodeThreads); // validates before anything changes
  model.engine.executor?.dispose();
  model.engine.executor = next;
}
