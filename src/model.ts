/**
 * Sequential: LSTM layers (stacked when the lower one returns sequences) followed by one or more Dense
 * layers, with Keras's training surface and stateful semantics.
 *
 * Legend: B batch, T timesteps, F input features, H units, D head units, M head rows (B, or n·B for a
 * per-step head over n steps). Inside, sequences are time-major (T, B, ·); the public surface is
 * batch-major [B, T, F], and the model transposes at its boundary (see layers/lstm.ts for why).
 *
 * The model owns one flat parameter buffer and one flat gradient buffer; every layer's weights are
 * named views into them, so the optimizer is one loop and a step zeroes the gradients once.
 */
import {
  type DType, type FloatArray, type Tensor, type TensorLike, type StridedArray,
  DEFAULT_DTYPE, allocate, checkDType, fromData, isTensor, toTensor, assertFinite,
} from "./tensor/tensor.js";
import { LSTM, lstmForward, lstmBackward } from "./layers/lstm.js";
import { Dense, denseForward, denseBackward } from "./layers/dense.js";
import {
  type LossName, checkLoss, bceFromLogits, bceFromProbs, meanSquaredError, binaryAccuracy,
} from "./losses.js";
import { type Optimizer, resolveOptimizer, Adam, SGD } from "./optimizers.js";
import { Rng } from "./init.js";
import { gatherSteps, gatherRows, timeToBatchMajor, assertFiniteIn } from "./tensor/layout.js";
import { ShapeError, ValueError, StateError, NonFiniteError, fmtShape, fmtValue } from "./errors.js";
import { type Callback, type Logs, History, ProgressBar } from "./callbacks.js";
import { saveCheckpoint, loadCheckpoint, checkpointToJSON, checkpointFromJSON, type CheckpointJSON } from "./io.js";
import { type ParallelEngine, type ThreadOptions, createParallel } from "./parallel/engine.js";

export type Layer = LSTM | Dense;

export interface SequentialOptions {
  /** "float64" (default: exact, and as fast as float32 in V8, see the README) or "float32". */
  dtype?: DType;
  /** Seed for initialisation and shuffling. Default: a random seed, readable afterwards as `model.seed`. */
  seed?: number | string;
  /** Threads for large calls (this one plus worker threads), or "auto" for the machine's cores. Default 1. See setThreads. */
  threads?: number | "auto";
  /** With `threads`: calls estimated below this many FLOPs stay on one thread (default 4e6). See setThreads. */
  threadsMinFlops?: number;
}

export interface CompileOptions {
  optimizer?: Optimizer | "adam" | "sgd";
  loss: LossName;
  metrics?: "accuracy"[];
  /** What a training step does when its loss, gradients or new weights are not finite: "throw" (default)
   * raises NonFiniteError, "skip" returns the non-finite loss and leaves everything unchanged. Both leave
   * weights, optimizer and LSTM state exactly as they were. */
  onNonFinite?: "throw" | "skip";
}

export interface LSTMState {
  h: Tensor; // [B, H]
  c: Tensor; // [B, H]
}

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
}

export interface StepResult {
  loss: number;
  accuracy?: number;
}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** Shuffle the samples every epoch (seeded by the model's seed). Default true, false for stateful models. */
  shuffle?: boolean;
  validationData?: [TensorLike, TensorLike];
  callbacks?: Callback[];
  /** 0 silent, 1 progress (a live bar on a TTY, one line per epoch otherwise). Default 1. */
  verbose?: 0 | 1;
}

/** The input after validation: an ndarray we can index with strides, plus its sizes. */
interface Input {
  t: StridedArray;
  B: number;
  T: number;
  F: number;
}

/**
 * A stack of layers.
 *
 * @example
 * const model = new Sequential([
 *   new LSTM({ units: 10, inputDim: 1 }),
 *   new Dense({ units: 1, activation: "sigmoid" }),
 * ], { seed: 42 });
 * model.compile({ optimizer: "adam", loss: "binaryCrossentropy", metrics: ["accuracy"] });
 * const history = await model.fit(x, y, { epochs: 5, batchSize: 11, verbose: 0 });
 */
export class Sequential {
  readonly layers: Layer[];
  readonly lstms: LSTM[];
  readonly denses: Dense[];
  readonly dtype: DType;
  readonly seed: string;
  /** All weights, flat, in getWeights order. */
  params: FloatArray = new Float64Array(0);
  /** All gradients, flat, aligned with params. */
  grads: FloatArray = new Float64Array(0);
  optimizer: Optimizer | null = null;
  loss: LossName | null = null;
  metrics: string[] = [];
  onNonFinite: "throw" | "skip" = "throw";
  /** Set by a callback (early stopping) to end `fit` after the current epoch. */
  stopTraining = false;
  /** The RNG behind `fit`'s shuffling; its position is saved in checkpoints. */
  shuffleRng: Rng;

  private built = false;
  private fixedBatch: number | undefined;
  // Engine buffers, allocated per (B, cap) and reused.
  private engB = 0;
  private engCap = 0;
  private xs: FloatArray = new Float64Array(0);       // (cap, B, F) time-major input
  private ys: FloatArray = new Float64Array(0);       // (M, D) labels, rows aligned with the head's
  private backup: FloatArray = new Float64Array(0);   // params before an update, for rollback
  /** @internal Counts engine uses, so the truncated-BPTT unroller can tell when its buffers were reused. */
  engineUses = 0;
  private slotBackup: Float64Array[] = [];            // optimizer state before an update

