/**
 * TruncatedBPTT on both cores (threads/tbptt-pool.ts): with setThreads(model, n) a sequence's batch rows are split
 * across the pool for its whole length, every worker keeping its rows' carried state and kept history. Everything
 * must equal the one-thread unroller's, started from the same seed, to 1e-12 relative in float64 with updates on:
 * every window's loss and accuracy, the weights after every chunk, the unroller's carried state (getStates) and the
 * model's own (model.getStates) after every chunk, and onWindow's info. At 2, 3 and 4 threads, on both backends, for
 * several sequences and chunked ones (chunks that end inside a window), k1 = k2, k2 > k1 and k2 < k1, per-sequence
 * and per-step labels, LSTM, GRU, stacked and stateful models, batches not divisible by the thread count.
 *
 * Masked models (end-padded rows, a slice all padding in some windows, windows all padding) and dropout models (the
 * sequence's masks drawn for the whole batch, each slice using its rows') too, and onWindow's info masked.
 *
 * Every comparison also checks that the pool trained each window split (its parallelWindows counter), so a fallback
 * to one thread cannot pass.
 */
import { afterAll, describe, expect, it } from "vitest";
import {
  Sequential, LSTM, GRU, Dense, Masking, Adam, TruncatedBPTT, StateError, zeros, setThreads,
  type Tensor, type WindowInfo, type TrainSequenceOptions, type RecurrentState,
} from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";
import { expectRel, expectTensors } from "./helpers/threads.js";

const BACKENDS = ["js", "wasm"] as const;
type Backend = (typeof BACKENDS)[number];

const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

function pool(m: Sequential): ThreadPool {
  return m.engine.executor as ThreadPool;
}

/** Every state tensor of every layer, in order (h, c, … by name). */
function stateTensors(s: RecurrentState[]): Tensor[] {
  return s.flatMap((l) => Object.keys(l).sort().map((k) => (l as unknown as Record<string, Tensor>)[k]!));
}

function stream(seed: number): () => number {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

function randomTensor(shape: number[], next: () => number, binary = false): Tensor {
  const t = zeros(shape);
  for (let i = 0; i < t.data.length; i++) t.data[i] = binary ? (next() < 0.5 ? 0 : 1) : 2 * next() - 1;
  return t;
}

/** Steps [a, b) of x [B, T, C] as a new tensor. */
function steps(x: Tensor, a: number, b: number): Tensor {
  const [B, T, C] = x.shape as [number, number, number], out = zeros([B, b - a, C]);
  for (let r = 0; r < B; r++) out.data.set(x.data.subarray((r * T + a) * C, (r * T + b) * C), r * (b - a) * C);
  return out;
}

interface Arch {
  name: string;
  layers: () => (LSTM | GRU | Dense | Masking)[];
  I: number;
  D: number;
  perStep: boolean;
  loss: "binaryCrossentropy" | "meanSquaredError";
}

const ARCHS: Arch[] = [
  {
    name: "LSTM, per-sequence labels (sigmoid + BCE)", I: 3, D: 1, perStep: false, loss: "binaryCrossentropy",
    layers: () => [new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })],
  },
  {
    name: "LSTM, per-step labels (MSE, two units)", I: 2, D: 2, perStep: true, loss: "meanSquaredError",
    layers: () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 2 })],
  },
  {
    name: "GRU, per-step labels (sigmoid + BCE)", I: 3, D: 1, perStep: true, loss: "binaryCrossentropy",
    layers: () => [new GRU({ units: 5, inputDim: 3, returnSequences: true }), new Dense({ units: 1, activation: "sigmoid" })],
  },
  {
    name: "stacked LSTM → GRU, per-sequence labels (MSE)", I: 2, D: 2, perStep: false, loss: "meanSquaredError",
    layers: () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new GRU({ units: 3 }), new Dense({ units: 2 })],
  },
];

/** TBPTT settings, each run as two sequences: one in uneven chunks (ending inside windows), one in a single call. */
const SETTINGS = [
  { k1: 3, k2: 3, chunks: [5, 4, 6] },
  { k1: 3, k2: 7, chunks: [4, 8, 3] },
  { k1: 5, k2: 2, chunks: [7, 6] },
];

