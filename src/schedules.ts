/**
 * Learning-rate schedules: Keras's `ExponentialDecay` and `CosineDecay` (Keras 3,
 * keras/src/optimizers/schedules/learning_rate_schedule.py), with Keras's option names in camelCase and its
 * formulas. Pass one as an optimizer's `learningRate`; the optimizer evaluates it at its `iterations` before
 * each update (the updates taken so far), as Keras's optimizers evaluate `learning_rate(self.iterations)`:
 * the first update uses step 0.
 *
 * A schedule is a pure function of the step, holding no state, so a checkpoint stores only its options
 * (`config()`) and the optimizer's `iterations`, and a resumed run continues with the same rates bit for bit.
 * Its arithmetic goes through tensor/math.ts (exp, log, cos2pi), never the engine's own Math.exp/pow/cos,
 * so a schedule gives the same bits in every JavaScript engine.
 *
 * @example
 * const schedule = new ExponentialDecay({ initialLearningRate: 0.01, decaySteps: 100, decayRate: 0.5 });
 * schedule.at(0);     // 0.01
 * schedule.at(100);   // 0.005
 * model.compile({ optimizer: new Adam({ learningRate: schedule }), loss: "binaryCrossentropy" });
 */
import { cos2pi, exp, log } from "./tensor/math.js";
import { ValueError, checkKeys, fmtValue } from "./errors.js";

/** The schedules a checkpoint can name. */
export type ScheduleName = "exponentialDecay" | "cosineDecay";

/** Every schedule name, in a fixed order. */
export const SCHEDULE_NAMES: readonly ScheduleName[] = ["exponentialDecay", "cosineDecay"];

/** A schedule's options as plain JSON, every one present (defaults filled in): what `config()` returns. */
export type ScheduleConfig = Record<string, number | boolean | null>;

/** A schedule as a checkpoint stores it in place of a numeric learning rate. */
export interface ScheduleJSON {
  schedule: ScheduleName;
  config: ScheduleConfig;
}

/**
 * A learning rate that changes with the optimizer's step. The library's schedules are `ExponentialDecay`
 * and `CosineDecay`; an optimizer takes only those (a checkpoint must be able to rebuild it).
 *
 * @example
 * const s: Schedule = new CosineDecay({ initialLearningRate: 0.1, decaySteps: 1000 });
 * s.at(500);        // 0.05
 * s.config();       // { initialLearningRate: 0.1, decaySteps: 1000, alpha: 0, warmupTarget: null, warmupSteps: 0 }
 */
export interface Schedule {
  /** Which schedule this is (the name a checkpoint stores). */
  readonly name: ScheduleName;
  /** The learning rate at `step`, the number of updates taken before the one that uses it (≥ 0, an integer). */
  at(step: number): number;
  /** Every option, defaults filled in, as plain JSON: `new <Schedule>(config())` is the same schedule. */
  config(): ScheduleConfig;
}

// -----------------------------------------------------------------------------------------------
// Validation

function optionsObject(what: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValueError(`${what} options: expected an object, got ${fmtValue(options)}`);
  }
  checkKeys(what, options, known);
  return options as Record<string, unknown>;
}

function positiveFinite(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
    throw new ValueError(`${name}: expected a positive finite number, got ${fmtValue(v)}`);
  }
  return v;
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new ValueError(`${name}: expected a positive integer, got ${fmtValue(v)}`);
  }
  return v;
}

function checkStep(what: string, step: unknown): number {
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new ValueError(`${what} step: expected a non-negative integer (the updates taken so far), got ${fmtValue(step)}`);
  }
  return step;
}

// -----------------------------------------------------------------------------------------------
// ExponentialDecay

export interface ExponentialDecayOptions {
  /** The rate at step 0. A positive finite number. */
  initialLearningRate: number;
  /** The steps over which the rate is multiplied by `decayRate` once. A positive integer. */
  decaySteps: number;
  /** The factor per `decaySteps` steps. A positive finite number (above 1 the rate grows). */
  decayRate: number;
  /** Decay in whole periods: the exponent is floor(step / decaySteps). Default false. */
  staircase?: boolean;
}

/**
 * Keras's `ExponentialDecay`: lr(step) = initialLearningRate · decayRate^(step / decaySteps), the exponent
 * floor(step / decaySteps) when `staircase` is set. Computed as initialLearningRate · exp(p · log(decayRate))
 * with p the exponent, through tensor/math.ts, so the same bits come out in every engine; within a few ulps
 * of the exact value while |p · log(decayRate)| stays moderate (exactly initialLearningRate at step 0).
 *
 * @example
 * const s = new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.5, staircase: true });
 * s.at(9);    // 0.1
 * s.at(10);   // 0.05
 * new SGD({ learningRate: s });
 */
