/**
 * Truncated backpropagation through time, explicit: window k1 (`windowLength`) and backprop reach k2
 * (`backpropLength`).
 *
 * Every k1 steps the unroller makes one optimizer update. Its gradient flows back through the last k2
 * steps: when k2 > k1 (Williams & Peng) the activations of the k2 - k1 steps before the window are kept
 * from the forward pass that computed them, so the gradient reaches into earlier windows; when k2 < k1
 * (DL4J's backward length) it is cut inside the window, and per-step loss terms before the cut train only
 * the Dense head. Hidden and cell state carry from window to window as constants, and are reset at the
 * end of the sequence unless told otherwise, so a sequence longer than memory can be fed in chunks.
 *
 * Full BPTT is one window over the whole sequence of T steps: k1 ≥ T and k2 ≥ T (k2 defaults to k1) give
 * one update from the gradient of the whole sequence's loss, as `trainOnBatch` on the sequence from zero
 * state. k2 ≥ T with k1 < T is not full BPTT: ⌈T/k1⌉ updates, each from the gradient of its own window's
 * loss only, reaching back to step 0 through activations that earlier windows computed with the weights
 * of their time (before the updates made since).
 *
 * Memory: the buffers hold max(k1, k2) steps, whatever the sequence length.
 *
 * Threads: with `setThreads(model, n)` (longshort/node) a sequence whose windows are large enough splits its batch
 * rows across the pool (threads/tbptt-pool.ts): each slice keeps its rows' carried state and kept history, and the
 * optimizer runs once per window here, on the merged gradient. tbptt-rows.ts is the bookkeeping of one slice (of the
 * whole batch on one thread).
 *
 * Legend: B batch, T steps of the chunk, F features, D head units.
 */
import { Sequential } from "./model.js";
import type { Engine } from "./engine.js";
import type { RecurrentState, WindowResult, WindowRunner } from "./engine-api.js";
import { type FloatArray, type Tensor, type TensorLike, allocate } from "./tensor/tensor.js";
import { WindowRows } from "./tbptt-rows.js";
import { buildFor, checkInput, checkLabels, checkStatefulBatch, requireCompiled } from "./validate.js";
import { ValueError, StateError, checkKeys, checkPositiveInt, fmtValue, fmtInstance } from "./errors.js";

export interface TruncatedBPTTOptions {
  /** k1: steps per window, one optimizer update per window. */
  windowLength: number;
  /** k2: how far back each update's gradient flows. Default k1. */
  backpropLength?: number;
}

export interface WindowInfo {
  /** Window index within the current trainSequence call. */
  index: number;
  /** Steps in the window (k1, or fewer for a last partial window). */
  steps: number;
  /** The window's loss, before its update. */
  loss: number;
  accuracy?: number;
  /** The model's flat gradient buffer for this window (getWeights order); valid during the callback only. */
  grads: FloatArray;
  /**
   * How many steps the window's gradient went back through: min(k2, steps since the sequence began). The
   * reached steps run from `steps - reach` (negative when k2 > k1 reaches into earlier windows) to the end of
   * the window, counted from the window's first step.
   */
  reach: number;
  /** Per LSTM layer, ‖dL/dh_t‖ over the batch for each reached step, oldest first (`reach` numbers). */
  hiddenGradNorms: number[][];
  /** This window's gradient per weight, in getWeights order, named as `model.weightNames()` (copies). */
  weightGrads(): { name: string; grad: Tensor }[];
  /** dL/dx over the reached steps, [B, reach, F] (a copy). */
  inputGrad(): Tensor;
  /**
   * dL/d(h, c) of the state the reached steps started from, where the gradient was cut, per LSTM layer,
   * [B, H] each (copies): with k2 = k1, the window's initial state.
   */
  stateGrads(): RecurrentState[];
}

export interface TrainSequenceOptions {
  /** The chunk ends the sequence: train a last partial window and reset the state. Default true. Pass
   * false to feed a long sequence in chunks; the next call continues it. */
  endOfSequence?: boolean;
  /** Apply the optimizer after every window. Default true; false computes gradients only (for study). */
  update?: boolean;
  /** Called after every window's backward pass (and before its update). Its info's functions read the
   * window's buffers: call them during the callback (they return copies). */
  onWindow?: (info: WindowInfo) => void;
}

export interface SequenceResult {
  /** Mean of the window losses. */
  loss: number;
  accuracy?: number;
  /** Windows trained in this call. */
  windows: number;
  /** Every window's loss, in order. */
  losses: number[];
}

