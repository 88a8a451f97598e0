/**
 * RMSprop and AdamW, Keras 3's forms (keras/src/optimizers/rmsprop.py `update_step`; adamw.py, which is adam.py
 * with the base optimizer's `_apply_weight_decay`), and `resolveOptimizer`, which knows all four optimizers.
 * Their state is float64 whatever the model's dtype, allocated by `init` (in the model's WebAssembly arena when it
 * has one, where the weights and gradients live too: the loops below read and write those views in place). The
 * update is a small share of a training step, so RMSprop is a plain loop with hoisted locals, no SIMD kernel;
 * AdamW's Adam step is Adam's own (SIMD on that backend, optimizers.ts).
 *
 * Where PyTorch differs (torch.optim.RMSprop, torch.optim.AdamW, 1.13):
 * - RMSprop: Keras adds ε inside the square root, w −= lr·g/√(v + ε), PyTorch outside, lr·g/(√v + ε); Keras's
 *   momentum buffer holds lr·g/√(…) (so a learning rate that changes under a schedule weighs each step's own rate),
 *   PyTorch's holds g/(…) and multiplies the whole buffer by the current lr; defaults ρ 0.9 / ε 1e-7 (Keras) against
 *   alpha 0.99 / eps 1e-8 (PyTorch), whose `weight_decay` is an L2 term added to g (Keras's base optimizer's is
 *   decoupled; longshort's RMSprop has none).
 * - AdamW: both decay first and then take the Adam step from the gradient of the undecayed weights; Keras writes
 *   w − w·wd·lr, PyTorch w·(1 − lr·wd) (the same up to rounding). The Adam step is Keras's ε-hat form, as Adam's
 *   (PyTorch: ε after the bias correction). Default weight decay 0.004 (Keras) against PyTorch's 0.01.
 */
import type { FloatArray } from "./tensor/tensor.js";
import { allocate } from "./tensor/tensor.js";
import { ValueError, fmtValue, fmtInstance } from "./errors.js";
import type { Schedule } from "./schedules.js";
import {
  Adam, SGD, type AdamOptions, type SGDOptions, type ClipOptions, type Optimizer, type OptimizerConfig, type OptimizerName,
  adamAlpha, adamMaxStep, adamStep, checkOptions, clipGradients, learningRate, nonNegative, optional, positive,
  rateAt, rateJSON, unitInterval,
} from "./optimizers.js";

/** `LR`, the type of `learningRate`, is inferred from the options: `new RMSprop({ learningRate: 0.01 }).learningRate` is a number. */
export interface RMSpropOptions<LR extends number | Schedule = number | Schedule> extends ClipOptions {
  /** Step size: a number, or a schedule evaluated at `iterations` before each update (the first update uses its
   * step 0, Keras). Default 0.001. */
  learningRate?: LR;
  /** Decay of the moving average of g² (PyTorch's `alpha`). Default 0.9 (Keras; PyTorch 0.99). */
  rho?: number;
  /** Heavy-ball momentum on the scaled step (Keras: b = momentum·b + lr·g/√(…); w −= b). Default 0. */
  momentum?: number;
  /** Added to the mean square inside the square root (Keras; PyTorch adds it to the root). Default 1e-7. */
  epsilon?: number;
  /** Divide by the estimated variance, √(E[g²] − E[g]² + ε), rather than √(E[g²] + ε). Default false. */
  centered?: boolean;
}

/** `LR`, the type of `learningRate`, is inferred from the options: `new AdamW({ learningRate: 0.01 }).learningRate` is a number. */
export interface AdamWOptions<LR extends number | Schedule = number | Schedule> extends ClipOptions {
  /** Step size: a number, or a schedule evaluated at `iterations` before each update; the decay uses the same
   * rate. Default 0.001. */
  learningRate?: LR;
  /** Decay of the first-moment average. Default 0.9. */
  beta1?: number;
  /** Decay of the second-moment average. Default 0.999. */
  beta2?: number;
  /** Added to sqrt(v) for stability ("epsilon hat", as Adam's). Default 1e-7 (Keras; PyTorch uses 1e-8). */
  epsilon?: number;
  /** Decoupled weight decay: each update first takes w − w·weightDecay·lr. Default 0.004 (Keras; PyTorch 0.01). */
  weightDecay?: number;
}

function bool(name: string, v: unknown, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== "boolean") throw new ValueError(`${name}: expected true or false, got ${fmtValue(v)}`);
  return v;
}

