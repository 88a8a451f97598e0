/**
 * Truncated BPTT on both cores: a sequence's batch rows split across the thread pool for its whole length. The
 * calling thread runs rows [0, B_0) in its own engine and each worker its slice in its replica, every slice keeping
 * its rows' carried state and kept history (tbptt-rows.ts) from window to window and from call to call, so nothing
 * but the chunk's rows, one small message and the slices' gradients crosses between threads:
 *
 * - per call (feed): each worker's rows of x and y into its shared buffers, once for the whole chunk;
 * - per window (step): one message per worker ("load steps [tx, tx + n), train the window"), the calling thread's
 *   own slice meanwhile, one wait; then the merged loss and gradient, Σ w_k·g_k with w_k = B_k/B, or n_k/n (the kept
 *   output rows of the window) for a masked per-step head (see pool.ts), and the update on the calling thread as on
 *   one thread;
 * - dropout: the sequence's masks drawn once at its start for the whole batch, as one thread draws them
 *   (EngineCore.drawMaskRows), each slice keeping its rows' for the sequence;
 * - the window's fate (settle): deferred to the next message when it stood (keep the history), sent at once when
 *   onNonFinite "skip" dropped it (the workers' carried state must be the state before it right away).
 *
 * onWindow's study info is gathered from the slices rather than run on one thread: a sequence fed in chunks may be
 * studied from any chunk on, when its rows' history already lives in the workers, and the gather costs only when
 * someone looks (dL/dx of the reached steps, dL/d(state) at the cut, ‖dL/dh_t‖², each scaled by w_k as the
 * gradient is; ‖·‖ over the batch is √Σ_k w_k²·‖dL_k/dh_t‖²).
 *
 * Legend: B batch, B_k rows of slice k (slice 0 the calling thread's), T steps of the chunk, F features, H units.
 */
import type { Engine } from "../engine.js";
import type { DropoutMasks } from "../engine-core.js";
import type { RecurrentState, WindowResult, WindowRunner } from "../engine-api.js";
import { type FloatArray, type StridedArray, type Tensor, allocate, fromData } from "../tensor/tensor.js";
import { gatherSamples, timeToBatchMajor } from "../tensor/layout.js";
import { StateError } from "../errors.js";
import { WindowRows } from "../tbptt-rows.js";
import { type WindowMessage, CTRL_DONE } from "./protocol.js";
import type { WorkerHandle } from "./workers.js";

/** What a split sequence needs of its pool: ThreadPool's members for it (pool.ts). */
export interface WindowPool {
  /** Windows trained split across threads. */
  parallelWindows: number;
  /** The started workers, slice k + 1 on workers[k]. */
  windowWorkers(): readonly WorkerHandle[];
  /** Grows worker `slot`'s shared buffers to Bw rows and T steps (its next message then binds them). */
  fitWindowBuffers(w: WorkerHandle, slot: number, Bw: number, T: number): void;
  /** Points the workers at the current weights. */
  shareWeights(): void;
  /** model.grads = Σ w_k·g_k over the split `sizes` with these `weights`, slice 0's being in model.grads already. */
  mergeSlices(sizes: readonly number[], weights: readonly number[]): void;
  /** Rows [b0, b0 + Bw) of a batch's dropout masks (B rows) into `dst` (Bw rows, laid out alike). */
  sliceWindowMasks(masks: readonly DropoutMasks[], B: number, b0: number, Bw: number, dst: readonly DropoutMasks[]): void;
  /** Views of worker `slot`'s masks buffer for its Bw rows. */
  workerWindowMasks(slot: number, w: WorkerHandle, Bw: number): DropoutMasks[];
  /** Waits for the first `posted` workers; a failure stops the pool and throws a StateError saying `what` failed and `after` what. */
  awaitSlices(workers: readonly WorkerHandle[], posted: number, t0: number, what: string, after: string): void;
}

/** One truncated-BPTT sequence split across a pool (created by ThreadPool.windows). */
export class SplitWindows implements WindowRunner {
  /** The calling thread's slice, rows [0, B_0). */
  private readonly own: WindowRows;
  private readonly workers: readonly WorkerHandle[];
  /** Per worker, its message, rewritten and posted at every step. */
  private readonly msgs: WindowMessage[];
  /** The last window stood: the workers keep its history at their next message. */
  private settleNext: 0 | 1 = 0;
  private T = 0;
  /** The sequence's dropout masks for the whole batch, drawn at its start, until the first feed hands them out. */
  private drawn: readonly DropoutMasks[] | null = null;
  /** Per slice, its share of the last window's loss: B_k/B, or n_k/n under a mask. */
  private readonly weights: number[];

  constructor(
    private readonly pool: WindowPool, private readonly m: Engine, readonly B: number, k1: number, k2: number,
    private readonly sizes: readonly number[], private readonly starts: readonly number[],
  ) {
    this.own = new WindowRows(m, sizes[0]!, k1, k2, false);
    this.workers = pool.windowWorkers().slice(0, sizes.length - 1);
    this.msgs = this.workers.map((_, k) => ({
      type: "window", B: sizes[k + 1]!, T: 0, loss: null, buffers: null, settle: 0, begin: true, k1, k2,
      tx: 0, n: 0, run: false, dropping: false, accuracy: false, study: false, masks: false,
    }));
    this.weights = sizes.map((s) => s / B);
  }

