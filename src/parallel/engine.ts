/**
 * Both cores: a large call's batch is split across threads. The calling thread keeps the first rows and
 * each worker thread (a replica of the engine, see worker.ts) takes a slice of the rest; the calling
 * thread hands the slices out, computes its own rows meanwhile, then blocks on Atomics.wait until every
 * worker is done, so the public API stays synchronous.
 *
 * Why the results equal one thread's (to rounding, ~1e-15 relative in float64): rows of a batch never
 * interact in an LSTM, and every loss is a mean over its elements, so with slice k holding B_k of the
 * B rows, L = Σ (B_k/B)·L_k and every gradient (weights, dL/dx, dL/d(initial state)) is Σ (B_k/B)·g_k,
 * for last-step and per-step heads alike. Only the order of the sums over rows changes. The optimizer
 * then runs once, on the calling thread, through the model's own atomic `applyUpdate`.
 *
 * Legend: B batch, B_k rows of slice k (slice 0 is the calling thread's), T timesteps, F input features,
 * H units, D head units, P parameters.
 */
import { Worker } from "node:worker_threads";
import { availableParallelism } from "node:os";
import type { NdArray } from "ndarray";
import { type FloatArray, type Tensor, allocate, fromData } from "../tensor/tensor.js";
import { LongshortError, ValueError, fmtValue } from "../errors.js";
import type { Sequential, StepResult, Gradients } from "../model.js";
import {
  type Message, type Op, type ReplicaLayer, type SharedBuffers, type WorkerInit,
  CTRL_DONE, CTRL_READY, CTRL_STATUS, CTRL_WORDS, MESSAGE_BYTES,
  bufferSizes, readMessage, sharedArray, sharedBuffer, stateViews,
} from "./protocol.js";

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

/** How long the first large call waits for its workers to start before giving up. */
const START_TIMEOUT_MS = 120_000;

/** Validates a `threads` setting: a positive integer, or "auto" for the machine's cores. */
export function checkThreads(name: string, v: unknown): number {
  if (v === "auto") return Math.max(1, availableParallelism());
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
 * The engine behind `model.setThreads(n)`: null for one thread, else a pool. Validates everything
 * before anything changes.
 */
export function createParallel(model: Sequential, threads: unknown, options: unknown, what = "setThreads"): ParallelEngine | null {
  const n = checkThreads(`${what} threads`, threads);
  if (options !== undefined && (typeof options !== "object" || options === null || Array.isArray(options))) {
    throw new ValueError(`${what} options: expected an object like { minFlops: 4e6 }, got ${fmtValue(options)}`);
  }
  const minFlops = checkMinFlops(what === "setThreads" ? "setThreads minFlops" : `${what} threadsMinFlops`, (options as ThreadOptions | undefined)?.minFlops);
  return n > 1 ? new ParallelEngine(model, n, minFlops) : null;
}

/** One worker thread and its shared memory. */
class WorkerHandle {
  readonly worker: Worker;
  readonly ctrl: Int32Array;        // (CTRL_WORDS)
  readonly result: Float64Array;    // [loss, accuracy hits]
  readonly message: Uint8Array;     // (MESSAGE_BYTES) error text
  /** The buffers the worker has been sent; null until the first command. */
  buffers: SharedBuffers | null = null;
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
  /** Set by the worker's 'error' or 'exit' event: the next call replaces this worker. */
  dead = false;

  constructor(init: Omit<WorkerInit, "ctrl" | "result" | "message">) {
    const ctrl = new SharedArrayBuffer(CTRL_WORDS * 4);
    const result = new SharedArrayBuffer(2 * 8);
    const message = new SharedArrayBuffer(MESSAGE_BYTES);
    this.ctrl = new Int32Array(ctrl);
    this.result = new Float64Array(result);
    this.message = new Uint8Array(message);
    const fromSource = import.meta.url.endsWith(".ts");
    const script = new URL(fromSource ? "./boot.mjs" : "./worker.js", import.meta.url);
    this.worker = new Worker(script, {
      workerData: { ...init, ctrl, result, message } satisfies WorkerInit,
      // Under tsx the parent's loader flags do nothing useful in a worker (boot.mjs registers tsx itself).
      ...(fromSource ? { execArgv: [] } : {}),
    });
    // An idle worker must not keep the process alive; one that is computing has a caller blocked on it.
    this.worker.unref();
    this.worker.on("error", () => { this.dead = true; });
    this.worker.on("exit", () => { this.dead = true; });
  }

  /** Blocks until the worker has built its replica; throws if it could not. */
  waitReady(): void {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Atomics.load(this.ctrl, CTRL_READY) === 0) {
      if (Date.now() > deadline) throw new LongshortError(`worker threads: a worker did not start within ${START_TIMEOUT_MS / 1000} s`);
      Atomics.wait(this.ctrl, CTRL_READY, 0, 100);
    }
    if (Atomics.load(this.ctrl, CTRL_READY) !== 1) {
      throw new LongshortError(`worker threads: a worker failed to start: ${readMessage(this.ctrl, this.message)}`);
    }
  }

  post(msg: Message): void {
    this.worker.postMessage(msg);
  }

  /** Blocks until the running command is done; throws the worker's error, if any. */
  waitDone(): void {
    while (Atomics.load(this.ctrl, CTRL_DONE) === 0) Atomics.wait(this.ctrl, CTRL_DONE, 0);
    if (this.ctrl[CTRL_STATUS] !== 0) {
      throw new LongshortError(`worker threads: a worker failed: ${readMessage(this.ctrl, this.message)}`);
    }
  }
}

