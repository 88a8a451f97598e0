/**
 * Sequential: the Keras-style facade. Every public method checks its arguments (validate.ts), then hands
 * the engine (engine.ts) checked data; `fit` runs the training loop of fit.ts. Nothing here computes.
 *
 * Any stack whose flows fit (layers/layer.ts): LSTMs (stacked when the lower one returns sequences), Dense
 * layers on vectors or on every step of a sequence, before, between or after them, ending on either; a Masking
 * layer may come first. Sequences are batch-major [B, T, F] on this surface, as in Keras.
 *
 * Legend: B batch, T timesteps, F input features, H units, D head units.
 */
import {
  type DType, type Tensor, type TensorLike, DEFAULT_DTYPE, allocate, checkDType, fromData, toTensor, assertFinite,
} from "./tensor/tensor.js";
import { LSTM } from "./layers/lstm.js";
import { GRU } from "./layers/gru.js";
import { Bidirectional } from "./layers/bidirectional.js";
import { Dense } from "./layers/dense.js";
import { Masking } from "./layers/masking.js";
import { Embedding } from "./layers/embedding.js";
import { type LossName, type LossAlias, type MetricName, checkMetrics, lossOption } from "./losses.js";
import type { Optimizer, OptimizerName } from "./optimizers.js";
import { OPTIMIZER_CLASSES, resolveOptimizer } from "./optimizers-extra.js";
import { Engine, planFlows, type Layer, type Gradients, type GradientRequest, type StateSet, type StepResult } from "./engine.js";
import type { LSTMState, RecurrentState, StatesLike } from "./engine-api.js";
export type { LSTMState, RecurrentState, StatesLike };
import {
  batchOption, buildFor, checkBatch, checkInput, checkLabels, checkStatefulBatch, checkStates, requireBuilt, requireCompiled,
} from "./validate.js";
import { type CallbackHooks, type History, HOOKS } from "./callbacks.js";
import { fitLoop } from "./fit.js";
import { withArena } from "./wasm/arena.js";
import { progressSink } from "./progress.js";
import { getStatesOf, resetStatesOf, setBatchSizeOf } from "./model-states.js";
import { type SummaryOptions, summaryLines } from "./summary.js";
import { type CheckpointJSON, engineToJSON } from "./checkpoint-json.js";
import { ShapeError, ValueError, checkKeys, fmtShape, fmtValue, fmtInstance, toSize } from "./errors.js";
import { type RunOptions, checkRunOptions } from "./run-options.js";

export type { Layer, Gradients, GradientRequest, StepResult };

export { type RunOptions, checkRunOptions } from "./run-options.js";

export interface SequentialOptions extends RunOptions {
  /**
   * "float64" (default: PyTorch's float64 to ~1e-12) or "float32" (on the SIMD backend a training step takes about
   * half float64's time from S2 up, 6.3 against 11.3 ms at S2: README, Performance).
   */
  dtype?: DType;
  /** Seed for initialisation and shuffling. Default: a random seed, readable afterwards as `model.seed`. */
  seed?: number | string;
}

export interface CompileOptions {
  /** "adam" (default), "sgd", "rmsprop", "adamw" (default settings), or an Adam, SGD, RMSprop or AdamW. */
  optimizer?: Optimizer | OptimizerName;
  /**
   * "binaryCrossentropy", "meanSquaredError", "meanAbsoluteError", "huber" (delta 1), "categoricalCrossentropy" or
   * "sparseCategoricalCrossentropy" (the last two need a softmax head), or one of Keras's names for them
   * ("binary_crossentropy", "mse", "mae", …); `{ name: "huber", delta }` for another delta (Keras's `Huber(delta)`).
   */
  loss: LossName | LossAlias | { name: "huber"; delta?: number };
  /** "accuracy", "mae", "mse" (Keras's names; "mean_absolute_error", "mean_squared_error" too): reported with the loss. */
  metrics?: (MetricName | "mean_absolute_error" | "mean_squared_error")[];
  /** What a training step does when its loss, gradients or new weights are not finite: "throw" (default)
   * raises NonFiniteError, "skip" returns the non-finite loss and leaves everything unchanged. Both leave
   * weights, optimizer and LSTM state exactly as they were. */
  onNonFinite?: "throw" | "skip";
}

