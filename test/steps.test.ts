/**
 * One timestep at a time equals the whole window (karpathy's checkSequentialMatchesBatch, extended to the
 * backward pass): at the layer level, forward over [0, T) at once vs T one-step calls (through one
 * workspace, and through separate workspaces handing (h_T, c_T) on), and backward step by step carrying
 * ws.dh / ws.dc into the previous step as dhNext / dcNext while the weight gradients accumulate. Then at
 * the model level: a stateful model fed one step at a time gives the whole window's outputs and states.
 * All to 1e-12 in float64.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import { LSTM, LSTMWorkspace, lstmForward, lstmBackward } from "../src/layers/lstm.js";
import { Sequential, Dense, LSTM as PublicLSTM, type Tensor } from "../src/index.js";
import { makeRng, uniformArray, fillUniform, maxAbsDiff } from "./helpers/gradcheck.js";

const EXACT = 1e-12;

/** Two LSTM objects over the same weights, each with its own gradient buffer. */
function twinLayers(seed: string, I: number, H: number) {
  const rng = makeRng(seed);
  const a = new LSTM({ units: H, inputDim: I }), b = new LSTM({ units: H, inputDim: I });
  const n = a.paramCount();
  const params = uniformArray(rng, n, -0.7, 0.7);
  const gA = new Float64Array(n), gB = new Float64Array(n);
  a.bind(params, gA, 0);
  b.bind(params, gB, 0);
  return { a, b, gA, gB, rng };
}

interface Case { B: number; I: number; H: number; T: number; chunks: number[] }
const CASES: Case[] = [
  { B: 3, I: 2, H: 4, T: 7, chunks: [1, 1, 1, 1, 1, 1, 1] },
  { B: 1, I: 1, H: 5, T: 6, chunks: [1, 1, 1, 1, 1, 1] },
  { B: 4, I: 3, H: 2, T: 6, chunks: [2, 3, 1] },
  { B: 2, I: 4, H: 3, T: 5, chunks: [4, 1] },
];

