/**
 * Keras's `go_backwards` and `zero_output_for_mask` on the LSTM (Keras 3, keras/src/layers/rnn/rnn.py and
 * keras/src/backend/*\/rnn.py): a backwards layer reads its steps last to first and returns its outputs in that
 * reading order, while the mask it passes on is the mask it was given (`compute_mask` returns it unreversed);
 * zeroOutputForMask writes zeros at masked steps (and a last output of zeros when the last step read is masked).
 *
 * Checked by identities (a backwards layer is a forward one on the reversed input), by gradCheck on both backends,
 * against TensorFlow.js running the same model (tfjs-layers' rnn() reverses inputs and mask the same way and passes
 * the mask on unreversed), against ONNX Runtime (the LSTM's "reverse" direction), through checkpoints and threads.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import ndarray from "ndarray";
import {
  Sequential, LSTM, Dense, Masking, TruncatedBPTT, gradCheck, randomNormal, toTfjs, fromTfjs, toOnnx, toSafetensors, fromSafetensors,
  checkpointToJSON, checkpointFromJSON, encodeCheckpoint, decodeCheckpoint, setThreads, ValueError, CheckpointError, type Tensor,
} from "../src/node/index.js";

/** x [B, T, F] with its steps in reverse order. */
function reversed(x: Tensor): Tensor {
  const [B, T, F] = x.shape as [number, number, number];
  const out = new Float64Array(B * T * F);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out.set(x.data.subarray((b * T + t) * F, (b * T + t + 1) * F), (b * T + T - 1 - t) * F);
  return ndarray(out, [B, T, F]) as Tensor;
}

/** x with every feature of the listed (row, step) pairs set to 0 (Masking's default value). */
function masked(x: Tensor, at: [number, number][]): Tensor {
  const [, T, F] = x.shape as [number, number, number];
  const d = Float64Array.from(x.data);
  for (const [b, t] of at) d.fill(0, (b * T + t) * F, (b * T + t + 1) * F);
  return ndarray(d, x.shape.slice()) as Tensor;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]! - b[k]!));
  return m;
}

/** x as float32-representable values, so tfjs and ONNX Runtime see what predict sees. */
function f32(x: Tensor): Tensor {
  return ndarray(Float64Array.from(Float32Array.from(x.data)), x.shape.slice()) as Tensor;
}

const MASK: [number, number][] = [[0, 0], [0, 1], [1, 4], [1, 2], [2, 5], [2, 3]];

beforeAll(async () => { await tf.setBackend("cpu"); });

