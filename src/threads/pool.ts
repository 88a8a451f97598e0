/**
 * Both cores: a large call's batch is split across threads. The calling thread keeps the first rows and
 * each worker thread (a replica of the engine, see replica.ts) takes a slice of the rest; the calling
 * thread hands the slices out, computes its own rows meanwhile, then blocks on Atomics.wait until every
 * worker is done, so the public API stays synchronous.
 *
 * Why the results equal one thread's (to rounding, ~1e-15 relative in float64): rows of a batch never
 * interact in an LSTM, and every loss is a mean over its elements, so with slice k holding B_k of the
 * B rows, L = Σ (B_k/B)·L_k and every gradient (weights, dL/dx, dL/d(initial state)) is Σ (B_k/B)·g_k,
 * for last-step and per-step heads alike. Only the order of the sums over rows changes. The optimizer
 * then runs once, on the calling thread, through the engine's own atomic `applyUpdate`.
 *
 * Under a mask, a per-step head's loss is a mean over the kept steps only: slice k's over its n_k kept output
 * rows, the batch's over n = Σ n_k, so the weights are n_k/n instead (0 for every slice when n is 0, where one
 * thread's loss and gradients are 0 too); a last-step head's loss counts every row, masked or not, and keeps
 * B_k/B. Accuracy is hits over the kept count, summed. A dropout step's masks are drawn here, for the whole batch
 * in row order exactly as one thread draws them (EngineCore.drawMaskRows), and each slice gets its rows of them.
 *
 * The worker threads themselves are in workers.ts: how a platform starts them, their shared memory, and
 * PoolWorkers, the part of the pool that starts and replaces them, which ThreadPool extends. This file is
 * what a call does with them: `setThreads`'s settings, which calls are worth splitting and into which
 * slices, and each pass, handed out and merged. ThreadHost and HostThread are re-exported from here, the
 * module the platforms import.
 *
 * Legend: B batch, B_k rows of slice k (slice 0 is the calling thread's), T timesteps, F input features,
 * H units, D head units, P parameters.
 */
import { type FloatArray, type StridedArray, type Tensor, allocate, fromData } from "../tensor/tensor.js";
import { StateError, ValueError, checkKeys, fmtValue } from "../errors.js";
import { gatherSamples, timeToBatchMajor } from "../tensor/layout.js";
import type { Engine, RowExecutor, StepResult, Gradients } from "../engine.js";
import type { RecurrentState, WindowRunner } from "../engine-api.js";
import type { DropoutMasks } from "../engine-core.js";
import * as arenas from "../wasm/arena.js";
import { Rng } from "../init.js";
import { type Op, type SharedBuffers, CTRL_DONE, bufferSizes, maskViews, sharedArray, sharedBuffer } from "./protocol.js";
import { type ThreadHost, PoolWorkers, type WorkerHandle } from "./workers.js";
import { type WindowPool, SplitWindows } from "./tbptt-pool.js";

export type { HostThread, ThreadHost } from "./workers.js";

export interface ThreadOptions {
  /**
   * Calls whose estimated work is below this many FLOPs stay on the calling thread, where handing out
   * slices would cost more than it saves. The estimate is the bench's FLOP model: forward =
   * 2·B·T·Σ(I+H)·4H over the LSTM layers, a training step or computeGradients = 3 × forward.
   * Default 4e6, about a 1.3 ms step at 3 GFLOP/s: handing out a slice and waiting for it costs ~50 µs,
   * so from there on two threads gain ~1.7× on an idle machine and lose at most a few per cent when
   * another process holds the second core.
   */
  minFlops?: number;
}

export const DEFAULT_MIN_FLOPS = 4e6;

/**
 * A call waits for its workers at least this long before it decides one has hung (a worker that exits
 * or throws is noticed at once; only a thread that hangs, or is killed from outside, says nothing).
 */
const MIN_WAIT_MS = 120_000;
/** ...and at least this many times as long as the calling thread's own slice took. */
const WAIT_RATIO = 100;

/** Validates a `threads` setting: a positive integer, or "auto" for the machine's cores. */
export function checkThreads(name: string, v: unknown, host: ThreadHost): number {
  if (v === "auto") return Math.max(1, host.cores());
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 256) {
    throw new ValueError(`${name}: expected a positive integer (at most 256) or "auto", got ${fmtValue(v)}`);
  }
  return v;
}

function checkMinFlops(name: string, v: unknown): number {
  if (v === undefined) return DEFAULT_MIN_FLOPS;
  if (typeof v !== "number" || !(v >= 0) || v === Infinity) {
    throw new ValueError(`${name}: expected a non-negative finite number of FLOPs, got ${fmtValue(v)}`);
  }
  return v;
}

