/**
 * The rows of one truncated-BPTT sequence on one engine: the window bookkeeping of tbptt.ts (kept history,
 * the open window, the slot of the carried state), its forward, loss and backward, and what happens to its
 * buffers after the update. The calling thread runs it on the whole batch (one thread); split across a thread
 * pool (threads/tbptt-pool.ts), the calling thread runs it on its own slice of the rows and every worker's
 * replica (threads/replica.ts) on its slice, so each slice keeps its own rows' state and history from window
 * to window and from call to call.
 *
 * The engine's buffers hold the sequence: slots [0, hist) the kept history (the k2 − k1 steps before the
 * window, when k2 > k1), [hist, hist + pending) the open window, and each recurrent layer's state slots one
 * more (slot t is the state before step t).
 *
 * Legend: B the rows of this engine, T steps of the chunk, F features, D label values per head row.
 */
import type { Engine } from "./engine.js";
import type { RecurrentState, WindowResult, WindowRunner } from "./engine-api.js";
import { type FloatArray, type StridedArray, type Tensor, allocate, fromData } from "./tensor/tensor.js";
import { gatherSteps, timeToBatchMajor } from "./tensor/layout.js";

export class WindowRows implements WindowRunner {
  /** Steps kept before a window: max(0, k2 − k1). */
  readonly history: number;
  /** Steps the buffers hold: history + k1. */
  readonly cap: number;
  hist = 0;    // history steps in slots [0, hist)
  pending = 0; // steps of the open window in slots [hist, hist + pending)
  /** The slot of the state carried into the next window (the last window's end until it settles). */
  stateSlot = 0;
  /** The last window's reached steps [tb, t1). */
  tb = 0;
  t1 = 0;
  /** The last window's output rows (B, or steps·B for a per-step head), and how many of them its loss counted (fewer under a mask). */
  M = 0;
  kept = 0;
  /** Of the last window, when studied: per recurrent layer, ‖dL/dh_t‖ of this engine's rows' mean loss at slot t. */
  dhNorms: Float64Array[] | null = null;
  private yPending: FloatArray = new Float64Array(0); // (k1, B, D) per-step labels of the open window, time-major

  /**
   * `commit`: keep each window's final state as the engine's last states (the model's carried state), as one
   * thread does; a slice of a split leaves that to the split, which commits the whole batch's.
   */
  constructor(
    private readonly m: Engine, readonly B: number, readonly k1: number, readonly k2: number, private readonly commit: boolean,
  ) {
    this.history = Math.max(0, k2 - k1);
    this.cap = this.history + k1;
  }

  begin(dropout: boolean): void {
    const m = this.m;
    m.ensure(this.B, this.cap);
    // Dropout: one set of masks per sequence (per batch row), the same in every window of it, so that the
    // kept history and the window see the same masks.
    if (dropout) m.drawMasks();
    m.setInitialState(0, false);
    this.hist = 0;
    this.pending = 0;
    this.stateSlot = 0;
  }

  /** Nothing to hand out: this engine reads the chunk where it is. */
  feed(): void {}

  step(xt: StridedArray, yt: StridedArray, tx: number, n: number, run: boolean, update: boolean, study: boolean): WindowResult | null {
    this.load(xt, yt, tx, n);
    return run ? this.window(yt, update, study, this.m.accuracy) : null;
  }

  /** Appends steps [tx, tx + n) of rows [0, B) of x (and of per-step labels y) to the open window. */
  load(xt: StridedArray, yt: StridedArray, tx: number, n: number): void {
    const m = this.m, B = this.B, D = m.labelDim;
    m.ensure(B, this.cap);
    m.loadInput(xt, null, 0, B, tx, n, this.hist + this.pending);
    if (m.perStep) {
      if (this.yPending.length < this.k1 * B * D) this.yPending = allocate(m.dtype, this.k1 * B * D);
      gatherSteps(yt, null, 0, B, tx, n, this.yPending, this.pending * B * D);
    }
    this.pending += n;
  }

  /**
   * Forward over the open window from the carried state, the loss (per-step labels as loaded, or rows [0, B) of the
   * per-sequence y), backward over the reached steps [tb, t1): the gradient of this engine's rows' mean loss in its
   * grads. With `study`, also dL/dx and ‖dL/dh_t‖.
   */
  window(yt: StridedArray, update: boolean, study: boolean, accuracy: boolean): WindowResult {
    const m = this.m, B = this.B, t0 = this.hist, steps = this.pending, t1 = t0 + steps;
    m.setDropping(update); // a training window applies the sequence's dropout masks; a study window does not
    const M = m.forward(t0, t1);
    if (m.perStep) {
      m.setLabels(this.yPending, steps * B * m.labelDim); // already time-major, like the head's rows
    } else {
      m.loadLabels(yt, null, 0, B, 0, 0);
    }
    const loss = m.lossOf(M, true);
    this.kept = m.keptRows(M); // (before backward: it reads the window's mask rows)
    const acc = accuracy ? m.accuracyOf(M) : undefined;
    m.zeroGrads();
    const tb = Math.max(0, t1 - this.k2);
    const norms = study ? m.rnns.map(() => new Float64Array(t1)) : null; // only when someone looks
    m.backward(tb, t1, t0, norms, null, study); // dL/dx only when onWindow may ask for it
    this.stateSlot = t1;
    this.tb = tb;
    this.t1 = t1;
    this.M = M;
    this.dhNorms = norms;
    const res: WindowResult = { loss, steps, reach: t1 - tb };
    if (acc !== undefined) res.accuracy = acc;
    return res;
  }

  settle(applied: boolean): void {
    const m = this.m, t0 = this.hist, t1 = t0 + this.pending;
    let keep = Math.min(this.history, t1);
    if (!applied) {
      // onNonFinite "skip": the window is dropped. Its state and activations may be non-finite, so the
      // sequence continues from the state before the window, without history.
      m.copyState(t0, t1);
      keep = 0;
    }
    if (this.commit) m.commitState(t1);
    m.shiftHistory(t1 - keep, keep);
    this.hist = keep;
    this.pending = 0;
    this.stateSlot = keep;
  }

  states(): RecurrentState[] {
    const m = this.m;
    return m.rnns.map((l, i) => m.namedStates(i, m.ws(i).states, this.stateSlot * this.B * l.stateUnits, this.B));
  }

  hiddenGradNorms(): number[][] {
    return this.dhNorms!.map((a) => Array.from(a.subarray(this.tb, this.t1)));
  }

  inputGrad(): Tensor {
    const m = this.m, B = this.B, F = m.inputDim!, reach = this.t1 - this.tb;
    const out = allocate(m.dtype, B * reach * F);
    this.inputGradInto(out, 0, 1);
    return fromData(out, [B, reach, F]);
  }

  /** dL/dx of rows [0, B) over the reached steps, times `scale`, into the batch-major out (B', reach, F) from row b0. */
  inputGradInto(out: FloatArray, b0: number, scale: number): void {
    const m = this.m, B = this.B, F = m.inputDim!, reach = this.t1 - this.tb;
    const g = m.inputGrad(); // steps [tb, t1)
    timeToBatchMajor(reach, B, F, g.buf, g.off + (this.tb - g.from) * B * F, out, b0 * reach * F, scale);
  }

  stateGrads(): RecurrentState[] {
    const m = this.m;
    return m.rnns.map((_, i) => m.namedStates(i, m.ws(i).dStates, 0, this.B));
  }
}
