/**
 * Gradient checks of every engine piece on its own, in float64, with the one helper
 * (test/helpers/gradcheck.ts: fourth-order central differences against a seeded random projection):
 * the fused gate kernels, one LSTM layer's forward/backward (full ranges, offset ranges, truncated
 * sub-ranges), the Dense layer for each activation, and the three losses. Worst relative error ≤ 1e-6.
 */
import { afterAll, describe, expect, it } from "vitest";
import { lstmGatesForward, lstmGatesBackward, lstmGatesBackwardHard } from "../src/tensor/kernels.js";
import { naiveLstmStep } from "../src/tensor/naive.js";
import { LSTM, LSTMWorkspace, lstmForward, lstmBackward } from "../src/layers/lstm.js";
import { Dense, DenseWorkspace, denseForward, denseBackward, type Activation } from "../src/layers/dense.js";
import { bceFromLogits, bceFromProbs, meanSquaredError, meanAbsoluteError, huber, BCE_EPSILON } from "../src/losses.js";
import {
  makeRng, uniformArray, fillUniform, project, checkGradients, expectGradientsMatch, WorstTracker,
  maxAbsDiff, type Wrt,
} from "./helpers/gradcheck.js";

const TOL = 1e-6;
const worst = new WorstTracker();
// The figures quoted in reports: GRADCHECK_REPORT=1 npx vitest run test/gradients.test.ts
afterAll(() => { if (process.env.GRADCHECK_REPORT) console.log(`worst relative errors (pieces):\n${worst.summary()}`); });

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

describe("lstmGatesForward / lstmGatesBackward", () => {
  for (const [B, H, hard] of [[1, 1, false], [3, 4, false], [2, 7, false], [1, 1, true], [3, 4, true], [2, 7, true]] as const) {
    it(`B=${B} H=${H}${hard ? " hardSigmoid" : ""}: dz and dL/dc_{t-1} match finite differences; forward matches the naive step`, () => {
      const rng = makeRng(`gates/${B}/${H}/${hard}`);
      const G = 4 * H, BH = B * H;
      // Offsets into larger buffers, as the layer uses them (one timestep of a (T, B, ·) buffer).
      const zOff = 5, cpOff = 3, cOff = 2, tOff = 7, hOff = 1;
      // (B, G) pre-activations at zOff; for hardSigmoid wide enough that some gates sit on each clipped side.
      const z0 = uniformArray(rng, zOff + B * G, hard ? -4 : -2.5, hard ? 4 : 2.5);
      const cPrev = uniformArray(rng, cpOff + BH, -2, 2);                // (B, H) at cpOff
      const rh = uniformArray(rng, BH), rc = uniformArray(rng, BH);      // the projection: L = <rh, h> + <rc, c>
      const z = new Float64Array(z0.length), c = new Float64Array(cOff + BH);
      const tanhC = new Float64Array(tOff + BH), h = new Float64Array(hOff + BH);
      const loss = (): number => {
        z.set(z0); // forward overwrites z with the activations
        lstmGatesForward(B, H, z, zOff, cPrev, cpOff, c, cOff, tanhC, tOff, h, hOff, hard);
        return project(BH, h, hOff, rh) + project(BH, c, cOff, rc);
      };
      loss();
      const ref = naiveLstmStep(B, H, z0.subarray(zOff), cPrev.subarray(cpOff), hard);
      expect(maxAbsDiff(BH, h, hOff, ref.h, 0)).toBeLessThanOrEqual(1e-15);
      expect(maxAbsDiff(BH, c, cOff, ref.c, 0)).toBeLessThanOrEqual(1e-15);
      expect(maxAbsDiff(B * G, z, zOff, ref.gates, 0)).toBeLessThanOrEqual(1e-15);

      const dhOff = 4, dcOff = 6, dzOff = 9;
      const dh = new Float64Array(dhOff + BH); dh.set(rh, dhOff);
      const dc = new Float64Array(dcOff + BH); dc.set(rc, dcOff);
      const dz = new Float64Array(dzOff + B * G);
      (hard ? lstmGatesBackwardHard : lstmGatesBackward)(B, H, z, zOff, cPrev, cpOff, tanhC, tOff, dh, dhOff, dc, dcOff, dz, dzOff);
      expect(Array.from(dh.subarray(dhOff)), "dh is an input and must not change").toEqual(Array.from(rh));
      const rep = checkGradients(loss, [
        { name: "dz", values: z0, off: zOff, count: B * G, analytic: dz.subarray(dzOff) },
        { name: "dcPrev", values: cPrev, off: cpOff, count: BH, analytic: dc.subarray(dcOff) },
      ]);
      if (hard) { // both clipped sides and the ramp are exercised, or the test proves less than it says
        const gatesOnly = Array.from(z.subarray(zOff)).filter((_, q) => Math.floor(q / H) % 4 !== 2);
        if (B * H > 1) expect(gatesOnly.some((v) => v === 0) && gatesOnly.some((v) => v === 1) && gatesOnly.some((v) => v > 0 && v < 1)).toBe(true);
      }
      worst.add("gates", rep);
      expectGradientsMatch(`gates B=${B} H=${H}`, rep, TOL);
    });
  }
});