/**
 * The executor behind `setThreads(model, n)`: null for one thread, else a pool. Validates everything
 * before anything changes.
 */
export function createPool(engine: Engine, threads: unknown, options: unknown, host: ThreadHost): ThreadPool | null {
  const n = checkThreads("setThreads threads", threads, host);
  if (options !== undefined && (typeof options !== "object" || options === null || Array.isArray(options))) {
    throw new ValueError(`setThreads options: expected an object like { minFlops: 4e6 }, got ${fmtValue(options)}`);
  }
  if (options !== undefined) checkKeys("setThreads", options, ["minFlops"]);
  const minFlops = checkMinFlops("setThreads minFlops", (options as ThreadOptions | undefined)?.minFlops);
  return n > 1 ? new ThreadPool(engine, n, minFlops, host) : null;
}

/** What each op is called in error messages. */
const OP_NAMES: Record<Op, string> = {
  train: "a training step", test: "a test pass", predict: "predict", grads: "computeGradients",
};

/**
 * A pool of worker threads plus the logic that splits a batch, hands out the slices and merges the
 * results. Created by `setThreads(model, n)` with n > 1; workers start at the first call large enough.
 */
export class ThreadPool extends PoolWorkers implements RowExecutor, WindowPool {
  /** Calls that ran split across threads (for tests and curious users). */
  parallelCalls = 0;
  /** Truncated-BPTT windows that ran split across threads (threads/tbptt-pool.ts). */
  parallelWindows = 0;
  /**
   * @internal How long a call waits at least for a worker that neither finishes nor exits before
   * declaring it hung (see MIN_WAIT_MS). Tests lower it.
   */
  minWaitMs = MIN_WAIT_MS;
  /**
   * (P) the weights every worker reads, at byte paramsAt of params: the model's own where they live in shared
   * memory (the SIMD backend's arena), else a copy that each call refreshes.
   */
  private params: SharedArrayBuffer | null = null;
  private paramsAt = 0;
  private paramsView: FloatArray = new Float64Array(0);
  /**
   * (P) per worker slot, the gradients of its rows: in the model's arena on the SIMD backend, where the merge
   * then runs in SIMD (see mergeGrads), else in a SharedArrayBuffer of their own. Kept for the pool's life, so
   * that workers started anew (after dispose or a failure) reuse them rather than leave arena memory behind.
   */
  private readonly workerGrads: FloatArray[] = [];
  // The split of the last batch size, kept while B stays.
  private splitB = -1;
  private readonly sizes: number[] = [];  // rows per slice, the calling thread's first
  private readonly starts: number[] = []; // first batch row of each slice
  /** Per slice, the share of the batch's loss that its mean loss is: B_k/B, or n_k/n under a mask (see the header). */
  private readonly weights: number[] = [];
  // The last pass's Σ w_k·L_k, accuracy hits over the whole batch, and the output rows its loss counted (n).
  private loss = 0;
  private hits = 0;
  private kept = 0;
  private mae = 0; // Σ w_k·mae_k and Σ w_k·mse_k, when the model reports them (metrics "mae", "mse")
  private mse = 0;
  /** The calling thread's rows of a dropout step's masks (sliceMasks), kept while its rows stay. */
  private mainMasks: DropoutMasks[] = [];
  /** Per worker slot, views of its `masks` buffer for its rows (protocol.ts's maskViews), remade when either changes. */
  private readonly workerMasks: { buf: Float64Array; B: number; views: DropoutMasks[] }[] = [];

  constructor(model: Engine, threads: number, readonly minFlops: number, host: ThreadHost) {
    super(model, threads, host);
  }

  /**
   * Terminates the worker threads now; a later large call starts new ones. Call it when done with a
   * model that has threads: until then, or until the model is garbage-collected (a FinalizationRegistry
   * stops its workers, at a time of the collector's choosing), each worker holds its memory.
   */
  dispose(): void {
    this.pool.stop();
    this.params = null;
    this.paramsAt = 0;
    this.paramsView = new Float64Array(0);
  }

  /** The FLOP model's estimate for a call over B rows and T steps: forward, or 3 × forward with backward. */
  flops(B: number, T: number, backward: boolean): number {
    let f = 0;
    for (const l of this.model.rnns) f += 2 * B * T * l.directions * (l.inputDim! + l.stateUnits) * ((l.kind === "bidirectional" ? l.forwardLayer.kind : l.kind) === "gru" ? 3 : 4) * l.stateUnits; // G = 3H or 4H gate columns
    return backward ? 3 * f : f;
  }

