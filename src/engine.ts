/**
 * The network engine: a stack of LSTM layers (stacked when the lower one returns sequences) under one or
 * more Dense layers, with everything a pass needs and nothing a user calls directly.
 *
 * - Weights: one flat parameter buffer and one flat gradient buffer; every layer's weights are named views
 *   into them, so the optimizer is one loop and a step zeroes the gradients once (llm.c's layout).
 * - Buffers: the time-major input, the labels, and one workspace per layer, allocated per (B, capacity)
 *   and reused for every call of that shape or smaller.
 * - Forward and backward over the whole stack on step ranges [t0, t1), so the truncated-BPTT unroller can
 *   keep history in front of a window.
 * - State slots: the (h, c) each LSTM ended its last pass with, which a stateful layer carries into the
 *   next pass, row by row.
 * - The loss of the head rows against loaded labels, and the optimizer step applied atomically.
 *
 * The engine does not validate: model.ts (the Keras facade), the trainers and the thread pool hand it
 * checked inputs. A worker thread runs a bare engine as its replica.
 *
 * Legend: B batch, T timesteps, F input features, H units, D head units, M head rows (B, or n·B for a
 * per-step head over n steps). Inside, sequences are time-major (T, B, ·): each step is one contiguous
 * (B, ·) block (see layers/lstm.ts); the public surface is batch-major [B, T, F].
 */
import { WasmArena, withArena } from "./wasm/arena.js";
import * as arenas from "./wasm/arena.js";
import {
  type DType, type FloatArray, type Tensor, type StridedArray, allocate, fromData,
} from "./tensor/tensor.js";
import { gatherSteps, gatherRows, timeToBatchMajor } from "./tensor/layout.js";
import { clear } from "./tensor/kernels.js";
import { LSTM, LSTMWorkspace, lstmForward, lstmBackward, lstmWorkspace } from "./layers/lstm.js";
import { Dense, DenseWorkspace, denseForward, denseBackward, denseWorkspace } from "./layers/dense.js";
import {
  type LossName, bceFromLogits, bceFromProbs, meanSquaredError, binaryAccuracy, softmaxCrossentropy, categoricalAccuracy,
  isCategorical,
} from "./losses.js";
import type { Optimizer } from "./optimizers.js";
import { Rng } from "./init.js";
import { NonFiniteError, ShapeError, ValueError, fmtValue } from "./errors.js";

/** The largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/** Σ x² over x's first n values: in SIMD when x lives in an arena (see update.ts), else here. */
function sumSquares(x: FloatArray, n: number): number {
  const k = arenas.anyArena ? arenas.sumSquaresFor(x) : null;
  if (k) return k(n, arenas.at[0]!);
  let q = 0;
  for (let i = 0; i < n; i++) q += x[i]! * x[i]!;
  return q;
}

/**
 * dst[0 … n) = src[from … from + n). (A `set` of a subarray makes a view object per call: with a batch of one, a
 * step's state commit took ~0.3 µs of the seed model's ~9, most of it those views and their collection.)
 */
function copyFrom(dst: FloatArray, src: FloatArray, from: number, n: number): void {
  for (let k = 0; k < n; k++) dst[k] = src[from + k]!;
}

export type Layer = LSTM | Dense;