function make(a: Arch | (() => (LSTM | GRU | Dense | Masking)[]), threads: number, backend: Backend, loss = "binaryCrossentropy" as Arch["loss"]): Sequential {
  const layers = typeof a === "function" ? a() : a.layers();
  const m = new Sequential(layers, { seed: 11, backend });
  expect(m.backend).toBe(backend);
  if (threads > 1) setThreads(m, threads, { minFlops: 0 });
  m.compile({ optimizer: new Adam({ learningRate: 0.02 }), loss: typeof a === "function" ? loss : a.loss, metrics: ["accuracy"] });
  live.push(m);
  return m;
}

/**
 * Feeds both unrollers the same chunks (the last ends the sequence) with the same options and compares, after every
 * chunk, the losses, accuracy, weights, getStates and the model's states; returns the windows trained.
 */
function feedBoth(
  one: Sequential, many: Sequential, t1: TruncatedBPTT, tn: TruncatedBPTT, x: Tensor, y: Tensor, chunks: number[],
  name: string, options: Omit<TrainSequenceOptions, "endOfSequence"> = {},
): number {
  let at = 0, windows = 0;
  chunks.forEach((n, c) => {
    const xc = steps(x, at, at + n), yc = y.shape.length === 3 ? steps(y, at, at + n) : y;
    at += n;
    const endOfSequence = c === chunks.length - 1;
    const r1 = t1.trainSequence(xc, yc, { ...options, endOfSequence }), rn = tn.trainSequence(xc, yc, { ...options, endOfSequence });
    const what = `${name}, chunk ${c}`;
    expect(rn.windows, `${what}: windows`).toBe(r1.windows);
    expectRel(`${what}: losses`, rn.losses, r1.losses);
    expect(rn.accuracy, `${what}: accuracy`).toBe(r1.accuracy);
    expectTensors(`${what}: weights`, many.getWeights(), one.getWeights());
    expectTensors(`${what}: getStates`, stateTensors(tn.getStates()), stateTensors(t1.getStates()));
    expectTensors(`${what}: the model's states`, stateTensors(many.getStates()), stateTensors(one.getStates()));
    windows += r1.windows;
  });
  return windows;
}

describe("TruncatedBPTT across threads gives one thread's results", () => {
  for (const backend of BACKENDS) {
    for (const threads of [2, 3, 4]) {
      // Every model at two threads, and each at one of three or four (a worker takes ~1 s to start under tsx).
      for (const arch of ARCHS.filter((_, i) => threads === 2 || i % 2 === threads % 2)) {
        it(`${backend}, ${threads} threads: ${arch.name}, 7 rows; k1 = k2, k2 > k1, k2 < k1; chunked and whole sequences`, () => {
          const one = make(arch, 1, backend), many = make(arch, threads, backend);
          const next = stream(threads * 31 + arch.I);
          const B = 7; // not divisible by 2, 3 or 4
          for (const s of SETTINGS) {
            const T = s.chunks.reduce((a, b) => a + b, 0);
            const t1 = new TruncatedBPTT(one, { windowLength: s.k1, backpropLength: s.k2 });
            const tn = new TruncatedBPTT(many, { windowLength: s.k1, backpropLength: s.k2 });
            for (const chunks of [s.chunks, [T]]) {
              const x = randomTensor([B, T, arch.I], next);
              const y = randomTensor(arch.perStep ? [B, T, arch.D] : [B, arch.D], next, arch.loss === "binaryCrossentropy");
              const before = pool(many).parallelWindows;
              const windows = feedBoth(one, many, t1, tn, x, y, chunks, `k1 ${s.k1}, k2 ${s.k2}, chunks ${chunks}`);
              expect(windows).toBe(Math.ceil(T / s.k1));
              expect(pool(many).parallelWindows - before, "windows split across threads").toBe(windows);
            }
          }
          expect(pool(many).parallelCalls, "no other call went through the pool").toBe(0);
          many.dispose();
        });
      }
    }

    it(`${backend}: a stateful model's carried state after trainSequence is one thread's (3 threads, 5 rows, k2 > k1)`, () => {
      const layers = () => [
        new LSTM({ units: 4, inputDim: 2, returnSequences: true, stateful: true, batchSize: 5 }),
        new LSTM({ units: 3, stateful: true, batchSize: 5 }),
        new Dense({ units: 1, activation: "sigmoid" }),
      ];
      const one = make(layers, 1, backend), many = make(layers, 3, backend);
      const next = stream(5);
      const x = randomTensor([5, 14, 2], next), y = randomTensor([5, 1], next, true);
      const t1 = new TruncatedBPTT(one, { windowLength: 4, backpropLength: 6 }), tn = new TruncatedBPTT(many, { windowLength: 4, backpropLength: 6 });
      const windows = feedBoth(one, many, t1, tn, x, y, [6, 5, 3], "stateful");
      expect(pool(many).parallelWindows).toBe(windows);
      // The carried state is the model's: a stateful predict goes on from it on both.
      expect(many.getStates()[0]!.h.shape).toEqual([5, 4]);
      expectTensors("predict from the carried state", [many.predict(x)], [one.predict(x)]);
      many.dispose();
    });
  }
});

