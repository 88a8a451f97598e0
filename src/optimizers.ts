/**
 * Optimizers as explicit state plus an update over the model's one flat parameter buffer, so each is a
 * single loop (llm.c, optax). Adam is Keras's form (SEMANTICS.md): epsilon is added to sqrt(v) before the
 * bias correction is folded into the step size. RMSprop and AdamW, and `resolveOptimizer` that knows all four,
 * are in optimizers-extra.ts; the option checks and the Adam step they share are exported from here.
 */
import { type FloatArray, allocate } from "./tensor/tensor.js";
import * as arenas from "./wasm/arena.js";
import { oneMinusPow } from "./tensor/math.js";
import { ValueError, checkKeys, fmtValue } from "./errors.js";
import { type Schedule, type ScheduleJSON, isSchedule, scheduleToJSON } from "./schedules.js";

/**
 * Gradient clipping, applied to the gradient before each update (before Adam's moments see it).
 *
 * Differences from Keras: `clipNorm` is a GLOBAL norm clip, Keras's `global_clipnorm` (not Keras's
 * `clipnorm`, which clips each weight tensor by its own norm); and both options may be set together
 * (Keras refuses more than one), in which case `clipValue` is applied first, then `clipNorm` to the result.
 *
 * @example
 * new Adam({ clipNorm: 1 });                 // ‖g‖ over every weight of the model at most 1
 * new SGD({ clipValue: 0.5, clipNorm: 5 });  // clamp each entry to [-0.5, 0.5], then cap the global norm at 5
 */
export interface ClipOptions {
  /** Rescale the whole gradient so its global L2 norm, over all of the model's gradients together (every
   * layer's kernel, recurrent kernel and bias as one vector), is at most this: Keras's `global_clipnorm`,
   * not its per-tensor `clipnorm`. Applied after `clipValue` when both are set. */
  clipNorm?: number;
  /** Clamp every gradient entry to [-clipValue, clipValue]. Applied first when `clipNorm` is set too. */
  clipValue?: number;
}

/** `LR`, the type of `learningRate`, is inferred from the options: `new Adam({ learningRate: 0.01 }).learningRate` is a number. */
export interface AdamOptions<LR extends number | Schedule = number | Schedule> extends ClipOptions {
  /** Step size: a number, or a schedule (ExponentialDecay, CosineDecay) evaluated at `iterations` before each
   * update, so the first update uses its step 0 (Keras). Default 0.001. */
  learningRate?: LR;
  /** Decay of the first-moment average. Default 0.9. */
  beta1?: number;
  /** Decay of the second-moment average. Default 0.999. */
  beta2?: number;
  /** Added to sqrt(v) for stability. Default 1e-7 (Keras; PyTorch uses 1e-8). */
  epsilon?: number;
}

/** `LR`, the type of `learningRate`, is inferred from the options: `new SGD({ learningRate: 0.1 }).learningRate` is a number. */
export interface SGDOptions<LR extends number | Schedule = number | Schedule> extends ClipOptions {
  /** Step size: a number, or a schedule (ExponentialDecay, CosineDecay) evaluated at `iterations` before each
   * update, so the first update uses its step 0 (Keras). Default 0.01. */
  learningRate?: LR;
  /** Heavy-ball momentum (Keras form: v = momentum·v - lr·g; w += v). Default 0 (plain SGD). */
  momentum?: number;
}

/**
 * What every optimizer offers the model.
 *
 * @example
 * model.compile({ optimizer: "adam", loss: "meanSquaredError" });
 * model.trainOnBatch(x, y);
 * model.optimizer!.iterations;   // 1
 */
export interface Optimizer {
  readonly name: OptimizerName;
  /** Steps taken so far. */
  iterations: number;
  /** The learning rate the next update will use: the number, or the schedule at `iterations`. */
  currentLearningRate(): number;
  /** The model whose weights this optimizer's state belongs to (set by compile). */
  owner: object | null;
  /** Allocates state for `size` parameters (called by compile; keeps state if the size matches). */
  init(size: number): void;
  /** One update of `params` from `grads` (grads may be clipped in place). */
  apply(params: FloatArray, grads: FloatArray): void;
  /** The optimizer's state buffers (for checkpoints and rollback), in a fixed order. */
  slots(): Float64Array[];
  /** The name of each of `slots()`, in the same order (what a checkpoint calls them). */
  slotNames(): string[];
  /**
   * A bound on every |Δw| of the next `apply`, given |g| ≤ gMax for the gradients, |s| ≤ slotMax for the first
   * slot (Adam's m, SGD's velocity) and |w| ≤ wMax for the weights, under which the slots also stay finite;
   * Infinity where there is none. The model skips the backup of an update that this shows cannot overflow.
   */
  maxStep(gMax: number, slotMax: number, wMax: number): number;
  /** The options, as plain JSON (a schedule as `{ schedule, config }`; see schedules.ts). */
  config(): OptimizerConfig;
}

