/**
 * The Adam update (Keras form) over the flat parameter buffer of each shape's model: one pass that
 * updates both moments and the weights. Checked against the formula on a few entries; the note gives
 * ns per parameter. (The model's atomic wrapper around it, with its backup copies, is part of the
 * train-step bench.)
 */
import { Adam } from "../src/optimizers.js";
import { LSTM } from "../src/layers/lstm.js";
import {
  type Case, type Options, type Spec, type Result, type Shape, SHAPES, rng, randomArray, runSpecs, standalone,
} from "./harness.js";

/** Parameters of LSTM(H) → Dense(1) on I inputs: I·4H + H·4H + 4H + H + 1. */
export function paramCount(s: Shape): number {
  return new LSTM({ units: s.H, inputDim: s.I }).paramCount() + s.H + 1;
}

export function adamCase(s: Shape): Case {
  const n = paramCount(s);
  const r = rng(41);
  const params = randomArray(Float64Array, n, r), grads = randomArray(Float64Array, n, r, 0.1);
  const opt = new Adam({ learningRate: 1e-3 });
  opt.init(n);
  return {
    name: `adam:params=${n} (${s.name})`,
    group: "adam",
    check: () => {
      const w0 = Float64Array.from(params), m0 = Float64Array.from(opt.m), v0 = Float64Array.from(opt.v);
      const t = opt.iterations + 1;
      opt.apply(params, grads);
      const { beta1: b1, beta2: b2, epsilon: eps, learningRate: lr } = opt;
      for (const k of [0, n >> 1, n - 1]) {
        const g = grads[k]!;
        const m = b1 * m0[k]! + (1 - b1) * g, v = b2 * v0[k]! + (1 - b2) * g * g;
        const want = w0[k]! - (lr * Math.sqrt(1 - b2 ** t) / (1 - b1 ** t)) * m / (Math.sqrt(v) + eps);
        if (!(Math.abs(params[k]! - want) <= 1e-15 * (1 + Math.abs(want)))) throw new Error(`param ${k} = ${params[k]} vs formula ${want}`);
      }
    },
    run: () => opt.apply(params, grads),
    note: (ms) => `${((ms * 1e6) / n).toFixed(2)} ns/param`,
  };
}

export function adamSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S2") : SHAPES;
  return shapes.map((s) => ({ name: `adam:params=${paramCount(s)} (${s.name})`, group: "adam", build: () => adamCase(s) }));
}

export async function runAdam(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "adam: one update of the flat parameter buffer (float64)", adamSpecs(opts), results);
}

await standalone("adam", import.meta.url, runAdam);
