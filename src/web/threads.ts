/**
 * Both cores in a browser (and in any runtime with Web Workers and shared memory): `setThreads(model, n,
 * { workerUrl })` splits each large call's batch across this thread and n - 1 Web Workers, through the
 * same platform-neutral pool as Node (threads/pool.ts), with results equal to one thread's.
 *
 * What the browser asks for: shared memory exists only on a cross-origin-isolated page (served with
 * `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`), and the
 * calling thread blocks in Atomics.wait while the workers compute, which a page's main thread may not
 * do. So train inside a Web Worker of your own; anywhere else `setThreads` leaves the model on one thread
 * and resolves to 1. The worker script is the package's `dist/web/worker.js` (`longshort/web/worker.js`),
 * one self-contained file to serve beside your page.
 */
import { Sequential } from "../model.js";
import { type HostThread, type ThreadHost, type ThreadOptions, checkThreads, createPool } from "../threads/pool.js";
import type { Message, WorkerInit } from "../threads/protocol.js";
import { ValueError, checkKeys, fmtValue, fmtInstance } from "../errors.js";

export interface WebThreadOptions extends ThreadOptions {
  /** Where the page serves longshort's worker script (`dist/web/worker.js` of the package). */
  workerUrl: string;
}

/** What this file needs of the Web Worker API (declared here, so the package's types need no DOM library). */
interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: "error", listener: () => void): void;
}
type WebWorkerConstructor = new (url: string, options?: { name?: string }) => WebWorker;

class WebThread implements HostThread {
  readonly worker: WebWorker;
  private done = false;

  constructor(Worker: WebWorkerConstructor, url: string, init: WorkerInit) {
    this.worker = new Worker(url, { name: "longshort" });
    // A script that fails to load or throws while starting; seen when this thread's event loop runs.
    this.worker.addEventListener("error", () => { this.done = true; });
    this.worker.postMessage({ type: "init", init });
  }

  get ended(): boolean {
    return this.done;
  }

  post(message: Message): void {
    this.worker.postMessage(message);
  }

  terminate(): void {
    this.worker.terminate();
  }
}

/**
 * Whether this thread can run the pool: shared memory exists (a cross-origin-isolated context) and it may
 * block in Atomics.wait (a worker, not a page's main thread).
 *
 * @example
 * canShareMemory();   // false on a page's main thread; true in a Web Worker of an isolated page
 */
export function canShareMemory(): boolean {
  if (typeof SharedArrayBuffer !== "function") return false;
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0); // "not-equal" where blocking is allowed
    return true;
  } catch {
    return false;
  }
}

/**
 * Splits each large call of `model` (trainOnBatch, fit, computeGradients, testOnBatch, evaluate,
 * predict) across `threads` threads: this one plus Web Workers running `workerUrl`. Resolves to the
 * number of threads in effect: `threads`, or 1 where shared memory or blocking is not allowed (see
 * canShareMemory), in which case the model simply stays on one thread. When the model is built, the
 * workers are started before it resolves (a worker script that fails to load rejects it with a StateError,
 * and leaves the model on one thread); otherwise the first large calls run here until they are ready.
 * Results equal one thread's to rounding; `model.dispose()` stops the workers.
 *
 * @example
 * // inside your training Web Worker, on a cross-origin-isolated page
 * import { setThreads } from "longshort/web";
 * const n = await setThreads(model, 2, { workerUrl: "/longshort-worker.js" });
 * await model.fit(x, y, { epochs: 10, batchSize: 64, verbose: 0 });
 */
export async function setThreads(model: Sequential, threads: number | "auto", options: WebThreadOptions): Promise<number> {
  if (!(model instanceof Sequential)) throw new ValueError(`setThreads model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  if (typeof options !== "object" || options === null || typeof options.workerUrl !== "string" || options.workerUrl === "") {
    throw new ValueError(`setThreads options: expected { workerUrl: "<URL of longshort's worker script>", minFlops? }, got ${fmtValue(options)}`);
  }
  checkKeys("setThreads", options, ["workerUrl", "minFlops"]);
  const scope = globalThis as { Worker?: WebWorkerConstructor; navigator?: { hardwareConcurrency?: number } };
  const Worker = scope.Worker;
  const host: ThreadHost = {
    startsWhileBlocked: false,
    cores: () => scope.navigator?.hardwareConcurrency ?? 1,
    spawn: (init) => new WebThread(Worker!, options.workerUrl, init),
  };
  const wanted = checkThreads("setThreads threads", threads, host);
  const usable = wanted > 1 && typeof Worker === "function" && canShareMemory();
  const { workerUrl: _, ...poolOptions } = options;
  const next = createPool(model.engine, usable ? wanted : 1, poolOptions, host); // validates before anything changes
  model.engine.executor?.dispose();
  model.engine.executor = next;
  if (next && model.engine.built) {
    try {
      await next.start();
    } catch (e) {
      // A worker script that does not load fails here, not later in the middle of training.
      if (model.engine.executor === next) model.engine.executor = null;
      throw e;
    }
  }
  return model.threads;
}
