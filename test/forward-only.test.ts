/**
 * The forward-only path (PassContext.infer): predict, evaluate / testOnBatch and a stateful stream's steps run the
 * recurrent layers in blocks of steps, at the front of their gate buffers, keeping nothing for a backward. Its results
 * must be the training forward's, bit for bit, on both backends and dtypes: each case runs the same calls on two
 * models made alike, one with the forward-only path (the default) and one with `engine.forwardOnly` false (which runs
 * those passes as training forwards do), and compares every output and state exactly. The blocks are made a few steps
 * long (`inferBlock`), so that a call runs several of them; and at the default size too. Batch sizes 1 … 5 and 32
 * (the SIMD products take other kernels below four rows, and the recurrence runs in one call below four), T = 1 and
 * longer.
 */
import { afterEach, describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, LSTM, GRU, Bidirectional, Dense, Masking, Embedding, randomNormal, type Tensor, type DType,
} from "../src/index.js";
import { inferBlock } from "../src/layers/recurrent.js";
import { packR } from "../src/tensor/lstm-gates.js";
import { fewPack } from "../src/wasm/gemm.js";

type Backend = "js" | "wasm";
const DEFAULT_BLOCK = inferBlock.bytes, DEFAULT_PACK = { ...packR }, DEFAULT_FEW = fewPack.bytes;
afterEach(() => { inferBlock.bytes = DEFAULT_BLOCK; Object.assign(packR, DEFAULT_PACK); fewPack.bytes = DEFAULT_FEW; });

/** Exactly equal, element for element (Object.is: the same bits but for NaN payloads). */
function same(what: string, a: Tensor, b: Tensor): void {
  expect(a.shape, what).toEqual(b.shape);
  const x = a.data, y = b.data;
  expect(x.length, what).toBe(y.length);
  for (let k = 0; k < x.length; k++) if (!Object.is(x[k], y[k])) expect(x[k], `${what}[${k}]`).toBe(y[k]);
}

function sameStates(what: string, a: Sequential, b: Sequential): void {
  const sa = a.getStates(), sb = b.getStates();
  expect(sa.length).toBe(sb.length);
  sa.forEach((s, i) => {
    for (const [name, t] of Object.entries(s)) same(`${what} state ${i}.${name}`, t as Tensor, (sb[i] as unknown as Record<string, Tensor>)[name]!);
  });
}

/** [B, T, F] from a seed, with rows' steps set to the mask value 0 where `masked` says (b, t). */
function input(B: number, T: number, F: number, seed: number, dtype: DType, masked?: (b: number, t: number) => boolean): Tensor {
  const x = randomNormal([B, T, F], { seed, dtype });
  if (masked) for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (masked(b, t)) x.data.fill(0, (b * T + t) * F, (b * T + t + 1) * F);
  return x;
}

/** [B, T] integer ids in [0, V) (0 masks with maskZero), from a seed. */
function ids(B: number, T: number, V: number, seed: number, dtype: DType): Tensor {
  const data = dtype === "float32" ? new Float32Array(B * T) : new Float64Array(B * T);
  let s = seed;
  for (let k = 0; k < B * T; k++) { s = (s * 1103515245 + 12345) % 2147483648; data[k] = (s >> 8) % V; }
  return ndarray(data, [B, T]) as Tensor;
}

/** Options every recurrent layer of a case is made with (a stateful stream's). */
type Extra = { stateful?: boolean; batchSize?: number };

interface Case {
  name: string;
  layers: (o: Extra) => (LSTM | GRU | Bidirectional | Dense | Masking | Embedding)[];
  F: number;
  /** Masked steps (b, t) of the input (a Masking model), or ids (an Embedding model: F is the vocabulary). */
  mask?: (b: number, t: number) => boolean;
  ids?: boolean;
  /** Per-step labels ([B, T, D]) rather than [B, D]. */
  perStep?: boolean;
  D: number;
}