  constructor(layers: Layer[], options: SequentialOptions = {}) {
    if (!Array.isArray(layers) || layers.length === 0) {
      throw new ValueError(`Sequential layers: expected a non-empty array of LSTM and Dense layers, got ${fmtValue(layers)}`);
    }
    layers.forEach((l, i) => {
      if (!(l instanceof LSTM) && !(l instanceof Dense)) {
        throw new ValueError(`Sequential layers[${i}]: expected an LSTM or a Dense, got ${fmtValue(l)}`);
      }
    });
    const firstDense = layers.findIndex((l) => l instanceof Dense);
    if (!(layers[0] instanceof LSTM) || firstDense < 0 || layers.slice(firstDense).some((l) => l instanceof LSTM)) {
      throw new ValueError(
        `Sequential layers: expected one or more LSTM layers followed by one or more Dense layers, got [${layers.map((l) => l.kind).join(", ")}]`,
      );
    }
    layers.forEach((l, i) => {
      if (l.owner !== null && l.owner !== this) {
        throw new ValueError(`Sequential layers[${i}]: this ${l.kind} layer already belongs to another model (its weights live in that model's buffers); create a new layer and copy weights with setWeights`);
      }
      if (layers.indexOf(l) !== i) throw new ValueError(`Sequential layers[${i}]: the same layer object appears twice`);
    });
    this.layers = layers;
    this.lstms = layers.slice(0, firstDense) as LSTM[];
    this.denses = layers.slice(firstDense) as Dense[];
    this.lstms.forEach((l, i) => {
      if (i < this.lstms.length - 1 && !l.returnSequences) {
        throw new ValueError(`Sequential layers[${i}]: an LSTM below another LSTM must have returnSequences: true`);
      }
    });
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Sequential options: expected an object, got ${fmtValue(options)}`);
    }
    this.dtype = checkDType("Sequential dtype", options.dtype ?? DEFAULT_DTYPE);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
    if ((typeof seed !== "number" || !Number.isFinite(seed)) && typeof seed !== "string") {
      throw new ValueError(`Sequential seed: expected a finite number or a string, got ${fmtValue(seed)}`);
    }
    this.seed = String(seed);
    this.shuffleRng = new Rng(`${this.seed}/shuffle`);
    const sizes = new Set(this.lstms.filter((l) => l.stateful && l.batchSize !== undefined).map((l) => l.batchSize));
    if (sizes.size > 1) {
      throw new ValueError(`Sequential: stateful LSTM layers disagree on batchSize: ${[...sizes].join(" vs ")}`);
    }
    this.fixedBatch = sizes.values().next().value;
    if (this.lstms[0]!.inputDim !== undefined) this.build(this.lstms[0]!.inputDim);
    if (options.threadsMinFlops !== undefined && options.threads === undefined) {
      throw new ValueError(`Sequential threadsMinFlops: it only applies with the threads option (or later setThreads(n, { minFlops })), got threadsMinFlops ${fmtValue(options.threadsMinFlops)} without threads`);
    }
    if (options.threads !== undefined) this.parallel = createParallel(this, options.threads, { minFlops: options.threadsMinFlops }, "Sequential");
    for (const l of layers) l.owner = this; // only once every check has passed
  }

  /** True when some LSTM layer is stateful. */
  get stateful(): boolean {
    return this.lstms.some((l) => l.stateful);
  }

  /** The fixed batch size of a stateful model (undefined until known). */
  get batchSize(): number | undefined {
    return this.fixedBatch;
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

  /**
   * Creates and initialises the weights for `inputDim` features. Called by the constructor when the
   * first LSTM has `inputDim`, else by the first call that sees data.
   *
   * @example
   * const m = new Sequential([new LSTM({ units: 8 }), new Dense({ units: 1 })], { seed: 1 });
   * m.build(3);                                   // 3 input features: weights exist now
   */
  build(inputDim: number): void {
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
    for (const l of this.layers) {
      if (l.inputDim !== undefined && l.inputDim !== dim) {
        throw new ShapeError(`${l.kind} inputDim: expected ${dim} (the output of the layer below), got ${l.inputDim}`);
      }
      l.inputDim = dim;
      dim = l.units;
    }
    const total = this.layers.reduce((s, l) => s + l.paramCount(), 0);
    this.params = allocate(this.dtype, total);
    this.grads = allocate(this.dtype, total);
    let off = 0;
    for (const l of this.layers) off = l.bind(this.params, this.grads, off);
    const rng = new Rng(this.seed);
    for (const l of this.layers) l.initialize(rng);
    this.built = true;
    this.optimizer?.init(total);
  }

  private requireBuilt(what: string): void {
    if (!this.built) {
      throw new StateError(`${what}: the model is not built yet; give the first LSTM an inputDim, call build(inputDim), or pass data first`);
    }
  }

  /**
   * Number of trainable parameters.
   *
   * @example
   * new Sequential([new LSTM({ units: 10, inputDim: 1 }), new Dense({ units: 1 })]).countParams(); // 491
   */
  countParams(): number {
    this.requireBuilt("countParams");
    return this.params.length;
  }

  /**
   * Sets the optimizer and loss.
   *
   * @example
   * model.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
   */
  compile(options: CompileOptions): void {
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`compile options: expected { optimizer, loss, metrics? }, got ${fmtValue(options)}`);
    }
    const optimizer = resolveOptimizer(options.optimizer ?? "adam");
    if (optimizer.owner !== null && optimizer.owner !== this) {
      throw new ValueError(`compile optimizer: this ${optimizer.name === "adam" ? "Adam" : "SGD"} instance already belongs to another model (its moments and step count are that model's); give each model its own optimizer`);
    }
    const loss = checkLoss("compile loss", options.loss);
    const metrics = options.metrics ?? [];
    if (!Array.isArray(metrics) || metrics.some((m) => m !== "accuracy")) {
      throw new ValueError(`compile metrics: expected [] or ["accuracy"], got ${JSON.stringify(metrics)}`);
    }
    const onNonFinite = options.onNonFinite ?? "throw";
    if (onNonFinite !== "throw" && onNonFinite !== "skip") {
      throw new ValueError(`compile onNonFinite: expected "throw" or "skip", got ${fmtValue(onNonFinite)}`);
    }
    if (this.optimizer && this.optimizer !== optimizer) this.optimizer.owner = null;
    optimizer.owner = this;
    this.optimizer = optimizer;
    this.loss = loss;
    this.metrics = metrics.slice();
    this.onNonFinite = onNonFinite;
    if (this.built) optimizer.init(this.params.length);
  }

  // ---------------------------------------------------------------------------------------------
  // Weights and states

  /**
   * Copies of the weights, per layer: LSTM kernel [I,4H], recurrentKernel [H,4H], bias [4H]; Dense kernel [H,D], bias [D].
   *
   * @example
   * const [kernel, recurrentKernel, bias, denseKernel, denseBias] = model.getWeights();
   * kernel.shape;                                 // [I, 4H], gate blocks in the order i, f, c, o
   */
  getWeights(): Tensor[] {
    this.requireBuilt("getWeights");
    return this.splitFlat(this.params);
  }

  /** @internal Copies of a flat buffer (params, grads) cut into the weight shapes, in getWeights order. */
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