/** What one parallel pass leaves behind for the caller to merge. */
interface Pass {
  sizes: number[];  // rows per slice, the calling thread's first
  starts: number[]; // first batch row of each slice
  loss: number;     // Σ (B_k/B)·L_k
  hits: number;     // accuracy hits over the whole batch
}

/**
 * A pool of worker threads plus the logic that splits a batch, hands out the slices and merges the
 * results. Created by `model.setThreads(n)` with n > 1; workers start at the first call large enough.
 */
export class ParallelEngine {
  /** Calls that ran split across threads (for tests and curious users). */
  parallelCalls = 0;
  private workers: WorkerHandle[] = [];
  private params: SharedArrayBuffer | null = null;
  private paramsView: FloatArray = new Float64Array(0); // (P) the weights every worker reads

  constructor(private readonly model: Sequential, readonly threads: number, readonly minFlops: number) {}

  /** Terminates the worker threads; a later large call starts new ones. */
  dispose(): void {
    for (const w of this.workers) void w.worker.terminate().catch(() => undefined);
    this.workers = [];
    this.params = null;
    this.paramsView = new Float64Array(0);
  }

  /** Number of worker threads currently running. */
  get runningWorkers(): number {
    return this.workers.filter((w) => !w.dead).length;
  }

  /** The FLOP model's estimate for a call over B rows and T steps: forward, or 3 × forward with backward. */
  flops(B: number, T: number, backward: boolean): number {
    let f = 0;
    for (const l of this.model.lstms) f += 2 * B * T * (l.inputDim! + l.units) * 4 * l.units;
    return backward ? 3 * f : f;
  }

  /** Rows per slice (the calling thread's first, and never more than the workers'), or null for one thread. */
  private split(B: number, T: number, backward: boolean): number[] | null {
    const n = Math.min(this.threads, B);
    if (n < 2 || this.flops(B, T, backward) < this.minFlops) return null;
    const base = Math.floor(B / n), rem = B % n;
    const sizes = [base];
    for (let k = 1; k < n; k++) sizes.push(base + (k <= rem ? 1 : 0));
    return sizes;
  }

  /** Starts (or replaces dead) workers until there are `count`, and waits for them. */
  private ensureWorkers(count: number): void {
    this.workers = this.workers.filter((w) => {
      if (w.dead) void w.worker.terminate().catch(() => undefined);
      return !w.dead;
    });
    if (this.workers.length >= count) return;
    const m = this.model, layers = this.replicaLayers();
    const fresh: WorkerHandle[] = [];
    while (this.workers.length + fresh.length < count) fresh.push(new WorkerHandle({ dtype: m.dtype, layers, entry: workerEntry() }));
    try {
      for (const w of fresh) w.waitReady();
    } catch (e) {
      for (const w of fresh) void w.worker.terminate().catch(() => undefined);
      throw e;
    }
    this.workers.push(...fresh);
  }

  private replicaLayers(): ReplicaLayer[] {
    return this.model.layers.map((l) => l.kind === "lstm"
      ? { kind: "lstm", units: l.units, inputDim: l.inputDim!, returnSequences: l.returnSequences }
      : { kind: "dense", units: l.units, inputDim: l.inputDim!, activation: l.activation });
  }