const CASES: Case[] = [
  { name: "LSTM", F: 3, D: 2, layers: (o) => [new LSTM({ units: 6, inputDim: 3, ...o }), new Dense({ units: 2 })] },
  // Past SMALL_PRODUCT from B 2, T 13 (n·B·4H·I > 16384): the SIMD recurrence of fewer than four rows then runs block by block.
  { name: "LSTM 16 × 16", F: 16, D: 1, layers: (o) => [new LSTM({ units: 16, inputDim: 16, ...o }), new Dense({ units: 1 })] },
  {
    name: "LSTM hardSigmoid, no bias, returnSequences", F: 2, D: 1, perStep: true,
    layers: (o) => [new LSTM({ units: 5, inputDim: 2, recurrentActivation: "hardSigmoid", useBias: false, returnSequences: true, ...o }), new Dense({ units: 1 })],
  },
  { name: "GRU", F: 3, D: 1, layers: (o) => [new GRU({ units: 6, inputDim: 3, ...o }), new Dense({ units: 1 })] },
  { name: "GRU resetAfter false", F: 2, D: 1, layers: (o) => [new GRU({ units: 5, inputDim: 2, resetAfter: false, ...o }), new Dense({ units: 1 })] },
  {
    name: "stacked LSTM → GRU (goBackwards) → Dense", F: 3, D: 1,
    layers: (o) => [new LSTM({ units: 6, inputDim: 3, returnSequences: true, ...o }), new GRU({ units: 4, goBackwards: true, ...o }), new Dense({ units: 1 })],
  },
  {
    name: "Bidirectional(LSTM) concat, returnSequences → Bidirectional(GRU) ave", F: 2, D: 1,
    layers: (o) => [
      new Bidirectional(new LSTM({ units: 4, inputDim: 2, returnSequences: true, ...o })),
      new Bidirectional(new GRU({ units: 3, ...o }), { mergeMode: "ave" }), new Dense({ units: 1 }),
    ],
  },
  {
    name: "masked: Masking → LSTM (returnSequences, zeroOutputForMask) → GRU", F: 2, D: 1,
    mask: (b, t) => (b + 2 * t) % 5 === 1 || t < b % 3,
    layers: (o) => [
      new Masking(), new LSTM({ units: 4, inputDim: 2, returnSequences: true, zeroOutputForMask: true, ...o }), new GRU({ units: 3, ...o }), new Dense({ units: 1 }),
    ],
  },
  {
    name: "masked Bidirectional(GRU), per-step output", F: 2, D: 1, perStep: true,
    mask: (b, t) => (3 * b + t) % 4 === 0,
    layers: (o) => [new Masking(), new Bidirectional(new GRU({ units: 3, inputDim: 2, returnSequences: true, ...o }), { mergeMode: "sum" }), new Dense({ units: 1 })],
  },
  {
    name: "Embedding(maskZero) → LSTM (goBackwards)", F: 7, D: 1, ids: true,
    layers: (o) => [new Embedding({ inputDim: 7, outputDim: 3, maskZero: true }), new LSTM({ units: 4, goBackwards: true, ...o }), new Dense({ units: 1 })],
  },
];

const RUNS: { backend: Backend; dtype: DType }[] = [
  { backend: "js", dtype: "float64" }, { backend: "js", dtype: "float32" },
  { backend: "wasm", dtype: "float64" }, { backend: "wasm", dtype: "float32" },
];

/** Two models made alike: the forward-only path's (`fast`) and the training forward's (`ref`). */
function pair(c: Case, backend: Backend, dtype: DType, extra: { stateful?: number } = {}): [Sequential, Sequential] {
  const make = (): Sequential => {
    const layers = c.layers(extra.stateful ? { stateful: true, batchSize: extra.stateful } : {});
    const m = new Sequential(layers, { seed: 7, dtype, backend });
    m.compile({ optimizer: "adam", loss: "mse" });
    return m;
  };
  const fast = make(), ref = make();
  ref.engine.forwardOnly = false;
  return [fast, ref];
}

function data(c: Case, B: number, T: number, seed: number, dtype: DType): { x: Tensor; y: Tensor } {
  const x = c.ids ? ids(B, T, c.F, seed, dtype) : input(B, T, c.F, seed, dtype, c.mask);
  const y = randomNormal(c.perStep ? [B, T, c.D] : [B, c.D], { seed: seed + 1, dtype });
  return { x, y };
}

