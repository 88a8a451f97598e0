/**
 * The engine as a driver over the layer protocol (src/layers/layer.ts): the orders it accepts beyond LSTM+ →
 * Dense+, checked as exactly as the LSTM itself:
 * - gradCheck (central differences, float64) on every new order, on both backends: Dense on a sequence first or
 *   between LSTMs, models ending on an LSTM (its last h, or its whole sequence), with Masking through a Dense;
 * - identities that need no reference: a linear Dense folded into the LSTM above it gives the same outputs and
 *   dL/dx; a model ending on an LSTM outputs the hidden states computeGradients reports;
 * - truncated BPTT with kept history (k1 < k2 < T) through a Dense between LSTMs and masked steps: every window's
 *   gradient equals computeGradients over the window's reach, from the state there (a stateful twin);
 * - the mask decided from every feature of a step; stateful carry; nothing half-built after a refusal.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, LSTM, Dense, Masking, TruncatedBPTT, gradCheck, randomNormal, ValueError, type Tensor, type LossName,
} from "../src/index.js";
import { expectWindowsMatchTwin, flat, masked, maxRel, steps } from "./helpers/sequences.js";

type Backend = "js" | "wasm";
const BACKENDS: Backend[] = ["js", "wasm"];

function labels(shape: number[], seed: number, binary: boolean): Tensor {
  const r = randomNormal(shape, { seed });
  if (binary) for (let k = 0; k < r.data.length; k++) r.data[k] = r.data[k]! > 0 ? 1 : 0;
  return r;
}

interface Case {
  name: string;
  layers: () => (LSTM | Dense | Masking)[];
  loss: LossName;
  F: number;
  /** The output's shape for B rows and T steps. */
  out: (B: number, T: number) => number[];
  mask?: [number, number][];
}

const CASES: Case[] = [
  {
    name: "Dense (tanh) on the sequence first, then LSTM → Dense (sigmoid), BCE",
    layers: () => [new Dense({ units: 4, inputDim: 3, activation: "tanh" }), new LSTM({ units: 5 }), new Dense({ units: 1, activation: "sigmoid" })],
    loss: "binaryCrossentropy", F: 3, out: (B) => [B, 1],
  },
  {
    name: "LSTM (sequences) → Dense (tanh) on every step → LSTM → Dense, MSE",
    layers: () => [new LSTM({ units: 4, inputDim: 3, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 3 }), new Dense({ units: 2 })],
    loss: "meanSquaredError", F: 3, out: (B) => [B, 2],
  },
  {
    name: "a model ending on an LSTM: its last h, MSE",
    layers: () => [new LSTM({ units: 4, inputDim: 2 })],
    loss: "meanSquaredError", F: 2, out: (B) => [B, 4],
  },
  {
    name: "stacked LSTMs ending on the upper one's sequence, MSE",
    layers: () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new LSTM({ units: 3, returnSequences: true })],
    loss: "meanSquaredError", F: 2, out: (B, T) => [B, T, 3],
  },
  {
    name: "Masking → LSTM (sequences) → Dense (tanh) per step → LSTM (sequences) → Dense (sigmoid), per-step BCE",
    layers: () => [
      new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }),
      new LSTM({ units: 3, returnSequences: true }), new Dense({ units: 1, activation: "sigmoid" }),
    ],
    loss: "binaryCrossentropy", F: 2, out: (B, T) => [B, T, 1], mask: [[0, 0], [0, 1], [1, 3], [2, 2], [2, 4]],
  },
  {
    name: "Masking → LSTM ending on its last h, a row wholly masked (its output zeros, no gradient)",
    layers: () => [new Masking({ maskValue: 0 }), new LSTM({ units: 3, inputDim: 2 })],
    loss: "meanSquaredError", F: 2, out: (B) => [B, 3], mask: [[0, 4], [1, 0], [1, 1], [1, 2], [1, 3], [1, 4], [2, 1]],
  },
];