export class ExponentialDecay implements Schedule {
  readonly name = "exponentialDecay" as const;
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly decayRate: number;
  readonly staircase: boolean;
  private readonly logRate: number;

  constructor(options: ExponentialDecayOptions) {
    const o = optionsObject("ExponentialDecay", options, ["initialLearningRate", "decaySteps", "decayRate", "staircase"]);
    this.initialLearningRate = positiveFinite("ExponentialDecay initialLearningRate", o.initialLearningRate);
    this.decaySteps = positiveInt("ExponentialDecay decaySteps", o.decaySteps);
    this.decayRate = positiveFinite("ExponentialDecay decayRate", o.decayRate);
    if (o.staircase !== undefined && typeof o.staircase !== "boolean") {
      throw new ValueError(`ExponentialDecay staircase: expected true or false, got ${fmtValue(o.staircase)}`);
    }
    this.staircase = o.staircase ?? false;
    this.logRate = log(this.decayRate);
  }

  at(step: number): number {
    checkStep("ExponentialDecay", step);
    let p = step / this.decaySteps;
    if (this.staircase) p = Math.floor(p);
    return this.initialLearningRate * exp(p * this.logRate);
  }

  config(): ScheduleConfig {
    return {
      initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, decayRate: this.decayRate,
      staircase: this.staircase,
    };
  }
}

// -----------------------------------------------------------------------------------------------
// CosineDecay

export interface CosineDecayOptions {
  /** The rate at step 0: where the decay starts, or where the warmup starts when `warmupTarget` is set.
   * A positive finite number (or 0 with a warmupTarget: a warmup from zero). */
  initialLearningRate: number;
  /** The steps over which the cosine takes the rate down (after the warmup). A positive integer. */
  decaySteps: number;
  /** The floor, as a fraction of the rate the decay starts from. In [0, 1]. Default 0. */
  alpha?: number;
  /** The rate a linear warmup climbs to over `warmupSteps`, and the decay then starts from. Default none
   * (no warmup; the decay starts from initialLearningRate). A positive finite number. */
  warmupTarget?: number;
  /** The steps of the warmup. A non-negative integer; more than 0 needs a warmupTarget. Default 0. */
  warmupSteps?: number;
}

/**
 * Keras 3's `CosineDecay`, with its optional linear warmup. With d = decaySteps, w = warmupSteps:
 *
 * - no warmupTarget: lr(step) = initialLearningRate · ((1 − alpha) · ½(1 + cos(π · min(step, d) / d)) + alpha);
 * - with a warmupTarget: for step < w, lr = (warmupTarget − initialLearningRate) · step / w + initialLearningRate
 *   (linear, from initialLearningRate at step 0 towards warmupTarget); from step w on, the cosine decay above
 *   from warmupTarget, over the d steps counted after the warmup: lr = warmupTarget · ((1 − alpha) · ½(1 + cos(π ·
 *   min(step − w, d) / d)) + alpha). So the rate is warmupTarget at step w and warmupTarget · alpha from w + d on.
 *
 * As in Keras, a warmupTarget with warmupSteps 0 means no warmup but a decay from warmupTarget. Unlike Keras,
 * warmupSteps > 0 without a warmupTarget is refused (Keras ignores the warmup steps then). cos(πf) is computed
 * as cos2pi(f/2) from tensor/math.ts: exact at f = 0, ½ and 1, and the same bits in every engine.
 *
 * @example
 * const s = new CosineDecay({ initialLearningRate: 0, decaySteps: 90, warmupTarget: 0.1, warmupSteps: 10 });
 * s.at(5);     // 0.05 (half-way up the warmup)
 * s.at(10);    // 0.1
 * s.at(55);    // 0.05 (half-way down the cosine)
 * s.at(100);   // 0
 */
export class CosineDecay implements Schedule {
  readonly name = "cosineDecay" as const;
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly alpha: number;
  readonly warmupTarget: number | undefined;
  readonly warmupSteps: number;