describe("goBackwards", () => {
  it("is a forward LSTM on the reversed input: the same outputs bit for bit, in reading order", () => {
    const x = randomNormal([3, 6, 2], { seed: 1 });
    for (const returnSequences of [true, false]) {
      const back = new Sequential([new LSTM({ units: 4, inputDim: 2, goBackwards: true, returnSequences })], { seed: 2 });
      const fwd = new Sequential([new LSTM({ units: 4, inputDim: 2, returnSequences })], { seed: 3 });
      fwd.setWeights(back.getWeights());
      expect(Array.from(back.predict(x).data)).toEqual(Array.from(fwd.predict(reversed(x)).data));
      // …and not what the forward layer gives on x itself (the option does something).
      expect(maxAbs(back.predict(x).data, fwd.predict(x).data)).toBeGreaterThan(1e-3);
    }
  });

  it("dL/dx comes back in the input's order: the reversed forward model's, reversed", () => {
    const x = randomNormal([2, 5, 3], { seed: 4 }), y = randomNormal([2, 5, 1], { seed: 5 });
    const back = new Sequential([new LSTM({ units: 3, inputDim: 3, goBackwards: true, returnSequences: true }), new Dense({ units: 1 })], { seed: 6 });
    const fwd = new Sequential([new LSTM({ units: 3, inputDim: 3, returnSequences: true }), new Dense({ units: 1 })], { seed: 7 });
    fwd.setWeights(back.getWeights());
    for (const m of [back, fwd]) m.compile({ optimizer: "sgd", loss: "mse" });
    // The labels follow the output, which is in reading order for both.
    const gb = back.computeGradients(x, y), gf = fwd.computeGradients(reversed(x), y);
    expect(gb.loss).toBe(gf.loss);
    expect(Array.from(gb.grads.flatMap((t) => Array.from(t.data)))).toEqual(Array.from(gf.grads.flatMap((t) => Array.from(t.data))));
    expect(Array.from(gb.inputGrad.data)).toEqual(Array.from(reversed(gf.inputGrad).data));
  });

  for (const backend of ["js", "wasm"] as const) {
    it(`gradCheck: backwards under a forward layer, with Masking and a Dense between, per step and last step (${backend})`, () => {
      const x = masked(randomNormal([3, 6, 2], { seed: 8 }), MASK);
      for (const perStep of [true, false]) {
        const m = new Sequential([
          new Masking(), new LSTM({ units: 4, inputDim: 2, goBackwards: true, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }),
          new LSTM({ units: 3, returnSequences: perStep, zeroOutputForMask: perStep }), new Dense({ units: 1, activation: "sigmoid" }),
        ], { seed: 9, backend });
        m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
        const y = randomNormal(perStep ? [3, 6, 1] : [3, 1], { seed: 10 });
        for (let k = 0; k < y.data.length; k++) y.data[k] = y.data[k]! > 0 ? 1 : 0;
        const r = gradCheck(m, x, y, { samples: 60 });
        expect(r.maxRelativeError, JSON.stringify(r.perWeight)).toBeLessThan(1e-6);
      }
    });
  }

  it("a stateful backwards layer carries the state it ended on: chunks equal the forward layer on each chunk reversed", () => {
    const B = 2, F = 2;
    const back = new Sequential([new LSTM({ units: 3, inputDim: F, goBackwards: true, stateful: true, batchSize: B, returnSequences: true })], { seed: 11 });
    const fwd = new Sequential([new LSTM({ units: 3, inputDim: F, stateful: true, batchSize: B, returnSequences: true })], { seed: 12 });
    fwd.setWeights(back.getWeights());
    for (let call = 0; call < 3; call++) {
      const x = randomNormal([B, 4, F], { seed: 20 + call });
      expect(Array.from(back.predict(x).data)).toEqual(Array.from(fwd.predict(reversed(x)).data));
    }
    expect(Array.from(back.getStates()[0]!.c!.data)).toEqual(Array.from(fwd.getStates()[0]!.c!.data));
  });

  it("TruncatedBPTT refuses it, naming the layer and why", () => {
    const m = new Sequential([new Masking(), new LSTM({ units: 2, inputDim: 1, returnSequences: true }), new LSTM({ units: 2, goBackwards: true }), new Dense({ units: 1 })]);
    m.compile({ optimizer: "sgd", loss: "mse" });
    expect(() => new TruncatedBPTT(m, { windowLength: 2 })).toThrow(ValueError);
    expect(() => new TruncatedBPTT(m, { windowLength: 2 })).toThrow(/TruncatedBPTT model: layers\[2\] reads its sequence backwards \(goBackwards\), which needs the end of the sequence before its start/);
    expect(() => new LSTM({ units: 2, goBackwards: 1 as never })).toThrow(/LSTM goBackwards: expected true or false, got 1/);
    expect(() => new LSTM({ units: 2, zeroOutputForMask: "yes" as never })).toThrow(/LSTM zeroOutputForMask: expected true or false, got "yes"/);
  });

  it("two and three threads give one thread's results", () => {
    const x = randomNormal([7, 5, 2], { seed: 13 }), y = randomNormal([7, 5, 2], { seed: 14 });
    const make = (threads: number): Sequential => {
      const m = new Sequential([new LSTM({ units: 4, inputDim: 2, goBackwards: true, returnSequences: true }), new Dense({ units: 2 })], { seed: 15 });
      if (threads > 1) setThreads(m, threads, { minFlops: 0 });
      m.compile({ optimizer: "adam", loss: "mse" });
      return m;
    };
    const one = make(1);
    for (const threads of [2, 3, 4]) {
      const many = make(threads);
      const a = one.computeGradients(x, y), b = many.computeGradients(x, y);
      expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-14);
      expect(maxAbs(a.inputGrad.data, b.inputGrad.data)).toBeLessThan(1e-14);
      expect(maxAbs(a.grads.flatMap((t) => Array.from(t.data)), b.grads.flatMap((t) => Array.from(t.data)))).toBeLessThan(1e-13);
      expect(((many.engine.executor as unknown) as { parallelCalls: number }).parallelCalls).toBeGreaterThan(0);
      many.dispose();
    }
  });
});

