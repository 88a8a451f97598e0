/**
 * The network engine: a driver over a list of layers (the layer protocol of layers/layer.ts), with everything a
 * pass needs and nothing a user calls directly. It knows no architecture: which layer may follow which comes from
 * the layers' flows (a sequence or one vector per row), and each layer computes its own forward and backward.
 *
 * - Weights: one flat parameter buffer and one flat gradient buffer; every layer's weights are named views
 *   into them, so the optimizer is one loop and a step zeroes the gradients once (llm.c's layout).
 * - Buffers: the time-major input, the labels, and one workspace per layer, allocated per (B, capacity)
 *   and reused for every call of that shape or smaller. Layers hand each other streams of their own buffers.
 * - Forward and backward over the whole stack on step ranges [t0, t1), so the truncated-BPTT unroller can
 *   keep history in front of a window.
 * - State slots: the states each recurrent layer ended its last pass with (an LSTM's h and c, a GRU's h), which a
 *   stateful layer carries into the next pass, row by row.
 * - The mask: Masking's flags per (step, row), handed to every layer it reaches (through sequences, until a
 *   layer gives vectors), and to the loss of a per-step output.
 * - The loss of the output rows against loaded labels, and the optimizer step applied atomically.
 *
 * The engine does not validate: model.ts (the Keras facade), the trainers and the thread pool hand it
 * checked inputs. A worker thread runs a bare engine as its replica.
 *
 * Legend: B batch, T timesteps, F input features, H units, D output units, M output rows (B, or n·B for a
 * per-step output over n steps). Inside, sequences are time-major (T, B, ·): each step is one contiguous
 * (B, ·) block (see layers/lstm.ts); the public surface is batch-major [B, T, F].
 */
import { WasmArena, withArena } from "./wasm/arena.js";
import {
  type DType, type FloatArray, type Tensor, type StridedArray, allocate, fromData,
} from "./tensor/tensor.js";
import { gatherSteps, gatherRows, timeToBatchMajor } from "./tensor/layout.js";
import { clear, clearRange, copyRange } from "./tensor/kernels.js";
import {
  type EngineLayer, type Flow, type GradStream, type PassContext, type RecurrentWorkspace, type Stream, type StudyBuffers, planFlows, weightNamesOf,
} from "./layers/layer.js";
import type { RecurrentState, RowExecutor } from "./engine-api.js";
import type { LSTM } from "./layers/lstm.js";
import type { GRU } from "./layers/gru.js";
import type { Bidirectional } from "./layers/bidirectional.js";
import { Dense, type DenseWorkspace } from "./layers/dense.js";
import { Embedding } from "./layers/embedding.js";
import { maskSteps } from "./layers/masking.js";
import {
  type LossName, type MetricName, HUBER_DELTA, bceFromLogits, bceFromProbs, meanSquaredError, meanAbsoluteError, huber, binaryAccuracy, softmaxCrossentropy, categoricalAccuracy,
  isCategorical,
} from "./losses.js";
import type { Optimizer } from "./optimizers.js";
import { UpdateBackup, applyUpdate } from "./atomic-update.js";
import { Rng } from "./init.js";
import { type DropoutMasks, drawMaskRows } from "./dropout-masks.js";
import { ShapeError, ValueError, fmtValue } from "./errors.js";

/**
 * dst[0 … n) = src[from … from + n). (A `set` of a subarray makes a view object per call: with a batch of one, a
 * step's state commit took ~0.3 µs of the seed model's ~9, most of it those views and their collection.)
 */

/** The layers this version has (the serializers switch on `kind`); the engine sees each as an EngineLayer. */
export type Layer = LSTM | GRU | Bidirectional | Dense | Embedding;

/** A recurrent layer: the engine keeps its state slots (RecurrentLayer in layers/layer.ts). */
export type Recurrent = LSTM | GRU | Bidirectional;

/** One recurrent layer's states, in its stateNames order, B·H values each (an LSTM's [h, c], a GRU's [h]). */
export type StateSet = FloatArray[];

