/**
 * Finite-difference gradient checking for users: compares `computeGradients` with the fourth-order central
 * difference [8(L(w+ε) - L(w-ε)) - (L(w+2ε) - L(w-2ε))] / 12ε in float64, weight by weight, over the input
 * and over the initial states, and reports the worst relative errors. (The two-point (L(w+ε) - L(w-ε))/2ε cannot certify 1e-6: its truncation and
 * round-off meet at ~1e-11 absolute, a relative 1e-5 on gradients near the floor.)
 */
import { Sequential } from "./model.js";
import { type Tensor, type TensorLike, tensor } from "./tensor/tensor.js";
import { checkBatch } from "./validate.js";
import { Rng } from "./init.js";
import { ValueError, checkKeys, fmtValue, fmtInstance } from "./errors.js";

export interface GradCheckOptions {
  /** The finite-difference step. Default 1e-3 (truncation ~ε⁴ and round-off ~1e-16/ε both ~1e-13). */
  epsilon?: number;
  /** Entries checked per tensor; all of them when the tensor has fewer. Default 40. */
  samples?: number;
  /** Denominator floor for the relative error |a - n| / max(|a|, |n|, floor), so that gradients that are
   * zero up to round-off do not count as failures. Default 1e-6. */
  floor?: number;
  /** Seed for choosing the sampled entries. Default 0. */
  seed?: number;
  /** What to check: the weights' gradients, dL/dx (`inputGrad`) and dL/d(initial state) (`stateGrads`).
   * Default all three. */
  wrt?: ("weights" | "input" | "states")[];
}

export interface GradCheckResult {
  /** The worst over everything checked. */
  maxRelativeError: number;
  perWeight: { name: string; maxRelativeError: number; checked: number }[];
  /** computeGradients' inputGrad against differences in x (when "input" is checked). */
  input?: { maxRelativeError: number; checked: number };
  /** computeGradients' stateGrads against differences in the initial state, per recurrent layer: "lstm_0/h",
   * "lstm_0/c", "gru_0/h", … (when "states" is checked). The initial state is the carried one of a stateful model,
   * else zeros. */
  states?: { name: string; maxRelativeError: number; checked: number }[];
}

/**
 * Checks a float64 model's gradients on (x, y) against finite differences of its loss: every weight's, and
 * dL/dx and dL/d(initial state). The model's weights and LSTM states are left as they were.
 *
 * @example
 * const { maxRelativeError, perWeight, input, states } = gradCheck(model, x, y);
 * console.table(perWeight);                           // worst relative error per weight
 */