/** One LSTM layer over its own flat parameter buffer, with random weights. */
function makeLayer(seed: string, I: number, H: number, scale = 0.6) {
  const rng = makeRng(seed);
  const layer = new LSTM({ units: H, inputDim: I });
  const n = layer.paramCount();
  const params = uniformArray(rng, n, -scale, scale);
  const grads = new Float64Array(n);
  layer.bind(params, grads, 0);
  return { layer, params, grads, rng };
}

interface RangeCase {
  label: string;
  B: number; I: number; H: number;
  cap: number;
  t0: number;        // forward starts here (state at slot t0)
  tb: number;        // backward covers [tb, t1)
  t1: number;
  xOff: number;      // xs step t at xOff + t·B·I
  dhSeq: boolean;    // gradients from above for steps ≥ dhSeqFrom
  dhSeqFrom: number;
  dhSeqOff: number;
  dhNext: boolean;
  dcNext: boolean;
}

const RANGE_CASES: RangeCase[] = [
  { label: "whole window", B: 3, I: 2, H: 4, cap: 5, t0: 0, tb: 0, t1: 5, xOff: 0, dhSeq: true, dhSeqFrom: 0, dhSeqOff: 0, dhNext: true, dcNext: true },
  { label: "one step", B: 2, I: 3, H: 3, cap: 1, t0: 0, tb: 0, t1: 1, xOff: 0, dhSeq: true, dhSeqFrom: 0, dhSeqOff: 0, dhNext: true, dcNext: true },
  { label: "last-step head only (dhNext, no dhSeq)", B: 2, I: 1, H: 5, cap: 6, t0: 0, tb: 0, t1: 6, xOff: 0, dhSeq: false, dhSeqFrom: 0, dhSeqOff: 0, dhNext: true, dcNext: false },
  { label: "offset range t0=2 in a larger workspace, offset xs and dhSeq", B: 2, I: 3, H: 4, cap: 9, t0: 2, tb: 2, t1: 7, xOff: 5, dhSeq: true, dhSeqFrom: 2, dhSeqOff: 3, dhNext: true, dcNext: true },
  { label: "truncated: backward [3, 7) of forward [1, 7), dhSeq from step 4", B: 3, I: 2, H: 3, cap: 8, t0: 1, tb: 3, t1: 7, xOff: 2, dhSeq: true, dhSeqFrom: 4, dhSeqOff: 1, dhNext: true, dcNext: true },
  { label: "truncated to the last step", B: 1, I: 2, H: 6, cap: 4, t0: 0, tb: 3, t1: 4, xOff: 0, dhSeq: true, dhSeqFrom: 0, dhSeqOff: 0, dhNext: true, dcNext: true },
  { label: "H=1, I=1, B=1", B: 1, I: 1, H: 1, cap: 7, t0: 0, tb: 0, t1: 7, xOff: 0, dhSeq: true, dhSeqFrom: 0, dhSeqOff: 0, dhNext: true, dcNext: true },
];