describe("onWindow's info is the whole batch's, gathered from the slices", () => {
  for (const backend of BACKENDS) {
    for (const [update, masked] of [[false, false], [true, true]] as const) {
      it(`${backend}, 3 threads, update ${update}${masked ? ", masked (weights n_k/n)" : ""}: grads, weightGrads, hiddenGradNorms, inputGrad, stateGrads, getStates in the callback`, () => {
        const layers = () => [
          ...(masked ? [new Masking({ maskValue: 0 })] : []),
          new LSTM({ units: 4, inputDim: 3, returnSequences: true }),
          new GRU({ units: 3, returnSequences: true }),
          new Dense({ units: 1, activation: "sigmoid" }),
        ];
        const one = make(layers, 1, backend), many = make(layers, 3, backend);
        const next = stream(update ? 8 : 9);
        const x = randomTensor([8, 13, 3], next), y = randomTensor([8, 13, 1], next, true);
        if (masked) pad(x, [13, 13, 10, 12, 5, 13, 4, 3]); // rows 4, 6 and 7 padding from step 5, 4 and 3 on
        const t1 = new TruncatedBPTT(one, { windowLength: 3, backpropLength: 5 }), tn = new TruncatedBPTT(many, { windowLength: 3, backpropLength: 5 });
        const record = (tb: TruncatedBPTT, into: Record<string, unknown>[]) => (w: WindowInfo) => {
          into.push({
            index: w.index, steps: w.steps, reach: w.reach, loss: w.loss, accuracy: w.accuracy, grads: Float64Array.from(w.grads),
            weightGrads: w.weightGrads(), hiddenGradNorms: w.hiddenGradNorms, inputGrad: w.inputGrad(), stateGrads: w.stateGrads(),
            states: tb.getStates(),
          });
        };
        const a: Record<string, unknown>[] = [], b: Record<string, unknown>[] = [];
        let at = 0;
        // Chunks shorter than a window and than the reach (k2 = 5): the buffers must hold the reach, not the chunk.
        const chunks = [2, 2, 2, 2, 2, 3];
        for (const [c, n] of chunks.entries()) {
          const xc = steps(x, at, at + n), yc = steps(y, at, at + n), endOfSequence = c === chunks.length - 1;
          at += n;
          t1.trainSequence(xc, yc, { update, endOfSequence, onWindow: record(t1, a) });
          tn.trainSequence(xc, yc, { update, endOfSequence, onWindow: record(tn, b) });
        }
        expect(b.length).toBe(5);
        expect(a.length).toBe(5);
        b.forEach((w, k) => {
          const e = a[k]!, what = `window ${k}`;
          expect([w.index, w.steps, w.reach, w.accuracy], `${what}: index, steps, reach, accuracy`).toEqual([e.index, e.steps, e.reach, e.accuracy]);
          expectRel(`${what}: loss`, [w.loss as number], [e.loss as number]);
          expectRel(`${what}: grads`, w.grads as Float64Array, e.grads as Float64Array);
          const wg = w.weightGrads as { name: string; grad: Tensor }[], eg = e.weightGrads as { name: string; grad: Tensor }[];
          expect(wg.map((g) => g.name)).toEqual(eg.map((g) => g.name));
          expectTensors(`${what}: weightGrads`, wg.map((g) => g.grad), eg.map((g) => g.grad));
          (w.hiddenGradNorms as number[][]).forEach((nrm, i) => expectRel(`${what}: hiddenGradNorms[${i}]`, nrm, (e.hiddenGradNorms as number[][])[i]!));
          expect((w.hiddenGradNorms as number[][]).map((r) => r.length)).toEqual((e.hiddenGradNorms as number[][]).map((r) => r.length));
          expectTensors(`${what}: inputGrad`, [w.inputGrad as Tensor], [e.inputGrad as Tensor]);
          expectTensors(`${what}: stateGrads`, stateTensors(w.stateGrads as RecurrentState[]), stateTensors(e.stateGrads as RecurrentState[]));
          expectTensors(`${what}: getStates in the callback`, stateTensors(w.states as RecurrentState[]), stateTensors(e.states as RecurrentState[]));
        });
        // The reach goes back past the window's start into the kept history (k2 = 5 > k1 = 3).
        expect(b.map((w) => w.reach)).toEqual([3, 5, 5, 5, 3]); // the last window: one step, after two of history
        expect(pool(many).parallelWindows).toBe(5);
        expectTensors("weights", many.getWeights(), one.getWeights());
        many.dispose();
      });
    }
  }
});

