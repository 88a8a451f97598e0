/**
 * Embedding (Keras's): ids [B, T] → [B, T, D]. The reference needs no library of its own: an Embedding is a
 * Dense without bias on one-hot inputs, its table the Dense's kernel, so every result (outputs, gradients,
 * training, truncated BPTT with kept history) must equal that model's; maskZero is Masking on a one-hot encoding
 * that makes id 0 the zero vector. Also gradCheck on both backends, threads, checkpoints, safetensors and
 * TensorFlow.js, and the refusals.
 */
import { describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import ndarray from "ndarray";
import {
  Sequential, LSTM, Dense, Embedding, Masking, TruncatedBPTT, gradCheck, randomNormal, toTfjs, fromTfjs, toOnnx, toSafetensors, fromSafetensors,
  checkpointFromJSON, checkpointToJSON, decodeCheckpoint, encodeCheckpoint, setThreads, ValueError, type Tensor,
} from "../src/node/index.js";
import { Rng } from "../src/init.js";

const V = 7, D = 3;

function ids(B: number, T: number, seed: number, zeros = false): number[][] {
  const rng = new Rng(`ids/${seed}`);
  return Array.from({ length: B }, () => Array.from({ length: T }, () => (zeros && rng.uniform() < 0.3 ? 0 : 1 + rng.int(V - 1))));
}

/** [B, T, V] one-hot; with `zeroIsPadding`, id 0 becomes the zero vector (so Masking(0) masks it). */
function oneHot(x: number[][], zeroIsPadding = false): Tensor {
  const B = x.length, T = x[0]!.length, out = new Float64Array(B * T * V);
  x.forEach((row, b) => row.forEach((id, t) => { if (!(zeroIsPadding && id === 0)) out[(b * T + t) * V + id] = 1; }));
  return ndarray(out, [B, T, V]) as Tensor;
}

/** The pair: [Embedding, …rest] and [Dense(V → D, no bias), …rest] with the same weights. */
function pair(rest: () => (LSTM | Dense)[], maskZero = false): [Sequential, Sequential] {
  const a = new Sequential([new Embedding({ inputDim: V, outputDim: D, maskZero }), ...rest()], { seed: 1 });
  const b = new Sequential([...(maskZero ? [new Masking()] : []), new Dense({ units: D, inputDim: V, useBias: false }), ...rest()], { seed: 2 });
  b.setWeights(a.getWeights());
  return [a, b];
}

const flat = (ts: Tensor[]): number[] => ts.flatMap((t) => Array.from(t.data));

function maxRel(a: ArrayLike<number>, e: ArrayLike<number>): number {
  expect(a.length).toBe(e.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - e[k]!) / Math.max(Math.abs(e[k]!), 1e-9));
  return m;
}