/** What the passes take to start from given states (an encoder's final states starting a decoder, Keras's `initial_state`). */
export interface InitialStatesOption {
  /**
   * Per recurrent layer, bottom to top, the states the pass starts from, [B, H] each, with one row per row of x:
   * { h, c } for an LSTM, { h } for a GRU (instead of zeros, or a stateful model's carried state, which the pass
   * then replaces as usual).
   */
  initialStates?: StatesLike[];
}

/** Checked initial states and each layer's units. */
interface StateRows {
  states: StateSet[];
  units: number[];
}

/** The options of trainOnBatch and testOnBatch. */
const STEP_OPTIONS: readonly string[] = ["initialStates"];

/**
 * Hooks `fit` calls (and awaits) at each stage; every one is optional and gets the model last.
 *
 * @example
 * const logEpochs: Callback = { onEpochEnd(epoch, logs) { console.log(epoch, logs.loss, logs.valLoss); } };
 * await model.fit(x, y, { epochs: 5, validationData: [xv, yv], callbacks: [logEpochs] });
 */
export interface Callback extends CallbackHooks<Sequential> {}

export interface FitOptions {
  epochs?: number;
  batchSize?: number;
  /** Shuffle the samples every epoch (seeded by the model's seed). Default true, false for stateful models. */
  shuffle?: boolean;
  validationData?: [TensorLike, TensorLike];
  callbacks?: Callback[];
  /**
   * 0 silent; 1 (default) progress: one line per epoch through `log` when given, else on the terminal
   * when there is one (`longshort/node` registers process.stdout: a live bar on a TTY), else nothing.
   */
  verbose?: 0 | 1;
  /** Where `verbose: 1` sends its one line per epoch, e.g. `console.log` or a function that updates a page. */
  log?: (line: string) => void;
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
  /** @internal The engine: weights, buffers, passes and states (engine.ts). */
  readonly engine: Engine;
  /** Set by a callback (early stopping) to end `fit` after the current epoch. */
  stopTraining = false;