  /**
   * Whether a call over B rows and T steps is worth splitting; if so, sizes and starts hold the split
   * (the calling thread's slice first, and never more rows than a worker's).
   */
  private split(B: number, T: number, backward: boolean): boolean {
    const n = Math.min(this.threads, B);
    if (n < 2 || this.flops(B, T, backward) < this.minFlops) return false;
    if (B !== this.splitB) {
      const base = Math.floor(B / n), rem = B % n;
      this.sizes.length = n;
      this.starts.length = n;
      for (let k = 0, start = 0; k < n; k++) {
        const size = base + (k > 0 && k <= rem ? 1 : 0);
        this.sizes[k] = size;
        this.starts[k] = start;
        start += size;
      }
      this.splitB = B;
    }
    return true;
  }

  /**
   * Whether this pool takes a call over B rows and T steps: worth splitting (see split) and every worker it
   * needs ready (starting them if need be, see ensureWorkers).
   */
  private run(B: number, T: number, backward: boolean): boolean {
    return this.split(B, T, backward) && this.ensureWorkers(this.sizes.length - 1);
  }

  /** Grows a worker's shared buffers to fit Bw rows and T steps; the next run sends them when anything changed. */
  private fitBuffers(w: WorkerHandle, slot: number, Bw: number, T: number): void {
    const m = this.model, dt = m.dtype, P = m.params.length, bytes = dt === "float32" ? 4 : 8;
    let g = this.workerGrads[slot];
    if (g === undefined || g.length !== P) g = this.workerGrads[slot] = m.arena ? m.arena.alloc(dt, P) : sharedArray(dt, sharedBuffer(dt, P), 0, P);
    if (w.fitRows === Bw && w.fitT === T && w.buffers?.params === this.params && w.buffers.paramsAt === this.paramsAt && w.grads === g) return;
    const need = bufferSizes(this.replica!, Bw, T);
    const b = w.buffers;
    // Buffers only grow: a smaller last batch of an epoch reuses them.
    const next: SharedBuffers = {
      params: this.params!, paramsAt: this.paramsAt,
      grads: g.buffer as SharedArrayBuffer, gradsAt: g.byteOffset,
      x: fitting(b?.x, need.x, bytes), y: fitting(b?.y, need.y, bytes),
      stateIn: fitting(b?.stateIn, need.stateIn, bytes), stateOut: fitting(b?.stateOut, need.stateOut, bytes),
      out: fitting(b?.out, need.out, bytes), dx: fitting(b?.dx, need.dx, bytes),
      stateGrads: fitting(b?.stateGrads, need.stateGrads, bytes), hseq: fitting(b?.hseq, need.hseq, bytes),
      norms: fitting(b?.norms, need.norms, 8), masks: fitting(b?.masks, need.masks, 8),
    };
    w.fitRows = Bw;
    w.fitT = T;
    if (b !== null && (Object.keys(next) as (keyof SharedBuffers)[]).every((k) => next[k] === b[k])) return;
    w.buffers = next;
    w.grads = g;
    w.x = sharedArray(dt, next.x); w.y = sharedArray(dt, next.y);
    w.stateIn = sharedArray(dt, next.stateIn); w.stateOut = sharedArray(dt, next.stateOut);
    w.out = sharedArray(dt, next.out); w.dx = sharedArray(dt, next.dx);
    w.stateGrads = sharedArray(dt, next.stateGrads); w.hseq = sharedArray(dt, next.hseq);
    w.norms = new Float64Array(next.norms);
    w.masks = new Float64Array(next.masks);
    w.cmd.buffers = next;
  }

  /** Whether any layer starts from a carried state, as one thread's `setInitialState(0, true)` would. */
  private anyCarried(B: number): boolean {
    for (let i = 0; i < this.model.rnns.length; i++) if (this.model.carries(i, B)) return true;
    return false;
  }

  /**
   * The initial states of rows [b0, b0 + Bw) into a worker's stateIn, per layer one (Bw, H) block per state (an
   * LSTM's h then c; protocol.ts's stateViews): the carried state of a stateful layer whose state fits the batch,
   * zeros otherwise.
   */
  private gatherStates(B: number, b0: number, Bw: number, dst: FloatArray): void {
    const m = this.model;
    let off = 0;
    for (let i = 0; i < m.rnns.length; i++) {
      const H = m.rnns[i]!.stateUnits, n = Bw * H, count = m.rnns[i]!.stateNames.length;
      if (m.carries(i, B)) {
        const src = b0 * H;
        for (const st of m.state[i]!) {
          for (let j = 0; j < n; j++) dst[off + j] = st[src + j]!;
          off += n;
        }
      } else {
        dst.fill(0, off, off + count * n);
        off += count * n;
      }
    }
  }

