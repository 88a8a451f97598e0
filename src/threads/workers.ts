/**
 * The worker threads of a ThreadPool, as the calling thread sees them: how a platform starts them
 * (ThreadHost), each one with its shared memory and the calling thread's waits on it (WorkerHandle), the
 * registry that stops the workers of a model dropped without dispose() (Pool, pools), and the part of the
 * pool that starts, counts and faults them (PoolWorkers, which ThreadPool extends). How a call's batch is
 * split over them is pool.ts; what a worker runs is replica.ts; what passes between the two, protocol.ts.
 *
 * The pool knows no platform: how a worker thread is started (Node's worker_threads in node/threads.ts,
 * Web Workers in web/threads.ts) comes in as a ThreadHost. The calling thread blocks in Atomics.wait,
 * which a Node main thread and a Web Worker may do (a browser page's main thread may not).
 *
 * Legend: Bw rows of a worker's slice, T timesteps, F input features, D head units, P parameters.
 */
import type { FloatArray } from "../tensor/tensor.js";
import { StateError } from "../errors.js";
import type { Engine } from "../engine.js";
import type { LSTM } from "../layers/lstm.js";
import type { GRU } from "../layers/gru.js";
import {
  type Fault, type Message, type ReplicaCell, type ReplicaLayer, type RunMessage, type SharedBuffers, type WorkerInit,
  CTRL_DONE, CTRL_EXITED, CTRL_EXIT_CODE, CTRL_READY, CTRL_STATUS, CTRL_WORDS, MESSAGE_BYTES, RESULT_WORDS, readMessage,
} from "./protocol.js";

/** How a platform starts worker threads that run threads/replica.ts. */
export interface ThreadHost {
  /**
   * Whether a worker starts while the thread that created it blocks in Atomics.wait. Node's do, so the
   * pool starts workers when a call needs them and waits. A browser starts a worker only once its creator
   * returns to the event loop: there the pool starts workers without waiting, runs calls on the calling
   * thread until every worker is ready, and `start()` awaits them.
   */
  readonly startsWhileBlocked: boolean;
  /** The number of cores, for `threads: "auto"`. */
  cores(): number;
  /** Starts a worker thread whose replica gets `init`. */
  spawn(init: WorkerInit): HostThread;
}

/** One started worker thread, as its host sees it. */
export interface HostThread {
  post(message: Message): void;
  /** Stops the thread (asynchronously; nothing waits for it). */
  terminate(): void;
  /** True once the host has seen the thread end (its error or exit event; these only arrive while this thread's event loop runs). */
  readonly ended: boolean;
  /** The platform's worker object (for tests that watch it end). Holding it must not hold the model. */
  readonly worker: unknown;
}

/** How long the first large call waits for its workers to start before giving up. */
const START_TIMEOUT_MS = 120_000;

/** A blocked caller wakes this often to look at the deadline and at whether the worker has ended. */
const WAIT_SLICE_MS = 100;

/** One worker thread and its shared memory. Refers to nothing of the model (see Pool). */
export class WorkerHandle {
  readonly thread: HostThread;
  readonly ctrl: Int32Array;        // (CTRL_WORDS)
  readonly result: Float64Array;    // (RESULT_WORDS) [loss, accuracy hits, 1 when the replica computes in SIMD, kept rows, mae, mse]
  readonly message: Uint8Array;     // (MESSAGE_BYTES) error text
  /** The buffers the worker has been given; null until the first run. */
  buffers: SharedBuffers | null = null;
  /** Rows and steps the buffers were last fitted to: while both stay, fitBuffers has nothing to do. */
  fitRows = -1;
  fitT = -1;
  grads: FloatArray = new Float64Array(0);  // (P)
  x: FloatArray = new Float64Array(0);      // (Bw, T, F)
  y: FloatArray = new Float64Array(0);      // (Bw, D) or (Bw, T, D)
  stateIn: FloatArray = new Float64Array(0);
  stateOut: FloatArray = new Float64Array(0);
  out: FloatArray = new Float64Array(0);
  dx: FloatArray = new Float64Array(0);
  stateGrads: FloatArray = new Float64Array(0);
  hseq: FloatArray = new Float64Array(0);
  norms: Float64Array = new Float64Array(0);
  masks: Float64Array = new Float64Array(0); // per layer with dropout (dirs·Bw, I), (dirs·Bw, H): protocol.ts's maskViews
  /** The run command, rewritten and posted by every call; `buffers` is set only when they changed. */
  readonly cmd: RunMessage = {
    type: "run", op: "predict", B: 0, T: 0, loss: null, huberDelta: 1, buffers: null, states: false, accuracy: false, errorMetrics: false, norms: false, dropout: false,
  };
  constructor(host: ThreadHost, init: Omit<WorkerInit, "ctrl" | "result" | "message">) {
    const ctrl = new SharedArrayBuffer(CTRL_WORDS * 4);
    const result = new SharedArrayBuffer(RESULT_WORDS * 8);
    const message = new SharedArrayBuffer(MESSAGE_BYTES);
    this.ctrl = new Int32Array(ctrl);
    this.result = new Float64Array(result);
    this.message = new Uint8Array(message);
    this.thread = host.spawn({ ...init, ctrl, result, message });
  }