  /**
   * Names of the weights in getWeights order.
   *
   * @example
   * model.weightNames();  // ["lstm_0/kernel", "lstm_0/recurrentKernel", "lstm_0/bias", "dense_0/kernel", "dense_0/bias"]
   */
  weightNames(): string[] {
    const names: string[] = [];
    let li = 0, di = 0;
    for (const l of this.layers) {
      const prefix = l instanceof LSTM ? `lstm_${li++}` : `dense_${di++}`;
      for (const n of l.weightNames()) names.push(`${prefix}/${n}`);
    }
    return names;
  }

  /** Shapes in getWeights order, e.g. [[1, 40], [10, 40], [40], [10, 1], [1]]. */
  weightShapes(): number[][] {
    this.requireBuilt("weightShapes");
    return this.layers.flatMap((l) => l.weightShapes());
  }

  /**
   * Copies weights in (same order and shapes as getWeights). Everything is validated before anything is
   * written, so a bad list leaves the model unchanged.
   *
   * @example
   * other.setWeights(model.getWeights());         // e.g. into a batch-size-1 copy, the Keras tutorial's way
   */
  setWeights(weights: TensorLike[]): void {
    this.requireBuilt("setWeights");
    const shapes = this.weightShapes();
    const names = this.weightNames();
    if (!Array.isArray(weights) || weights.length !== shapes.length) {
      throw new ValueError(`setWeights weights: expected ${shapes.length} arrays (${names.join(", ")}), got ${Array.isArray(weights) ? weights.length : fmtValue(weights)}`);
    }
    const ts = weights.map((w, i) => {
      const t = toTensor(`setWeights weights[${i}] (${names[i]})`, w, this.dtype);
      if (t.shape.length !== shapes[i]!.length || t.shape.some((d, k) => d !== shapes[i]![k])) {
        throw new ShapeError(`setWeights weights[${i}] (${names[i]}): expected shape ${fmtShape(shapes[i]!)}, got ${fmtShape(t.shape)}`);
      }
      assertFinite(`setWeights weights[${i}] (${names[i]})`, t.data, t.shape);
      return t;
    });
    let off = 0;
    for (const t of ts) {
      this.params.set(t.data, off);
      off += t.data.length;
    }
  }

  /**
   * The LSTM states after the last forward pass (the carried state of stateful layers), per LSTM layer,
   * each { h, c } of shape [B, H] ([0, H] before any pass).
   *
   * @example
   * const [{ h, c }] = model.getStates();
   */
  getStates(): LSTMState[] {
    this.requireBuilt("getStates");
    return this.lstms.map((l) => {
      const H = l.units;
      const h = l.stateH ?? allocate(this.dtype, 0);
      const c = l.stateC ?? allocate(this.dtype, 0);
      const B = h.length / H;
      return { h: fromData(h.slice(), [B, H]), c: fromData(c.slice(), [B, H]) };
    });
  }