describe("TruncatedBPTT's threads: the skip path, fallbacks and failures", () => {
  for (const backend of BACKENDS) {
    it(`${backend}, 2 threads: onNonFinite "skip" drops a window whose gradient overflows in the worker's rows only; the worker goes on from the state before it, without history`, () => {
      const layers = () => [new LSTM({ units: 3, inputDim: 2, kernelInitializer: "zeros" }), new Dense({ units: 1 })];
      const mk = (threads: number): Sequential => {
        const m = new Sequential(layers(), { seed: 4, backend });
        if (threads > 1) setThreads(m, threads, { minFlops: 0 });
        m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "meanSquaredError", onNonFinite: "skip" });
        live.push(m);
        return m;
      };
      const one = mk(1), many = mk(2);
      const next = stream(12);
      const x = randomTensor([4, 15, 2], next), y = randomTensor([4, 1], next);
      // Window 2 (steps 3–5) of rows 2 and 3 (the worker's) holds inputs so large that the kernel's gradient overflows
      // (the zero kernel keeps the forward pass finite): the merged gradient is not finite, and the update is skipped.
      for (let b = 2; b < 4; b++) for (let t = 3; t < 6; t++) for (let f = 0; f < 2; f++) x.data[(b * 15 + t) * 2 + f] = 1.7e308;
      const w0 = one.getWeights();
      const t1 = new TruncatedBPTT(one, { windowLength: 3, backpropLength: 5 }), tn = new TruncatedBPTT(many, { windowLength: 3, backpropLength: 5 });
      const windows = feedBoth(one, many, t1, tn, x, y, [4, 4, 7], "skip");
      expect(windows).toBe(5);
      expect(pool(many).parallelWindows).toBe(5);
      // The skip happened (a window made no update) and everything stayed finite.
      expect(many.getWeights().every((w) => Array.from(w.data).every(Number.isFinite))).toBe(true);
      // Which window made no update: the weights seen by the next window's callback are the ones this window saw.
      const seen: number[][] = [];
      const probe = mk(1);
      probe.setWeights(w0);
      new TruncatedBPTT(probe, { windowLength: 3, backpropLength: 5 }).trainSequence(x, y, {
        onWindow: () => { seen.push(probe.getWeights().flatMap((w) => Array.from(w.data))); },
      });
      let skipped = 0;
      for (let k = 0; k + 1 < seen.length; k++) if (seen[k]!.every((v, i) => v === seen[k + 1]![i])) skipped++;
      expect(skipped).toBe(1);
      many.dispose();
    });

    it(`${backend}: a dropout model whose sequence starts without training (update: false) draws no masks and stays on one thread`, () => {
      const layers = () => [new LSTM({ units: 3, inputDim: 2, dropout: 0.3, recurrentDropout: 0.2 }), new Dense({ units: 1, activation: "sigmoid" })];
      const one = make(layers, 1, backend), many = make(layers, 2, backend);
      const next = stream(3);
      const x = randomTensor([6, 9, 2], next), y = randomTensor([6, 1], next, true);
      const r1 = new TruncatedBPTT(one, { windowLength: 3 }).trainSequence(x, y, { update: false });
      const rn = new TruncatedBPTT(many, { windowLength: 3 }).trainSequence(x, y, { update: false });
      expect(rn.losses).toEqual(r1.losses);
      expect(pool(many).parallelWindows, "not split").toBe(0);
      // ...while a training sequence of it splits (masks drawn for the whole batch, each slice keeping its rows').
      const t1 = new TruncatedBPTT(one, { windowLength: 3 }), tn = new TruncatedBPTT(many, { windowLength: 3 });
      expect(feedBoth(one, many, t1, tn, x, y, [4, 5], "training")).toBe(3);
      expect(pool(many).parallelWindows).toBe(3);
      many.dispose();
    });
  }
});