  get pending(): number {
    return this.own.pending;
  }

  begin(dropout: boolean): void {
    const m = this.m, B = this.B, B0 = this.sizes[0]!;
    this.own.begin(false);
    this.drawn = null;
    if (dropout) {
      // One set of masks per sequence, drawn for the whole batch here as one thread draws them; this thread's rows
      // in arrays of its own (the engine's draw is reused by its next), the workers' at the first feed.
      const drawn = m.drawMaskRows(B);
      const own = drawn.map((s) => ({ x: s.x && new Float64Array((s.x.length / B) * B0), h: s.h && new Float64Array((s.h.length / B) * B0) }));
      this.pool.sliceWindowMasks(drawn, B, 0, B0, own);
      m.useMasks(own);
      this.drawn = drawn;
    }
    for (const msg of this.msgs) { msg.begin = true; msg.masks = dropout; } // sent with the first step
    this.settleNext = 0;
  }

  feed(xt: StridedArray, yt: StridedArray, T: number): void {
    const live = this.pool.windowWorkers();
    for (let k = 0; k < this.workers.length; k++) {
      if (live[k] !== this.workers[k] || this.workers[k]!.dead) {
        throw new StateError(
          "trainSequence: the model's worker threads were stopped or replaced in the middle of a sequence fed in chunks, " +
          "and its rows' carried state and history went with them; the unroller was reset, start the sequence again",
        );
      }
    }
    const cap = this.own.cap;
    this.pool.shareWeights(); // first: the buffers the workers bind name the weights' buffer
    for (let k = 0; k < this.workers.length; k++) {
      const w = this.workers[k]!, Bw = this.sizes[k + 1]!, b0 = this.starts[k + 1]!;
      this.pool.fitWindowBuffers(w, k, Bw, Math.max(T, cap)); // x and y for T steps; dx and ‖dL/dh‖ for the cap reached
      gatherSamples(xt, null, b0, Bw, w.x); // (Bw, T, F)
      gatherSamples(yt, null, b0, Bw, w.y); // (Bw, D) or (Bw, T, D)
      if (this.drawn) this.pool.sliceWindowMasks(this.drawn, this.B, b0, Bw, this.pool.workerWindowMasks(k, w, Bw));
    }
    this.drawn = null; // (each worker copies its rows at its first message)
    this.T = T;
  }

  step(xt: StridedArray, yt: StridedArray, tx: number, n: number, run: boolean, update: boolean, study: boolean): WindowResult | null {
    const m = this.m, sizes = this.sizes, accuracy = run && m.accuracy;
    if (run) this.pool.shareWeights();
    const res = this.post(tx, n, run, update, accuracy, run && study, 0, () => this.own.step(xt, yt, tx, n, run, update, study));
    if (!res) return null;
    // Each slice's weight: B_k/B, or n_k/n for a masked per-step head (0 for all when no output row is kept, where one
    // thread's loss and gradient are 0 too), as pool.ts weighs a call's slices.
    const workers = this.workers, weights = this.weights, kept0 = this.own.kept;
    let kept = kept0;
    for (const w of workers) kept += w.result[3]!;
    if (m.rowMasked) for (let k = 0; k < sizes.length; k++) weights[k] = kept === 0 ? 0 : (k === 0 ? kept0 : workers[k - 1]!.result[3]!) / kept;
    let loss = weights[0]! * res.loss;
    let hits = accuracy ? Math.round(res.accuracy! * m.accuracyUnits(kept0)) : 0;
    for (let k = 0; k < workers.length; k++) {
      loss += weights[k + 1]! * workers[k]!.result[0]!;
      hits += workers[k]!.result[1]!;
    }
    this.pool.mergeSlices(sizes, weights);
    this.pool.parallelWindows++;
    const out: WindowResult = { loss, steps: res.steps, reach: res.reach };
    if (accuracy) {
      const units = m.accuracyUnits(kept); // hits over the kept rows' units, as one thread's accuracyOf
      out.accuracy = units ? hits / units : 0;
    }
    return out;
  }