  constructor(stack: (Masking | Layer)[], options: SequentialOptions = {}) {
    if (!Array.isArray(stack) || stack.length === 0) {
      throw new ValueError(`Sequential layers: expected a non-empty array of layers (LSTM, GRU, Bidirectional, Dense, Embedding, Masking), got ${fmtValue(stack)}`);
    }
    // A Masking layer may come first; the engine gets its value, the layers with weights get the rest.
    stack.forEach((l, i) => {
      if (l instanceof Masking && i > 0) throw new ValueError(`Sequential layers[${i}]: a Masking layer must be the first layer`);
    });
    const masking = stack[0] instanceof Masking ? stack[0] : null;
    if (masking && masking.owner !== null) throw new ValueError(`Sequential layers[0]: this Masking layer already belongs to another model; create a new one`);
    const layers = (masking ? stack.slice(1) : stack) as Layer[];
    const at = (i: number): number => i + (masking ? 1 : 0); // index in the array the user gave
    if (layers.length === 0) throw new ValueError(`Sequential layers: expected layers with weights (LSTM, GRU, Dense, Embedding) after the Masking layer`);
    layers.forEach((l, i) => {
      if (!(l instanceof LSTM) && !(l instanceof GRU) && !(l instanceof Bidirectional) && !(l instanceof Dense) && !(l instanceof Embedding)) {
        throw new ValueError(`Sequential layers[${at(i)}]: expected an LSTM, a GRU, a Bidirectional, a Dense or an Embedding, got ${fmtInstance(l, "LSTM", "GRU", "Bidirectional", "Dense", "Embedding", "Masking")}`);
      }
    });
    if (masking && layers[0] instanceof Embedding) {
      throw new ValueError(`Sequential layers[0]: a Masking layer cannot come before an Embedding, which reads ids; give the Embedding maskZero: true to make id 0 padding`);
    }
    // Which layer may follow which: each layer's own rule on what the layer below gives (a sequence or vectors).
    const flows = planFlows(layers);
    if (!Array.isArray(flows)) {
      const where = flows.at < 0 ? "Sequential layers" : `Sequential layers[${at(flows.at)}]`;
      throw new ValueError(`${where}: ${flows.why}; got [${stack.map((l) => l.kind).join(", ")}]`);
    }
    layers.forEach((l, i) => {
      if (l.owner instanceof Bidirectional) {
        throw new ValueError(`Sequential layers[${at(i)}]: this ${l.kind} layer is wrapped by a Bidirectional (which made its two directions from it); give the model the Bidirectional`);
      }
      if (l.owner !== null) {
        throw new ValueError(`Sequential layers[${at(i)}]: this ${l.kind} layer already belongs to another model (its weights live in that model's buffers); create a new layer and copy weights with setWeights`);
      }
      if (layers.indexOf(l) !== i) throw new ValueError(`Sequential layers[${at(i)}]: the same layer object appears twice`);
    });
    if (typeof options !== "object" || options === null) {
      throw new ValueError(`Sequential options: expected an object, got ${fmtValue(options)}`);
    }
    for (const k of ["threads", "threadsMinFlops"]) {
      if (k in options) {
        throw new ValueError(`Sequential ${k}: threads moved out of the portable core; in Node, import { setThreads } from "longshort/node" and call setThreads(model, n)`);
      }
    }
    checkKeys("Sequential", options, ["dtype", "seed", "backend", "fma"]);
    const dtype = checkDType("Sequential dtype", options.dtype ?? DEFAULT_DTYPE);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
    if ((typeof seed !== "number" || !Number.isFinite(seed)) && typeof seed !== "string") {
      throw new ValueError(`Sequential seed: expected a finite number or a string, got ${fmtValue(seed)}`);
    }
    const stateful = layers.filter((l): l is LSTM | GRU | Bidirectional => l.recurrent && l.stateful && l.batchSize !== undefined);
    const sizes = new Set(stateful.map((l) => l.batchSize));
    if (sizes.size > 1) {
      throw new ValueError(`Sequential: stateful recurrent layers disagree on batchSize: ${[...sizes].join(" vs ")}`);
    }
    const { backend, fma } = checkRunOptions("Sequential ", options.backend, options.fma);
    const engine = new Engine(layers, dtype, String(seed), masking ? masking.maskValue : null, backend, fma);
    if (fma && !engine.arena) {
      throw new ValueError("Sequential fma: the SIMD backend cannot run here (it needs SharedArrayBuffer and WebAssembly SIMD), so neither can fma");
    }
    const inputDim = engine.inputDim;
    if (inputDim !== undefined) engine.build(inputDim);
    this.engine = engine;
    this.masking = masking;
    for (const l of stack) l.owner = this; // only once every check has passed
  }

  /** "wasm" when the model's products and gate math run in WebAssembly SIMD, else "js" (see SequentialOptions.backend). */
  get backend(): "js" | "wasm" {
    return this.engine.arena ? "wasm" : "js";
  }

  /** True when the products fuse their multiply-adds (see SequentialOptions.fma). */
  get fma(): boolean {
    return this.engine.arena?.fused ?? false;
  }

  /** The Masking layer the model starts with, or null. */
  readonly masking: Masking | null;

  /** The layers with weights, bottom to top; a Masking layer is `masking`. */
  get layers(): readonly Layer[] {
    return this.engine.layers;
  }

  /** "float64" or "float32". */
  get dtype(): DType {
    return this.engine.dtype;
  }

  /** The seed behind initialisation and shuffling (a random one when none was given). */
  get seed(): string {
    return this.engine.seed;
  }

  /** The optimizer set by compile (its `iterations` counts the updates), or null before compile. */
  get optimizer(): Optimizer | null {
    return this.engine.optimizer;
  }

  /** The loss set by compile, or null before compile. */
  get loss(): LossName | null {
    return this.engine.loss;
  }