/** What a training or test step reports. */
export interface StepResult {
  loss: number;
  accuracy?: number;
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
  /** dL/d(initial state), per LSTM layer, each [B, H]. */
  stateGrads: { h: Tensor; c: Tensor }[];
  /** Every step's h, per LSTM layer, each [B, T, H] (batch-major copies, for study and plots). */
  hiddenStates: Tensor[];
  /** With `hiddenGradNorms: true`: per LSTM layer, ‖dL/dh_t‖ (over batch and units) for t = 0 … T-1. */
  hiddenGradNorms?: number[][];
  /**
   * With `gradNorms: true`: per LSTM layer, every sample's ‖dL/dh_t‖ and ‖dL/dc_t‖ (over the units), each
   * [B, T]. dL/dh_t and dL/dc_t are the whole gradients reaching h_t and c_t: from the layer above or the head,
   * and from step t + 1.
   */
  gradNorms?: { h: Tensor; c: Tensor }[];
  /** With `hiddenGrads: true`: per LSTM layer, dL/dh_t itself, [B, T, H]. */
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

/**
 * The engine of one model (see the file's header). Everything here is internal: model.ts, fit.ts, tbptt.ts,
 * checkpoint*.ts and the thread pool use it; users reach it as `model.engine` only to study internals.
 */
export class Engine {
  readonly layers: readonly Layer[];
  readonly lstms: readonly LSTM[];
  readonly denses: readonly Dense[];
  readonly dtype: DType;
  readonly seed: string;
  /** All weights, flat, in getWeights order. */
  params: FloatArray = new Float64Array(0); // (P)
  /** All gradients, flat, aligned with params. */
  grads: FloatArray = new Float64Array(0);  // (P)
  built = false;
  // Compile settings (set by the facade's compile).
  optimizer: Optimizer | null = null;
  loss: LossName | null = null;
  metrics: "accuracy"[] = [];
  onNonFinite: "throw" | "skip" = "throw";
  /** The fixed batch size of a stateful model, once known. */
  batchSize: number | undefined;
  /** The state every LSTM ended its last pass with (the carried state of a stateful layer), or null before any. */
  readonly stateH: (FloatArray | null)[]; // per LSTM (B, H)
  readonly stateC: (FloatArray | null)[]; // per LSTM (B, H)
  /** The RNG behind fit's shuffling; its position is saved in checkpoints. */
  shuffleRng: Rng;
  /**
   * The SIMD backend's memory, when the model asked for it and this runtime has it: the buffers the products
   * read and write are allocated there, and the matmuls and the σ-gate math then run in WebAssembly SIMD in place
   * (kernels.ts).
   */
  readonly arena: WasmArena | null;
  /** Masking's value (a step whose every feature equals it is skipped), or null without a Masking layer. */
  readonly maskValue: number | null;
  /** (cap, B): 1 where a step is kept, 0 where it is masked; filled by loadInput when masking. */
  private valid: Uint8Array = new Uint8Array(0);
  /** Masking: per head row of the last forward pass, 1 to count it in the loss (a kept step), else 0. */
  private rowValid: Uint8Array | null = null;
  /** Masking: the head's input with the rows zeroed that come before a row's first kept step in the pass. */
  private headX: FloatArray | null = null;
  private headZero: Uint8Array | null = null; // (M) 1 for a zeroed row, or null when no row is
  /** The RNG behind dropout's masks; its position is saved in checkpoints. */
  dropoutRng: Rng;
  /** @internal Masks for the next draw, per LSTM { x (B, I), h (B, H) } scaled 0/1/(1−p): the golden tests' hook. */
  nextMasks: ({ x?: Float64Array | null; h?: Float64Array | null } | null)[] | null = null;
  /** Runs large calls on more than one thread when set (threads/pool.ts). */
  executor: RowExecutor | null = null;
  /** Counts uses of the buffers, so the truncated-BPTT unroller can tell when another call overwrote them. */
  uses = 0;

  // Pass buffers, allocated per (B, capacity) and reused.
  private B = 0;
  private cap = 0;
  private xs: FloatArray = new Float64Array(0);       // (cap, B, F) time-major input
  private ys: FloatArray = new Float64Array(0);       // (M, D) labels, rows aligned with the head's
  readonly lstmWs: (LSTMWorkspace | null)[];          // per LSTM
  readonly denseWs: (DenseWorkspace | null)[];        // per Dense
  private backup: FloatArray = new Float64Array(0);   // params before an update, for rollback
  private slotBackup: Float64Array[] = [];            // optimizer state before an update

  /** The layers must already form a valid stack (model.ts checks); `dtype` and `seed` likewise. */
  constructor(
    layers: readonly Layer[], dtype: DType, seed: string, maskValue: number | null = null, backend: "js" | "wasm" = "js", fma = false,
  ) {
    this.maskValue = maskValue;
    this.arena = backend === "wasm" ? WasmArena.create(undefined, fma) : null;
    const firstDense = layers.findIndex((l) => l instanceof Dense);
    this.layers = layers;
    this.lstms = layers.slice(0, firstDense) as LSTM[];
    this.denses = layers.slice(firstDense) as Dense[];
    this.dtype = dtype;
    this.seed = seed;
    this.shuffleRng = new Rng(`${seed}/shuffle`);
    this.dropoutRng = new Rng(`${seed}/dropout`);
    this.stateH = this.lstms.map(() => null);
    this.stateC = this.lstms.map(() => null);
    this.lstmWs = this.lstms.map(() => null);
    this.denseWs = this.denses.map(() => null);
    for (const l of this.lstms) if (l.stateful && l.batchSize !== undefined) this.batchSize = l.batchSize;
  }

  /** True when some LSTM layer is stateful. */
  get stateful(): boolean {
    return this.lstms.some((l) => l.stateful);
  }

  /** True when the top LSTM returns sequences, so the head applies to every step ([B, T, D] outputs). */
  get perStep(): boolean {
    return this.lstms[this.lstms.length - 1]!.returnSequences;
  }

  get inputDim(): number | undefined {
    return this.lstms[0]!.inputDim;
  }

  get outputDim(): number {
    return this.denses[this.denses.length - 1]!.units;
  }

  /** Whether accuracy is computed with the loss. */
  get accuracy(): boolean {
    return this.metrics.includes("accuracy");
  }

  /** Label values per head row: one class index for sparse categorical cross-entropy, else D. */
  get labelDim(): number {
    return this.loss === "sparseCategoricalCrossentropy" ? 1 : this.outputDim;
  }

  /** What accuracy counts over M head rows: rows for a categorical loss (argmax), else every unit. */
  accuracyUnits(M: number): number {
    return isCategorical(this.loss) ? M : M * this.outputDim;
  }