  /** Rows [0, B0) of every carried state into the calling thread's slot 0 (the other layers start at zero already). */
  private loadCarried(B: number, B0: number): void {
    const m = this.model;
    for (let i = 0; i < m.rnns.length; i++) {
      if (!m.carries(i, B)) continue;
      const carried = m.state[i]!, slots = m.ws(i).states, n0 = B0 * m.rnns[i]!.stateUnits;
      for (let s = 0; s < slots.length; s++) {
        const from = carried[s]!, to = slots[s]!;
        for (let j = 0; j < n0; j++) to[j] = from[j]!;
      }
    }
  }

  /**
   * One pass over the batch of B rows, split as `sizes` says: forward, and the loss unless `op` is
   * "predict", and backward for "train" and "grads", with the calling thread on rows [0, sizes[0]) and
   * worker k on its slice. On return the calling thread's engine holds its slice, `loss` and `hits` the
   * merged loss and accuracy hits, and model.grads the merged gradients for "train"/"grads".
   *
   * Throws a StateError, and stops the pool, when a worker fails, exits or hangs. Nothing that outlives
   * the call is touched before every worker is done (the weights, optimizer and carried states are
   * only changed by the caller afterwards), so a failed call leaves the model as it was.
   */
  private pass(
    op: Op, xt: StridedArray, yt: StridedArray | null, rows: Int32Array | null, rowStart: number,
    B: number, T: number, norms0: Float64Array[] | null,
  ): void {
    const m = this.model, sizes = this.sizes, starts = this.starts, n = sizes.length;
    const workers = this.pool.workers; // started and ready: see `run`
    this.shareParams();
    const accuracy = op !== "predict" && m.metrics.includes("accuracy");
    const errorMetrics = op !== "predict" && m.errorMetricsOn;
    const carried = this.anyCarried(B);
    let posted = 0, failure: unknown = null, mainLoss = 0, mainHits = 0, mainKept = 0, mainMae = 0, mainMse = 0;
    const t0 = performance.now();
    // A training step's dropout masks, for the whole batch from the dropout RNG as one thread draws them; the RNG's
    // position before, for a call that a worker fails to leave as it was.
    const dropout = op === "train" && m.hasDropout, rngBefore = dropout ? m.dropoutRng.state() : null;
    try {
      const masks = dropout ? m.drawMaskRows(B) : null;
      for (let k = 1; k < n; k++) {
        const w = workers[k - 1]!, Bw = sizes[k]!, b0 = starts[k]!;
        this.fitBuffers(w, k - 1, Bw, T);
        gatherSamples(xt, rows, rowStart + b0, Bw, w.x);
        if (yt) gatherSamples(yt, rows, rowStart + b0, Bw, w.y);
        if (carried) this.gatherStates(B, b0, Bw, w.stateIn);
        if (masks) sliceMasks(m, masks, B, b0, Bw, this.workerMaskViews(k - 1, w.masks, Bw));
        Atomics.store(w.ctrl, CTRL_DONE, 0);
        const cmd = w.cmd;
        cmd.op = op; cmd.B = Bw; cmd.T = T; cmd.loss = m.loss; cmd.huberDelta = m.huberDelta;
        cmd.states = carried; cmd.accuracy = accuracy; cmd.errorMetrics = errorMetrics; cmd.norms = norms0 !== null; cmd.dropout = masks !== null;
        w.thread.post(cmd);
        cmd.buffers = null; // sent (postMessage copied the message)
        posted++;
      }
      // The calling thread's slice, exactly as trainRows / testRows / predict would run it on B0 rows.
      const B0 = sizes[0]!;
      m.ensure(B0, T);
      if (masks) {
        this.fitMainMasks(masks, B, B0);
        sliceMasks(m, masks, B, 0, B0, this.mainMasks);
        m.useMasks(this.mainMasks);
      }
      m.loadInput(xt, rows, rowStart, B0, 0, T, 0);
      m.setInitialState(0, false);
      if (carried) this.loadCarried(B, B0);
      const M = m.forward(0, T, op === "predict" || op === "test"); // forward-only where no backward follows
      if (op !== "predict") {
        m.loadLabels(yt!, rows, rowStart, B0, 0, T);
        mainLoss = m.lossOf(M, op !== "test");
        mainKept = m.keptRows(M);
        mainHits = accuracy ? Math.round(m.accuracyOf(M) * m.accuracyUnits(mainKept)) : 0;
        if (errorMetrics) {
          const e = m.errorMetrics({ loss: 0 }, M, true, true);
          mainMae = e.mae!; mainMse = e.mse!;
        }
        if (op !== "test") {
          m.zeroGrads();
          m.backward(0, T, 0, norms0, null, op === "grads");
        }
      }
    } catch (e) {
      failure = e;
    }
    // Even when this thread failed, no worker may still be writing when the call returns. A worker gets
    // WAIT_RATIO times what this thread's slice took (its own is at most one row larger), and never
    // less than minWaitMs, which also covers its first, cold run.
    const now = performance.now(), limit = Math.max(this.minWaitMs, WAIT_RATIO * (now - t0));
    let workerFailure: string | null = null;
    for (let k = 0; k < posted; k++) {
      const why = workers[k]!.waitDone(now + limit, limit);
      if (why !== null && workerFailure === null) workerFailure = `worker ${k + 1} of ${n - 1} ${why}`;
    }
    if (workerFailure !== null) {
      // A worker that failed may be half-way through anything: start afresh next time. The retry draws the same masks.
      this.dispose();
      if (rngBefore) m.dropoutRng = new Rng(`${m.seed}/dropout`, rngBefore);
      throw new StateError(
        `worker threads: ${workerFailure} (its slice of ${OP_NAMES[op]} on ${B} rows). ` +
        "Nothing of this call was applied: the weights, optimizer state and carried LSTM states are as they were. " +
        "Its worker threads were stopped; the next large call starts new ones",
      );
    }
    if (failure) throw failure;
    this.parallelCalls++;
    if (op === "predict") return;
    this.weigh(B, mainKept);
    const weights = this.weights;
    let loss = weights[0]! * mainLoss, hits = mainHits, mae = weights[0]! * mainMae, mse = weights[0]! * mainMse;
    for (let k = 1; k < n; k++) {
      const w = workers[k - 1]!;
      loss += weights[k]! * w.result[0]!;
      hits += w.result[1]!;
      mae += weights[k]! * w.result[4]!;
      mse += weights[k]! * w.result[5]!;
    }
    this.loss = loss;
    this.hits = hits;
    this.mae = mae;
    this.mse = mse;
    if (op === "train" || op === "grads") this.mergeGrads();
  }