  /** The Huber loss's delta (set by compile; 1 unless `loss: { name: "huber", delta }` said otherwise). */
  get huberDelta(): number {
    return this.engine.huberDelta;
  }

  /** The metrics set by compile. */
  get metrics(): readonly MetricName[] {
    return this.engine.metrics;
  }

  /** True when some LSTM layer is stateful. */
  get stateful(): boolean {
    return this.engine.stateful;
  }

  /** The fixed batch size of a stateful model (undefined until known). */
  get batchSize(): number | undefined {
    return this.engine.batchSize;
  }

  /** True when the output is a sequence ([B, T, D]: every LSTM returns sequences), so labels are per step. */
  get perStep(): boolean {
    return this.engine.perStep;
  }

  /** Input features, once known. */
  get inputDim(): number | undefined {
    return this.engine.inputDim;
  }

  /** Units of the head. */
  get outputDim(): number {
    return this.engine.outputDim;
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
    this.engine.build(Number.isInteger(inputDim) ? toSize(inputDim) : inputDim); // the engine refuses the rest
  }

  /**
   * Number of trainable parameters.
   *
   * @example
   * new Sequential([new LSTM({ units: 10, inputDim: 1 }), new Dense({ units: 1 })]).countParams(); // 491
   */
  countParams(): number {
    requireBuilt(this.engine, "countParams");
    return this.engine.params.length;
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
    checkKeys("compile", options, ["optimizer", "loss", "metrics", "onNonFinite"]);
    const e = this.engine;
    const optimizer = resolveOptimizer(options.optimizer ?? "adam");
    if (optimizer.owner !== null && optimizer.owner !== this) {
      throw new ValueError(`compile optimizer: this ${OPTIMIZER_CLASSES[optimizer.name]} instance already belongs to another model (its moments and step count are that model's); give each model its own optimizer`);
    }
    const { loss, delta } = lossOption(options.loss);
    const head = e.layers[e.layers.length - 1]!;
    if ((loss === "categoricalCrossentropy" || loss === "sparseCategoricalCrossentropy") && !(head instanceof Dense && head.activation === "softmax")) {
      const got = head instanceof Dense ? `activation ${JSON.stringify(head.activation)}` : `an ${head.kind.toUpperCase()} on top`;
      throw new ValueError(`compile loss: ${loss} compares class probabilities; the top layer must be new Dense({ units, activation: "softmax" }), got ${got}`);
    }
    if (head instanceof Dense && head.activation === "softmax" && head.units === 1) {
      // A softmax over one unit is 1 whatever its input: no loss can train it.
      throw new ValueError(
        `compile: the top layer is a Dense with units 1 and activation "softmax", whose output is always 1, so ${loss} cannot learn anything; ` +
        `for two classes use new Dense({ units: 1, activation: "sigmoid" }) with loss "binaryCrossentropy", or give the softmax units ≥ 2 (one per class)`,
      );
    }
    const metrics = checkMetrics("compile metrics", options.metrics ?? [], loss);
    const onNonFinite = options.onNonFinite ?? "throw";
    if (onNonFinite !== "throw" && onNonFinite !== "skip") {
      throw new ValueError(`compile onNonFinite: expected "throw" or "skip", got ${fmtValue(onNonFinite)}`);
    }
    if (e.optimizer && e.optimizer !== optimizer) e.optimizer.owner = null;
    optimizer.owner = this;
    e.optimizer = optimizer;
    e.loss = loss;
    e.huberDelta = delta;
    e.metrics = metrics.slice();
    e.onNonFinite = onNonFinite;
    if (e.built) withArena(e.arena, () => optimizer.init(e.params.length)); // its state beside the weights
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
    requireBuilt(this.engine, "getWeights");
    return this.engine.splitFlat(this.engine.params);
  }

  /**
   * Names of the weights in getWeights order.
   *
   * @example
   * model.weightNames();  // ["lstm_0/kernel", "lstm_0/recurrentKernel", "lstm_0/bias", "dense_0/kernel", "dense_0/bias"]
   */
  weightNames(): string[] {
    return this.engine.weightNames();
  }

