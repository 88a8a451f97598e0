/**
 * TruncatedBPTT while it trains (updates on), against an independent reference written here from the
 * README's rules with plain loops (nothing of src/ but the model under test):
 *
 * - every k1 steps one SGD update, from the window's loss (before the update);
 * - the forward pass of a window uses the weights of its time, from the state the last window left;
 * - each window's backward pass runs from its last step back to step t1 − k2 (t1 = the window's end), the same
 *   cut for every loss term of the window: through the window's own steps, and with k2 > k1 through the kept
 *   steps of earlier windows, whose activations (gates, c, h) were computed with the weights of their own time,
 *   while the products that carry the gradient (dh_{t−1} = dz·Rᵀ) use the current weights;
 * - with k2 < k1 the cut falls inside the window, and per-step loss terms before it train only the head.
 *
 * One LSTM → Dense (linear) head with MSE and SGD, labels per sequence (loss at each window's end) and per
 * step, k2 < k1, k2 > k1 and k2 ≥ T, whole sequences and chunks.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import { Sequential, LSTM, Dense, SGD, TruncatedBPTT, type Tensor } from "../src/index.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

interface Weights { K: Float64Array; R: Float64Array; b: Float64Array; W: Float64Array; bd: Float64Array } // K (F, 4H), R (H, 4H), b (4H), W (H, D), bd (D)
interface Record { x: Float64Array; hPrev: Float64Array; cPrev: Float64Array; gates: Float64Array; c: Float64Array; tc: Float64Array; h: Float64Array }

const sig = (v: number): number => 1 / (1 + Math.exp(-v));

/** One LSTM step for B rows (Keras gate order i, f, c, o), keeping everything the backward pass needs. */
function step(w: Weights, B: number, F: number, H: number, x: Float64Array, hPrev: Float64Array, cPrev: Float64Array): Record {
  const G = 4 * H, gates = new Float64Array(B * G), c = new Float64Array(B * H), tc = new Float64Array(B * H), h = new Float64Array(B * H);
  for (let r = 0; r < B; r++) {
    for (let j = 0; j < G; j++) {
      let z = w.b[j]!;
      for (let k = 0; k < F; k++) z += x[r * F + k]! * w.K[k * G + j]!;
      for (let k = 0; k < H; k++) z += hPrev[r * H + k]! * w.R[k * G + j]!;
      gates[r * G + j] = j >= 2 * H && j < 3 * H ? Math.tanh(z) : sig(z);
    }
    for (let j = 0; j < H; j++) {
      const i = gates[r * G + j]!, f = gates[r * G + H + j]!, g = gates[r * G + 2 * H + j]!, o = gates[r * G + 3 * H + j]!;
      c[r * H + j] = f * cPrev[r * H + j]! + i * g;
      tc[r * H + j] = Math.tanh(c[r * H + j]!);
      h[r * H + j] = o * tc[r * H + j]!;
    }
  }
  return { x, hPrev, cPrev, gates, c, tc, h };
}

