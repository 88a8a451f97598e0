/**
 * Bidirectional (Keras 3's): the forward direction and a copy reading backwards, outputs merged. Checked here against
 * its definition built from two single-direction models (the layers the PyTorch fixtures already pin), by gradCheck
 * (finite differences) for every merge mode, cell, mask and option, and for its states, dropout, stateful carry,
 * refusals and checkpoints. test/fixtures.test.ts runs the PyTorch fixtures (torch.nn.LSTM/GRU bidirectional=True).
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Bidirectional, Dense, Embedding, GRU, LSTM, Masking, Sequential, TruncatedBPTT, gradCheck, loadCheckpoint, checkpointToJSON,
  checkpointFromJSON, type MergeMode, type Tensor,
} from "../src/index.js";
import { maxRel, masked } from "./helpers/sequences.js";

const BACKENDS = ["js", "wasm"] as const;
const MODES: MergeMode[] = ["concat", "sum", "mul", "ave"];

function randn(shape: number[], seed: number): Tensor {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1), d = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    d[k] = (s / 2 ** 32) * 2 - 1;
  }
  return ndarray(d, shape) as Tensor;
}

type Cell = "lstm" | "gru";
function cell(kind: Cell, o: Record<string, unknown>): LSTM | GRU {
  return kind === "lstm" ? new LSTM(o as never) : new GRU(o as never);
}

/** y [B, T, H] or [B, H] of one direction: a model that ends on the cell, with the given weights. */
function direction(kind: Cell, o: Record<string, unknown>, weights: Tensor[], x: Tensor, maskValue: number | null, backend: "js" | "wasm"): Tensor {
  const layers = [cell(kind, o)];
  const m = new Sequential(maskValue === null ? layers : [new Masking({ maskValue }), ...layers], { dtype: "float64", seed: 1, backend });
  m.setWeights(weights);
  return m.predict(x);
}

/** Keras 3's Bidirectional from its parts: the backward output flipped into time order (returnSequences), then merged. */
function reference(mode: MergeMode, f: Tensor, r: Tensor, perStep: boolean): Float64Array {
  const [B] = f.shape as [number], H = f.shape[f.shape.length - 1]!, T = perStep ? f.shape[1]! : 1;
  const U = mode === "concat" ? 2 * H : H, out = new Float64Array(B * T * U);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < H; j++) {
        const a = f.data[(b * T + t) * H + j]!, c = r.data[(b * T + (perStep ? T - 1 - t : 0)) * H + j]!, o = (b * T + t) * U;
        if (mode === "concat") { out[o + j] = a; out[o + H + j] = c; } else out[o + j] = mode === "sum" ? a + c : mode === "mul" ? a * c : (a + c) / 2;
      }
    }
  }
  return out;
}

describe("Bidirectional forward = its two directions merged (Keras 3)", () => {
  for (const backend of BACKENDS) {
    for (const kind of ["lstm", "gru"] as Cell[]) {
      for (const mode of MODES) {
        for (const perStep of [false, true]) {
          for (const maskValue of [null, 0]) {
            it(`${backend} ${kind} ${mode} ${perStep ? "returnSequences" : "last step"}${maskValue === null ? "" : ", masked"}`, () => {
              const B = 3, T = 6, I = 2, H = 4;
              const o = { units: H, inputDim: I, returnSequences: perStep };
              const bi = new Bidirectional(cell(kind, o), { mergeMode: mode });
              const layers = [bi];
              const m = new Sequential(maskValue === null ? layers : [new Masking({ maskValue }), ...layers], { dtype: "float64", seed: 5, backend });
              let x = randn([B, T, I], 11);
              // Row 0 padded at the end, row 1 at the start, row 2 inside.
              if (maskValue !== null) x = masked(x, [[0, 4], [0, 5], [1, 0], [2, 2]]);
              const w = m.getWeights(), nf = w.length / 2;
              expect(m.weightNames().slice(0, nf).every((n) => n.startsWith("bidirectional_0/forward/"))).toBe(true);
              expect(m.weightNames().slice(nf).every((n) => n.startsWith("bidirectional_0/backward/"))).toBe(true);
              // The two directions start from different weights (each initialised on its own).
              expect(maxRel(w[0]!.data, w[nf]!.data)).toBeGreaterThan(1e-3);
              const f = direction(kind, o, w.slice(0, nf), x, maskValue, backend);
              const r = direction(kind, { ...o, goBackwards: true }, w.slice(nf), x, maskValue, backend);
              const y = m.predict(x);
              expect(y.shape).toEqual(perStep ? [B, T, mode === "concat" ? 2 * H : H] : [B, mode === "concat" ? 2 * H : H]);
              expect(Array.from(y.data)).toEqual(Array.from(reference(mode, f, r, perStep)));
            });
          }
        }
      }
    }
  }
});