  /**
   * Sizes every layer for `inputDim` features, allocates the flat buffers and initialises the weights from
   * the seed. Idempotent for the same inputDim. With `init` false the weights are left at zero for the caller
   * to fill (an importer about to copy a file's weights in).
   */
  build(inputDim: number, init = true): void {
    if (this.built) {
      if (inputDim !== this.inputDim) {
        throw new ShapeError(`build inputDim: the model is built for ${this.inputDim} input features, got ${inputDim}`);
      }
      return;
    }
    if (!Number.isInteger(inputDim) || inputDim <= 0) {
      throw new ValueError(`build inputDim: expected a positive integer, got ${fmtValue(inputDim)}`);
    }
    let dim = inputDim;
    for (const l of this.layers) { // check every layer before sizing any
      if (l.inputDim !== undefined && l.inputDim !== dim) {
        throw new ShapeError(`${l.kind} inputDim: expected ${dim} (the output of the layer below), got ${l.inputDim}`);
      }
      dim = l.units;
    }
    dim = inputDim;
    for (const l of this.layers) {
      l.inputDim = dim;
      dim = l.units;
    }
    const total = this.layers.reduce((s, l) => s + l.paramCount(), 0);
    withArena(this.arena, () => {
      this.params = allocate(this.dtype, total);
      this.grads = allocate(this.dtype, total);
    });
    let off = 0;
    for (const l of this.layers) off = l.bind(this.params, this.grads, off);
    if (init) {
      const rng = new Rng(this.seed);
      for (const l of this.layers) l.initialize(rng);
    }
    this.built = true;
    withArena(this.arena, () => this.optimizer?.init(total)); // its state beside the weights
  }

  /** Shapes in getWeights order, e.g. [[1, 40], [10, 40], [40], [10, 1], [1]]. */
  weightShapes(): number[][] {
    return this.layers.flatMap((l) => l.weightShapes());
  }

  /** Names in getWeights order: "lstm_0/kernel", …, "dense_0/bias". */
  weightNames(): string[] {
    const names: string[] = [];
    let li = 0, di = 0;
    for (const l of this.layers) {
      const prefix = l instanceof LSTM ? `lstm_${li++}` : `dense_${di++}`;
      for (const n of l.weightNames()) names.push(`${prefix}/${n}`);
    }
    return names;
  }

