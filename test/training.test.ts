/**
 * The training surface: fit (batches, seeded shuffle, validation, History, progress), callbacks,
 * optimizers against their formulas, stateful rules (fixed batch, row continuity, resets, setBatchSize),
 * predict / evaluate batching, prepareSequences.
 */
import { describe, it, expect, vi, afterEach } from "vitest";
import {
  Sequential, LSTM, Dense, Adam, SGD, tensor, toArray, prepareSequences, resetStatesEvery, earlyStopping,
  ShapeError, StateError, ValueError, type Tensor, type Callback,
} from "../src/index.js";
import { Rng } from "../src/init.js";
import { setTerminal } from "../src/progress.js";
import { flat } from "./helpers/fixtures.js";

function nest(a: number[], shape: number[]): any {
  if (shape.length === 1) return a;
  const n = a.length / shape[0]!;
  return Array.from({ length: shape[0]! }, (_, i) => nest(a.slice(i * n, (i + 1) * n), shape.slice(1)));
}
const rand = (rng: Rng, shape: number[]): Tensor =>
  tensor(nest(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape));
const bits = (rng: Rng, shape: number[]): Tensor =>
  tensor(nest(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rng.uniform() > 0.5 ? 1 : 0)), shape));
const rows = (t: Tensor, a: number, b: number): Tensor => tensor(toArray(t).slice(a, b));
const same = (a: Tensor[], b: Tensor[]): boolean => a.every((t, i) => flat(t).every((v, k) => v === flat(b[i])[k]));

