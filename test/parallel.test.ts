/**
 * Both cores (src/threads, started by setThreads of longshort/node): a model with two threads splits a
 * batch between the calling thread and a worker thread. Every result must equal the one-thread model's, started from the same seed, to 1e-12
 * relative in float64: the loss, accuracy, every gradient, dL/dx, dL/d(initial state), hidden states and
 * their gradient norms, the weights after several Adam steps, predict's outputs and the carried states.
 * (Only the order of the sums over batch rows differs, so the true gap is ~1e-15.)
 *
 * The shapes are tiny and the threshold is forced to 0 (minFlops) so the tests run in seconds;
 * a separate test checks that below the threshold nothing leaves the calling thread. The last tests make
 * a worker throw, exit or hang in the middle of a call (the engine's test-only injectFault), and drop a
 * model without dispose() to see its worker stopped by the garbage collector.
 */
import { once } from "node:events";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { LSTMWorkspace } from "../src/layers/lstm.js";
import type { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, LSTM, GRU, Bidirectional, Dense, Adam, ValueError, NonFiniteError, StateError, zeros, setThreads,
  type Tensor, type ThreadOptions, type RecurrentState,
} from "../src/node/index.js";
import type { DType } from "../src/tensor/tensor.js";
import { DEFAULT_MIN_FLOPS, type ThreadPool } from "../src/threads/pool.js";
import { expectRel, expectSameGradients, expectTensors, randomTensor, stream } from "./helpers/threads.js";

/** `m` with `threads` threads (setThreads of longshort/node). */
function threaded(m: Sequential, threads: number | "auto", options?: ThreadOptions): Sequential {
  setThreads(m, threads, options);
  return m;
}

/** The model's thread pool, for what the tests watch (calls split, workers running, faults). */
function pool(m: Sequential): ThreadPool {
  return m.engine.executor as ThreadPool;
}
const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

interface Setup {
  layers: () => (LSTM | GRU | Bidirectional | Dense)[];
  loss: "binaryCrossentropy" | "meanSquaredError" | "meanAbsoluteError" | { name: "huber"; delta: number };
  dtype?: DType;
}

/** The same model twice: one thread, and `threads` (2) threads with the threshold at 0 so every call splits. */
function pair(s: Setup, threads = 2): [Sequential, Sequential] {
  const make = (threads: number): Sequential => {
    const m = threaded(new Sequential(s.layers(), { seed: 11, dtype: s.dtype ?? "float64" }), threads, { minFlops: 0 });
    m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: s.loss, metrics: ["accuracy"] });
    live.push(m);
    return m;
  };
  return [make(1), make(threads)];
}

/**
 * Several Adam steps on both models: each step's loss, accuracy and merged gradient, then the weights,
 * the states and predict's outputs.
 */
function expectSameTraining(one: Sequential, two: Sequential, x: Tensor, y: Tensor, steps: number): void {
  for (let s = 0; s < steps; s++) {
    const r1 = one.trainOnBatch(x, y), r2 = two.trainOnBatch(x, y);
    expectRel(`step ${s} loss`, [r2.loss], [r1.loss]);
    expect(r2.accuracy, `step ${s} accuracy`).toBe(r1.accuracy);
    expectRel(`step ${s} gradients`, two.engine.grads, one.engine.grads);
  }
  expectTensors("weights", two.getWeights(), one.getWeights());
  expectTensors("states h", two.getStates().map((s) => s.h), one.getStates().map((s) => s.h));
  expectTensors("states c", two.getStates().flatMap((s) => (s.c ? [s.c] : [])), one.getStates().flatMap((s) => (s.c ? [s.c] : [])));
  expectTensors("predict", [two.predict(x)], [one.predict(x)]);
}