/** The optimizers' names: `Optimizer.name`, what compile accepts as a string, what a checkpoint stores. */
export type OptimizerName = "adam" | "sgd" | "rmsprop" | "adamw";

/** An optimizer's options as plain JSON: numbers (RMSprop's `centered` a boolean), and a learning-rate schedule
 * as `{ schedule, config }`. */
export type OptimizerConfig = Record<string, number | boolean | ScheduleJSON | undefined>;

// The option checks below are shared with optimizers-extra.ts; the errors name the argument, expected and actual.

/** @internal */
export function positive(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ValueError(`${name}: expected a positive finite number, got ${fmtValue(v)}`);
  }
  return v;
}

/** @internal */
export function unitInterval(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !(v >= 0 && v < 1)) {
    throw new ValueError(`${name}: expected a number in [0, 1), got ${fmtValue(v)}`);
  }
  return v;
}

/** @internal A number ≥ 0 (0 allowed: a weight decay of 0 is plain Adam). */
export function nonNegative(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new ValueError(`${name}: expected a finite number ≥ 0, got ${fmtValue(v)}`);
  }
  return v;
}

/** @internal */
export function optional(name: string, v: unknown): number | undefined {
  return v === undefined ? undefined : positive(name, v, 0);
}

/** @internal A learning rate: a positive finite number or one of the library's schedules. */
export function learningRate(name: string, v: unknown, dflt: number): number | Schedule {
  if (v === undefined || typeof v === "number") return positive(name, v, dflt);
  if (isSchedule(v)) return v;
  throw new ValueError(`${name}: expected a positive finite number or a schedule (an ExponentialDecay or a CosineDecay), got ${fmtValue(v)}`);
}

/** @internal The rate of the update that follows `iterations` updates. */
export function rateAt(lr: number | Schedule, iterations: number): number {
  return typeof lr === "number" ? lr : lr.at(iterations);
}

/** @internal */
export function rateJSON(lr: number | Schedule): number | ScheduleJSON {
  return typeof lr === "number" ? lr : scheduleToJSON(lr);
}

/**
 * Clips in place: every entry to [-clipValue, clipValue] first, then the whole buffer by its global L2
 * norm (one norm over all entries, Keras's `global_clipnorm`). Either limit may be undefined.
 *
 * @example
 * const g = new Float64Array([3, -4, 0.5]);
 * clipGradients(g, 2, 1);   // by value → [2, -2, 0.5] (norm 2.87), then by norm → ≈ [0.696, -0.696, 0.174]
 */
export function clipGradients(grads: FloatArray, clipValue: number | undefined, clipNorm: number | undefined): void {
  const n = grads.length;
  if (clipValue !== undefined) {
    for (let k = 0; k < n; k++) {
      const g = grads[k]!;
      grads[k] = g > clipValue ? clipValue : g < -clipValue ? -clipValue : g;
    }
  }
  if (clipNorm !== undefined) {
    let s = 0;
    for (let k = 0; k < n; k++) s += grads[k]! * grads[k]!;
    const norm = Math.sqrt(s);
    if (norm > clipNorm) {
      const scale = clipNorm / norm;
      for (let k = 0; k < n; k++) grads[k] = grads[k]! * scale;
    }
  }
}

/** @internal */
export function checkOptions(name: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValueError(`${name} options: expected an object, got ${fmtValue(options)}`);
  }
  checkKeys(name, options, known);
  return options as Record<string, unknown>;
}

/**
 * @internal Keras's Adam step size after t − 1 updates: lr·√(1 − β2^t)/(1 − β1^t), lr the rate of update t. 1 − β^t
 * comes from math.ts: correctly rounded, and the same bits in every engine (`**` is neither).
 */
export function adamAlpha(lr: number, beta1: number, beta2: number, t: number): number {
  return (lr * Math.sqrt(oneMinusPow(beta2, t))) / oneMinusPow(beta1, t);
}

/**
 * @internal One Keras-form Adam update of every weight (Adam's and AdamW's), α from `adamAlpha`:
 * m' = m + (g − m)(1 − β1), v' = v + (g² − v)(1 − β2), w' = w − α·m'/(√v' + ε). m and v are float64 (P) each,
 * params and grads (P) of the model's dtype. On the SIMD backend the same operations two weights at a time, bit
 * for bit (src/wasm/update.ts).
 */