/**
 * RMSprop, Keras 3 form: per weight, with c = 1 − ρ and lr the rate of this update,
 *
 *     v' = ρ·v + c·g²                          (Keras's "velocity": the moving average of g²)
 *     a' = ρ·a + c·g;  d = v' − a'² + ε         (centered)     d = v' + ε   (not centered)
 *     Δ = lr·g / √d
 *     b' = μ·b + Δ;  w' = w − b'                (momentum μ > 0)     w' = w − Δ   (μ = 0)
 *
 * Slots, in `slots()` order: `momentum` (b, when μ > 0), `velocity` (v), `averageGradient` (a, when centered), each
 * float64 (P). Optional clipping (`clipValue`, then `clipNorm` by the global norm; see ClipOptions) happens first.
 * Differences from PyTorch's RMSprop are in this module's header; to train the same in PyTorch with ε = 0 and a
 * constant rate, use `torch.optim.RMSprop(alpha=rho, eps=0, momentum=μ, centered=…)`.
 *
 * @example
 * model.compile({ optimizer: new RMSprop({ learningRate: 0.001, rho: 0.9 }), loss: "meanSquaredError" });
 * new RMSprop({ momentum: 0.9, centered: true, clipNorm: 1 });
 */
export class RMSprop<LR extends number | Schedule = number | Schedule> implements Optimizer {
  readonly name = "rmsprop" as const;
  owner: object | null = null;
  /** A number, or a schedule evaluated at `iterations` before each update. */
  readonly learningRate: LR;
  readonly rho: number;
  readonly momentum: number;
  readonly epsilon: number;
  readonly centered: boolean;
  readonly clipNorm: number | undefined;
  readonly clipValue: number | undefined;
  iterations = 0;
  /** (P) the moving average of g² (Keras calls it "velocity"). */
  velocity: Float64Array = new Float64Array(0);
  /** (P) the momentum buffer b when `momentum` > 0, else empty. */
  momentumBuffer: Float64Array = new Float64Array(0);
  /** (P) the moving average of g when `centered`, else empty. */
  averageGradient: Float64Array = new Float64Array(0);

  constructor(options?: RMSpropOptions<LR>) {
    const o = checkOptions("RMSprop", options, ["learningRate", "rho", "momentum", "epsilon", "centered", "clipNorm", "clipValue"]);
    this.learningRate = learningRate("RMSprop learningRate", o.learningRate, 0.001) as LR;
    this.rho = unitInterval("RMSprop rho", o.rho, 0.9);
    this.momentum = unitInterval("RMSprop momentum", o.momentum, 0);
    this.epsilon = positive("RMSprop epsilon", o.epsilon, 1e-7);
    this.centered = bool("RMSprop centered", o.centered, false);
    this.clipNorm = optional("RMSprop clipNorm", o.clipNorm);
    this.clipValue = optional("RMSprop clipValue", o.clipValue);
  }

  init(size: number): void {
    if (this.velocity.length === size) return;
    this.velocity = allocate("float64", size) as Float64Array;
    if (this.momentum > 0) this.momentumBuffer = allocate("float64", size) as Float64Array;
    if (this.centered) this.averageGradient = allocate("float64", size) as Float64Array;
    this.iterations = 0;
  }

  apply(params: FloatArray, grads: FloatArray): void {
    clipGradients(grads, this.clipValue, this.clipNorm);
    const lr = rateAt(this.learningRate, this.iterations); // before the increment: the first update uses step 0
    this.iterations++;
    const rho = this.rho, c = 1 - this.rho, eps = this.epsilon, mu = this.momentum, n = params.length;
    const v = this.velocity, b = this.momentumBuffer, a = this.averageGradient;
    // Four loops rather than two tests per weight. Each is Keras's update_step, operation for operation.
    if (!this.centered && mu === 0) {
      for (let k = 0; k < n; k++) {
        const g = grads[k]!;
        const vk = rho * v[k]! + c * (g * g);
        v[k] = vk;
        params[k] = params[k]! - (lr * g) / Math.sqrt(vk + eps);
      }
    } else if (!this.centered) {
      for (let k = 0; k < n; k++) {
        const g = grads[k]!;
        const vk = rho * v[k]! + c * (g * g);
        v[k] = vk;
        const bk = mu * b[k]! + (lr * g) / Math.sqrt(vk + eps);
        b[k] = bk;
        params[k] = params[k]! - bk;
      }
    } else if (mu === 0) {
      for (let k = 0; k < n; k++) {
        const g = grads[k]!;
        const vk = rho * v[k]! + c * (g * g);
        const ak = rho * a[k]! + c * g;
        v[k] = vk;
        a[k] = ak;
        params[k] = params[k]! - (lr * g) / Math.sqrt(vk - ak * ak + eps);
      }
    } else {
      for (let k = 0; k < n; k++) {
        const g = grads[k]!;
        const vk = rho * v[k]! + c * (g * g);
        const ak = rho * a[k]! + c * g;
        v[k] = vk;
        a[k] = ak;
        const bk = mu * b[k]! + (lr * g) / Math.sqrt(vk - ak * ak + eps);
        b[k] = bk;
        params[k] = params[k]! - bk;
      }
    }
  }