/** The reference trainer: returns each window's loss and the final weights. */
function reference(
  w0: Weights, xs: Float64Array[], ys: Float64Array[] | Float64Array, B: number, F: number, H: number, D: number,
  k1: number, k2: number, lr: number,
): { losses: number[]; w: Weights } {
  const w: Weights = { K: w0.K.slice(), R: w0.R.slice(), b: w0.b.slice(), W: w0.W.slice(), bd: w0.bd.slice() };
  const T = xs.length, G = 4 * H, perStep = Array.isArray(ys);
  const recs: Record[] = [];
  let h: Float64Array = new Float64Array(B * H), c: Float64Array = new Float64Array(B * H);
  const losses: number[] = [];
  for (let s = 0; s < T; s += k1) {
    const e = Math.min(s + k1, T);
    for (let t = s; t < e; t++) { recs[t] = step(w, B, F, H, xs[t]!, h, c); h = recs[t]!.h as Float64Array; c = recs[t]!.c as Float64Array; }
    // The head's loss: MSE over every (row, step, unit) it covers; dOut per covered step.
    const terms = perStep ? Array.from({ length: e - s }, (_, k) => s + k) : [e - 1];
    const n = B * D * terms.length;
    const dOut = new Map<number, Float64Array>();
    const g = { K: new Float64Array(w.K.length), R: new Float64Array(w.R.length), b: new Float64Array(G), W: new Float64Array(w.W.length), bd: new Float64Array(D) };
    let loss = 0;
    for (const t of terms) {
      const y = perStep ? (ys as Float64Array[])[t]! : (ys as Float64Array);
      const d = new Float64Array(B * D), hh = recs[t]!.h;
      for (let r = 0; r < B; r++) {
        for (let u = 0; u < D; u++) {
          let out = w.bd[u]!;
          for (let k = 0; k < H; k++) out += hh[r * H + k]! * w.W[k * D + u]!;
          const diff = out - y[r * D + u]!;
          loss += diff * diff / n;
          d[r * D + u] = 2 * diff / n;
          g.bd[u] += d[r * D + u]!;
          for (let k = 0; k < H; k++) g.W[k * D + u] += hh[r * H + k]! * d[r * D + u]!; // the head learns from every term
        }
      }
      dOut.set(t, d);
    }
    losses.push(loss);
    // Backward from the window's end down to e − k2, with the current weights in every product.
    let dh: Float64Array = new Float64Array(B * H), dc: Float64Array = new Float64Array(B * H);
    for (let t = e - 1; t >= Math.max(0, e - k2); t--) {
      const d = dOut.get(t);
      if (d) for (let r = 0; r < B; r++) for (let k = 0; k < H; k++) for (let u = 0; u < D; u++) dh[r * H + k] += d[r * D + u]! * w.W[k * D + u]!;
      const rec = recs[t]!, dz = new Float64Array(B * G), dcPrev = new Float64Array(B * H);
      for (let r = 0; r < B; r++) {
        for (let j = 0; j < H; j++) {
          const q = r * G, i = rec.gates[q + j]!, f = rec.gates[q + H + j]!, gg = rec.gates[q + 2 * H + j]!, o = rec.gates[q + 3 * H + j]!;
          const tcv = rec.tc[r * H + j]!, dhv = dh[r * H + j]!;
          const dcv = dc[r * H + j]! + dhv * o * (1 - tcv * tcv);
          dz[q + j] = dcv * gg * i * (1 - i);
          dz[q + H + j] = dcv * rec.cPrev[r * H + j]! * f * (1 - f);
          dz[q + 2 * H + j] = dcv * i * (1 - gg * gg);
          dz[q + 3 * H + j] = dhv * tcv * o * (1 - o);
          dcPrev[r * H + j] = dcv * f;
        }
      }
      const dhPrev = new Float64Array(B * H);
      for (let r = 0; r < B; r++) {
        for (let j = 0; j < G; j++) {
          const v = dz[r * G + j]!;
          g.b[j] += v;
          for (let k = 0; k < F; k++) g.K[k * G + j] += rec.x[r * F + k]! * v;
          for (let k = 0; k < H; k++) { g.R[k * G + j] += rec.hPrev[r * H + k]! * v; dhPrev[r * H + k] += v * w.R[k * G + j]!; }
        }
      }
      dh = dhPrev;
      dc = dcPrev;
    }
    for (const k of ["K", "R", "b", "W", "bd"] as const) for (let q = 0; q < w[k].length; q++) w[k][q] -= lr * g[k][q]!;
  }
  return { losses, w };
}

const B = 3, F = 2, H = 4, D = 2, T = 12, LR = 0.3;

function setup(seed: string, perStep: boolean) {
  const rng = makeRng(`tbptt-ref/${seed}`);
  const w0: Weights = {
    K: uniformArray(rng, F * 4 * H, -0.8, 0.8), R: uniformArray(rng, H * 4 * H, -0.8, 0.8), b: uniformArray(rng, 4 * H, -0.5, 0.5),
    W: uniformArray(rng, H * D, -0.8, 0.8), bd: uniformArray(rng, D, -0.3, 0.3),
  };
  const xs = Array.from({ length: T }, () => uniformArray(rng, B * F, -1.5, 1.5)); // time-major: xs[t] (B, F)
  const ys = perStep ? Array.from({ length: T }, () => uniformArray(rng, B * D, -1, 1)) : uniformArray(rng, B * D, -1, 1);
  const model = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: perStep }), new Dense({ units: D })], { seed: 1 });
  model.compile({ optimizer: new SGD({ learningRate: LR }), loss: "meanSquaredError" });
  const t = (data: Float64Array, shape: number[]) => ndarray(data, shape) as Tensor;
  model.setWeights([t(w0.K, [F, 4 * H]), t(w0.R, [H, 4 * H]), t(w0.b, [4 * H]), t(w0.W, [H, D]), t(w0.bd, [D])]);
  // Batch-major tensors for the model.
  const x = new Float64Array(B * T * F);
  for (let tt = 0; tt < T; tt++) for (let r = 0; r < B; r++) for (let k = 0; k < F; k++) x[(r * T + tt) * F + k] = xs[tt]![r * F + k]!;
  let y: Tensor;
  if (perStep) {
    const yy = new Float64Array(B * T * D);
    for (let tt = 0; tt < T; tt++) for (let r = 0; r < B; r++) for (let u = 0; u < D; u++) yy[(r * T + tt) * D + u] = (ys as Float64Array[])[tt]![r * D + u]!;
    y = t(yy, [B, T, D]);
  } else y = t(ys as Float64Array, [B, D]);
  return { w0, xs, ys, model, x: t(x, [B, T, F]), y };
}