/**
 * @example
 * const tbptt = new TruncatedBPTT(model, { windowLength: 10 });          // Keras's split windows + stateful
 * const { loss, windows } = tbptt.trainSequence(x, y);                    // x [B, T, F], y [B, D] or [B, T, D]
 * // a very long sequence, in chunks:
 * for (const [xc, yc, last] of chunks) tbptt.trainSequence(xc, yc, { endOfSequence: last });
 */
export class TruncatedBPTT {
  readonly windowLength: number;
  readonly backpropLength: number;
  private inSequence = false;
  private B = 0;
  private uses = -1;
  /** The sequence in progress: on this thread, or split across the model's thread pool. */
  private runner: WindowRunner | null = null;

  constructor(readonly model: Sequential, options: TruncatedBPTTOptions) {
    if (!(model instanceof Sequential)) {
      throw new ValueError(`TruncatedBPTT model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
    }
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`TruncatedBPTT options: expected { windowLength, backpropLength? }, got ${fmtValue(options)}`);
    }
    checkKeys("TruncatedBPTT", options, ["windowLength", "backpropLength"]);
    const layers = model.engine.layers, at = (i: number): number => i + (model.masking ? 1 : 0);
    const bidi = layers.findIndex((l) => l.kind === "bidirectional");
    if (bidi >= 0) {
      throw new ValueError(
        `TruncatedBPTT model: layers[${at(bidi)}] is a Bidirectional, whose backward direction starts at the end of the sequence, ` +
        "and a window does not have the steps after it; train such a model on whole sequences (fit, trainOnBatch)",
      );
    }
    const back = layers.findIndex((l) => (l.kind === "lstm" || l.kind === "gru") && l.goBackwards);
    if (back >= 0) {
      throw new ValueError(
        `TruncatedBPTT model: layers[${at(back)}] reads its sequence backwards (goBackwards), which needs the end of the ` +
        "sequence before its start, and a window has no future to read; train such a model on whole sequences (fit, trainOnBatch)",
      );
    }
    this.windowLength = checkPositiveInt("TruncatedBPTT windowLength", options.windowLength);
    this.backpropLength = options.backpropLength === undefined
      ? this.windowLength : checkPositiveInt("TruncatedBPTT backpropLength", options.backpropLength);
  }

  /**
   * Forgets the sequence in progress: zero state, no history, no partial window. Needed only to abandon a
   * sequence fed in chunks (`endOfSequence: false`); a call that ends its sequence resets by itself.
   *
   * @example
   * tbptt.trainSequence(firstChunk, y, { endOfSequence: false });
   * tbptt.resetStates();                  // drop it: the next call starts a new sequence from zero state
   * tbptt.trainSequence(otherSequence, y2);
   */
  resetStates(): void {
    this.inSequence = false;
    this.runner = null;
  }

  /**
   * The state carried into the next window, per recurrent layer, as copies ([B, H] each). Between sequences it is
   * zeros ([B, H] with the last sequence's B; [0, H] before the first sequence).
   *
   * @example
   * tbptt.trainSequence(chunk, y, { endOfSequence: false });
   * const [{ h, c }] = tbptt.getStates();   // the first LSTM's state after the chunk's last full window
   */
  getStates(): RecurrentState[] {
    const e = this.model.engine;
    if (this.inSequence && this.runner && e.built) return this.runner.states(); // the whole batch's, gathered from the slices
    return e.rnns.map((l, i) => e.namedStates(i, l.stateNames.map(() => allocate(e.dtype, this.B * l.stateUnits)), 0, this.B));
  }

  /**
   * Trains on x [B, T, F] window by window. Labels are per sequence, y [B, D] (the loss at the end of every
   * window, as in the Keras tutorial), or per step, y [B, T, D] (the top LSTM must return sequences).
   * Returns every window's loss (before its update), their mean, and the number of windows trained.
   *
   * @example
   * const tbptt = new TruncatedBPTT(model, { windowLength: 10, backpropLength: 20 });
   * const { loss, windows, losses } = tbptt.trainSequence(x, y);   // x [B, 100, F]: windows === 10
   * // study gradients without training:
   * tbptt.trainSequence(x, y, { update: false, onWindow: (w) => console.log(w.index, w.loss, w.grads.length) });
   */
  trainSequence(x: TensorLike, y: TensorLike, options: TrainSequenceOptions = {}): SequenceResult {
    const m = this.model.engine;
    requireCompiled(m, "TruncatedBPTT.trainSequence");
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`trainSequence options: expected an object, got ${fmtValue(options)}`);
    }
    checkKeys("trainSequence", options, ["endOfSequence", "update", "onWindow"]);
    const end = options.endOfSequence ?? true;
    const update = options.update ?? true;
    if (typeof end !== "boolean") throw new ValueError(`trainSequence endOfSequence: expected true or false, got ${fmtValue(end)}`);
    if (typeof update !== "boolean") throw new ValueError(`trainSequence update: expected true or false, got ${fmtValue(update)}`);
    if (options.onWindow !== undefined && typeof options.onWindow !== "function") {
      throw new ValueError(`trainSequence onWindow: expected a function, got ${fmtValue(options.onWindow)}`);
    }
    const { t: xt, B, T, F } = checkInput(m, "trainSequence x", x);
    const yt = checkLabels(m, "trainSequence y", y, B, T);
    if (this.inSequence) {
      if (B !== this.B) {
        throw new ValueError(`trainSequence x: the sequence in progress has batch size ${this.B}, got ${B}; finish it with endOfSequence: true or call resetStates()`);
      }
      if (m.uses !== this.uses) {
        this.resetStates();
        throw new StateError(`trainSequence: the model was used for another call in the middle of a sequence fed in chunks, which overwrote the carried state; the unroller was reset, start the sequence again`);
      }
    }
    // Only once every check has passed: build an unbuilt model, and hold a stateful one to its batch size
    // (the state the unroller leaves behind in the model is per row).
    buildFor(m, F);
    checkStatefulBatch(m, "trainSequence x", B);
    const k1 = this.windowLength;
    const losses: number[] = [];
    let accSum = 0, accSteps = 0;
    try {
      if (!this.inSequence) {
        this.runner = this.open(m, B, update);
        this.runner.begin(update && m.hasDropout);
        this.inSequence = true;
        this.B = B;
      }
      const r = this.runner!;
      r.feed(xt, yt, T);
      let tx = 0;
      while (tx < T) {
        const n = Math.min(k1 - r.pending, T - tx);
        const run = r.pending + n === k1 || (end && tx + n === T);
        const w = r.step(xt, yt, tx, n, run, update, Boolean(options.onWindow));
        tx += n;
        if (w) {
          this.runWindow(r, w, losses.length, update, options.onWindow);
          losses.push(w.loss);
          if (w.accuracy !== undefined) { accSum += w.accuracy; accSteps++; }
        }
      }
    } catch (e) {
      this.resetStates();
      throw e;
    }
    if (end) this.resetStates();
    this.uses = m.uses;
    const res: SequenceResult = {
      loss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : NaN,
      windows: losses.length,
      losses,
    };
    if (accSteps) res.accuracy = accSum / accSteps;
    return res;
  }

  /**
   * A new sequence's rows: split across the model's thread pool when it takes them, else on this thread. A dropout
   * model's sequence splits when it starts training (its masks drawn then, for the whole batch, and sliced); one that
   * starts with `update: false` draws none and stays here, where a later training chunk of it uses whatever masks the
   * engine last held, as it always has on one thread.
   */
  private open(m: Engine, B: number, update: boolean): WindowRunner {
    const k1 = this.windowLength, k2 = this.backpropLength;
    const split = !m.hasDropout || update ? m.executor?.windows?.(B, k1, k2) : null;
    return split ?? new WindowRows(m, B, k1, k2, true);
  }

  /** The trained window's study callback, its update and what its buffers keep. */
  private runWindow(
    r: WindowRunner, w: WindowResult, index: number, update: boolean, onWindow: ((info: WindowInfo) => void) | undefined,
  ): void {
    const m = this.model.engine;
    if (onWindow) {
      // Everything here is the whole batch's: a split gathers it from its slices.
      const info: WindowInfo = {
        index, steps: w.steps, loss: w.loss, grads: m.grads, reach: w.reach,
        hiddenGradNorms: r.hiddenGradNorms(),
        weightGrads: () => {
          const names = m.weightNames();
          return m.splitFlat(m.grads).map((grad, i) => ({ name: names[i]!, grad }));
        },
        inputGrad: () => r.inputGrad(),
        stateGrads: () => r.stateGrads(),
      };
      if (w.accuracy !== undefined) info.accuracy = w.accuracy;
      onWindow(info);
    }
    r.settle(!update || m.applyUpdate(w.loss, "TruncatedBPTT.trainSequence"));
  }
}
