/**
 * Softmax heads and the categorical losses beyond the golden values (test/fixtures/seq_softmax_*): argmax
 * accuracy, class-index labels and their checks, Keras's loss aliases, the head the losses need, truncated BPTT
 * and threads with class-index labels, checkpoints, and a model that learns to classify.
 */
import { afterAll, describe, expect, it } from "vitest";
import ndarray from "ndarray";
import * as ort from "onnxruntime-node";
import {
  Sequential, LSTM, Dense, Adam, TruncatedBPTT, ShapeError, ValueError, decodeCheckpoint, encodeCheckpoint, toOnnx,
  setThreads, randomNormal, gradCheck, type Tensor,
} from "../src/node/index.js";

const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

function classifier(perStep: boolean, loss: string, seed = 1, D = 3): Sequential {
  const m = new Sequential([new LSTM({ units: 6, inputDim: 2, returnSequences: perStep }), new Dense({ units: D, activation: "softmax" })], { seed });
  m.compile({ optimizer: new Adam({ learningRate: 0.05 }), loss: loss as "categoricalCrossentropy", metrics: ["accuracy"] });
  return m;
}

const X = randomNormal([6, 5, 2], { seed: 9 });

describe("softmax head", () => {
  it("outputs probabilities: each row sums to 1, even for huge logits", () => {
    const m = classifier(true, "sparseCategoricalCrossentropy");
    const w = m.getWeights();
    w[3]!.data.forEach((_, i) => { w[3]!.data[i] = (i % 3) * 400; }); // logits in the hundreds
    m.setWeights(w);
    const p = m.predict(X);
    expect(p.shape).toEqual([6, 5, 3]);
    for (let r = 0; r < 30; r++) {
      const row = p.data.subarray(3 * r, 3 * r + 3);
      expect(Math.abs(row[0]! + row[1]! + row[2]! - 1)).toBeLessThan(1e-15);
      expect(row.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    }
    expect(Number.isFinite(m.testOnBatch(X, ndarray(new Float64Array(30), [6, 5]) as Tensor).loss)).toBe(true);
  });

  it("accuracy is the argmax: one-hot, soft and class-index labels give the same count", () => {
    const m = classifier(false, "categoricalCrossentropy");
    const p = m.predict(X);
    const argmax = (r: number) => [0, 1, 2].reduce((a, k) => (p.data[3 * r + k]! > p.data[3 * r + a]! ? k : a), 0);
    const idx = [0, 1, 2, 0, 1, 2];
    const expected = idx.filter((c, r) => argmax(r) === c).length / 6;
    const oneHot = idx.map((c) => [0, 1, 2].map((k) => (k === c ? 1 : 0)));
    expect(m.testOnBatch(X, oneHot).accuracy).toBe(expected);
    const soft = idx.map((c) => [0, 1, 2].map((k) => (k === c ? 0.6 : 0.2)));
    expect(m.testOnBatch(X, soft).accuracy).toBe(expected);
    const s = classifier(false, "sparseCategoricalCrossentropy");
    s.setWeights(m.getWeights());
    expect(s.testOnBatch(X, idx).accuracy).toBe(expected);
    expect(s.testOnBatch(X, idx.map((c) => [c])).accuracy).toBe(expected); // [B, 1] too
    // …and one-hot categorical and sparse give the same loss.
    expect(Math.abs(s.testOnBatch(X, idx).loss - m.testOnBatch(X, oneHot).loss)).toBeLessThan(1e-15);
  });

  it("class-index labels are checked: shape, integers, range", () => {
    const s = classifier(false, "sparseCategoricalCrossentropy"), ps = classifier(true, "sparseCategoricalCrossentropy");
    expect(() => s.trainOnBatch(X, [0, 1, 2, 0, 1, 3])).toThrow(/trainOnBatch y\[5\]: expected a class index, an integer in \[0, 3\), got 3/);
    expect(() => s.trainOnBatch(X, [0, 1, 2, 0, 1, 0.5])).toThrow(/expected a class index, an integer in \[0, 3\), got 0\.5/);
    expect(() => s.trainOnBatch(X, [[1, 0, 0]])).toThrow(ShapeError);
    expect(() => s.trainOnBatch(X, [[1, 0, 0]])).toThrow(/sparseCategoricalCrossentropy takes one class index per sequence: expected shape \[B\] or \[B, 1\] = \[6\], got \[1, 3\]/);
    expect(() => ps.trainOnBatch(X, [0, 1, 2, 0, 1, 2])).toThrow(/one class index per step: expected shape \[B, T\] or \[B, T, 1\] = \[6, 5\]/);
    expect(() => ps.trainOnBatch(X, ndarray(new Float64Array(30).fill(-1), [6, 5]))).toThrow(/y\[0\]\[0\]: expected a class index/);
  });

  it("a softmax over one unit (always 1) is refused at compile with every loss, naming the two fixes", () => {
    for (const loss of ["categoricalCrossentropy", "sparseCategoricalCrossentropy", "binaryCrossentropy", "meanSquaredError"]) {
      const m = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1, activation: "softmax" })]);
      expect(() => m.compile({ loss: loss as "meanSquaredError" }), loss).toThrow(new RegExp(`units 1 and activation "softmax", whose output is always 1, so ${loss} cannot learn anything; for two classes use new Dense\\(\\{ units: 1, activation: "sigmoid" \\}\\) with loss "binaryCrossentropy", or give the softmax units ≥ 2`));
      expect(m.loss).toBeNull();
    }
    const two = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 2, activation: "softmax" })]);
    two.compile({ loss: "categoricalCrossentropy" });
    expect(two.loss).toBe("categoricalCrossentropy");
  });

  it("categorical losses need a softmax head; Keras's names are accepted", () => {
    const m = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 3, activation: "sigmoid" })]);
    expect(() => m.compile({ loss: "categoricalCrossentropy" })).toThrow(/compile loss: categoricalCrossentropy compares class probabilities; the top layer must be new Dense\(\{ units, activation: "softmax" \}\), got activation "sigmoid"/);
    for (const [alias, name] of [["sparse_categorical_crossentropy", "sparseCategoricalCrossentropy"], ["categorical_crossentropy", "categoricalCrossentropy"], ["mse", "meanSquaredError"], ["binary_crossentropy", "binaryCrossentropy"]]) {
      const c = classifier(false, alias!);
      expect(c.loss).toBe(name);
    }
    expect(() => classifier(false, "crossentropy")).toThrow(ValueError);
  });
});