function expectClose(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= 1e-12 * (1 + Math.abs(want[i]!)))) expect.fail(`${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

describe("TruncatedBPTT with updates on, against an independent reference", () => {
  const cases: [number, number][] = [[3, 5], [4, 2], [3, 9], [2, 12], [4, 4]];
  for (const perStep of [false, true]) {
    for (const [k1, k2] of cases) {
      it(`k1=${k1} k2=${k2}, labels ${perStep ? "per step" : "per sequence"}: every window's loss and the final weights`, () => {
        const { w0, xs, ys, model, x, y } = setup(`${k1}/${k2}/${perStep}`, perStep);
        const ref = reference(w0, xs, ys, B, F, H, D, k1, k2, LR);
        const res = new TruncatedBPTT(model, { windowLength: k1, backpropLength: k2 }).trainSequence(x, y);
        expectClose("losses", res.losses, ref.losses);
        const [K, R, b, W, bd] = model.getWeights();
        expectClose("kernel", K!.data, ref.w.K);
        expectClose("recurrentKernel", R!.data, ref.w.R);
        expectClose("bias", b!.data, ref.w.b);
        expectClose("dense kernel", W!.data, ref.w.W);
        expectClose("dense bias", bd!.data, ref.w.bd);
        // Not vacuous: k2 matters. The same data with k2 = k1 ends elsewhere (unless k2 = k1 already).
        if (k2 !== k1) {
          const other = reference(w0, xs, ys, B, F, H, D, k1, k1, LR);
          expect(Math.max(...ref.w.K.map((v, i) => Math.abs(v - other.w.K[i]!)))).toBeGreaterThan(1e-6);
        }
      });
    }
  }

  it("fed in chunks (endOfSequence: false) it trains exactly as the reference does on the whole sequence", () => {
    const k1 = 3, k2 = 7;
    const { w0, xs, ys, model, x } = setup("chunks", true);
    const ref = reference(w0, xs, ys, B, F, H, D, k1, k2, LR);
    const tb = new TruncatedBPTT(model, { windowLength: k1, backpropLength: k2 });
    const losses: number[] = [];
    // Chunks of 5, 2 and 5 steps: windows straddle the chunk boundaries.
    const cut = (a: Tensor, t0: number, t1: number, d: number): Tensor => {
      const out = new Float64Array(B * (t1 - t0) * d);
      for (let r = 0; r < B; r++) for (let t = t0; t < t1; t++) for (let k = 0; k < d; k++) out[(r * (t1 - t0) + t - t0) * d + k] = a.data[(r * T + t) * d + k]!;
      return ndarray(out, [B, t1 - t0, d]) as Tensor;
    };
    const yFull = new Float64Array(B * T * D);
    for (let t = 0; t < T; t++) for (let r = 0; r < B; r++) for (let u = 0; u < D; u++) yFull[(r * T + t) * D + u] = (ys as Float64Array[])[t]![r * D + u]!;
    const y = ndarray(yFull, [B, T, D]) as Tensor;
    for (const [t0, t1] of [[0, 5], [5, 7], [7, 12]] as const) {
      losses.push(...tb.trainSequence(cut(x, t0, t1, F), cut(y, t0, t1, D), { endOfSequence: t1 === T }).losses);
    }
    expectClose("losses", losses, ref.losses);
    expectClose("kernel", model.getWeights()[0]!.data, ref.w.K);
    expectClose("recurrentKernel", model.getWeights()[1]!.data, ref.w.R);
  });
});
