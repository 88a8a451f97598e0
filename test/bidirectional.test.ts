/**
 * Bidirectional (Keras 3's): the forward direction and a copy reading backwards, outputs merged. Checked here against
 * its definition built from two single-direction models (the layers the PyTorch fixtures already pin), by gradCheck
 * (finite differences) for every merge mode, cell, mask and option, and for its states, dropout, stateful carry,
 * refusals and checkpoints. test/fixtures.test.ts runs the PyTorch fixtures (torch.nn.LSTM/GRU bidirectional=True).
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Bidirectional, Dense, Embedding, GRU, LSTM, Masking, Sequential, TruncatedBPTT, gradCheck, checkpointToJSON, toSafetensors, fromSafetensors,
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
              // Keras 3 remakes both directions with zeroOutputForMask = returnSequences (zeros at masked steps).
              const f = direction(kind, { ...o, zeroOutputForMask: perStep }, w.slice(0, nf), x, maskValue, backend);
              const r = direction(kind, { ...o, zeroOutputForMask: perStep, goBackwards: true }, w.slice(nf), x, maskValue, backend);
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
    { name: "GRU sum, per step, masked, dropout off in inference", kind: "gru", mode: "sum", perStep: true, mask: true, head: true, extra: { dropout: 0.5 } },
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
        expect(r.perWeight.map((p) => p.name).filter((n) => n.includes("/backward/")).length).toBe(3);
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

describe("Bidirectional states, dropout, stateful carry and the study", () => {
  const B = 3, T = 5, I = 2, H = 3;

  it("getStates, initialStates and resetStates use the names h, c, hBackward, cBackward; an encoder's states start a decoder", () => {
    const m = new Sequential([new Bidirectional(new LSTM({ units: H, inputDim: I }))], { dtype: "float64", seed: 3 });
    const x = randn([B, T, I], 5);
    const w = m.getWeights();
    m.predict(x);
    const [s] = m.getStates();
    expect(Object.keys(s!).sort()).toEqual(["c", "cBackward", "h", "hBackward"]);
    // The directions' own final states: the forward one after step T − 1, the backward one after reading step 0.
    const fw = new Sequential([new LSTM({ units: H, inputDim: I })], { dtype: "float64", seed: 1 });
    fw.setWeights(w.slice(0, 3));
    fw.predict(x);
    const bw = new Sequential([new LSTM({ units: H, inputDim: I, goBackwards: true })], { dtype: "float64", seed: 1 });
    bw.setWeights(w.slice(3));
    bw.predict(x);
    expect(Array.from(s!.h.data)).toEqual(Array.from(fw.getStates()[0]!.h.data));
    expect(Array.from(s!.c!.data)).toEqual(Array.from(fw.getStates()[0]!.c!.data));
    expect(Array.from(s!.hBackward!.data)).toEqual(Array.from(bw.getStates()[0]!.h.data));
    expect(Array.from(s!.cBackward!.data)).toEqual(Array.from(bw.getStates()[0]!.c!.data));
    // Initial states in: each direction starts from its own.
    const x2 = randn([B, T, I], 6);
    const y = m.predict(x2, { initialStates: [s!] });
    const f2 = fw.predict(x2, { initialStates: [{ h: s!.h, c: s!.c! }] });
    const b2 = bw.predict(x2, { initialStates: [{ h: s!.hBackward!, c: s!.cBackward! }] });
    expect(Array.from(y.data)).toEqual(Array.from(reference("concat", f2, b2, false)));
    expect(Array.from(y.data)).not.toEqual(Array.from(m.predict(x2).data));
    // A missing or unknown name is refused by name.
    expect(() => m.predict(x2, { initialStates: [{ h: s!.h, c: s!.c! }] })).toThrow(/hBackward/);
    expect(() => m.predict(x2, { initialStates: [{ ...s!, hBack: s!.h } as never] })).toThrow(/unknown state "hBack"/);
  });

  it("a stateful Bidirectional carries both directions' states row by row, as a stateless twin given them", () => {
    const held = new Sequential([new Bidirectional(new GRU({ units: H, inputDim: I, stateful: true, batchSize: B })), new Dense({ units: 1 })], { dtype: "float64", seed: 4 });
    const free = new Sequential([new Bidirectional(new GRU({ units: H, inputDim: I })), new Dense({ units: 1 })], { dtype: "float64", seed: 9 });
    free.setWeights(held.getWeights());
    const x1 = randn([B, T, I], 1), x2 = randn([B, T, I], 2);
    expect(Array.from(held.predict(x1).data)).toEqual(Array.from(free.predict(x1).data));
    const carried = held.getStates();
    expect(Object.keys(carried[0]!).sort()).toEqual(["h", "hBackward"]);
    expect(Array.from(held.predict(x2).data)).toEqual(Array.from(free.predict(x2, { initialStates: carried }).data));
    held.resetStates();
    expect(Array.from(held.predict(x2).data)).toEqual(Array.from(free.predict(x2).data));
  });

  it("dropout: each direction has its own masks (x and h), and the gradients are exact for them", () => {
    const m = new Sequential([new Bidirectional(new LSTM({ units: H, inputDim: I, dropout: 0.3, recurrentDropout: 0.4 }), { mergeMode: "mul" }), new Dense({ units: 1 })], { dtype: "float64", seed: 2 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = randn([B, T, I], 3), y = randn([B, 1], 4), e = m.engine;
    const xm = new Float64Array(2 * B * I).map((_, k) => (k % 3 === 0 ? 0 : 1 / 0.7)), hm = new Float64Array(2 * B * H).map((_, k) => (k % 4 === 1 ? 0 : 1 / 0.6));
    // The forward output under the masks is what the two directions compute with their halves.
    e.nextMasks = [{ x: xm, h: hm }];
    const r = m.computeGradients(x, y, { training: true });
    const w = m.getWeights();
    const dir = (goBackwards: boolean, ws: Tensor[], xh: Float64Array, hh: Float64Array): Tensor => {
      const d = new Sequential([new LSTM({ units: H, inputDim: I, dropout: 0.3, recurrentDropout: 0.4, goBackwards })], { dtype: "float64", seed: 1 });
      d.compile({ optimizer: "sgd", loss: "mse" });
      d.setWeights(ws);
      d.engine.nextMasks = [{ x: xh, h: hh }];
      return d.computeGradients(x, randn([B, H], 1), { training: true }).outputs; // the masks apply to this training pass
    };
    const f = dir(false, w.slice(0, 3), xm.subarray(0, B * I), hm.subarray(0, B * H));
    const b = dir(true, w.slice(3, 6), xm.subarray(B * I), hm.subarray(B * H));
    const merged = reference("mul", f, b, false), dense = w[6]!.data, bias = w[7]!.data[0]!;
    const expected = Array.from({ length: B }, (_, i) => merged.subarray(i * H, (i + 1) * H).reduce((s, v, j) => s + v * dense[j]!, bias));
    expect(maxRel(r.outputs.data, expected)).toBeLessThan(1e-14);
    // Central differences with the same masks.
    const at = (k: number, v: number): number => {
      const p = Float64Array.from(e.params); e.params[k] = v;
      e.nextMasks = [{ x: xm, h: hm }];
      const loss = m.computeGradients(x, y, { training: true }).loss;
      e.params.set(p);
      return loss;
    };
    const g = r.grads.flatMap((t) => Array.from(t.data)), eps = 1e-6;
    let worst = 0;
    for (let k = 0; k < e.params.length; k += 2) {
      const v = e.params[k]!, num = (at(k, v + eps) - at(k, v - eps)) / (2 * eps);
      worst = Math.max(worst, Math.abs(num - g[k]!) / Math.max(Math.abs(g[k]!), 1e-7));
    }
    expect(worst).toBeLessThan(1e-5);
    // Masks drawn by a training step: the two directions' halves differ.
    m.trainOnBatch(x, y);
    const ws = e.ws(0);
    const xd = ws.xMask!;
    expect(xd.length).toBe(2 * B * I);
    expect(Array.from(xd.subarray(0, B * I))).not.toEqual(Array.from(xd.subarray(B * I)));
  });

  it("the study: hiddenStates [B, T, 2H] in time order, and hiddenGrads, gradNorms and hiddenGradNorms are the two directions'", () => {
    // A model that ends on a concat Bidirectional with mse: the loss splits into one per direction (each half of the
    // features, weighted 1/2), so each direction's study is that of a model of its own.
    const m = new Sequential([new Bidirectional(new LSTM({ units: H, inputDim: I, returnSequences: true }))], { dtype: "float64", seed: 8 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = randn([B, T, I], 7), y = randn([B, T, 2 * H], 8);
    const r = m.computeGradients(x, y, { hiddenGrads: true, gradNorms: true, hiddenGradNorms: true });
    const w = m.getWeights();
    const half = (lo: number): Tensor => {
      const d = new Float64Array(B * T * H);
      for (let q = 0; q < B * T; q++) for (let j = 0; j < H; j++) d[q * H + j] = y.data[q * 2 * H + lo + j]!;
      return ndarray(d, [B, T, H]) as Tensor;
    };
    const flipT = (t: Tensor): Tensor => { // [B, T, W] reversed in time
      const [b0, t0, w0] = t.shape as [number, number, number], d = new Float64Array(t.data.length);
      for (let b = 0; b < b0; b++) for (let s = 0; s < t0; s++) d.set(t.data.subarray((b * t0 + s) * w0, (b * t0 + s + 1) * w0), (b * t0 + t0 - 1 - s) * w0);
      return ndarray(d, [b0, t0, w0]) as Tensor;
    };
    const dir = (goBackwards: boolean, ws: Tensor[], target: Tensor) => {
      const d = new Sequential([new LSTM({ units: H, inputDim: I, returnSequences: true, goBackwards })], { dtype: "float64", seed: 1 });
      d.compile({ optimizer: "sgd", loss: "mse" });
      d.setWeights(ws);
      return d.computeGradients(x, target, { hiddenGrads: true, gradNorms: true, hiddenGradNorms: true });
    };
    const f = dir(false, w.slice(0, 3), half(0)), b = dir(true, w.slice(3), flipT(half(H))); // the backward one's output is in its reading order
    const cat = (a: Tensor, c: Tensor, scale = 1): Float64Array => {
      const out = new Float64Array(B * T * 2 * H);
      for (let q = 0; q < B * T; q++) for (let j = 0; j < H; j++) { out[q * 2 * H + j] = scale * a.data[q * H + j]!; out[q * 2 * H + H + j] = scale * c.data[q * H + j]!; }
      return out;
    };
    expect(r.hiddenStates[0]!.shape).toEqual([B, T, 2 * H]);
    expect(Array.from(r.hiddenStates[0]!.data)).toEqual(Array.from(cat(f.hiddenStates[0]!, flipT(b.hiddenStates[0]!))));
    expect(r.hiddenGrads![0]!.shape).toEqual([B, T, 2 * H]);
    expect(maxRel(r.hiddenGrads![0]!.data, cat(f.hiddenGrads![0]!, flipT(b.hiddenGrads![0]!), 0.5))).toBeLessThan(1e-12);
    // Norms over both directions' units at each time step.
    const fn = f.hiddenGradNorms![0]!, bn = b.hiddenGradNorms![0]!;
    expect(maxRel(r.hiddenGradNorms![0]!, fn.map((v, t) => 0.5 * Math.hypot(v, bn[T - 1 - t]!)))).toBeLessThan(1e-12);
    const gn = r.gradNorms![0]!, fg = f.gradNorms![0]!, bg = b.gradNorms![0]!;
    const both = (a: Tensor, c: Tensor) => Float64Array.from(a.data, (v, q) => 0.5 * Math.hypot(v, c.data[Math.floor(q / T) * T + T - 1 - (q % T)]!));
    expect(maxRel(gn.h.data, both(fg.h, bg.h))).toBeLessThan(1e-12);
    expect(maxRel(gn.c!.data, both(fg.c!, bg.c!))).toBeLessThan(1e-12);
  });

  it("checkpoints: a round trip gives the same model, states and optimizer; training resumes bit for bit", async () => {
    const make = () => new Sequential([
      new Masking({ maskValue: 0 }),
      new Bidirectional(new LSTM({ units: H, inputDim: I, returnSequences: true, stateful: true, batchSize: B, dropout: 0.2 }), { mergeMode: "ave" }),
      new Bidirectional(new GRU({ units: 2, resetAfter: false }), { mergeMode: "concat" }),
      new Dense({ units: 1, activation: "sigmoid" }),
    ], { seed: 12 });
    const m = make();
    m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
    const x = masked(randn([B, T, I], 1), [[0, 4], [1, 0]]), y = ndarray(Float64Array.from([1, 0, 1]), [B, 1]) as Tensor;
    m.trainOnBatch(x, y);
    const json = checkpointToJSON(m);
    expect(json.config.layers[0]).toMatchObject({ kind: "bidirectional", mergeMode: "ave", layer: { kind: "lstm", units: H, stateful: true, dropout: 0.2 } });
    expect(Object.keys(json.states!.layers[1]!).sort()).toEqual(["h", "hBackward"]);
    const back = checkpointFromJSON(json);
    expect(back.layers[0]).toBeInstanceOf(Bidirectional);
    expect(back.weightNames()).toEqual(m.weightNames());
    for (let s = 0; s < 3; s++) expect(back.trainOnBatch(x, y).loss).toBe(m.trainOnBatch(x, y).loss);
    expect(Array.from(back.predict(x).data)).toEqual(Array.from(m.predict(x).data));
    // A damaged config is refused by its path.
    const bad = JSON.parse(JSON.stringify(json));
    bad.config.layers[0].mergeMode = "max";
    expect(() => checkpointFromJSON(bad)).toThrow(/config\.layers\[0\]\.mergeMode/);
    bad.config.layers[0].mergeMode = "sum";
    bad.config.layers[0].layer.kind = "bidirectional";
    expect(() => checkpointFromJSON(bad)).toThrow(/config\.layers\[0\]\.layer\.kind/);
  });
});

describe("Bidirectional against the golden values of TensorFlow.js's own tests (tfjs-layers src/layers/wrappers_test.ts)", () => {
  const filled = (shapes: number[][], v: number) => shapes.map((sh) => ndarray(new Float64Array(sh.reduce((a, b) => a * b, 1)).fill(v), sh) as Tensor);
  const x = ndarray(Float64Array.from([0.1, 0.2, -0.1, 0.1]), [1, 2, 2]) as Tensor;

  // "Backwards LSTM: predict and fit": LSTM(1), every weight 1, tfjs's default hard sigmoid, wrapped with
  // goBackwards: true, which tf.keras flips for its copy: its halves are ours swapped (our forward direction is its
  // copy, our backward one its layer). Predict, then one SGD step (learning rate 0.01, mse), then predict.
  it("concat: [0.66088, 0.69299805] (tfjs's [0.69299805, 0.66088] swapped), loss 0.0901649, then [0.66077083, 0.6927189]", () => {
    const m = new Sequential([new Bidirectional(new LSTM({ units: 1, inputDim: 2, recurrentActivation: "hardSigmoid" }))], { dtype: "float64" });
    m.setWeights(filled(m.engine.weightShapes(), 1));
    m.compile({ optimizer: "sgd", loss: "mse" });
    expect(maxRel(m.predict(x).data, [0.66088, 0.69299805], 1)).toBeLessThan(1e-6);
    expect(Math.abs(m.trainOnBatch(x, ndarray(Float64Array.from([0.5, 0.3]), [1, 2]) as Tensor).loss - 0.0901649)).toBeLessThan(1e-7);
    expect(maxRel(m.predict(x).data, [0.66077083, 0.6927189], 1)).toBeLessThan(1e-6);
  });

  it("ave: 0.676939, loss 0.0766952, then 0.6767467 (symmetric in the two directions)", () => {
    const m = new Sequential([new Bidirectional(new LSTM({ units: 1, inputDim: 2, recurrentActivation: "hardSigmoid" }), { mergeMode: "ave" })], { dtype: "float64" });
    m.setWeights(filled(m.engine.weightShapes(), 1));
    m.compile({ optimizer: "sgd", loss: "mse" });
    expect(maxRel(m.predict(x).data, [0.676939], 1)).toBeLessThan(1e-6);
    expect(Math.abs(m.trainOnBatch(x, ndarray(Float64Array.from([0.4]), [1, 1]) as Tensor).loss - 0.0766952)).toBeLessThan(1e-7);
    expect(maxRel(m.predict(x).data, [0.6767467], 1)).toBeLessThan(1e-6);
  });

  // "Bidirectional with initial state": GRU(3) (tfjs's: reset_after false, hard sigmoid), kernels 0, biases 1, x all
  // ones [1, 4, 2], initial states −1 (forward) and +1 (backward): outputs 0.33863544 and 0.8188354 per unit.
  it("initial states: a GRU from h = −1 forwards and hBackward = +1 gives [0.33863544 ×3, 0.8188354 ×3]", () => {
    const m = new Sequential([new Bidirectional(new GRU({ units: 3, inputDim: 2, resetAfter: false, recurrentActivation: "hardSigmoid" }))], { dtype: "float64" });
    m.setWeights(m.engine.weightShapes().map((sh) => ndarray(new Float64Array(sh.reduce((a, b) => a * b, 1)).fill(sh.length === 1 ? 1 : 0), sh) as Tensor));
    const ones = ndarray(new Float64Array(8).fill(1), [1, 4, 2]) as Tensor, st = (v: number) => ndarray(new Float64Array(3).fill(v), [1, 3]) as Tensor;
    const y = m.predict(ones, { initialStates: [{ h: st(-1), hBackward: st(1) }] });
    expect(maxRel(y.data, [0.33863544, 0.33863544, 0.33863544, 0.8188354, 0.8188354, 0.8188354], 1)).toBeLessThan(1e-6);
  });
});

describe("Bidirectional in safetensors", () => {
  it("one nn.LSTM / nn.GRU with bidirectional=True per layer: the backward direction's keys end in _reverse; both ways bit for bit", () => {
    const m = new Sequential([
      new Bidirectional(new LSTM({ units: 3, inputDim: 2, returnSequences: true })),
      new Bidirectional(new GRU({ units: 2 }), { mergeMode: "sum" }),
      new Dense({ units: 1 }),
    ], { seed: 9, dtype: "float64" });
    const bytes = toSafetensors(m);
    const back = fromSafetensors(bytes);
    expect(back.layers.map((l) => l.kind)).toEqual(["bidirectional", "bidirectional", "dense"]);
    expect(Array.from(back.predict(randn([2, 4, 2], 1)).data)).toEqual(Array.from(m.predict(randn([2, 4, 2], 1)).data));
    const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(Object.keys(header).filter((k) => k.startsWith("lstm.0")).sort()).toEqual([
      "lstm.0.bias_hh_l0", "lstm.0.bias_hh_l0_reverse", "lstm.0.bias_ih_l0", "lstm.0.bias_ih_l0_reverse",
      "lstm.0.weight_hh_l0", "lstm.0.weight_hh_l0_reverse", "lstm.0.weight_ih_l0", "lstm.0.weight_ih_l0_reverse",
    ]);
    expect(Object.keys(header).filter((k) => k.startsWith("gru.0")).length).toBe(8);
    expect(header["gru.0.weight_ih_l0_reverse"].shape).toEqual([6, 6]); // (3H, I) = (3·2, 2·3): the concat below gives 2·3 features
    // weight_ih_l0_reverse is the backward direction's kernel transposed: torch (gate row 1, input 0) = keras (input 0, column 1).
    const Kb = m.getWeights()[3]!, at = (key: string) => new DataView(bytes.buffer, bytes.byteOffset + 8 + n + header[key].data_offsets[0]);
    expect(at("lstm.0.weight_ih_l0_reverse").getFloat64(1 * 2 * 8, true)).toBe(Kb.data[1]!);
    expect(at("lstm.0.weight_ih_l0").getFloat64(1 * 2 * 8, true)).toBe(m.getWeights()[0]!.data[1]!);
    const before = new Sequential([new Bidirectional(new GRU({ units: 2, inputDim: 1, resetAfter: false })), new Dense({ units: 1 })]);
    expect(() => toSafetensors(before)).toThrow(/a Bidirectional GRU with resetAfter: false, which PyTorch's nn.GRU does not compute/);
  });
});

describe("Bidirectional refusals", () => {
  it("checks its arguments at the boundary", () => {
    expect(() => new Bidirectional(new Dense({ units: 2 }) as never)).toThrow(/Bidirectional layer: expected an LSTM or a GRU, got/);
    expect(() => new Bidirectional(new LSTM({ units: 2 }), { mergeMode: "max" as never })).toThrow(/Bidirectional mergeMode: expected one of "concat", "sum", "mul", "ave", got "max"/);
    expect(() => new Bidirectional(new LSTM({ units: 2 }), { mergeMode: null as never })).toThrow(/Keras's None/);
    expect(() => new Bidirectional(new LSTM({ units: 2 }), { merge_mode: "sum" } as never)).toThrow(/Bidirectional options: unknown option "merge_mode"/);
    expect(() => new Bidirectional(new GRU({ units: 2, goBackwards: true }))).toThrow(/this GRU has goBackwards: true; the Bidirectional reads backwards with a copy of it, so give it the forward layer/);
    expect(() => new Bidirectional(new LSTM({ units: 2, zeroOutputForMask: true }))).toThrow(/zeroOutputForMask: true without returnSequences; a Bidirectional sets zeroOutputForMask to returnSequences/);
    // Keras 3's rule otherwise: both directions get zeroOutputForMask = returnSequences.
    const z = new Bidirectional(new LSTM({ units: 2, returnSequences: true }));
    expect([z.forwardLayer.zeroOutputForMask, z.backwardLayer.zeroOutputForMask, z.backwardLayer.goBackwards, z.forwardLayer.goBackwards]).toEqual([true, true, true, false]);
    const l = new LSTM({ units: 2, inputDim: 1 });
    const b = new Bidirectional(l);
    expect(() => new Bidirectional(l)).toThrow(/already belongs to a model or another Bidirectional/);
    expect(() => new Sequential([l, new Dense({ units: 1 })])).toThrow(/layers\[0\]: this lstm layer is wrapped by a Bidirectional \(which made its two directions from it\); give the model the Bidirectional/);
    expect(() => new Sequential([new LSTM({ units: 2, inputDim: 1 }), b])).toThrow(/layers\[1\]: a Bidirectional reads a sequence \[batch, timesteps, features\], and the layer below gives one vector per row/);
    expect(() => new Sequential([new Dense({ units: 2, inputDim: 3 }), b])).toThrow(/bidirectional inputDim: expected 2 \(the output of the layer below\), got 1/);
    new Sequential([b]);
    expect(() => new Sequential([b])).toThrow(/already belongs to another model/);
  });

  it("TruncatedBPTT refuses a Bidirectional model, saying why", () => {
    const m = new Sequential([new Masking(), new Bidirectional(new LSTM({ units: 2, inputDim: 1, returnSequences: true })), new Dense({ units: 1 })]);
    expect(() => new TruncatedBPTT(m, { windowLength: 2 })).toThrow(/TruncatedBPTT model: layers\[1\] is a Bidirectional, whose backward direction starts at the end of the sequence/);
  });
});

describe("Bidirectional workspaces across batch sizes", () => {
  it("a batch larger than the one before, on directions' workspaces kept by their size, gets merge buffers that hold it", () => {
    // B = 5, then 2 (the directions keep their buffers, which hold more steps of 2 rows), then 3 rows: the merge's
    // buffers sized for 2 rows must not serve 3 (they did: a last-step model's output came out short, or NaN, and so
    // did training on a ragged last batch followed by full ones).
    for (const kind of ["lstm", "gru"] as Cell[]) {
      for (const seq of [false, true]) {
        const make = () => {
          const m = new Sequential([new Bidirectional(cell(kind, { units: 3, inputDim: 2, returnSequences: seq }), { mergeMode: "concat" }), new Dense({ units: 1 })], { dtype: "float64", seed: 4 });
          m.compile({ optimizer: "sgd", loss: "mse" });
          return m;
        };
        const used = make(), fresh = make();
        used.predict(randn([5, 5, 2], 1));
        used.predict(randn([2, 1, 2], 2));
        const x = randn([3, 6, 2], 3), y = randn(seq ? [3, 6, 1] : [3, 1], 4);
        const a = used.predict(x), b = fresh.predict(x);
        expect(a.shape).toEqual(b.shape);
        expect(Array.from(a.data)).toEqual(Array.from(b.data));
        used.predict(randn([2, 1, 2], 5));
        const ga = used.computeGradients(x, y), gb = fresh.computeGradients(x, y);
        expect(ga.loss).toBe(gb.loss);
        expect(ga.grads.map((g) => Array.from(g.data))).toEqual(gb.grads.map((g) => Array.from(g.data)));
        expect(Array.from(ga.inputGrad.data)).toEqual(Array.from(gb.inputGrad.data));
      }
    }
  });
});
