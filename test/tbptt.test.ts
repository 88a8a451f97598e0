/**
 * Truncated BPTT: TBPTT(k, k) is Keras's "split into windows + stateful"; k2 > k1 reaches into earlier
 * windows (Williams & Peng); k2 < k1 cuts the gradient inside the window; chunked feeding equals one call.
 */
import { describe, it, expect } from "vitest";
import {
  Sequential, LSTM, Dense, Adam, SGD, TruncatedBPTT, tensor, toArray, checkpointToJSON, checkpointFromJSON, type Tensor, type LossName,
} from "../src/index.js";
import { Rng } from "../src/init.js";
import { loadFixtures, expectClose, flat } from "./helpers/fixtures.js";

function reshape(t: Tensor, shape: number[]): Tensor {
  return tensor(nest(Array.from(t.data), shape));
}
function nest(a: number[], shape: number[]): any {
  if (shape.length === 1) return a;
  const n = a.length / shape[0]!;
  return Array.from({ length: shape[0]! }, (_, i) => nest(a.slice(i * n, (i + 1) * n), shape.slice(1)));
}
function rand(rng: Rng, shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return reshape(tensor(Array.from({ length: n }, () => rng.normal() * scale)), shape);
}
/** Steps [a, b) of x [B, T, F] as a new tensor. */
function steps(x: Tensor, a: number, b: number): Tensor {
  return tensor(toArray(x.hi(x.shape[0]!, b, x.shape[2]!).lo(0, a, 0)));
}

interface Cfg { I: number; H: number[]; D: number; perStep?: boolean; loss?: LossName; act?: "sigmoid" | "linear"; stateful?: boolean; B?: number }
function makeModel(c: Cfg, seed = 7): Sequential {
  const layers: (LSTM | Dense)[] = c.H.map((h, i) => new LSTM({
    units: h, inputDim: i === 0 ? c.I : undefined, returnSequences: i < c.H.length - 1 || Boolean(c.perStep),
    stateful: c.stateful, batchSize: c.stateful ? c.B : undefined,
  }));
  layers.push(new Dense({ units: c.D, activation: c.act ?? "sigmoid" }));
  const m = new Sequential(layers, { seed });
  m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: c.loss ?? "binaryCrossentropy" });
  return m;
}
const labels = (rng: Rng, shape: number[]) => reshape(tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rng.uniform() > 0.5 ? 1 : 0))), shape);
const maxDiff = (a: Tensor[], b: Tensor[]) => Math.max(...a.map((t, i) => Math.max(...flat(t).map((v, k) => Math.abs(v - flat(b[i])[k]!)))));