  /** Grows a worker's shared buffers to fit Bw rows and T steps; resends them when anything changed. */
  private fitBuffers(w: WorkerHandle, Bw: number, T: number): void {
    const m = this.model, dt = m.dtype, P = m.params.length;
    const need = bufferSizes(this.replicaLayers(), Bw, T);
    let changed = w.buffers === null || w.buffers.params !== this.params;
    // Buffers only grow: a smaller last batch of an epoch reuses them.
    const grow = (cur: SharedArrayBuffer | undefined, n: number, bytes: number): SharedArrayBuffer => {
      if (cur && cur.byteLength >= n * bytes) return cur;
      changed = true;
      return new SharedArrayBuffer(Math.max(1, n) * bytes);
    };
    const bytes = dt === "float32" ? 4 : 8;
    const b = w.buffers;
    const next: SharedBuffers = {
      params: this.params!,
      grads: grow(b?.grads, P, bytes),
      x: grow(b?.x, need.x, bytes), y: grow(b?.y, need.y, bytes),
      stateIn: grow(b?.stateIn, need.stateIn, bytes), stateOut: grow(b?.stateOut, need.stateOut, bytes),
      out: grow(b?.out, need.out, bytes), dx: grow(b?.dx, need.dx, bytes),
      stateGrads: grow(b?.stateGrads, need.stateGrads, bytes), hseq: grow(b?.hseq, need.hseq, bytes),
      norms: grow(b?.norms, need.norms, 8),
    };
    if (!changed) return;
    w.buffers = next;
    w.grads = sharedArray(dt, next.grads).subarray(0, P);
    w.x = sharedArray(dt, next.x); w.y = sharedArray(dt, next.y);
    w.stateIn = sharedArray(dt, next.stateIn); w.stateOut = sharedArray(dt, next.stateOut);
    w.out = sharedArray(dt, next.out); w.dx = sharedArray(dt, next.dx);
    w.stateGrads = sharedArray(dt, next.stateGrads); w.hseq = sharedArray(dt, next.hseq);
    w.norms = new Float64Array(next.norms);
    w.post({ type: "buffers", buffers: next });
  }

  /**
   * The initial state of rows [b0, b0 + n) per layer, as one thread's `setInitialState(0, true)` would
   * take it: the carried state of a stateful layer whose state fits the batch, zeros otherwise. Null
   * when every layer starts from zeros.
   */
  private initialStates(B: number, b0: number, n: number): { h: FloatArray; c: FloatArray }[] | null {
    const m = this.model;
    const carried = (l: (typeof m.lstms)[number]): boolean => l.stateful && l.stateH !== null && l.stateH.length === B * l.units;
    if (!m.lstms.some(carried)) return null;
    return m.lstms.map((l) => {
      const H = l.units;
      if (carried(l)) return { h: l.stateH!.subarray(b0 * H, (b0 + n) * H), c: l.stateC!.subarray(b0 * H, (b0 + n) * H) };
      return { h: allocate(m.dtype, n * H), c: allocate(m.dtype, n * H) };
    });
  }