describe("lstmForward / lstmBackward (one layer)", () => {
  for (const k of RANGE_CASES) {
    it(`${k.label}: dKernel, dRecurrentKernel, dBias, dx, dh0, dc0`, () => {
      const { B, I, H, cap, t0, tb, t1 } = k;
      const G = 4 * H, BH = B * H;
      const { layer, params, grads, rng } = makeLayer(`layer/${k.label}`, I, H);
      const ws = new LSTMWorkspace("float64", B, cap, H, I);
      const xs = uniformArray(rng, k.xOff + cap * B * I, -1.5, 1.5);
      // Initial state at slot t0, non-zero so the forget gate's gradient at the first step is exercised.
      fillUniform(rng, ws.hs, t0 * BH, BH, -0.8, 0.8);
      fillUniform(rng, ws.cs, t0 * BH, BH, -1.5, 1.5);
      lstmForward(layer, ws, xs, k.xOff, t0, t1);
      // The state at slot tb is the constant the backward range starts from (the truncation point).
      const sh = ws.hs.slice(tb * BH, (tb + 1) * BH), sc = ws.cs.slice(tb * BH, (tb + 1) * BH);

      const nSeq = t1 - k.dhSeqFrom;
      const rSeq = k.dhSeq ? uniformArray(rng, k.dhSeqOff + nSeq * BH) : null; // dL/dh_t from above
      const rh = k.dhNext ? uniformArray(rng, 2 + BH) : null;                    // at offset 2
      const rc = k.dcNext ? uniformArray(rng, 3 + BH) : null;                    // at offset 3
      // L = Σ_{t ≥ max(tb, dhSeqFrom)} <rSeq_t, h_t> + <rh, h_{t1-1}> + <rc, c_{t1-1}>, as a function of
      // the weights, xs rows [tb, t1) and the state at slot tb.
      const loss = (): number => {
        ws.hs.set(sh, tb * BH);
        ws.cs.set(sc, tb * BH);
        lstmForward(layer, ws, xs, k.xOff, tb, t1);
        let L = 0;
        if (rSeq) for (let t = Math.max(tb, k.dhSeqFrom); t < t1; t++) L += project(BH, ws.hs, (t + 1) * BH, rSeq, k.dhSeqOff + (t - k.dhSeqFrom) * BH);
        if (rh) L += project(BH, ws.hs, t1 * BH, rh, 2);
        if (rc) L += project(BH, ws.cs, t1 * BH, rc, 3);
        return L;
      };
      loss();
      // Backward accumulates: start from non-zero gradients and subtract them afterwards.
      const g0 = uniformArray(rng, grads.length);
      grads.set(g0);
      lstmBackward(layer, ws, xs, k.xOff, tb, t1, rSeq, k.dhSeqOff, k.dhSeqFrom, rh, 2, rc, 3);
      const dW = grads.map((g, i) => g - g0[i]!);
      const nK = I * G, nR = H * G;
      const dxs = ws.dxs.slice(tb * B * I, t1 * B * I);
      const dh0 = ws.dh.slice(), dc0 = ws.dc.slice();
      expect(Math.max(...Array.from(dh0, Math.abs)), "dh0 is not vacuous").toBeGreaterThan(1e-3);

      const wrts: Wrt[] = [
        { name: "dKernel", values: params, off: 0, count: nK, analytic: dW.subarray(0, nK) },
        { name: "dRecurrentKernel", values: params, off: nK, count: nR, analytic: dW.subarray(nK, nK + nR) },
        { name: "dBias", values: params, off: nK + nR, count: G, analytic: dW.subarray(nK + nR) },
        { name: "dx (ws.dxs)", values: xs, off: k.xOff + tb * B * I, count: (t1 - tb) * B * I, analytic: dxs },
        { name: "dh0 (ws.dh)", values: sh, analytic: dh0 },
        { name: "dc0 (ws.dc)", values: sc, analytic: dc0 },
      ];
      const rep = checkGradients(loss, wrts);
      worst.add("lstm layer", rep);
      expectGradientsMatch(k.label, rep, TOL);
      for (const e of rep.entries) expect(e.maxAbsGrad, `${e.name} is not all zeros`).toBeGreaterThan(1e-4);
    });
  }

  it("writes dx only for rows [tb, t1) and leaves the weights alone", () => {
    const B = 2, I = 2, H = 3, cap = 6, tb = 2, t1 = 5, BH = B * H;
    const { layer, params, rng } = makeLayer("layer/rows", I, H);
    const ws = new LSTMWorkspace("float64", B, cap, H, I);
    const xs = uniformArray(rng, cap * B * I);
    ws.dxs.fill(123);
    const p0 = params.slice();
    lstmForward(layer, ws, xs, 0, 0, t1);
    lstmBackward(layer, ws, xs, 0, tb, t1, null, 0, 0, uniformArray(rng, BH), 0, null, 0);
    expect(Array.from(params)).toEqual(Array.from(p0));
    for (let i = 0; i < cap * B * I; i++) {
      const inside = i >= tb * B * I && i < t1 * B * I;
      if (inside) expect(ws.dxs[i], `dxs[${i}]`).not.toBe(123);
      else expect(ws.dxs[i], `dxs[${i}] outside the range`).toBe(123);
    }
  });
});

