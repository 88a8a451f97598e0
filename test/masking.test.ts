/**
 * Masking beyond the golden values (test/fixtures/seq_masked_*, PyTorch under Keras 3's masked-RNN rules):
 * padding changes nothing, the state passes through masked steps (and a stateful model carries the last kept
 * step's), outputs before a row's first kept step are zeros even over a carried state, per-step losses count
 * kept entries only, and truncated BPTT, threads, checkpoints and interop keep all of it.
 */
import type { ThreadPool } from "../src/threads/pool.js";
import { afterAll, describe, expect, it } from "vitest";
import ndarray from "ndarray";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import {
  Sequential, LSTM, Dense, Masking, SGD, TruncatedBPTT, ValueError, randomNormal, setThreads, toTfjs, fromTfjs,
  toOnnx, toSafetensors, fromSafetensors, encodeCheckpoint, decodeCheckpoint, checkpointFromJSON, gradCheck, type Tensor,
} from "../src/node/index.js";

const live: Sequential[] = [];
afterAll(() => { for (const m of live) m.dispose(); });

const F = 2, H = 4;
function model(opts: { perStep?: boolean; stateful?: boolean; batchSize?: number; mask?: boolean; seed?: number } = {}): Sequential {
  const layers = [
    new LSTM({ units: H, inputDim: F, returnSequences: opts.perStep ?? false, stateful: opts.stateful ?? false, batchSize: opts.batchSize }),
    new Dense({ units: 1 }),
  ];
  const m = new Sequential(opts.mask === false ? layers : [new Masking({ maskValue: -1 }), ...layers], { seed: opts.seed ?? 3 });
  m.compile({ optimizer: new SGD({ learningRate: 0.3 }), loss: "meanSquaredError" });
  return m;
}

/** x [B, T, F] from rows of steps, with `pad` steps of the mask value (-1) appended to row b. */
function padded(rows: number[][][], T: number): Tensor {
  const B = rows.length, out = new Float64Array(B * T * F).fill(-1);
  rows.forEach((r, b) => r.forEach((step, t) => step.forEach((v, f) => { out[(b * T + t) * F + f] = v; })));
  return ndarray(out, [B, T, F]) as Tensor;
}

const x3 = Array.from(randomNormal([3, 5, F], { seed: 5 }).data);
const row = (b: number, n: number): number[][] => Array.from({ length: n }, (_, t) => [x3[(b * 5 + t) * F]!, x3[(b * 5 + t) * F + 1]!]);