/** x's steps from row b's length on (lengths[b]) set to the mask value 0: end-padded rows. */
function pad(x: Tensor, lengths: number[]): Tensor {
  const [B, T, F] = x.shape as [number, number, number];
  for (let b = 0; b < B; b++) for (let t = lengths[b]!; t < T; t++) for (let f = 0; f < F; f++) x.data[(b * T + t) * F + f] = 0;
  return x;
}

const MASKED_ARCHS: (Arch & { lengths?: number[] })[] = [
  {
    // Rows end-padded so that at 2, 3 and 4 threads the last worker's rows are all padding from step 6 on (its slice
    // weighs 0 in those windows) and every row from step 12 on (no output row kept: loss and gradient 0).
    name: "Masking → LSTM, per-step labels (MSE): a slice all padding, windows all padding", I: 2, D: 2, perStep: true, loss: "meanSquaredError",
    lengths: [12, 12, 11, 6, 5, 4, 3],
    layers: () => [new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 2 })],
  },
  {
    name: "Masking → GRU, per-sequence labels (sigmoid + BCE)", I: 3, D: 1, perStep: false, loss: "binaryCrossentropy",
    lengths: [15, 9, 12, 7, 15, 4, 10],
    layers: () => [new Masking({ maskValue: 0 }), new GRU({ units: 5, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })],
  },
  {
    name: "LSTM with dropout 0.3 and recurrent dropout 0.2, per-step labels (sigmoid + BCE)", I: 3, D: 1, perStep: true, loss: "binaryCrossentropy",
    layers: () => [new LSTM({ units: 5, inputDim: 3, returnSequences: true, dropout: 0.3, recurrentDropout: 0.2 }), new Dense({ units: 1, activation: "sigmoid" })],
  },
  {
    name: "Masking → LSTM (dropout 0.25) → GRU (recurrent dropout 0.3), per-sequence labels (MSE)", I: 2, D: 2, perStep: false, loss: "meanSquaredError",
    lengths: [15, 9, 12, 7, 15, 4, 10],
    layers: () => [
      new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: 2, returnSequences: true, dropout: 0.25 }),
      new GRU({ units: 3, recurrentDropout: 0.3 }), new Dense({ units: 2 }),
    ],
  },
];

describe("masked and dropout models split too", () => {
  for (const backend of BACKENDS) {
    for (const threads of [2, 3, 4]) {
      for (const arch of MASKED_ARCHS.filter((_, i) => threads === 2 || i % 2 === threads % 2)) {
        it(`${backend}, ${threads} threads: ${arch.name}, 7 rows; k1 = k2, k2 > k1, k2 < k1; chunked and whole sequences`, () => {
          const one = make(arch, 1, backend), many = make(arch, threads, backend);
          const next = stream(threads * 17 + arch.I);
          for (const s of SETTINGS) {
            const T = s.chunks.reduce((a, b) => a + b, 0);
            const t1 = new TruncatedBPTT(one, { windowLength: s.k1, backpropLength: s.k2 });
            const tn = new TruncatedBPTT(many, { windowLength: s.k1, backpropLength: s.k2 });
            for (const chunks of [s.chunks, [T]]) { // two sequences: with dropout, two draws of masks
              const x = randomTensor([7, T, arch.I], next);
              if (arch.lengths) pad(x, arch.lengths);
              const y = randomTensor(arch.perStep ? [7, T, arch.D] : [7, arch.D], next, arch.loss === "binaryCrossentropy");
              const before = pool(many).parallelWindows;
              const windows = feedBoth(one, many, t1, tn, x, y, chunks, `k1 ${s.k1}, k2 ${s.k2}, chunks ${chunks}`);
              expect(pool(many).parallelWindows - before, "windows split across threads").toBe(windows);
            }
          }
          many.dispose();
        });
      }
    }
  }
});