describe("layer: step by step equals the whole window", () => {
  for (const k of CASES) {
    const { B, I, H, T, chunks } = k;
    const BH = B * H, G = 4 * H;
    it(`B=${B} I=${I} H=${H} T=${T}, forward through one workspace one step at a time: every h, c, gate`, () => {
      const { a, rng } = twinLayers(`steps/ws/${B}/${T}`, I, H);
      const xs = uniformArray(rng, T * B * I, -1.5, 1.5);
      const whole = new LSTMWorkspace("float64", B, T, H, I), steps = new LSTMWorkspace("float64", B, T, H, I);
      fillUniform(rng, whole.hs, 0, BH, -0.8, 0.8);
      fillUniform(rng, whole.cs, 0, BH, -1.5, 1.5);
      steps.hs.set(whole.hs.subarray(0, BH));
      steps.cs.set(whole.cs.subarray(0, BH));
      lstmForward(a, whole, xs, 0, 0, T);
      for (let t = 0; t < T; t++) lstmForward(a, steps, xs, 0, t, t + 1);
      expect(maxAbsDiff((T + 1) * BH, steps.hs, 0, whole.hs, 0), "hs").toBeLessThanOrEqual(EXACT);
      expect(maxAbsDiff((T + 1) * BH, steps.cs, 0, whole.cs, 0), "cs").toBeLessThanOrEqual(EXACT);
      expect(maxAbsDiff(T * B * G, steps.gates, 0, whole.gates, 0), "gates").toBeLessThanOrEqual(EXACT);
      expect(maxAbsDiff(T * BH, steps.tanhC, 0, whole.tanhC, 0), "tanhC").toBeLessThanOrEqual(EXACT);
      // Not vacuous: the state moved.
      expect(maxAbsDiff(BH, whole.hs, T * BH, whole.hs, 0)).toBeGreaterThan(1e-2);
    });

    it(`B=${B} I=${I} H=${H} T=${T}, chunks [${chunks}] in separate workspaces: forward carries (h_T, c_T), backward carries dh/dc; dW, dx, dh0, dc0`, () => {
      const { a, b, gA, gB, rng } = twinLayers(`steps/chunks/${B}/${T}`, I, H);
      const xs = uniformArray(rng, T * B * I, -1.5, 1.5);
      const h0 = uniformArray(rng, BH, -0.8, 0.8), c0 = uniformArray(rng, BH, -1.5, 1.5);
      const dhSeq = uniformArray(rng, T * BH);                    // dL/dh_t from above, every step
      const dhN = uniformArray(rng, BH), dcN = uniformArray(rng, BH); // from after the window

      // The whole window.
      const whole = new LSTMWorkspace("float64", B, T, H, I);
      whole.hs.set(h0); whole.cs.set(c0);
      lstmForward(a, whole, xs, 0, 0, T);
      lstmBackward(a, whole, xs, 0, 0, T, dhSeq, 0, 0, dhN, 0, dcN, 0);

      // Chunk by chunk: each chunk has its own workspace (its own cache, like karpathy's), starting from
      // the previous chunk's final state.
      const starts: number[] = [];
      let s = 0;
      for (const n of chunks) { starts.push(s); s += n; }
      expect(s).toBe(T);
      const wss = chunks.map((n) => new LSTMWorkspace("float64", B, n, H, I));
      wss.forEach((ws, j) => {
        const n = chunks[j]!;
        if (j === 0) { ws.hs.set(h0); ws.cs.set(c0); } else {
          const prev = wss[j - 1]!, pn = chunks[j - 1]!;
          ws.hs.set(prev.hs.subarray(pn * BH, (pn + 1) * BH));
          ws.cs.set(prev.cs.subarray(pn * BH, (pn + 1) * BH));
        }
        lstmForward(b, ws, xs, starts[j]! * B * I, 0, n);
        for (let t = 0; t < n; t++) {
          const tt = starts[j]! + t;
          expect(maxAbsDiff(BH, ws.hs, (t + 1) * BH, whole.hs, (tt + 1) * BH), `h_${tt}`).toBeLessThanOrEqual(EXACT);
          expect(maxAbsDiff(BH, ws.cs, (t + 1) * BH, whole.cs, (tt + 1) * BH), `c_${tt}`).toBeLessThanOrEqual(EXACT);
        }
      });
      // Backward from the last chunk to the first; weight gradients accumulate across the calls.
      for (let j = chunks.length - 1; j >= 0; j--) {
        const ws = wss[j]!, n = chunks[j]!, last = j === chunks.length - 1;
        const next = last ? null : wss[j + 1]!;
        lstmBackward(
          b, ws, xs, starts[j]! * B * I, 0, n,
          dhSeq, starts[j]! * BH, 0,
          last ? dhN : next!.dh, 0,
          last ? dcN : next!.dc, 0,
        );
        expect(maxAbsDiff(n * B * I, ws.dxs, 0, whole.dxs, starts[j]! * B * I), `dx of chunk ${j}`).toBeLessThanOrEqual(EXACT);
      }
      expect(maxAbsDiff(gA.length, gB, 0, gA, 0), "dKernel, dRecurrentKernel, dBias").toBeLessThanOrEqual(EXACT);
      expect(maxAbsDiff(BH, wss[0]!.dh, 0, whole.dh, 0), "dh0").toBeLessThanOrEqual(EXACT);
      expect(maxAbsDiff(BH, wss[0]!.dc, 0, whole.dc, 0), "dc0").toBeLessThanOrEqual(EXACT);
      // Not vacuous.
      expect(Math.max(...Array.from(gA, Math.abs))).toBeGreaterThan(1e-2);
      expect(Math.max(...Array.from(whole.dh, Math.abs))).toBeGreaterThan(1e-3);
    });
  }

  it("dropping the carried dhNext/dcNext between steps changes the result (the carry matters)", () => {
    const B = 2, I = 2, H = 3, T = 4, BH = B * H;
    const { a, b, gA, gB, rng } = twinLayers("steps/nocarry", I, H);
    const xs = uniformArray(rng, T * B * I);
    const dhSeq = uniformArray(rng, T * BH);
    const whole = new LSTMWorkspace("float64", B, T, H, I);
    lstmForward(a, whole, xs, 0, 0, T);
    lstmBackward(a, whole, xs, 0, 0, T, dhSeq, 0, 0, null, 0, null, 0);
    const wss = Array.from({ length: T }, () => new LSTMWorkspace("float64", B, 1, H, I));
    wss.forEach((ws, t) => {
      if (t > 0) { ws.hs.set(wss[t - 1]!.hs.subarray(BH, 2 * BH)); ws.cs.set(wss[t - 1]!.cs.subarray(BH, 2 * BH)); }
      lstmForward(b, ws, xs, t * B * I, 0, 1);
    });
    // Carry dh only, drop dc: the gradient through the cell is lost.
    for (let t = T - 1; t >= 0; t--) {
      lstmBackward(b, wss[t]!, xs, t * B * I, 0, 1, dhSeq, t * BH, 0, t === T - 1 ? null : wss[t + 1]!.dh, 0, null, 0);
    }
    expect(maxAbsDiff(gA.length, gB, 0, gA, 0)).toBeGreaterThan(1e-4);
  });
});