  /**
   * Shapes in getWeights order.
   *
   * @example
   * model.weightShapes();  // [[1, 40], [10, 40], [40], [10, 1], [1]] for LSTM(10) on 1 feature, Dense(1)
   */
  weightShapes(): number[][] {
    requireBuilt(this.engine, "weightShapes");
    return this.engine.weightShapes();
  }

  /**
   * Copies weights in (same order and shapes as getWeights). Everything is validated before anything is
   * written, so a bad list leaves the model unchanged.
   *
   * @example
   * other.setWeights(model.getWeights());         // e.g. into a batch-size-1 copy, the Keras tutorial's way
   */
  setWeights(weights: TensorLike[]): void {
    const e = this.engine;
    requireBuilt(e, "setWeights");
    const shapes = e.weightShapes();
    const names = e.weightNames();
    if (!Array.isArray(weights) || weights.length !== shapes.length) {
      throw new ValueError(`setWeights weights: expected ${shapes.length} arrays (${names.join(", ")}), got ${Array.isArray(weights) ? weights.length : fmtValue(weights)}`);
    }
    const ts = weights.map((w, i) => {
      const t = toTensor(`setWeights weights[${i}] (${names[i]})`, w, e.dtype);
      if (t.shape.length !== shapes[i]!.length || t.shape.some((d, k) => d !== shapes[i]![k])) {
        throw new ShapeError(`setWeights weights[${i}] (${names[i]}): expected shape ${fmtShape(shapes[i]!)}, got ${fmtShape(t.shape)}`);
      }
      assertFinite(`setWeights weights[${i}] (${names[i]})`, t.data, t.shape);
      return t;
    });
    let off = 0;
    for (const t of ts) {
      e.params.set(t.data, off);
      off += t.data.length;
    }
  }

  /**
   * The states after the last forward pass (the carried state of stateful layers), per recurrent layer, each
   * [B, H]: { h, c } for an LSTM, { h } for a GRU. Before any pass, a stateful model with a fixed batch size gives
   * zeros of [B, H] (what its first call starts from), any other model [0, H].
   *
   * @example
   * const [{ h, c }] = model.getStates();
   */
  getStates(): RecurrentState[] {
    return getStatesOf(this.engine);
  }


