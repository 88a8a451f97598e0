/**
 * One LSTM layer over a whole window: lstmForward (input projection for all T steps at once, then T
 * recurrent steps) and lstmBackward (T recurrent steps back, then dKernel, dRecurrentKernel, dx over all
 * T·B rows at once), at the shapes of PERFORMANCE.md, float64.
 *
 * Checks: forward against a naive forward (naiveMatmul + naiveLstmStep) on two batch rows; backward by a
 * directional derivative: for L = <r, h_T> and a random direction v over all weights, the analytic
 * Σ dL/dw · v must match (L(w + εv) - L(w - εv)) / 2ε.
 * FLOPs: forward = 2·B·T·(I+H)·4H; backward = 2 × forward (dh per step, dKernel, dRecurrentKernel, dx).
 */
import { LSTM, LSTMWorkspace, lstmForward, lstmBackward, lstmWorkspace } from "../src/layers/lstm.js";
import { naiveMatmul, naiveLstmStep } from "../src/tensor/naive.js";
import {
  type Case, type Options, type Spec, type Result, type Shape, SHAPES, rng, randomArray, runSpecs,
  forwardFlops, shapeLabel, standalone,
} from "./harness.js";

interface Layer {
  layer: LSTM;
  params: Float64Array;
  grads: Float64Array;
  xs: Float64Array; // (T, B, I)
  ws: LSTMWorkspace;
}

function makeLayer(s: Shape, seed: number): Layer {
  const r = rng(seed);
  const layer = new LSTM({ units: s.H, inputDim: s.I });
  const n = layer.paramCount();
  const params = randomArray(Float64Array, n, r, 0.3) as Float64Array, grads = new Float64Array(n);
  layer.bind(params, grads, 0);
  const ws = lstmWorkspace(layer, "float64", s.B, s.T, null);
  const xs = randomArray(Float64Array, s.T * s.B * s.I, r) as Float64Array;
  return { layer, params, grads, xs, ws };
}

/** h_T of batch row b by the naive kernels, from zero state. */
function naiveLastH(L: Layer, s: Shape, b: number): number[] {
  const { I, H, B, T } = s, G = 4 * H;
  let h = new Float64Array(H), c = new Float64Array(H);
  const z = new Float64Array(G);
  for (let t = 0; t < T; t++) {
    naiveMatmul(false, false, 1, G, I, L.xs, (t * B + b) * I, I, L.layer.kernel, 0, G, z, 0, G, false);
    naiveMatmul(false, false, 1, G, H, h, 0, H, L.layer.recurrentKernel, 0, G, z, 0, G, true);
    for (let j = 0; j < G; j++) z[j] = z[j]! + L.layer.bias![j]!;
    const st = naiveLstmStep(1, H, z, c);
    h = Float64Array.from(st.h);
    c = Float64Array.from(st.c);
  }
  return Array.from(h);
}

export function lstmForwardCase(s: Shape): Case {
  const L = makeLayer(s, 21);
  const ws = L.ws;
  return {
    name: `lstmForward:${shapeLabel(s)}`,
    group: "lstm",
    flops: forwardFlops(s),
    check: () => {
      lstmForward(L.layer, ws, L.xs, 0, 0, s.T);
      for (const b of [0, s.B - 1]) {
        const ref = naiveLastH(L, s, b);
        const off = (s.T * s.B + b) * s.H;
        for (let j = 0; j < s.H; j++) {
          const got = ws.hs[off + j]!;
          if (!(Math.abs(got - ref[j]!) <= 1e-12)) throw new Error(`h_T[${b}, ${j}] = ${got} vs naive ${ref[j]}`);
        }
      }
    },
    run: () => lstmForward(L.layer, ws, L.xs, 0, 0, s.T),
  };
}

export function lstmBackwardCase(s: Shape): Case {
  const L = makeLayer(s, 22);
  const ws = L.ws;
  const BH = s.B * s.H;
  const r = rng(23);
  const proj = randomArray(Float64Array, BH, r) as Float64Array; // L = <proj, h_T>
  const loss = (): number => {
    lstmForward(L.layer, ws, L.xs, 0, 0, s.T);
    let v = 0;
    for (let k = 0; k < BH; k++) v += proj[k]! * ws.hs[s.T * BH + k]!;
    return v;
  };
  return {
    name: `lstmBackward:${shapeLabel(s)}`,
    group: "lstm",
    flops: 2 * forwardFlops(s),
    check: () => {
      loss();
      L.grads.fill(0);
      lstmBackward(L.layer, ws, L.xs, 0, 0, s.T, null, 0, 0, proj, 0, null, 0);
      const v = randomArray(Float64Array, L.params.length, rng(24));
      let analytic = 0;
      for (let k = 0; k < v.length; k++) analytic += L.grads[k]! * v[k]!;
      const w0 = Float64Array.from(L.params), eps = 1e-6;
      for (let k = 0; k < v.length; k++) L.params[k] = w0[k]! + eps * v[k]!;
      const up = loss();
      for (let k = 0; k < v.length; k++) L.params[k] = w0[k]! - eps * v[k]!;
      const down = loss();
      L.params.set(w0);
      loss(); // leave the workspace holding the unperturbed forward for the timed backward
      const fd = (up - down) / (2 * eps);
      if (!(Math.abs(fd - analytic) <= 1e-6 * (Math.abs(fd) + 1))) throw new Error(`directional derivative ${analytic} vs finite difference ${fd}`);
    },
    // Gradients accumulate from op to op (as across the windows of truncated BPTT); the work is the same.
    run: () => lstmBackward(L.layer, ws, L.xs, 0, 0, s.T, null, 0, 0, proj, 0, null, 0),
  };
}

export function lstmSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S0" || s.name === "S2") : SHAPES;
  return shapes.flatMap((s) => [
    { name: `lstmForward:${shapeLabel(s)}`, group: "lstm", build: () => lstmForwardCase(s) },
    { name: `lstmBackward:${shapeLabel(s)}`, group: "lstm", build: () => lstmBackwardCase(s) },
  ]);
}

export async function runLstm(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "lstm: one layer over a whole window (float64; forward = 2·B·T·(I+H)·4H, backward = 2 × forward)", lstmSpecs(opts), results);
}

await standalone("lstm", import.meta.url, runLstm);