describe("TruncatedBPTT", () => {
  for (const fx of loadFixtures("statefulWindows")) {
    it(`TBPTT(k, k) reproduces ${fx.file} (gradients only, windows fed as chunks)`, () => {
      const c = fx.config;
      const m = new Sequential([new LSTM({ units: c.units, inputDim: c.inputDim }), new Dense({ units: c.denseUnits, activation: c.activation })], { seed: 1 });
      m.compile({ optimizer: "adam", loss: c.loss });
      m.setWeights([fx.weights.lstm.kernel, fx.weights.lstm.recurrentKernel, fx.weights.lstm.bias, fx.weights.dense.kernel, fx.weights.dense.bias]);
      const tb = new TruncatedBPTT(m, { windowLength: c.timesteps });
      let seen = 0;
      fx.windows.forEach((w: any, k: number) => {
        const r = tb.trainSequence(w.x, w.y, {
          endOfSequence: k === fx.windows.length - 1, update: false,
          onWindow: (info) => {
            seen++;
            const e = w.expected;
            expectClose(`window ${k} loss`, info.loss, e.loss, 1e-9, 1e-12);
            const [st] = tb.getStates();
            expectClose(`window ${k} hT`, st!.h, e.hT, 1e-9, 1e-12);
            expectClose(`window ${k} cT`, st!.c, e.cT, 1e-9, 1e-12);
            const g = [e.grads.lstm.kernel, e.grads.lstm.recurrentKernel, e.grads.lstm.bias, e.grads.dense.kernel, e.grads.dense.bias];
            expectClose(`window ${k} grads`, info.grads, g.flatMap(flat), 1e-9, 1e-12);
          },
        });
        expect(r.windows).toBe(1);
      });
      expect(seen).toBe(fx.windows.length);
    });
  }

  it("TBPTT(k, k) with Adam equals a stateful model fed the windows by hand, to 1e-12", () => {
    const rng = new Rng("tb1");
    for (const cfg of [
      { I: 2, H: [5], D: 1 },
      { I: 3, H: [4, 3], D: 2, perStep: true },
      { I: 1, H: [6], D: 1, loss: "meanSquaredError" as LossName, act: "linear" as const },
    ]) {
      const B = 3, T = 12, k = 4;
      const x = rand(rng, [B, T, cfg.I]);
      const y = cfg.perStep ? labels(rng, [B, T, cfg.D]) : cfg.loss ? rand(rng, [B, cfg.D]) : labels(rng, [B, cfg.D]);
      const a = makeModel(cfg);
      const tb = new TruncatedBPTT(a, { windowLength: k });
      const r = tb.trainSequence(x, y);
      expect(r.windows).toBe(3);
      const b = makeModel({ ...cfg, stateful: true, B });
      const losses: number[] = [];
      for (let w = 0; w < T / k; w++) {
        const yw = cfg.perStep ? steps(y, w * k, (w + 1) * k) : y;
        losses.push(b.trainOnBatch(steps(x, w * k, (w + 1) * k), yw).loss);
      }
      expectClose("losses", r.losses, losses, 1e-12, 1e-14);
      expect(maxDiff(a.getWeights(), b.getWeights())).toBeLessThan(1e-12);
      // the sequence ended: the next call starts from zeros again, like resetStates()
      expect(flat(tb.getStates()[0]!.h).every((v) => v === 0)).toBe(true);
    }
  });

  it("k2 ≥ T with one window equals full BPTT (trainOnBatch on the whole sequence)", () => {
    const rng = new Rng("tb2");
    const cfg = { I: 2, H: [5, 4], D: 1 };
    const x = rand(rng, [2, 9, 2]), y = labels(rng, [2, 1]);
    const a = makeModel(cfg), b = makeModel(cfg);
    const r = new TruncatedBPTT(a, { windowLength: 9, backpropLength: 20 }).trainSequence(x, y);
    const l = b.trainOnBatch(x, y).loss;
    expect(Math.abs(r.loss - l)).toBeLessThan(1e-14);
    expect(maxDiff(a.getWeights(), b.getWeights())).toBeLessThan(1e-14);
  });

  it("k2 > k1: every window's gradient reaches back k2 steps (no update: equals full BPTT of that window's loss)", () => {
    const rng = new Rng("tb3");
    const cfg = { I: 2, H: [4], D: 1 };
    const B = 2, T = 12, k1 = 3;
    const x = rand(rng, [B, T, 2]), y = labels(rng, [B, 1]);
    for (const k2 of [5, 7, 100]) {
      const m = makeModel(cfg);
      const ref = makeModel({ ...cfg, stateful: true, B });
      const got: number[][] = [];
      new TruncatedBPTT(m, { windowLength: k1, backpropLength: k2 }).trainSequence(x, y, {
        update: false, onWindow: (info) => got.push(Array.from(info.grads)),
      });
      expect(got.length).toBe(T / k1);
      got.forEach((g, w) => {
        const tau = (w + 1) * k1, from = Math.max(0, tau - k2);
        // Reference: run from zero to `from` (no gradient), then computeGradients over [from, tau).
        ref.resetStates();
        if (from > 0) ref.predict(steps(x, 0, from));
        const e = ref.computeGradients(steps(x, from, tau), y).grads.flatMap(flat);
        expectClose(`k2=${k2} window ${w} grads`, g, e, 1e-10, 1e-13);
      });
    }
  });

  it("k2 < k1 cuts the gradient inside the window", () => {
    const rng = new Rng("tb4");
    const cfg = { I: 2, H: [4], D: 1 };
    const B = 2, T = 10, k1 = 5, k2 = 2;
    const x = rand(rng, [B, T, 2]), y = labels(rng, [B, 1]);
    const m = makeModel(cfg), ref = makeModel({ ...cfg, stateful: true, B });
    const got: number[][] = [];
    new TruncatedBPTT(m, { windowLength: k1, backpropLength: k2 }).trainSequence(x, y, {
      update: false, onWindow: (info) => got.push(Array.from(info.grads)),
    });
    got.forEach((g, w) => {
      const tau = (w + 1) * k1;
      ref.resetStates();
      ref.predict(steps(x, 0, tau - k2));
      const e = ref.computeGradients(steps(x, tau - k2, tau), y).grads.flatMap(flat);
      expectClose(`window ${w}`, g, e, 1e-10, 1e-13);
    });
  });

  it("feeding a sequence in chunks (not aligned with windows) equals one call, for k2 > k1, k2 < k1 and per-step labels", () => {
    const rng = new Rng("tb5");
    for (const [cfg, k1, k2] of [
      [{ I: 2, H: [4], D: 1 }, 5, 8],
      [{ I: 2, H: [4], D: 1 }, 5, 3],
      [{ I: 1, H: [3, 3], D: 2, perStep: true }, 4, 6],
    ] as [Cfg, number, number][]) {
      const B = 2, T = 23;
      const x = rand(rng, [B, T, cfg.I]);
      const y = cfg.perStep ? labels(rng, [B, T, cfg.D]) : labels(rng, [B, cfg.D]);
      const a = makeModel(cfg), b = makeModel(cfg);
      const ra = new TruncatedBPTT(a, { windowLength: k1, backpropLength: k2 }).trainSequence(x, y);
      const tb = new TruncatedBPTT(b, { windowLength: k1, backpropLength: k2 });
      const losses: number[] = [];
      for (let s = 0; s < T; s += 7) {
        const e = Math.min(T, s + 7);
        const r = tb.trainSequence(steps(x, s, e), cfg.perStep ? steps(y, s, e) : y, { endOfSequence: e === T });
        losses.push(...r.losses);
      }
      expect(ra.windows).toBe(Math.ceil(T / k1)); // the last partial window is trained at the end
      expect(losses).toEqual(ra.losses);
      expect(maxDiff(a.getWeights(), b.getWeights())).toBe(0);
    }
  });

  it("refuses a chunk when the model was used in between, and a batch size change mid-sequence", () => {
    const rng = new Rng("tb6");
    const m = makeModel({ I: 1, H: [3], D: 1 });
    const tb = new TruncatedBPTT(m, { windowLength: 4 });
    const x = rand(rng, [2, 6, 1]), y = labels(rng, [2, 1]);
    tb.trainSequence(x, y, { endOfSequence: false });
    expect(() => tb.trainSequence(rand(rng, [3, 6, 1]), labels(rng, [3, 1]), { endOfSequence: false })).toThrow(/batch size 2, got 3/);
    m.predict(x);
    expect(() => tb.trainSequence(x, y)).toThrow(/used for another call/);
    expect(tb.trainSequence(x, y).windows).toBe(2); // after the reset it starts afresh
    expect(() => new TruncatedBPTT(m, { windowLength: 0 })).toThrow(/windowLength: expected a positive integer, got 0/);
    expect(() => new TruncatedBPTT(m, { windowLength: 3, backpropLength: 2.5 })).toThrow(/backpropLength/);
  });

  it("a 100,000-step sequence trains without NaN, window 50, with memory bounded by the window", () => {
    const m = makeModel({ I: 1, H: [8], D: 1 });
    const tb = new TruncatedBPTT(m, { windowLength: 50, backpropLength: 75 });
    const rng = new Rng("long");
    const T = 100_000, chunk = 5_000, B = 2;
    let windows = 0;
    for (let s = 0; s < T; s += chunk) {
      const x = rand(rng, [B, chunk, 1], 3);
      const y = labels(rng, [B, 1]);
      const r = tb.trainSequence(x, y, { endOfSequence: s + chunk >= T });
      expect(Number.isFinite(r.loss)).toBe(true);
      windows += r.windows;
    }
    expect(windows).toBe(T / 50);
    expect(m.getWeights().every((w) => flat(w).every(Number.isFinite))).toBe(true);
    // The LSTM workspace holds max(k1, k2) = 75 steps, not the sequence.
    expect(m.engine.ws(0).cap).toBe(75);
  });

  it('onNonFinite "skip": a bad window is dropped and the sequence goes on from the state before it, like a stateful model', () => {
    const rng = new Rng("skip");
    const mk = (stateful: boolean) => {
      const m = new Sequential([
        new LSTM({ units: 3, inputDim: 2, kernelInitializer: "zeros", stateful, batchSize: stateful ? 2 : undefined }),
        new Dense({ units: 1 }),
      ], { seed: 4 });
      m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "meanSquaredError", onNonFinite: "skip" });
      return m;
    };
    const x = rand(rng, [2, 9, 2]), y = rand(rng, [2, 1]);
    // Window 2 (steps 3–5) holds inputs so large that the kernel's gradient overflows (the zero kernel keeps
    // the forward pass finite), so its update is skipped.
    for (let b = 0; b < 2; b++) for (let t = 3; t < 6; t++) for (let f = 0; f < 2; f++) x.set(b, t, f, 1.7e308);
    const a = mk(false);
    const r = new TruncatedBPTT(a, { windowLength: 3 }).trainSequence(x, y);
    expect(r.windows).toBe(3);
    const s = mk(true);
    for (let w = 0; w < 3; w++) s.trainOnBatch(steps(x, 3 * w, 3 * w + 3), y);
    expect(maxDiff(a.getWeights(), s.getWeights())).toBe(0);
    expect(a.getWeights().every((w) => flat(w).every(Number.isFinite))).toBe(true);
  });

  it("SGD works with the unroller too, and accuracy is the mean of every window's accuracy", () => {
    const rng = new Rng("sgd");
    const x = rand(rng, [8, 10, 1]), y = labels(rng, [8, 1]);
    const m = makeModel({ I: 1, H: [3], D: 1 });
    m.compile({ optimizer: new SGD({ learningRate: 0.1 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
    const w0 = m.getWeights();
    const r = new TruncatedBPTT(m, { windowLength: 5 }).trainSequence(x, y, { update: false });
    expect(r.windows).toBe(2);
    // Independently: the output at the end of window w is predict on steps [0, 5(w + 1)) from zeros.
    const ref = makeModel({ I: 1, H: [3], D: 1 });
    ref.setWeights(w0);
    const accAt = (tau: number) => flat(ref.predict(steps(x, 0, tau))).filter((p, i) => (p > 0.5 ? 1 : 0) === flat(y)[i]).length / 8;
    expect(r.accuracy).toBe((accAt(5) + accAt(10)) / 2);
    const trained = new TruncatedBPTT(m, { windowLength: 5 }).trainSequence(x, y);
    expect(maxDiff(m.getWeights(), w0)).toBeGreaterThan(0);
    expect(trained.losses[0]).toBe(r.losses[0]);
  });

  it("holds a stateful model to its batch size, so its carried state and checkpoints stay whole", () => {
    const rng = new Rng("stateful-tbptt");
    const m = makeModel({ I: 1, H: [3], D: 1, stateful: true, B: 3 });
    const tb = new TruncatedBPTT(m, { windowLength: 4 });
    expect(() => tb.trainSequence(rand(rng, [5, 8, 1]), labels(rng, [5, 1]))).toThrow(/fixed batch size of 3.*got a batch of 5/);
    tb.trainSequence(rand(rng, [3, 8, 1]), labels(rng, [3, 1]), { endOfSequence: false });
    expect(m.getStates()[0]!.h.shape).toEqual([3, 3]);
    const copy = checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(m))));
    expect(flat(copy.getStates()[0]!.h)).toEqual(flat(m.getStates()[0]!.h));
    expect(() => new TruncatedBPTT({} as any, { windowLength: 2 })).toThrow(/model: expected a Sequential/);
  });
});