  /**
   * Resets the recurrent layers' states.
   * - `resetStates()`: zeros for every row.
   * - `resetStates(states)`: the given states per recurrent layer, each [B, H]: `{ h, c }` for an LSTM, `{ h }` for a GRU
   *   (stateful models; a stateless model takes initial states per call, the `initialStates` option).
   * - `resetStates({ rows: [0, 2] })`: zeros for those batch rows only; the other rows keep their state.
   *
   * @example
   * model.resetStates();                       // new sequences in every row
   * model.resetStates({ rows: [1] });          // row 1 starts a new sequence, rows 0 and 2 continue
   */
  resetStates(states?: StatesLike[] | { rows: number[] }): void {
    resetStatesOf(this.engine, states);
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
  setBatchSize(size: number): void {
    setBatchSizeOf(this.engine, size);
  }


  // ---------------------------------------------------------------------------------------------
  // Passes

  /**
   * The loss, every gradient, dL/dx and dL/d(initial state), without changing the weights. On a stateful
   * model the pass starts from the carried state and leaves the final state behind, as every pass does,
   * unless `keepState: true` (then it only looks: two such calls give the same result).
   *
   * Options, for studying the gradient along the sequence (each false by default):
   * - `hiddenGradNorms`: per recurrent layer, ‖dL/dh_t‖ over the whole batch, one number per step;
   * - `gradNorms`: per recurrent layer, every sample's ‖dL/dh_t‖ and (an LSTM's) ‖dL/dc_t‖, [B, T] each;
   * - `hiddenGrads`: per recurrent layer, dL/dh_t itself, [B, T, H];
   * - `keepState`: leave a stateful model's carried state as it was;
   * - `training`: a training pass, with dropout (masks drawn for this call) where the layers have it.
   * With `gradNorms`, `hiddenGrads`, `keepState` or `training` the pass runs on the calling thread.
   *
   * @example
   * const { loss, grads, inputGrad, stateGrads, hiddenGradNorms } = model.computeGradients(x, y, { hiddenGradNorms: true });
   * const { gradNorms } = model.computeGradients(x, y, { gradNorms: true, keepState: true });
   * gradNorms[0].h;   // [B, T]: how far back each sample's gradient reaches, step by step
   */
  computeGradients(x: TensorLike, y: TensorLike, options: GradientRequest & InitialStatesOption = {}): Gradients {
    if (typeof options !== "object" || options === null) throw new ValueError(`computeGradients options: expected an object, got ${fmtValue(options)}`);
    const known = ["hiddenGradNorms", "gradNorms", "hiddenGrads", "keepState", "training"] as const;
    checkKeys("computeGradients", options, [...known, "initialStates"]);
    for (const k of known) {
      if (options[k] !== undefined && typeof options[k] !== "boolean") {
        throw new ValueError(`computeGradients ${k}: expected true or false, got ${fmtValue(options[k])}`);
      }
    }
    const { initialStates, ...request } = options;
    let given: StateRows | null = null;
    const { xt, yt, B, T } = checkBatch(this.engine, "computeGradients", x, y, (n) => { given = this.initialStates("computeGradients", initialStates, n); });
    return this.from(given, 0, B, () => this.engine.gradients(xt, yt, B, T, request));
  }

  /** `initialStates` checked for N rows (null when not given). */
  private initialStates(what: string, v: unknown, N: number): StateRows | null {
    if (v === undefined) return null;
    return { states: checkStates(this.engine, `${what} initialStates`, v, N).states, units: this.engine.rnns.map((l) => l.stateUnits) };
  }

  /** Runs `call` with the engine starting from rows [start, start + B) of `given` (or as usual when null). */
  private from<R>(given: StateRows | null, start: number, B: number, call: () => R): R {
    if (!given) return call();
    const e = this.engine;
    e.given = given.states.map((s, i) => {
      const H = given.units[i]!;
      return s.map((buf) => buf.subarray(start * H, (start + B) * H));
    });
    try {
      return call();
    } finally {
      e.given = null;
    }
  }

  /**
   * One optimizer step on one batch; returns the loss (and accuracy) computed before the update, as Keras.
   *
   * @example
   * const { loss, accuracy } = model.trainOnBatch(x, y);
   */
  trainOnBatch(x: TensorLike, y: TensorLike, options: InitialStatesOption = {}): StepResult {
    const given = this.stepStates("trainOnBatch", options);
    if (!given) { // the plain step, without the closures below (~2% of a batch of one's step)
      const { xt, yt, B, T } = checkBatch(this.engine, "trainOnBatch", x, y);
      return this.engine.trainRows(xt, yt, null, 0, B, T);
    }
    let rows: StateRows | null = null;
    const { xt, yt, B, T } = checkBatch(this.engine, "trainOnBatch", x, y, (n) => { rows = given(n); });
    return this.from(rows, 0, B, () => this.engine.trainRows(xt, yt, null, 0, B, T));
  }

  /**
   * A step's options checked, and a function that checks its initialStates once the batch size is known (null when
   * none are given).
   */
  private stepStates(what: string, options: unknown): ((N: number) => StateRows | null) | null {
    if (typeof options !== "object" || options === null) throw new ValueError(`${what} options: expected an object, got ${fmtValue(options)}`);
    checkKeys(what, options, STEP_OPTIONS);
    const v = (options as InitialStatesOption).initialStates;
    return v === undefined ? null : (N) => this.initialStates(what, v, N);
  }

  /**
   * The loss (and accuracy) on one batch, without updating weights. A stateful model carries its state.
   *
   * @example
   * const { loss, accuracy } = model.testOnBatch(x, y);
   */
  testOnBatch(x: TensorLike, y: TensorLike, options: InitialStatesOption = {}): StepResult {
    const given = this.stepStates("testOnBatch", options);
    if (!given) {
      const { xt, yt, B, T } = checkBatch(this.engine, "testOnBatch", x, y);
      return this.engine.testRows(xt, yt, null, 0, B, T);
    }
    let rows: StateRows | null = null;
    const { xt, yt, B, T } = checkBatch(this.engine, "testOnBatch", x, y, (n) => { rows = given(n); });
    return this.from(rows, 0, B, () => this.engine.testRows(xt, yt, null, 0, B, T));
  }

  /**
   * The head's output for x [N, T, F]: [N, D], or [N, T, D] when the top LSTM returns sequences.
   * Runs in batches of `batchSize` (default: the stateful batch size, or all of x); a stateful model
   * carries state from batch to batch, row by row.
   *
   * `initialStates` (see InitialStatesOption): the pass starts from these states, rows [start, start + B) for each
   * batch, instead of zeros or the carried state.
   *
   * @example
   * const p = model.predict(xTest);                    // [N, 1] probabilities
   * const out = decoder.predict(target, { initialStates: encoder.getStates() });
   */
  predict(x: TensorLike, options: { batchSize?: number } & InitialStatesOption = {}): Tensor {
    const e = this.engine;
    const { t: xt, B: N, T, F } = checkInput(e, "predict x", x);
    const bs = batchOption(e, "predict", options, N, ["batchSize", "initialStates"]);
    const given = this.initialStates("predict", options.initialStates, N);
    buildFor(e, F);
    const D = e.outputDim;
    const out = allocate(e.dtype, N * (e.perStep ? T : 1) * D);
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      checkStatefulBatch(e, "predict x", B, start);
      if (given) this.from(given, start, B, () => e.predictRows(xt, start, B, T, out));
      else e.predictRows(xt, start, B, T, out);
    }
    return fromData(out, e.perStep ? [N, T, D] : [N, D]);
  }