describe("denseForward / denseBackward", () => {
  const cases: { act: Activation; logitGrad: boolean }[] = [
    { act: "linear", logitGrad: false }, { act: "sigmoid", logitGrad: false },
    { act: "tanh", logitGrad: false }, { act: "relu", logitGrad: false },
    { act: "sigmoid", logitGrad: true }, { act: "relu", logitGrad: true },
  ];
  for (const { act, logitGrad } of cases) {
    it(`${act}${logitGrad ? " (dOut given as dL/dlogits)" : ""}: dKernel, dBias, dIn`, () => {
      const rng = makeRng(`dense/${act}/${logitGrad}`);
      const M = 5, In = 4, D = 3, ldx = In + 2, xOff = 3;
      const layer = new Dense({ units: D, activation: act });
      layer.inputDim = In;
      const params = new Float64Array(layer.paramCount()), grads = new Float64Array(layer.paramCount());
      layer.bind(params, grads, 0);
      const x = uniformArray(rng, xOff + M * ldx, -1, 1); // (M, In) rows at stride ldx
      if (act === "relu") {
        // ReLU has a kink at 0 where finite differences are meaningless: keep every logit at least 0.1
        // away from it (|x·W| ≤ 4·0.1 < |b| - 0.1), with units both alive (b > 0) and dead (b < 0).
        fillUniform(rng, params, 0, In * D, -0.1, 0.1);
        for (let j = 0; j < D; j++) params[In * D + j] = (j % 2 === 0 ? 1 : -1) * (0.55 + 0.4 * rng.uniform());
      } else {
        fillUniform(rng, params, 0, params.length, -1.2, 1.2);
      }
      const ws = new DenseWorkspace("float64", M, D, In);
      const r = uniformArray(rng, M * D);
      const loss = (): number => {
        denseForward(layer, ws, M, x, xOff, ldx);
        return project(M * D, logitGrad ? ws.logits : ws.out, 0, r);
      };
      loss();
      if (act === "relu") {
        expect(Math.min(...Array.from(ws.logits, Math.abs)), "relu logits away from the kink").toBeGreaterThan(0.1);
        expect(Array.from(ws.out).some((v) => v === 0) && Array.from(ws.out).some((v) => v > 0)).toBe(true);
      }
      const g0 = uniformArray(rng, grads.length);
      grads.set(g0);
      ws.dOut.set(r);
      denseBackward(layer, ws, M, x, xOff, ldx, logitGrad);
      const dW = grads.map((g, i) => g - g0[i]!);
      // dIn is (M, In) dense; x is strided: check x entries at xOff + m·ldx + f.
      const idx: number[] = [], dIn = new Float64Array(M * ldx);
      for (let m = 0; m < M; m++) for (let f = 0; f < In; f++) { idx.push(m * ldx + f); dIn[m * ldx + f] = ws.dIn[m * In + f]!; }
      const rep = checkGradients(loss, [
        { name: "dKernel", values: params, off: 0, count: In * D, analytic: dW.subarray(0, In * D) },
        { name: "dBias", values: params, off: In * D, count: D, analytic: dW.subarray(In * D) },
        { name: "dIn", values: x, off: xOff, count: M * ldx, analytic: dIn, indices: idx },
      ]);
      worst.add("dense", rep);
      expectGradientsMatch(`dense ${act}`, rep, TOL);
      for (const e of rep.entries) expect(e.maxAbsGrad, `${e.name} is not all zeros`).toBeGreaterThan(1e-3);
    });
  }
});