export type { DropoutMasks } from "./dropout-masks.js";


/**
 * The engine's buffers, state slots and passes over the stack (see the file's header); engine.ts adds the whole
 * calls on checked rows. Everything here is internal.
 */
export class EngineCore {
  /** The layers with weights, bottom to top. */
  readonly layers: readonly Layer[];
  /** The recurrent layers among them, bottom to top: the ones with state slots (index i of `state`, ws(i), …). */
  readonly rnns: readonly Recurrent[];
  /** What each layer gives: a sequence or one vector per row. */
  readonly flows: readonly Flow[];
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
  huberDelta = HUBER_DELTA; // the loss's delta when it is "huber"
  metrics: MetricName[] = [];
  onNonFinite: "throw" | "skip" = "throw";
  /** The fixed batch size of a stateful model, once known. */
  batchSize: number | undefined;
  /**
   * The states every recurrent layer ended its last pass with (the carried state of a stateful layer), or null before
   * any: per recurrent layer, one (B, H) buffer per state name.
   */
  readonly state: (StateSet | null)[];
  /** The RNG behind fit's shuffling; its position is saved in checkpoints. */
  shuffleRng: Rng;
  /**
   * The SIMD backend's memory, when the model asked for it and this runtime has it: the buffers the products
   * read and write are allocated there, and the matmuls and the σ-gate math then run in WebAssembly SIMD in place
   * (kernels.ts).
   */
  readonly arena: WasmArena | null;
  /**
   * The mask's value (a step whose every feature equals it is skipped): a Masking layer's, or 0 for an Embedding with
   * maskZero (its ids are the features); null when nothing masks.
   */
  readonly maskValue: number | null;
  /** The Masking layer's value (what the serializers write as the model's Masking layer), or null without one. */
  readonly maskingValue: number | null;
  /** (cap, B): 1 where a step is kept, 0 where it is masked; filled by loadInput when masking. */
  private valid: Uint8Array = new Uint8Array(0);
  /** Per layer: whether the mask reaches its input (a sequence all the way up from a Masking layer). */
  private readonly masked: readonly boolean[];
  /** The RNG behind dropout's masks; its position is saved in checkpoints. */
  dropoutRng: Rng;
  /** @internal Masks for the next draw, per recurrent layer { x (B, I), h (B, H) } scaled 0/1/(1−p): the golden tests' hook. */
  nextMasks: ({ x?: Float64Array | null; h?: Float64Array | null } | null)[] | null = null;
  /** The last draw of dropout masks, per recurrent layer (drawMaskRows). */
  private readonly drawn: DropoutMasks[] = [];
  /** Runs large calls on more than one thread when set (threads/pool.ts). */
  executor: RowExecutor | null = null;
  /** Counts uses of the buffers, so the truncated-BPTT unroller can tell when another call overwrote them. */
  uses = 0;
  /**
   * @internal Whether passes that no backward follows take the forward-only path (`forward`'s `infer`); false runs
   * them as training forwards do, which the tests compare the forward-only path with, bit for bit.
   */
  forwardOnly = true;

  // Pass buffers, allocated per (B, capacity) and reused.
  private B = 0;
  private cap = 0;
  /** The first step of the last forward pass: the output rows start there. */
  private t0 = 0;
  private xs: FloatArray = new Float64Array(0);       // (cap, B, F) time-major input
  protected ys: FloatArray = new Float64Array(0);       // (M, D) labels, rows aligned with the output's
  /** Per layer: its workspace (layers/*.ts), or null before the first pass. */
  private readonly wss: unknown[];
  /** The index in `layers` of each recurrent layer. */
  private readonly rnnAt: readonly number[];
  // The streams between layers (layer.ts), one object each, updated by every pass.
  private readonly input: Stream = { buf: new Float64Array(0), off: 0 }; // the engine's xs
  private readonly outs: Stream[];     // per layer: its output
  private readonly dxs: GradStream[];  // per layer: dL/d(its input)
  private readonly dTop: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  /** dL/d(output) when the top layer is not a Dense (which keeps its own): (M, D). */
  private topGrad: FloatArray = new Float64Array(0);
  private readonly pass: PassContext = { valid: null, dhNorms: null, study: null, needDx: true, logitGrad: false, infer: false };
  private readonly backup = new UpdateBackup();