  /**
   * The mean loss (and accuracy) over x, y in batches, weighted by batch size.
   *
   * @example
   * const { loss, accuracy } = model.evaluate(xTest, yTest, { batchSize: 32 });
   */
  evaluate(x: TensorLike, y: TensorLike, options: { batchSize?: number } = {}): StepResult {
    const e = this.engine;
    requireCompiled(e, "evaluate");
    const { t: xt, B: N, T, F } = checkInput(e, "evaluate x", x);
    const yt = checkLabels(e, "evaluate y", y, N, T);
    const bs = batchOption(e, "evaluate", options, N);
    buildFor(e, F);
    checkStatefulBatch(e, "evaluate x", bs);
    return e.evaluateRows(xt, yt, N, T, bs);
  }

  /**
   * Trains for `epochs` over mini-batches, Keras-style, and returns the History.
   *
   * @example
   * const h = await model.fit(x, y, { epochs: 5, batchSize: 11, validationData: [xTest, yTest], verbose: 0 });
   * h.history.loss; h.history.valAccuracy;
   */
  async fit(x: TensorLike, y: TensorLike, options: FitOptions = {}): Promise<History> {
    const e = this.engine;
    requireCompiled(e, "fit");
    const { t: xt, B: N, T, F } = checkInput(e, "fit x", x);
    const yt = checkLabels(e, "fit y", y, N, T);
    const bs = batchOption(e, "fit", options, N, ["epochs", "batchSize", "shuffle", "validationData", "callbacks", "verbose", "log"]);
    const epochs = options.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 0) throw new ValueError(`fit epochs: expected a non-negative integer, got ${fmtValue(epochs)}`);
    const shuffle = options.shuffle ?? !e.stateful;
    if (typeof shuffle !== "boolean") throw new ValueError(`fit shuffle: expected true or false, got ${fmtValue(shuffle)}`);
    const verbose = options.verbose ?? 1;
    if (verbose !== 0 && verbose !== 1) throw new ValueError(`fit verbose: expected 0 or 1, got ${fmtValue(verbose)}`);
    if (options.log !== undefined && typeof options.log !== "function") throw new ValueError(`fit log: expected a function (line: string) => void, got ${fmtValue(options.log)}`);
    const callbacks = options.callbacks ?? [];
    if (!Array.isArray(callbacks)) throw new ValueError(`fit callbacks: expected an array, got ${fmtValue(callbacks)}`);
    callbacks.forEach((cb, i) => {
      if (typeof cb !== "object" || cb === null) throw new ValueError(`fit callbacks[${i}]: expected an object with hooks (onEpochEnd, …), got ${fmtValue(cb)}`);
      for (const k of HOOKS) {
        if (cb[k] !== undefined && typeof cb[k] !== "function") throw new ValueError(`fit callbacks[${i}].${k}: expected a function, got ${fmtValue(cb[k])}`);
      }
      // A hook with a misspelt name would never be called: refuse own keys that look like hooks but are not.
      const hookLike = Object.keys(cb).filter((k) => /^on[A-Z]/.test(k));
      checkKeys(`fit callbacks[${i}]`, Object.fromEntries(hookLike.map((k) => [k, true])), HOOKS);
    });
    let validation: { x: typeof xt; y: typeof yt; N: number; T: number } | null = null;
    if (options.validationData !== undefined) {
      const vd = options.validationData;
      if (!Array.isArray(vd) || vd.length !== 2) throw new ValueError(`fit validationData: expected [x, y], got ${fmtValue(vd)}`);
      const vi = checkInput(e, "fit validationData[0]", vd[0], F);
      validation = { x: vi.t, y: checkLabels(e, "fit validationData[1]", vd[1], vi.B, vi.T), N: vi.B, T: vi.T };
      if (e.stateful && validation.N % bs !== 0) {
        throw new ShapeError(`fit validationData[0]: a stateful model needs a sample count divisible by the batch size ${bs}, got ${validation.N}`);
      }
    }
    buildFor(e, F);
    if (e.stateful) checkStatefulBatch(e, "fit x", bs);
    const plan = { x: xt, y: yt, N, T, batchSize: bs, epochs, shuffle, validation, progress: progressSink(verbose, options.log) };
    return fitLoop(e, this, plan, callbacks);
  }

  /**
   * The checkpoint as plain JSON, so `JSON.stringify(model)` saves everything needed to resume training
   * bit for bit; `checkpointFromJSON` reads it back (and `encodeCheckpoint` gives checksummed bytes).
   *
   * @example
   * const copy = checkpointFromJSON(JSON.parse(JSON.stringify(model)));
   */
  toJSON(): CheckpointJSON {
    return engineToJSON(this.engine);
  }

  // ---------------------------------------------------------------------------------------------
  // Threads (set by setThreads of longshort/node)

  /**
   * Prints the layers, their output shapes and parameter counts, as Keras's and TensorFlow.js's `model.summary()`
   * do, through `printFn` (default console.log); returns the same text.
   *
   * @example
   * model.summary();
   * // _________________________________________________________________
   * // Layer (type)                 Output Shape               Param #
   * // =================================================================
   * // lstm_0 (LSTM)                (None, 10)                 480
   * // …
   * const text = model.summary({ printFn: () => {} });   // just the text
   */
  summary(options: SummaryOptions = {}): string {
    const { lines, printFn } = summaryLines(this.engine, this.masking, options);
    for (const line of lines) printFn(line);
    return lines.join("\n");
  }

  /** The number of threads a large call uses: 1 unless `setThreads` (longshort/node) asked for more. */
  get threads(): number {
    return this.engine.executor?.threads ?? 1;
  }

  /**
   * Stops this model's worker threads now (see `setThreads` in longshort/node). Call it when you are done
   * with a model that has threads: each idle worker holds a thread and a copy of the engine's buffers until
   * then. A model dropped without `dispose()` has its workers stopped only when it is garbage-collected. The
   * model stays usable: the thread setting is kept, and a later large call starts new workers.
   *
   * @example
   * setThreads(model, 2);                     // import { setThreads } from "longshort/node"
   * await model.fit(x, y, { epochs: 10, batchSize: 64, verbose: 0 });
   * model.dispose();
   */
  dispose(): void {
    this.engine.executor?.dispose();
  }
}