  /** True once the thread has ended, as far as this thread can tell even without running its event loop. */
  get dead(): boolean {
    return this.thread.ended || Atomics.load(this.ctrl, CTRL_EXITED) !== 0;
  }

  /** 0 while starting, 1 ready, 2 failed to start (the reason in `message`). */
  get readyState(): number {
    return Atomics.load(this.ctrl, CTRL_READY);
  }

  /** The StateError for a worker that failed to start. */
  startError(): StateError {
    return new StateError(`worker threads: a worker failed to start: ${readMessage(this.ctrl, this.message)}`);
  }

  /** Blocks until the worker has built its replica; throws if it could not. */
  waitReady(): void {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Atomics.load(this.ctrl, CTRL_READY) === 0) {
      if (this.dead) throw new StateError(`worker threads: a worker exited while starting${this.exitCode()}`);
      if (Date.now() > deadline) throw new StateError(`worker threads: a worker did not start within ${START_TIMEOUT_MS / 1000} s`);
      Atomics.wait(this.ctrl, CTRL_READY, 0, WAIT_SLICE_MS);
    }
    if (Atomics.load(this.ctrl, CTRL_READY) !== 1) throw this.startError();
  }

  /**
   * Blocks, in slices of WAIT_SLICE_MS, until the running command is done, the thread has ended, or
   * `deadline` (a performance.now() time, `limitMs` after the caller finished its own slice) has
   * passed. Returns null when the command succeeded, else what went wrong.
   */
  waitDone(deadline: number, limitMs: number): string | null {
    for (;;) {
      if (Atomics.load(this.ctrl, CTRL_DONE) !== 0) {
        return Atomics.load(this.ctrl, CTRL_STATUS) === 0 ? null : `threw: ${readMessage(this.ctrl, this.message)}`;
      }
      if (this.dead) return `exited${this.exitCode()} before finishing`;
      const left = deadline - performance.now();
      if (left <= 0) return `did not finish within ${Math.round(limitMs) / 1000} s (hung, or stopped from outside)`;
      Atomics.wait(this.ctrl, CTRL_DONE, 0, Math.min(WAIT_SLICE_MS, left));
    }
  }

  private exitCode(): string {
    return Atomics.load(this.ctrl, CTRL_EXITED) !== 0 ? ` with code ${Atomics.load(this.ctrl, CTRL_EXIT_CODE)}` : "";
  }

  terminate(): void {
    this.thread.terminate();
  }
}

/**
 * The worker threads of one engine, kept apart from the engine so that `pools` can hold them without
 * holding the model: nothing here, nor in the Workers' listeners, refers to the engine or the model. So
 * a model dropped without dispose() is still collected, and the registry then stops its workers.
 */
class Pool {
  workers: WorkerHandle[] = [];

  stop(): void {
    for (const w of this.workers) w.terminate();
    this.workers = [];
  }
}

/** Stops the workers of an engine (so of a model) that was garbage-collected without dispose(). */
const pools = new FinalizationRegistry<Pool>((pool) => pool.stop());

/**
 * The worker side of a ThreadPool: its workers (held by a Pool, so that the registry can stop them without
 * holding the model), how they start, and what can be asked of them. ThreadPool (pool.ts) extends it with
 * the split of a call over them.
 */
export abstract class PoolWorkers {
  protected readonly pool = new Pool();
  /** The replica's layers, taken when the first workers start (the model is built by then) and kept. */
  protected replica: ReplicaLayer[] | null = null;

  constructor(protected readonly model: Engine, readonly threads: number, private readonly host: ThreadHost) {
    pools.register(this, this.pool);
  }

  /** Stops the workers and lets go of what they share (ThreadPool's, in pool.ts: it owns the shared weights). */
  abstract dispose(): void;

  /** How many of the started workers compute in WebAssembly SIMD (their replica has its own arena). */
  get simdWorkers(): number {
    return this.pool.workers.filter((w) => w.result[2]! >= 1).length;
  }

