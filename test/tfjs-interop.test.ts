/**
 * The TensorFlow.js Layers format against the real @tensorflow/tfjs (CPU backend): our export loads into
 * tfjs and predicts what we predict; models built and trained in tfjs load into longshort and predict what
 * tfjs predicts; converter-made model.json folders (one real, see test/fixtures/tfjs/README.md) load in
 * both; the LSTM golden values of tfjs-layers' own tests hold; bad files fail with FormatError.
 *
 * Agreement is |ours - tfjs| <= 1e-5·(1 + |tfjs|) elementwise; the largest differences seen are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import {
  Sequential, LSTM, Dense, SGD, LongshortError, FormatError, ValueError, StateError, type DType,
} from "../src/index.js";
import {
  toTfjs, fromTfjs, tfjsModelJSON, tfjsArtifactsFromModelJSON, type TfjsArtifactsInput, type TfjsModelJSON,
} from "../src/interop/tfjs.js";
import { makeRng } from "./helpers/gradcheck.js";

// ---------------------------------------------------------------------------------------------------
// Helpers

/** A seeded uniform stream in [-1, 1), for data and weights. */
function rng(seed: number): () => number {
  const r = makeRng(`tfjs/${seed}`);
  return () => 2 * r.uniform() - 1;
}

function randomX(seed: number, N: number, T: number, F: number): number[][][] {
  const r = rng(seed);
  return Array.from({ length: N }, () => Array.from({ length: T }, () => Array.from({ length: F }, () => r())));
}