describe("new orders are exact: gradCheck on both backends", () => {
  for (const c of CASES) {
    for (const backend of BACKENDS) {
      it(`${c.name} (${backend})`, () => {
        const B = 3, T = 5;
        const m = new Sequential(c.layers(), { seed: 7, backend });
        m.compile({ optimizer: "sgd", loss: c.loss });
        let x = randomNormal([B, T, c.F], { seed: 11 });
        if (c.mask) x = masked(x, c.mask);
        const y = labels(c.out(B, T), 12, c.loss === "binaryCrossentropy");
        const p = m.predict(x);
        expect(p.shape).toEqual(c.out(B, T));
        const r = gradCheck(m, x, y, { samples: 60 });
        expect(r.maxRelativeError, JSON.stringify(r.perWeight)).toBeLessThan(1e-6);
        // Not vacuous: every weight has gradient (none is all zeros).
        const g = m.computeGradients(x, y);
        g.grads.forEach((t, i) => expect(t.data.some((v) => v !== 0), m.weightNames()[i]).toBe(true));
        if (c.name.includes("wholly masked")) {
          // Keras's masked output: a row with no kept step gives zeros, and sends no gradient back.
          expect(Array.from(p.data.slice(3, 6))).toEqual([0, 0, 0]);
          expect(g.inputGrad.data.slice(5 * 2, 10 * 2).every((v) => v === 0)).toBe(true);
        }
      });
    }
  }

  it("both backends agree on every new order (loss, gradients, dL/dx) to 1e-12", () => {
    for (const c of CASES) {
      const B = 4, T = 6;
      let x = randomNormal([B, T, c.F], { seed: 3 });
      if (c.mask) x = masked(x, c.mask);
      const y = labels(c.out(B, T), 4, c.loss === "binaryCrossentropy");
      const [js, wasm] = BACKENDS.map((backend) => {
        const m = new Sequential(c.layers(), { seed: 5, backend });
        m.compile({ optimizer: "sgd", loss: c.loss });
        return m.computeGradients(x, y);
      });
      expect(maxRel([wasm!.loss], [js!.loss]), c.name).toBeLessThan(1e-12);
      expect(maxRel(flat(wasm!.grads), flat(js!.grads)), c.name).toBeLessThan(1e-10);
      expect(maxRel(wasm!.inputGrad.data, js!.inputGrad.data), c.name).toBeLessThan(1e-10);
    }
  });
});

describe("identities that need no reference", () => {
  it("a linear Dense under an LSTM folds into its kernel: [Dense(W, b), LSTM(K, R, c)] = [LSTM(W·K, R, c + b·K)], outputs and dL/dx", () => {
    const F = 3, E = 4, H = 5, B = 3, T = 6, G = 4 * H;
    const a = new Sequential([new Dense({ units: E, inputDim: F }), new LSTM({ units: H, returnSequences: true }), new Dense({ units: 2 })], { seed: 8 });
    const [W, bd, K, R, c, Wh, bh] = a.getWeights() as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    for (let k = 0; k < E; k++) bd.data[k] = 0.3 * (k - 1.5); // a bias that is not zero
    a.setWeights([W, bd, K, R, c, Wh, bh]);
    const WK = new Float64Array(F * G), cb = Float64Array.from(c.data);
    for (let i = 0; i < F; i++) for (let j = 0; j < G; j++) { let s = 0; for (let k = 0; k < E; k++) s += W.data[i * E + k]! * K.data[k * G + j]!; WK[i * G + j] = s; }
    for (let j = 0; j < G; j++) for (let k = 0; k < E; k++) cb[j] += bd.data[k]! * K.data[k * G + j]!;
    const b = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: true }), new Dense({ units: 2 })], { seed: 9 });
    b.setWeights([ndarray(WK, [F, G]) as Tensor, R, ndarray(cb, [G]) as Tensor, Wh, bh]);
    const x = randomNormal([B, T, F], { seed: 1 }), y = randomNormal([B, T, 2], { seed: 2 });
    expect(maxRel(a.predict(x).data, b.predict(x).data)).toBeLessThan(1e-12);
    for (const m of [a, b]) m.compile({ optimizer: "sgd", loss: "mse" });
    const ga = a.computeGradients(x, y), gb = b.computeGradients(x, y);
    expect(maxRel([ga.loss], [gb.loss])).toBeLessThan(1e-13);
    expect(maxRel(ga.inputGrad.data, gb.inputGrad.data, 1e-6)).toBeLessThan(1e-10);
    expect(maxRel(ga.stateGrads[0]!.h.data, gb.stateGrads[0]!.h.data, 1e-6)).toBeLessThan(1e-10);
  });

  it("a model ending on an LSTM outputs its hidden states: the last h, or every step's", () => {
    const B = 2, T = 5, F = 3, H = 4;
    const x = randomNormal([B, T, F], { seed: 3 });
    for (const returnSequences of [false, true]) {
      const withHead = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences: true }), new Dense({ units: 1 })], { seed: 4 });
      withHead.compile({ optimizer: "sgd", loss: "mse" });
      const hs = withHead.computeGradients(x, randomNormal([B, T, 1], { seed: 5 })).hiddenStates[0]!; // [B, T, H]
      const bare = new Sequential([new LSTM({ units: H, inputDim: F, returnSequences })], { seed: 6 });
      bare.setWeights(withHead.getWeights().slice(0, 3));
      const p = bare.predict(x);
      if (returnSequences) expect(Array.from(p.data)).toEqual(Array.from(hs.data));
      else {
        expect(p.shape).toEqual([B, H]);
        for (let b = 0; b < B; b++) for (let j = 0; j < H; j++) expect(p.data[b * H + j]).toBe(hs.data[(b * T + T - 1) * H + j]);
      }
    }
  });
});

