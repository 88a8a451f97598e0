/**
 * What the engine's callers exchange with it: the results of its passes and what a pass is asked for, and the
 * executor a thread pool gives it. Types only, so the facade, the trainers and the pool can name them without
 * the engine.
 *
 * Legend: B batch, T timesteps, F input features, H units, D output units.
 */
import type { FloatArray, StridedArray, Tensor, TensorLike } from "./tensor/tensor.js";

/** A recurrent layer's states (or their gradients or norms), each [B, H] (norms [B, T]): h for every layer, c for an LSTM. */
export interface RecurrentState {
  h: Tensor;
  /** An LSTM's cell state. */
  c?: Tensor;
  /** A Bidirectional's backward direction's h (and an LSTM's c): its state after reading the first step. */
  hBackward?: Tensor;
  cBackward?: Tensor;
}

/** An LSTM layer's states. */
export interface LSTMState {
  h: Tensor; // [B, H]
  c: Tensor; // [B, H]
}

/**
 * A recurrent layer's states as given to resetStates and initialStates: { h, c } for an LSTM, { h } for a GRU, and for
 * a Bidirectional its forward direction's and then hBackward (and cBackward).
 */
export interface StatesLike {
  h: TensorLike;
  c?: TensorLike;
  hBackward?: TensorLike;
  cBackward?: TensorLike;
}

/** What a training or test step reports. */
export interface StepResult {
  loss: number;
  accuracy?: number;
  /** Mean absolute error of the output (compiled with metrics: ["mae"]). */
  mae?: number;
  /** Mean squared error of the output (compiled with metrics: ["mse"]). */
  mse?: number;
}

/** What `computeGradients` returns. */
export interface Gradients {
  loss: number;
  /** In getWeights order. */
  grads: Tensor[];
  /** The head's output, [B, D] or [B, T, D]. */
  outputs: Tensor;
  /** dL/dx, [B, T, F]. */
  inputGrad: Tensor;
  /** dL/d(initial state), per recurrent layer, each [B, H]: h, and c for an LSTM. */
  stateGrads: RecurrentState[];
  /** Every step's h, per recurrent layer, each [B, T, H] (batch-major copies, for study and plots). */
  hiddenStates: Tensor[];
  /** With `hiddenGradNorms: true`: per recurrent layer, ‖dL/dh_t‖ (over batch and units) for t = 0 … T-1. */
  hiddenGradNorms?: number[][];
  /**
   * With `gradNorms: true`: per recurrent layer, every sample's ‖dL/dh_t‖ and (an LSTM's) ‖dL/dc_t‖ (over the units), each
   * [B, T]. dL/dh_t and dL/dc_t are the whole gradients reaching h_t and c_t: from the layer above or the head,
   * and from step t + 1.
   */
  gradNorms?: RecurrentState[];
  /** With `hiddenGrads: true`: per recurrent layer, dL/dh_t itself, [B, T, H]. */
  hiddenGrads?: Tensor[];
}

/** What a gradient pass is asked for, beyond the gradients (model.computeGradients' options). */
export interface GradientRequest {
  hiddenGradNorms?: boolean;
  gradNorms?: boolean;
  hiddenGrads?: boolean;
  /** Leave a stateful model's carried state where it was (the pass still starts from it). */
  keepState?: boolean;
  /** A training pass: dropout applies, with masks drawn for this call (the gradients are exact for them). */
  training?: boolean;
}

/**
 * Something that runs a whole call over B rows on more than one thread (the thread pool of
 * threads/pool.ts). Each method returns null (or false) to leave a call to the calling thread, which it
 * does for calls too small to be worth splitting.
 */
export interface RowExecutor {
  readonly threads: number;
  trainRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null;
  testRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult | null;
  predictRows(xt: StridedArray, start: number, B: number, T: number, out: FloatArray): boolean;
  gradients(xt: StridedArray, yt: StridedArray, B: number, T: number, hiddenGradNorms: boolean): Gradients | null;
  /**
   * A truncated-BPTT sequence on B rows (windows of k1 steps, gradients reaching back k2) split across the threads,
   * or null to leave it to the calling thread (windows too small to be worth splitting).
   */
  windows?(B: number, k1: number, k2: number): WindowRunner | null;
  dispose(): void;
}

/** What a truncated-BPTT window reports, before its update (over the whole batch). */
export interface WindowResult {
  loss: number;
  accuracy?: number;
  /** Steps in the window. */
  steps: number;
  /** Steps its gradient went back through, from the window's end. */
  reach: number;
}

/**
 * The rows of one truncated-BPTT sequence in progress: on the calling thread (tbptt-rows.ts), or split across a
 * thread pool (threads/tbptt-pool.ts), each slice keeping its rows' carried state and kept history from window to
 * window and from call to call. TruncatedBPTT (tbptt.ts) drives it; the optimizer stays with the caller.
 */
export interface WindowRunner {
  /** Steps loaded into the open window and not trained yet. */
  readonly pending: number;
  /** Starts the sequence: zero state, no history; `dropout`: draw the sequence's dropout masks. */
  begin(dropout: boolean): void;
  /** A call's chunk x [B, T, F] and its labels, before its steps: where the slices read them from. */
  feed(xt: StridedArray, yt: StridedArray, T: number): void;
  /**
   * Appends steps [tx, tx + n) of the chunk to the open window; with `run`, then trains it (forward, loss, backward;
   * `update`: a training window, dropout on; `study`: onWindow will look, so dL/dx and ‖dL/dh_t‖ too), leaving its
   * gradient (of the whole batch's loss) in the model's grads, and returns what it reports. Null without `run`.
   */
  step(xt: StridedArray, yt: StridedArray, tx: number, n: number, run: boolean, update: boolean, study: boolean): WindowResult | null;
  /** After the window's update: keep its history (it stood), or drop it and go on from the state before it. */
  settle(applied: boolean): void;
  /** The state carried into the next window, per recurrent layer, [B, H] each (copies). */
  states(): RecurrentState[];
  /** Of the last window (when studied): per recurrent layer, ‖dL/dh_t‖ over the batch for each reached step. */
  hiddenGradNorms(): number[][];
  /** Of the last window (when studied): dL/dx over the reached steps, [B, reach, F]. */
  inputGrad(): Tensor;
  /** Of the last window: dL/d(state) where the gradient was cut, per recurrent layer, [B, H] each. */
  stateGrads(): RecurrentState[];
}

