/**
 * Both cores for masked calls and dropout training steps (src/threads): at 2, 3 and 4 threads, in float64, on the
 * TypeScript kernels and on the SIMD backend, every result equals the one-thread model's from the same seed to 1e-12
 * relative, with updates on (several Adam steps, then the weights, states and predictions).
 *
 * - Masking: a per-step head's loss is a mean over the kept steps, so each slice is weighed by its kept count, not
 *   its rows; the mask patterns below leave every row of one slice masked (the calling thread's, or the last
 *   worker's, at each thread count), and one batch has every step of every row masked. Every loss the engine has
 *   (MSE, BCE on logits and on probabilities, categorical and sparse categorical), with accuracy, and last-step
 *   heads, where masked rows still count.
 * - Dropout: the masks are drawn on the calling thread for the whole batch, as one thread draws them, so the
 *   dropout RNG ends where one thread's does and the weights after every step are one thread's.
 *
 * Each test asserts the pool split its calls (parallelCalls), so none can pass by running on one thread.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  Sequential, LSTM, GRU, Bidirectional, Dense, Embedding, Masking, Adam, StateError, setThreads, zeros, type Tensor, type LossName,
} from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";
import { expectRel, expectSameGradients, expectTensors, randomTensor, stream } from "./helpers/threads.js";

type Layer = LSTM | GRU | Bidirectional | Dense | Embedding;
type Backend = "js" | "wasm";

const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

const MASK = -1; // the Masking layer's value
const B = 11, T = 6, F = 3; // 11 rows: uneven slices at 2, 3 and 4 threads

function pool(m: Sequential): ThreadPool {
  return m.engine.executor as ThreadPool;
}

interface Setup {
  layers: () => Layer[];
  loss: LossName;
  /** A Masking layer first (default true; an Embedding with maskZero masks by itself). */
  masking?: boolean;
  backend?: Backend;
}

/** The same model on one thread and on `threads`, every call split (minFlops 0). */
function pair(s: Setup, threads: number): [Sequential, Sequential] {
  const make = (n: number): Sequential => {
    const layers: (Masking | Layer)[] = s.layers();
    if (s.masking ?? true) layers.unshift(new Masking({ maskValue: MASK }));
    const m = new Sequential(layers, { seed: 5, dtype: "float64", backend: s.backend ?? "js" });
    expect(m.backend).toBe(s.backend ?? "js");
    setThreads(m, n, { minFlops: 0 });
    m.compile({ optimizer: new Adam({ learningRate: 0.02 }), loss: s.loss, metrics: ["accuracy"] });
    live.push(m);
    return m;
  };
  return [make(1), make(threads)];
}

/** The rows [start, end) of each slice the pool cuts B rows into at `threads` threads (the calling thread's first). */
function slices(rows: number, threads: number): [number, number][] {
  const n = Math.min(threads, rows), base = Math.floor(rows / n), rem = rows % n, out: [number, number][] = [];
  for (let k = 0, s = 0; k < n; k++) {
    const size = base + (k > 0 && k <= rem ? 1 : 0);
    out.push([s, s + size]);
    s += size;
  }
  return out;
}

/**
 * Whether step t of row b is masked: every step of the rows of slice `dead` (null: none), and elsewhere a mix of
 * trailing padding, leading padding, a gap and rows left whole.
 */
function pattern(rows: [number, number] | null): (b: number, t: number) => boolean {
  return (b, t) => {
    if (rows && b >= rows[0] && b < rows[1]) return true;
    switch (b % 5) {
      case 0: return t >= 3;             // padded at the end
      case 1: return t < 2;              // padded at the start
      case 2: return t === 2 || t === 3; // a gap
      case 3: return t > 0;              // only the first step
      default: return false;             // whole
    }
  };
}

/** x with every feature of the masked steps set to the mask value (or id 0 for an Embedding). */
function masked(x: Tensor, isMasked: (b: number, t: number) => boolean, value = MASK): Tensor {
  const [Bx, Tx] = x.shape as [number, number], W = x.data.length / (Bx * Tx);
  for (let b = 0; b < Bx; b++) for (let t = 0; t < Tx; t++) if (isMasked(b, t)) x.data.fill(value, (b * Tx + t) * W, (b * Tx + t + 1) * W);
  return x;
}