describe("masking", () => {
  it("a step is masked only when every feature equals the mask value: [0, 0, x] is kept, so predict equals the unmasked model's", () => {
    const B = 2, T = 4, F = 3;
    const x = randomNormal([B, T, F], { seed: 9 });
    // Steps where every feature but one is the mask value: the last, the first, the middle one.
    const d = x.data;
    d[(0 * T + 1) * F + 0] = 0; d[(0 * T + 1) * F + 1] = 0;
    d[(1 * T + 2) * F + 1] = 0; d[(1 * T + 2) * F + 2] = 0;
    d[(1 * T + 0) * F + 0] = 0; d[(1 * T + 0) * F + 2] = 0;
    for (const returnSequences of [false, true]) {
      const plain = new Sequential([new LSTM({ units: 4, inputDim: F, returnSequences }), new Dense({ units: 2 })], { seed: 1 });
      const withMask = new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: F, returnSequences }), new Dense({ units: 2 })], { seed: 2 });
      withMask.setWeights(plain.getWeights());
      expect(Array.from(withMask.predict(x).data)).toEqual(Array.from(plain.predict(x).data));
      // …and a step of only mask values is skipped (the outputs change), so the comparison can fail.
      const fully = masked(x, [[0, 1]]);
      expect(Array.from(withMask.predict(fully).data)).not.toEqual(Array.from(plain.predict(fully).data));
    }
  });
});

describe("truncated BPTT through the new orders", () => {
  it("k1 < k2 < T with masked steps and a Dense between LSTMs: each window's gradient is computeGradients over its reach, from the state there", () => {
    const B = 3, T = 10, F = 2, k1 = 2, k2 = 5;
    const layers = () => [
      new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: F, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }),
      new LSTM({ units: 3 }), new Dense({ units: 1, activation: "sigmoid" }),
    ];
    const m = new Sequential(layers(), { seed: 3 });
    m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
    // Masked steps early and late, in the kept history of later windows; every window keeps a step in each row
    // (so its last output is the state's, as over the whole reach).
    const x = masked(randomNormal([B, T, F], { seed: 4 }), [[0, 0], [0, 3], [1, 2], [1, 5], [2, 4], [2, 6], [0, 8], [1, 9]]);
    const y = labels([B, 1], 5, true);
    expectWindowsMatchTwin(m, new Sequential(layers().map((l) => (l instanceof LSTM ? new LSTM({ units: l.units, inputDim: l.inputDim, returnSequences: l.returnSequences, stateful: true, batchSize: B }) : l)), { seed: 8 }), x, y, k1, k2);
  });

  it("a Dense between LSTMs keeps its history: per-step labels, k2 > k1, training, the same as one window over the sequence when k1 = T", () => {
    const B = 2, T = 8, F = 2;
    const make = () => {
      const m = new Sequential([new LSTM({ units: 3, inputDim: F, returnSequences: true }), new Dense({ units: 2, activation: "tanh" }), new LSTM({ units: 3, returnSequences: true }), new Dense({ units: 1 })], { seed: 12 });
      m.compile({ optimizer: "sgd", loss: "mse" });
      return m;
    };
    const x = randomNormal([B, T, F], { seed: 1 }), y = randomNormal([B, T, 1], { seed: 2 });
    const a = make(), b = make();
    new TruncatedBPTT(a, { windowLength: T }).trainSequence(x, y);
    b.trainOnBatch(x, y);
    expect(maxRel(flat(a.getWeights()), flat(b.getWeights()), 1e-8)).toBeLessThan(1e-12);
  });
});

describe("stateful carry and refusals", () => {
  it("a stateful LSTM between Dense layers: two calls of T/2 steps equal one call of T", () => {
    const B = 2, T = 6, F = 3;
    const make = () => new Sequential([
      new Dense({ units: 4, inputDim: F, activation: "tanh" }), new LSTM({ units: 3, stateful: true, batchSize: B, returnSequences: true }), new Dense({ units: 2 }),
    ], { seed: 4 });
    const x = randomNormal([B, T, F], { seed: 6 });
    const whole = make().predict(x);
    const split = make();
    const p1 = split.predict(steps(x, 0, T / 2)), p2 = split.predict(steps(x, T / 2, T));
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < 2; j++) {
          const got = t < T / 2 ? p1.data[(b * (T / 2) + t) * 2 + j] : p2.data[(b * (T / 2) + t - T / 2) * 2 + j];
          expect(got).toBe(whole.data[(b * T + t) * 2 + j]);
        }
      }
    }
  });

  it("a refused order names the rule and leaves the layers free for another model", () => {
    const lstm = new LSTM({ units: 2, inputDim: 3 }), upper = new LSTM({ units: 2 }), dense = new Dense({ units: 1 });
    expect(() => new Sequential([lstm, dense, upper])).toThrow(ValueError);
    expect(() => new Sequential([lstm, dense, upper])).toThrow(/layers\[2\]: an LSTM reads a sequence \[batch, timesteps, features\], and the layer below gives one vector per row/);
    expect(() => new Sequential([dense])).toThrow(/a model needs at least one recurrent layer/);
    const m = new Sequential([lstm, dense]);
    expect(m.predict(randomNormal([1, 2, 3], { seed: 1 })).shape).toEqual([1, 1]);
  });
});