describe("two threads give one thread's results", () => {
  it("last-step head, sigmoid + BCE, odd batch (7 rows: 3 here, 4 in the worker)", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 6, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
    });
    const next = stream(1);
    const x = randomTensor([7, 5, 3], next), y = randomTensor([7, 1], next, true);
    expectSameGradients("computeGradients", two.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
    expectSameTraining(one, two, x, y, 4);
    const t1 = one.testOnBatch(x, y), t2 = two.testOnBatch(x, y);
    expectRel("testOnBatch loss", [t2.loss], [t1.loss]);
    expect(t2.accuracy).toBe(t1.accuracy);
    // computeGradients, 4 steps, predict, testOnBatch: every one of them split.
    expect(pool(two).parallelCalls).toBe(7);
    expect(one.engine.executor).toBeNull();
  });

  it("inputs given as views: rows at an offset in a larger array (copied to the worker a row at a time) and a transposed view (value by value)", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
    });
    const next = stream(7);
    const x = randomTensor([6, 4, 3], next), y = randomTensor([6, 1], next, true);
    // The same values two rows into a larger array (offset 2·4·3), and laid out time-major then transposed.
    const big = new Float64Array(8 * 4 * 3);
    big.set(x.data, 2 * 4 * 3);
    const atOffset = ndarray(big, [8, 4, 3]).lo(2) as unknown as Tensor;
    const tm = new Float64Array(6 * 4 * 3);
    for (let b = 0; b < 6; b++) for (let t = 0; t < 4; t++) for (let f = 0; f < 3; f++) tm[(t * 6 + b) * 3 + f] = x.data[(b * 4 + t) * 3 + f]!;
    const transposed = ndarray(tm, [4, 6, 3]).transpose(1, 0, 2) as unknown as Tensor;
    expect(atOffset.offset).toBe(24);
    const want = one.computeGradients(x, y);
    expectSameGradients("at an offset", two.computeGradients(atOffset, y), want);
    expectSameGradients("transposed", two.computeGradients(transposed, y), want);
    expect(pool(two).parallelCalls).toBe(2);
  });

  it("per-step head over stacked LSTMs, MSE, two output units, 5 rows", () => {
    const [one, two] = pair({
      layers: () => [
        new LSTM({ units: 5, inputDim: 2, returnSequences: true }),
        new LSTM({ units: 4, returnSequences: true }),
        new Dense({ units: 2 }),
      ],
      loss: "meanSquaredError",
    });
    const next = stream(2);
    const x = randomTensor([5, 6, 2], next), y = randomTensor([5, 6, 2], next);
    expectSameGradients("computeGradients", two.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
    expectSameTraining(one, two, x, y, 3);
    expect(pool(two).parallelCalls).toBe(5);
  });

  it("mean absolute error and Huber (its delta reaches the workers), per-step head, 5 rows", () => {
    for (const loss of ["meanAbsoluteError", { name: "huber", delta: 0.3 }] as const) {
      const [one, two] = pair({ layers: () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 2 })], loss });
      const next = stream(5);
      const x = randomTensor([5, 4, 2], next), y = randomTensor([5, 4, 2], next);
      expectSameTraining(one, two, x, y, 3);
      expect(pool(two).parallelCalls).toBe(4);
    }
  });

  it("per-step head, sigmoid + BCE (the fused gradient), 3 rows", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
    });
    const next = stream(3);
    const x = randomTensor([3, 7, 2], next), y = randomTensor([3, 7, 1], next, true);
    expectSameGradients("computeGradients", two.computeGradients(x, y), one.computeGradients(x, y));
    expectSameTraining(one, two, x, y, 3);
  });

  it("stacked LSTMs under two Dense layers, BCE on probabilities (tanh then sigmoid)", () => {
    const [one, two] = pair({
      layers: () => [
        new LSTM({ units: 5, inputDim: 3, returnSequences: true }),
        new LSTM({ units: 6 }),
        new Dense({ units: 4, activation: "tanh" }),
        new Dense({ units: 1, activation: "sigmoid" }),
      ],
      loss: "binaryCrossentropy",
    });
    const next = stream(4);
    const x = randomTensor([9, 4, 3], next), y = randomTensor([9, 1], next, true);
    expectSameGradients("computeGradients", two.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
    expectSameTraining(one, two, x, y, 3);
  });

  it("three and four threads (slices merged three and four at a time) give one thread's results, training and stateful", () => {
    for (const threads of [3, 4]) {
      const [one, many] = pair({
        layers: () => [
          new LSTM({ units: 5, inputDim: 3, returnSequences: true }),
          new LSTM({ units: 4 }),
          new Dense({ units: 2, activation: "sigmoid" }),
        ],
        loss: "binaryCrossentropy",
      }, threads);
      const next = stream(40 + threads);
      const x = randomTensor([11, 6, 3], next), y = randomTensor([11, 2], next, true); // 11 rows: uneven slices
      expectSameGradients(`computeGradients, ${threads} threads`, many.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
      expectSameTraining(one, many, x, y, 3);
      expect(many.threads).toBe(threads);
      expect(pool(many).parallelCalls).toBe(5);
    }
    // Stateful, 3 threads: every row's state carries across calls through its own slice.
    const [one, many] = pair({
      layers: () => [new LSTM({ units: 4, inputDim: 2, stateful: true, batchSize: 7 }), new Dense({ units: 1 })],
      loss: "meanSquaredError",
    }, 3);
    const next = stream(50);
    for (let call = 0; call < 3; call++) {
      const x = randomTensor([7, 4, 2], next), y = randomTensor([7, 1], next);
      expectRel(`stateful call ${call} loss`, [many.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
    }
    expectTensors("stateful h", many.getStates().map((st) => st.h), one.getStates().map((st) => st.h));
    expectTensors("stateful c", many.getStates().map((st) => st.c!), one.getStates().map((st) => st.c!));
  });

  it("GRU models at 2, 3 and 4 threads: computeGradients (with dL/d(initial state), { h } only) and training equal one thread's, and a stateful GRU carries its rows", () => {
    for (const threads of [2, 3, 4]) {
      const [one, many] = pair({
        layers: () => [
          new GRU({ units: 5, inputDim: 3, returnSequences: true }), new GRU({ units: 4, resetAfter: false, recurrentActivation: "hardSigmoid" }),
          new Dense({ units: 2, activation: "sigmoid" }),
        ],
        loss: "binaryCrossentropy",
      }, threads);
      const next = stream(70 + threads);
      const x = randomTensor([11, 6, 3], next), y = randomTensor([11, 2], next, true);
      const a = many.computeGradients(x, y, { hiddenGradNorms: true }), e = one.computeGradients(x, y, { hiddenGradNorms: true });
      expectSameGradients(`GRU, ${threads} threads`, a, e);
      expect(a.stateGrads.map((g) => Object.keys(g))).toEqual([["h"], ["h"]]);
      expectSameTraining(one, many, x, y, 3);
      expect(pool(many).parallelCalls, `${threads} threads`).toBeGreaterThan(0);
    }
    const [one, many] = pair({
      layers: () => [new GRU({ units: 4, inputDim: 2, stateful: true, batchSize: 7, returnSequences: true }), new LSTM({ units: 3, stateful: true, batchSize: 7 }), new Dense({ units: 1 })],
      loss: "meanSquaredError",
    }, 3);
    const next = stream(80);
    for (let call = 0; call < 3; call++) {
      const x = randomTensor([7, 4, 2], next), y = randomTensor([7, 1], next);
      expectRel(`stateful GRU call ${call} loss`, [many.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
    }
    expectTensors("stateful GRU h", many.getStates().map((st) => st.h), one.getStates().map((st) => st.h));
    expectTensors("stateful LSTM c", [many.getStates()[1]!.c!], [one.getStates()[1]!.c!]);
  });

  it("Bidirectional models at 2, 3 and 4 threads: computeGradients (both directions' states and hidden sequences) and training equal one thread's, and a stateful one carries its rows", () => {
    const st = (g: RecurrentState, k: "h" | "hBackward" | "cBackward"): Tensor[] => (g[k] ? [g[k]!] : []);
    for (const threads of [2, 3, 4]) {
      const [one, many] = pair({
        layers: () => [
          new Bidirectional(new LSTM({ units: 4, inputDim: 3, returnSequences: true }), { mergeMode: "mul" }),
          new Bidirectional(new GRU({ units: 3 })),
          new Dense({ units: 2, activation: "sigmoid" }),
        ],
        loss: "binaryCrossentropy",
      }, threads);
      const next = stream(90 + threads);
      const x = randomTensor([11, 6, 3], next), y = randomTensor([11, 2], next, true);
      const a = many.computeGradients(x, y, { hiddenGradNorms: true }), e = one.computeGradients(x, y, { hiddenGradNorms: true });
      expectSameGradients(`Bidirectional, ${threads} threads`, a, e);
      expect(a.stateGrads.map((g) => Object.keys(g))).toEqual([["h", "c", "hBackward", "cBackward"], ["h", "hBackward"]]);
      for (const k of ["hBackward", "cBackward"] as const) {
        expectTensors(`stateGrads.${k}`, a.stateGrads.flatMap((g) => st(g, k)), e.stateGrads.flatMap((g) => st(g, k)));
      }
      expect(a.hiddenStates.map((h) => h.shape)).toEqual([[11, 6, 8], [11, 6, 6]]);
      expectSameTraining(one, many, x, y, 3);
      expect(pool(many).parallelCalls, `${threads} threads`).toBeGreaterThan(0);
    }
    const [one, many] = pair({
      layers: () => [new Bidirectional(new GRU({ units: 4, inputDim: 2, stateful: true, batchSize: 7 }), { mergeMode: "sum" }), new Dense({ units: 1 })],
      loss: "meanSquaredError",
    }, 3);
    const next = stream(99);
    for (let call = 0; call < 3; call++) {
      const x = randomTensor([7, 4, 2], next), y = randomTensor([7, 1], next);
      expectRel(`stateful Bidirectional call ${call} loss`, [many.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
    }
    for (const k of ["h", "hBackward"] as const) expectTensors(`stateful Bidirectional ${k}`, many.getStates().flatMap((g) => st(g, k)), one.getStates().flatMap((g) => st(g, k)));
  });

  it("the orders of the layer protocol: a Dense on the sequence first and between LSTMs, models ending on an LSTM (vector and sequence), at 2 and 3 threads", () => {
    const setups: { name: string; s: Setup; y: (B: number, T: number) => number[] }[] = [
      {
        name: "Dense → LSTM → Dense → LSTM(seq) → Dense",
        s: {
          layers: () => [
            new Dense({ units: 4, inputDim: 3, activation: "tanh" }), new LSTM({ units: 5, returnSequences: true }),
            new Dense({ units: 3, activation: "relu" }), new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 1, activation: "sigmoid" }),
          ],
          loss: "binaryCrossentropy",
        },
        y: (B, T) => [B, T, 1],
      },
      { name: "ending on an LSTM's last h", s: { layers: () => [new LSTM({ units: 5, inputDim: 3, returnSequences: true }), new LSTM({ units: 3 })], loss: "meanSquaredError" }, y: (B) => [B, 3] },
      { name: "ending on an LSTM's sequence", s: { layers: () => [new Dense({ units: 2, inputDim: 3 }), new LSTM({ units: 4, returnSequences: true })], loss: "meanSquaredError" }, y: (B, T) => [B, T, 4] },
    ];
    for (const { name, s, y: yShape } of setups) {
      for (const threads of [2, 3, 4]) {
        const [one, many] = pair(s, threads);
        const next = stream(60 + threads);
        const x = randomTensor([8, 5, 3], next), y = randomTensor(yShape(8, 5), next, s.loss === "binaryCrossentropy");
        expectSameGradients(`${name}, ${threads} threads`, many.computeGradients(x, y, { hiddenGradNorms: true }), one.computeGradients(x, y, { hiddenGradNorms: true }));
        expectSameTraining(one, many, x, y, 3);
        expect(pool(many).parallelCalls, name).toBeGreaterThan(0);
      }
    }
  });

  it("the options imported models carry: hard-sigmoid gates, layers without a bias (the replicas build the same layers)", () => {
    const [one, two] = pair({
      layers: () => [
        new LSTM({ units: 5, inputDim: 3, returnSequences: true, recurrentActivation: "hardSigmoid", useBias: false }),
        new LSTM({ units: 4, recurrentActivation: "hardSigmoid" }),
        new Dense({ units: 3, activation: "tanh", useBias: false }),
        new Dense({ units: 1, activation: "sigmoid" }),
      ],
      loss: "binaryCrossentropy",
    });
    // Larger weights, so that gates clip: a replica computing σ instead would differ.
    const big = one.getWeights().map((w) => ndarray(Float64Array.from(w.data, (v) => 3 * v), w.shape) as Tensor);
    one.setWeights(big);
    two.setWeights(big);
    const next = stream(5);
    const x = randomTensor([7, 5, 3], next), y = randomTensor([7, 1], next, true);
    expectSameGradients("computeGradients", two.computeGradients(x, y), one.computeGradients(x, y));
    expectSameTraining(one, two, x, y, 3);
    expect(pool(two).parallelCalls).toBe(5);
    const gates = (one.engine.ws(0) as LSTMWorkspace).gates;
    expect(gates.some((v) => v === 0) && gates.some((v) => v === 1)).toBe(true);
  });

  it("fit with shuffled batches (a smaller last batch) and validation, evaluate, predict in batches", async () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 5, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
    });
    const next = stream(5);
    const x = randomTensor([15, 6, 2], next), y = randomTensor([15, 1], next, true);
    const xv = randomTensor([5, 6, 2], next), yv = randomTensor([5, 1], next, true);
    const h1 = await one.fit(x, y, { epochs: 3, batchSize: 6, validationData: [xv, yv], verbose: 0 });
    const h2 = await two.fit(x, y, { epochs: 3, batchSize: 6, validationData: [xv, yv], verbose: 0 });
    for (const k of ["loss", "accuracy", "valLoss", "valAccuracy"] as const) {
      expectRel(`history ${k}`, h2.history[k]!, h1.history[k]!);
    }
    expectTensors("weights", two.getWeights(), one.getWeights());
    const e1 = one.evaluate(x, y, { batchSize: 4 }), e2 = two.evaluate(x, y, { batchSize: 4 });
    expectRel("evaluate loss", [e2.loss], [e1.loss]);
    expect(e2.accuracy).toBe(e1.accuracy);
    expectTensors("predict", [two.predict(x, { batchSize: 4 })], [one.predict(x, { batchSize: 4 })]);
    // 3 epochs × 3 batches, 3 validations of 5 rows, evaluate's 4 batches, predict's 4.
    expect(pool(two).parallelCalls).toBe(9 + 3 + 4 + 4);
  });

  it("stateful: each row's state carries across calls, resets by row, and reads back whole", () => {
    const [one, two] = pair({
      layers: () => [
        new LSTM({ units: 4, inputDim: 2, stateful: true, batchSize: 5, returnSequences: true }),
        new LSTM({ units: 3, stateful: true, batchSize: 5 }),
        new Dense({ units: 1, activation: "sigmoid" }),
      ],
      loss: "binaryCrossentropy",
    });
    const next = stream(6);
    const chunks = [0, 1, 2].map(() => ({ x: randomTensor([5, 4, 2], next), y: randomTensor([5, 1], next, true) }));
    for (const [i, c] of chunks.entries()) {
      const r1 = one.trainOnBatch(c.x, c.y), r2 = two.trainOnBatch(c.x, c.y);
      expectRel(`chunk ${i} loss`, [r2.loss], [r1.loss]);
      expectTensors(`chunk ${i} states h`, two.getStates().map((s) => s.h), one.getStates().map((s) => s.h));
      expectTensors(`chunk ${i} states c`, two.getStates().map((s) => s.c!), one.getStates().map((s) => s.c!));
    }
    // Row 3 (in the worker's slice) and row 0 (in this thread's) start new sequences; the others continue.
    one.resetStates({ rows: [0, 3] });
    two.resetStates({ rows: [0, 3] });
    expectSameGradients("computeGradients", two.computeGradients(chunks[0]!.x, chunks[0]!.y), one.computeGradients(chunks[0]!.x, chunks[0]!.y));
    expectTensors("predict after reset", [two.predict(chunks[1]!.x)], [one.predict(chunks[1]!.x)]);
    expectTensors("states after predict", two.getStates().map((s) => s.h), one.getStates().map((s) => s.h));
    expect(pool(two).parallelCalls).toBe(5);
  });

  it("float32: the same up to float32 rounding of the merged sums", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 6, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
      dtype: "float32",
    });
    const next = stream(7);
    const x = randomTensor([6, 5, 3], next, false, "float32"), y = randomTensor([6, 1], next, true, "float32");
    const g1 = one.computeGradients(x, y), g2 = two.computeGradients(x, y);
    expect(Math.abs(g2.loss - g1.loss) / g1.loss).toBeLessThan(1e-6);
    // Each merged gradient entry is one float32 rounding away from one thread's.
    g2.grads.forEach((g, i) => g.data.forEach((v, k) => {
      const e = g1.grads[i]!.data[k]!;
      expect(Math.abs(v - e), `grads[${i}][${k}]`).toBeLessThanOrEqual(1e-5 * Math.abs(e) + 1e-9);
    }));
    expectTensors("predict", [two.predict(x)], [one.predict(x)], 1e-6);
  });
});