  constructor(options: CosineDecayOptions) {
    const o = optionsObject("CosineDecay", options, ["initialLearningRate", "decaySteps", "alpha", "warmupTarget", "warmupSteps"]);
    if (o.warmupTarget !== undefined) this.warmupTarget = positiveFinite("CosineDecay warmupTarget", o.warmupTarget);
    const w = o.warmupSteps ?? 0;
    if (typeof w !== "number" || !Number.isSafeInteger(w) || w < 0) {
      throw new ValueError(`CosineDecay warmupSteps: expected a non-negative integer, got ${fmtValue(w)}`);
    }
    if (w > 0 && this.warmupTarget === undefined) {
      throw new ValueError(`CosineDecay warmupSteps: ${w} warmup steps need a warmupTarget (the rate the warmup climbs to), got warmupTarget undefined`);
    }
    this.warmupSteps = w;
    const lr0 = o.initialLearningRate;
    if (this.warmupTarget === undefined) {
      this.initialLearningRate = positiveFinite("CosineDecay initialLearningRate", lr0);
    } else if (typeof lr0 !== "number" || !Number.isFinite(lr0) || lr0 < 0) {
      throw new ValueError(`CosineDecay initialLearningRate: expected a non-negative finite number (the warmup's start), got ${fmtValue(lr0)}`);
    } else {
      this.initialLearningRate = lr0;
    }
    this.decaySteps = positiveInt("CosineDecay decaySteps", o.decaySteps);
    const alpha = o.alpha ?? 0;
    if (typeof alpha !== "number" || !(alpha >= 0 && alpha <= 1)) {
      throw new ValueError(`CosineDecay alpha: expected a number in [0, 1], got ${fmtValue(alpha)}`);
    }
    this.alpha = alpha;
  }

  at(step: number): number {
    checkStep("CosineDecay", step);
    const d = this.decaySteps, target = this.warmupTarget;
    if (target === undefined) return this.decayed(Math.min(step, d), this.initialLearningRate);
    const w = this.warmupSteps, s = Math.min(step, d + w);
    if (s < w) return (target - this.initialLearningRate) * (s / w) + this.initialLearningRate;
    return this.decayed(s - w, target);
  }

  /** from · ((1 − alpha) · ½(1 + cos(π · s / d)) + alpha), in Keras's order of operations. */
  private decayed(s: number, from: number): number {
    const cosine = 0.5 * (1 + cos2pi(0.5 * (s / this.decaySteps))); // cos(π·f) = cos(2π·f/2)
    return from * ((1 - this.alpha) * cosine + this.alpha);
  }

  config(): ScheduleConfig {
    return {
      initialLearningRate: this.initialLearningRate, decaySteps: this.decaySteps, alpha: this.alpha,
      warmupTarget: this.warmupTarget ?? null, warmupSteps: this.warmupSteps,
    };
  }
}

// -----------------------------------------------------------------------------------------------
// For optimizers and checkpoints

/**
 * Whether `v` is one of the library's schedules (an ExponentialDecay or a CosineDecay instance).
 *
 * @example
 * isSchedule(new CosineDecay({ initialLearningRate: 0.1, decaySteps: 10 }));   // true
 * isSchedule(0.01);                                                             // false
 */
export function isSchedule(v: unknown): v is ExponentialDecay | CosineDecay {
  return v instanceof ExponentialDecay || v instanceof CosineDecay;
}

/**
 * The fields each schedule's config holds: a checkpoint must have every one (no default is assumed), and
 * `warmupTarget` is null when there is none.
 */
export const SCHEDULE_FIELDS: Readonly<Record<ScheduleName, readonly string[]>> = {
  exponentialDecay: ["initialLearningRate", "decaySteps", "decayRate", "staircase"],
  cosineDecay: ["initialLearningRate", "decaySteps", "alpha", "warmupTarget", "warmupSteps"],
};

/**
 * A schedule as a checkpoint stores it: `{ schedule: name, config: config() }`.
 *
 * @example
 * scheduleToJSON(new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.9 }));
 * // { schedule: "exponentialDecay", config: { initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.9, staircase: false } }
 */
export function scheduleToJSON(s: Schedule): ScheduleJSON {
  return { schedule: s.name, config: s.config() };
}

/**
 * Rebuilds a schedule from its name and `config()` (warmupTarget null meaning none), validating every
 * option as the constructors do (ValueError naming it). The caller checks that every field is present.
 *
 * @example
 * makeSchedule("cosineDecay", { initialLearningRate: 0.1, decaySteps: 10, alpha: 0, warmupTarget: null, warmupSteps: 0 });
 */
export function makeSchedule(name: ScheduleName, config: Record<string, unknown>): ExponentialDecay | CosineDecay {
  if (name === "exponentialDecay") return new ExponentialDecay(config as unknown as ExponentialDecayOptions);
  const o: Record<string, unknown> = { ...config };
  if (o.warmupTarget === null) delete o.warmupTarget;
  return new CosineDecay(o as unknown as CosineDecayOptions);
}