describe("forward-only predict / evaluate: the training forward's results, bit for bit", () => {
  for (const c of CASES) {
    for (const { backend, dtype } of RUNS) {
      it(`${c.name}, ${backend} ${dtype}: predict, states, evaluate, testOnBatch, B 1 … 5 and 32, T 1 … 13, blocks of a few steps and the default`, () => {
        const [fast, ref] = pair(c, backend, dtype);
        let seed = 11;
        for (const bytes of [1, 200, DEFAULT_BLOCK]) {
          inferBlock.bytes = bytes; // 1: blocks of ⌈4/B⌉ steps (the least); 200: a few steps; the default: usually one block
          for (const B of [1, 2, 3, 4, 5, 32]) {
            for (const T of [1, 2, 7, 13]) {
              const { x, y } = data(c, B, T, seed++, dtype), what = `block ${bytes} B ${B} T ${T}`;
              same(`${what} predict`, fast.predict(x), ref.predict(x));
              sameStates(`${what} after predict`, fast, ref);
              expect(fast.evaluate(x, y, { batchSize: 3 }), `${what} evaluate`).toEqual(ref.evaluate(x, y, { batchSize: 3 }));
              expect(fast.testOnBatch(x, y), `${what} testOnBatch`).toEqual(ref.testOnBatch(x, y));
              sameStates(`${what} after testOnBatch`, fast, ref);
            }
          }
        }
      });
    }
  }

  for (const { backend, dtype } of RUNS) {
    it(`predict = computeGradients' outputs (the training forward itself), ${backend} ${dtype}`, () => {
      for (const c of CASES) {
        const m = pair(c, backend, dtype)[0];
        for (const bytes of [1, DEFAULT_BLOCK]) {
          inferBlock.bytes = bytes;
          for (const [B, T] of [[1, 9], [3, 6], [5, 4], [32, 3]] as const) {
            const { x, y } = data(c, B, T, 100 + B + T, dtype);
            const g = m.computeGradients(x, y);
            same(`${c.name} block ${bytes} B ${B} T ${T}`, m.predict(x), g.outputs);
          }
        }
      }
    });

    it(`initialStates: predict from given states, ${backend} ${dtype}`, () => {
      inferBlock.bytes = 1;
      for (const c of CASES.filter((k) => !k.mask && !k.ids)) {
        const [fast, ref] = pair(c, backend, dtype);
        for (const B of [1, 3, 4, 6]) {
          const { x } = data(c, B, 9, 300 + B, dtype);
          fast.predict(x);
          const given = fast.getStates(); // non-zero states of B rows
          const { x: x2 } = data(c, B, 5, 400 + B, dtype);
          same(`${c.name} B ${B} from given states`, fast.predict(x2, { initialStates: given }), ref.predict(x2, { initialStates: given }));
          sameStates(`${c.name} B ${B} after`, fast, ref);
        }
      }
    });

    it(`a stateful stream: T = 1 steps, chunks, resetStates of some rows, ${backend} ${dtype}`, () => {
      inferBlock.bytes = 1;
      for (const c of CASES.filter((k) => !k.perStep)) {
        for (const B of [1, 2, 5]) {
          const [fast, ref] = pair(c, backend, dtype, { stateful: B });
          let seed = 500;
          for (const T of [1, 1, 1, 4, 1, 9, 2]) {
            const { x, y } = data(c, B, T, seed++, dtype);
            same(`${c.name} B ${B} stream step T ${T}`, fast.predict(x), ref.predict(x));
            sameStates(`${c.name} B ${B} stream T ${T}`, fast, ref);
            if (T === 4) { fast.resetStates({ rows: [0] }); ref.resetStates({ rows: [0] }); }
            if (T === 9) expect(fast.testOnBatch(x, y)).toEqual(ref.testOnBatch(x, y));
          }
          // The carried state is not zero: a fresh model's prediction on the last input differs.
          const { x } = data(c, B, 2, seed - 1, dtype);
          const fresh = pair(c, backend, dtype, { stateful: B })[0];
          expect(Array.from(fresh.predict(x).data)).not.toEqual(Array.from(fast.predict(x).data));
        }
      }
    });

    it(`a predict between training steps changes nothing in training, ${backend} ${dtype}`, () => {
      inferBlock.bytes = 1;
      for (const c of CASES.filter((k) => ["LSTM 16 × 16", "GRU", "Bidirectional(LSTM) concat, returnSequences → Bidirectional(GRU) ave", "masked: Masking → LSTM (returnSequences, zeroOutputForMask) → GRU"].includes(k.name))) {
        const [a, b] = pair(c, backend, dtype);
        b.engine.forwardOnly = true;
        const { x, y } = data(c, 4, 8, 700, dtype);
        const { x: xp } = data(c, 5, 11, 701, dtype); // another shape: the predict's blocks overwrite the gate buffers' front
        const { x: xq } = data(c, 4, 8, 702, dtype); // the same shape
        const la = [a.trainOnBatch(x, y).loss], lb = [b.trainOnBatch(x, y).loss];
        a.predict(xp); a.predict(xq); a.evaluate(xq, y);
        la.push(a.trainOnBatch(x, y).loss, a.trainOnBatch(x, y).loss);
        lb.push(b.trainOnBatch(x, y).loss, b.trainOnBatch(x, y).loss);
        expect(la, c.name).toEqual(lb);
        a.getWeights().forEach((w, i) => same(`${c.name} weight ${i}`, w, b.getWeights()[i]!));
        // And the gradients of the next step (computeGradients' forward runs after a predict here).
        a.predict(xp);
        const ga = a.computeGradients(x, y), gb = b.computeGradients(x, y);
        expect(ga.loss).toBe(gb.loss);
        ga.grads.forEach((g, i) => same(`${c.name} gradient ${i}`, g, gb.grads[i]!));
      }
    });
  }
});