describe("when it splits", () => {
  it("below the threshold every call stays on the calling thread and no worker starts", () => {
    const m = threaded(new Sequential([new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 }), 2);
    live.push(m);
    m.compile({ loss: "binaryCrossentropy" });
    const next = stream(8);
    const x = randomTensor([8, 5, 2], next), y = randomTensor([8, 1], next, true);
    m.trainOnBatch(x, y);
    m.computeGradients(x, y);
    m.predict(x);
    expect(m.threads).toBe(2);
    expect(pool(m).minFlops).toBe(DEFAULT_MIN_FLOPS);
    expect(pool(m).parallelCalls).toBe(0);
    expect(pool(m).runningWorkers).toBe(0);
  });

  it("the threshold compares the FLOP model's estimate: 3 × forward with backward, forward alone without", () => {
    const layers = (): (LSTM | Dense)[] => [new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })];
    // B = 8, T = 5, I = 2, H = 4: forward = 2·8·5·(2+4)·4·4 = 7680 FLOPs, a step 23040.
    const forward = 2 * 8 * 5 * (2 + 4) * 4 * 4;
    const m = threaded(new Sequential(layers(), { seed: 1 }), 2, { minFlops: forward + 1 });
    live.push(m);
    m.compile({ loss: "binaryCrossentropy" });
    expect(pool(m).flops(8, 5, false)).toBe(forward);
    expect(pool(m).flops(8, 5, true)).toBe(3 * forward);
    const next = stream(9);
    const x = randomTensor([8, 5, 2], next), y = randomTensor([8, 1], next, true);
    m.predict(x); // forward only: below
    expect(pool(m).parallelCalls).toBe(0);
    m.trainOnBatch(x, y); // a step: above
    expect(pool(m).parallelCalls).toBe(1);
    // A batch of one row cannot be split, whatever the threshold.
    setThreads(m, 2, { minFlops: 0 });
    m.trainOnBatch(randomTensor([1, 5, 2], next), randomTensor([1, 1], next, true));
    expect(pool(m).parallelCalls).toBe(0);
  });

  it("setThreads validates before changing anything; 1 thread means no pool", () => {
    const m = threaded(new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 1 }), 2);
    live.push(m);
    const before = pool(m);
    for (const bad of [0, -1, 1.5, NaN, "two", null, 257]) {
      expect(() => setThreads(m, bad as never), String(bad)).toThrow(/setThreads threads: expected a positive integer \(at most 256\) or "auto"/);
      expect(m.threads).toBe(2);
      expect(pool(m)).toBe(before);
    }
    expect(() => setThreads(m, 2, { minFlops: -1 })).toThrow(/setThreads minFlops: expected a non-negative finite number of FLOPs, got -1/);
    expect(() => setThreads(m, 2, "fast" as never)).toThrow(ValueError);
    expect(() => setThreads(m, 3, { minFlop: 0 } as never)).toThrow(/setThreads options: unknown option "minFlop" \(did you mean "minFlops"\?\)/);
    expect(m.threads).toBe(2);
    expect(() => setThreads({} as never, 2)).toThrow(/setThreads model: expected a Sequential/);
    expect(pool(m)).toBe(before);
    // The core has no threads of its own: the old constructor options say where threads went.
    const layers = [new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })];
    expect(() => new Sequential(layers, { threads: 2 } as never)).toThrow(/Sequential threads: threads moved out of the portable core; in Node, import \{ setThreads \} from "longshort\/node"/);
    expect(() => new Sequential(layers, { threadsMinFlops: 5 } as never)).toThrow(/Sequential threadsMinFlops: threads moved out/);
    expect(new Sequential(layers).threads).toBe(1); // the refused models did not take the layers
    setThreads(m, "auto");
    expect(m.threads).toBeGreaterThanOrEqual(1);
    setThreads(m, 1);
    expect(m.threads).toBe(1);
    expect(m.engine.executor).toBeNull();
  });

  it("dispose stops the workers; a later large call starts one again and agrees", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })],
      loss: "binaryCrossentropy",
    });
    const next = stream(10);
    const x = randomTensor([4, 3, 2], next), y = randomTensor([4, 1], next, true);
    expectRel("before", [two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
    expect(pool(two).runningWorkers).toBe(1);
    two.dispose();
    expect(pool(two).runningWorkers).toBe(0);
    expectRel("after", [two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
    expect(pool(two).runningWorkers).toBe(1);
    expectTensors("weights", two.getWeights(), one.getWeights());
  });

  it("a non-finite step is refused whole, as on one thread: weights, optimizer and states unchanged", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 3, inputDim: 2, stateful: true, batchSize: 4 }), new Dense({ units: 1 })],
      loss: "meanSquaredError",
    });
    const next = stream(11);
    const x = randomTensor([4, 3, 2], next), y = randomTensor([4, 1], next);
    one.trainOnBatch(x, y);
    two.trainOnBatch(x, y);
    const w = two.getWeights(), s = two.getStates(), it0 = two.optimizer!.iterations;
    // Labels near the largest double: the squared error overflows in both slices.
    const huge = zeros([4, 1]);
    huge.data.fill(1.7e308);
    expect(() => one.trainOnBatch(x, huge)).toThrow(NonFiniteError);
    expect(() => two.trainOnBatch(x, huge)).toThrow(NonFiniteError);
    expectTensors("weights", two.getWeights(), w, 0);
    expectTensors("states", two.getStates().map((t) => t.h), s.map((t) => t.h), 0);
    expect(two.optimizer!.iterations).toBe(it0);
    expectSameTraining(one, two, x, y, 1);
  });
});