  /** The layers must already form a valid stack (model.ts checks with planFlows); `dtype` and `seed` likewise. */
  constructor(
    layers: readonly Layer[], dtype: DType, seed: string, maskValue: number | null = null, backend: "js" | "wasm" = "js", fma = false,
  ) {
    const flows = planFlows(layers);
    if (!Array.isArray(flows)) throw new ValueError(`Engine layers: ${flows.why}`);
    this.flows = flows;
    const first = layers[0]!;
    this.maskingValue = maskValue;
    this.maskValue = maskValue ?? (first instanceof Embedding && first.maskZero ? 0 : null);
    this.arena = backend === "wasm" ? WasmArena.create(undefined, fma) : null;
    this.layers = layers;
    this.rnnAt = layers.flatMap((l, i) => (l.recurrent ? [i] : []));
    this.rnns = this.rnnAt.map((i) => layers[i] as Recurrent);
    // The mask travels up through sequences, and ends at the first layer that gives vectors.
    this.masked = layers.map((_, i) => this.maskValue !== null && flows.slice(0, i).every((f) => f === "sequence"));
    this.dtype = dtype;
    this.seed = seed;
    this.shuffleRng = new Rng(`${seed}/shuffle`);
    this.dropoutRng = new Rng(`${seed}/dropout`);
    this.state = this.rnns.map(() => null);
    this.wss = layers.map(() => null);
    this.outs = layers.map(() => ({ buf: new Float64Array(0), off: 0 }));
    this.dxs = layers.map(() => ({ buf: new Float64Array(0), off: 0, from: 0 }));
    for (const l of this.rnns) if (l.stateful && l.batchSize !== undefined) this.batchSize = l.batchSize;
  }

  /** The protocol's view of layer i. */
  private layer(i: number): EngineLayer {
    return this.layers[i]! as EngineLayer;
  }

  /** The top layer. */
  private get top(): Layer {
    return this.layers[this.layers.length - 1]!;
  }

  /** True when some recurrent layer is stateful. */
  get stateful(): boolean {
    return this.rnns.some((l) => l.stateful);
  }

  /** True when the output is a sequence (every step's, [B, T, D]), so labels are per step. */
  get perStep(): boolean {
    return this.flows[this.flows.length - 1] === "sequence";
  }

  /** Features per step of the model's input: the first layer's input, or 1 (the id) when it reads ids. */
  get inputDim(): number | undefined {
    const first = this.layers[0]!;
    return (first as EngineLayer).readsIds ? 1 : first.inputDim;
  }

  /** True when the model's input is integer ids [B, T] (an Embedding first). */
  get readsIds(): boolean {
    return (this.layers[0] as EngineLayer).readsIds === true;
  }

  get outputDim(): number {
    return this.top.units;
  }

  /** Whether accuracy is computed with the loss. */
  get accuracy(): boolean {
    return this.metrics.includes("accuracy");
  }

  /** Label values per output row: one class index for sparse categorical cross-entropy, else D. */
  get labelDim(): number {
    return this.loss === "sparseCategoricalCrossentropy" ? 1 : this.outputDim;
  }