function make(opts: { seed?: number; stateful?: boolean; batchSize?: number; units?: number; lr?: number; metrics?: boolean; backend?: "js" | "wasm" } = {}): Sequential {
  const m = new Sequential([
    new LSTM({ units: opts.units ?? 4, inputDim: 2, stateful: opts.stateful, batchSize: opts.batchSize }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed: opts.seed ?? 5, ...(opts.backend ? { backend: opts.backend } : {}) });
  m.compile({ optimizer: new Adam({ learningRate: opts.lr ?? 0.01 }), loss: "binaryCrossentropy", metrics: opts.metrics === false ? [] : ["accuracy"] });
  return m;
}

afterEach(() => vi.restoreAllMocks());

describe("fit", () => {
  const rng = new Rng("fit");
  const x = rand(rng, [12, 5, 2]), y = bits(rng, [12, 1]);
  const xv = rand(rng, [6, 5, 2]), yv = bits(rng, [6, 1]);

  it("returns a History with per-epoch loss, accuracy and validation figures", async () => {
    const h = await make().fit(x, y, { epochs: 3, batchSize: 5, validationData: [xv, yv], verbose: 0 });
    expect(h.epoch).toEqual([0, 1, 2]);
    for (const k of ["loss", "accuracy", "valLoss", "valAccuracy"] as const) {
      expect(h.history[k], k).toHaveLength(3);
      expect(h.history[k]!.every(Number.isFinite)).toBe(true);
    }
  });

  it("without shuffle equals trainOnBatch over consecutive slices (last batch short), bit for bit", async () => {
    const a = make(), b = make();
    const h = await a.fit(x, y, { epochs: 2, batchSize: 5, shuffle: false, verbose: 0 });
    const losses: number[] = [];
    for (let e = 0; e < 2; e++) {
      let s = 0;
      for (let i = 0; i < 12; i += 5) {
        const n = Math.min(5, 12 - i);
        s += b.trainOnBatch(rows(x, i, i + n), rows(y, i, i + n)).loss * n;
      }
      losses.push(s / 12);
    }
    expect(same(a.getWeights(), b.getWeights())).toBe(true);
    expect(h.history.loss[0]).toBeCloseTo(losses[0]!, 14);
    expect(h.history.loss[1]).toBeCloseTo(losses[1]!, 14);
  });

  it("shuffles with the model's seed: same seed, same weights; another seed, others", async () => {
    const run = async (seed: number) => { const m = make({ seed }); await m.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0 }); return m.getWeights(); };
    const [a, b] = [await run(1), await run(1)];
    expect(same(a, b)).toBe(true);
    const m1 = make({ seed: 1 }), m2 = make({ seed: 1 });
    await m1.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    await m2.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0, shuffle: false });
    expect(same(m1.getWeights(), m2.getWeights())).toBe(false); // the shuffle changed the batches
  });

  const EPOCH_LINE = /^Epoch 1\/2 - [\d.]+s - loss: \d\.\d{4} - accuracy: \d\.\d{4} - valLoss: \d\.\d{4} - valAccuracy: \d\.\d{4}$/;

  it("verbose 1 with log: one line per epoch through it; verbose 0: nothing; the core alone never writes to stdout", async () => {
    const out: string[] = [], logged: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s: any) => { out.push(String(s)); return true; });
    setTerminal(null); // the portable core on its own: no terminal
    try {
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 0, log: (l) => logged.push(l) });
      expect(logged).toHaveLength(0);
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 1, validationData: [xv, yv], log: (l) => logged.push(l) });
      expect(logged).toHaveLength(2);
      expect(logged[0]).toMatch(EPOCH_LINE);
      expect(logged[1]).toMatch(/^Epoch 2\/2 - /);
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 1 }); // no log, no terminal: quiet
    } finally {
      vi.restoreAllMocks();
    }
    expect(out).toHaveLength(0);
    await expect(make().fit(x, y, { log: "console" as never })).rejects.toThrow(/fit log: expected a function \(line: string\) => void, got "console"/);
  });

  it("with longshort/node's terminal: one line per epoch off a TTY, a live bar on a TTY", async () => {
    await import("../src/node/index.js"); // registers process.stdout as the terminal
    const out: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s: any) => { out.push(String(s)); return true; });
    const tty = process.stdout.isTTY;
    try {
      process.stdout.isTTY = false;
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 1, validationData: [xv, yv] });
      const lines = out.join("").trim().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(EPOCH_LINE);
      out.length = 0;
      process.stdout.isTTY = true;
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 1 });
      const text = out.join("");
      expect(text).toMatch(/^Epoch 1\/2\n\r1\/2 \[=+>?\.*\] - loss: \d\.\d{4} - accuracy: \d\.\d{4}\r2\/2 \[=+\] - loss/);
      expect(text).toContain("\r\x1b[2K2/2 [==============================] - "); // the finished epoch's line replaces the bar
      out.length = 0;
      await make().fit(x, y, { epochs: 2, batchSize: 6, verbose: 0 });
      expect(out).toHaveLength(0);
    } finally {
      process.stdout.isTTY = tty;
      vi.restoreAllMocks();
      setTerminal(null);
    }
  });

  it("calls every hook in order with the model", async () => {
    const calls: string[] = [];
    let seen: unknown = null;
    const cb: Callback = {
      onTrainBegin: () => { calls.push("train+"); },
      onEpochBegin: (e) => { calls.push(`epoch+${e}`); },
      onBatchBegin: (b) => { calls.push(`batch+${b}`); },
      onBatchEnd: (b, logs) => { calls.push(`batch-${b}`); expect(Number.isFinite(logs.loss)).toBe(true); },
      onEpochEnd: (e, logs, model) => { calls.push(`epoch-${e}`); seen = model; expect(logs.loss).toBeDefined(); },
      onTrainEnd: () => { calls.push("train-"); },
    };
    const m = make();
    await m.fit(x, y, { epochs: 2, batchSize: 6, callbacks: [cb], verbose: 0 });
    expect(seen).toBe(m);
    expect(calls).toEqual([
      "train+", "epoch+0", "batch+0", "batch-0", "batch+1", "batch-1", "epoch-0",
      "epoch+1", "batch+0", "batch-0", "batch+1", "batch-1", "epoch-1", "train-",
    ]);
  });

  it("earlyStopping stops when the monitored loss stops improving and can restore the best weights", async () => {
    const m = make({ lr: 0.5 });
    const es = earlyStopping({ monitor: "loss", patience: 0, restoreBestWeights: true });
    // A callback that reports a loss that gets worse after epoch 1, whatever training does.
    const fake: Callback = { onEpochEnd: (e, logs) => { logs.loss = [3, 1, 2, 0.5][e]; } };
    let best: number[] = [];
    const snap: Callback = { onEpochEnd: (e, _l, model) => { if (e === 1) best = Array.from(model.engine.params); } };
    const h = await m.fit(x, y, { epochs: 10, batchSize: 12, callbacks: [fake, snap, es], verbose: 0 });
    expect(h.epoch).toEqual([0, 1, 2]);
    expect(es.stoppedEpoch).toBe(2);
    expect(Array.from(m.engine.params)).toEqual(best);
    expect(() => earlyStopping({ patience: -1 })).toThrow(ValueError);
    // patience 2, as Keras: stop after 2 epochs without improvement
    const es2 = earlyStopping({ monitor: "loss", patience: 2 });
    const worse: Callback = { onEpochEnd: (e, logs) => { logs.loss = [1, 2, 3, 4, 5, 6][e]; } };
    const h2 = await make().fit(x, y, { epochs: 6, batchSize: 12, callbacks: [worse, es2], verbose: 0 });
    expect(h2.epoch).toEqual([0, 1, 2]);
    expect(() => earlyStopping({ restoreBestWeights: "yes" as any })).toThrow(/restoreBestWeights: expected true or false/);
  });

  it("is refused before compile, with bad options, and on a stateful sample count not divisible by the batch", async () => {
    const m = new Sequential([new LSTM({ units: 2, inputDim: 2 }), new Dense({ units: 1 })]);
    await expect(m.fit(x, y)).rejects.toThrow(StateError);
    await expect(make().fit(x, y, { epochs: 1.5 })).rejects.toThrow(/epochs: expected a non-negative integer, got 1.5/);
    await expect(make().fit(x, y, { batchSize: 0 })).rejects.toThrow(/batchSize: expected a positive integer, got 0/);
    await expect(make({ stateful: true, batchSize: 5 }).fit(x, y, { verbose: 0 })).rejects.toThrow(/sample count divisible by the batch size 5, got 12/);
  });
});