  /**
   * Each slice's weight (see the header) and the kept total: B_k/B, unless the loss counts only the kept output
   * rows (a masked per-step head), where they are n_k/n from the slices' counts (workers' result[3]), or 0 when n is 0.
   */
  private weigh(B: number, mainKept: number): void {
    const m = this.model, sizes = this.sizes, n = sizes.length, w = this.weights, workers = this.pool.workers;
    w.length = n;
    let kept = mainKept;
    for (let k = 1; k < n; k++) kept += workers[k - 1]!.result[3]!;
    this.kept = kept;
    if (!m.rowMasked) {
      for (let k = 0; k < n; k++) w[k] = sizes[k]! / B;
      return;
    }
    for (let k = 0; k < n; k++) w[k] = kept === 0 ? 0 : (k === 0 ? mainKept : workers[k - 1]!.result[3]!) / kept;
  }

  /** Makes mainMasks hold B0 rows of masks laid out as the batch's (B rows) are (keeping them when they do). */
  private fitMainMasks(masks: readonly DropoutMasks[], B: number, B0: number): void {
    const cur = this.mainMasks, n = (a: Float64Array | null): number => (a ? (a.length / B) * B0 : -1);
    if (cur.length === masks.length && masks.every((s, i) => n(s.x) === (cur[i]!.x?.length ?? -1) && n(s.h) === (cur[i]!.h?.length ?? -1))) return;
    this.mainMasks = masks.map((s) => ({ x: s.x ? new Float64Array(n(s.x)) : null, h: s.h ? new Float64Array(n(s.h)) : null }));
  }

  /** Worker slot k's mask views for Bw rows over its current `masks` buffer. */
  private workerMaskViews(k: number, buf: Float64Array, Bw: number): DropoutMasks[] {
    const c = this.workerMasks[k];
    if (c !== undefined && c.buf === buf && c.B === Bw) return c.views;
    return (this.workerMasks[k] = { buf, B: Bw, views: maskViews(buf, this.replica!, Bw) }).views;
  }

  /**
   * Points the workers at this call's weights: the model's own where they live in shared memory (they only
   * read them, and nothing writes them until every worker is done), else a copy made now.
   */
  private shareParams(): void {
    const p = this.model.params, P = p.length;
    if (typeof SharedArrayBuffer !== "undefined" && p.buffer instanceof SharedArrayBuffer) {
      if (this.paramsView !== p) {
        this.params = p.buffer;
        this.paramsAt = p.byteOffset;
        this.paramsView = p;
      }
      return;
    }
    if (!this.params || this.paramsView.length !== P) {
      this.params = sharedBuffer(this.model.dtype, P);
      this.paramsAt = 0;
      this.paramsView = sharedArray(this.model.dtype, this.params, 0, P);
    }
    this.paramsView.set(p);
  }