/** Labels for the loss: [rows, (T,) D] binary, real, one-hot, or class indices. */
function labels(loss: LossName, perStep: boolean, D: number, next: () => number): Tensor {
  const rows = perStep ? B * T : B;
  if (loss === "sparseCategoricalCrossentropy") {
    const y = zeros(perStep ? [B, T, 1] : [B, 1]);
    for (let r = 0; r < rows; r++) y.data[r] = Math.floor(next() * D);
    return y;
  }
  const y = randomTensor(perStep ? [B, T, D] : [B, D], next, loss === "binaryCrossentropy");
  if (loss === "categoricalCrossentropy") {
    y.data.fill(0);
    for (let r = 0; r < rows; r++) y.data[r * D + Math.floor(next() * D)] = 1;
  }
  return y;
}

/** Several training steps, then evaluate, computeGradients and predict: each equal on both models. */
function expectSame(name: string, one: Sequential, many: Sequential, x: Tensor, y: Tensor, steps = 3): void {
  const before = pool(many).parallelCalls;
  expectSameGradients(`${name} computeGradients`, many.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
  for (let s = 0; s < steps; s++) {
    const r1 = one.trainOnBatch(x, y), r2 = many.trainOnBatch(x, y);
    expectRel(`${name} step ${s} loss`, [r2.loss], [r1.loss]);
    expect(r2.accuracy, `${name} step ${s} accuracy`).toBe(r1.accuracy);
    expectRel(`${name} step ${s} gradients`, many.engine.grads, one.engine.grads);
  }
  expectTensors(`${name} weights`, many.getWeights(), one.getWeights());
  const e1 = one.testOnBatch(x, y), e2 = many.testOnBatch(x, y);
  expectRel(`${name} testOnBatch loss`, [e2.loss], [e1.loss]);
  expect(e2.accuracy, `${name} testOnBatch accuracy`).toBe(e1.accuracy);
  expectTensors(`${name} predict`, [many.predict(x)], [one.predict(x)]);
  expectTensors(`${name} states h`, many.getStates().map((s) => s.h), one.getStates().map((s) => s.h));
  // computeGradients, every step, testOnBatch and predict split.
  expect(pool(many).parallelCalls - before, `${name}: calls split`).toBe(steps + 3);
}

/** Two recurrent layers (LSTM, GRU or Bidirectional LSTMs) under `head`, the top one per step or not; `extra` goes to both cells. */
function stacked(rnn: "lstm" | "gru" | "bi", perStep: boolean, head: () => Dense, extra: { dropout?: number; recurrentDropout?: number }[] = [{}, {}]): () => Layer[] {
  return () => {
    const cell = (o: { units: number; inputDim?: number; returnSequences: boolean }): LSTM | GRU => (rnn === "gru" ? new GRU(o) : new LSTM(o));
    const wrap = (l: LSTM | GRU): Layer => (rnn === "bi" ? new Bidirectional(l) : l);
    return [
      wrap(cell({ units: 4, inputDim: F, returnSequences: true, ...extra[0] })), wrap(cell({ units: 3, returnSequences: perStep, ...extra[1] })), head(),
    ];
  };
}

describe("masked calls split across threads and equal one thread's", () => {
  it("per-step heads, every loss, stacked LSTMs: a slice whose rows are all masked weighs nothing (the calling thread's, the last worker's)", () => {
    const heads: { loss: LossName; head: () => Dense; D: number; what: string }[] = [
      { loss: "meanSquaredError", head: () => new Dense({ units: 2 }), D: 2, what: "linear" },
      { loss: "binaryCrossentropy", head: () => new Dense({ units: 2, activation: "sigmoid" }), D: 2, what: "from the logits" },
      { loss: "binaryCrossentropy", head: () => new Dense({ units: 2, activation: "softmax" }), D: 2, what: "on probabilities" },
      { loss: "categoricalCrossentropy", head: () => new Dense({ units: 3, activation: "softmax" }), D: 3, what: "one-hot" },
      { loss: "sparseCategoricalCrossentropy", head: () => new Dense({ units: 3, activation: "softmax" }), D: 3, what: "indices" },
    ];
    // Each loss at two thread counts (worker starts dominate the time: ~1 s a model).
    heads.forEach(({ loss, head, D, what }, i) => {
      for (const threads of [2 + (i % 3), 2 + ((i + 1) % 3)]) {
        const cut = slices(B, threads);
        const [one, many] = pair({ layers: stacked("lstm", true, head), loss }, threads);
        const next = stream(100 * threads + D);
        for (const dead of [cut[0]!, cut[cut.length - 1]!]) {
          const x = masked(randomTensor([B, T, F], next), pattern(dead)), y = labels(loss, true, D, next);
          expectSame(`${loss} (${what}), ${threads} threads, rows [${dead}) masked`, one, many, x, y, 2);
        }
      }
    });
  });

  it("GRU and Bidirectional models, per-step and last-step heads (where masked rows still count), at 2, 3 and 4 threads", () => {
    const sigmoid = (): Dense => new Dense({ units: 2, activation: "sigmoid" });
    for (const rnn of ["gru", "bi", "lstm"] as const) {
      for (const perStep of [true, false]) {
        for (const threads of perStep ? [2, 3, 4] : [3]) {
          const [one, many] = pair({ layers: stacked(rnn, perStep, sigmoid), loss: "binaryCrossentropy" }, threads);
          const next = stream(7 * threads + (perStep ? 1 : 0));
          const cut = slices(B, threads);
          const x = masked(randomTensor([B, T, F], next), pattern(cut[cut.length - 1]!)), y = labels("binaryCrossentropy", perStep, 2, next);
          expectSame(`${rnn}, ${perStep ? "per-step" : "last-step"} head, ${threads} threads`, one, many, x, y);
        }
      }
    }
  });

  it("every step of every row masked: loss, accuracy and gradients 0 as on one thread, per-step and last-step heads", () => {
    for (const perStep of [true, false]) {
      for (const threads of [2, 4]) {
        const [one, many] = pair({ layers: stacked("lstm", perStep, () => new Dense({ units: 1, activation: "sigmoid" })), loss: "binaryCrossentropy" }, threads);
        const next = stream(3 + threads);
        const x = masked(randomTensor([B, T, F], next), () => true), y = labels("binaryCrossentropy", perStep, 1, next);
        const g = many.computeGradients(x, y);
        if (perStep) {
          expect(g.loss).toBe(0);
          for (const w of g.grads) expect(w.data.every((v) => v === 0)).toBe(true);
          expect(many.testOnBatch(x, y)).toEqual({ loss: 0, accuracy: 0 });
        }
        expectSameGradients(`all masked, ${perStep ? "per-step" : "last-step"}, ${threads} threads`, g, one.computeGradients(x, y));
        expectSame(`all masked, ${perStep ? "per-step" : "last-step"}, ${threads} threads`, one, many, x, y);
      }
    }
  });

  it("an Embedding with maskZero and an LSTM with zeroOutputForMask (the replicas build both), and fit with shuffled batches, validation, evaluate and predict in batches", async () => {
    for (const threads of [2, 3]) {
      const [one, many] = pair({
        layers: () => [
          new Embedding({ inputDim: 7, outputDim: 3, maskZero: true }), new LSTM({ units: 4, returnSequences: true, zeroOutputForMask: true }),
          new Dense({ units: 1, activation: "sigmoid" }),
        ],
        loss: "binaryCrossentropy", masking: false,
      }, threads);
      const next = stream(20 + threads), cut = slices(B, threads);
      const ids = zeros([B, T]);
      for (let k = 0; k < ids.data.length; k++) ids.data[k] = 1 + Math.floor(next() * 6);
      const x = masked(ids, pattern(cut[0]!), 0), y = labels("binaryCrossentropy", true, 1, next);
      expectSame(`Embedding maskZero, ${threads} threads`, one, many, x, y);
    }
    const [one, many] = pair({ layers: stacked("lstm", true, () => new Dense({ units: 1, activation: "sigmoid" })), loss: "binaryCrossentropy" }, 2);
    const next = stream(31), N = 2 * B;
    const x = masked(randomTensor([N, T, F], next), (b, t) => pattern([6, 11])(b % B, t)), y = randomTensor([N, T, 1], next, true);
    const before = pool(many).parallelCalls;
    const h1 = await one.fit(x, y, { epochs: 2, batchSize: 8, validationData: [x, y], verbose: 0 });
    const h2 = await many.fit(x, y, { epochs: 2, batchSize: 8, validationData: [x, y], verbose: 0 });
    for (const k of ["loss", "accuracy", "valLoss", "valAccuracy"] as const) expectRel(`fit history ${k}`, h2.history[k]!, h1.history[k]!);
    expectTensors("fit weights", many.getWeights(), one.getWeights());
    const e1 = one.evaluate(x, y, { batchSize: 8 }), e2 = many.evaluate(x, y, { batchSize: 8 });
    expectRel("evaluate", [e2.loss, e2.accuracy!], [e1.loss, e1.accuracy!]);
    expectTensors("predict in batches", [many.predict(x, { batchSize: 8 })], [one.predict(x, { batchSize: 8 })]);
    // 2 epochs × (3 training batches + 3 validation batches), then 3 + 3.
    expect(pool(many).parallelCalls - before).toBe(18);
  });

  it("the SIMD backend in float64: per-step LSTM and Bidirectional GRU, last-step GRU, at 2 and 3 threads", () => {
    const setups: [string, () => Layer[]][] = [
      ["LSTM per step", stacked("lstm", true, () => new Dense({ units: 2, activation: "sigmoid" }))],
      ["Bidirectional GRU per step", () => [new Bidirectional(new GRU({ units: 4, inputDim: F, returnSequences: true })), new Dense({ units: 2, activation: "sigmoid" })]],
      ["GRU last step", stacked("gru", false, () => new Dense({ units: 2, activation: "sigmoid" }))],
    ];
    for (const [name, layers] of setups) {
      for (const threads of [2, 3]) {
        const [one, many] = pair({ layers, loss: "binaryCrossentropy", backend: "wasm" }, threads);
        const next = stream(50 + threads), cut = slices(B, threads);
        const x = masked(randomTensor([B, T, F], next), pattern(cut[1]!)), y = labels("binaryCrossentropy", name.includes("per step"), 2, next);
        expectSame(`wasm ${name}, ${threads} threads`, one, many, x, y);
        expect(pool(many).simdWorkers).toBe(threads - 1);
      }
    }
  });
});

/** Several training steps on both models, then the dropout RNG, the weights and (expectSame) the rest. */
function expectSameDropout(name: string, one: Sequential, many: Sequential, x: Tensor, y: Tensor): void {
  expectSame(name, one, many, x, y, 4);
  expect(many.engine.dropoutRng.state(), `${name}: the dropout RNG drew as one thread did`).toEqual(one.engine.dropoutRng.state());
}

describe("dropout training steps split across threads with one thread's masks", () => {
  const rates = [{ dropout: 0.3, recurrentDropout: 0.2 }, { dropout: 0.25, recurrentDropout: 0.4 }];

  it("dropout and recurrent dropout on LSTM, GRU and Bidirectional layers, at 2, 3 and 4 threads: every step, the weights and the RNG", () => {
    for (const rnn of ["lstm", "gru", "bi"] as const) {
      for (const threads of [2, 3, 4]) {
        const [one, many] = pair({ layers: stacked(rnn, false, () => new Dense({ units: 2, activation: "sigmoid" }), rates), loss: "binaryCrossentropy", masking: false }, threads);
        const next = stream(60 + threads);
        const x = randomTensor([B, T, F], next), y = labels("binaryCrossentropy", false, 2, next);
        expectSameDropout(`${rnn} dropout, ${threads} threads`, one, many, x, y);
      }
    }
  });

  it("only input dropout on one layer and only recurrent dropout on the other, a Bidirectional per step; and fit", async () => {
    const only = [{ dropout: 0.4 }, { recurrentDropout: 0.3 }];
    for (const rnn of ["bi", "lstm"] as const) {
      const [one, many] = pair({ layers: stacked(rnn, true, () => new Dense({ units: 1 }), only), loss: "meanSquaredError", masking: false }, 3);
      const next = stream(70);
      const x = randomTensor([B, T, F], next), y = randomTensor([B, T, 1], next);
      expectSameDropout(`${rnn}, one kind of dropout a layer`, one, many, x, y);
    }
    const [one, many] = pair({ layers: stacked("gru", false, () => new Dense({ units: 1, activation: "sigmoid" }), rates), loss: "binaryCrossentropy", masking: false }, 2);
    const next = stream(71);
    const x = randomTensor([2 * B, T, F], next), y = randomTensor([2 * B, 1], next, true);
    const h1 = await one.fit(x, y, { epochs: 3, batchSize: 9, verbose: 0 }), h2 = await many.fit(x, y, { epochs: 3, batchSize: 9, verbose: 0 });
    expectRel("fit loss", h2.history.loss!, h1.history.loss!);
    expectTensors("fit weights", many.getWeights(), one.getWeights());
    expect(many.engine.dropoutRng.state()).toEqual(one.engine.dropoutRng.state());
    expect(pool(many).parallelCalls).toBe(9);
  });

  it("masking and dropout together: per-step and last-step heads, a dead slice, at 2, 3 and 4 threads", () => {
    for (const rnn of ["lstm", "bi"] as const) {
      for (const perStep of [true, false]) {
        for (const threads of perStep === (rnn === "bi") ? [2, 3, 4] : [3]) {
          const [one, many] = pair({ layers: stacked(rnn, perStep, () => new Dense({ units: 2, activation: "sigmoid" }), rates), loss: "binaryCrossentropy" }, threads);
          const next = stream(80 + threads), cut = slices(B, threads);
          const x = masked(randomTensor([B, T, F], next), pattern(cut[cut.length - 1]!)), y = labels("binaryCrossentropy", perStep, 2, next);
          expectSameDropout(`${rnn} masked + dropout, ${perStep ? "per-step" : "last-step"}, ${threads} threads`, one, many, x, y);
        }
      }
    }
  });

  it("a worker that fails a dropout step leaves the dropout RNG where it was: the retry draws the same masks as one thread", () => {
    const [one, many] = pair({ layers: stacked("lstm", false, () => new Dense({ units: 1, activation: "sigmoid" }), rates), loss: "binaryCrossentropy", masking: false }, 2);
    const next = stream(95);
    const x = randomTensor([B, T, F], next), y = randomTensor([B, 1], next, true);
    expectRel("first step", [many.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]); // starts the worker
    const rng = many.engine.dropoutRng.state();
    pool(many).injectFault("throw");
    expect(() => many.trainOnBatch(x, y)).toThrow(StateError);
    expect(many.engine.dropoutRng.state()).toEqual(rng);
    expectSameDropout("after the failure", one, many, x, y);
  });

  it("the SIMD backend in float64: LSTM (2 threads), GRU (3) and Bidirectional (2, 3) dropout, and with masking", () => {
    for (const rnn of ["lstm", "gru", "bi"] as const) {
      for (const threads of rnn === "bi" ? [2, 3] : [rnn === "lstm" ? 2 : 3]) {
        const [one, many] = pair({ layers: stacked(rnn, rnn === "bi", () => new Dense({ units: 2, activation: "sigmoid" }), rates), loss: "binaryCrossentropy", backend: "wasm", masking: rnn !== "gru" }, threads);
        const next = stream(90 + threads), cut = slices(B, threads);
        const x = masked(randomTensor([B, T, F], next), rnn === "gru" ? () => false : pattern(cut[0]!)), y = labels("binaryCrossentropy", rnn === "bi", 2, next);
        expectSameDropout(`wasm ${rnn} dropout, ${threads} threads`, one, many, x, y);
      }
    }
  });
});