describe("a failed call changes nothing; one optimizer per model", () => {
  const rng = new Rng("owner");
  const x = rand(rng, [3, 4, 2]), y = bits(rng, [3, 1]);

  it("an unbuilt model stays unbuilt when the labels are bad", () => {
    const m = new Sequential([new LSTM({ units: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
    m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
    expect(() => m.trainOnBatch(x, [[2], [0], [1]])).toThrow(/labels in \[0, 1\], got 2/);
    expect(() => m.countParams()).toThrow(StateError);
    m.trainOnBatch(x, y);
    expect(m.countParams()).toBe(2 * 8 + 2 * 8 + 8 + 2 + 1);
  });

  it("refuses an optimizer instance that belongs to another model", () => {
    const adam = new Adam();
    const a = make(), b = make();
    a.compile({ optimizer: adam, loss: "binaryCrossentropy" });
    expect(() => b.compile({ optimizer: adam, loss: "binaryCrossentropy" })).toThrow(/already belongs to another model/);
    a.compile({ optimizer: adam, loss: "meanSquaredError" }); // the same model may recompile with it
    a.compile({ optimizer: new SGD(), loss: "binaryCrossentropy" });
    b.compile({ optimizer: adam, loss: "binaryCrossentropy" }); // released by a
    expect(adam.owner).toBe(b);
  });

  it("fit with validation data on a stateful model: training carries its own state across epochs", async () => {
    const xs = rand(rng, [4, 4, 2]), ys = bits(rng, [4, 1]);
    const a = make({ stateful: true, batchSize: 2 }), b = make({ stateful: true, batchSize: 2 });
    await a.fit(xs, ys, { epochs: 3, batchSize: 2, validationData: [xs, ys], verbose: 0 });
    await b.fit(xs, ys, { epochs: 3, batchSize: 2, verbose: 0 });
    expect(same(a.getWeights(), b.getWeights())).toBe(true);
    expect(flat(a.getStates()[0]!.h)).toEqual(flat(b.getStates()[0]!.h));
  });
});

describe("optimizers follow their formulas", () => {
  const rng = new Rng("opt");
  const x = rand(rng, [3, 4, 2]), y = bits(rng, [3, 1]);

  it("SGD: w ← w - lr·g; momentum: v ← μv - lr·g, w ← w + v", () => {
    for (const momentum of [0, 0.9]) {
      const m = make();
      m.compile({ optimizer: new SGD({ learningRate: 0.3, momentum }), loss: "binaryCrossentropy" });
      const w0 = Float64Array.from(m.engine.params);
      const g1 = Float64Array.from(m.computeGradients(x, y).grads.flatMap(flat));
      m.trainOnBatch(x, y);
      const w1 = Float64Array.from(m.engine.params);
      w1.forEach((v, k) => expect(v).toBeCloseTo(w0[k]! - 0.3 * g1[k]!, 14));
      const g2 = Float64Array.from(m.computeGradients(x, y).grads.flatMap(flat));
      m.trainOnBatch(x, y);
      m.engine.params.forEach((v, k) => {
        const vel = momentum * (-0.3 * g1[k]!) - 0.3 * g2[k]!;
        expect(v).toBeCloseTo(w1[k]! + vel, 14);
      });
    }
  });

  it("clipNorm rescales to the global norm; clipValue clamps each entry", () => {
    const m = make();
    m.compile({ optimizer: new SGD({ learningRate: 1, clipNorm: 0.01 }), loss: "binaryCrossentropy" });
    const w0 = Float64Array.from(m.engine.params);
    m.trainOnBatch(x, y);
    let s = 0;
    m.engine.params.forEach((v, k) => { s += (v - w0[k]!) ** 2; });
    expect(Math.sqrt(s)).toBeCloseTo(0.01, 12);
    m.compile({ optimizer: new SGD({ learningRate: 1, clipValue: 1e-4 }), loss: "binaryCrossentropy" });
    const w1 = Float64Array.from(m.engine.params);
    const g = m.computeGradients(x, y).grads.flatMap(flat);
    m.trainOnBatch(x, y);
    m.engine.params.forEach((v, k) => expect(v).toBeCloseTo(w1[k]! - Math.max(-1e-4, Math.min(1e-4, g[k]!)), 14));
  });

  it("Adam puts ε where Keras does: w -= lr·√(1-β2ᵗ)/(1-β1ᵗ) · m / (√v + ε), on gradients where that matters", () => {
    // Gradients from 1e-7 (where √v is near ε) to 1, over six steps, against the formula in plain arithmetic.
    const g = [1e-7, -3e-7, 1e-5, 1e-3, -0.2, 1], n = g.length;
    const opt = new Adam({ learningRate: 0.01, epsilon: 1e-6 });
    opt.init(n);
    const w = new Float64Array(n), ref = new Float64Array(n), torch = new Float64Array(n);
    const m = new Float64Array(n), v = new Float64Array(n);
    for (let t = 1; t <= 6; t++) {
      const grads = Float64Array.from(g, (x, k) => x * (1 + 0.3 * t * (k % 2 ? -1 : 1)));
      opt.apply(w, grads.slice());
      const c1 = 1 - Math.pow(0.9, t), c2 = 1 - Math.pow(0.999, t);
      for (let k = 0; k < n; k++) {
        m[k] = m[k]! + (grads[k]! - m[k]!) * 0.1;
        v[k] = v[k]! + (grads[k]! * grads[k]! - v[k]!) * 0.001;
        ref[k] = ref[k]! - (0.01 * Math.sqrt(c2) / c1) * m[k]! / (Math.sqrt(v[k]!) + 1e-6);
        torch[k] = torch[k]! - (0.01 / c1) * m[k]! / (Math.sqrt(v[k]!) / Math.sqrt(c2) + 1e-6); // ε on √v̂ instead
      }
    }
    for (let k = 0; k < n; k++) expect(Math.abs(w[k]! - ref[k]!), `w[${k}]`).toBeLessThanOrEqual(1e-14 * Math.abs(ref[k]!));
    // Not vacuous: the other placement moves the smallest-gradient weights by a different amount.
    expect(Math.abs(torch[0]! - ref[0]!)).toBeGreaterThan(0.1 * Math.abs(ref[0]!));
  });

  it("Adam defaults are Keras's, and resolve from names", () => {
    const a = new Adam();
    expect([a.learningRate, a.beta1, a.beta2, a.epsilon]).toEqual([0.001, 0.9, 0.999, 1e-7]);
    expect(new SGD().learningRate).toBe(0.01);
    expect(() => new Adam({ learningRate: -1 })).toThrow(/learningRate: expected a positive finite number, got -1/);
    expect(() => new Adam({ beta1: 1 })).toThrow(/beta1/);
    const m = make();
    expect(() => m.compile({ optimizer: "adagrad" as any, loss: "binaryCrossentropy" })).toThrow(/optimizer: expected "adam", "sgd", "rmsprop", "adamw"/);
    expect(() => m.compile({ optimizer: "adam", loss: "hinge" as any })).toThrow(/loss: expected one of/);
  });

  it("trainOnBatch reports the loss before its update", () => {
    const m = make();
    const before = m.testOnBatch(x, y).loss;
    expect(m.trainOnBatch(x, y).loss).toBe(before);
    expect(m.testOnBatch(x, y).loss).not.toBe(before);
  });
});

describe("stateful models", () => {
  const rng = new Rng("stateful");
  const x = rand(rng, [3, 8, 2]), y = bits(rng, [3, 1]);
  const firstHalf = tensor(toArray(x).map((s: number[][]) => s.slice(0, 4)));
  const secondHalf = tensor(toArray(x).map((s: number[][]) => s.slice(4)));

  it("row r of a call continues row r of the last: two windows equal the whole sequence", () => {
    const s = make({ stateful: true, batchSize: 3 }), full = make();
    s.predict(firstHalf);
    const p2 = s.predict(secondHalf);
    expect(flat(p2)).toEqual(flat(full.predict(x)));
    // a stateless model starts every call from zeros
    expect(flat(full.predict(secondHalf))).toEqual(flat(make().predict(secondHalf)));
    expect(flat(full.predict(secondHalf))).not.toEqual(flat(p2));
  });

  it("refuses another batch size with a clear message, and setBatchSize changes it in place", () => {
    const s = make({ stateful: true, batchSize: 3 });
    expect(() => s.trainOnBatch(rows(x, 0, 2), rows(y, 0, 2))).toThrow(ShapeError);
    expect(() => s.trainOnBatch(rows(x, 0, 2), rows(y, 0, 2))).toThrow(/fixed batch size of 3.*got a batch of 2/);
    expect(() => s.predict(x, { batchSize: 1 })).toThrow(/fixed batch size of 3, got 1/);
    const w = s.getWeights();
    s.setBatchSize(1);
    const p = s.predict(rows(x, 1, 2));
    expect(p.shape).toEqual([1, 1]);
    expect(same(s.getWeights(), w)).toBe(true);
    // predicting row 1 alone at batch 1 equals row 1 of a batch-3 call from zeros
    expect(flat(p)[0]).toBeCloseTo(flat(make().predict(x))[1]!, 15);
    expect(() => make().setBatchSize(2)).toThrow(StateError);
  });

  it("a setBatchSize that cannot allocate changes nothing: batch size, states and the next call as before (both backends)", () => {
    for (const backend of ["js", "wasm"] as const) {
      const s = make({ stateful: true, batchSize: 3, backend }), twin = make({ stateful: true, batchSize: 3, backend });
      s.predict(firstHalf); twin.predict(firstHalf);
      const states = s.getStates();
      expect(() => s.setBatchSize(1e9)).toThrow(/setBatchSize batchSize: cannot hold the states of 1000000000 rows .*the batch size and the states are as they were/);
      expect(s.batchSize).toBe(3);
      expect(flat(s.getStates()[0]!.h)).toEqual(flat(states[0]!.h));
      expect(flat(s.getStates()[0]!.c)).toEqual(flat(states[0]!.c));
      expect(flat(s.predict(secondHalf))).toEqual(flat(twin.predict(secondHalf)));
      s.setBatchSize(2); // one that fits: zero states of the new size at once
      expect(s.getStates()[0]!.h.shape).toEqual([2, 4]);
      expect(flat(s.getStates()[0]!.c).every((v) => v === 0)).toBe(true);
    }
  });

  it("getStates on a fresh stateful model with a fixed batch size: zeros of [B, H], what its first call starts from", () => {
    const s = make({ stateful: true, batchSize: 3 });
    const [{ h, c }] = s.getStates() as [{ h: Tensor; c: Tensor }];
    expect(h.shape).toEqual([3, 4]);
    expect(c.shape).toEqual([3, 4]);
    expect([...flat(h), ...flat(c)].every((v) => v === 0)).toBe(true);
    expect(flat(s.predict(x, { initialStates: [{ h, c }] }))).toEqual(flat(make({ stateful: true, batchSize: 3 }).predict(x)));
    expect(make().getStates()[0]!.h.shape).toEqual([0, 4]); // stateless, before any pass
  });

  it("the tutorial's way, copying weights into a batch-size-1 model, keeps working", () => {
    const s = make({ stateful: true, batchSize: 3 });
    s.trainOnBatch(firstHalf, y);
    const one = make({ stateful: true, batchSize: 1 });
    one.setWeights(s.getWeights());
    s.resetStates();
    const p3 = flat(s.predict(x));
    expect(flat(one.predict(rows(x, 2, 3)))[0]).toBeCloseTo(p3[2]!, 15);
  });

  it("resetStates(): zeros; resetStates(states): given values; resetStates({ rows }): only those rows", () => {
    const s = make({ stateful: true, batchSize: 3 });
    s.predict(firstHalf);
    const st = s.getStates();
    expect(st[0]!.h.shape).toEqual([3, 4]);
    expect(flat(st[0]!.h).some((v) => v !== 0)).toBe(true);
    s.resetStates({ rows: [1] });
    const after = s.getStates()[0]!;
    for (let r = 0; r < 3; r++) {
      const hr = flat(after.h).slice(r * 4, r * 4 + 4), old = flat(st[0]!.h).slice(r * 4, r * 4 + 4);
      const cr = flat(after.c).slice(r * 4, r * 4 + 4), oldC = flat(st[0]!.c).slice(r * 4, r * 4 + 4);
      expect(hr).toEqual(r === 1 ? [0, 0, 0, 0] : old);
      expect(cr).toEqual(r === 1 ? [0, 0, 0, 0] : oldC);
    }
    // row 1 now starts afresh while rows 0 and 2 continue
    const p = flat(s.predict(secondHalf));
    const fresh = flat(make().predict(secondHalf));
    const cont = flat(make().predict(x));
    expect(p[1]).toBe(fresh[1]);
    expect(p[0]).toBe(cont[0]);
    s.resetStates(st.map((q) => ({ h: q.h, c: q.c })));
    expect(flat(s.getStates()[0]!.h)).toEqual(flat(st[0]!.h));
    expect(flat(s.getStates()[0]!.c)).toEqual(flat(st[0]!.c));
    expect(flat(st[0]!.c).some((v) => v !== 0)).toBe(true);
    s.resetStates();
    expect(flat(s.getStates()[0]!.h).every((v) => v === 0)).toBe(true);
    expect(flat(s.getStates()[0]!.c).every((v) => v === 0)).toBe(true);
    expect(() => s.resetStates({ rows: [3] })).toThrow(/rows: expected batch row indices in \[0, 3\), got \[3\]/);
    expect(() => s.resetStates([{ h: [[1, 2]], c: [[1, 2]] }])).toThrow(/states\[0\]\.h: expected shape \[B, H\] = \[3, 4\], got \[1, 2\]/);
  });

  it("fit with resetStatesEvery(n) equals the trainOnBatch loop with resets, bit for bit", async () => {
    const [xw, yw] = prepareSequences(x, y, 4, 4); // 3 sequences → 6 windows, in order
    const a = make({ stateful: true, batchSize: 1 }), b = make({ stateful: true, batchSize: 1 });
    await a.fit(xw, yw, { epochs: 2, batchSize: 1, callbacks: [resetStatesEvery(2)], verbose: 0 });
    for (let e = 0; e < 2; e++) {
      for (let i = 0; i < 6; i++) {
        if (i % 2 === 0) b.resetStates();
        b.trainOnBatch(rows(xw, i, i + 1), rows(yw, i, i + 1));
      }
    }
    expect(same(a.getWeights(), b.getWeights())).toBe(true);
  });
});

describe("predict and evaluate", () => {
  const rng = new Rng("pe");
  const x = rand(rng, [7, 5, 2]), y = bits(rng, [7, 1]);

  it("predict in batches equals predict at once; evaluate weights batches by size", () => {
    const m = make();
    expect(flat(m.predict(x, { batchSize: 3 }))).toEqual(flat(m.predict(x)));
    const whole = m.testOnBatch(x, y);
    const ev = m.evaluate(x, y, { batchSize: 3 });
    expect(ev.loss).toBeCloseTo(whole.loss, 14);
    expect(ev.accuracy).toBeCloseTo(whole.accuracy!, 14);
  });

  it("accuracy is y == (p > 0.5)", () => {
    const m = make();
    const p = flat(m.predict(x));
    const expected = p.filter((v, i) => (v > 0.5 ? 1 : 0) === flat(y)[i]).length / 7;
    expect(m.evaluate(x, y).accuracy).toBe(expected);
  });

  it("per-step heads give [N, T, D] outputs", () => {
    const m = new Sequential([new LSTM({ units: 3, inputDim: 2, returnSequences: true }), new Dense({ units: 2 })], { seed: 1 });
    m.compile({ optimizer: "sgd", loss: "meanSquaredError" });
    expect(m.predict(x).shape).toEqual([7, 5, 2]);
    expect(() => m.trainOnBatch(x, rand(rng, [7, 2]))).toThrow(/expected shape \[batch, timesteps, units\] = \[7, 5, 2\]/);
  });
});

describe("layers belong to one model", () => {
  it("refuses a layer that is already in another model, or twice in one", () => {
    const l = new LSTM({ units: 2, inputDim: 1 });
    const m = new Sequential([l, new Dense({ units: 1 })]);
    const w = m.getWeights();
    expect(() => new Sequential([l, new Dense({ units: 1 })])).toThrow(/already belongs to another model/);
    expect(m.getWeights().map((t) => flat(t))).toEqual(w.map((t) => flat(t)));
    const d = new Dense({ units: 1 });
    expect(() => new Sequential([new LSTM({ units: 2, inputDim: 1 }), d, d])).toThrow(/appears twice/);
  });
});

describe("prepareSequences", () => {
  const x = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]];
  it("cuts non-overlapping and sliding windows, sequence by sequence, labels repeated", () => {
    const [xw, yw] = prepareSequences(x, [0, 1], 3, 3);
    expect(xw.shape).toEqual([4, 3, 1]);
    expect(toArray(xw).map((w: number[][]) => w.map((v) => v[0]))).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]);
    expect(toArray(yw)).toEqual([[0], [0], [1], [1]]);
    const [xs, ys] = prepareSequences(x, [[0], [1]], 3, 1);
    expect(xs.shape).toEqual([8, 3, 1]);
    expect(toArray(xs)[5].map((v: number[]) => v[0])).toEqual([8, 9, 10]);
    expect(toArray(ys)[5]).toEqual([1]);
    const [, yp] = prepareSequences(x, x.map((s) => s.map((v) => [v * 10])), 2, 2);
    expect(yp.shape).toEqual([6, 2, 1]);
    expect(toArray(yp)[4]).toEqual([[90], [100]]);
  });
  it("validates its arguments", () => {
    expect(() => prepareSequences(x, [0, 1], 0, 1)).toThrow(/windowLength: expected a positive integer, got 0/);
    expect(() => prepareSequences(x, [0, 1], 2, 1.5)).toThrow(/increment: expected a positive integer, got 1.5/);
    expect(() => prepareSequences(x, [0, 1], 7, 1)).toThrow(/at most the sequence length 6, got 7/);
    expect(() => prepareSequences(x, [0, 1, 1], 2, 1)).toThrow(ShapeError);
    expect(() => prepareSequences([[1, 2], [3]], [0, 1], 1, 1)).toThrow(/ragged/);
  });
});