/** tfjs's save to memory. */
async function saveTfjs(m: tf.LayersModel): Promise<tf.io.ModelArtifacts> {
  let out: tf.io.ModelArtifacts | undefined;
  await m.save(tf.io.withSaveHandler(async (a) => {
    out = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
  return out!;
}

async function loadTfjs(a: TfjsArtifactsInput | tf.io.ModelArtifacts): Promise<tf.LayersModel> {
  return tf.loadLayersModel(tf.io.fromMemory(a as tf.io.ModelArtifacts));
}

function tfPredict(m: tf.LayersModel, x: number[][][]): Float32Array {
  return tf.tidy(() => (m.predict(tf.tensor3d(x)) as tf.Tensor).dataSync() as Float32Array);
}

const maxDiffs: Record<string, number> = {};

/** |a - b| <= 1e-5·(1 + |b|) everywhere; records the largest |a - b| under `label`. */
function expectAgree(label: string, ours: ArrayLike<number>, theirs: ArrayLike<number>): void {
  expect(ours.length, `${label}: length`).toBe(theirs.length);
  let worst = 0;
  for (let k = 0; k < theirs.length; k++) {
    const d = Math.abs(ours[k]! - theirs[k]!);
    worst = Math.max(worst, d);
    if (!(d <= 1e-5 * (1 + Math.abs(theirs[k]!)))) {
      expect.fail(`${label}: index ${k}: ours ${ours[k]} vs tfjs ${theirs[k]} (|diff| ${d})`);
    }
  }
  maxDiffs[label] = worst;
}

function expectFormatError(f: () => unknown, ...parts: (string | RegExp)[]): FormatError {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a FormatError mentioning ${parts.join(", ")}`).toBeInstanceOf(FormatError);
  for (const p of parts) expect((err as Error).message).toMatch(typeof p === "string" ? new RegExp(p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : p);
  return err as FormatError;
}

/** A deep copy of artifacts (topology, specs and bytes), so that tests can mutate freely. */
function cloneArtifacts(a: TfjsArtifactsInput | tf.io.ModelArtifacts): { modelTopology: any; weightSpecs: any[]; weightData: any } {
  const wd = a.weightData as ArrayBuffer;
  return {
    modelTopology: structuredClone(a.modelTopology as object),
    weightSpecs: structuredClone(a.weightSpecs as object[]),
    weightData: wd.slice(0),
  };
}

/** An artifacts' JSON parts and bytes as plain values, to check that a failed import changed nothing. */
function snapshot(a: TfjsArtifactsInput): unknown {
  return { t: JSON.stringify(a.modelTopology), s: JSON.stringify(a.weightSpecs), d: Array.from(new Uint8Array(a.weightData as ArrayBuffer)) };
}

beforeAll(async () => {
  tf.enableProdMode(); // no "use the Node backend" banner, no debug checks
  await tf.setBackend("cpu");
});

afterAll(() => {
  const lines = Object.entries(maxDiffs).map(([k, v]) => `  ${v.toExponential(2)}  ${k}`);
  console.info(`largest |longshort - tfjs| per comparison:\n${lines.join("\n")}`);
});

// ---------------------------------------------------------------------------------------------------
// Export

interface ExportCase {
  label: string;
  build: () => Sequential;
  N: number;
  T: number;
}

const F = 3;
const exportCases: ExportCase[] = [
  {
    label: "single LSTM + sigmoid head",
    build: () => new Sequential([new LSTM({ units: 6, inputDim: F }), new Dense({ units: 1, activation: "sigmoid" })], { dtype: "float32", seed: 1 }),
    N: 5, T: 7,
  },
  {
    label: "stacked LSTMs + 2 Dense",
    build: () => new Sequential([
      new LSTM({ units: 5, inputDim: F, returnSequences: true }),
      new LSTM({ units: 4 }),
      new Dense({ units: 3, activation: "relu" }),
      new Dense({ units: 2, activation: "tanh" }),
    ], { dtype: "float32", seed: 2 }),
    N: 4, T: 6,
  },
  {
    label: "per-step model",
    build: () => new Sequential([
      new LSTM({ units: 4, inputDim: F, returnSequences: true }),
      new Dense({ units: 3, activation: "tanh" }),
      new Dense({ units: 2 }),
    ], { dtype: "float32", seed: 3 }),
    N: 3, T: 5,
  },
  {
    label: "hardSigmoid",
    build: () => new Sequential([
      new LSTM({ units: 6, inputDim: F, recurrentActivation: "hardSigmoid", returnSequences: true }),
      new LSTM({ units: 3, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 1, activation: "sigmoid" }),
    ], { dtype: "float32", seed: 4 }),
    N: 4, T: 8,
  },
  {
    label: "useBias false",
    build: () => new Sequential([
      new LSTM({ units: 5, inputDim: F, useBias: false }),
      new Dense({ units: 2, useBias: false }),
    ], { dtype: "float32", seed: 5 }),
    N: 3, T: 4,
  },
  {
    label: "float64 model",
    build: () => new Sequential([
      new LSTM({ units: 7, inputDim: F, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 2, activation: "sigmoid" }),
    ], { dtype: "float64", seed: 6 }),
    N: 4, T: 9,
  },
  {
    label: "stateful, batch size 2",
    build: () => new Sequential([
      new LSTM({ units: 4, inputDim: F, stateful: true, batchSize: 2 }),
      new Dense({ units: 1 }),
    ], { dtype: "float32", seed: 7 }),
    N: 2, T: 5,
  },
];

/** Bias weights are zero (or one) after initialisation: spread every weight so that a swap would show. */
function perturb(model: Sequential, seed: number): void {
  const r = rng(seed);
  model.setWeights(model.getWeights().map((w) => ({ ...w, data: w.data.map((v) => v + 0.3 * r()) }) as typeof w));
}

describe("toTfjs: tf.loadLayersModel(tf.io.fromMemory(artifacts)) predicts what we predict", () => {
  for (const c of exportCases) {
    it(c.label, async () => {
      const model = c.build();
      perturb(model, 100);
      const artifacts = toTfjs(model);
      const tfModel = await loadTfjs(artifacts);
      const x = randomX(11, c.N, c.T, F);
      expectAgree(`export: ${c.label}`, model.predict(x).data, tfPredict(tfModel, x));
      if (model.stateful) { // both carry the state into the next call
        const x2 = randomX(12, c.N, c.T, F);
        expectAgree(`export: ${c.label} (2nd call)`, model.predict(x2).data, tfPredict(tfModel, x2));
      }
      // What tfjs writes back for the loaded model is what we wrote (up to its own layer names).
      const again = await saveTfjs(tfModel);
      const ours = (artifacts.modelTopology as any).config.layers;
      const theirs = (again.modelTopology as any).config.layers;
      expect(theirs.map((l: any) => l.class_name)).toEqual(ours.map((l: any) => l.class_name));
      ours.forEach((l: any, i: number) => {
        for (const [k, v] of Object.entries(l.config)) {
          if (["kernel_initializer", "recurrent_initializer", "bias_initializer", "implementation", "unit_forget_bias"].includes(k)) continue;
          expect(theirs[i].config[k], `layers[${i}].config.${k}`).toEqual(v);
        }
      });
      expect(again.weightSpecs!.map((s) => s.name)).toEqual(artifacts.weightSpecs.map((s) => s.name));
      tfModel.dispose();
    });
  }

  it("writes the topology's header fields as tfjs does", () => {
    const a = toTfjs(exportCases[0]!.build());
    expect(a.format).toBe("layers-model");
    const t = a.modelTopology as any;
    expect(t.class_name).toBe("Sequential");
    expect(t.backend).toBe("tensor_flow.js");
    expect(t.keras_version).toBe(`tfjs-layers ${JSON.parse(readFileSync(new URL("../node_modules/@tensorflow/tfjs-layers/package.json", import.meta.url), "utf8")).version}`);
    expect(t.config.layers[0].config.batch_input_shape).toEqual([null, null, F]);
    expect(a.weightSpecs.map((s) => s.name)).toEqual(["lstm/kernel", "lstm/recurrent_kernel", "lstm/bias", "dense/kernel", "dense/bias"]);
    expect(a.weightData.byteLength).toBe(4 * (F * 24 + 6 * 24 + 24 + 6 + 1));
  });

  it("refuses what it cannot write, leaving the model untouched", () => {
    const unbuilt = new Sequential([new LSTM({ units: 3 }), new Dense({ units: 1 })], { seed: 1 });
    expect(() => toTfjs(unbuilt)).toThrow(StateError);
    const stateful = new Sequential([new LSTM({ units: 3, inputDim: 2, stateful: true }), new Dense({ units: 1 })], { seed: 1 });
    expect(() => toTfjs(stateful)).toThrow(/setBatchSize/);
    expect(stateful.batchSize).toBeUndefined();
    expect(() => toTfjs({} as Sequential)).toThrow(ValueError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Import of tfjs-built, tfjs-trained models

async function fitBriefly(m: tf.Sequential, x: number[][][], y: number[][] | number[][][], loss: string): Promise<void> {
  m.compile({ optimizer: tf.train.adam(0.05), loss });
  const xs = tf.tensor3d(x);
  const ys = Array.isArray(y[0]![0]) ? tf.tensor3d(y as number[][][]) : tf.tensor2d(y as number[][]);
  await m.fit(xs, ys, { epochs: 3, batchSize: 8, verbose: 0 });
  xs.dispose();
  ys.dispose();
}

function labels(seed: number, N: number, D: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: N }, () => Array.from({ length: D }, () => (r() > 0 ? 1 : 0)));
}

describe("fromTfjs: models built and trained in tfjs predict what tfjs predicts", () => {
  const N = 16, T = 6, Fin = 3;
  const x = randomX(21, N, T, Fin);
  const xt = randomX(22, 5, 9, Fin); // other sequence length: LSTMs take any

  it("LSTM with tfjs's default recurrentActivation (hardSigmoid) + sigmoid head", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 6, inputShape: [null, Fin] }));
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    await fitBriefly(m, x, labels(23, N, 1), "binaryCrossentropy");
    const model = fromTfjs(await saveTfjs(m));
    const lstm = model.layers[0] as LSTM;
    expect(lstm.recurrentActivation).toBe("hardSigmoid");
    expect(model.dtype).toBe("float32");
    expectAgree("import: tfjs default (hardSigmoid)", model.predict(xt).data, tfPredict(m, xt));
    m.dispose();
  });

  it("LSTM with recurrentActivation 'sigmoid' + relu and linear Dense", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 5, recurrentActivation: "sigmoid", inputShape: [T, Fin] }));
    m.add(tf.layers.dense({ units: 4, activation: "relu" }));
    m.add(tf.layers.dense({ units: 2 }));
    await fitBriefly(m, x, labels(24, N, 2), "meanSquaredError");
    const model = fromTfjs(await saveTfjs(m), { dtype: "float64" });
    expect((model.layers[0] as LSTM).recurrentActivation).toBe("sigmoid");
    expect(model.dtype).toBe("float64");
    expectAgree("import: sigmoid, relu + linear (float64)", model.predict(x).data, tfPredict(m, x));
    m.dispose();
  });

  it("Dense with useBias false, LSTM with useBias false", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 4, useBias: false, inputShape: [null, Fin] }));
    m.add(tf.layers.dense({ units: 1, useBias: false, activation: "tanh" }));
    await fitBriefly(m, x, labels(25, N, 1), "meanSquaredError");
    const model = fromTfjs(await saveTfjs(m));
    expect((model.layers[0] as LSTM).useBias).toBe(false);
    expect((model.layers[1] as Dense).useBias).toBe(false);
    expectAgree("import: useBias false", model.predict(xt).data, tfPredict(m, xt));
    m.dispose();
  });

  it("stacked per-step model with a TimeDistributed(Dense) head", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 5, returnSequences: true, inputShape: [null, Fin] }));
    m.add(tf.layers.lstm({ units: 4, returnSequences: true, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 3, activation: "tanh" }));
    m.add(tf.layers.timeDistributed({ layer: tf.layers.dense({ units: 1, activation: "sigmoid" }) }));
    const r = rng(26);
    const y = Array.from({ length: N }, () => Array.from({ length: T }, () => [r() > 0 ? 1 : 0]));
    await fitBriefly(m, x, y, "binaryCrossentropy");
    const model = fromTfjs(await saveTfjs(m));
    expect(model.perStep).toBe(true);
    expectAgree("import: stacked per-step, TimeDistributed", model.predict(xt).data, tfPredict(m, xt));
    m.dispose();
  });

  it("stateful model: batch size from batch_input_shape, state carried like tfjs", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 4, stateful: true, batchInputShape: [2, null, Fin] }));
    m.add(tf.layers.dense({ units: 2 }));
    const model = fromTfjs(await saveTfjs(m));
    expect(model.stateful).toBe(true);
    expect(model.batchSize).toBe(2);
    for (const seed of [31, 32, 33]) {
      const xs = randomX(seed, 2, 4, Fin);
      expectAgree(`import: stateful (call ${seed - 30})`, model.predict(xs).data, tfPredict(m, xs));
    }
    m.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// Round trip

describe("toTfjs → fromTfjs round trip", () => {
  it("float32: bit-exact weights and the same configuration", () => {
    for (const c of exportCases) {
      const model = c.build();
      if (model.dtype !== "float32") continue;
      perturb(model, 200);
      const back = fromTfjs(toTfjs(model), { seed: 9 });
      expect(back.dtype).toBe("float32");
      back.getWeights().forEach((w, i) => {
        const a = model.getWeights()[i]!;
        expect(w.shape, c.label).toEqual(a.shape);
        expect(Array.from(w.data), c.label).toEqual(Array.from(a.data));
      });
      const cfg = (m: Sequential) => m.layers.map((l) => l instanceof LSTM
        ? { kind: l.kind, units: l.units, rs: l.returnSequences, st: l.stateful, bs: l.batchSize, ra: l.recurrentActivation, ub: l.useBias, ufb: l.unitForgetBias }
        : { kind: l.kind, units: l.units, act: (l as Dense).activation, ub: (l as Dense).useBias });
      expect(cfg(back), c.label).toEqual(cfg(model));
      expect(back.inputDim).toBe(model.inputDim);
      expect(back.seed).toBe("9");
    }
  });

  it("float64: weights rounded to float32 once", () => {
    const model = exportCases.find((c) => c.label === "float64 model")!.build();
    perturb(model, 201);
    const back = fromTfjs(toTfjs(model), { dtype: "float64" });
    back.getWeights().forEach((w, i) => expect(Array.from(w.data)).toEqual(Array.from(model.getWeights()[i]!.data, Math.fround)));
  });

  it("model.json + one weight file (tfjsModelJSON) and back", () => {
    const model = exportCases[1]!.build();
    const a = toTfjs(model);
    const json = JSON.parse(JSON.stringify(tfjsModelJSON(a, "w.bin"))) as TfjsModelJSON;
    expect(json.weightsManifest).toEqual([{ paths: ["w.bin"], weights: a.weightSpecs }]);
    expect(json.format).toBe("layers-model");
    const back = fromTfjs(tfjsArtifactsFromModelJSON(JSON.stringify(json), new Map([["w.bin", new Uint8Array(a.weightData)]])));
    expect(Array.from(back.predict(randomX(1, 2, 3, F)).data)).toEqual(Array.from(model.predict(randomX(1, 2, 3, F)).data));
    expect(() => tfjsModelJSON(a, "../w.bin")).toThrow(ValueError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Golden values of TensorFlow.js's own LSTM tests

describe("golden values of tfjs-layers' LSTM tests (Keras-computed, hard sigmoid, all weights 1)", () => {
  // Source: repository tensorflow/tfjs, file tfjs-layers/src/layers/recurrent_test.ts, describe('LSTM Tensor'):
  // units 5, batch 4, input size 2, every kernel, recurrent kernel and bias entry 1, inputs all 1, Keras's
  // (then default) hard_sigmoid. Values obtained there with Keras / TensorFlow 1.5:
  //   h after step 1: 0.7595095, after step 2: 0.96367633, c after step 2: 1.99505234;
  //   stateful, 3 steps per call: 0.995 after the 1st call, 0.99998766 after the 2nd;
  //   'BPTT' (LSTM(1) zeros, no bias, Dense(1) ones, SGD(1), MSE, 2 epochs on ones): the weights below;
  //   'stateful BPTT' (stateful LSTM(5) ones + Dense(1) ones, SGD 0.01, MSE, 8 samples): loss 5.8377.
  // (With a true sigmoid h after step 1 would be tanh(σ(3)·tanh(3)) ≈ 0.7038.)
  const ones = (shape: number[]): any => shape.length === 1
    ? new Array(shape[0]).fill(1)
    : Array.from({ length: shape[0]! }, () => ones(shape.slice(1)));
  const eye = (n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
  const near = (a: number, b: number, tol: number) => expect(Math.abs(a - b), `${a} vs ${b}`).toBeLessThanOrEqual(tol);

  for (const dtype of ["float64", "float32"] as DType[]) {
    it(`h and c over two steps (${dtype})`, () => {
      // An identity Dense head without bias makes the output h itself.
      const m = new Sequential([
        new LSTM({ units: 5, inputDim: 2, returnSequences: true, recurrentActivation: "hardSigmoid" }),
        new Dense({ units: 5, useBias: false }),
      ], { dtype, seed: 1 });
      m.setWeights([ones([2, 20]), ones([5, 20]), ones([20]), eye(5)]);
      const y = m.predict(ones([4, 2, 2]));
      const c = m.getStates()[0]!.c;
      for (let b = 0; b < 4; b++) {
        for (let u = 0; u < 5; u++) {
          near(y.get(b, 0, u), 0.7595095, 1e-7);
          near(y.get(b, 1, u), 0.96367633, 1e-7);
          near(c!.get(b, u), 1.99505234, 1e-7);
        }
      }
      // And the true sigmoid gives the other number.
      const s = new Sequential([new LSTM({ units: 5, inputDim: 2 }), new Dense({ units: 5, useBias: false })], { dtype, seed: 1 });
      s.setWeights([ones([2, 20]), ones([5, 20]), ones([20]), eye(5)]);
      near(s.predict(ones([1, 1, 2])).get(0, 0), 0.7038, 1e-4);
    });

    it(`stateful forward, state carried between calls (${dtype})`, () => {
      const m = new Sequential([
        new LSTM({ units: 5, inputDim: 2, stateful: true, batchSize: 4, recurrentActivation: "hardSigmoid" }),
        new Dense({ units: 5, useBias: false }),
      ], { dtype, seed: 1 });
      m.setWeights([ones([2, 20]), ones([5, 20]), ones([20]), eye(5)]);
      for (let round = 0; round < 2; round++) { // resetStates starts over, as in the tfjs test
        const y1 = m.predict(ones([4, 3, 2]));
        const y2 = m.predict(ones([4, 3, 2]));
        for (let k = 0; k < 20; k++) {
          near(y1.data[k]!, 0.995, 5e-4); // the golden value is given to 3 decimals
          near(y2.data[k]!, 0.99998766, 1e-7);
        }
        m.resetStates();
      }
    });

    it(`BPTT: the weights after 2 epochs of SGD (${dtype})`, async () => {
      const m = new Sequential([
        new LSTM({ units: 1, inputDim: 4, useBias: false, recurrentActivation: "hardSigmoid" }),
        new Dense({ units: 1, useBias: false }),
      ], { dtype, seed: 1 });
      m.setWeights([ones([4, 4]).map((r: number[]) => r.map(() => 0)), [[0, 0, 0, 0]], [[1]]]);
      m.compile({ optimizer: new SGD({ learningRate: 1 }), loss: "meanSquaredError" });
      await m.fit(ones([5, 3, 4]), ones([5, 1]), { epochs: 2, verbose: 0 });
      const [k, rk, d] = m.getWeights();
      const row = [0.11455188, 0.06545822, 0.8760446, 0.18237013];
      for (let i = 0; i < 16; i++) near(k!.data[i]!, row[i % 4]!, 1e-7);
      [0.02831176, 0.01934617, 0.00025817, 0.05784169].forEach((v, i) => near(rk!.data[i]!, v, 1e-7));
      near(d!.data[0]!, 1.4559253, 1e-7);
    });

    it(`stateful BPTT: the first epoch's loss (${dtype})`, async () => {
      const m = new Sequential([
        new LSTM({ units: 5, inputDim: 2, stateful: true, batchSize: 4, recurrentActivation: "hardSigmoid" }),
        new Dense({ units: 1, useBias: false }),
      ], { dtype, seed: 1 });
      m.setWeights([ones([2, 20]), ones([5, 20]), ones([20]), ones([5, 1])]);
      m.compile({ optimizer: new SGD({ learningRate: 0.01 }), loss: "meanSquaredError" });
      const h = await m.fit(ones([8, 3, 2]), [[1], [2], [3], [4], [5], [6], [7], [8]], { batchSize: 4, shuffle: false, verbose: 0 });
      near(h.history["loss"]![0]!, 5.8377, 5e-5); // given to 4 decimals
    });
  }

  it("the same LSTM exported to tfjs gives tfjs's own numbers", async () => {
    const m = new Sequential([
      new LSTM({ units: 5, inputDim: 2, returnSequences: true, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 5, useBias: false }),
    ], { dtype: "float32", seed: 1 });
    m.setWeights([ones([2, 20]), ones([5, 20]), ones([20]), eye(5)]);
    const tfModel = await loadTfjs(toTfjs(m));
    expectAgree("golden setup through tfjs", m.predict(ones([4, 2, 2])).data, tfPredict(tfModel, ones([4, 2, 2])));
    tfModel.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// Converter output (model.json folders)

/** Deterministic weight files for a manifest: every float32 spec filled from a seeded stream, scaled by 1/√fan-in. */
function fillWeightFiles(json: TfjsModelJSON, seed: number, shardBytes = Infinity): Map<string, Uint8Array> {
  const r = rng(seed);
  const files = new Map<string, Uint8Array>();
  for (const g of json.weightsManifest) {
    const n = g.weights.reduce((s, w) => s + w.shape.reduce((a, b) => a * b, 1), 0);
    const all = new Uint8Array(4 * n);
    const view = new DataView(all.buffer);
    let off = 0;
    for (const w of g.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const scale = 1 / Math.sqrt(w.shape.length > 1 ? w.shape[0]! : 4);
      for (let k = 0; k < count; k++, off += 4) view.setFloat32(off, r() * scale, true);
    }
    // The converter cuts a group into shards of at most shardBytes, regardless of weight boundaries.
    g.paths.forEach((p, i) => {
      const size = Number.isFinite(shardBytes) ? shardBytes : all.length;
      files.set(p, all.slice(i * size, i === g.paths.length - 1 ? all.length : (i + 1) * size));
    });
  }
  return files;
}

const fixture = (): TfjsModelJSON => JSON.parse(readFileSync(new URL("./fixtures/tfjs/keras-2.1.4-converter.model.json", import.meta.url), "utf8"));

/**
 * A converter model.json of a Keras 2.15 model (tf.keras, TF 2.15), written to follow the structure of real
 * converter outputs of that era: the config wrapped in model_config with keras_version and backend, an
 * InputLayer first, initialisers carrying "module" and "registered_name", a training_config, weights named
 * "<layer>/lstm_cell/<weight>" and listed alphabetically (dense before lstm), in two shards that split a weight.
 */
function keras215Json(): TfjsModelJSON {
  const init = (cls: string, config: object) => ({ module: "keras.initializers", class_name: cls, config, registered_name: null });
  const lstm = (name: string, units: number, rs: boolean, extra: object = {}) => ({
    class_name: "LSTM",
    config: {
      name, trainable: true, dtype: "float32", ...extra, return_sequences: rs, return_state: false, go_backwards: false, stateful: false,
      unroll: false, time_major: false, units, activation: "tanh", recurrent_activation: "sigmoid", use_bias: true,
      kernel_initializer: init("GlorotUniform", { seed: null }), recurrent_initializer: init("Orthogonal", { gain: 1.0, seed: null }),
      bias_initializer: init("Zeros", {}), unit_forget_bias: true, kernel_regularizer: null, recurrent_regularizer: null,
      bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, recurrent_constraint: null, bias_constraint: null,
      dropout: 0.0, recurrent_dropout: 0.0, implementation: 2,
    },
  });
  const spec = (name: string, shape: number[]) => ({ name, shape, dtype: "float32" });
  return {
    format: "layers-model",
    generatedBy: "keras v2.15.0",
    convertedBy: "TensorFlow.js Converter v4.17.0",
    modelTopology: {
      keras_version: "2.15.0",
      backend: "tensorflow",
      model_config: {
        class_name: "Sequential",
        config: {
          name: "sequential",
          layers: [
            { class_name: "InputLayer", config: { batch_input_shape: [null, 12, 4], dtype: "float32", sparse: false, ragged: false, name: "lstm_input" } },
            lstm("lstm", 8, true, { batch_input_shape: [null, 12, 4] }),
            lstm("lstm_1", 6, false),
            {
              class_name: "Dense",
              config: {
                name: "dense", trainable: true, dtype: "float32", units: 1, activation: "sigmoid", use_bias: true,
                kernel_initializer: init("GlorotUniform", { seed: null }), bias_initializer: init("Zeros", {}),
                kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
              },
            },
          ],
        },
      },
      training_config: { loss: "binary_crossentropy", metrics: [["accuracy"]], weighted_metrics: null, loss_weights: null, optimizer_config: { class_name: "Custom>Adam", config: { name: "Adam", learning_rate: 0.001 } } },
    },
    weightsManifest: [{
      paths: ["group1-shard1of2.bin", "group1-shard2of2.bin"],
      weights: [
        spec("dense/bias", [1]), spec("dense/kernel", [6, 1]),
        spec("lstm/lstm_cell/bias", [32]), spec("lstm/lstm_cell/kernel", [4, 32]), spec("lstm/lstm_cell/recurrent_kernel", [8, 32]),
        spec("lstm_1/lstm_cell/bias", [24]), spec("lstm_1/lstm_cell/kernel", [8, 24]), spec("lstm_1/lstm_cell/recurrent_kernel", [6, 24]),
      ],
    }],
  } as unknown as TfjsModelJSON;
}

describe("converter output: model.json + weight files, as tfjs loads them", () => {
  it("a real converter model.json (Keras 2.1.4): its softmax Activation layer is refused by name", () => {
    const json = fixture();
    const artifacts = tfjsArtifactsFromModelJSON(json, fillWeightFiles(json, 41));
    expectFormatError(() => fromTfjs(artifacts), "layers[2]", "\"Activation\"");
  });

  it("the same real model.json without its Activation layer: bare-array config, two weight groups, names lstm_1/kernel", async () => {
    const json = fixture();
    (json.modelTopology as any).model_config.config.pop(); // drop the softmax Activation (the logits stay)
    const files = fillWeightFiles(json, 42);
    const artifacts = tfjsArtifactsFromModelJSON(json, (p) => files.get(p)!);
    const model = fromTfjs(artifacts);
    expect((model.layers[0] as LSTM).recurrentActivation).toBe("hardSigmoid");
    expect(model.inputDim).toBe(57);
    const tfModel = await loadTfjs(artifacts);
    const x = randomX(43, 3, 40, 57); // the file fixes 40 timesteps, which tfjs enforces
    expectAgree("converter: Keras 2.1.4 fixture", model.predict(x).data, tfPredict(tfModel, x));
    tfModel.dispose();
  });

  it("a Keras 2.15 converter model.json: model_config wrapper, InputLayer, lstm_cell names, alphabetical order, split shards", async () => {
    const json = keras215Json();
    const files = fillWeightFiles(json, 44, 1000); // a 1000-byte cut falls inside lstm/lstm_cell/kernel
    const artifacts = tfjsArtifactsFromModelJSON(json, files);
    const model = fromTfjs(artifacts);
    expect(model.layers.map((l) => l.units)).toEqual([8, 6, 1]);
    const tfModel = await loadTfjs(artifacts);
    const x = randomX(45, 4, 12, 4);
    expectAgree("converter: Keras 2.15 layout", model.predict(x).data, tfPredict(tfModel, x));
    tfModel.dispose();
    // The weights landed by name: longshort's lstm_0/kernel is the file's lstm/lstm_cell/kernel.
    const spec = json.weightsManifest[0]!.weights;
    const off = spec.slice(0, 3).reduce((s, w) => s + 4 * w.shape.reduce((a, b) => a * b, 1), 0);
    const all = new Uint8Array([...files.get("group1-shard1of2.bin")!, ...files.get("group1-shard2of2.bin")!]);
    expect(model.getWeights()[0]!.data[0]).toBe(new DataView(all.buffer).getFloat32(off, true));
  });

  it("Keras 3 style (InputLayer batch_shape, numbered variables): loads; its hard_sigmoid is refused", () => {
    // Keras 3 weights h5 paths as the converter writes them ("layers/<layer>/cell/vars/<i>").
    const json = keras215Json() as any;
    json.modelTopology.keras_version = "3.3.3";
    json.generatedBy = "keras v3.3.3";
    const layers = json.modelTopology.model_config.config.layers;
    layers[0].config = { batch_shape: [null, 12, 4], dtype: "float32", sparse: false, name: "input_layer" };
    delete layers[1].config.batch_input_shape;
    for (const l of layers) if (l.config.dtype) l.config.dtype = { module: "keras", class_name: "DTypePolicy", config: { name: "float32" }, registered_name: null };
    const rename: Record<string, string> = {
      "dense/kernel": "layers/dense/vars/0", "dense/bias": "layers/dense/vars/1",
      "lstm/lstm_cell/kernel": "layers/lstm/cell/vars/0", "lstm/lstm_cell/recurrent_kernel": "layers/lstm/cell/vars/1", "lstm/lstm_cell/bias": "layers/lstm/cell/vars/2",
      "lstm_1/lstm_cell/kernel": "layers/lstm_1/cell/vars/0", "lstm_1/lstm_cell/recurrent_kernel": "layers/lstm_1/cell/vars/1", "lstm_1/lstm_cell/bias": "layers/lstm_1/cell/vars/2",
    };
    const files = fillWeightFiles(keras215Json(), 46, 1000);
    const k2 = fromTfjs(tfjsArtifactsFromModelJSON(keras215Json(), files));
    for (const w of json.weightsManifest[0].weights) w.name = rename[w.name];
    const k3 = fromTfjs(tfjsArtifactsFromModelJSON(json, files));
    const x = randomX(47, 2, 5, 4);
    expect(Array.from(k3.predict(x).data)).toEqual(Array.from(k2.predict(x).data));
    layers[2].config.recurrent_activation = "hard_sigmoid";
    expectFormatError(() => fromTfjs(tfjsArtifactsFromModelJSON(json, files)), "layers[2]", "Keras 3", "relu6");
  });

  it("quantized weights (uint8 affine and float16) are dequantized as tfjs does", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 4, inputShape: [null, 2] }));
    m.add(tf.layers.dense({ units: 2 }));
    const saved = await saveTfjs(m);
    const values = new Float32Array(saved.weightData as ArrayBuffer);
    // Quantize every weight: the LSTM ones to uint8 (min, scale), the Dense ones to float16.
    const specs: tf.io.WeightsManifestEntry[] = [];
    const parts: number[] = [];
    let off = 0;
    for (const s of saved.weightSpecs!) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const v = values.subarray(off, off + n);
      off += n;
      if (s.name.startsWith("lstm")) {
        const min = Math.min(...v), max = Math.max(...v), scale = (max - min) / 255 || 1;
        specs.push({ ...s, quantization: { dtype: "uint8", min, scale } });
        for (const x of v) parts.push(Math.round((x - min) / scale));
      } else {
        specs.push({ ...s, quantization: { dtype: "float16" } });
        const half = new Uint16Array(n);
        const f16 = (x: number) => { // round to nearest half (normal range is enough here)
          const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0]!;
          const sign = (u >>> 16) & 0x8000, e = ((u >>> 23) & 0xff) - 127 + 15, mant = u & 0x7fffff;
          if (e <= 0) return sign;
          return sign | (e << 10) | Math.round(mant / 8192);
        };
        v.forEach((x, i) => (half[i] = f16(x)));
        for (const b of new Uint8Array(half.buffer)) parts.push(b);
      }
    }
    // uint8 bytes and float16 bytes (already split into bytes) one after the other.
    const weightData = new Uint8Array(parts).buffer;
    const artifacts = { modelTopology: saved.modelTopology as object, weightSpecs: specs, weightData };
    const model = fromTfjs(artifacts);
    const tfModel = await loadTfjs(artifacts);
    const x = randomX(48, 3, 5, 2);
    expectAgree("quantized uint8 + float16", model.predict(x).data, tfPredict(tfModel, x));
    tfModel.dispose();
    m.dispose();
  });

  it("model.json errors: missing file, unsafe path, a group whose files do not match its specs", () => {
    const json = keras215Json();
    const files = fillWeightFiles(json, 49, 1000);
    files.delete("group1-shard2of2.bin");
    expectFormatError(() => tfjsArtifactsFromModelJSON(json, files), "group1-shard2of2.bin", "no such weight file");
    const unsafe = keras215Json();
    unsafe.weightsManifest[0]!.paths[0] = "../../secret";
    let asked = 0;
    expectFormatError(() => tfjsArtifactsFromModelJSON(unsafe, () => { asked++; return new Uint8Array(0); }), "paths[0]", "../../secret");
    expect(asked).toBe(0);
    const short = fillWeightFiles(keras215Json(), 50, 1000);
    short.set("group1-shard2of2.bin", short.get("group1-shard2of2.bin")!.slice(4));
    expectFormatError(() => tfjsArtifactsFromModelJSON(keras215Json(), short), "weightsManifest[0].weights");
    expectFormatError(() => tfjsArtifactsFromModelJSON("{not json", new Map()), "not valid JSON");
    expectFormatError(() => tfjsArtifactsFromModelJSON({ modelTopology: {} }, new Map()), "weightsManifest");
    expect(() => tfjsArtifactsFromModelJSON(keras215Json(), {} as Map<string, Uint8Array>)).toThrow(ValueError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Errors

describe("fromTfjs errors: FormatError naming the thing, the artifacts untouched", () => {
  let base: TfjsArtifactsInput;
  beforeAll(async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 3, inputShape: [null, 2], returnSequences: true }));
    m.add(tf.layers.lstm({ units: 2 }));
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    base = cloneArtifacts(await saveTfjs(m));
    m.dispose();
  });

  /** Mutates a copy of the base artifacts, expects a FormatError mentioning `parts`, and the copy unchanged by the import. */
  function refused(mutate: (a: ReturnType<typeof cloneArtifacts>) => void, ...parts: (string | RegExp)[]): void {
    const a = cloneArtifacts(base);
    mutate(a);
    const before = snapshot(a);
    expectFormatError(() => fromTfjs(a), ...parts);
    expect(snapshot(a)).toEqual(before);
  }
  const layer = (a: any, i: number) => a.modelTopology.config.layers[i];

  it("the base artifacts load", () => {
    expect(fromTfjs(base).layers.length).toBe(3);
  });

  it("unsupported activations", () => {
    refused((a) => { layer(a, 0).config.activation = "relu"; }, "layers[0]", "activation \"relu\"");
    refused((a) => { layer(a, 1).config.recurrent_activation = "tanh"; }, "layers[1]", "recurrent_activation \"tanh\"");
    refused((a) => { layer(a, 2).config.activation = "softplus"; }, "layers[2]", "activation \"softplus\"");
    refused((a) => { layer(a, 2).config.activation = { class_name: "Custom" }; }, "layers[2]", "custom activations");
  });

  it("unsupported layer classes, named", () => {
    for (const cls of ["SimpleRNN", "Dropout", "RNN"]) { // a GRU is read: test/gru-interop.test.ts
      refused((a) => { layer(a, 1).class_name = cls; }, "layers[1]", `"${cls}"`);
    }
    // A Bidirectional is read (test/bidirectional-interop.test.ts), but an LSTM's config is not one: it has no config.layer.
    refused((a) => { layer(a, 1).class_name = "Bidirectional"; }, "layers[1] (Bidirectional ", "config.layer: expected a layer { class_name, config }");
    refused((a) => { layer(a, 1).class_name = "Masking"; }, "layers[1]", "a Masking layer is only supported first");
    refused((a) => { layer(a, 1).class_name = "Embedding"; }, "layers[1]", "an Embedding is only supported as the first layer"); // test/embedding-interop.test.ts reads it first
    refused((a) => { a.modelTopology.class_name = "Functional"; }, "Functional", "functional models");
    refused((a) => { a.modelTopology.config.layers.splice(1, 0, { class_name: "Dropout", config: { name: "dropout", rate: 0.2 } }); }, "\"Dropout\"");
    refused((a) => { layer(a, 0).config.return_sequences = false; }, "layers[1]", "an LSTM below it has return_sequences false, so this LSTM would get no sequence");
    refused((a) => { layer(a, 0).config.return_sequences = false; }, "layers[1]", "return_sequences false");
  });

  it("unsupported LSTM settings: Keras 3 hard_sigmoid, a dropout rate outside [0, 1), a go_backwards that is not a boolean, return_state, time_major", () => {
    refused((a) => { a.modelTopology.keras_version = "3.1.0"; }, "layers[0]", "Keras 3", "relu6(x + 3) / 6");
    refused((a) => { layer(a, 0).config.dropout = 1; }, "layers[0]", "config.dropout: expected a rate in [0, 1), got 1");
    refused((a) => { layer(a, 1).config.recurrent_dropout = "half"; }, "layers[1]", "recurrent_dropout");
    refused((a) => { layer(a, 0).config.go_backwards = "yes"; }, "go_backwards");
    refused((a) => { layer(a, 0).config.return_state = true; }, "return_state");
    refused((a) => { layer(a, 1).config.time_major = true; }, "time_major");
    refused((a) => { layer(a, 0).config.units = 2.5; }, "layers[0]", "config.units");
  });

  it("input shapes without a feature dimension, or none at all", () => {
    refused((a) => { layer(a, 0).config.batch_input_shape = [null, 10]; }, "batch_input_shape", "feature dimension");
    refused((a) => { layer(a, 0).config.batch_input_shape = [null, null, null]; }, "features");
    refused((a) => { delete layer(a, 0).config.batch_input_shape; }, "no input shape");
  });

  it("weights: wrong shape, missing, extra, duplicate, wrong dtype", () => {
    // Same byte count, transposed shape: caught by shape, naming the weight.
    refused((a) => { a.weightSpecs[0].shape = [12, 2]; }, "lstm", "/kernel", "expected shape [2, 12], got [12, 2]");
    refused((a) => { a.weightSpecs[2].name = "lstm_X/bias"; }, "weightSpecs[2]", "\"lstm_X/bias\"", "names no layer");
    refused((a) => { a.weightSpecs[2].name = a.weightSpecs[2].name.replace("bias", "gamma"); }, "\"gamma\" is not a weight");
    refused((a) => { a.weightSpecs[1].name = a.weightSpecs[0].name + ":0"; }, "already has its kernel");
    refused((a) => { a.weightSpecs[0].name = a.weightSpecs[1].name; }, "appears twice");
    refused((a) => { a.weightSpecs[0].dtype = "int32"; }, "weightSpecs[0]", "\"int32\"");
    refused((a) => { a.weightSpecs[0].dtype = "string"; }, "weightSpecs[0]", ").dtype", "\"string\"");
    refused((a) => { a.weightSpecs[0].quantization = { dtype: "int4" }; }, "quantization.dtype");
    refused((a) => {
      const t = a.weightSpecs.pop();
      a.weightData = a.weightData.slice(0, a.weightData.byteLength - 4 * t.shape.reduce((x: number, y: number) => x * y, 1));
    }, "no weight for the bias", "layers[2]");
    refused((a) => { a.weightSpecs[0].shape = [2, 1e15]; }, "weightSpecs[0]", "more bytes than the weightData has left");
  });

  it("weightData too short or too long", () => {
    refused((a) => { a.weightData = a.weightData.slice(0, a.weightData.byteLength - 4); }, "weightData", "more bytes than the weightData has left");
    refused((a) => {
      const longer = new Uint8Array(a.weightData.byteLength + 4);
      longer.set(new Uint8Array(a.weightData));
      a.weightData = longer.buffer;
    }, "weightData", "describe", "holds");
    refused((a) => { a.weightData = [a.weightData, new ArrayBuffer(8)]; }, "weightData");
    refused((a) => { (a as any).weightData = "bytes"; }, "weightData");
    refused((a) => { delete (a as any).weightData; }, "weightData", "missing");
  });

  it("weightData as ArrayBuffer[] (newer tfjs) and the optimizer's weights skipped", () => {
    const a = cloneArtifacts(base);
    const bytes = new Uint8Array(a.weightData as ArrayBuffer);
    const split = [bytes.slice(0, 10).buffer, bytes.slice(10, 50).buffer, bytes.slice(50).buffer];
    const opt = new Float32Array([7, 7, 7]).buffer;
    const withOpt = {
      modelTopology: a.modelTopology,
      weightSpecs: [...a.weightSpecs, { name: "dense_Dense1/kernel/m", shape: [3], dtype: "float32", group: "optimizer" }],
      weightData: [...split, opt],
    };
    expect(Array.from(fromTfjs(withOpt).getWeights()[0]!.data)).toEqual(Array.from(fromTfjs(base).getWeights()[0]!.data));
  });

  it("not artifacts at all; bad options", () => {
    for (const v of [null, undefined, 42, "model.json", [], new ArrayBuffer(4)]) {
      expectFormatError(() => fromTfjs(v as any), "tfjs artifacts", "expected an object");
    }
    refused((a) => { (a as any).modelTopology = "{}"; }, "modelTopology");
    refused((a) => { (a as any).weightSpecs = {}; }, "weightSpecs");
    refused((a) => { (a as any).format = "graph-model"; }, "format", "graph model");
    expect(() => fromTfjs(base, { dtype: "int8" as DType })).toThrow(ValueError);
    expect(() => fromTfjs(base, { seed: {} as number })).toThrow(ValueError);
    expect(() => fromTfjs(base, null as any)).toThrow(ValueError);
  });

  it("fuzz: mutated topology, specs and bytes fail only with a LongshortError", () => {
    const json = JSON.stringify({ modelTopology: base.modelTopology, weightSpecs: base.weightSpecs });
    // Every path into the JSON, to mutate one at a time.
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, p: (string | number)[]) => {
      paths.push(p);
      if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
      else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
    };
    walk(JSON.parse(json), []);
    const bytes = new Uint8Array(base.weightData as ArrayBuffer);
    const value = fc.oneof(
      fc.constantFrom(null, undefined, 0, -1, 1e300, NaN, "", "hard_sigmoid", "float32", true, [], {}, [null, null, 2], [1e9, 1e9], 20_000_000, [null, null, 20_000_000]),
      fc.jsonValue({ maxDepth: 2 }),
    );
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(paths.length - 1), value, fc.boolean()), { minLength: 1, maxLength: 3 }),
      fc.option(fc.integer({ min: -8, max: bytes.length + 8 })),
      (edits, cut) => {
        const obj = JSON.parse(json);
        for (const [pi, v, del] of edits) {
          const p = paths[pi]!;
          if (p.length === 0) continue;
          let parent: any = obj;
          for (const k of p.slice(0, -1)) parent = parent?.[k];
          if (parent === null || typeof parent !== "object") continue;
          if (del && !Array.isArray(parent)) delete parent[p[p.length - 1]!];
          else parent[p[p.length - 1]!] = v;
        }
        let data: ArrayBuffer = bytes.slice().buffer;
        if (cut !== null) data = cut < 0 ? new Uint8Array([...bytes, ...new Array(-cut).fill(0)]).buffer : bytes.slice(0, cut).buffer;
        const before = process.memoryUsage().arrayBuffers;
        try {
          fromTfjs({ ...obj, weightData: data });
        } catch (e) {
          if (!(e instanceof LongshortError)) throw e;
        }
        // Nothing sized by the topology's claims (20,000,000 units, say): growth stays near the data's size.
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
      },
    ), { numRuns: 400, seed: 7 });
  });

  it("fuzz: mutated model.json manifests and weight files fail only with a LongshortError", () => {
    const files = fillWeightFiles(keras215Json(), 51, 1000);
    fc.assert(fc.property(
      fc.constantFrom("paths", "weights", "shape", "name", "dtype", "file"),
      fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, [], [""], ["/abs"], [1e12], "x")),
      fc.nat(7),
      (what, v, k) => {
        const json = keras215Json() as any;
        const g = json.weightsManifest[0];
        const w = g.weights[k % g.weights.length];
        const fs = new Map(files);
        if (what === "paths") g.paths = v;
        else if (what === "weights") g.weights = v;
        else if (what === "shape") w.shape = v;
        else if (what === "name") w.name = v;
        else if (what === "dtype") w.dtype = v;
        else fs.set("group1-shard1of2.bin", fs.get("group1-shard1of2.bin")!.slice(k));
        try {
          fromTfjs(tfjsArtifactsFromModelJSON(json, fs));
        } catch (e) {
          if (!(e instanceof LongshortError)) throw e;
        }
      },
    ), { numRuns: 200, seed: 8 });
  });
});