describe("gradCheck on softmax heads", () => {
  it("agrees for categorical (soft labels) and sparse per-step losses: weights, dL/dx, dL/d(initial state)", () => {
    const soft = classifier(false, "categoricalCrossentropy", 3);
    expect(gradCheck(soft, X, Array.from({ length: 6 }, (_, r) => [0.2 + 0.1 * r, 0.5, 0.3])).maxRelativeError).toBeLessThan(1e-6);
    const sparse = classifier(true, "sparseCategoricalCrossentropy", 3);
    expect(gradCheck(sparse, X, ndarray(Float64Array.from({ length: 30 }, (_, k) => k % 3), [6, 5]) as Tensor).maxRelativeError).toBeLessThan(1e-6);
  });
});

describe("class-index labels through every path", () => {
  it("TruncatedBPTT with one window over the sequence equals trainOnBatch (per-step class indices)", () => {
    const y = ndarray(Float64Array.from({ length: 30 }, (_, k) => k % 3), [6, 5]) as Tensor;
    const a = classifier(true, "sparseCategoricalCrossentropy", 4), b = classifier(true, "sparseCategoricalCrossentropy", 4);
    const r1 = a.trainOnBatch(X, y);
    const r2 = new TruncatedBPTT(b, { windowLength: 5 }).trainSequence(X, y);
    expect(r2.loss).toBe(r1.loss);
    expect(r2.accuracy).toBe(r1.accuracy);
    expect(Array.from(b.engine.params)).toEqual(Array.from(a.engine.params));
    // Windows of 2 run too, and report per-window accuracy over rows and steps.
    const c = classifier(true, "sparseCategoricalCrossentropy", 4);
    const r3 = new TruncatedBPTT(c, { windowLength: 2, backpropLength: 4 }).trainSequence(X, y);
    expect(r3.windows).toBe(3);
    expect(r3.accuracy).toBeGreaterThanOrEqual(0);
  });

  it("three threads give one thread's loss, accuracy and gradients", () => {
    const y = ndarray(Float64Array.from({ length: 30 }, (_, k) => (k * 7) % 3), [6, 5]) as Tensor;
    const one = classifier(true, "sparseCategoricalCrossentropy", 5), many = classifier(true, "sparseCategoricalCrossentropy", 5);
    setThreads(many, 3, { minFlops: 0 });
    live.push(many);
    for (let s = 0; s < 3; s++) {
      const a = one.trainOnBatch(X, y), b = many.trainOnBatch(X, y);
      expect(Math.abs(b.loss - a.loss)).toBeLessThanOrEqual(1e-12 * a.loss);
      expect(b.accuracy).toBe(a.accuracy);
    }
    const w1 = one.engine.params, w3 = many.engine.params;
    w1.forEach((v, i) => expect(Math.abs(w3[i]! - v)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(v))));
    expect(many.threads).toBe(3);
  });

  it("a checkpoint keeps the softmax head and the loss, and training continues identically", () => {
    const m = classifier(false, "sparseCategoricalCrossentropy", 6);
    const y = [2, 0, 1, 1, 0, 2];
    m.trainOnBatch(X, y);
    const copy = decodeCheckpoint(encodeCheckpoint(m));
    expect(copy.loss).toBe("sparseCategoricalCrossentropy");
    expect((copy.layers[1] as Dense).activation).toBe("softmax");
    expect(copy.trainOnBatch(X, y)).toEqual(m.trainOnBatch(X, y));
  });

  it("ONNX Runtime computes the softmax head as predict does", async () => {
    const m = classifier(true, "sparseCategoricalCrossentropy", 7, 4);
    const session = await ort.InferenceSession.create(toOnnx(m));
    const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from(X.data), [6, 5, 2]) });
    const p = m.predict(X);
    expect(out.y!.dims).toEqual([6, 5, 4]);
    (out.y!.data as Float32Array).forEach((v, i) => expect(Math.abs(v - p.data[i]!)).toBeLessThan(1e-6));
  });
});

describe("a classifier learns", () => {
  it("which of three features was largest at the first step, to better than 90% (chance: 33%)", async () => {
    const N = 90, T = 6;
    const x = randomNormal([N, T, 3], { seed: 11 });
    const y = Array.from({ length: N }, (_, n) => [0, 1, 2].reduce((a, k) => (x.data[n * T * 3 + k]! > x.data[n * T * 3 + a]! ? k : a), 0));
    const m = new Sequential([new LSTM({ units: 12, inputDim: 3 }), new Dense({ units: 3, activation: "softmax" })], { seed: 2 });
    m.compile({ optimizer: new Adam({ learningRate: 0.02 }), loss: "sparse_categorical_crossentropy", metrics: ["accuracy"] });
    const h = await m.fit(x, y, { epochs: 40, batchSize: 30, verbose: 0 });
    expect(h.history.accuracy!.at(-1)!).toBeGreaterThan(0.9);
    expect(h.history.loss.at(-1)!).toBeLessThan(h.history.loss[0]! / 3);
  });
});