  /** The momentum buffer first (when there is one), so that `maxStep`'s slotMax bounds it. */
  slots(): Float64Array[] {
    const out = this.momentum > 0 ? [this.momentumBuffer, this.velocity] : [this.velocity];
    if (this.centered) out.push(this.averageGradient);
    return out;
  }

  slotNames(): string[] {
    const out = this.momentum > 0 ? ["momentum", "velocity"] : ["velocity"];
    if (this.centered) out.push("averageGradient");
    return out;
  }

  /**
   * Not centered: v' = ρ·v + c·g² ≥ 0 (each term is), and finite while g² is, so d = v' + ε ≥ ε and
   * |Δ| ≤ lr·|g| / √ε; with momentum |b'| ≤ μ·|b| + |Δ| (slotMax bounds b, the first slot). Twice that covers the
   * roundings. Centered: none (Infinity). v' − a'² is ≥ 0 in exact arithmetic, but its rounding can take d below ε,
   * to 0 or below, so every centered update takes the backup and the check after it.
   */
  maxStep(gMax: number, slotMax: number): number {
    if (this.centered || !(gMax < 1e150)) return Infinity; // g² finite below this
    const lr = rateAt(this.learningRate, this.iterations);
    const step = 2 * ((this.momentum > 0 ? this.momentum * slotMax : 0) + (Math.abs(lr) * gMax) / Math.sqrt(this.epsilon));
    return step === step ? step : Infinity;
  }

  /** The learning rate the next update will use: `learningRate` itself, or the schedule at `iterations`. */
  currentLearningRate(): number {
    return rateAt(this.learningRate, this.iterations);
  }

  config(): OptimizerConfig {
    return {
      learningRate: rateJSON(this.learningRate), rho: this.rho, momentum: this.momentum, epsilon: this.epsilon,
      centered: this.centered, clipNorm: this.clipNorm, clipValue: this.clipValue,
    };
  }
}

/**
 * AdamW: Adam (Keras's form, "epsilon hat", as `Adam`) with decoupled weight decay, Keras 3's order: each update
 * first decays every weight, w ← w − w·weightDecay·lr (lr this update's rate), then takes Adam's step from the
 * gradient (computed at the undecayed weights, as always):
 *
 *     w₁ = w − w·wd·lr;  m' = m + (g − m)(1 − β1);  v' = v + (g² − v)(1 − β2)
 *     w' = w₁ − α·m'/(√v' + ε),  α = lr·√(1 − β2^t)/(1 − β1^t)
 *
 * The decay applies to every weight, biases and embeddings included: Keras decays every variable not excluded with
 * `exclude_from_weight_decay` (which longshort does not have), PyTorch every parameter of the group. Slots `m`, `v`,
 * float64 (P) each. Differences from PyTorch's AdamW are in this module's header.
 *
 * @example
 * model.compile({ optimizer: new AdamW({ learningRate: 0.001, weightDecay: 0.01 }), loss: "binaryCrossentropy" });
 */
export class AdamW<LR extends number | Schedule = number | Schedule> implements Optimizer {
  readonly name = "adamw" as const;
  owner: object | null = null;
  /** A number, or a schedule evaluated at `iterations` before each update. */
  readonly learningRate: LR;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly clipNorm: number | undefined;
  readonly clipValue: number | undefined;
  iterations = 0;
  m: Float64Array = new Float64Array(0); // (P) first moment
  v: Float64Array = new Float64Array(0); // (P) second moment

  constructor(options?: AdamWOptions<LR>) {
    const o = checkOptions("AdamW", options, ["learningRate", "beta1", "beta2", "epsilon", "weightDecay", "clipNorm", "clipValue"]);
    this.learningRate = learningRate("AdamW learningRate", o.learningRate, 0.001) as LR;
    this.beta1 = unitInterval("AdamW beta1", o.beta1, 0.9);
    this.beta2 = unitInterval("AdamW beta2", o.beta2, 0.999);
    this.epsilon = positive("AdamW epsilon", o.epsilon, 1e-7);
    this.weightDecay = nonNegative("AdamW weightDecay", o.weightDecay, 0.004);
    this.clipNorm = optional("AdamW clipNorm", o.clipNorm);
    this.clipValue = optional("AdamW clipValue", o.clipValue);
  }