  /** model.grads = Σ w_k·g_k, slice 0's being in model.grads already. */
  private mergeGrads(): void {
    const g = this.model.grads, P = g.length, sizes = this.sizes, grads = this.workerGrads, weights = this.weights, w0 = weights[0]!;
    if (arenas.anyArena && arenas.mixFor(g, grads[0]!) !== null) {
      // In SIMD, on the arena: g ← w0·g + w1·g1, then g ← g + w_k·g_k for each further slice. In float64 these
      // are the loops' operations below; in float32 the loops round the sum once, this after each slice.
      for (let k = 1; k < sizes.length; k++) {
        const mix = arenas.mixFor(g, grads[k - 1]!)!;
        mix(P, arenas.at[0]!, arenas.at[1]!, k === 1 ? w0 : 1, weights[k]!);
      }
      return;
    }
    if (sizes.length === 2) {
      const g1 = grads[0]!, w1 = weights[1]!;
      for (let i = 0; i < P; i++) g[i] = w0 * g[i]! + w1 * g1[i]!;
      return;
    }
    for (let i = 0; i < P; i++) {
      let s = w0 * g[i]!;
      for (let k = 1; k < sizes.length; k++) s += weights[k]! * grads[k - 1]![i]!;
      g[i] = s;
    }
  }

  /** Keeps every layer's final state (B rows) as its carried state, like one thread's commitState(T). */
  private commit(B: number, T: number): void {
    const m = this.model, sizes = this.sizes, starts = this.starts, workers = this.pool.workers, B0 = sizes[0]!;
    let before = 0; // Σ states·H of the layers below: a worker's stateOut holds Bw·before values before this layer's
    for (let i = 0; i < m.rnns.length; i++) {
      const H = m.rnns[i]!.stateUnits, n0 = B0 * H, slots = m.ws(i).states, kept = m.allocState(i, B);
      for (let s = 0; s < slots.length; s++) {
        kept[s]!.set(slots[s]!.subarray(T * n0, (T + 1) * n0));
        for (let k = 1; k < sizes.length; k++) {
          const Bw = sizes[k]!, nw = Bw * H, o = Bw * (before + s * H), out = workers[k - 1]!.stateOut;
          kept[s]!.set(out.subarray(o, o + nw), starts[k]! * H);
        }
      }
      before += slots.length * H;
    }
  }

  /** Hits over what the whole batch's accuracy counts (the kept output rows' units), as one thread's accuracyOf. */
  private accuracyOf(): number {
    const units = this.model.accuracyUnits(this.kept);
    return units ? this.hits / units : 0;
  }

  /** The merged pass's loss, and the metrics the model reports (accuracy, mae, mse). */
  private results(): StepResult {
    const res: StepResult = { loss: this.loss }, metrics = this.model.metrics;
    if (metrics.includes("accuracy")) res.accuracy = this.accuracyOf();
    if (metrics.includes("mae")) res.mae = this.mae;
    if (metrics.includes("mse")) res.mse = this.mse;
    return res;
  }

  /** trainRows across threads, or null when the call is small enough for one thread. */
  trainRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null {
    if (!this.run(B, T, true)) return null;
    this.pass("train", xt, yt, rows, rowStart, B, T, null);
    const res = this.results();
    if (this.model.applyUpdate(this.loss, "trainOnBatch")) this.commit(B, T);
    return res;
  }

  /** testRows across threads, or null for one thread. */
  testRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null {
    if (!this.run(B, T, false)) return null;
    this.pass("test", xt, yt, rows, rowStart, B, T, null);
    const res = this.results();
    this.commit(B, T);
    return res;
  }

  /**
   * predict's rows [start, start + B) across threads, written into `out` (the whole [N, D] or [N, T, D]
   * result); false (and nothing done) when the chunk is small enough for one thread.
   */
  predictRows(xt: StridedArray, start: number, B: number, T: number, out: FloatArray): boolean {
    if (!this.run(B, T, false)) return false;
    this.pass("predict", xt, null, null, start, B, T, null);
    this.commit(B, T);
    this.headRows(T, out, start);
    return true;
  }