  /**
   * One message to every worker (the deferred settle, or `settle` now; then load and maybe run), the calling
   * thread's part meanwhile, and the wait. The calling thread's failure is thrown only once every worker is done.
   */
  private post(
    tx: number, n: number, run: boolean, dropping: boolean, accuracy: boolean, study: boolean, settle: 0 | 2,
    own: () => WindowResult | null,
  ): WindowResult | null {
    const workers = this.workers, loss = this.m.loss, T = this.T;
    let posted = 0, failure: unknown = null, res: WindowResult | null = null;
    const t0 = performance.now();
    try {
      for (let k = 0; k < workers.length; k++) {
        const w = workers[k]!, msg = this.msgs[k]!;
        msg.T = T; msg.loss = loss; msg.settle = settle || this.settleNext; msg.tx = tx; msg.n = n;
        msg.run = run; msg.dropping = dropping; msg.accuracy = accuracy; msg.study = study;
        msg.buffers = w.cmd.buffers; // set by fitWindowBuffers when they changed
        Atomics.store(w.ctrl, CTRL_DONE, 0);
        w.thread.post(msg);
        msg.buffers = null; // sent (postMessage copied the message)
        w.cmd.buffers = null;
        msg.begin = false;
        msg.masks = false;
        posted++;
      }
      this.settleNext = 0;
      res = own();
    } catch (e) {
      failure = e;
    }
    this.pool.awaitSlices(
      workers, posted, t0, `a truncated-BPTT window on ${this.B} rows`,
      "The window was not applied: the weights and optimizer state are as after the last window, and the sequence in progress was reset",
    );
    if (failure) throw failure;
    return res;
  }

  settle(applied: boolean): void {
    this.own.settle(applied);
    if (applied) this.settleNext = 1;
    else this.post(0, 0, false, false, false, false, 2, () => null); // now: their carried state is the one before the window
    this.commit();
  }

  /** Every layer's carried state over the whole batch as the model's last states, as one thread's commitState. */
  private commit(): void {
    const m = this.m, B = this.B;
    for (let i = 0; i < m.rnns.length; i++) {
      const kept = m.allocState(i, B);
      this.gatherStates(i, this.own.stateSlot, kept);
    }
  }

  /** Layer i's states over the batch into `to` (per state, (B, H)): the calling thread's at `slot`, the workers' stateOut. */
  private gatherStates(i: number, slot: number, to: FloatArray[]): void {
    const m = this.m, H = m.rnns[i]!.stateUnits, n0 = this.sizes[0]! * H, slots = m.ws(i).states;
    const before = this.statesBefore(i);
    for (let s = 0; s < slots.length; s++) {
      to[s]!.set(slots[s]!.subarray(slot * n0, (slot + 1) * n0), 0);
      for (let k = 0; k < this.workers.length; k++) {
        const Bw = this.sizes[k + 1]!, o = Bw * (before + s * H), out = this.workers[k]!.stateOut;
        to[s]!.set(out.subarray(o, o + Bw * H), this.starts[k + 1]! * H);
      }
    }
  }

  /** Σ states·H of the recurrent layers below layer i: a worker's state buffers hold Bw times that before layer i's. */
  private statesBefore(i: number): number {
    let before = 0;
    for (let j = 0; j < i; j++) before += this.m.rnns[j]!.stateNames.length * this.m.rnns[j]!.stateUnits;
    return before;
  }

  states(): RecurrentState[] {
    const m = this.m, B = this.B;
    return m.rnns.map((l, i) => {
      const bufs = l.stateNames.map(() => allocate(m.dtype, B * l.stateUnits));
      this.gatherStates(i, this.own.stateSlot, bufs);
      return m.namedStates(i, bufs, 0, B);
    });
  }

  hiddenGradNorms(): number[][] {
    const own = this.own, w0 = this.weights[0]!, cap = own.cap;
    return own.dhNorms!.map((a, i) => {
      const out: number[] = [];
      for (let t = own.tb; t < own.t1; t++) {
        let s = w0 * w0 * a[t]! * a[t]!;
        for (let k = 0; k < this.workers.length; k++) {
          const wk = this.weights[k + 1]!;
          s += wk * wk * this.workers[k]!.norms[i * cap + t]!; // the worker's squared norm
        }
        out.push(Math.sqrt(s));
      }
      return out;
    });
  }

  inputGrad(): Tensor {
    const m = this.m, B = this.B, F = m.inputDim!, reach = this.own.t1 - this.own.tb;
    const out = allocate(m.dtype, B * reach * F); // (B, reach, F)
    this.own.inputGradInto(out, 0, this.weights[0]!);
    for (let k = 0; k < this.workers.length; k++) {
      const Bw = this.sizes[k + 1]!;
      timeToBatchMajor(reach, Bw, F, this.workers[k]!.dx, 0, out, this.starts[k + 1]! * reach * F, this.weights[k + 1]!);
    }
    return fromData(out, [B, reach, F]);
  }

  stateGrads(): RecurrentState[] {
    const m = this.m, B = this.B, w0 = this.weights[0]!;
    return m.rnns.map((l, i) => {
      const H = l.stateUnits, n0 = this.sizes[0]! * H, own = m.ws(i).dStates, before = this.statesBefore(i);
      const d = l.stateNames.map((_, s) => {
        const ds = allocate(m.dtype, B * H), src = own[s]!;
        for (let j = 0; j < n0; j++) ds[j] = w0 * src[j]!;
        for (let k = 0; k < this.workers.length; k++) {
          const Bw = this.sizes[k + 1]!, wk = this.weights[k + 1]!, g = this.workers[k]!.stateGrads, o = Bw * (before + s * H), at = this.starts[k + 1]! * H;
          for (let j = 0; j < Bw * H; j++) ds[at + j] = wk * g[o + j]!;
        }
        return ds;
      });
      return m.namedStates(i, d, 0, B);
    });
  }
}