  /** Copies of a flat buffer (params, grads) cut into the weight shapes, in getWeights order. */
  splitFlat(buf: FloatArray): Tensor[] {
    const out: Tensor[] = [];
    let off = 0;
    for (const shape of this.weightShapes()) {
      const n = shape.reduce((a, b) => a * b, 1);
      out.push(fromData(buf.slice(off, off + n), shape));
      off += n;
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // State slots

  /** Fixes the batch size of a stateful model (every stateful layer records it, as its config). */
  fixBatch(B: number): void {
    this.batchSize = B;
    for (const l of this.lstms) if (l.stateful) l.batchSize = B;
  }

  /** Makes layer i's state slots hold B rows (keeping them when they do). */
  allocState(i: number, B: number): void {
    const n = B * this.lstms[i]!.units;
    if (!this.stateH[i] || this.stateH[i]!.length !== n) {
      this.stateH[i] = allocate(this.dtype, n);
      this.stateC[i] = allocate(this.dtype, n);
    }
  }

  /** Zeros in every state slot; a stateful model with a known batch size gets slots of that size. */
  zeroStates(): void {
    this.lstms.forEach((l, i) => {
      this.stateH[i]?.fill(0);
      this.stateC[i]?.fill(0);
      if (l.stateful && this.batchSize !== undefined && !this.stateH[i]) this.allocState(i, this.batchSize);
    });
  }

  /** Forgets every state slot (the state of a model that has run no pass). */
  clearStates(): void {
    this.stateH.fill(null);
    this.stateC.fill(null);
  }

  /** Whether LSTM i starts a batch of B rows from its carried state: stateful, with a state of B rows. */
  carries(i: number, B: number): boolean {
    const h = this.stateH[i];
    return this.lstms[i]!.stateful && h !== null && h.length === B * this.lstms[i]!.units;
  }

  // ---------------------------------------------------------------------------------------------
  // Buffers and steps

  /** Makes sure every buffer fits B rows and `cap` steps. */
  ensure(B: number, cap: number): void {
    this.uses++;
    for (const ws of this.lstmWs) if (ws) ws.dropping = false; // every pass is an inference pass unless made a training one
    if (B === this.B && cap <= this.cap) return;
    cap = B === this.B ? Math.max(cap, this.cap) : cap;
    const F = this.inputDim!, c = cap;
    withArena(this.arena, () => {
      if (this.xs.length < c * B * F) this.xs = allocate(this.dtype, c * B * F);
      for (let i = 0; i < this.lstms.length; i++) this.lstmWs[i] = lstmWorkspace(this.lstms[i]!, this.dtype, B, c, this.lstmWs[i]!);
    });
    if (this.maskValue !== null && this.valid.length < cap * B) this.valid = new Uint8Array(cap * B);
    this.B = B;
    this.cap = cap;
  }

  /**
   * The thread pool, when it may take the call: not with masking (each slice would count its own kept steps)
   * nor for a training step with dropout (the masks are drawn for the whole batch here).
   */
  private pool(training: boolean): RowExecutor | null {
    if (this.maskValue !== null || (training && this.hasDropout)) return null;
    return this.executor;
  }

  /** Whether some LSTM has dropout or recurrent dropout (which training passes then apply). */
  get hasDropout(): boolean {
    return this.lstms.some((l) => l.dropout > 0 || l.recurrentDropout > 0);
  }

  /**
   * Draws every dropout layer's masks for the B rows of the buffers (after `ensure`) from the dropout RNG, one
   * scaled 0/1 value per row and unit, and applies them to the passes that follow until the next `ensure`.
   * `nextMasks` (for tests: the masks a reference computed with) replaces one draw.
   */
  drawMasks(): void {
    const B = this.B, given = this.nextMasks;
    this.nextMasks = null;
    this.lstms.forEach((l, i) => {
      const ws = this.lstmWs[i]!, I = l.inputDim!, H = l.units;
      const fill = (n: number, p: number, g: Float64Array | null | undefined, mask: Float64Array | null): Float64Array => {
        const m = mask && mask.length === n ? mask : new Float64Array(n);
        if (g) m.set(g);
        else for (let k = 0; k < n; k++) m[k] = this.dropoutRng.uniform() < p ? 0 : 1 / (1 - p);
        return m;
      };
      ws.xMask = l.dropout > 0 ? fill(B * I, l.dropout, given?.[i]?.x, ws.xMask) : null;
      ws.hMask = l.recurrentDropout > 0 ? fill(B * H, l.recurrentDropout, given?.[i]?.h, ws.hMask) : null;
      ws.dropping = l.dropout > 0 || l.recurrentDropout > 0;
    });
  }

  /** Turns the masks drawn last on for a training pass (or off), until the next `ensure`. */
  setDropping(on: boolean): void {
    for (const ws of this.lstmWs) if (ws) ws.dropping = on && (ws.xMask !== null || ws.hMask !== null);
  }

  /** The workspace of LSTM i (after `ensure`). */
  ws(i: number): LSTMWorkspace {
    return this.lstmWs[i]!;
  }

  /** The workspace of the head (after a forward pass). */
  headWs(): DenseWorkspace {
    return this.denseWs[this.denses.length - 1]!;
  }

  /**
   * Copies n steps of x (starting at step tx) for B rows into the time-major input buffer at slot t0.
   * `rows`, when given, maps batch row b to sample rows[rowStart + b] (fit's shuffled batches).
   */
  loadInput(x: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number, t0: number): void {
    const F = this.inputDim!;
    gatherSteps(x, rows, rowStart, B, tx, n, this.xs, t0 * B * F);
    const mv = this.maskValue;
    if (mv === null) return;
    // Masking: a step is kept unless every one of its features equals the mask value.
    const xs = this.xs, valid = this.valid;
    for (let q = t0 * B; q < (t0 + n) * B; q++) {
      let keep = 0;
      for (let f = q * F; f < (q + 1) * F; f++) if (xs[f] !== mv) { keep = 1; break; }
      valid[q] = keep;
    }
  }

  /**
   * Loads the labels of the head rows: [B, D] for a last-step head, or steps [tx, tx + n) of [B, T, D]
   * for a per-step head (time-major rows, like the head's). Returns the head's row count.
   */
  loadLabels(y: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number): number {
    const D = this.labelDim;
    const M = this.perStep ? n * B : B;
    if (this.ys.length < M * D) this.ys = allocate(this.dtype, M * D);
    if (this.perStep) gatherSteps(y, rows, rowStart, B, tx, n, this.ys, 0);
    else gatherRows(y, rows, rowStart, B, this.ys, 0);
    return M;
  }

  /** Loads n label values already laid out like the head's rows (time-major per-step labels). */
  setLabels(src: FloatArray, n: number): void {
    if (this.ys.length < n) this.ys = allocate(this.dtype, n);
    for (let k = 0; k < n; k++) this.ys[k] = src[k]!;
  }

  /**
   * Writes each LSTM's initial state into slot t0: the carried state for stateful layers (when
   * `carried`), zeros otherwise, or the explicit `states` (B·H arrays per layer) when given.
   */
  setInitialState(t0: number, carried: boolean, states?: { h: FloatArray; c: FloatArray }[]): void {
    const B = this.B;
    for (let i = 0; i < this.lstms.length; i++) {
      const ws = this.lstmWs[i]!, n = B * this.lstms[i]!.units, off = t0 * n;
      if (states) {
        ws.hs.set(states[i]!.h, off);
        ws.cs.set(states[i]!.c, off);
      } else if (carried && this.carries(i, B)) {
        ws.hs.set(this.stateH[i]!, off);
        ws.cs.set(this.stateC[i]!, off);
      } else {
        ws.hs.fill(0, off, off + n);
        ws.cs.fill(0, off, off + n);
      }
    }
  }

  /**
   * Moves `keep` steps of history, starting at step `drop`, to the front of every buffer (input, h, c,
   * gates, tanh c), so that the truncated-BPTT unroller can append the next window after them. Slot
   * `drop + keep` (the state after the last kept step) becomes slot `keep`.
   */
  shiftHistory(drop: number, keep: number): void {
    if (drop === 0) return;
    const B = this.B, F = this.inputDim!;
    this.xs.copyWithin(0, drop * B * F, (drop + keep) * B * F);
    if (this.maskValue !== null) this.valid.copyWithin(0, drop * B, (drop + keep) * B);
    this.lstms.forEach((l, i) => {
      const ws = this.lstmWs[i]!, BH = B * l.units, BG = 4 * BH, BI = B * l.inputDim!;
      ws.xd?.copyWithin(0, drop * BI, (drop + keep) * BI); // dropout's masked copies are history too
      ws.hd?.copyWithin(0, drop * BH, (drop + keep) * BH);
      ws.hs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
      ws.cs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
      ws.gates.copyWithin(0, drop * BG, (drop + keep) * BG);
      ws.tanhC.copyWithin(0, drop * BH, (drop + keep) * BH);
    });
  }

  /** Copies every layer's (h, c) at slot `from` to slot `to`. */
  copyState(from: number, to: number): void {
    this.lstms.forEach((l, i) => {
      const n = this.B * l.units, ws = this.lstmWs[i]!;
      ws.hs.copyWithin(to * n, from * n, (from + 1) * n);
      ws.cs.copyWithin(to * n, from * n, (from + 1) * n);
    });
  }

  /** Zeros the gradients before a backward pass (in SIMD on the SIMD backend: see `clear`). */
  zeroGrads(): void {
    clear(this.grads);
  }

  /** Keeps the state at slot t as every layer's last state (the carried one when stateful). */
  commitState(t: number): void {
    const B = this.B;
    for (let i = 0; i < this.lstms.length; i++) {
      const n = B * this.lstms[i]!.units, ws = this.lstmWs[i]!;
      this.allocState(i, B);
      copyFrom(this.stateH[i]!, ws.hs, t * n, n);
      copyFrom(this.stateC[i]!, ws.cs, t * n, n);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Forward and backward over the stack

  /** Forward through every LSTM over steps [t0, t1), then the head on steps [ta, t1) (per step) or t1 - 1. */
  forward(t0: number, t1: number, ta: number): number {
    let xs = this.xs, xOff = 0;
    const valid = this.maskValue === null ? null : this.valid; // the mask reaches every LSTM of the stack
    for (let i = 0; i < this.lstms.length; i++) {
      const l = this.lstms[i]!, ws = this.lstmWs[i]!;
      lstmForward(l, ws, xs, xOff, t0, t1, valid);
      xs = ws.hs;
      xOff = this.B * l.units; // the layer above reads h_t from slot t + 1
    }
    return this.headForward(ta, t1, t0);
  }

  /** The head's rows: all steps [ta, t1) of the top LSTM (per step) or its last step t1 - 1. */
  private headInput(ta: number, t1: number): { M: number; off: number } {
    const B = this.B, top = this.lstms[this.lstms.length - 1]!, BH = B * top.units;
    return this.perStep ? { M: (t1 - ta) * B, off: (ta + 1) * BH } : { M: B, off: t1 * BH };
  }

  private headForward(ta: number, t1: number, t0: number): number {
    const top = this.lstms.length - 1;
    const { M, off } = this.headInput(ta, t1);
    let x = this.lstmWs[top]!.hs, xOff = off, ld = this.lstms[top]!.units;
    this.rowValid = null;
    this.headZero = null;
    if (this.maskValue !== null) {
      // Keras's masked RNN output: at a masked step the previous output, and zeros before a row's first kept
      // step of the call (the state, passed through, may differ from zero there). Per-step losses count kept
      // steps only.
      const B = this.B, H = ld, valid = this.valid;
      const seen = new Uint8Array(B), zero = new Uint8Array(M), rv = new Uint8Array(M);
      let zeros = 0;
      for (let t = t0; t < t1; t++) {
        for (let b = 0; b < B; b++) {
          if (valid[t * B + b]) seen[b] = 1;
          if (this.perStep && t >= ta) {
            const r = (t - ta) * B + b;
            rv[r] = valid[t * B + b]!;
            if (!seen[b]) { zero[r] = 1; zeros++; }
          }
        }
      }
      if (!this.perStep) for (let b = 0; b < B; b++) if (!seen[b]) { zero[b] = 1; zeros++; }
      if (this.perStep) this.rowValid = rv;
      if (zeros) {
        if (!this.headX || this.headX.length < M * H) this.headX = withArena(this.arena, () => allocate(this.dtype, M * H));
        const hx = this.headX;
        for (let r = 0; r < M; r++) {
          if (zero[r]) hx.fill(0, r * H, (r + 1) * H);
          else for (let j = 0; j < H; j++) hx[r * H + j] = x[off + r * H + j]!;
        }
        this.headZero = zero;
        x = hx; xOff = 0;
      }
    }
    for (let k = 0; k < this.denses.length; k++) {
      const d = this.denses[k]!, ws = this.denseWs[k] = withArena(this.arena, () => denseWorkspace(d, this.dtype, M, this.denseWs[k]!));
      denseForward(d, ws, M, x, xOff, ld);
      x = ws.out; xOff = 0; ld = d.units;
    }
    return M;
  }

  /** The loss of the head rows against the loaded labels; with `grad`, also dL/d(head output) in place. */
  lossOf(M: number, grad: boolean): number {
    const head = this.denses[this.denses.length - 1]!, ws = this.headWs();
    const N = M * head.units, D = head.units, rv = this.rowValid; // rv: masking's kept rows of a per-step head
    if (this.loss === "meanSquaredError") return meanSquaredError(N, ws.out, this.ys, grad ? ws.dOut : null, rv, D);
    // Categorical losses need a softmax head (compile checks), and are computed from its logits.
    if (isCategorical(this.loss)) {
      return softmaxCrossentropy(M, D, ws.logits, ws.out, this.ys, this.loss === "sparseCategoricalCrossentropy", grad ? ws.dOut : null, rv);
    }
    if (head.activation === "sigmoid") return bceFromLogits(N, ws.logits, ws.out, this.ys, grad ? ws.dOut : null, rv, D);
    return bceFromProbs(N, ws.out, this.ys, grad ? ws.dOut : null, rv, D);
  }

  /** Accuracy of the head rows against the loaded labels: argmax for a categorical loss, else binary (p > 0.5). */
  accuracyOf(M: number): number {
    const rv = this.rowValid;
    if (isCategorical(this.loss)) return categoricalAccuracy(M, this.outputDim, this.headWs().out, this.ys, this.loss === "sparseCategoricalCrossentropy", rv);
    return binaryAccuracy(M * this.outputDim, this.headWs().out, this.ys, rv, this.outputDim);
  }

  /**
   * Backward from the head (whose dOut the loss has filled) through every LSTM over steps [tb, t1).
   * Gradients accumulate into `grads`; the caller zeroes them. With `dhNorms`, each LSTM i records
   * ‖dL/dh_t‖ into dhNorms[i][t].
   */
  backward(
    tb: number, t1: number, ta: number, dhNorms: Float64Array[] | null = null,
    study: { dh: FloatArray; dc: FloatArray }[] | null = null, // per LSTM, (cap, B, H) each
    inputGrad = true, // false: the bottom LSTM's dxs (dL/dx) is not computed (a training step's)
  ): void {
    const B = this.B, nD = this.denses.length, top = this.lstms.length - 1;
    const { M, off } = this.headInput(ta, t1);
    // The loss wrote dL/d(logits) itself for sigmoid + binary and softmax + categorical cross-entropy.
    const fused = isCategorical(this.loss) || (this.loss === "binaryCrossentropy" && this.denses[nD - 1]!.activation === "sigmoid");
    for (let k = nD - 1; k >= 0; k--) {
      const d = this.denses[k]!, ws = this.denseWs[k]!;
      if (k > 0) {
        const below = this.denseWs[k - 1]!, In = this.denses[k - 1]!.units;
        denseBackward(d, ws, M, below.out, 0, In, fused && k === nD - 1);
        below.dOut.set(ws.dIn.subarray(0, M * In));
      } else if (this.headZero) {
        // Masking zeroed some head rows: they read the copy, and send no gradient down.
        const H = this.lstms[top]!.units, zero = this.headZero;
        denseBackward(d, ws, M, this.headX!, 0, H, fused && k === nD - 1);
        for (let r = 0; r < M; r++) if (zero[r]) ws.dIn.fill(0, r * H, (r + 1) * H);
      } else {
        denseBackward(d, ws, M, this.lstmWs[top]!.hs, off, this.lstms[top]!.units, fused && k === nD - 1);
      }
    }
    const dHead = this.denseWs[0]!.dIn;
    const valid = this.maskValue === null ? null : this.valid;
    for (let i = top; i >= 0; i--) {
      const l = this.lstms[i]!, ws = this.lstmWs[i]!;
      const xs = i === 0 ? this.xs : this.lstmWs[i - 1]!.hs;
      const xOff = i === 0 ? 0 : B * this.lstms[i - 1]!.units;
      const norms = dhNorms ? dhNorms[i]! : null, st = study ? study[i]! : null;
      const needDx = i > 0 || inputGrad;
      if (i === top) {
        if (this.perStep) lstmBackward(l, ws, xs, xOff, tb, t1, dHead, 0, ta, null, 0, null, 0, norms, st, valid, needDx);
        else lstmBackward(l, ws, xs, xOff, tb, t1, null, 0, 0, dHead, 0, null, 0, norms, st, valid, needDx);
      } else {
        lstmBackward(l, ws, xs, xOff, tb, t1, this.lstmWs[i + 1]!.dxs, 0, 0, null, 0, null, 0, norms, st, valid, needDx);
      }
    }
  }

  /** h_0 … h_{T-1} of LSTM i as a batch-major [B, T, H] tensor. */
  hiddenSequence(i: number, B: number, T: number): Tensor {
    const H = this.lstms[i]!.units, out = allocate(this.dtype, B * T * H);
    timeToBatchMajor(T, B, H, this.lstmWs[i]!.hs, B * H, out, 0); // slot t + 1 holds h_t
    return fromData(out, [B, T, H]);
  }

  /** The head output rows as a public tensor: [B, D], or [B, n, D] from time-major rows. */
  headOutput(B: number, n: number): Tensor {
    const D = this.outputDim, out = this.headWs().out;
    if (!this.perStep) return fromData(out.slice(0, B * D), [B, D]);
    const res = allocate(this.dtype, B * n * D);
    timeToBatchMajor(n, B, D, out, 0, res, 0);
    return fromData(res, [B, n, D]);
  }

  /**
   * Applies the optimizer atomically: if the loss, a gradient or a new weight is not finite, everything
   * is restored and false is returned (or NonFiniteError thrown, as `onNonFinite` says). The backup that
   * restoring needs is taken only when the optimizer's `maxStep` cannot show that no new weight or slot value
   * can overflow (in training it nearly always can: the update then costs a read of the gradients, weights and
   * first slot, and the optimizer's own pass).
   */
  applyUpdate(loss: number, what: string): boolean {
    const opt = this.optimizer!;
    const grads = this.grads, params = this.params;
    let bad = !Number.isFinite(loss) ? "loss" : "";
    if (!bad) {
      // Sums of squares of the gradients, the weights and the first slot: each bounds the largest entry
      // (|x| ≤ ‖x‖₂), and is finite only if every entry is. When all three are finite and the optimizer's step
      // cannot take a weight or a slot out of range, update in place without the backup. (Max-of-|x| loops ran
      // slower: a chain of dependent Math.max, or branches.)
      const slot = opt.slots()[0] ?? null, n = grads.length;
      const gq = sumSquares(grads, n), pq = sumSquares(params, n);
      // (a slot that does not match the weights, never after compile, gives no bound)
      const sq = slot === null ? 0 : slot.length === n ? sumSquares(slot, n) : Infinity;
      const limit = (params instanceof Float32Array ? FLOAT32_MAX : Number.MAX_VALUE) / 2;
      // (NaN or Infinity in a sum fails the test; finite-but-huge entries overflow it: the careful path below.)
      if (Math.sqrt(pq) + opt.maxStep(Math.sqrt(gq), Math.sqrt(sq)) < limit) {
        opt.apply(params, grads);
        return true;
      }
      let s = 0;
      for (let k = 0; k < n; k++) s += grads[k]! * 0;
      if (s !== 0) bad = "gradients"; // 0·x is NaN exactly when x is not finite
    }
    if (!bad) {
      if (this.backup.length !== params.length) this.backup = allocate(this.dtype, params.length);
      this.backup.set(params);
      const slots = opt.slots();
      let fits = this.slotBackup.length === slots.length;
      for (let i = 0; fits && i < slots.length; i++) fits = this.slotBackup[i]!.length === slots[i]!.length;
      if (!fits) this.slotBackup = slots.map((sl) => new Float64Array(sl.length));
      for (let i = 0; i < slots.length; i++) this.slotBackup[i]!.set(slots[i]!);
      const iterations = opt.iterations;
      opt.apply(params, grads);
      let s = 0;
      for (let k = 0; k < params.length; k++) s += params[k]! * 0;
      for (const sl of slots) for (let k = 0; k < sl.length; k++) s += sl[k]! * 0; // Adam v = inf would brick later steps
      if (s !== 0) {
        params.set(this.backup);
        for (let i = 0; i < slots.length; i++) slots[i]!.set(this.slotBackup[i]!);
        opt.iterations = iterations;
        bad = "updated weights";
      }
    }
    if (!bad) return true;
    if (this.onNonFinite === "skip") return false;
    throw new NonFiniteError(`${what}: the step produced non-finite ${bad} (loss ${loss}); weights, optimizer state and LSTM states were left unchanged. Lower the learning rate, clip gradients (clipNorm), or check the inputs`);
  }

  // ---------------------------------------------------------------------------------------------
  // Whole calls on checked rows: one thread, unless the executor takes them

  /** Forward over B rows (through the row map, if any) from the carried or zero state, labels loaded; returns M. */
  private forwardRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number, train = false): number {
    this.ensure(B, T);
    if (train && this.hasDropout) this.drawMasks(); // a training pass: dropout on, with masks for this batch
    this.loadInput(xt, rows, rowStart, B, 0, T, 0);
    this.setInitialState(0, true);
    const M = this.forward(0, T, 0);
    this.loadLabels(yt, rows, rowStart, B, 0, T);
    return M;
  }

  /** One optimizer step on B rows (optionally through a row map); the loss is the one before the update. */
  trainRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    // Dropout's masks are drawn for the whole batch on this thread: such steps are not split across threads.
    const par = this.pool(true)?.trainRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T, true);
    const loss = this.lossOf(M, true);
    const res: StepResult = { loss };
    if (this.accuracy) res.accuracy = this.accuracyOf(M);
    this.zeroGrads();
    this.backward(0, T, 0, null, null, false);
    if (this.applyUpdate(loss, "trainOnBatch")) this.commitState(T);
    return res;
  }

  /** The loss (and accuracy) on B rows, without updating; a stateful model carries its state. */
  testRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    const par = this.pool(false)?.testRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T);
    const res: StepResult = { loss: this.lossOf(M, false) };
    if (this.accuracy) res.accuracy = this.accuracyOf(M);
    this.commitState(T);
    return res;
  }