/** Resolves true when the worker thread ends within `ms`, false otherwise. */
async function endsWithin(w: Worker, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  const ended = await Promise.race([once(w, "exit").then(() => true), timeout]);
  clearTimeout(timer);
  return ended;
}

describe("when a worker fails in the middle of a call", () => {
  const cases = [
    { fault: "throw", what: "throws before computing", message: /worker 1 of 1 threw: Error: injected fault/ },
    { fault: "exit", what: "calls process.exit half-way", message: /worker 1 of 1 exited with code 70 before finishing/ },
    { fault: "hang", what: "hangs half-way", message: /worker 1 of 1 did not finish within [\d.]+ s \(hung/ },
  ] as const;
  for (const c of cases) {
    it(`a worker that ${c.what}: a StateError within seconds, nothing changed, and the next call starts a new worker`, async () => {
      const [one, two] = pair({
        layers: () => [new LSTM({ units: 4, inputDim: 2, stateful: true, batchSize: 5 }), new Dense({ units: 1, activation: "sigmoid" })],
        loss: "binaryCrossentropy",
      });
      const next = stream(20);
      const x = randomTensor([5, 3, 2], next), y = randomTensor([5, 1], next, true);
      expectRel("first step", [two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
      const par = pool(two), first = par.workerThreads[0] as Worker;
      const adam = two.optimizer as Adam;
      const weights = two.getWeights(), states = two.getStates();
      const m0 = adam.m.slice(), v0 = adam.v.slice(), it0 = adam.iterations;
      // A hung worker says nothing: only the deadline finds it (at least minWaitMs, normally 120 s).
      if (c.fault === "hang") par.minWaitMs = 300;
      par.injectFault(c.fault);
      const t0 = Date.now();
      let error: unknown = null;
      try { two.trainOnBatch(x, y); } catch (e) { error = e; }
      const took = Date.now() - t0;
      expect(error).toBeInstanceOf(StateError);
      expect((error as Error).message).toMatch(c.message);
      expect((error as Error).message).toMatch(/its slice of a training step on 5 rows\). Nothing of this call was applied/);
      // Not a speed target: without the fix the call never returned at all.
      expect(took, "ms until the call threw").toBeLessThan(5000);
      expect(par.runningWorkers, "the pool was stopped").toBe(0);
      expect(await endsWithin(first, 5000), "the failed worker thread ended").toBe(true);
      // The step is atomic: weights, optimizer and carried states as before it.
      expectTensors("weights", two.getWeights(), weights, 0);
      expectTensors("states h", two.getStates().map((s) => s.h), states.map((s) => s.h), 0);
      expectTensors("states c", two.getStates().map((s) => s.c!), states.map((s) => s.c!), 0);
      expectRel("Adam m", adam.m, m0, 0);
      expectRel("Adam v", adam.v, v0, 0);
      expect(adam.iterations).toBe(it0);
      // The model goes on with a new worker, and still agrees with one thread.
      par.minWaitMs = 120_000;
      expectSameTraining(one, two, x, y, 2);
      expect(par.runningWorkers).toBe(1);
      expect(par.workerThreads[0]).not.toBe(first);
      expect(par.parallelCalls).toBe(1 + 2 + 1); // the failed call is not counted
    });
  }

  it("computeGradients and predict fail the same way and leave the carried states alone", () => {
    const [one, two] = pair({
      layers: () => [new LSTM({ units: 3, inputDim: 2, stateful: true, batchSize: 4, returnSequences: true }), new Dense({ units: 2 })],
      loss: "meanSquaredError",
    });
    const next = stream(21);
    const x = randomTensor([4, 3, 2], next), y = randomTensor([4, 3, 2], next);
    one.trainOnBatch(x, y);
    two.trainOnBatch(x, y);
    const states = two.getStates();
    pool(two).injectFault("exit");
    expect(() => two.computeGradients(x, y)).toThrow(/worker 1 of 1 exited with code 70 before finishing \(its slice of computeGradients on 4 rows\)/);
    expectTensors("states h", two.getStates().map((s) => s.h), states.map((s) => s.h), 0);
    two.predict(x); // starts a new worker
    one.predict(x);
    const after = two.getStates();
    pool(two).injectFault("throw");
    expect(() => two.predict(x)).toThrow(StateError);
    expectTensors("states h after a failed predict", two.getStates().map((s) => s.h), after.map((s) => s.h), 0);
    expectSameGradients("computeGradients", two.computeGradients(x, y), one.computeGradients(x, y));
  });

  it("injectFault needs a running worker", () => {
    const m = threaded(new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })]), 2);
    expect(() => pool(m).injectFault("exit")).toThrow(/injectFault: no worker thread is running/);
  });
});