describe("zeroOutputForMask", () => {
  it("zeros at masked steps, or a last output of zeros when the last step is masked; no effect without a mask", () => {
    const x = masked(randomNormal([3, 6, 2], { seed: 16 }), [...MASK, [0, 5]]);
    const seq = new Sequential([new Masking(), new LSTM({ units: 3, inputDim: 2, returnSequences: true, zeroOutputForMask: true })], { seed: 17 });
    const prev = new Sequential([new Masking(), new LSTM({ units: 3, inputDim: 2, returnSequences: true })], { seed: 18 });
    prev.setWeights(seq.getWeights());
    const p = seq.predict(x), q = prev.predict(x);
    const isMasked = (b: number, t: number) => [...MASK, [0, 5]].some(([mb, mt]) => mb === b && mt === t);
    for (let b = 0; b < 3; b++) {
      for (let t = 0; t < 6; t++) {
        const row = Array.from(p.data.slice((b * 6 + t) * 3, (b * 6 + t + 1) * 3)), other = Array.from(q.data.slice((b * 6 + t) * 3, (b * 6 + t + 1) * 3));
        if (isMasked(b, t)) expect(row).toEqual([0, 0, 0]);
        else expect(row).toEqual(other); // kept steps are the same either way
      }
    }
    // Row 1's step 2 is masked after a kept step: the default repeats the previous output there, this gives zeros.
    expect(q.data.slice((1 * 6 + 2) * 3, (1 * 6 + 3) * 3).some((v) => v !== 0)).toBe(true);
    const last = new Sequential([new Masking(), new LSTM({ units: 3, inputDim: 2, zeroOutputForMask: true })], { seed: 19 });
    last.setWeights(seq.getWeights());
    const l = last.predict(x);
    expect(Array.from(l.data.slice(0, 3))).toEqual([0, 0, 0]); // row 0's last step is masked
    expect(Array.from(l.data.slice(3, 6))).toEqual(Array.from(q.data.slice((1 * 6 + 5) * 3, (1 * 6 + 6) * 3)));
    const noMask = new Sequential([new LSTM({ units: 3, inputDim: 2, returnSequences: true, zeroOutputForMask: true })], { seed: 20 });
    const plain = new Sequential([new LSTM({ units: 3, inputDim: 2, returnSequences: true })], { seed: 21 });
    plain.setWeights(noMask.getWeights());
    expect(Array.from(noMask.predict(x).data)).toEqual(Array.from(plain.predict(x).data));
  });
});