describe("Bidirectional gradients (gradCheck: finite differences of the loss)", () => {
  const cases: { name: string; kind: Cell; mode: MergeMode; perStep: boolean; mask: boolean; extra?: Record<string, unknown>; head?: boolean }[] = [
    { name: "LSTM concat, last step, Dense head", kind: "lstm", mode: "concat", perStep: false, mask: false, head: true },
    { name: "LSTM sum, per step, Dense head", kind: "lstm", mode: "sum", perStep: true, mask: false, head: true },
    { name: "LSTM mul, per step, masked", kind: "lstm", mode: "mul", perStep: true, mask: true, head: true },
    { name: "GRU ave, last step, masked", kind: "gru", mode: "ave", perStep: false, mask: true, head: true },
    { name: "GRU concat, per step, model ends on it", kind: "gru", mode: "concat", perStep: true, mask: false },
    { name: "GRU mul, last step, resetAfter false, hardSigmoid", kind: "gru", mode: "mul", perStep: false, mask: false, head: true, extra: { resetAfter: false, recurrentActivation: "hardSigmoid" } },
    { name: "LSTM concat, per step, zeroOutputForMask, masked", kind: "lstm", mode: "concat", perStep: true, mask: true, head: true, extra: { zeroOutputForMask: true } },
    { name: "LSTM ave, forward direction reading backwards (goBackwards)", kind: "lstm", mode: "ave", perStep: true, mask: true, head: true, extra: { goBackwards: true } },
  ];
  for (const backend of BACKENDS) {
    for (const c of cases) {
      it(`${backend}: ${c.name}`, () => {
        const B = 3, T = 5, I = 2, H = 3;
        const layers: (Masking | Bidirectional | Dense)[] = [];
        if (c.mask) layers.push(new Masking({ maskValue: 0 }));
        layers.push(new Bidirectional(cell(c.kind, { units: H, inputDim: I, returnSequences: c.perStep, ...c.extra }), { mergeMode: c.mode }));
        if (c.head) layers.push(new Dense({ units: 2 }));
        const m = new Sequential(layers as never, { dtype: "float64", seed: 7, backend });
        m.compile({ optimizer: "adam", loss: "meanSquaredError" });
        let x = randn([B, T, I], 3);
        if (c.mask) x = masked(x, [[0, 4], [1, 0], [1, 1], [2, 2]]);
        const U = c.head ? 2 : c.mode === "concat" ? 2 * H : H;
        const y = randn(c.perStep ? [B, T, U] : [B, U], 9);
        const r = gradCheck(m, x, y, { samples: 30 });
        expect(r.maxRelativeError).toBeLessThan(1e-6);
        // Every weight of both directions was checked, and the four (LSTM) or two (GRU) initial states.
        expect(r.perWeight.map((p) => p.name).filter((n) => n.includes("/backward/")).length).toBe(c.kind === "lstm" || c.extra?.resetAfter !== false ? 3 : 3);
        expect(r.states!.map((s) => s.name)).toEqual(c.kind === "lstm"
          ? ["bidirectional_0/h", "bidirectional_0/c", "bidirectional_0/hBackward", "bidirectional_0/cBackward"]
          : ["bidirectional_0/h", "bidirectional_0/hBackward"]);
      });
    }
  }

  it("stacked: Embedding → Bidirectional(LSTM, returnSequences) → Bidirectional(GRU) → Dense, masked ids", () => {
    const m = new Sequential([
      new Embedding({ inputDim: 7, outputDim: 3, maskZero: true }),
      new Bidirectional(new LSTM({ units: 3, returnSequences: true })),
      new Bidirectional(new GRU({ units: 2 }), { mergeMode: "sum" }),
      new Dense({ units: 1, activation: "sigmoid" }),
    ], { dtype: "float64", seed: 2 });
    m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
    const x = ndarray(Float64Array.from([1, 2, 3, 0, 0, 4, 5, 6, 1, 2, 0, 3, 3, 3, 6]), [3, 5]) as Tensor;
    const y = ndarray(Float64Array.from([1, 0, 1]), [3, 1]) as Tensor;
    const r = gradCheck(m, x, y, { wrt: ["weights", "states"], samples: 30 });
    expect(r.maxRelativeError).toBeLessThan(1e-6);
    expect(r.perWeight.length).toBe(1 + 6 + 6 + 2);
  });
});