/** Trains a new two-thread model once and returns only its worker threads: the model itself is garbage. */
function workersOfADroppedModel(): Worker[] {
  const m = threaded(new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 3 }), 2, { minFlops: 0 });
  m.compile({ loss: "binaryCrossentropy" });
  const next = stream(22);
  m.trainOnBatch(randomTensor([4, 3, 2], next), randomTensor([4, 1], next, true));
  return pool(m).workerThreads as Worker[];
}

describe("worker lifetime", () => {
  it("a model dropped without dispose() has its worker stopped when it is garbage-collected; a kept one keeps its worker", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const dropped = workersOfADroppedModel();
    expect(dropped.length).toBe(1);
    const kept = threaded(new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 4 }), 2, { minFlops: 0 });
    live.push(kept);
    kept.compile({ loss: "meanSquaredError" });
    const next = stream(23);
    kept.trainOnBatch(randomTensor([4, 3, 2], next), randomTensor([4, 1], next));
    const keptWorker = pool(kept).workerThreads[0] as Worker;
    let keptEnded = false;
    keptWorker.once("exit", () => { keptEnded = true; });
    let droppedEnded = false;
    dropped[0]!.once("exit", () => { droppedEnded = true; });
    // Finalizers run as tasks after a collection: collect, then let the event loop turn, a few times.
    for (let i = 0; i < 100 && !droppedEnded; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(droppedEnded, "the dropped model's worker ended").toBe(true);
    expect(keptEnded, "the kept model's worker still runs").toBe(false);
    expect(pool(kept).runningWorkers).toBe(1);
  });
});