  /** What accuracy counts over M output rows: rows for a categorical loss (argmax), else every unit. */
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
    for (const l of this.layers) { // check every layer before sizing any (an Embedding's inputDim is its vocabulary)
      if (!(l as EngineLayer).readsIds && l.inputDim !== undefined && l.inputDim !== dim) {
        throw new ShapeError(`${l.kind} inputDim: expected ${dim} (the output of the layer below), got ${l.inputDim}`);
      }
      dim = l.units;
    }
    dim = inputDim;
    for (const l of this.layers) {
      if (!(l as EngineLayer).readsIds) l.inputDim = dim;
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

  /** Names in getWeights order: "lstm_0/kernel", …, "dense_0/bias" (layers counted per kind). */
  weightNames(): string[] {
    return weightNamesOf(this.layers);
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
    for (const l of this.rnns) if (l.stateful) l.batchSize = B;
  }

  /** Makes recurrent layer i's state slots hold B rows (keeping them when they do); returns them. */
  allocState(i: number, B: number): StateSet {
    const n = B * this.rnns[i]!.stateUnits, cur = this.state[i];
    if (cur && cur[0]!.length === n) return cur;
    // In the model's WebAssembly memory on the SIMD backend, beside the slots they are copied to and from at every call.
    return (this.state[i] = withArena(this.arena, () => this.rnns[i]!.stateNames.map(() => allocate(this.dtype, n))));
  }

  /** Zero states of B rows for every recurrent layer, new (the model's own stay as they are until the caller swaps them in). */
  freshStates(B: number): StateSet[] {
    return withArena(this.arena, () => this.rnns.map((l) => l.stateNames.map(() => allocate(this.dtype, B * l.stateUnits))));
  }

  /** The rows of recurrent layer i's last states (0 before any pass). */
  stateRows(i: number): number {
    const s = this.state[i];
    return s ? s[0]!.length / this.rnns[i]!.stateUnits : 0;
  }

  /** Zeros in every state slot; a stateful model with a known batch size gets slots of that size. */
  zeroStates(): void {
    this.rnns.forEach((l, i) => {
      for (const s of this.state[i] ?? []) s.fill(0);
      if (l.stateful && this.batchSize !== undefined && !this.state[i]) this.allocState(i, this.batchSize);
    });
  }

  /** Forgets every state slot (the state of a model that has run no pass). */
  clearStates(): void {
    this.state.fill(null);
  }

  /**
   * States of recurrent layer i as named [B, H] tensors (copies): `bufs` in its stateNames order, row b of
   * state s at off + b·H.
   */
  namedStates(i: number, bufs: readonly FloatArray[], off: number, B: number): RecurrentState {
    const H = this.rnns[i]!.stateUnits, names = this.rnns[i]!.stateNames, out: Record<string, Tensor> = {};
    names.forEach((nm, s) => { out[nm] = fromData(bufs[s]!.slice(off, off + B * H), [B, H]); });
    return out as unknown as RecurrentState;
  }

  /** Whether recurrent layer i starts a batch of B rows from its carried state: stateful, with a state of B rows. */
  carries(i: number, B: number): boolean {
    return this.rnns[i]!.stateful && this.state[i] !== null && this.stateRows(i) === B;
  }

  // ---------------------------------------------------------------------------------------------
  // Buffers and steps

  /** Makes sure every buffer fits B rows and `cap` steps. */
  ensure(B: number, cap: number): void {
    this.uses++;
    for (let i = 0; i < this.rnns.length; i++) { const ws = this.ws(i); if (ws) ws.dropping = false; } // an inference pass unless made a training one
    if (B === this.B && cap <= this.cap) return;
    cap = B === this.B ? Math.max(cap, this.cap) : cap;
    const F = this.inputDim!, c = cap;
    withArena(this.arena, () => {
      if (this.xs.length < c * B * F) this.xs = allocate(this.dtype, c * B * F);
      for (let i = 0; i < this.layers.length; i++) {
        this.wss[i] = this.layer(i).workspace(this.dtype, B, c, i === 0 ? "sequence" : this.flows[i - 1]!, this.masked[i]!, this.wss[i]!);
      }
      // dL/d(output) for a top layer that is not a Dense: (cap·B, D) or (B, D).
      const top = this.top, rows = this.perStep ? c * B : B;
      if (!(top instanceof Dense) && this.topGrad.length < rows * top.units) this.topGrad = allocate(this.dtype, rows * top.units);
    });
    this.input.buf = this.xs;
    if (this.maskValue !== null && this.valid.length < cap * B) this.valid = new Uint8Array(cap * B);
    this.B = B;
    this.cap = cap;
  }

  /** The thread pool, for any call: it weighs masked slices by keptRows and slices a dropout step's drawMaskRows. */
  protected pool(): RowExecutor | null {
    return this.executor;
  }

  /** Whether some recurrent layer has dropout or recurrent dropout (which training passes then apply). */
  get hasDropout(): boolean {
    return this.rnns.some((l) => l.dropout > 0 || l.recurrentDropout > 0);
  }

  /**
   * Draws every dropout layer's masks for B rows from the dropout RNG, one scaled 0/1 value per row and unit, in
   * row order, layer by layer (x then h): the draw `drawMasks` applies, and the thread pool slices. Per recurrent
   * layer, x (dirs·B, I) and h (dirs·B, H), null where the layer has no such dropout; a Bidirectional's are its
   * forward direction's B rows then its backward direction's. The arrays are this engine's, reused by the next draw.
   * `nextMasks` (for tests: the masks a reference computed with) replaces one draw.
   */
  drawMaskRows(B: number): DropoutMasks[] {
    const given = this.nextMasks;
    this.nextMasks = null;
    return drawMaskRows(this.rnns, this.dropoutRng, B, this.drawn, given);
  }

  /** Makes the passes until the next `ensure` training ones with these masks (for the buffers' B rows, as drawMaskRows lays them). */
  useMasks(masks: readonly DropoutMasks[]): void {
    for (let i = 0; i < this.rnns.length; i++) {
      const ws = this.ws(i), m = masks[i]!;
      ws.xMask = m.x;
      ws.hMask = m.h;
      ws.dropping = m.x !== null || m.h !== null;
    }
  }

  /** Draws the masks for the B rows of the buffers (after `ensure`) and uses them until the next `ensure`. */
  drawMasks(): void {
    this.useMasks(this.drawMaskRows(this.B));
  }

  /** Turns the masks drawn last on for a training pass (or off), until the next `ensure`. */
  setDropping(on: boolean): void {
    for (let i = 0; i < this.rnns.length; i++) {
      const ws = this.ws(i);
      if (ws) ws.dropping = on && (ws.xMask !== null || ws.hMask !== null);
    }
  }

  /** The workspace of recurrent layer i (after `ensure`). */
  ws(i: number): RecurrentWorkspace {
    return this.wss[this.rnnAt[i]!] as RecurrentWorkspace;
  }

  /** @internal The workspace of layer i (layers/*.ts), for studies and tests; null before the first pass. */
  workspaceOf(i: number): unknown {
    return this.wss[i] ?? null;
  }

  /**
   * dL/dx of the last backward pass: step t ≥ from at off + (t − from)·B·F (time-major); the steps it
   * reached, when the pass asked for it.
   */
  inputGrad(): GradStream {
    return this.dxs[0]!;
  }

  /**
   * Copies n steps of x (starting at step tx) for B rows into the time-major input buffer at slot t0.
   * `rows`, when given, maps batch row b to sample rows[rowStart + b] (fit's shuffled batches).
   */
  loadInput(x: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number, t0: number): void {
    const F = this.inputDim!;
    gatherSteps(x, rows, rowStart, B, tx, n, this.xs, t0 * B * F);
    if (this.maskValue !== null) maskSteps(this.xs, F, this.maskValue, this.valid, t0 * B, (t0 + n) * B);
  }

  /**
   * Loads the labels of the output rows: [B, D] for a last-step output, or steps [tx, tx + n) of [B, T, D]
   * for a per-step output (time-major rows, like the output's). Returns the output's row count.
   */
  loadLabels(y: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number): number {
    const D = this.labelDim;
    const M = this.perStep ? n * B : B;
    if (this.ys.length < M * D) this.ys = allocate(this.dtype, M * D);
    if (this.perStep) gatherSteps(y, rows, rowStart, B, tx, n, this.ys, 0);
    else gatherRows(y, rows, rowStart, B, this.ys, 0);
    return M;
  }

  /** Loads n label values already laid out like the output's rows (time-major per-step labels). */
  setLabels(src: FloatArray, n: number): void {
    if (this.ys.length < n) this.ys = allocate(this.dtype, n);
    for (let k = 0; k < n; k++) this.ys[k] = src[k]!;
  }

  /**
   * Writes each recurrent layer's initial states into slot t0: the carried ones for stateful layers (when
   * `carried`), zeros otherwise, or the explicit `states` (per layer, B·H values per state) when given.
   */
  setInitialState(t0: number, carried: boolean, states?: readonly StateSet[]): void {
    const B = this.B;
    for (let i = 0; i < this.rnns.length; i++) {
      const slots = this.ws(i).states, n = B * this.rnns[i]!.stateUnits, off = t0 * n;
      const from = states ? states[i]! : carried && this.carries(i, B) ? this.state[i]! : null;
      for (let s = 0; s < slots.length; s++) {
        if (from) copyRange(slots[s]!, off, from[s]!, 0, n);
        else clearRange(slots[s]!, off, n);
      }
    }
  }

  /**
   * Moves `keep` steps of history, starting at step `drop`, to the front of every buffer (the input and its
   * mask, and each layer's step-indexed buffers), so that the truncated-BPTT unroller can append the next
   * window after them. Slot `drop + keep` (the state after the last kept step) becomes slot `keep`.
   */
  shiftHistory(drop: number, keep: number): void {
    if (drop === 0) return;
    const B = this.B, F = this.inputDim!;
    this.xs.copyWithin(0, drop * B * F, (drop + keep) * B * F);
    if (this.maskValue !== null) this.valid.copyWithin(0, drop * B, (drop + keep) * B);
    for (let i = 0; i < this.layers.length; i++) this.layer(i).shiftHistory(this.wss[i], drop, keep);
  }

  /** Copies every recurrent layer's states at slot `from` to slot `to`. */
  copyState(from: number, to: number): void {
    this.rnns.forEach((l, i) => {
      const n = this.B * l.stateUnits;
      for (const s of this.ws(i).states) s.copyWithin(to * n, from * n, (from + 1) * n);
    });
  }

  /** Zeros the gradients before a backward pass (in SIMD on the SIMD backend: see `clear`). */
  zeroGrads(): void {
    clear(this.grads);
  }

  /** Keeps the states at slot t as every recurrent layer's last states (the carried ones when stateful). */
  commitState(t: number): void {
    const B = this.B;
    for (let i = 0; i < this.rnns.length; i++) {
      const n = B * this.rnns[i]!.stateUnits, slots = this.ws(i).states, kept = this.allocState(i, B);
      for (let s = 0; s < slots.length; s++) copyRange(kept[s]!, 0, slots[s]!, t * n, n);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Forward and backward over the stack

  /**
   * Forward through every layer over steps [t0, t1); returns the output's row count M. `infer`: no backward follows
   * (predict, evaluate), so the layers keep only what the next step needs (PassContext.infer): the same outputs and
   * states, bit for bit.
   */
  forward(t0: number, t1: number, infer = false): number {
    const pass = this.pass, valid = this.maskValue === null ? null : this.valid;
    pass.infer = infer && this.forwardOnly;
    let x = this.input;
    for (let i = 0; i < this.layers.length; i++) {
      pass.valid = this.masked[i] ? valid : null;
      this.layer(i).forward(this.wss[i], x, t0, t1, pass, this.outs[i]!);
      x = this.outs[i]!;
    }
    this.t0 = t0;
    return this.perStep ? (t1 - t0) * this.B : this.B;
  }

  /**
   * The output rows of the last forward pass, from row 0: a view of `of` (the top layer's output, its logits,
   * its gradient) when the rows do not start at 0 (truncated BPTT's history, an LSTM's slot t + 1).
   */
  private rows(of: FloatArray, off: number): FloatArray {
    return off === 0 ? of : of.subarray(off);
  }

  /** The output's first value in its buffer (the top layer's output stream at step t0). */
  private outOff(): number {
    const o = this.outs[this.outs.length - 1]!;
    return o.off + (this.perStep ? this.t0 * this.B * this.outputDim : 0);
  }

  /** The output rows of the last forward pass, (M, D) from index 0 (the buffer itself, or a view; it may hold more). */
  outputRows(): FloatArray {
    return this.rows(this.outs[this.outs.length - 1]!.buf, this.outOff());
  }

  /** Whether the loss counts only the kept steps of the output rows (a per-step output that the mask reaches). */
  get rowMasked(): boolean {
    return this.perStep && this.masked[this.layers.length - 1]! && this.maskValue !== null;
  }

  /** The rows of the output that the loss counts (masking's kept steps of a per-step output), or null for all. */
  protected rowValid(): Uint8Array | null {
    if (!this.rowMasked) return null;
    return this.t0 === 0 ? this.valid : this.valid.subarray(this.t0 * this.B);
  }

  /** How many of the last pass's M output rows the loss counts (a masked per-step output's kept steps): the pool's weights. */
  keptRows(M: number): number {
    const rv = this.rowValid();
    if (rv === null) return M;
    let n = 0;
    for (let r = 0; r < M; r++) n += rv[r]!;
    return n;
  }

  /** Where the loss writes dL/d(output), as a gradient stream for the top layer's backward (from step t0). */
  private lossGrad(): GradStream {
    const d = this.dTop, top = this.top;
    if (top instanceof Dense) {
      d.buf = (this.wss[this.wss.length - 1] as DenseWorkspace).dOut;
      d.off = this.perStep ? this.t0 * this.B * top.units : 0; // a Dense's rows are step-indexed
    } else {
      d.buf = this.topGrad;
      d.off = 0;
    }
    d.from = this.t0;
    return d;
  }

  /** The loss of the output rows against the loaded labels; with `grad`, also dL/d(output) (lossGrad's stream). */
  lossOf(M: number, grad: boolean): number {
    const top = this.top, D = top.units, N = M * D, rv = this.rowValid();
    const out = this.outputRows();
    const g = this.lossGrad(), dOut = grad ? this.rows(g.buf, g.off) : null;
    if (this.loss === "meanSquaredError") return meanSquaredError(N, out, this.ys, dOut, rv, D);
    if (this.loss === "meanAbsoluteError") return meanAbsoluteError(N, out, this.ys, dOut, rv, D);
    if (this.loss === "huber") return huber(N, out, this.ys, dOut, rv, D, this.huberDelta);
    // Categorical losses need a softmax head (compile checks), and are computed from its logits.
    const logits = top instanceof Dense ? this.rows((this.wss[this.wss.length - 1] as DenseWorkspace).logits, this.outOff()) : null;
    if (isCategorical(this.loss)) {
      return softmaxCrossentropy(M, D, logits!, out, this.ys, this.loss === "sparseCategoricalCrossentropy", dOut, rv);
    }
    if (top instanceof Dense && top.activation === "sigmoid") return bceFromLogits(N, logits!, out, this.ys, dOut, rv, D);
    return bceFromProbs(N, out, this.ys, dOut, rv, D);
  }

  /** Accuracy of the output rows against the loaded labels: argmax for a categorical loss, else binary (p > 0.5). */
  accuracyOf(M: number): number {
    const rv = this.rowValid(), out = this.outputRows();
    if (isCategorical(this.loss)) return categoricalAccuracy(M, this.outputDim, out, this.ys, this.loss === "sparseCategoricalCrossentropy", rv);
    return binaryAccuracy(M * this.outputDim, out, this.ys, rv, this.outputDim);
  }

  /**
   * Backward from the output (whose gradient the loss has written, for steps [ta, t1)) through every layer over
   * steps [tb, t1). Gradients accumulate into `grads`; the caller zeroes them. With `dhNorms`, each recurrent
   * layer i records ‖dL/dh_t‖ into dhNorms[i][t].
   */
  backward(
    tb: number, t1: number, ta: number, dhNorms: Float64Array[] | null = null,
    study: StudyBuffers[] | null = null, // per recurrent layer, (cap, B, H) each
    inputGrad = true, // false: the bottom layer's dL/dx is not computed (a training step's)
  ): void {
    const pass = this.pass, valid = this.maskValue === null ? null : this.valid, L = this.layers.length;
    const top = this.top;
    // The loss wrote dL/d(logits) itself for sigmoid + binary and softmax + categorical cross-entropy.
    const logitGrad = top instanceof Dense && (isCategorical(this.loss) || (this.loss === "binaryCrossentropy" && top.activation === "sigmoid"));
    let d = this.lossGrad();
    d.from = ta;
    let r = this.rnns.length;
    for (let i = L - 1; i >= 0; i--) {
      const l = this.layer(i), rec = l.recurrent;
      if (rec) r--;
      pass.valid = this.masked[i] ? valid : null;
      pass.dhNorms = rec && dhNorms ? dhNorms[r]! : null;
      pass.study = rec && study ? study[r]! : null;
      pass.needDx = i > 0 || inputGrad;
      pass.logitGrad = i === L - 1 && logitGrad;
      l.backward(this.wss[i], i === 0 ? this.input : this.outs[i - 1]!, tb, t1, d, pass, this.dxs[i]!);
      d = this.dxs[i]!;
    }
  }

  /**
   * h_0 … h_{T-1} of recurrent layer i, time-major (T, B, W) with W = directions·H: a layer's h in the order it
   * reads; a two-way layer's in time order, the forward direction's h_t then the backward direction's state after
   * reading step t.
   */
  hiddenRows(i: number, B: number, T: number): FloatArray {
    const l = this.rnns[i]!, H = l.stateUnits, states = this.ws(i).states, BH = B * H;
    if (l.directions === 1) return states[0]!.slice(BH, (T + 1) * BH); // slot t + 1 holds h_t
    const f = states[0]!, r = states[states.length / 2]!, W = 2 * H, out = allocate(this.dtype, T * B * W);
    for (let t = 0; t < T; t++) {
      for (let b = 0; b < B; b++) {
        const o = (t * B + b) * W, a = (t + 1) * BH + b * H, c = (T - t) * BH + b * H; // the backward one read step t as its step T − 1 − t
        for (let j = 0; j < H; j++) { out[o + j] = f[a + j]!; out[o + H + j] = r[c + j]!; }
      }
    }
    return out;
  }

  /** hiddenRows as a batch-major [B, T, W] tensor. */
  hiddenSequence(i: number, B: number, T: number): Tensor {
    const l = this.rnns[i]!, W = l.directions * l.stateUnits, out = allocate(this.dtype, B * T * W);
    timeToBatchMajor(T, B, W, this.hiddenRows(i, B, T), 0, out, 0);
    return fromData(out, [B, T, W]);
  }

  /**
   * The output rows written straight into `out` from `at` (no intermediate tensor): B rows of D, or [B, n, D]
   * batch-major from time-major rows.
   */
  writeOutput(B: number, n: number, out: FloatArray, at: number): void {
    const D = this.outputDim, buf = this.outs[this.outs.length - 1]!.buf, off = this.outOff();
    if (this.perStep) timeToBatchMajor(n, B, D, buf, off, out, at);
    else for (let k = 0; k < B * D; k++) out[at + k] = buf[off + k]!;
  }

  /** The output rows as a public tensor: [B, D], or [B, n, D] from time-major rows. */
  headOutput(B: number, n: number): Tensor {
    const D = this.outputDim, buf = this.outs[this.outs.length - 1]!.buf, off = this.outOff();
    if (!this.perStep) return fromData(buf.slice(off, off + B * D), [B, D]);
    const res = allocate(this.dtype, B * n * D);
    timeToBatchMajor(n, B, D, buf, off, res, 0);
    return fromData(res, [B, n, D]);
  }

  /** The optimizer step, atomically (atomic-update.ts); false when `onNonFinite: "skip"` dropped it. */
  applyUpdate(loss: number, what: string): boolean {
    return applyUpdate(this.optimizer!, this.params, this.grads, loss, what, this.onNonFinite, this.dtype, this.backup);
  }
}