  /**
   * One pass over the batch: forward, and the loss unless `op` is "predict", and backward for "train" and
   * "grads", with the calling thread on rows [0, sizes[0]) and worker k on its slice. On return the
   * calling thread's engine holds its slice; model.grads holds the merged gradients for "train"/"grads".
   */
  private pass(
    op: Op, sizes: number[], xt: NdArray<any>, yt: NdArray<any> | null, rows: Int32Array | null, rowStart: number,
    T: number, norms0: Float64Array[] | null,
  ): Pass {
    const m = this.model, B = sizes.reduce((a, b) => a + b, 0);
    const F = m.inputDim!, D = m.outputDim, perStep = m.perStep;
    const starts = sizes.map((_, k) => sizes.slice(0, k).reduce((a, b) => a + b, 0));
    this.ensureWorkers(sizes.length - 1);
    const P = m.params.length;
    if (!this.params || this.paramsView.length !== P) {
      this.params = sharedBuffer(m.dtype, P);
      this.paramsView = sharedArray(m.dtype, this.params).subarray(0, P);
    }
    this.paramsView.set(m.params);
    const accuracy = op !== "predict" && m.metrics.includes("accuracy");
    const posted: WorkerHandle[] = [];
    let main: { loss: number; hits: number } | null = null;
    let failure: unknown = null;
    try {
      for (let k = 1; k < sizes.length; k++) {
        const w = this.workers[k - 1]!, Bw = sizes[k]!, b0 = starts[k]!;
        this.fitBuffers(w, Bw, T);
        gatherX(xt, rows, rowStart + b0, Bw, T, F, w.x);
        if (yt) gatherY(yt, rows, rowStart + b0, Bw, perStep ? T : 0, D, w.y);
        const states = this.initialStates(B, b0, Bw);
        if (states) {
          let off = 0;
          for (const s of states) { w.stateIn.set(s.h, off); w.stateIn.set(s.c, off + s.h.length); off += 2 * s.h.length; }
        }
        Atomics.store(w.ctrl, CTRL_DONE, 0);
        w.post({ type: "run", op, B: Bw, T, loss: m.loss, states: states !== null, accuracy, norms: norms0 !== null });
        posted.push(w);
      }
      // The calling thread's slice, exactly as trainRows / testRows / predict would run it on B0 rows.
      const B0 = sizes[0]!;
      m.ensure(B0, T);
      m.loadInput(xt, rows, rowStart, B0, 0, T, 0);
      const states = this.initialStates(B, 0, B0);
      if (states) m.setInitialState(0, false, states);
      else m.setInitialState(0, false);
      const M = m.forward(0, T, 0);
      if (op !== "predict") {
        m.loadLabels(yt!, rows, rowStart, B0, 0, T);
        const loss = m.lossOf(M, op !== "test");
        const hits = accuracy ? Math.round(m.accuracyOf(M) * M * D) : 0;
        if (op !== "test") {
          m.grads.fill(0);
          m.backward(0, T, 0, norms0);
        }
        main = { loss, hits };
      }
    } catch (e) {
      failure = e;
    }
    // Even when this thread failed, no worker may still be writing when the call returns.
    for (const w of posted) {
      try { w.waitDone(); } catch (e) { failure ??= e; }
    }
    if (failure) throw failure;
    this.parallelCalls++;
    if (!main) return { sizes, starts, loss: 0, hits: 0 };
    let loss = (sizes[0]! / B) * main.loss, hits = main.hits;
    for (let k = 1; k < sizes.length; k++) {
      const w = this.workers[k - 1]!;
      loss += (sizes[k]! / B) * w.result[0]!;
      hits += w.result[1]!;
    }
    if (op === "train" || op === "grads") this.mergeGrads(sizes, B);
    return { sizes, starts, loss, hits };
  }

  /** model.grads = Σ (B_k/B)·g_k, slice 0's being in model.grads already. */
  private mergeGrads(sizes: number[], B: number): void {
    const g = this.model.grads, P = g.length, w0 = sizes[0]! / B;
    if (sizes.length === 2) {
      const g1 = this.workers[0]!.grads, w1 = sizes[1]! / B;
      for (let i = 0; i < P; i++) g[i] = w0 * g[i]! + w1 * g1[i]!;
      return;
    }
    for (let i = 0; i < P; i++) {
      let s = w0 * g[i]!;
      for (let k = 1; k < sizes.length; k++) s += (sizes[k]! / B) * this.workers[k - 1]!.grads[i]!;
      g[i] = s;
    }
  }

  /** Keeps every layer's final state (B rows) as its carried state, like one thread's commitState(T). */
  private commit(p: Pass, T: number): void {
    const m = this.model, B0 = p.sizes[0]!, B = B0 + p.sizes.slice(1).reduce((a, b) => a + b, 0);
    const units = m.lstms.map((l) => l.units);
    const finals = p.sizes.slice(1).map((Bw, k) => stateViews(this.workers[k]!.stateOut, units, Bw));
    m.lstms.forEach((l, i) => {
      const H = l.units, n = B * H, n0 = B0 * H;
      if (!l.stateH || l.stateH.length !== n) {
        l.stateH = allocate(m.dtype, n);
        l.stateC = allocate(m.dtype, n);
      }
      l.stateH.set(l.ws!.hs.subarray(T * n0, (T + 1) * n0));
      l.stateC!.set(l.ws!.cs.subarray(T * n0, (T + 1) * n0));
      finals.forEach((f, k) => {
        l.stateH!.set(f[i]!.h, p.starts[k + 1]! * H);
        l.stateC!.set(f[i]!.c, p.starts[k + 1]! * H);
      });
    });
  }