describe("model: a stateful model fed one step at a time equals the whole window", () => {
  const tensorOf = (d: Float64Array, shape: number[]): Tensor => ndarray(d, shape) as Tensor;
  for (const units of [[4], [3, 5]]) {
    for (const perStep of [true, false]) {
      it(`LSTM units [${units}], ${perStep ? "per-step" : "last-step"} head: outputs and states`, () => {
        const rng = makeRng(`steps/model/${units}/${perStep}`);
        const B = 3, T = 6, I = 2, D = 2;
        const build = (stateful: boolean): Sequential => new Sequential([
          ...units.map((u, i) => new PublicLSTM({
            units: u, inputDim: i === 0 ? I : undefined, returnSequences: i < units.length - 1 || perStep,
            stateful, batchSize: stateful ? B : undefined,
          })),
          new Dense({ units: D, activation: "tanh" }),
        ], { dtype: "float64", seed: 7 });
        const whole = build(true), steps = build(true);
        // Random weights (not the init: a forget bias of one and zero biases are too tame).
        whole.setWeights(whole.getWeights().map((w) => tensorOf(uniformArray(rng, w.data.length, -0.8, 0.8), w.shape)));
        steps.setWeights(whole.getWeights());
        const s0 = units.map((H) => ({ h: tensorOf(uniformArray(rng, B * H), [B, H]), c: tensorOf(uniformArray(rng, B * H, -2, 2), [B, H]) }));
        whole.resetStates(s0);
        steps.resetStates(s0);
        const x = uniformArray(rng, B * T * I, -1.5, 1.5);
        const yWhole = whole.predict(tensorOf(x, [B, T, I]));
        for (let t = 0; t < T; t++) {
          const xt = new Float64Array(B * I);
          for (let b = 0; b < B; b++) xt.set(x.subarray((b * T + t) * I, (b * T + t + 1) * I), b * I);
          const yt = steps.predict(tensorOf(xt, [B, 1, I]));
          // Per-step head: step t's output is the whole window's output at t; last-step head: the
          // output after step t is what the whole window reports at its last step, when t = T-1.
          if (perStep) {
            for (let b = 0; b < B; b++) for (let k = 0; k < D; k++) {
              expect(Math.abs(yt.get(b, 0, k) - yWhole.get(b, t, k)), `output b=${b} t=${t}`).toBeLessThanOrEqual(EXACT);
            }
          } else if (t === T - 1) {
            expect(maxAbsDiff(B * D, yt.data, 0, yWhole.data, 0), "last output").toBeLessThanOrEqual(EXACT);
          }
        }
        const sw = whole.getStates(), ss = steps.getStates();
        units.forEach((_, l) => {
          expect(maxAbsDiff(sw[l]!.h.data.length, ss[l]!.h.data, 0, sw[l]!.h.data, 0), `h of layer ${l}`).toBeLessThanOrEqual(EXACT);
          expect(maxAbsDiff(sw[l]!.c!.data.length, ss[l]!.c!.data, 0, sw[l]!.c!.data, 0), `c of layer ${l}`).toBeLessThanOrEqual(EXACT);
          expect(maxAbsDiff(sw[l]!.h.data.length, sw[l]!.h.data, 0, s0[l]!.h.data, 0), "the state moved").toBeGreaterThan(1e-2);
        });
      });
    }
  }

  it("stepping with predict, testOnBatch and computeGradients in turn carries the same state as the whole window", () => {
    const rng = makeRng("steps/calls");
    const B = 2, T = 7, I = 2, units = [3, 4], D = 1;
    const build = (): Sequential => {
      const m = new Sequential([
        new PublicLSTM({ units: units[0]!, inputDim: I, returnSequences: true, stateful: true, batchSize: B }),
        new PublicLSTM({ units: units[1]!, returnSequences: true, stateful: true, batchSize: B }),
        new Dense({ units: D, activation: "sigmoid" }),
      ], { dtype: "float64", seed: 4 });
      m.compile({ loss: "binaryCrossentropy" });
      return m;
    };
    const whole = build(), steps = build();
    whole.setWeights(whole.getWeights().map((w) => tensorOf(uniformArray(rng, w.data.length, -0.8, 0.8), w.shape)));
    steps.setWeights(whole.getWeights());
    const x = uniformArray(rng, B * T * I, -1.5, 1.5);
    const y = Float64Array.from({ length: B * T }, () => rng.int(2));
    const g = whole.computeGradients(tensorOf(x, [B, T, I]), tensorOf(y, [B, T, 1]));
    for (let t = 0; t < T; t++) {
      const xt = new Float64Array(B * I), yt = new Float64Array(B);
      for (let b = 0; b < B; b++) { xt.set(x.subarray((b * T + t) * I, (b * T + t + 1) * I), b * I); yt[b] = y[b * T + t]!; }
      const xs = tensorOf(xt, [B, 1, I]), ys = tensorOf(yt, [B, 1, 1]);
      let out: Tensor | null = null;
      if (t % 3 === 0) out = steps.predict(xs);
      else if (t % 3 === 1) steps.testOnBatch(xs, ys);
      else out = steps.computeGradients(xs, ys).outputs;
      if (out) for (let b = 0; b < B; b++) expect(Math.abs(out.get(b, 0, 0) - g.outputs.get(b, t, 0)), `output b=${b} t=${t}`).toBeLessThanOrEqual(EXACT);
      // After step t every layer's carried h is the whole window's h_t.
      const st = steps.getStates();
      units.forEach((H, l) => {
        for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) {
          expect(Math.abs(st[l]!.h.get(b, j) - g.hiddenStates[l]!.get(b, t, j)), `layer ${l} h b=${b} t=${t}`).toBeLessThanOrEqual(EXACT);
        }
      });
    }
    const sw = whole.getStates(), ss = steps.getStates();
    units.forEach((_, l) => expect(maxAbsDiff(sw[l]!.c!.data.length, ss[l]!.c!.data, 0, sw[l]!.c!.data, 0), `c of layer ${l}`).toBeLessThanOrEqual(EXACT));
  });

  it("the stateless model's hiddenStates equal the stepped stateful model's states at every step", () => {
    const rng = makeRng("steps/hidden");
    const B = 2, T = 5, I = 3, H = 4;
    const stateless = new Sequential([new PublicLSTM({ units: H, inputDim: I }), new Dense({ units: 1 })], { dtype: "float64", seed: 3 });
    const stepped = new Sequential([new PublicLSTM({ units: H, inputDim: I, stateful: true, batchSize: B }), new Dense({ units: 1 })], { dtype: "float64", seed: 3 });
    stateless.setWeights(stateless.getWeights().map((w) => tensorOf(uniformArray(rng, w.data.length, -0.8, 0.8), w.shape)));
    stepped.setWeights(stateless.getWeights());
    stateless.compile({ loss: "meanSquaredError" });
    const x = uniformArray(rng, B * T * I, -1, 1);
    const g = stateless.computeGradients(tensorOf(x, [B, T, I]), tensorOf(uniformArray(rng, B), [B, 1]));
    const hs = g.hiddenStates[0]!;
    for (let t = 0; t < T; t++) {
      const xt = new Float64Array(B * I);
      for (let b = 0; b < B; b++) xt.set(x.subarray((b * T + t) * I, (b * T + t + 1) * I), b * I);
      stepped.predict(tensorOf(xt, [B, 1, I]));
      const h = stepped.getStates()[0]!.h;
      for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) {
        expect(Math.abs(h.get(b, j) - hs.get(b, t, j)), `h b=${b} t=${t} j=${j}`).toBeLessThanOrEqual(EXACT);
      }
    }
  });
});