  /** The head's output rows of every slice, into the batch-major `out` from batch row `start` on. */
  private headRows(T: number, out: FloatArray, start: number): void {
    const m = this.model, D = m.outputDim, S = m.perStep ? T : 1, sizes = this.sizes, workers = this.pool.workers;
    out.set(m.headOutput(sizes[0]!, T).data, start * S * D);
    for (let k = 1; k < sizes.length; k++) {
      const Bw = sizes[k]!, raw = workers[k - 1]!.out, b0 = start + this.starts[k]!;
      if (!m.perStep) { out.set(raw.subarray(0, Bw * D), b0 * D); continue; }
      timeToBatchMajor(T, Bw, D, raw, 0, out, b0 * T * D);
    }
  }

  /** computeGradients across threads, or null for one thread. */
  gradients(xt: StridedArray, yt: StridedArray, B: number, T: number, hiddenGradNorms: boolean): Gradients | null {
    if (!this.run(B, T, true)) return null;
    const m = this.model, dt = m.dtype, F = m.inputDim!, D = m.outputDim;
    const norms0 = hiddenGradNorms ? m.rnns.map(() => new Float64Array(T)) : null;
    this.pass("grads", xt, yt, null, 0, B, T, norms0);
    this.commit(B, T);
    const sizes = this.sizes, starts = this.starts, workers = this.pool.workers, n = sizes.length, B0 = sizes[0]!, weights = this.weights;
    const grads = m.splitFlat(m.grads);
    const outputs = allocate(dt, B * (m.perStep ? T : 1) * D);
    this.headRows(T, outputs, 0);
    // Every gradient below is of slice k's own mean loss: scaled by its weight (B_k/B, or n_k/n) it is the batch's.
    const dx = allocate(dt, B * T * F);
    const g0 = m.inputGrad(); // every step: from is 0
    timeToBatchMajor(T, B0, F, g0.buf, g0.off, dx, 0, weights[0]!);
    for (let k = 1; k < n; k++) timeToBatchMajor(T, sizes[k]!, F, workers[k - 1]!.dx, 0, dx, starts[k]! * T * F, weights[k]!);
    const hiddenStates: Tensor[] = [];
    const stateGrads: RecurrentState[] = [];
    let hBefore = 0, before = 0; // Σ W and Σ states·H of the layers below (a worker's hseq, and its stateGrads as in commit)
    for (let i = 0; i < m.rnns.length; i++) {
      const l = m.rnns[i]!, H = l.stateUnits, W = l.directions * H, ws = m.ws(i), w0 = weights[0]!, count = ws.states.length;
      const hs = allocate(dt, B * T * W); // W: a two-way layer's both directions
      timeToBatchMajor(T, B0, W, m.hiddenRows(i, B0, T), 0, hs, 0);
      const d = ws.states.map(() => allocate(dt, B * H)); // per state
      for (let s = 0; s < count; s++) {
        const ds = d[s]!, own = ws.dStates[s]!;
        for (let j = 0; j < B0 * H; j++) ds[j] = w0 * own[j]!;
      }
      for (let k = 1; k < n; k++) {
        const Bw = sizes[k]!, b0 = starts[k]!, wk = weights[k]!, w = workers[k - 1]!, nw = Bw * H;
        timeToBatchMajor(T, Bw, W, w.hseq, T * Bw * hBefore, hs, b0 * T * W);
        const g = w.stateGrads;
        for (let s = 0; s < count; s++) {
          const ds = d[s]!, o = Bw * (before + s * H);
          for (let j = 0; j < nw; j++) ds[b0 * H + j] = wk * g[o + j]!;
        }
      }
      hBefore += W;
      before += count * H;
      hiddenStates.push(fromData(hs, [B, T, W]));
      stateGrads.push(m.namedStates(i, d, 0, B));
    }
    const res: Gradients = {
      loss: this.loss, grads, outputs: fromData(outputs, m.perStep ? [B, T, D] : [B, D]),
      inputGrad: fromData(dx, [B, T, F]), hiddenStates, stateGrads,
    };
    if (norms0) {
      res.hiddenGradNorms = norms0.map((a, i) => Array.from(a, (n0, t) => {
        const w0 = weights[0]!;
        let s = w0 * w0 * n0 * n0;
        for (let k = 1; k < n; k++) {
          const wk = weights[k]!;
          s += wk * wk * workers[k - 1]!.norms[i * T + t]!;
        }
        return Math.sqrt(s);
      }));
    }
    return res;
  }

  // ---------------------------------------------------------------------------------------------
  // Truncated BPTT's windows: threads/tbptt-pool.ts splits a sequence through the members below.