describe("TruncatedBPTT's threads: thresholds and failures", () => {
  it("windows below minFlops stay on the calling thread", () => {
    const m = new Sequential([new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
    setThreads(m, 2); // the default threshold, far above these windows
    m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
    live.push(m);
    const next = stream(4);
    new TruncatedBPTT(m, { windowLength: 3 }).trainSequence(randomTensor([6, 9, 2], next), randomTensor([6, 1], next, true));
    expect(pool(m).parallelWindows).toBe(0);
    expect(pool(m).runningWorkers).toBe(0);
  });

  it("a worker that fails mid-sequence: a StateError, the window not applied, the unroller reset; the next sequence starts new workers", () => {
    const layers = () => [new LSTM({ units: 4, inputDim: 2, returnSequences: true }), new Dense({ units: 1, activation: "sigmoid" })];
    const one = make(layers, 1, "js"), many = make(layers, 2, "js");
    const next = stream(6);
    const x = randomTensor([5, 12, 2], next), y = randomTensor([5, 12, 1], next, true);
    const t1 = new TruncatedBPTT(one, { windowLength: 3, backpropLength: 5 }), tn = new TruncatedBPTT(many, { windowLength: 3, backpropLength: 5 });
    feedBoth(one, many, t1, tn, x, y, [5], "before the fault"); // one chunk, the sequence open
    const weights = many.getWeights(), split = pool(many).parallelWindows;
    pool(many).injectFault("throw");
    expect(() => tn.trainSequence(steps(x, 5, 9), steps(y, 5, 9), { endOfSequence: false })).toThrow(/worker threads: worker 1 of 1 threw.*truncated-BPTT window.*not applied/s);
    expect(pool(many).runningWorkers).toBe(0);
    expectTensors("the weights after the failed window", many.getWeights(), weights);
    expect(tn.getStates()[0]!.h.data.every((v) => v === 0), "reset").toBe(true);
    // The one-thread twin drops its sequence at the same point; from there the two agree on a new sequence.
    t1.resetStates();
    const windows = feedBoth(one, many, t1, tn, x, y, [7, 5], "after");
    expect(windows).toBe(4);
    expect(pool(many).parallelWindows - split).toBe(4);
    expect(pool(many).runningWorkers).toBe(1);
    expect(windows).toBe(4);
  });

  it("worker threads stopped or replaced in the middle of a chunked sequence: a StateError, and the unroller reset", () => {
    const layers = () => [new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })];
    const m = make(layers, 2, "js");
    const next = stream(7);
    const x = randomTensor([4, 8, 2], next), y = randomTensor([4, 1], next, true);
    const tb = new TruncatedBPTT(m, { windowLength: 3 });
    tb.trainSequence(x, y, { endOfSequence: false });
    expect(pool(m).parallelWindows).toBe(2);
    m.dispose();
    expect(() => tb.trainSequence(x, y)).toThrow(/worker threads were stopped or replaced in the middle of a sequence/);
    expect(tb.getStates()[0]!.h.data.every((v) => v === 0)).toBe(true);
    tb.trainSequence(x, y, { endOfSequence: false }); // a new sequence, new workers
    setThreads(m, 3, { minFlops: 0 });
    expect(() => tb.trainSequence(x, y)).toThrow(StateError);
    // Another call through the pool in the middle of a sequence: the usual StateError (the carried state was overwritten).
    tb.trainSequence(x, y, { endOfSequence: false });
    m.trainOnBatch(x, y);
    expect(() => tb.trainSequence(x, y)).toThrow(/used for another call in the middle of a sequence/);
  });
});