export function adamStep(
  params: FloatArray, grads: FloatArray, m: Float64Array, v: Float64Array,
  alpha: number, b1: number, b2: number, eps: number,
): void {
  const n = params.length;
  const simd = arenas.anyArena ? arenas.adamFor(params, grads, m, v) : null;
  if (simd) {
    const at = arenas.at;
    simd(n, at[0]!, at[1]!, at[2]!, at[3]!, alpha, 1 - b1, 1 - b2, eps);
    return;
  }
  for (let k = 0; k < n; k++) {
    const g = grads[k]!;
    const mk = m[k]! + (g - m[k]!) * (1 - b1);
    const vk = v[k]! + (g * g - v[k]!) * (1 - b2);
    m[k] = mk;
    v[k] = vk;
    params[k] = params[k]! - (alpha * mk) / (Math.sqrt(vk) + eps);
  }
}

/**
 * @internal The bound of `adamStep`'s |Δw|: m' = m + (g − m)(1 − β1) lies between m and g, v' ≥ 0 stays finite
 * while g² does, and |Δw| = α·|m'| / (√v' + ε) ≤ α·|m'| / ε; twice that covers the roundings. Clipping only
 * shrinks g.
 */
export function adamMaxStep(alpha: number, eps: number, gMax: number, mMax: number): number {
  if (!(gMax < 1e150 && mMax < 1e150)) return Infinity; // g², and g − m, finite below this
  const step = (2 * Math.abs(alpha) * Math.max(gMax, mMax)) / eps;
  return step === step ? step : Infinity;
}

/**
 * Adam, Keras form. Moments are kept in float64 whatever the model's dtype. Optional clipping
 * (`clipValue`, then `clipNorm` by the global norm; see ClipOptions) happens before the moments update.
 *
 * With a schedule as `learningRate`, update t (t = 1, 2, …) uses the schedule at step t − 1, `iterations`
 * before the update, as Keras does; `currentLearningRate()` is the rate the next update will use.
 *
 * @example
 * model.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy" });
 * new Adam({ learningRate: new ExponentialDecay({ initialLearningRate: 0.01, decaySteps: 1000, decayRate: 0.9 }) });
 */
export class Adam<LR extends number | Schedule = number | Schedule> implements Optimizer {
  readonly name = "adam" as const;
  owner: object | null = null;
  /** A number, or a schedule evaluated at `iterations` before each update. */
  readonly learningRate: LR;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly clipNorm: number | undefined;
  readonly clipValue: number | undefined;
  iterations = 0;
  m: Float64Array = new Float64Array(0); // first moment, one per parameter
  v: Float64Array = new Float64Array(0); // second moment

  constructor(options?: AdamOptions<LR>) {
    const o = checkOptions("Adam", options, ["learningRate", "beta1", "beta2", "epsilon", "clipNorm", "clipValue"]);
    this.learningRate = learningRate("Adam learningRate", o.learningRate, 0.001) as LR;
    this.beta1 = unitInterval("Adam beta1", o.beta1, 0.9);
    this.beta2 = unitInterval("Adam beta2", o.beta2, 0.999);
    this.epsilon = positive("Adam epsilon", o.epsilon, 1e-7);
    this.clipNorm = optional("Adam clipNorm", o.clipNorm);
    this.clipValue = optional("Adam clipValue", o.clipValue);
  }

  init(size: number): void {
    if (this.m.length === size) return;
    // In the model's WebAssembly memory when it has one (the caller sets it), where the SIMD update runs on them.
    this.m = allocate("float64", size) as Float64Array;
    this.v = allocate("float64", size) as Float64Array;
    this.iterations = 0;
  }

  apply(params: FloatArray, grads: FloatArray): void {
    clipGradients(grads, this.clipValue, this.clipNorm);
    const alpha = this.alpha();
    this.iterations++;
    adamStep(params, grads, this.m, this.v, alpha, this.beta1, this.beta2, this.epsilon);
  }

  slots(): Float64Array[] {
    return [this.m, this.v];
  }

  slotNames(): string[] {
    return ["m", "v"];
  }

  /** The iteration count `alphaValue` is for (-1: none yet). */
  private alphaFor = -1;
  private alphaValue = 0;

  /**
   * The step size of the update after `iterations` updates, lr·√(1 − β2^t)/(1 − β1^t) with t = iterations + 1
   * and lr the rate at `iterations`: computed once per iteration count (maxStep asks for it, then apply); it
   * depends on nothing else that can change (see `adamAlpha`).
   */
  private alpha(): number {
    const it = this.iterations;
    if (this.alphaFor !== it) {
      this.alphaValue = adamAlpha(rateAt(this.learningRate, it), this.beta1, this.beta2, it + 1); // the first update uses step 0 of a schedule
      this.alphaFor = it;
    }
    return this.alphaValue;
  }