  /**
   * A truncated-BPTT sequence on B rows split across the pool, or null when its windows are too small to be worth it
   * (or the workers are not ready). A window is a forward pass over k1 steps and a backward pass over k2: in the FLOP
   * model (step = 3 × forward) as much as a training step over (k1 + 2·k2)/3 steps. The split holds for the whole
   * sequence (every slice keeps its rows' state); any other call in between resets the sequence (tbptt.ts).
   */
  windows(B: number, k1: number, k2: number): WindowRunner | null {
    if (!this.run(B, (k1 + 2 * k2) / 3, true)) return null;
    return new SplitWindows(this, this.model, B, k1, k2, this.sizes.slice(), this.starts.slice());
  }

  /** @internal The started workers (slice k + 1 on workers[k]). */
  windowWorkers(): readonly WorkerHandle[] {
    return this.pool.workers;
  }

  /** @internal fitBuffers, for a split sequence's chunk. */
  fitWindowBuffers(w: WorkerHandle, slot: number, Bw: number, T: number): void {
    this.fitBuffers(w, slot, Bw, T);
  }

  /** @internal shareParams, before a split window. */
  shareWeights(): void {
    this.shareParams();
  }

  /**
   * @internal mergeGrads of a split window with its slices' `weights`; its split must be the pool's (any call that
   * resplits resets the sequence).
   */
  mergeSlices(sizes: readonly number[], weights: readonly number[]): void {
    if (sizes.length !== this.sizes.length || sizes.some((s, k) => s !== this.sizes[k])) {
      throw new StateError(`worker threads: the pool's split of ${this.sizes.join(" + ")} rows is not the sequence's ${sizes.join(" + ")}`);
    }
    this.weights.length = weights.length;
    for (let k = 0; k < weights.length; k++) this.weights[k] = weights[k]!;
    this.mergeGrads();
  }

  /** @internal sliceMasks: rows [b0, b0 + Bw) of a batch's dropout masks (B rows) into `dst` (Bw rows, the same layout). */
  sliceWindowMasks(masks: readonly DropoutMasks[], B: number, b0: number, Bw: number, dst: readonly DropoutMasks[]): void {
    sliceMasks(this.model, masks, B, b0, Bw, dst);
  }

  /** @internal Views of worker `slot`'s masks buffer for its Bw rows (workerMaskViews). */
  workerWindowMasks(slot: number, w: WorkerHandle, Bw: number): DropoutMasks[] {
    return this.workerMaskViews(slot, w.masks, Bw);
  }

  /**
   * @internal Waits for the first `posted` of `workers` (as `pass` does); when one failed, exited or hung, stops the
   * pool and throws a StateError naming `what` and saying `after`.
   */
  awaitSlices(workers: readonly WorkerHandle[], posted: number, t0: number, what: string, after: string): void {
    const now = performance.now(), limit = Math.max(this.minWaitMs, WAIT_RATIO * (now - t0));
    let failure: string | null = null;
    for (let k = 0; k < posted; k++) {
      const why = workers[k]!.waitDone(now + limit, limit);
      if (why !== null && failure === null) failure = `worker ${k + 1} of ${workers.length} ${why}`;
    }
    if (failure === null) return;
    this.dispose();
    throw new StateError(`worker threads: ${failure} (its slice of ${what}). ${after}. Its worker threads were stopped; the next large call starts new ones`);
  }
}

/** `cur` when it holds n elements of `bytes` bytes, else a new buffer that does. */
function fitting(cur: SharedArrayBuffer | undefined, n: number, bytes: number): SharedArrayBuffer {
  return cur && cur.byteLength >= n * bytes ? cur : new SharedArrayBuffer(Math.max(1, n) * bytes);
}

/**
 * Rows [b0, b0 + Bw) of a batch's dropout masks (B rows, as EngineCore.drawMaskRows lays them) into `dst` (Bw rows,
 * the same layout): for each direction its own rows, so a Bidirectional's forward and backward masks are cut alike.
 */
function sliceMasks(m: Engine, src: readonly DropoutMasks[], B: number, b0: number, Bw: number, dst: readonly DropoutMasks[]): void {
  for (let i = 0; i < src.length; i++) {
    const dirs = m.rnns[i]!.directions, s = src[i]!, d = dst[i]!;
    if (s.x) copyRows(s.x, dirs, B, b0, Bw, d.x!);
    if (s.h) copyRows(s.h, dirs, B, b0, Bw, d.h!);
  }
}

/** Per direction, rows [b0, b0 + Bw) of src (dirs, B, W) into dst (dirs, Bw, W). */
function copyRows(src: Float64Array, dirs: number, B: number, b0: number, Bw: number, dst: Float64Array): void {
  const W = src.length / (dirs * B), n = Bw * W;
  for (let d = 0; d < dirs; d++) {
    const from = (d * B + b0) * W, to = d * n;
    for (let j = 0; j < n; j++) dst[to + j] = src[from + j]!;
  }
}