  /**
   * Resets the LSTM states.
   * - `resetStates()`: zeros for every row.
   * - `resetStates(states)`: the given `{h, c}` per LSTM layer, each [B, H].
   * - `resetStates({ rows: [0, 2] })`: zeros for those batch rows only; the other rows keep their state.
   *
   * @example
   * model.resetStates();                       // new sequences in every row
   * model.resetStates({ rows: [1] });          // row 1 starts a new sequence, rows 0 and 2 continue
   */
  resetStates(states?: { h: TensorLike; c: TensorLike }[] | { rows: number[] }): void {
    this.requireBuilt("resetStates");
    if (states === undefined) {
      for (const l of this.lstms) {
        if (l.stateH) l.stateH.fill(0);
        if (l.stateC) l.stateC.fill(0);
        if (l.stateful && this.fixedBatch !== undefined && !l.stateH) this.allocState(l, this.fixedBatch);
      }
      return;
    }
    if (!Array.isArray(states) && typeof states === "object" && states !== null && "rows" in states) {
      const rows = states.rows;
      const B = this.fixedBatch ?? (this.lstms[0]!.stateH ? this.lstms[0]!.stateH.length / this.lstms[0]!.units : 0);
      if (!Array.isArray(rows) || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= B)) {
        throw new ValueError(`resetStates rows: expected batch row indices in [0, ${B}), got ${JSON.stringify(rows)}`);
      }
      for (const l of this.lstms) {
        const H = l.units;
        for (const r of rows) {
          l.stateH?.fill(0, r * H, (r + 1) * H);
          l.stateC?.fill(0, r * H, (r + 1) * H);
        }
      }
      return;
    }
    if (!Array.isArray(states) || states.length !== this.lstms.length) {
      throw new ValueError(`resetStates states: expected ${this.lstms.length} { h, c } objects (one per LSTM layer), got ${Array.isArray(states) ? states.length : fmtValue(states)}`);
    }
    // Validate everything first: a bad entry must not leave some layers changed.
    let B: number | undefined = this.fixedBatch;
    const parsed = states.map((s, i) => {
      if (typeof s !== "object" || s === null || !("h" in s) || !("c" in s)) {
        throw new ValueError(`resetStates states[${i}]: expected { h, c }, got ${fmtValue(s)}`);
      }
      const H = this.lstms[i]!.units;
      const h = toTensor(`resetStates states[${i}].h`, s.h, this.dtype);
      const c = toTensor(`resetStates states[${i}].c`, s.c, this.dtype);
      for (const [nm, t] of [["h", h], ["c", c]] as const) {
        if (t.shape.length !== 2 || t.shape[1] !== H || (B !== undefined && t.shape[0] !== B)) {
          throw new ShapeError(`resetStates states[${i}].${nm}: expected shape [B, H] = [${B ?? "B"}, ${H}], got ${fmtShape(t.shape)}`);
        }
        assertFinite(`resetStates states[${i}].${nm}`, t.data, t.shape);
      }
      B = h.shape[0]!;
      return { h, c };
    });
    this.lstms.forEach((l, i) => {
      this.allocState(l, B!);
      l.stateH!.set(parsed[i]!.h.data);
      l.stateC!.set(parsed[i]!.c.data);
    });
    if (this.stateful && this.fixedBatch === undefined) this.fixBatch(B!);
  }

  /**
   * Changes the fixed batch size of a stateful model in place (weights and optimizer are kept, states
   * are reset to zeros): train at batch size 3, then predict one sequence at a time without building a
   * second model.
   *
   * @example
   * model.setBatchSize(1);
   * for (const seq of testSequences) { model.resetStates(); model.predict(seq); }
   */
  setBatchSize(batchSize: number): void {
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new ValueError(`setBatchSize batchSize: expected a positive integer, got ${fmtValue(batchSize)}`);
    }
    if (!this.stateful) {
      throw new StateError(`setBatchSize: the model is stateless and takes any batch size; setBatchSize is for stateful models`);
    }
    this.fixBatch(batchSize);
    if (this.built) for (const l of this.lstms) { this.allocState(l, batchSize); l.stateH!.fill(0); l.stateC!.fill(0); }
  }

  private fixBatch(B: number): void {
    this.fixedBatch = B;
    for (const l of this.lstms) if (l.stateful) l.batchSize = B;
  }

  private allocState(l: LSTM, B: number): void {
    const n = B * l.units;
    if (!l.stateH || l.stateH.length !== n) {
      l.stateH = allocate(this.dtype, n);
      l.stateC = allocate(this.dtype, n);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Input validation

  /** Validates x [B, T, F]; builds the model from F when needed; fixes a stateful batch size. */
  checkInput(name: string, x: unknown, features = this.inputDim): Input {
    let t: StridedArray;
    if (isTensor(x) && (x.data instanceof Float64Array || x.data instanceof Float32Array)) t = x as StridedArray;
    else t = toTensor(name, x, this.dtype);
    const F = features;
    if (t.shape.length !== 3) {
      throw new ShapeError(`${name}: expected rank 3 [batch, timesteps, features]${F !== undefined ? ` = [B, T, ${F}]` : ""}, got rank ${t.shape.length} with shape ${fmtShape(t.shape)}`);
    }
    const [B, T, f] = t.shape as [number, number, number];
    if (B === 0) throw new ShapeError(`${name}: empty batch: shape ${fmtShape(t.shape)}`);
    if (T === 0) throw new ShapeError(`${name}: no timesteps: shape ${fmtShape(t.shape)}`);
    if (F !== undefined && f !== F) {
      throw new ShapeError(`${name}: expected shape [B, T, F] = [${B}, ${T}, ${F}], got ${fmtShape(t.shape)}: features (dimension 2) is ${f}, expected ${F}`);
    }
    assertFiniteIn(name, t);
    return { t, B, T, F: f };
  }

  /** @internal Builds the model for F input features once a call's every check has passed. */
  buildFor(F: number): void {
    if (!this.built) this.build(F);
  }

  /** Validates labels against the input and the head: [B, D], or [B, T, D] for a per-step head. */
  checkLabels(name: string, y: unknown, B: number, T: number): StridedArray {
    let t: StridedArray;
    if (isTensor(y) && (y.data instanceof Float64Array || y.data instanceof Float32Array)) t = y as StridedArray;
    else t = toTensor(name, y, this.dtype);
    const D = this.outputDim;
    const expected = this.perStep ? [B, T, D] : [B, D];
    const dims = this.perStep ? "[batch, timesteps, units]" : "[batch, units]";
    if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
      const hint = this.perStep ? " (the top LSTM returns sequences, so labels are per step)" : "";
      throw new ShapeError(`${name}: expected shape ${dims} = ${fmtShape(expected)}${hint}, got ${fmtShape(t.shape)}`);
    }
    if (this.loss === "binaryCrossentropy") assertFiniteIn(name, t, 0, 1, "binaryCrossentropy expects labels in [0, 1]");
    else assertFiniteIn(name, t);
    return t;
  }

  /** @internal The batch size a call must use: the fixed one of a stateful model, fixing it at the first call. */
  checkStatefulBatch(name: string, B: number): void {
    if (!this.stateful) return;
    if (this.fixedBatch === undefined) this.fixBatch(B);
    else if (B !== this.fixedBatch) {
      throw new ShapeError(
        `${name}: this stateful model has a fixed batch size of ${this.fixedBatch} (row r continues row r of the last call), got a batch of ${B}; ` +
        `use batches of ${this.fixedBatch}, or call model.setBatchSize(${B}) to change it (states are reset)`,
      );
    }
  }

  private requireCompiled(what: string): void {
    if (!this.optimizer || !this.loss) {
      throw new StateError(`${what}: the model is not compiled; call model.compile({ optimizer, loss }) first`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The engine: internal, shared by the public calls and the truncated-BPTT unroller.

  /** @internal Makes sure every buffer fits B rows and `cap` steps. */
  ensure(B: number, cap: number): void {
    this.engineUses++;
    if (B === this.engB && cap <= this.engCap) return;
    cap = B === this.engB ? Math.max(cap, this.engCap) : cap;
    const F = this.inputDim!;
    if (this.xs.length < cap * B * F) this.xs = allocate(this.dtype, cap * B * F);
    for (const l of this.lstms) l.workspace(this.dtype, B, cap);
    this.engB = B;
    this.engCap = cap;
  }

  /**
   * @internal Copies n steps of x (starting at step tx) for B rows into the time-major input buffer at
   * slot t0. `rows`, when given, maps batch row b to sample rows[rowStart + b] (fit's shuffled batches).
   */
  loadInput(x: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number, t0: number): void {
    gatherSteps(x, rows, rowStart, B, tx, n, this.xs, t0 * B * this.inputDim!);
  }

  /**
   * @internal Loads the labels of the head rows: [B, D] for a last-step head, or steps [tx, tx + n) of
   * [B, T, D] for a per-step head (time-major rows, like the head's).
   */
  loadLabels(y: StridedArray, rows: Int32Array | null, rowStart: number, B: number, tx: number, n: number): number {
    const D = this.outputDim;
    const M = this.perStep ? n * B : B;
    if (this.ys.length < M * D) this.ys = allocate(this.dtype, M * D);
    if (this.perStep) gatherSteps(y, rows, rowStart, B, tx, n, this.ys, 0);
    else gatherRows(y, rows, rowStart, B, this.ys, 0);
    return M;
  }

  /** @internal Loads n label values already laid out like the head's rows (time-major per-step labels). */
  setLabels(src: FloatArray, n: number): void {
    if (this.ys.length < n) this.ys = allocate(this.dtype, n);
    for (let k = 0; k < n; k++) this.ys[k] = src[k]!;
  }

  /**
   * @internal Writes each LSTM's initial state into slot t0: the carried state for stateful layers (when
   * `carried`), zeros otherwise, or the explicit `states` (B·H arrays per layer) when given.
   */
  setInitialState(t0: number, carried: boolean, states?: { h: FloatArray; c: FloatArray }[]): void {
    const B = this.engB;
    this.lstms.forEach((l, i) => {
      const ws = l.ws!, n = B * l.units, off = t0 * n;
      if (states) {
        ws.hs.set(states[i]!.h, off);
        ws.cs.set(states[i]!.c, off);
      } else if (carried && l.stateful && l.stateH && l.stateH.length === n) {
        ws.hs.set(l.stateH, off);
        ws.cs.set(l.stateC!, off);
      } else {
        ws.hs.fill(0, off, off + n);
        ws.cs.fill(0, off, off + n);
      }
    });
  }

  /**
   * @internal Moves `keep` steps of history, starting at step `drop`, to the front of every buffer
   * (input, h, c, gates, tanh c), so that the truncated-BPTT unroller can append the next window after
   * them. Slot `drop + keep` (the state after the last kept step) becomes slot `keep`.
   */
  shiftHistory(drop: number, keep: number): void {
    if (drop === 0) return;
    const B = this.engB, F = this.inputDim!;
    this.xs.copyWithin(0, drop * B * F, (drop + keep) * B * F);
    for (const l of this.lstms) {
      const ws = l.ws!, BH = B * l.units, BG = 4 * BH;
      ws.hs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
      ws.cs.copyWithin(0, drop * BH, (drop + keep + 1) * BH);
      ws.gates.copyWithin(0, drop * BG, (drop + keep) * BG);
      ws.tanhC.copyWithin(0, drop * BH, (drop + keep) * BH);
    }
  }

  /** @internal Copies every layer's (h, c) at slot `from` to slot `to`. */
  copyState(from: number, to: number): void {
    const B = this.engB;
    for (const l of this.lstms) {
      const n = B * l.units, ws = l.ws!;
      ws.hs.copyWithin(to * n, from * n, (from + 1) * n);
      ws.cs.copyWithin(to * n, from * n, (from + 1) * n);
    }
  }

  /** @internal Keeps the state at slot t as every layer's last state (the carried one when stateful). */
  commitState(t: number): void {
    const B = this.engB;
    for (const l of this.lstms) {
      const n = B * l.units;
      this.allocState(l, B);
      l.stateH!.set(l.ws!.hs.subarray(t * n, (t + 1) * n));
      l.stateC!.set(l.ws!.cs.subarray(t * n, (t + 1) * n));
    }
  }

  /** @internal Forward through every LSTM over steps [t0, t1), then the head on steps [ta, t1) (per step) or t1 - 1. */
  forward(t0: number, t1: number, ta: number): number {
    const B = this.engB;
    let xs = this.xs, xOff = 0;
    for (const l of this.lstms) {
      lstmForward(l, l.ws!, xs, xOff, t0, t1);
      xs = l.ws!.hs;
      xOff = B * l.units; // the layer above reads h_t from slot t + 1
    }
    return this.headForward(ta, t1);
  }

  /** The head's rows: all steps [ta, t1) of the top LSTM (per step) or its last step t1 - 1. */
  private headInput(ta: number, t1: number): { M: number; off: number } {
    const B = this.engB, top = this.lstms[this.lstms.length - 1]!, BH = B * top.units;
    return this.perStep ? { M: (t1 - ta) * B, off: (ta + 1) * BH } : { M: B, off: t1 * BH };
  }

  private headForward(ta: number, t1: number): number {
    const top = this.lstms[this.lstms.length - 1]!;
    const { M, off } = this.headInput(ta, t1);
    let x = top.ws!.hs, xOff = off, ld = top.units;
    for (const d of this.denses) {
      const ws = d.workspace(this.dtype, M);
      denseForward(d, ws, M, x, xOff, ld);
      x = ws.out; xOff = 0; ld = d.units;
    }
    return M;
  }

  /** @internal The loss of the head rows against the loaded labels; with `grad`, also dL/d(head output) in place. */
  lossOf(M: number, grad: boolean): number {
    const head = this.denses[this.denses.length - 1]!, ws = head.ws!;
    const N = M * head.units;
    if (this.loss === "meanSquaredError") return meanSquaredError(N, ws.out, this.ys, grad ? ws.dOut : null);
    if (head.activation === "sigmoid") return bceFromLogits(N, ws.logits, ws.out, this.ys, grad ? ws.dOut : null);
    return bceFromProbs(N, ws.out, this.ys, grad ? ws.dOut : null);
  }

  /** @internal Binary accuracy of the head rows against the loaded labels. */
  accuracyOf(M: number): number {
    const head = this.denses[this.denses.length - 1]!;
    return binaryAccuracy(M * head.units, head.ws!.out, this.ys);
  }

  /**
   * @internal Backward from the head (whose dOut the loss has filled) through every LSTM over steps
   * [tb, t1). Gradients accumulate into `grads`; the caller zeroes them.
   */
  backward(tb: number, t1: number, ta: number, dhNorms: Float64Array[] | null = null): void {
    const B = this.engB;
    const top = this.lstms[this.lstms.length - 1]!;
    const { M, off } = this.headInput(ta, t1);
    const fused = this.loss === "binaryCrossentropy" && this.denses[this.denses.length - 1]!.activation === "sigmoid";
    for (let k = this.denses.length - 1; k >= 0; k--) {
      const d = this.denses[k]!, ws = d.ws!;
      const below = k > 0 ? this.denses[k - 1]!.ws! : null;
      if (below) denseBackward(d, ws, M, below.out, 0, this.denses[k - 1]!.units, fused && k === this.denses.length - 1);
      else denseBackward(d, ws, M, top.ws!.hs, off, top.units, fused && k === this.denses.length - 1);
      if (below) below.dOut.set(ws.dIn.subarray(0, M * this.denses[k - 1]!.units));
    }
    const dHead = this.denses[0]!.ws!.dIn;
    for (let i = this.lstms.length - 1; i >= 0; i--) {
      const l = this.lstms[i]!, ws = l.ws!;
      const xs = i === 0 ? this.xs : this.lstms[i - 1]!.ws!.hs;
      const xOff = i === 0 ? 0 : B * this.lstms[i - 1]!.units;
      const norms = dhNorms ? dhNorms[i]! : null;
      if (i === this.lstms.length - 1) {
        if (this.perStep) lstmBackward(l, ws, xs, xOff, tb, t1, dHead, 0, ta, null, 0, null, 0, norms);
        else lstmBackward(l, ws, xs, xOff, tb, t1, null, 0, 0, dHead, 0, null, 0, norms);
      } else {
        const up = this.lstms[i + 1]!.ws!;
        lstmBackward(l, ws, xs, xOff, tb, t1, up.dxs, 0, 0, null, 0, null, 0, norms);
      }
    }
  }

  /** h_0 … h_{T-1} of one LSTM as a batch-major [B, T, H] tensor. */
  private hiddenSequence(l: LSTM, B: number, T: number): Tensor {
    const H = l.units, out = allocate(this.dtype, B * T * H);
    timeToBatchMajor(T, B, H, l.ws!.hs, B * H, out, 0); // slot t + 1 holds h_t
    return fromData(out, [B, T, H]);
  }

  /** @internal The head output rows as a public tensor: [B, D], or [B, n, D] from time-major rows. */
  headOutput(B: number, n: number): Tensor {
    const head = this.denses[this.denses.length - 1]!, D = head.units, out = head.ws!.out;
    if (!this.perStep) return fromData(out.slice(0, B * D), [B, D]);
    const res = allocate(this.dtype, B * n * D);
    timeToBatchMajor(n, B, D, out, 0, res, 0);
    return fromData(res, [B, n, D]);
  }

  /**
   * @internal Applies the optimizer atomically: if the loss, a gradient or a new weight is not finite,
   * everything is restored and false is returned (or NonFiniteError thrown).
   */
  applyUpdate(loss: number, what: string): boolean {
    const opt = this.optimizer!;
    const grads = this.grads, params = this.params;
    let bad = !Number.isFinite(loss) ? "loss" : "";
    if (!bad) {
      let s = 0;
      for (let k = 0; k < grads.length; k++) s += grads[k]! * 0;
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
  // Public calls

  /**
   * The loss, every gradient, dL/dx and dL/d(initial state), without changing the weights. On a stateful
   * model the pass starts from the carried state and leaves the final state behind, as every pass does.
   *
   * @example
   * const { loss, grads, inputGrad, stateGrads, hiddenGradNorms } = model.computeGradients(x, y, { hiddenGradNorms: true });
   */
  computeGradients(x: TensorLike, y: TensorLike, options: { hiddenGradNorms?: boolean } = {}): Gradients {
    if (typeof options !== "object" || options === null) throw new ValueError(`computeGradients options: expected an object, got ${fmtValue(options)}`);
    if (options.hiddenGradNorms !== undefined && typeof options.hiddenGradNorms !== "boolean") {
      throw new ValueError(`computeGradients hiddenGradNorms: expected true or false, got ${fmtValue(options.hiddenGradNorms)}`);
    }
    const { xt, yt, B, T } = this.checkBatch("computeGradients", x, y);
    const par = this.parallel?.computeGradients(xt, yt, B, T, options);
    if (par) return par;
    const M = this.forwardRows(xt, yt, null, 0, B, T);
    const loss = this.lossOf(M, true);
    this.grads.fill(0);
    const norms = options.hiddenGradNorms ? this.lstms.map(() => new Float64Array(T)) : null;
    this.backward(0, T, 0, norms);
    this.commitState(T);
    const grads = this.splitFlat(this.grads);
    const F = this.inputDim!;
    const dx = allocate(this.dtype, B * T * F);
    timeToBatchMajor(T, B, F, this.lstms[0]!.ws!.dxs, 0, dx, 0);
    const res: Gradients = {
      loss, grads, outputs: this.headOutput(B, T), inputGrad: fromData(dx, [B, T, F]),
      hiddenStates: this.lstms.map((l) => this.hiddenSequence(l, B, T)),
      stateGrads: this.lstms.map((l) => ({
        h: fromData(l.ws!.dh.slice(0, B * l.units), [B, l.units]),
        c: fromData(l.ws!.dc.slice(0, B * l.units), [B, l.units]),
      })),
    };
    if (norms) res.hiddenGradNorms = norms.map((a) => Array.from(a));
    return res;
  }

  /**
   * One optimizer step on one batch; returns the loss (and accuracy) computed before the update, as Keras.
   *
   * @example
   * const { loss, accuracy } = model.trainOnBatch(x, y);
   */
  trainOnBatch(x: TensorLike, y: TensorLike): StepResult {
    const { xt, yt, B, T } = this.checkBatch("trainOnBatch", x, y);
    return this.trainRows(xt, yt, null, 0, B, T);
  }

  /** Validates one batch (x, labels, a stateful model's batch size) for `what`. */
  private checkBatch(what: string, x: unknown, y: unknown): { xt: StridedArray; yt: StridedArray; B: number; T: number } {
    this.requireCompiled(what);
    const { t: xt, B, T, F } = this.checkInput(`${what} x`, x);
    const yt = this.checkLabels(`${what} y`, y, B, T);
    // Only once every check has passed: a failed call must neither build the model nor fix the batch size.
    this.buildFor(F);
    this.checkStatefulBatch(`${what} x`, B);
    return { xt, yt, B, T };
  }

  /** Forward over B rows (through the row map, if any) from the carried or zero state, labels loaded; returns the head's row count. */
  private forwardRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): number {
    this.ensure(B, T);
    this.loadInput(xt, rows, rowStart, B, 0, T, 0);
    this.setInitialState(0, true);
    const M = this.forward(0, T, 0);
    this.loadLabels(yt, rows, rowStart, B, 0, T);
    return M;
  }

  /** @internal One step on B rows (optionally through a row map), no validation. */
  trainRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    const par = this.parallel?.trainRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T);
    const loss = this.lossOf(M, true);
    const res: StepResult = { loss };
    if (this.metrics.includes("accuracy")) res.accuracy = this.accuracyOf(M);
    this.grads.fill(0);
    this.backward(0, T, 0);
    if (this.applyUpdate(loss, "trainOnBatch")) this.commitState(T);
    return res;
  }

  /**
   * The loss (and accuracy) on one batch, without updating weights. A stateful model carries its state.
   *
   * @example
   * const { loss, accuracy } = model.testOnBatch(x, y);
   */
  testOnBatch(x: TensorLike, y: TensorLike): StepResult {
    const { xt, yt, B, T } = this.checkBatch("testOnBatch", x, y);
    return this.testRows(xt, yt, null, 0, B, T);
  }

  private testRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    const par = this.parallel?.testRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T);
    const res: StepResult = { loss: this.lossOf(M, false) };
    if (this.metrics.includes("accuracy")) res.accuracy = this.accuracyOf(M);
    this.commitState(T);
    return res;
  }

  /**
   * The head's output for x [N, T, F]: [N, D], or [N, T, D] when the top LSTM returns sequences.
   * Runs in batches of `batchSize` (default: the stateful batch size, or all of x); a stateful model
   * carries state from batch to batch, row by row.
   *
   * @example
   * const p = model.predict(xTest);                    // [N, 1] probabilities
   */
  predict(x: TensorLike, options: { batchSize?: number } = {}): Tensor {
    const { t: xt, B: N, T, F } = this.checkInput("predict x", x);
    const bs = this.batchOption("predict", options, N);
    this.buildFor(F);
    const D = this.outputDim;
    const out = allocate(this.dtype, N * (this.perStep ? T : 1) * D);
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      this.checkStatefulBatch(`predict x (rows ${start}…${start + B - 1})`, B);
      if (this.parallel?.predictRows(xt, start, B, T, out)) continue;
      this.ensure(B, T);
      this.loadInput(xt, null, start, B, 0, T, 0);
      this.setInitialState(0, true);
      this.forward(0, T, 0);
      this.commitState(T);
      const part = this.headOutput(B, T);
      out.set(part.data, start * (this.perStep ? T : 1) * D);
    }
    return fromData(out, this.perStep ? [N, T, D] : [N, D]);
  }

  private batchOption(what: string, options: { batchSize?: number }, N: number): number {
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`${what} options: expected an object, got ${fmtValue(options)}`);
    }
    const bs = options.batchSize ?? this.fixedBatch ?? (what === "fit" ? 32 : N);
    if (!Number.isInteger(bs) || bs <= 0) {
      throw new ValueError(`${what} batchSize: expected a positive integer, got ${fmtValue(bs)}`);
    }
    if (this.stateful) {
      if (this.fixedBatch !== undefined && bs !== this.fixedBatch) {
        throw new ValueError(`${what} batchSize: this stateful model has a fixed batch size of ${this.fixedBatch}, got ${bs}; call model.setBatchSize(${bs}) to change it`);
      }
      if (N % bs !== 0) {
        throw new ShapeError(`${what} x: a stateful model needs a sample count divisible by the batch size ${bs}, got ${N} samples`);
      }
    }
    return bs;
  }

  /**
   * The mean loss (and accuracy) over x, y in batches, weighted by batch size.
   *
   * @example
   * const { loss, accuracy } = model.evaluate(xTest, yTest, { batchSize: 32 });
   */
  evaluate(x: TensorLike, y: TensorLike, options: { batchSize?: number } = {}): StepResult {
    this.requireCompiled("evaluate");
    const { t: xt, B: N, T, F } = this.checkInput("evaluate x", x);
    const yt = this.checkLabels("evaluate y", y, N, T);
    const bs = this.batchOption("evaluate", options, N);
    this.buildFor(F);
    this.checkStatefulBatch("evaluate x", bs);
    return this.evaluateRows(xt, yt, N, T, bs);
  }

  /** The batch-size-weighted mean loss (and accuracy) over N validated samples. */
  private evaluateRows(xt: StridedArray, yt: StridedArray, N: number, T: number, bs: number): StepResult {
    let loss = 0, acc = 0;
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      const r = this.testRows(xt, yt, null, start, B, T);
      loss += r.loss * B;
      acc += (r.accuracy ?? 0) * B;
    }
    const res: StepResult = { loss: loss / N };
    if (this.metrics.includes("accuracy")) res.accuracy = acc / N;
    return res;
  }

  /**
   * Trains for `epochs` over mini-batches, Keras-style, and returns the History.
   *
   * @example
   * const h = await model.fit(x, y, { epochs: 5, batchSize: 11, validationData: [xTest, yTest], verbose: 0 });
   * h.history.loss; h.history.valAccuracy;
   */
  async fit(x: TensorLike, y: TensorLike, options: FitOptions = {}): Promise<History> {
    this.requireCompiled("fit");
    const { t: xt, B: N, T, F } = this.checkInput("fit x", x);
    const yt = this.checkLabels("fit y", y, N, T);
    const bs = this.batchOption("fit", options, N);
    const epochs = options.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 0) throw new ValueError(`fit epochs: expected a non-negative integer, got ${fmtValue(epochs)}`);
    const shuffle = options.shuffle ?? !this.stateful;
    if (typeof shuffle !== "boolean") throw new ValueError(`fit shuffle: expected true or false, got ${fmtValue(shuffle)}`);
    const verbose = options.verbose ?? 1;
    if (verbose !== 0 && verbose !== 1) throw new ValueError(`fit verbose: expected 0 or 1, got ${fmtValue(verbose)}`);
    const callbacks = options.callbacks ?? [];
    if (!Array.isArray(callbacks)) throw new ValueError(`fit callbacks: expected an array, got ${fmtValue(callbacks)}`);
    callbacks.forEach((cb, i) => {
      if (typeof cb !== "object" || cb === null) throw new ValueError(`fit callbacks[${i}]: expected an object with hooks (onEpochEnd, …), got ${fmtValue(cb)}`);
      for (const k of ["onTrainBegin", "onTrainEnd", "onEpochBegin", "onEpochEnd", "onBatchBegin", "onBatchEnd"] as const) {
        if (cb[k] !== undefined && typeof cb[k] !== "function") throw new ValueError(`fit callbacks[${i}].${k}: expected a function, got ${fmtValue(cb[k])}`);
      }
    });
    let val: { x: StridedArray; y: StridedArray; N: number; T: number } | null = null;
    if (options.validationData !== undefined) {
      const vd = options.validationData;
      if (!Array.isArray(vd) || vd.length !== 2) throw new ValueError(`fit validationData: expected [x, y], got ${fmtValue(vd)}`);
      const vi = this.checkInput("fit validationData[0]", vd[0], F);
      val = { x: vi.t, y: this.checkLabels("fit validationData[1]", vd[1], vi.B, vi.T), N: vi.B, T: vi.T };
      if (this.stateful && val.N % bs !== 0) {
        throw new ShapeError(`fit validationData[0]: a stateful model needs a sample count divisible by the batch size ${bs}, got ${val.N}`);
      }
    }
    this.buildFor(F);
    if (this.stateful) this.checkStatefulBatch("fit x", bs);
    // A stateful model validates from zero states, and training then carries on from where it was.
    const saved = val && this.stateful ? this.lstms.map((l) => ({ h: allocate(this.dtype, bs * l.units), c: allocate(this.dtype, bs * l.units) })) : null;
    const history = new History();
    const progress = verbose ? new ProgressBar(epochs, Math.ceil(N / bs), this.metrics.includes("accuracy")) : null;
    const order = new Int32Array(N);
    for (let i = 0; i < N; i++) order[i] = i;
    this.stopTraining = false;
    for (const cb of callbacks) await cb.onTrainBegin?.({}, this);
    for (let epoch = 0; epoch < epochs && !this.stopTraining; epoch++) {
      for (const cb of callbacks) await cb.onEpochBegin?.(epoch, {}, this);
      if (shuffle) {
        // A fresh permutation each epoch (as Keras), so it depends only on the RNG's position and a run
        // resumed from a checkpoint shuffles exactly as the uninterrupted one.
        for (let i = 0; i < N; i++) order[i] = i;
        for (let i = N - 1; i > 0; i--) {
          const j = this.shuffleRng.int(i + 1);
          const tmp = order[i]!; order[i] = order[j]!; order[j] = tmp;
        }
      }
      progress?.startEpoch(epoch);
      let lossSum = 0, accSum = 0, seen = 0, batch = 0;
      for (let start = 0; start < N; start += bs, batch++) {
        const B = Math.min(bs, N - start);
        for (const cb of callbacks) await cb.onBatchBegin?.(batch, { size: B }, this);
        const r = this.trainRows(xt, yt, order, start, B, T);
        lossSum += r.loss * B; accSum += (r.accuracy ?? 0) * B; seen += B;
        const logs: Logs = { loss: r.loss, size: B };
        if (r.accuracy !== undefined) logs.accuracy = r.accuracy;
        for (const cb of callbacks) await cb.onBatchEnd?.(batch, logs, this);
        progress?.batch(batch + 1, lossSum / seen, accSum / seen);
      }
      const logs: Logs = { loss: lossSum / seen };
      if (this.metrics.includes("accuracy")) logs.accuracy = accSum / seen;
      if (val) {
        if (saved) {
          this.lstms.forEach((l, i) => { this.allocState(l, bs); saved[i]!.h.set(l.stateH!); saved[i]!.c.set(l.stateC!); });
          this.resetStates();
        }
        const r = this.evaluateRows(val.x, val.y, val.N, val.T, bs);
        if (saved) this.lstms.forEach((l, i) => { l.stateH!.set(saved[i]!.h); l.stateC!.set(saved[i]!.c); });
        logs.valLoss = r.loss;
        if (r.accuracy !== undefined) logs.valAccuracy = r.accuracy;
      }
      history.record(epoch, logs);
      progress?.endEpoch(logs);
      for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, this);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    for (const cb of callbacks) await cb.onTrainEnd?.({}, this);
    return history;
  }

  // ---------------------------------------------------------------------------------------------
  // Checkpoints (src/io.ts): configuration, weights, optimizer state, LSTM states and the shuffling
  // RNG's position, stored losslessly; a resumed run matches an uninterrupted one bit for bit.

  /**
   * Writes a checkpoint atomically (temporary file, fsync, rename): a crash mid-write leaves the previous
   * file intact. Resolves once the file is durable; the snapshot is taken when called.
   *
   * @example
   * await model.save("runs/epoch-5.ckpt");
   */
  save(path: string): Promise<void> {
    return saveCheckpoint(this, path);
  }

  /**
   * Reads a checkpoint written by `save`; throws CheckpointError if it is truncated, corrupted or from a
   * newer format version.
   *
   * @example
   * const model = await Sequential.load("runs/epoch-5.ckpt");
   * await model.fit(x, y, { epochs: 5 });                     // continues exactly where the run stopped
   */
  static load(path: string): Promise<Sequential> {
    return loadCheckpoint(path);
  }

  /** The checkpoint as plain JSON (so `JSON.stringify(model)` works); arrays are base64 of their bytes. */
  toJSON(): CheckpointJSON {
    return checkpointToJSON(this);
  }

  /**
   * Rebuilds a model from `toJSON()`'s object, validating every field (CheckpointError names a bad one).
   *
   * @example
   * const copy = Sequential.fromJSON(JSON.parse(JSON.stringify(model)));
   */
  static fromJSON(json: unknown): Sequential {
    return checkpointFromJSON(json);
  }

  // ---------------------------------------------------------------------------------------------
  // Threads (src/parallel): a large call's batch split across cores, with one thread's results.

  /** @internal The worker pool when more than one thread is set (see parallel/engine.ts). */
  parallel: ParallelEngine | null = null;

  /**
   * Splits each large call (trainOnBatch, fit, computeGradients, testOnBatch, evaluate, predict) across
   * `threads` threads: this one plus worker threads, each taking a slice of the batch. Results equal one
   * thread's to rounding (the gradients of the slices are summed weighted by their share of the batch).
   * Calls estimated below `minFlops` stay on this thread. Workers start at the first large call and never
   * keep the process alive; `dispose()` stops them. `setThreads(1)` goes back to one thread. If a worker
   * fails mid-call, the call throws a StateError, nothing of it is applied, and the next call starts new
   * workers.
   *
   * @example
   * model.setThreads(2);                        // or new Sequential(layers, { threads: 2 })
   * model.trainOnBatch(x, y);                   // a 64-row batch: 32 rows here, 32 in a worker
   * model.dispose();                            // stop the workers when done
   */
  setThreads(threads: number | "auto", options: ThreadOptions = {}): void {
    const next = createParallel(this, threads, options); // validates before anything changes
    this.parallel?.dispose();
    this.parallel = next;
  }

  /** The number of threads a large call uses: 1 unless setThreads (or the `threads` option) asked for more. */
  get threads(): number {
    return this.parallel?.threads ?? 1;
  }

  /**
   * Stops this model's worker threads now. Call it when you are done with a model that has `threads` > 1:
   * each idle worker holds a thread and a copy of the engine's buffers until then. A model dropped without
   * `dispose()` has its workers stopped only when it is garbage-collected, at a time of the collector's
   * choosing. The model stays usable: the thread setting is kept, and a later large call starts new workers.
   *
   * @example
   * const model = new Sequential(layers, { threads: 2 });
   * await model.fit(x, y, { epochs: 10, batchSize: 64, verbose: 0 });
   * model.dispose();
   */
  dispose(): void {
    this.parallel?.dispose();
  }
}


export { Adam, SGD };