describe("Embedding is a Dense on one-hot inputs", () => {
  it("outputs, gradients and Adam steps equal the one-hot model's", () => {
    const [a, b] = pair(() => [new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 2 })]);
    for (const m of [a, b]) m.compile({ optimizer: "adam", loss: "mse" });
    const x = ids(3, 5, 1), y = randomNormal([3, 5, 2], { seed: 2 });
    expect(maxRel(a.predict(x).data, b.predict(oneHot(x)).data)).toBeLessThan(1e-14);
    const ga = a.computeGradients(x, y), gb = b.computeGradients(oneHot(x), y);
    expect(maxRel(flat(ga.grads), flat(gb.grads))).toBeLessThan(1e-12);
    // Rows of ids that never occur get no gradient (the scatter-add touches only the rows used).
    const used = new Set(x.flat());
    for (let id = 0; id < V; id++) if (!used.has(id)) expect(Array.from(ga.grads[0]!.data.slice(id * D, (id + 1) * D))).toEqual([0, 0, 0]);
    for (let s = 0; s < 3; s++) expect(maxRel([a.trainOnBatch(x, y).loss], [b.trainOnBatch(oneHot(x), y).loss])).toBeLessThan(1e-12);
    expect(maxRel(flat(a.getWeights()), flat(b.getWeights()))).toBeLessThan(1e-10);
    expect(ga.inputGrad.shape).toEqual([3, 5, 1]); // ids have no gradient: zeros
    expect(ga.inputGrad.data.every((v) => v === 0)).toBe(true);
  });

  it("maskZero is Masking on a one-hot encoding whose id 0 is the zero vector, per step and last step", () => {
    for (const perStep of [true, false]) {
      const [a, b] = pair(() => [new LSTM({ units: 4, returnSequences: perStep }), new Dense({ units: 1, activation: "sigmoid" })], true);
      for (const m of [a, b]) m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
      const x = ids(4, 6, 3, true), y = randomNormal(perStep ? [4, 6, 1] : [4, 1], { seed: 4 });
      for (let k = 0; k < y.data.length; k++) y.data[k] = y.data[k]! > 0 ? 1 : 0;
      expect(maxRel(a.predict(x).data, b.predict(oneHot(x, true)).data)).toBeLessThan(1e-14);
      const ga = a.computeGradients(x, y), gb = b.computeGradients(oneHot(x, true), y);
      expect(Math.abs(ga.loss - gb.loss)).toBeLessThan(1e-14);
      expect(maxRel(flat(ga.grads), flat(gb.grads))).toBeLessThan(1e-12);
      // …and the mask does something: without maskZero the outputs differ.
      const [plain] = pair(() => [new LSTM({ units: 4, returnSequences: perStep }), new Dense({ units: 1, activation: "sigmoid" })]);
      expect(maxRel(plain.predict(x).data, a.predict(x).data)).toBeGreaterThan(1e-6);
    }
  });

  it("truncated BPTT with kept history (k1 = 2, k2 = 5) trains as the one-hot model does", () => {
    const [a, b] = pair(() => [new LSTM({ units: 3, returnSequences: true }), new Dense({ units: 1 })]);
    for (const m of [a, b]) m.compile({ optimizer: "sgd", loss: "mse" });
    const x = ids(2, 10, 5), y = randomNormal([2, 10, 1], { seed: 6 });
    const ra = new TruncatedBPTT(a, { windowLength: 2, backpropLength: 5 }).trainSequence(x, y);
    const rb = new TruncatedBPTT(b, { windowLength: 2, backpropLength: 5 }).trainSequence(oneHot(x), y);
    expect(maxRel(ra.losses, rb.losses)).toBeLessThan(1e-12);
    expect(maxRel(flat(a.getWeights()), flat(b.getWeights()))).toBeLessThan(1e-10);
  });
});