  /** The batch-size-weighted mean loss (and accuracy) over N samples, in batches of bs. */
  evaluateRows(xt: StridedArray, yt: StridedArray, N: number, T: number, bs: number): StepResult {
    let loss = 0, acc = 0;
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      const r = this.testRows(xt, yt, null, start, B, T);
      loss += r.loss * B;
      acc += (r.accuracy ?? 0) * B;
    }
    const res: StepResult = { loss: loss / N };
    if (this.accuracy) res.accuracy = acc / N;
    return res;
  }

  /** The head's output for rows [start, start + B) of x, written into `out` (the whole [N, D] or [N, T, D]). */
  predictRows(xt: StridedArray, start: number, B: number, T: number, out: FloatArray): void {
    if (this.pool(false)?.predictRows(xt, start, B, T, out)) return;
    this.ensure(B, T);
    this.loadInput(xt, null, start, B, 0, T, 0);
    this.setInitialState(0, true);
    this.forward(0, T, 0);
    this.commitState(T);
    out.set(this.headOutput(B, T).data, start * (this.perStep ? T : 1) * this.outputDim);
  }

  /** The loss, every gradient, dL/dx and dL/d(initial state) on B rows; weights unchanged, state carried. */
  gradients(xt: StridedArray, yt: StridedArray, B: number, T: number, request: GradientRequest = {}): Gradients {
    const hiddenGradNorms = request.hiddenGradNorms ?? false;
    // The thread pool serves the plain request; the study outputs run on the calling thread.
    const plain = !request.gradNorms && !request.hiddenGrads && !request.keepState && !request.training;
    const par = plain ? this.pool(false)?.gradients(xt, yt, B, T, hiddenGradNorms) : null;
    if (par) return par;
    const M = this.forwardRows(xt, yt, null, 0, B, T, request.training ?? false);
    const loss = this.lossOf(M, true);
    this.zeroGrads();
    const norms = hiddenGradNorms ? this.lstms.map(() => new Float64Array(T)) : null;
    const study = request.gradNorms || request.hiddenGrads
      ? this.lstms.map((l) => ({ dh: new Float64Array(T * B * l.units), dc: new Float64Array(T * B * l.units) }))
      : null;
    this.backward(0, T, 0, norms, study);
    if (!request.keepState) this.commitState(T);
    const F = this.inputDim!;
    const dx = allocate(this.dtype, B * T * F);
    timeToBatchMajor(T, B, F, this.lstmWs[0]!.dxs, 0, dx, 0);
    const res: Gradients = {
      loss, grads: this.splitFlat(this.grads), outputs: this.headOutput(B, T), inputGrad: fromData(dx, [B, T, F]),
      hiddenStates: this.lstms.map((_, i) => this.hiddenSequence(i, B, T)),
      stateGrads: this.lstms.map((l, i) => ({
        h: fromData(this.lstmWs[i]!.dh.slice(0, B * l.units), [B, l.units]),
        c: fromData(this.lstmWs[i]!.dc.slice(0, B * l.units), [B, l.units]),
      })),
    };
    if (norms) res.hiddenGradNorms = norms.map((a) => Array.from(a));
    if (study && request.gradNorms) res.gradNorms = study.map((s, i) => ({ h: rowNorms(s.dh, B, T, this.lstms[i]!.units), c: rowNorms(s.dc, B, T, this.lstms[i]!.units) }));
    if (study && request.hiddenGrads) {
      res.hiddenGrads = study.map((s, i) => {
        const H = this.lstms[i]!.units, out = new Float64Array(B * T * H);
        timeToBatchMajor(T, B, H, s.dh, 0, out, 0);
        return fromData(out, [B, T, H]);
      });
    }
    return res;
  }

  /**
   * The loss of B rows of x against y from the given initial states (per LSTM, (B, H) each), or from what a
   * pass would start from (the carried state of a stateful model, else zeros). Changes no state: gradCheck's
   * probe.
   */
  lossFrom(xt: StridedArray, yt: StridedArray, B: number, T: number, states: { h: FloatArray; c: FloatArray }[] | null): number {
    this.ensure(B, T);
    this.loadInput(xt, null, 0, B, 0, T, 0);
    this.setInitialState(0, true, states ?? undefined);
    const M = this.forward(0, T, 0);
    this.loadLabels(yt, null, 0, B, 0, T);
    this.uses++;
    return this.lossOf(M, false);
  }
}

/** Per (row, step) Euclidean norms over the last axis of a time-major (T, B, H) buffer, as a [B, T] tensor. */
function rowNorms(a: FloatArray, B: number, T: number, H: number): Tensor {
  const out = new Float64Array(B * T);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      let s = 0;
      const o = (t * B + b) * H;
      for (let j = 0; j < H; j++) s += a[o + j]! * a[o + j]!;
      out[b * T + t] = Math.sqrt(s);
    }
  }
  return fromData(out, [B, T]);
}