describe("Masking", () => {
  it("trailing padding changes nothing: each row predicts, and trains, as its unpadded sequence alone", () => {
    const m = model();
    const lengths = [5, 3, 1];
    const p = m.predict(padded(lengths.map((n, b) => row(b, n)), 5));
    lengths.forEach((n, b) => expect(p.data[b]).toBe(m.predict([row(b, n)]).data[0]));
    // One row of length 3 padded to 5 trains exactly as the same row unpadded.
    const a = model(), u = model();
    const ga = a.computeGradients(padded([row(1, 3)], 5), [[0.5]]), gu = u.computeGradients([row(1, 3)], [[0.5]]);
    expect(ga.loss).toBe(gu.loss);
    ga.grads.forEach((g, i) => expect(Array.from(g.data)).toEqual(Array.from(gu.grads[i]!.data)));
    // The padded steps' inputs get no gradient.
    expect(Array.from(ga.inputGrad.data.subarray(3 * F))).toEqual([0, 0, 0, 0]);
  });

  it("the state passes through masked steps: a stateful model carries its last kept step's state", () => {
    const m = model({ stateful: true, batchSize: 2 });
    m.predict(padded([row(0, 2), row(1, 4)], 5));
    // Row 0 kept 2 steps, row 1 kept 4: compare each with an unmasked model fed exactly those steps.
    const one = model({ stateful: true, batchSize: 1, mask: false }), other = model({ stateful: true, batchSize: 1, mask: false });
    one.setWeights(m.getWeights()); other.setWeights(m.getWeights());
    one.predict([row(0, 2)]); other.predict([row(1, 4)]);
    const st = m.getStates()[0]!;
    expect(Array.from(st.h.data.subarray(0, H))).toEqual(Array.from(one.getStates()[0]!.h.data));
    expect(Array.from(st.c!.data.subarray(H, 2 * H))).toEqual(Array.from(other.getStates()[0]!.c!.data));
  });

  it("before a row's first kept step the output is zeros, even over a carried state; a fully masked row outputs the head of zeros", () => {
    const m = model({ perStep: true, stateful: true, batchSize: 1 });
    m.predict([row(0, 3)]); // a carried, non-zero state
    expect(m.getStates()[0]!.h.data.some((v) => v !== 0)).toBe(true);
    const bias = m.getWeights()[4]!.data[0]!; // Dense(1) on zeros gives its bias
    const p = m.predict(padded([[[-1, -1], [-1, -1], ...row(1, 2)]], 4)); // two masked steps first
    expect([p.data[0], p.data[1]]).toEqual([bias, bias]);
    expect(p.data[2]).not.toBe(bias);
    const last = model({ stateful: true, batchSize: 1 });
    last.predict([row(0, 3)]);
    expect(last.predict(padded([[]], 3)).data[0]).toBe(last.getWeights()[4]!.data[0]);
  });

  it("per-step losses average over kept entries only", () => {
    const m = model({ perStep: true });
    const x = padded([row(0, 5), row(1, 2), row(2, 4)], 5);
    const y = randomNormal([3, 5, 1], { seed: 7 });
    const p = m.predict(x);
    const kept = [5, 2, 4];
    let s = 0, n = 0;
    kept.forEach((k, b) => { for (let t = 0; t < k; t++) { const d = p.data[b * 5 + t]! - y.data[b * 5 + t]!; s += d * d; n++; } });
    expect(Math.abs(m.testOnBatch(x, y).loss - s / n)).toBeLessThan(1e-15);
  });

  it("TruncatedBPTT(k, k) equals a stateful trainOnBatch loop over the windows (each window a call, as in Keras)", () => {
    const x = padded([row(0, 5), row(1, 3), [[-1, -1], ...row(2, 4)]], 6);
    const y = randomNormal([3, 6, 1], { seed: 8 });
    const a = model({ perStep: true, seed: 4 }), b = model({ perStep: true, stateful: true, batchSize: 3, seed: 4 });
    b.setWeights(a.getWeights());
    const r = new TruncatedBPTT(a, { windowLength: 3 }).trainSequence(x, y);
    const cut = (t: Tensor, t0: number, d: number) => {
      const out = new Float64Array(3 * 3 * d);
      for (let bb = 0; bb < 3; bb++) for (let t1 = 0; t1 < 3; t1++) for (let k = 0; k < d; k++) out[(bb * 3 + t1) * d + k] = t.data[(bb * 6 + t0 + t1) * d + k]!;
      return ndarray(out, [3, 3, d]) as Tensor;
    };
    const losses = [b.trainOnBatch(cut(x, 0, F), cut(y, 0, 1)).loss, b.trainOnBatch(cut(x, 3, F), cut(y, 3, 1)).loss];
    expect(r.losses).toEqual(losses);
    expect(Array.from(a.engine.params)).toEqual(Array.from(b.engine.params));
  });

  it("threads set: masked calls split across threads and equal one thread's (to rounding; test/parallel-masked.test.ts has the rest)", () => {
    const one = model({ perStep: true, seed: 9 }), two = model({ perStep: true, seed: 9 });
    setThreads(two, 2, { minFlops: 0 });
    live.push(two);
    const x = padded(Array.from({ length: 8 }, (_, b) => row(b % 3, 1 + (b % 5))), 5), y = randomNormal([8, 5, 1], { seed: 1 });
    const close = (a: number, e: number): void => expect(Math.abs(a - e)).toBeLessThanOrEqual(1e-12 * Math.abs(e));
    for (let s = 0; s < 2; s++) close(two.trainOnBatch(x, y).loss, one.trainOnBatch(x, y).loss);
    const p1 = one.predict(x).data;
    Array.from(two.predict(x).data).forEach((v, i) => close(v, p1[i]!));
    expect((two.engine.executor as ThreadPool).parallelCalls).toBe(3);
  });

  it("checkpoints, safetensors and TensorFlow.js keep the Masking layer; ONNX Runtime computes it on these end-padded rows", async () => {
    const m = model({ perStep: true });
    const x = padded([row(0, 5), row(1, 2)], 5);
    const want = Array.from(m.predict(x).data);
    for (const back of [decodeCheckpoint(encodeCheckpoint(m)), fromSafetensors(toSafetensors(m)), fromTfjs(toTfjs(m), { dtype: "float64" })]) {
      expect(back.masking?.maskValue).toBe(-1);
      Array.from(back.predict(x).data).forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-6));
    }
    await tf.setBackend("cpu");
    const tfModel = await tf.loadLayersModel(tf.io.fromMemory(toTfjs(m)));
    const p = (tfModel.predict(tf.tensor3d(Array.from(x.data), [2, 5, F])) as tf.Tensor).dataSync();
    // tfjs's masked RNN: the same outputs at kept steps (padded steps repeat the last output there too).
    want.forEach((v, i) => expect(Math.abs(p[i]! - v)).toBeLessThan(1e-5));
    // ONNX: the mask as the LSTM's sequence_lens, which is Keras's for rows padded at the end, as these are.
    const s = await ort.InferenceSession.create(toOnnx(m));
    const y = (await s.run({ x: new ort.Tensor("float32", Float32Array.from(x.data), [2, 5, F]) })).y!.data as Float32Array;
    want.forEach((v, i) => expect(Math.abs(y[i]! - v)).toBeLessThan(1e-5));
  });

  it("gradCheck agrees on a masked, stacked, per-step model: weights, dL/dx and dL/d(initial state)", () => {
    const m = new Sequential([
      new Masking({ maskValue: -1 }), new LSTM({ units: 3, inputDim: F, returnSequences: true }),
      new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 2, activation: "tanh" }),
    ], { seed: 6 });
    m.compile({ optimizer: "sgd", loss: "mse" });
    const x = padded([row(0, 5), [[-1, -1], ...row(1, 3)], row(2, 2)], 5);
    const r = gradCheck(m, x, randomNormal([3, 5, 2], { seed: 2 }));
    expect(r.maxRelativeError).toBeLessThan(1e-6);
  });

  it("is checked: first layer only, a finite mask value", () => {
    expect(() => new Sequential([new LSTM({ units: 2, inputDim: 2 }), new Masking(), new Dense({ units: 1 })])).toThrow(/layers\[1\]: a Masking layer must be the first layer/);
    expect(() => new Masking({ maskValue: NaN })).toThrow(/Masking maskValue: expected a finite number, got NaN/);
    expect(() => new Masking({ mask_value: 0 } as never)).toThrow(/did you mean "maskValue"/);
    expect(() => new Masking({ maskValue: null } as never)).toThrow(/Masking maskValue: expected a finite number, got null/);
    expect(new Masking({}).maskValue).toBe(0);
    expect(() => new Sequential([new Masking()])).toThrow(ValueError);
  });

  it("a checkpoint whose Masking has maskValue null or none is refused, not read as mask value 0", () => {
    const m = model();
    const json = JSON.parse(new TextDecoder().decode(encodeCheckpoint(m)).split("\n").slice(1).join("\n"));
    expect(json.config.masking).toEqual({ maskValue: -1 });
    const withMasking = (masking: unknown) => ({ ...json, config: { ...json.config, masking } });
    expect(() => checkpointFromJSON(withMasking({ maskValue: null }))).toThrow(/config\.masking: .*Masking maskValue: expected a finite number, got null/);
    expect(() => checkpointFromJSON(withMasking({}))).toThrow(/config\.masking\.maskValue: missing/);
    expect(checkpointFromJSON(withMasking({ maskValue: -1 })).masking?.maskValue).toBe(-1);
  });
});