  private accuracyOf(p: Pass, B: number, T: number): number {
    return p.hits / ((this.model.perStep ? T * B : B) * this.model.outputDim);
  }

  /** trainRows across threads, or null when the call is small enough for one thread. */
  trainRows(xt: NdArray<any>, yt: NdArray<any>, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null {
    const sizes = this.split(B, T, true);
    if (!sizes) return null;
    const p = this.pass("train", sizes, xt, yt, rows, rowStart, T, null);
    const res: StepResult = { loss: p.loss };
    if (this.model.metrics.includes("accuracy")) res.accuracy = this.accuracyOf(p, B, T);
    if (this.model.applyUpdate(p.loss, "trainOnBatch")) this.commit(p, T);
    return res;
  }

  /** testRows across threads, or null for one thread. */
  testRows(xt: NdArray<any>, yt: NdArray<any>, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null {
    const sizes = this.split(B, T, false);
    if (!sizes) return null;
    const p = this.pass("test", sizes, xt, yt, rows, rowStart, T, null);
    const res: StepResult = { loss: p.loss };
    if (this.model.metrics.includes("accuracy")) res.accuracy = this.accuracyOf(p, B, T);
    this.commit(p, T);
    return res;
  }

  /**
   * predict's rows [start, start + B) across threads, written into `out` (the whole [N, D] or [N, T, D]
   * result); false (and nothing done) when the chunk is small enough for one thread.
   */
  predictRows(xt: NdArray<any>, start: number, B: number, T: number, out: FloatArray): boolean {
    const sizes = this.split(B, T, false);
    if (!sizes) return false;
    const p = this.pass("predict", sizes, xt, null, null, start, T, null);
    this.commit(p, T);
    this.headRows(p, T, out, start);
    return true;
  }

  /** The head's output rows of every slice, into the batch-major `out` from batch row `start` on. */
  private headRows(p: Pass, T: number, out: FloatArray, start: number): void {
    const m = this.model, D = m.outputDim, S = m.perStep ? T : 1;
    out.set(m.headOutput(p.sizes[0]!, T).data, start * S * D);
    for (let k = 1; k < p.sizes.length; k++) {
      const Bw = p.sizes[k]!, raw = this.workers[k - 1]!.out, b0 = start + p.starts[k]!;
      if (!m.perStep) { out.set(raw.subarray(0, Bw * D), b0 * D); continue; }
      for (let t = 0; t < T; t++) for (let b = 0; b < Bw; b++) for (let d = 0; d < D; d++) {
        out[((b0 + b) * T + t) * D + d] = raw[(t * Bw + b) * D + d]!;
      }
    }
  }

  /** computeGradients across threads, or null for one thread. */
  computeGradients(xt: NdArray<any>, yt: NdArray<any>, B: number, T: number, options: { hiddenGradNorms?: boolean }): Gradients | null {
    const sizes = this.split(B, T, true);
    if (!sizes) return null;
    const m = this.model, dt = m.dtype, F = m.inputDim!, D = m.outputDim;
    const norms0 = options.hiddenGradNorms ? m.lstms.map(() => new Float64Array(T)) : null;
    const p = this.pass("grads", sizes, xt, yt, null, 0, T, norms0);
    this.commit(p, T);
    const B0 = sizes[0]!, wk = sizes.map((s) => s / B);
    const grads = m.splitFlat(m.grads);
    const outputs = allocate(dt, B * (m.perStep ? T : 1) * D);
    this.headRows(p, T, outputs, 0);
    // Every gradient below is of slice k's own mean loss: scaled by B_k/B it is the batch's.
    const dx = allocate(dt, B * T * F);
    const units = m.lstms.map((l) => l.units);
    const unshuffle = (dst: FloatArray, src: FloatArray, srcOff: number, Bk: number, b0: number, C: number, scale: number): void => {
      // (T, Bk, C) time-major rows into batch-major (B, T, C) at batch row b0
      for (let t = 0; t < T; t++) for (let b = 0; b < Bk; b++) {
        const s = srcOff + (t * Bk + b) * C, d = ((b0 + b) * T + t) * C;
        for (let c = 0; c < C; c++) dst[d + c] = scale * src[s + c]!;
      }
    };
    unshuffle(dx, m.lstms[0]!.ws!.dxs, 0, B0, 0, F, wk[0]!);
    for (let k = 1; k < sizes.length; k++) unshuffle(dx, this.workers[k - 1]!.dx, 0, sizes[k]!, p.starts[k]!, F, wk[k]!);
    const hiddenStates: Tensor[] = [];
    const stateGrads: { h: Tensor; c: Tensor }[] = [];
    const workerGrads = sizes.slice(1).map((Bw, k) => stateViews(this.workers[k]!.stateGrads, units, Bw));
    let hOff = 0;
    m.lstms.forEach((l, i) => {
      const H = l.units, ws = l.ws!;
      const hs = allocate(dt, B * T * H);
      unshuffle(hs, ws.hs, B0 * H, B0, 0, H, 1); // slots 1 … T
      const dh = allocate(dt, B * H), dc = allocate(dt, B * H);
      for (let j = 0; j < B0 * H; j++) { dh[j] = wk[0]! * ws.dh[j]!; dc[j] = wk[0]! * ws.dc[j]!; }
      for (let k = 1; k < sizes.length; k++) {
        const Bw = sizes[k]!, b0 = p.starts[k]!;
        unshuffle(hs, this.workers[k - 1]!.hseq, hOff * Bw, Bw, b0, H, 1);
        const g = workerGrads[k - 1]![i]!;
        for (let j = 0; j < Bw * H; j++) { dh[b0 * H + j] = wk[k]! * g.h[j]!; dc[b0 * H + j] = wk[k]! * g.c[j]!; }
      }
      hOff += T * H;
      hiddenStates.push(fromData(hs, [B, T, H]));
      stateGrads.push({ h: fromData(dh, [B, H]), c: fromData(dc, [B, H]) });
    });
    const res: Gradients = {
      loss: p.loss, grads, outputs: fromData(outputs, m.perStep ? [B, T, D] : [B, D]),
      inputGrad: fromData(dx, [B, T, F]), hiddenStates, stateGrads,
    };
    if (norms0) {
      res.hiddenGradNorms = norms0.map((a, i) => Array.from(a, (n0, t) => {
        let s = wk[0]! * wk[0]! * n0 * n0;
        for (let k = 1; k < sizes.length; k++) s += wk[k]! * wk[k]! * this.workers[k - 1]!.norms[i * T + t]!;
        return Math.sqrt(s);
      }));
    }
    return res;
  }
}

/** The worker module next to this one: the .ts source under tsx/vitest, the built .js otherwise. */
function workerEntry(): string {
  return new URL(import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js", import.meta.url).href;
}

/** Copies rows [r0, r0 + n) of x [N, T, F] (through the row map) into dst, batch-major (n, T, F). */
function gatherX(x: NdArray<any>, rows: Int32Array | null, r0: number, n: number, T: number, F: number, dst: FloatArray): void {
  const [sb, st, sf] = x.stride as [number, number, number], d = x.data;
  for (let b = 0; b < n; b++) {
    const r = rows ? rows[r0 + b]! : r0 + b;
    for (let t = 0; t < T; t++) {
      const src = x.offset + r * sb + t * st, o = (b * T + t) * F;
      for (let f = 0; f < F; f++) dst[o + f] = d[src + f * sf];
    }
  }
}

/** Copies rows of y, [N, D] (T = 0) or [N, T, D], into dst, batch-major. */
function gatherY(y: NdArray<any>, rows: Int32Array | null, r0: number, n: number, T: number, D: number, dst: FloatArray): void {
  const d = y.data;
  if (T === 0) {
    const [sb, sd] = y.stride as [number, number];
    for (let b = 0; b < n; b++) {
      const r = rows ? rows[r0 + b]! : r0 + b;
      for (let k = 0; k < D; k++) dst[b * D + k] = d[y.offset + r * sb + k * sd];
    }
    return;
  }
  const [sb, st, sd] = y.stride as [number, number, number];
  for (let b = 0; b < n; b++) {
    const r = rows ? rows[r0 + b]! : r0 + b;
    for (let t = 0; t < T; t++) {
      const src = y.offset + r * sb + t * st, o = (b * T + t) * D;
      for (let k = 0; k < D; k++) dst[o + k] = d[src + k * sd];
    }
  }
}