  init(size: number): void {
    if (this.m.length === size) return;
    // In the model's WebAssembly memory when it has one, where Adam's SIMD step runs on them.
    this.m = allocate("float64", size) as Float64Array;
    this.v = allocate("float64", size) as Float64Array;
    this.iterations = 0;
  }

  apply(params: FloatArray, grads: FloatArray): void {
    clipGradients(grads, this.clipValue, this.clipNorm);
    const lr = rateAt(this.learningRate, this.iterations);
    const alpha = this.alpha();
    this.iterations++;
    const wd = this.weightDecay, n = params.length;
    // Keras's _apply_weight_decay, `variable - variable * wd * lr`, in its order of operations; a float32 weight is
    // rounded on this store, as Keras's assign rounds it, before the Adam step reads it.
    if (wd !== 0) for (let k = 0; k < n; k++) params[k] = params[k]! - params[k]! * wd * lr;
    adamStep(params, grads, this.m, this.v, alpha, this.beta1, this.beta2, this.epsilon);
  }

  slots(): Float64Array[] {
    return [this.m, this.v];
  }

  slotNames(): string[] {
    return ["m", "v"];
  }

  private alphaFor = -1; // the iteration count alphaValue is for (-1: none yet)
  private alphaValue = 0;

  /** Adam's step size for the update after `iterations` updates, once per iteration count (see `adamAlpha`). */
  private alpha(): number {
    const it = this.iterations;
    if (this.alphaFor !== it) {
      this.alphaValue = adamAlpha(rateAt(this.learningRate, it), this.beta1, this.beta2, it + 1);
      this.alphaFor = it;
    }
    return this.alphaValue;
  }

  /**
   * The decay moves a weight by |w·wd·lr| ≤ wMax·wd·lr, then Adam's step by α·|m'|/ε (`adamMaxStep`); twice the
   * decay's share covers its roundings. (wd·lr may exceed 2, where the decay alone grows |w|: the bound still holds.)
   */
  maxStep(gMax: number, mMax: number, wMax: number): number {
    const decay = 2 * wMax * this.weightDecay * Math.abs(rateAt(this.learningRate, this.iterations));
    const step = (decay === decay ? decay : Infinity) + adamMaxStep(this.alpha(), this.epsilon, gMax, mMax);
    return step === step ? step : Infinity;
  }

  /** The learning rate the next update will use: `learningRate` itself, or the schedule at `iterations`. */
  currentLearningRate(): number {
    return rateAt(this.learningRate, this.iterations);
  }

  config(): OptimizerConfig {
    return {
      learningRate: rateJSON(this.learningRate), beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon,
      weightDecay: this.weightDecay, clipNorm: this.clipNorm, clipValue: this.clipValue,
    };
  }
}

/** The class of each optimizer name, as messages name it. */
export const OPTIMIZER_CLASSES: Record<OptimizerName, string> = { adam: "Adam", sgd: "SGD", rmsprop: "RMSprop", adamw: "AdamW" };

/** Every optimizer name (Keras's own identifiers: "adam", "sgd", "rmsprop", "adamw"). */
export const OPTIMIZER_NAMES = ["adam", "sgd", "rmsprop", "adamw"] as const satisfies readonly OptimizerName[];

/**
 * A new optimizer of that name from its options (what a checkpoint holds): they are checked as the constructor
 * checks them.
 *
 * @example
 * makeOptimizer("rmsprop", { learningRate: 0.01, centered: true });   // new RMSprop({ learningRate: 0.01, centered: true })
 */
export function makeOptimizer(name: OptimizerName, options?: Record<string, unknown>): Optimizer {
  switch (name) {
    case "adam": return new Adam(options as AdamOptions);
    case "sgd": return new SGD(options as SGDOptions);
    case "rmsprop": return new RMSprop(options as RMSpropOptions);
    case "adamw": return new AdamW(options as AdamWOptions);
  }
}

/**
 * Resolves "adam" / "sgd" / "rmsprop" / "adamw" (default settings) or an instance of one of the four (used as is);
 * what compile does.
 *
 * @example
 * resolveOptimizer("rmsprop");                      // new RMSprop(): learningRate 0.001, rho 0.9
 */
export function resolveOptimizer(v: unknown): Optimizer {
  if (typeof v === "string" && (OPTIMIZER_NAMES as readonly string[]).includes(v)) return makeOptimizer(v as OptimizerName);
  if (v instanceof Adam || v instanceof SGD || v instanceof RMSprop || v instanceof AdamW) return v;
  throw new ValueError(
    `optimizer: expected "adam", "sgd", "rmsprop", "adamw", an Adam, an SGD, an RMSprop or an AdamW, got ${fmtInstance(v, "Adam", "SGD", "RMSprop", "AdamW")}`,
  );
}