describe("Embedding", () => {
  for (const backend of ["js", "wasm"] as const) {
    it(`gradCheck: weights and initial states, with maskZero (${backend})`, () => {
      const m = new Sequential([new Embedding({ inputDim: V, outputDim: D, maskZero: true }), new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 2, activation: "tanh" })], { seed: 7, backend });
      m.compile({ optimizer: "sgd", loss: "mse" });
      const r = gradCheck(m, ids(3, 5, 8, true), randomNormal([3, 5, 2], { seed: 9 }), { samples: 60 });
      expect(r.input).toBeUndefined(); // ids are not differentiable: not checked
      expect(r.maxRelativeError, JSON.stringify(r.perWeight)).toBeLessThan(1e-6);
    });
  }

  it("2, 3 and 4 threads give one thread's results", () => {
    for (const threads of [2, 3, 4]) {
      const make = () => { const m = new Sequential([new Embedding({ inputDim: V, outputDim: D }), new LSTM({ units: 4 }), new Dense({ units: 1 })], { seed: 10 }); m.compile({ optimizer: "adam", loss: "mse" }); return m; };
      const one = make(), two = make();
      setThreads(two, threads, { minFlops: 0 });
      const x = ids(7, 4, 11), y = randomNormal([7, 1], { seed: 12 });
      for (let s = 0; s < 3; s++) expect(maxRel([two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]), `${threads} threads`).toBeLessThan(1e-12);
      expect(maxRel(flat(two.getWeights()), flat(one.getWeights())), `${threads} threads`).toBeLessThan(1e-12);
      expect(((two.engine.executor as unknown) as { parallelCalls: number }).parallelCalls).toBeGreaterThan(0);
      two.dispose();
    }
  });

  it("travels: checkpoints (format version 3), safetensors (embedding.0.weight), TensorFlow.js (both ways), ONNX", async () => {
    const m = new Sequential([new Embedding({ inputDim: V, outputDim: D, maskZero: true }), new LSTM({ units: 4 }), new Dense({ units: 2 })], { seed: 13 });
    m.compile({ optimizer: "adam", loss: "mse" });
    const x = ids(3, 5, 14, true), y = randomNormal([3, 2], { seed: 15 });
    m.trainOnBatch(x, y);
    const json = checkpointToJSON(m);
    expect(json.version).toBe(3);
    expect(json.config.layers[0]).toEqual({ kind: "embedding", inputDim: V, outputDim: D, maskZero: true, embeddingsInitializer: "uniform" });
    for (const copy of [checkpointFromJSON(JSON.parse(JSON.stringify(json))), decodeCheckpoint(encodeCheckpoint(m)), fromSafetensors(toSafetensors(m))]) {
      expect(Array.from(copy.predict(x).data)).toEqual(Array.from(m.predict(x).data));
    }
    expect(checkpointFromJSON(JSON.parse(JSON.stringify(json))).trainOnBatch(x, y).loss).toBe(m.trainOnBatch(x, y).loss);
    await tf.setBackend("cpu");
    const f32 = new Sequential([new Embedding({ inputDim: V, outputDim: D, maskZero: true }), new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 2 })], { seed: 16, dtype: "float32" });
    const t = await tf.loadLayersModel(tf.io.fromMemory(toTfjs(f32)));
    const p = (t.predict(tf.tensor2d(x)) as tf.Tensor).dataSync();
    const want = f32.predict(x).data;
    // tfjs's masked RNN repeats the previous state at a masked step; before a row's first kept step that is the
    // zero initial state, as ours: every value agrees.
    expect(maxRel(p, want)).toBeLessThan(1e-5);
    expect(Array.from(fromTfjs(toTfjs(f32)).predict(x).data)).toEqual(Array.from(want));
    t.dispose();
    // ONNX: int64 ids in (ONNX Runtime's y against predict: test/embedding-interop.test.ts).
    expect(toOnnx(m)).toBeInstanceOf(Uint8Array);
  });

  it("refuses bad ids by position, and orders that break its rules, before anything is built", () => {
    const m = new Sequential([new Embedding({ inputDim: V, outputDim: D }), new LSTM({ units: 2 }), new Dense({ units: 1 })], { seed: 17 });
    expect(() => m.predict([[1, 2], [3, V]])).toThrow(/predict x\[1\]\[1\]: expected an id, an integer in \[0, 7\) \(the Embedding's inputDim\), got 7/);
    expect(() => m.predict([[1, 2.5]])).toThrow(/predict x\[0\]\[1\]: expected an id.*got 2\.5/);
    expect(() => m.predict([[NaN, 1]])).toThrow(/predict x\[0\]\[0\]: expected an id.*got NaN/);
    expect(() => m.predict([[[1, 2]]])).toThrow(/expected rank 2 \[batch, timesteps\] \(or \[batch, timesteps, 1\]\), got rank 3 with shape \[1, 1, 2\]/);
    expect(m.predict([[[1], [2]]]).shape).toEqual([1, 1]); // [B, T, 1] is ids too
    expect(() => new Sequential([new LSTM({ units: 2, inputDim: 1, returnSequences: true }), new Embedding({ inputDim: 3, outputDim: 2 })])).toThrow(/layers\[1\]: an Embedding reads the model's ids and must be the first layer/);
    expect(() => new Sequential([new Masking(), new Embedding({ inputDim: 3, outputDim: 2 }), new LSTM({ units: 2 })])).toThrow(/a Masking layer cannot come before an Embedding/);
    expect(() => new Embedding({ inputDim: 0, outputDim: 2 })).toThrow(/Embedding inputDim: expected a positive integer/);
    expect(() => new Embedding({ inputDim: 3, outputDim: 2, maskZero: 1 as never })).toThrow(ValueError);
    expect(() => new Embedding({ inputDim: 3, outputDim: 2, embeddingsInitializer: "glorot" as never })).toThrow(/embeddingsInitializer: expected one of "uniform", "normal", "zeros"/);
    expect(m.predict([[1, 2]]).shape).toEqual([1, 1]);
  });
});