  /** How many of the started workers' products fuse their multiply-adds (the model's `fma`). */
  get fusedWorkers(): number {
    return this.pool.workers.filter((w) => w.result[2] === 2).length;
  }

  /** Number of worker threads currently running. */
  get runningWorkers(): number {
    let n = 0;
    for (const w of this.pool.workers) if (!w.dead) n++;
    return n;
  }

  /** @internal The platform's worker objects (for tests that watch them end); holding them does not hold the model. */
  get workerThreads(): unknown[] {
    return this.pool.workers.map((w) => w.thread.worker);
  }

  /**
   * @internal Tests only: the first worker's next run fails, by throwing before it computes, by calling
   * process.exit in the middle of its pass, or by blocking forever there.
   */
  injectFault(kind: Fault): void {
    const w = this.pool.workers[0];
    if (!w) throw new StateError("injectFault: no worker thread is running; make a large call first");
    w.thread.post({ type: "fault", kind });
  }

  /**
   * Starts (or replaces ended) workers until there are `count`, and says whether all are ready. On a host
   * whose workers start while this thread blocks (Node) it waits for them, so the answer is true (or a
   * StateError). Elsewhere it does not wait, and false leaves the call to the calling thread.
   */
  protected ensureWorkers(count: number): boolean {
    const pool = this.pool;
    let ended = 0;
    for (const w of pool.workers) {
      if (!w.dead) continue;
      if (w.readyState !== 1) {
        // It never became ready: its script did not load, or threw while starting. Starting another
        // would fail the same way.
        this.dispose();
        throw new StateError("worker threads: a worker ended before it was ready (its script failed to load or threw while starting; is the worker script's URL right?)");
      }
      ended++;
    }
    if (ended > 0) {
      for (const w of pool.workers) if (w.dead) w.terminate();
      pool.workers = pool.workers.filter((w) => !w.dead);
    }
    if (pool.workers.length < count) {
      const m = this.model, layers = (this.replica ??= replicaLayers(m));
      const fresh: WorkerHandle[] = [];
      while (pool.workers.length + fresh.length < count) fresh.push(new WorkerHandle(this.host, { dtype: m.dtype, layers, backend: m.arena ? "wasm" : "js", fma: m.arena?.fused ?? false, maskingValue: m.maskingValue }));
      if (this.host.startsWhileBlocked) {
        try {
          for (const w of fresh) w.waitReady();
        } catch (e) {
          for (const w of fresh) w.terminate();
          throw e;
        }
      }
      pool.workers.push(...fresh);
    }
    let ready = true;
    for (let k = 0; k < count; k++) {
      const state = pool.workers[k]!.readyState;
      if (state === 2) {
        const error = pool.workers[k]!.startError();
        this.dispose();
        throw error;
      }
      if (state !== 1) ready = false;
    }
    return ready;
  }

  /**
   * Starts every worker now and resolves once all are ready, yielding to the event loop meanwhile: how
   * workers start on a host where they cannot start while this thread blocks (a browser). The model must
   * be built (the workers replicate its layers).
   */
  async start(): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!this.ensureWorkers(this.threads - 1)) {
      if (Date.now() > deadline) {
        this.dispose();
        throw new StateError(`worker threads: the workers did not start within ${START_TIMEOUT_MS / 1000} s (is the worker script's URL right?)`);
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 5));
    }
  }
}

/** The replica's description of the model's layers (the model must be built). */
function replicaLayers(m: Engine): ReplicaLayer[] {
  return m.layers.map((l): ReplicaLayer => {
    if (l.kind === "embedding") return { kind: "embedding", units: l.units, inputDim: l.inputDim, maskZero: l.maskZero };
    if (l.kind === "bidirectional") return { kind: "bidirectional", units: l.units, inputDim: l.inputDim!, mergeMode: l.mergeMode, layer: replicaCell(l.forwardLayer) };
    if (l.kind === "lstm" || l.kind === "gru") return replicaCell(l);
    return { kind: "dense", units: l.units, inputDim: l.inputDim!, activation: l.activation, useBias: l.useBias };
  });
}

/** A recurrent cell's replica description. */
function replicaCell(l: LSTM | GRU): ReplicaCell {
  const common = {
    units: l.units, inputDim: l.inputDim!, returnSequences: l.returnSequences,
    recurrentActivation: l.recurrentActivation, useBias: l.useBias, goBackwards: l.goBackwards,
    zeroOutputForMask: l.zeroOutputForMask, dropout: l.dropout, recurrentDropout: l.recurrentDropout,
  };
  return l.kind === "lstm" ? { kind: "lstm", ...common } : { kind: "gru", ...common, resetAfter: l.resetAfter };
}