describe("the SIMD recurrence's packed R (fewer than four rows): the same bits as R in place", () => {
  for (const dtype of ["float64", "float32"] as const) {
    it(`predict, trainOnBatch and computeGradients with R packed in every call and in none, ${dtype}`, () => {
      for (const [H, I] of [[10, 1], [64, 8], [6, 3]] as const) {
        for (const B of [1, 2, 3]) {
          const runs = [true, false].map((packed) => {
            Object.assign(packR, packed ? { steps: 1, bytes: 0 } : { steps: Infinity, bytes: Infinity });
            const m = new Sequential([new LSTM({ units: H, inputDim: I, returnSequences: true }), new LSTM({ units: H }), new Dense({ units: 1 })], { seed: 3, dtype, backend: "wasm" });
            m.compile({ optimizer: "adam", loss: "mse" });
            const out: Tensor[] = [];
            for (const T of [1, 3, 9, 40]) {
              const x = randomNormal([B, T, I], { seed: 20 + T, dtype }), y = randomNormal([B, 1], { seed: 30 + T, dtype });
              out.push(m.predict(x));
              m.trainOnBatch(x, y);
              const g = m.computeGradients(x, y);
              out.push(g.outputs, ...g.grads, g.inputGrad);
            }
            return out;
          });
          runs[0]!.forEach((t, i) => same(`H ${H} B ${B} result ${i}`, t, runs[1]![i]!));
        }
      }
    });
  }
});

describe("the SIMD products of fewer than four rows in a loop (held B packed): the same bits as B in place", () => {
  const layers = (): (LSTM | GRU | Dense | Masking)[][] => [
    [new GRU({ units: 12, inputDim: 3, returnSequences: true }), new GRU({ units: 10, resetAfter: false }), new Dense({ units: 1 })],
    [new Masking(), new LSTM({ units: 12, inputDim: 3, returnSequences: true }), new LSTM({ units: 8, recurrentActivation: "hardSigmoid" }), new Dense({ units: 1 })],
    [new Bidirectional(new GRU({ units: 8, inputDim: 3 })), new Dense({ units: 1 })],
  ] as never;
  for (const dtype of ["float64", "float32"] as const) {
    it(`GRU, masked and hardSigmoid LSTMs, Bidirectional(GRU): predict, trainOnBatch, computeGradients packed and in place, ${dtype}`, () => {
      for (let k = 0; k < layers().length; k++) {
        for (const B of [1, 2, 3]) {
          const runs = [0, Infinity].map((bytes) => {
            fewPack.bytes = bytes;
            const m = new Sequential(layers()[k]!, { seed: 5, dtype, backend: "wasm" });
            m.compile({ optimizer: "adam", loss: "mse" });
            const out: Tensor[] = [];
            for (const T of [1, 2, 9]) {
              const x = input(B, T, 3, 40 + T, dtype, (b, t) => (b + t) % 4 === 3), y = randomNormal([B, 1], { seed: 50 + T, dtype });
              out.push(m.predict(x));
              m.trainOnBatch(x, y);
              const g = m.computeGradients(x, y);
              out.push(g.outputs, ...g.grads, g.inputGrad);
            }
            // New weights with no backward between (which would have replaced the held packing): the next loop packs afresh.
            const x = input(B, 9, 3, 60, dtype);
            out.push(m.predict(x));
            m.setWeights(m.getWeights().map((w) => ndarray(w.data.map((v) => 0.5 - v), w.shape) as Tensor));
            out.push(m.predict(x));
            return out;
          });
          runs[0]!.forEach((t, i) => same(`model ${k} B ${B} result ${i}`, t, runs[1]![i]!));
        }
      }
    });
  }
});
