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
  dispose(): void;
}

