/**
 * Finite-difference gradient checking for users: compares `computeGradients` with the fourth-order central
 * difference [8(L(w+ε) - L(w-ε)) - (L(w+2ε) - L(w-2ε))] / 12ε in float64, weight by weight, and reports the
 * worst relative error. (The two-point (L(w+ε) - L(w-ε))/2ε cannot certify 1e-6: its truncation and
 * round-off meet at ~1e-11 absolute, a relative 1e-5 on gradients near the floor.)
 */
import { Sequential } from "./model.js";
import type { TensorLike } from "./tensor/tensor.js";
import { Rng } from "./init.js";
import { ValueError, fmtValue } from "./errors.js";

export interface GradCheckOptions {
  /** The finite-difference step. Default 1e-3 (truncation ~ε⁴ and round-off ~1e-16/ε both ~1e-13). */
  epsilon?: number;
  /** Entries checked per weight tensor; all of them when the tensor has fewer. Default 40. */
  samples?: number;
  /** Denominator floor for the relative error |a - n| / max(|a|, |n|, floor), so that gradients that are
   * zero up to round-off do not count as failures. Default 1e-6. */
  floor?: number;
  /** Seed for choosing the sampled entries. Default 0. */
  seed?: number;
}

export interface GradCheckResult {
  maxRelativeError: number;
  perWeight: { name: string; maxRelativeError: number; checked: number }[];
}

/**
 * Checks every weight's gradient of a float64 model on (x, y). The model's weights and LSTM states are
 * left as they were.
 *
 * @example
 * const { maxRelativeError, perWeight } = gradCheck(model, x, y);
 * console.table(perWeight);                           // worst relative error per weight
 */
export function gradCheck(model: Sequential, x: TensorLike, y: TensorLike, options: GradCheckOptions = {}): GradCheckResult {
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`gradCheck options: expected an object like { epsilon, samples }, got ${fmtValue(options)}`);
  }
  if (!(model instanceof Sequential)) throw new ValueError(`gradCheck model: expected a Sequential, got ${fmtValue(model)}`);
  if (model.dtype !== "float64") {
    throw new ValueError(`gradCheck model: expected a float64 model (finite differences need the precision), got ${model.dtype}; build a float64 copy and setWeights`);
  }
  const eps = options.epsilon ?? 1e-3;
  const samples = options.samples ?? 40;
  const floor = options.floor ?? 1e-6;
  if (typeof eps !== "number" || !(eps > 0)) throw new ValueError(`gradCheck epsilon: expected a positive number, got ${fmtValue(eps)}`);
  if (!Number.isInteger(samples) || samples <= 0) throw new ValueError(`gradCheck samples: expected a positive integer, got ${fmtValue(samples)}`);
  if (typeof floor !== "number" || !(floor > 0)) throw new ValueError(`gradCheck floor: expected a positive number, got ${fmtValue(floor)}`);
  if (options.seed !== undefined && !Number.isFinite(options.seed)) throw new ValueError(`gradCheck seed: expected a finite number, got ${fmtValue(options.seed)}`);
  const states = model.getStates();
  const hadStates = states.every((s) => s.h.shape[0]! > 0);
  const restore = (): void => {
    if (hadStates) model.resetStates(states);
    else model.resetStates();
  };
  restore();
  const analytic = model.computeGradients(x, y).grads;
  const names = model.weightNames();
  const params = model.engine.params;
  const rng = new Rng(`gradcheck/${options.seed ?? 0}`);
  const lossAt = (): number => {
    restore();
    return model.testOnBatch(x, y).loss;
  };
  const perWeight: GradCheckResult["perWeight"] = [];
  let off = 0;
  analytic.forEach((g, w) => {
    const n = g.data.length;
    const idx: number[] = [];
    if (n <= samples) for (let i = 0; i < n; i++) idx.push(i);
    else for (let i = 0; i < samples; i++) idx.push(rng.int(n));
    let worst = 0;
    for (const i of idx) {
      const k = off + i, saved = params[k]!;
      params[k] = saved + eps;
      const lp = lossAt();
      params[k] = saved - eps;
      const lm = lossAt();
      params[k] = saved + 2 * eps;
      const lp2 = lossAt();
      params[k] = saved - 2 * eps;
      const lm2 = lossAt();
      params[k] = saved;
      const num = (8 * (lp - lm) - (lp2 - lm2)) / (12 * eps), a = g.data[i]!;
      const rel = Math.abs(a - num) / Math.max(Math.abs(a), Math.abs(num), floor);
      if (rel > worst || Number.isNaN(rel)) worst = rel;
    }
    perWeight.push({ name: names[w]!, maxRelativeError: worst, checked: idx.length });
    off += n;
  });
  restore();
  // A model that had run no pass yet has no states: leave it so.
  if (!hadStates) model.engine.clearStates();
  return { maxRelativeError: Math.max(...perWeight.map((p) => p.maxRelativeError)), perWeight };
}