describe("they travel", () => {
  it("to TensorFlow.js: our export predicts in tfjs what predict gives, with Masking (the mask passed on unreversed)", async () => {
    const x = f32(masked(randomNormal([3, 6, 2], { seed: 22 }), MASK));
    for (const returnSequences of [true, false]) {
      const m = new Sequential([
        new Masking(), new LSTM({ units: 4, inputDim: 2, goBackwards: true, returnSequences: true }),
        new LSTM({ units: 3, returnSequences }), new Dense({ units: 2 }),
      ], { seed: 23 });
      const tfModel = await tf.loadLayersModel(tf.io.fromMemory(toTfjs(m)));
      const p = (tfModel.predict(tf.tensor3d(Array.from(x.data), [3, 6, 2])) as tf.Tensor).dataSync();
      expect(maxAbs(p, m.predict(x).data)).toBeLessThan(1e-5);
      tfModel.dispose();
    }
    const zeroing = new Sequential([new Masking(), new LSTM({ units: 2, inputDim: 2, zeroOutputForMask: true })]);
    expect(() => toTfjs(zeroing)).toThrow(/layers\[1\] has zeroOutputForMask, which TensorFlow.js's RNN does not have/);
  });

  it("from TensorFlow.js: a tfjs model with go_backwards loads and predicts what tfjs predicts", async () => {
    const t = tf.sequential();
    t.add(tf.layers.lstm({ units: 4, inputShape: [null, 3], goBackwards: true, returnSequences: true }));
    t.add(tf.layers.dense({ units: 2, activation: "tanh" }));
    let art: tf.io.ModelArtifacts | undefined;
    await t.save(tf.io.withSaveHandler(async (a) => { art = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }; }));
    const m = fromTfjs(art! as never);
    expect((m.layers[0] as LSTM).goBackwards).toBe(true);
    const x = f32(randomNormal([2, 5, 3], { seed: 24 }));
    const want = (t.predict(tf.tensor3d(Array.from(x.data), [2, 5, 3])) as tf.Tensor).dataSync();
    expect(maxAbs(m.predict(x).data, want)).toBeLessThan(1e-5);
    t.dispose();
  });

  it("to ONNX Runtime: the reverse direction, the sequence back in reading order", async () => {
    const x = f32(randomNormal([3, 7, 2], { seed: 25 }));
    for (const returnSequences of [true, false]) {
      const m = new Sequential([new LSTM({ units: 4, inputDim: 2, goBackwards: true, returnSequences }), new Dense({ units: 2 })], { seed: 26 });
      const s = await ort.InferenceSession.create(toOnnx(m));
      const y = (await s.run({ x: new ort.Tensor("float32", Float32Array.from(x.data), [3, 7, 2]) })).y!;
      const want = m.predict(x);
      expect(y.dims).toEqual(want.shape);
      expect(maxAbs(y.data as Float32Array, want.data)).toBeLessThan(1e-5);
      await s.release();
    }
  });

  it("through checkpoints (format version 3, refused by name in an older version) and safetensors' metadata", () => {
    const m = new Sequential([new Masking(), new LSTM({ units: 3, inputDim: 2, goBackwards: true, returnSequences: true, zeroOutputForMask: true }), new Dense({ units: 1 })], { seed: 27 });
    m.compile({ optimizer: "adam", loss: "mse" });
    const x = masked(randomNormal([2, 5, 2], { seed: 28 }), [[0, 1], [1, 4]]), y = randomNormal([2, 5, 1], { seed: 29 });
    m.trainOnBatch(x, y);
    const json = checkpointToJSON(m);
    expect(json.version).toBe(3);
    expect(json.config.layers[0]).toMatchObject({ goBackwards: true, zeroOutputForMask: true });
    for (const copy of [checkpointFromJSON(JSON.parse(JSON.stringify(json))), decodeCheckpoint(encodeCheckpoint(m)), fromSafetensors(toSafetensors(m))]) {
      expect(Array.from(copy.predict(x).data)).toEqual(Array.from(m.predict(x).data));
    }
    const resumed = checkpointFromJSON(JSON.parse(JSON.stringify(json)));
    expect(resumed.trainOnBatch(x, y).loss).toBe(m.trainOnBatch(x, y).loss);
    const old = JSON.parse(JSON.stringify(json));
    old.version = 2;
    expect(() => checkpointFromJSON(old)).toThrow(CheckpointError);
    expect(() => checkpointFromJSON(old)).toThrow(/a version-2 checkpoint has no goBackwards \(it came with version 3\)/);
    // A model without either option is still written as before.
    expect(checkpointToJSON(new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })])).version).toBe(1);
  });
});

afterAll(() => { tf.disposeVariables(); });