describe("losses", () => {
  const N = 9;
  it("bceFromLogits: dL/dlogits = (σ(z) - y)/N matches finite differences, and equals the probability form", () => {
    const rng = makeRng("loss/bceLogits");
    const z = uniformArray(rng, N, -6, 6);
    const y = uniformArray(rng, N, 0, 1);
    y[0] = 0; y[1] = 1; // hard labels too
    const probs = new Float64Array(N), dz = new Float64Array(N);
    const loss = (): number => {
      for (let k = 0; k < N; k++) probs[k] = sigmoid(z[k]!);
      return bceFromLogits(N, z, probs, y, null);
    };
    loss();
    const L = bceFromLogits(N, z, probs, y, dz);
    // Away from the clip, the logit form and the clipped probability form are the same function.
    expect(Math.abs(L - bceFromProbs(N, probs, y, null))).toBeLessThanOrEqual(1e-14);
    const rep = checkGradients(loss, [{ name: "dLogits", values: z, analytic: dz }]);
    worst.add("losses", rep);
    expectGradientsMatch("bceFromLogits", rep, TOL);
  });

  it("bceFromLogits stays finite with an exact gradient for huge logits", () => {
    const z = Float64Array.from([800, -800, 40, -40]), y = Float64Array.from([0, 1, 1, 0]);
    const probs = z.map(sigmoid), dz = new Float64Array(4);
    const L = bceFromLogits(4, z, probs, y, dz);
    expect(L).toBeCloseTo((800 + 800 + Math.log1p(Math.exp(-40)) * 2) / 4, 10);
    expect(Array.from(dz)).toEqual([0.25, -0.25, (probs[2]! - 1) / 4, probs[3]! / 4]);
  });

  it("bceFromProbs: the gradient matches finite differences inside the clip and is 0 where the clip is active", () => {
    const rng = makeRng("loss/bceProbs");
    const p = uniformArray(rng, N, 0.02, 0.98);
    const y = uniformArray(rng, N, 0, 1);
    y[2] = 0; y[3] = 1;
    const dp = new Float64Array(N);
    const loss = (): number => bceFromProbs(N, p, y, null);
    bceFromProbs(N, p, y, dp);
    const rep = checkGradients(loss, [{ name: "dP", values: p, analytic: dp }]);
    worst.add("losses", rep);
    expectGradientsMatch("bceFromProbs", rep, TOL);
    // Clipped entries: a probability below 1e-7 or above 1 - 1e-7 is a constant to the loss.
    const q = Float64Array.from([1e-9, 1 - 1e-9, 0, 1]), t = Float64Array.from([1, 0, 1, 0]), dq = new Float64Array(4);
    const Lq = bceFromProbs(4, q, t, dq);
    expect(Array.from(dq)).toEqual([0, 0, 0, 0]);
    // (1 - (1 - 1e-7) is 1e-7 only to ~1e-10 relative in float64, hence 8 digits.)
    expect(Lq).toBeCloseTo(-Math.log(BCE_EPSILON), 8);
    const q2 = Float64Array.from([5e-8, 1 - 5e-8, 0, 1]);
    expect(bceFromProbs(4, q2, t, null)).toBe(Lq);
  });

  it("meanSquaredError: dL/dout = 2(out - y)/N matches finite differences", () => {
    const rng = makeRng("loss/mse");
    const out = uniformArray(rng, N, -3, 3), y = uniformArray(rng, N, -3, 3), d = new Float64Array(N);
    meanSquaredError(N, out, y, d);
    const rep = checkGradients(() => meanSquaredError(N, out, y, null), [{ name: "dOut", values: out, analytic: d }]);
    worst.add("losses", rep);
    expectGradientsMatch("meanSquaredError", rep, TOL);
  });

  it("meanAbsoluteError and huber: the formulas on hand-picked errors (inside, at and beyond δ, and 0), and their gradients by finite differences", () => {
    // d = out − y: 0, ±0.3, ±0.5 (= δ), ±2
    const out = Float64Array.from([1, 1.3, 0.7, 1.5, 0.5, 3, -1]), y = Float64Array.from([1, 1, 1, 1, 1, 1, 1]);
    const n = out.length, dMae = new Float64Array(n), dHub = new Float64Array(n);
    const mae = meanAbsoluteError(n, out, y, dMae);
    expect(mae).toBeCloseTo((0 + 0.3 + 0.3 + 0.5 + 0.5 + 2 + 2) / n, 14);
    expect(Array.from(dMae)).toEqual([0, 1, -1, 1, -1, 1, -1].map((s) => s / n)); // sign(d)/N, 0 where d = 0
    const hub = huber(n, out, y, dHub, null, 1, 0.5);
    const per = [0, 0.5 * 0.09, 0.5 * 0.09, 0.5 * 0.25, 0.5 * 0.25, 0.5 * (2 - 0.25), 0.5 * (2 - 0.25)];
    expect(hub).toBeCloseTo(per.reduce((a, b) => a + b, 0) / n, 14);
    expect(Array.from(dHub).map((v) => v * n)).toEqual([0, 0.3, -0.3, 0.5, -0.5, 0.5, -0.5].map((v, k) => (k < 5 ? out[k]! - y[k]! : v)));
    expect(huber(n, out, y, null)).toBeCloseTo((0 + 0.045 * 2 + 0.125 * 2 + 1.5 * 2) / n, 14); // δ = 1: 2 is beyond, 0.5 inside
    const rng = makeRng("loss/mae-huber");
    const o = uniformArray(rng, N, -3, 3), t = uniformArray(rng, N, -3, 3), g = new Float64Array(N);
    for (const [name, f] of [["meanAbsoluteError", (d: Float64Array | null) => meanAbsoluteError(N, o, t, d)], ["huber δ 0.7", (d: Float64Array | null) => huber(N, o, t, d, null, 1, 0.7)]] as const) {
      f(g);
      const rep = checkGradients(() => f(null), [{ name: "dOut", values: o, analytic: g }]);
      worst.add("losses", rep);
      expectGradientsMatch(name, rep, TOL);
    }
  });
});