export function gradCheck(model: Sequential, x: TensorLike, y: TensorLike, options: GradCheckOptions = {}): GradCheckResult {
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`gradCheck options: expected an object like { epsilon, samples }, got ${fmtValue(options)}`);
  }
  checkKeys("gradCheck", options, ["epsilon", "samples", "floor", "seed", "wrt"]);
  if (!(model instanceof Sequential)) throw new ValueError(`gradCheck model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  if (model.dtype !== "float64") {
    throw new ValueError(`gradCheck model: expected a float64 model (finite differences need the precision), got ${model.dtype}; build a float64 copy and setWeights`);
  }
  const eps = options.epsilon ?? 1e-3;
  const samples = options.samples ?? 40;
  const floor = options.floor ?? 1e-6;
  const wrt = options.wrt ?? ["weights", "input", "states"];
  if (typeof eps !== "number" || !(eps > 0)) throw new ValueError(`gradCheck epsilon: expected a positive number, got ${fmtValue(eps)}`);
  if (!Number.isInteger(samples) || samples <= 0) throw new ValueError(`gradCheck samples: expected a positive integer, got ${fmtValue(samples)}`);
  if (typeof floor !== "number" || !(floor > 0)) throw new ValueError(`gradCheck floor: expected a positive number, got ${fmtValue(floor)}`);
  if (options.seed !== undefined && !Number.isFinite(options.seed)) throw new ValueError(`gradCheck seed: expected a finite number, got ${fmtValue(options.seed)}`);
  if (!Array.isArray(wrt) || wrt.length === 0 || wrt.some((w) => w !== "weights" && w !== "input" && w !== "states")) {
    throw new ValueError(`gradCheck wrt: expected a non-empty array of "weights", "input", "states", got ${Array.isArray(wrt) ? JSON.stringify(wrt) : fmtValue(wrt)}`);
  }
  const e = model.engine;
  const { xt, yt, B, T } = checkBatch(e, "gradCheck", x, y);
  // A copy of x to perturb, and the initial states the pass starts from (carried, or zeros).
  const xc = tensor(xt as Tensor, "float64");
  const states = e.rnns.map((l, i) => {
    const n = B * l.stateUnits, carried = e.carries(i, B);
    return l.stateNames.map((_, s) => (carried ? Float64Array.from(e.state[i]![s]!) : new Float64Array(n)));
  });
  const analytic = model.computeGradients(xc, yt as Tensor, { keepState: true });
  const lossAt = (): number => e.lossFrom(xc, yt, B, T, states);
  const rng = new Rng(`gradcheck/${options.seed ?? 0}`);
  /** The worst relative error over sampled entries of `values` (perturbed in place, then restored). */
  const check = (values: Float64Array, grad: ArrayLike<number>, allowed?: (i: number) => boolean): { maxRelativeError: number; checked: number } => {
    const pool: number[] = [];
    for (let i = 0; i < values.length; i++) if (!allowed || allowed(i)) pool.push(i);
    const n = pool.length, idx: number[] = [];
    if (n <= samples) idx.push(...pool);
    else for (let i = 0; i < samples; i++) idx.push(pool[rng.int(n)]!);
    let worst = 0;
    for (const i of idx) {
      const saved = values[i]!;
      values[i] = saved + eps;
      const lp = lossAt();
      values[i] = saved - eps;
      const lm = lossAt();
      values[i] = saved + 2 * eps;
      const lp2 = lossAt();
      values[i] = saved - 2 * eps;
      const lm2 = lossAt();
      values[i] = saved;
      const num = (8 * (lp - lm) - (lp2 - lm2)) / (12 * eps), a = grad[i]!;
      const rel = Math.abs(a - num) / Math.max(Math.abs(a), Math.abs(num), floor);
      if (rel > worst || Number.isNaN(rel)) worst = rel;
    }
    return { maxRelativeError: worst, checked: idx.length };
  };
  const result: GradCheckResult = { maxRelativeError: 0, perWeight: [] };
  if (wrt.includes("weights")) {
    const names = model.weightNames(), params = e.params as Float64Array;
    let off = 0;
    analytic.grads.forEach((g, w) => {
      const n = g.data.length;
      result.perWeight.push({ name: names[w]!, ...check(params.subarray(off, off + n), g.data) });
      off += n;
    });
  }
  if (wrt.includes("input") && !e.readsIds) { // ids are not differentiable
    // A masked step is a discrete choice, not a smooth function of its inputs (a nudge un-masks it): only kept
    // steps' inputs are checked.
    const mv = e.maskValue, F = e.inputDim!, xd = xc.data;
    const kept = mv === null ? undefined : (i: number): boolean => {
      const s = i - (i % F);
      for (let f = s; f < s + F; f++) if (xd[f] !== mv) return true;
      return false;
    };
    result.input = check(xc.data as Float64Array, analytic.inputGrad.data, kept);
  }
  if (wrt.includes("states")) {
    const count = new Map<string, number>(); // layers counted per kind, as in weight names: "lstm_0/h", "gru_0/h"
    const layerNames = e.rnns.map((l) => { const k = count.get(l.kind) ?? 0; count.set(l.kind, k + 1); return `${l.kind}_${k}/`; });
    result.states = states.flatMap((st, i) => e.rnns[i]!.stateNames.map((nm, s) => (
      { name: `${layerNames[i]}${nm}`, ...check(st[s]!, (analytic.stateGrads[i] as unknown as Record<string, Tensor>)[nm]!.data) }
    )));
  }
  const all = [...result.perWeight, ...(result.input ? [result.input] : []), ...(result.states ?? [])];
  result.maxRelativeError = Math.max(...all.map((p) => p.maxRelativeError));
  return result;
}