  /** α·|m'| / ε, twice (see `adamMaxStep`). */
  maxStep(gMax: number, mMax: number): number {
    return adamMaxStep(this.alpha(), this.epsilon, gMax, mMax);
  }

  /**
   * The learning rate the next update will use: `learningRate` itself, or the schedule at `iterations`.
   *
   * @example
   * const adam = new Adam({ learningRate: new CosineDecay({ initialLearningRate: 0.01, decaySteps: 100 }) });
   * adam.currentLearningRate();   // 0.01 (step 0); after 50 updates 0.005
   */
  currentLearningRate(): number {
    return rateAt(this.learningRate, this.iterations);
  }

  config(): OptimizerConfig {
    return {
      learningRate: rateJSON(this.learningRate), beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon,
      clipNorm: this.clipNorm, clipValue: this.clipValue,
    };
  }
}

/**
 * Stochastic gradient descent, optionally with momentum. Optional clipping (`clipValue`, then `clipNorm`
 * by the global norm; see ClipOptions) happens before the step.
 *
 * With a schedule as `learningRate`, update t (t = 1, 2, …) uses the schedule at step t − 1, `iterations`
 * before the update, as Keras does; `currentLearningRate()` is the rate the next update will use.
 *
 * @example
 * model.compile({ optimizer: new SGD({ learningRate: 0.1 }), loss: "meanSquaredError" });
 * new SGD({ learningRate: new CosineDecay({ initialLearningRate: 0.1, decaySteps: 500 }), momentum: 0.9 });
 */
export class SGD<LR extends number | Schedule = number | Schedule> implements Optimizer {
  readonly name = "sgd" as const;
  owner: object | null = null;
  /** A number, or a schedule evaluated at `iterations` before each update. */
  readonly learningRate: LR;
  readonly momentum: number;
  readonly clipNorm: number | undefined;
  readonly clipValue: number | undefined;
  iterations = 0;
  velocity: Float64Array = new Float64Array(0);

  constructor(options?: SGDOptions<LR>) {
    const o = checkOptions("SGD", options, ["learningRate", "momentum", "clipNorm", "clipValue"]);
    this.learningRate = learningRate("SGD learningRate", o.learningRate, 0.01) as LR;
    this.momentum = unitInterval("SGD momentum", o.momentum, 0);
    this.clipNorm = optional("SGD clipNorm", o.clipNorm);
    this.clipValue = optional("SGD clipValue", o.clipValue);
  }

  init(size: number): void {
    if (this.velocity.length === size) return;
    this.velocity = allocate("float64", size) as Float64Array;
    this.iterations = 0;
  }

  apply(params: FloatArray, grads: FloatArray): void {
    clipGradients(grads, this.clipValue, this.clipNorm);
    const lr = rateAt(this.learningRate, this.iterations); // before the increment: the first update uses step 0
    this.iterations++;
    const mu = this.momentum, n = params.length;
    if (mu === 0) {
      for (let k = 0; k < n; k++) params[k] = params[k]! - lr * grads[k]!;
      return;
    }
    const vel = this.velocity;
    for (let k = 0; k < n; k++) {
      const vk = mu * vel[k]! - lr * grads[k]!;
      vel[k] = vk;
      params[k] = params[k]! + vk;
    }
  }

  slots(): Float64Array[] {
    return [this.velocity];
  }

  slotNames(): string[] {
    return ["velocity"];
  }

  /** |v'| = |μ·v − lr·g| ≤ μ·|v| + |lr|·|g| (Δw = v', or −lr·g without momentum); twice that covers the roundings. */
  maxStep(gMax: number, vMax: number): number {
    const lr = rateAt(this.learningRate, this.iterations);
    const step = 2 * (this.momentum * vMax + Math.abs(lr) * gMax);
    return step === step ? step : Infinity;
  }

  /**
   * The learning rate the next update will use: `learningRate` itself, or the schedule at `iterations`.
   *
   * @example
   * new SGD({ learningRate: 0.1 }).currentLearningRate();   // 0.1
   */
  currentLearningRate(): number {
    return rateAt(this.learningRate, this.iterations);
  }

  config(): OptimizerConfig {
    return { learningRate: rateJSON(this.learningRate), momentum: this.momentum, clipNorm: this.clipNorm, clipValue: this.clipValue };
  }
}
