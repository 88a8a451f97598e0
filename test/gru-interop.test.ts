/**
 * The GRU through TensorFlow.js and ONNX Runtime (the real @tensorflow/tfjs on its CPU backend and the real
 * onnxruntime-node; no mocks):
 * - toTfjs: a GRU with resetAfter false (the only form tfjs has) loads in tf.loadLayersModel and predicts what we
 *   predict: hardSigmoid, goBackwards, no bias, stateful, masks anywhere in a row, GRUs stacked with LSTMs, an
 *   Embedding first; resetAfter true is refused by name (tfjs-layers: "GRUCell does not support reset_after parameter
 *   set to true"), and so is zeroOutputForMask on a masked model;
 * - fromTfjs: GRUs built and trained in tfjs predict what tfjs predicts; ours → tfjs → ours keeps every weight's bits;
 *   a Keras-written topology with reset_after true (bias [2, 3H]), which tfjs cannot load, predicts what
 *   torch.nn.GRU computes on the same weights (test/fixtures/gru_keras_reset_after.json, from gru_keras_torch.py)
 *   and what our own GRU computes, bit for bit; what cannot be read is refused by name;
 * - toOnnx: every GRU is one ONNX GRU node (linear_before_reset 1 for resetAfter true, 0 for false), and ORT's y is
 *   predict, masked models included (sequence_lens, rows padded at the end; NaN on others), with the masked-step rules
 *   applied to the top recurrent layer whether it is a GRU or an LSTM.
 *
 * Agreement with tfjs and ORT is |ours − theirs| ≤ 1e-5·(1 + |theirs|) elementwise (float32; ORT's GRU, like its
 * LSTM, has no float64 kernel: "GRU operator does not support double yet").
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Sequential, LSTM, GRU, Dense, Embedding, Masking, FormatError, ValueError, toTfjs, fromTfjs, toOnnx, saveTfjs, loadTfjs,
  randomNormal, type DType,
} from "../src/node/index.js";
import { tfjsArtifactsFromModelJSON, type TfjsArtifactsInput, type TfjsModelJSON } from "../src/interop/tfjs.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";
import { agreement, bits, distance, expectOnnxMasking, fitTf, onnxNodes, runOrt, tfLoad, tfPredict, tfSave } from "./helpers/interop.js";

// ---------------------------------------------------------------------------------------------------
// Helpers

const TOL = 1e-5;
const expectAgree = agreement("tfjs/ORT/torch", TOL);
const V = 7;

/** x [B, T, F] of float32-representable normals, with every feature of the listed (row, step) pairs set to `maskValue`. */
function seqX(seed: string, B: number, T: number, F: number, maskAt: readonly [number, number][] = [], maskValue = 0): number[][][] {
  const r = new Rng(`gru-interop/${seed}`);
  const x = Array.from({ length: B }, () => Array.from({ length: T }, () => Array.from({ length: F }, () => Math.fround(r.normal()))));
  for (const [b, t] of maskAt) x[b]![t]!.fill(maskValue);
  return x;
}

/** ids [B, T] in [1, V), then 0 where `pad(b, t)`. */
function ids(seed: string, B: number, T: number, pad: (b: number, t: number) => boolean = () => false): number[][] {
  const r = new Rng(`gru-interop/ids/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (pad(b, t) ? 0 : 1 + r.int(V - 1))));
}

/** Spread every weight (biases start at 0) so that a swapped, dropped or misplaced one would show. */
function perturb(model: Sequential, seed: number, scale = 0.4): Sequential {
  const r = new Rng(`gru-interop/perturb/${seed}`);
  model.setWeights(model.getWeights().map((w) => fromData(w.data.map((v) => v + scale * (2 * r.uniform() - 1)), w.shape)));
  return model;
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend("cpu");
});

/** The GRU's and LSTM's settings that decide what they compute, per layer (for round trips). */
function config(m: Sequential): unknown[] {
  return [m.masking?.maskValue ?? null, ...m.layers.map((l) => {
    if (l instanceof GRU) return ["gru", l.units, l.resetAfter, l.recurrentActivation, l.useBias, l.returnSequences, l.goBackwards, l.stateful, l.batchSize, l.zeroOutputForMask];
    if (l instanceof LSTM) return ["lstm", l.units, l.recurrentActivation, l.useBias, l.returnSequences, l.goBackwards, l.stateful, l.batchSize, l.unitForgetBias];
    if (l instanceof Embedding) return ["embedding", l.inputDim, l.outputDim, l.maskZero];
    return ["dense", l.units, (l as Dense).activation, (l as Dense).useBias];
  })];
}

// ---------------------------------------------------------------------------------------------------
// toTfjs

interface ExportCase {
  name: string;
  dtype?: DType;
  layers: () => (GRU | LSTM | Dense | Masking | Embedding)[];
  /** The input for B rows and T steps. */
  x: (seed: string, B: number, T: number) => number[][][] | number[][];
  /** tfjs's class names, in order. */
  classes: string[];
  /** A stateful model's batch size: both carry the state into a second call. */
  stateful?: number;
}

const F = 3;
const plainX = (seed: string, B: number, T: number) => seqX(seed, B, T, F);

const EXPORTS: ExportCase[] = [
  {
    name: "GRU → Dense (sigmoid)",
    layers: () => [new GRU({ units: 5, inputDim: F, resetAfter: false }), new Dense({ units: 2, activation: "sigmoid" })],
    x: plainX, classes: ["GRU", "Dense"],
  },
  {
    name: "GRU (sequences, hardSigmoid) → GRU (goBackwards, hardSigmoid) → Dense (tanh)",
    layers: () => [
      new GRU({ units: 4, inputDim: F, resetAfter: false, returnSequences: true, recurrentActivation: "hardSigmoid" }),
      new GRU({ units: 3, resetAfter: false, goBackwards: true, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 2, activation: "tanh" }),
    ],
    x: plainX, classes: ["GRU", "GRU", "Dense"],
  },
  {
    name: "GRU (sequences, goBackwards) → Dense (linear) per step",
    layers: () => [new GRU({ units: 4, inputDim: F, resetAfter: false, returnSequences: true, goBackwards: true }), new Dense({ units: 2 })],
    x: plainX, classes: ["GRU", "Dense"],
  },
  {
    name: "stacked mix: LSTM (sequences) → GRU (sequences, hardSigmoid) → Dense (relu) → LSTM (goBackwards) → Dense",
    layers: () => [
      new LSTM({ units: 4, inputDim: F, returnSequences: true }),
      new GRU({ units: 5, resetAfter: false, returnSequences: true, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 3, activation: "relu" }),
      new LSTM({ units: 3, goBackwards: true }),
      new Dense({ units: 1 }),
    ],
    x: plainX, classes: ["LSTM", "GRU", "Dense", "LSTM", "Dense"],
  },
  {
    name: "Dense (tanh) first → GRU (sequences) → GRU (sequences), ending on the GRU",
    layers: () => [
      new Dense({ units: 4, inputDim: F, activation: "tanh" }),
      new GRU({ units: 3, resetAfter: false, returnSequences: true }),
      new GRU({ units: 2, resetAfter: false, returnSequences: true, recurrentActivation: "hardSigmoid" }),
    ],
    x: plainX, classes: ["Dense", "GRU", "GRU"],
  },
  {
    name: "useBias false on the GRU and the Dense; dropout and recurrentDropout (training only) in the config",
    layers: () => [new GRU({ units: 4, inputDim: F, resetAfter: false, useBias: false, dropout: 0.2, recurrentDropout: 0.3 }), new Dense({ units: 2, useBias: false })],
    x: plainX, classes: ["GRU", "Dense"],
  },
  {
    name: "float64 model (weights rounded to float32)",
    dtype: "float64",
    layers: () => [new GRU({ units: 6, inputDim: F, resetAfter: false, recurrentActivation: "hardSigmoid" }), new Dense({ units: 2 })],
    x: plainX, classes: ["GRU", "Dense"],
  },
  {
    name: "stateful GRU, batch size 2",
    layers: () => [new GRU({ units: 4, inputDim: F, resetAfter: false, stateful: true, batchSize: 2 }), new Dense({ units: 1 })],
    x: plainX, classes: ["GRU", "Dense"], stateful: 2,
  },
  {
    name: "Masking (0) → GRU (sequences) → Dense (tanh) → GRU (sequences, goBackwards) per step, masks at the front, in the middle and at the end",
    layers: () => [
      new Masking(),
      new GRU({ units: 4, inputDim: F, resetAfter: false, returnSequences: true }),
      new Dense({ units: 3, activation: "tanh" }),
      new GRU({ units: 3, resetAfter: false, returnSequences: true, goBackwards: true }),
    ],
    x: (seed, B, T) => seqX(seed, B, T, F, [[0, 0], [0, 1], [1, T - 1], [1, 2], [B - 1, 1]].filter(([b, t]) => b! < B && t! < T) as [number, number][]),
    classes: ["Masking", "GRU", "Dense", "GRU"],
  },
  {
    name: "Masking (−1) → LSTM (sequences) → GRU (goBackwards) → Dense (sigmoid)",
    layers: () => [
      new Masking({ maskValue: -1 }),
      new LSTM({ units: 3, inputDim: F, returnSequences: true }),
      new GRU({ units: 4, resetAfter: false, goBackwards: true }),
      new Dense({ units: 1, activation: "sigmoid" }),
    ],
    x: (seed, B, T) => seqX(seed, B, T, F, [[0, T - 1], [0, T - 2], [1, 0], [1, 2]].filter(([b, t]) => b! < B && t! >= 0 && t! < T) as [number, number][], -1),
    classes: ["Masking", "LSTM", "GRU", "Dense"],
  },
  {
    name: "Embedding (maskZero) → GRU (sequences) → Dense (linear) per step, ids",
    layers: () => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new GRU({ units: 4, resetAfter: false, returnSequences: true }), new Dense({ units: 2 })],
    x: (seed, B, T) => ids(seed, B, T, (b, t) => (b === 0 && t < 2) || (b === 1 && t === 2) || (b === 2 && t >= T - 2)),
    classes: ["Embedding", "GRU", "Dense"],
  },
];

describe("toTfjs: a GRU (resetAfter false) loads in tf.loadLayersModel and predicts what we predict", () => {
  EXPORTS.forEach((c, ci) => {
    it(c.name, async () => {
      const model = new Sequential(c.layers(), { seed: 10 + ci, dtype: c.dtype ?? "float32" });
      if (!model.engine.built) model.build(1); // an Embedding first: one id per step
      perturb(model, 10 + ci);
      const artifacts = toTfjs(model);
      const layers = (artifacts.modelTopology as any).config.layers as any[];
      expect(layers.map((l) => l.class_name)).toEqual(c.classes);
      for (const l of layers.filter((l) => l.class_name === "GRU")) {
        expect(l.config.reset_after).toBe(false);
        expect(l.config.activation).toBe("tanh");
      }
      const tfModel = await tfLoad(artifacts);
      expect(tfModel.layers.map((l) => l.getClassName())).toEqual(c.classes);
      const shapes = c.stateful ? [[c.stateful, 5], [c.stateful, 3]] : [[3, 5], [2, 7], [1, 1]];
      for (const [b, t] of shapes) {
        const x = c.x(`tfjs/${ci}/${b}/${t}`, b!, t!);
        const ours = model.predict(x as number[][][]), theirs = tfPredict(tfModel, x);
        expect(theirs.shape).toEqual(ours.shape);
        expectAgree(`toTfjs: ${c.name} (B=${b}, T=${t})`, ours.data, theirs.data);
      }
      // What tfjs writes back for the loaded model is what we wrote, and its weights are ours, bit for bit.
      const again = await tfSave(tfModel);
      const theirs = (again.modelTopology as any).config.layers as any[];
      layers.forEach((l, i) => {
        for (const [k, v] of Object.entries(l.config)) {
          if (["name", "kernel_initializer", "recurrent_initializer", "bias_initializer", "embeddings_initializer", "implementation", "unit_forget_bias"].includes(k)) continue;
          expect(theirs[i].config[k], `layers[${i}].config.${k}`).toEqual(v);
        }
      });
      for (const back of [fromTfjs(artifacts), fromTfjs(again)]) {
        expect(config(back)).toEqual(config(model));
        expect(back.weightShapes()).toEqual(model.weightShapes());
        expect(bits(back.getWeights())).toEqual(bits(c.dtype === "float64" ? model.getWeights().map((w) => fromData(Float32Array.from(w.data), w.shape)) : model.getWeights()));
      }
      tfModel.dispose();
    });
  });

  it("names the weights as tfjs does: gru/kernel, gru/recurrent_kernel, gru/bias [3H], gru_1/…", () => {
    const model = new Sequential([
      new GRU({ units: 4, inputDim: 2, resetAfter: false, returnSequences: true }), new LSTM({ units: 3, returnSequences: true }),
      new GRU({ units: 2, resetAfter: false }),
    ], { dtype: "float32" });
    const a = toTfjs(model);
    expect(a.weightSpecs.map((s) => [s.name, s.shape])).toEqual([
      ["gru/kernel", [2, 12]], ["gru/recurrent_kernel", [4, 12]], ["gru/bias", [12]],
      ["lstm/kernel", [4, 12]], ["lstm/recurrent_kernel", [3, 12]], ["lstm/bias", [12]],
      ["gru_1/kernel", [3, 6]], ["gru_1/recurrent_kernel", [2, 6]], ["gru_1/bias", [6]],
    ]);
    const cfg = (a.modelTopology as any).config.layers[0].config;
    expect(cfg).toMatchObject({
      name: "gru", batch_input_shape: [null, null, 2], units: 4, activation: "tanh", recurrent_activation: "sigmoid", use_bias: true,
      dropout: 0, recurrent_dropout: 0, reset_after: false, return_sequences: true, return_state: false, go_backwards: false, stateful: false, unroll: false,
    });
  });

  it("a saveTfjs folder of a GRU model comes back from loadTfjs with the same bits", async () => {
    const model = perturb(new Sequential([new GRU({ units: 3, inputDim: 2, resetAfter: false, returnSequences: true, goBackwards: true }), new Dense({ units: 2 })], { dtype: "float32" }), 3);
    const dir = mkdtempSync(join(tmpdir(), "longshort-gruio-"));
    try {
      await saveTfjs(model, dir);
      const back = await loadTfjs(dir);
      expect(config(back)).toEqual(config(model));
      expect(bits(back.getWeights())).toEqual(bits(model.getWeights()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("toTfjs refuses by name what tfjs's GRU does not compute (ValueError), the model untouched", () => {
  it("resetAfter true (the default): tfjs-layers' GRUCell has reset_after false only, and tfjs itself says so", async () => {
    const m = new Sequential([new LSTM({ units: 3, inputDim: 2, returnSequences: true }), new GRU({ units: 2 }), new Dense({ units: 1 })], { dtype: "float32" });
    const before = bits(m.getWeights());
    expect(() => toTfjs(m)).toThrow(ValueError);
    expect(() => toTfjs(m)).toThrow(/toTfjs model: layers\[1\] is a GRU with resetAfter true/);
    expect(() => toTfjs(m)).toThrow(/GRUCell does not support reset_after parameter set to true/);
    expect(() => toTfjs(m)).toThrow(/resetAfter: false/);
    expect(bits(m.getWeights())).toEqual(before);
    // Behind a Masking layer, the index counts it, as the rest of toTfjs's messages do.
    const masked = new Sequential([new Masking(), new GRU({ units: 2, inputDim: 2 })]);
    expect(() => toTfjs(masked)).toThrow(/layers\[1\] is a GRU with resetAfter true/);
    // What tfjs does with such a config: the error quoted.
    const ok = new Sequential([new GRU({ units: 2, inputDim: 2, resetAfter: false })], { dtype: "float32" });
    const a = structuredClone(toTfjs(ok)) as any;
    a.modelTopology.config.layers[0].config.reset_after = true;
    await expect(tfLoad(a)).rejects.toThrow(/GRUCell does not support reset_after parameter set to true/);
  });

  it("zeroOutputForMask on a masked model: tfjs's RNN repeats the previous output instead; without a mask it goes", () => {
    const m = new Sequential([new Masking(), new GRU({ units: 2, inputDim: 2, resetAfter: false, zeroOutputForMask: true })]);
    expect(() => toTfjs(m)).toThrow(ValueError);
    expect(() => toTfjs(m)).toThrow(/toTfjs model: layers\[1\] has zeroOutputForMask, which TensorFlow\.js's RNN does not have/);
    const e = new Sequential([new Embedding({ inputDim: V, outputDim: 2, maskZero: true }), new GRU({ units: 2, resetAfter: false, zeroOutputForMask: true })]);
    expect(() => toTfjs(e)).toThrow(/layers\[1\] has zeroOutputForMask/);
    const plain = new Sequential([new GRU({ units: 2, inputDim: 2, resetAfter: false, zeroOutputForMask: true })]);
    expect(toTfjs(plain).modelTopology).toBeDefined();
  });
});

// ---------------------------------------------------------------------------------------------------
// fromTfjs: GRUs built and trained in tfjs

describe("fromTfjs: GRUs built and trained in tfjs predict what tfjs predicts", () => {
  const N = 8, T = 6;

  it("GRU with tfjs's defaults (recurrent_activation hard_sigmoid, kernel initializer glorotNormal) → Dense (sigmoid)", async () => {
    const m = tf.sequential();
    m.add(tf.layers.gru({ units: 5, inputShape: [null, F] }));
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    await fitTf(m, seqX("fit-a", N, T, F), randomNormal([N, 1], { seed: 1 }));
    const saved = await tfSave(m);
    const cfg = (saved.modelTopology as any).config.layers[0].config;
    expect([cfg.recurrent_activation, cfg.reset_after, cfg.kernel_initializer.class_name, cfg.kernel_initializer.config.distribution]).toEqual(["hard_sigmoid", false, "VarianceScaling", "normal"]);
    const model = fromTfjs(saved);
    const gru = model.layers[0] as GRU;
    expect([gru.kind, gru.resetAfter, gru.recurrentActivation, gru.useBias]).toEqual(["gru", false, "hardSigmoid", true]);
    const x = seqX("test-a", 4, 9, F); // another length than in training
    expectAgree("tfjs-built: GRU (tfjs defaults) → Dense", model.predict(x).data, tfPredict(m, x).data);
    m.dispose();
  });

  it("GRU (sequences, sigmoid) → LSTM (sequences) → GRU (goBackwards) → Dense (tanh): stacked with an LSTM, trained", async () => {
    const m = tf.sequential();
    m.add(tf.layers.gru({ units: 4, returnSequences: true, recurrentActivation: "sigmoid", inputShape: [null, F] }));
    m.add(tf.layers.lstm({ units: 3, returnSequences: true }));
    m.add(tf.layers.gru({ units: 3, goBackwards: true }));
    m.add(tf.layers.dense({ units: 2, activation: "tanh" }));
    await fitTf(m, seqX("fit-b", N, T, F), randomNormal([N, 2], { seed: 2 }));
    const model = fromTfjs(await tfSave(m));
    expect(model.layers.map((l) => l.kind)).toEqual(["gru", "lstm", "gru", "dense"]);
    expect(model.layers.map((l) => (l instanceof GRU || l instanceof LSTM ? l.recurrentActivation : null))).toEqual(["sigmoid", "hardSigmoid", "hardSigmoid", null]);
    expect((model.layers[2] as GRU).goBackwards).toBe(true);
    const x = seqX("test-b", 3, 7, F);
    expectAgree("tfjs-built: GRU → LSTM → GRU (backwards) → Dense", model.predict(x).data, tfPredict(m, x).data);
    m.dispose();
  });

  it("Masking → GRU (sequences) → Dense (relu) → GRU (sequences, goBackwards) per step, on masks anywhere in a row", async () => {
    const m = tf.sequential();
    m.add(tf.layers.masking({ maskValue: 0, inputShape: [null, 2] }));
    m.add(tf.layers.gru({ units: 4, returnSequences: true, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 3, activation: "relu" }));
    m.add(tf.layers.gru({ units: 3, returnSequences: true, goBackwards: true }));
    const mask: [number, number][] = [[0, 0], [1, 5], [2, 2], [2, 3], [5, 1], [7, 0], [7, 1]];
    await fitTf(m, seqX("fit-c", N, T, 2, mask), randomNormal([N, T, 3], { seed: 3 }));
    const model = fromTfjs(await tfSave(m));
    expect(model.masking!.maskValue).toBe(0);
    const x = seqX("test-c", 4, 5, 2, [[0, 1], [1, 4], [2, 0], [2, 2], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]);
    const ours = model.predict(x), theirs = tfPredict(m, x);
    expect(ours.shape).toEqual([4, 5, 3]);
    expectAgree("tfjs-built: Masking → GRU → Dense → GRU (backwards) per step", ours.data, theirs.data);
    // The mask travelled: without it (same weights) the zero steps are data and the output moves.
    const bare = new Sequential(model.layers.map((l) => l instanceof GRU
      ? new GRU({ units: l.units, resetAfter: false, returnSequences: true, goBackwards: l.goBackwards, recurrentActivation: l.recurrentActivation })
      : new Dense({ units: l.units, activation: (l as Dense).activation })), { dtype: "float32" });
    bare.build(2);
    bare.setWeights(model.getWeights());
    expect(distance(bare.predict(x).data, ours.data)).toBeGreaterThan(1e-4);
    m.dispose();
  });

  it("Embedding (mask_zero) → GRU → Dense, ids padded at the front, the middle and the end", async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: V, outputDim: 3, maskZero: true }));
    m.add(tf.layers.gru({ units: 4 }));
    m.add(tf.layers.dense({ units: 2 }));
    await fitTf(m, ids("fit-d", N, 5, (b, t) => (b + t) % 4 === 0), randomNormal([N, 2], { seed: 4 }));
    const model = fromTfjs(await tfSave(m));
    expect(model.layers.map((l) => l.kind)).toEqual(["embedding", "gru", "dense"]);
    const x = [[0, 0, 3, 4, 5, 6], [1, 0, 0, 2, 6, 0], [5, 6, 1, 2, 0, 0], [0, 0, 0, 0, 0, 0]];
    expectAgree("tfjs-built: Embedding (mask_zero) → GRU → Dense", model.predict(x).data, tfPredict(m, x).data);
    m.dispose();
  });

  it("stateful GRU (batch_input_shape [2, null, F]), useBias false: the state carried call to call as tfjs carries it", async () => {
    const m = tf.sequential();
    m.add(tf.layers.gru({ units: 4, stateful: true, useBias: false, batchInputShape: [2, null, F] }));
    m.add(tf.layers.dense({ units: 2 }));
    const model = fromTfjs(await tfSave(m));
    expect([model.stateful, model.batchSize, (model.layers[0] as GRU).useBias]).toEqual([true, 2, false]);
    for (const seed of ["s1", "s2", "s3"]) {
      const x = seqX(seed, 2, 4, F);
      expectAgree(`tfjs-built: stateful GRU (${seed})`, model.predict(x).data, tfPredict(m, x).data);
    }
    m.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// fromTfjs: Keras-written GRUs with reset_after true (which tfjs cannot run)

interface FixtureLayer { type: "gru" | "dense"; units: number; returnSequences?: boolean; goBackwards?: boolean; activation?: "tanh" | "linear" }
interface FixtureCase { name: string; inputDim: number; layers: FixtureLayer[]; weights: unknown[]; x: number[][][]; y: number[][] | number[][][]; perStep: boolean }
const FIXTURE = JSON.parse(readFileSync(new URL("./fixtures/gru_keras_reset_after.json", import.meta.url), "utf8")) as { source: string; cases: FixtureCase[] };
const fixtureCase = (name: string): FixtureCase => FIXTURE.cases.find((c) => c.name === name)!;

const flatten = (a: unknown): number[] => (Array.isArray(a) ? a.flatMap(flatten) : [a as number]);
const shapeOf = (a: unknown): number[] => (Array.isArray(a) ? [a.length, ...shapeOf(a[0])] : []);

/**
 * A model.json and its weight file as tensorflowjs_converter writes a Keras model: Keras 3 (keras_version 3.x,
 * InputLayer batch_shape, DTypePolicy dtypes, numbered variables "layers/gru/cell/vars/0") or Keras 2 (tf.keras 2.15:
 * batch_input_shape, "gru/gru_cell/kernel", weights listed alphabetically). Each layer's config is the one Keras's
 * get_config writes for a GRU (reset_after true, its default) or a Dense.
 */
function kerasModelJSON(c: FixtureCase, style: "keras3" | "keras2", overrides: Partial<Record<string, unknown>> = {}): { json: TfjsModelJSON; files: Map<string, Uint8Array> } {
  const k3 = style === "keras3";
  const init = (cls: string, config: object) => ({ module: "keras.initializers", class_name: cls, config, registered_name: null });
  const dtype = k3 ? { module: "keras", class_name: "DTypePolicy", config: { name: "float32" }, registered_name: null } : "float32";
  const count = new Map<string, number>();
  const named = (t: string) => { const k = count.get(t) ?? 0; count.set(t, k + 1); return k === 0 ? t : `${t}_${k}`; };
  const specs: { name: string; shape: number[]; data: number[] }[] = [];
  let w = 0;
  const layers: object[] = [
    k3
      ? { class_name: "InputLayer", config: { batch_shape: [null, null, c.inputDim], dtype: "float32", sparse: false, name: "input_layer" } }
      : { class_name: "InputLayer", config: { batch_input_shape: [null, null, c.inputDim], dtype: "float32", sparse: false, ragged: false, name: "gru_input" } },
  ];
  for (const l of c.layers) {
    const name = named(l.type);
    const add = (slot: string, index: number) => {
      const v = c.weights[w++];
      specs.push({ name: k3 ? `layers/${name}/${l.type === "gru" ? "cell/" : ""}vars/${index}` : `${name}/${l.type === "gru" ? "gru_cell/" : ""}${slot}`, shape: shapeOf(v), data: flatten(v) });
    };
    if (l.type === "gru") {
      layers.push({
        module: "keras.layers", class_name: "GRU", registered_name: null,
        config: {
          name, trainable: true, dtype, return_sequences: Boolean(l.returnSequences), return_state: false, go_backwards: Boolean(l.goBackwards),
          stateful: false, unroll: false, ...(k3 ? { zero_output_for_mask: false } : { time_major: false }), units: l.units, activation: "tanh",
          recurrent_activation: "sigmoid", use_bias: true, kernel_initializer: init("GlorotUniform", { seed: null }),
          recurrent_initializer: init("Orthogonal", { gain: 1.0, seed: null }), bias_initializer: init("Zeros", {}), kernel_regularizer: null,
          recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, recurrent_constraint: null,
          bias_constraint: null, dropout: 0.0, recurrent_dropout: 0.0, reset_after: true, ...(k3 ? { seed: null } : { implementation: 2 }),
          ...overrides,
        },
      });
      const cfg = (layers[layers.length - 1] as { config: Record<string, unknown> }).config;
      for (const [k, v] of Object.entries(overrides)) if (v === undefined) delete cfg[k]; // an override of undefined: the key absent
      add("kernel", 0); add("recurrent_kernel", 1); add("bias", 2);
    } else {
      layers.push({
        module: "keras.layers", class_name: "Dense", registered_name: null,
        config: {
          name, trainable: true, dtype, units: l.units, activation: l.activation, use_bias: true, kernel_initializer: init("GlorotUniform", { seed: null }),
          bias_initializer: init("Zeros", {}), kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
        },
      });
      add("kernel", 0); add("bias", 1);
    }
  }
  if (!k3) specs.sort((a, b) => (a.name < b.name ? -1 : 1)); // the converter lists Keras 2's weights by name
  const bytes = new Uint8Array(4 * specs.reduce((s, p) => s + p.data.length, 0));
  const view = new DataView(bytes.buffer);
  let off = 0;
  for (const p of specs) for (const v of p.data) { view.setFloat32(off, v, true); off += 4; }
  const version = k3 ? "3.3.3" : "2.15.0";
  return {
    json: {
      format: "layers-model", generatedBy: `keras v${version}`, convertedBy: "TensorFlow.js Converter v4.22.0",
      modelTopology: { keras_version: version, backend: "tensorflow", model_config: { class_name: "Sequential", config: { name: "sequential", trainable: true, dtype, layers } } },
      weightsManifest: [{ paths: ["group1-shard1of1.bin"], weights: specs.map((s) => ({ name: s.name, shape: s.shape, dtype: "float32" })) }],
    } as TfjsModelJSON,
    files: new Map([["group1-shard1of1.bin", bytes]]),
  };
}

/** Our own model for a fixture case, built directly (resetAfter true, Keras's default and ours) with its weights. */
function ownModel(c: FixtureCase, dtype: DType, hard = false): Sequential {
  const layers = c.layers.map((l, i) => (l.type === "gru"
    ? new GRU({ units: l.units, inputDim: i === 0 ? c.inputDim : undefined, returnSequences: l.returnSequences, goBackwards: l.goBackwards, recurrentActivation: hard ? "hardSigmoid" : "sigmoid" })
    : new Dense({ units: l.units, activation: l.activation })));
  const m = new Sequential(layers, { dtype });
  m.setWeights(c.weights.map((w) => fromData(Float64Array.from(flatten(w)), shapeOf(w))));
  return m;
}

describe("fromTfjs: a Keras-written GRU with reset_after true (bias [2, 3H]), which tfjs cannot load, predicts what torch.nn.GRU computes", () => {
  it("the fixture says where it came from", () => {
    expect(FIXTURE.source).toMatch(/torch\.nn\.GRU/);
    expect(FIXTURE.cases.map((c) => c.name)).toEqual(["stacked", "perstep_backwards"]);
  });

  for (const style of ["keras3", "keras2"] as const) {
    for (const name of ["stacked", "perstep_backwards"]) {
      it(`${style === "keras3" ? "Keras 3 (numbered variables)" : "Keras 2.15 (gru/gru_cell/…, alphabetical)"}: ${name}`, async () => {
        const c = fixtureCase(name);
        const { json, files } = kerasModelJSON(c, style);
        const artifacts = tfjsArtifactsFromModelJSON(json, files);
        const y = flatten(c.y);
        for (const dtype of ["float64", "float32"] as DType[]) {
          const model = fromTfjs(artifacts, { dtype });
          const grus = model.layers.filter((l): l is GRU => l instanceof GRU);
          expect(grus.map((g) => [g.resetAfter, g.recurrentActivation])).toEqual(grus.map(() => [true, "sigmoid"]));
          const shapes = model.weightShapes(), wn = model.weightNames();
          expect(grus.map((_, k) => shapes[wn.indexOf(`gru_${k}/bias`)])).toEqual(grus.map((g) => [2, 3 * g.units])); // the [2, 3H] biases
          const got = model.predict(c.x);
          expect(got.shape).toEqual(shapeOf(c.y));
          // float64: the weights and x are float32 values, so only the arithmetic differs from torch's float64.
          expectAgree(`Keras reset_after true (${style}, ${dtype}) vs torch.nn.GRU: ${name}`, got.data, y, dtype === "float64" ? 1e-12 : TOL);
          // And bit for bit what our own GRU computes with the same weights.
          expect(bits([got])).toEqual(bits([ownModel(c, dtype).predict(c.x)]));
        }
        // tfjs itself cannot run this file: the Keras 2 one for its reset_after (the Keras 3 one fails before, on its InputLayer's batch_shape).
        if (style === "keras2") await expect(tf.loadLayersModel(tf.io.fromMemory(artifacts as tf.io.ModelArtifacts))).rejects.toThrow(/GRUCell does not support reset_after parameter set to true/);
      });
    }
  }

  it("Keras 2's hard_sigmoid (clip(0.2·x + 0.5, 0, 1)) with reset_after true reads as hardSigmoid: our own GRU's bits; Keras 3's is refused", () => {
    const c = fixtureCase("stacked");
    const { json, files } = kerasModelJSON(c, "keras2", { recurrent_activation: "hard_sigmoid" });
    const model = fromTfjs(tfjsArtifactsFromModelJSON(json, files));
    expect((model.layers[0] as GRU).recurrentActivation).toBe("hardSigmoid");
    const x = c.x.map((row) => row.map((s) => s.map((v) => 4 * v))); // large enough that the gates clip
    const got = model.predict(x);
    expect(bits([got])).toEqual(bits([ownModel(c, "float32", true).predict(x)]));
    expect(distance(got.data, ownModel(c, "float32").predict(x).data)).toBeGreaterThan(1e-3);
    const k3 = kerasModelJSON(c, "keras3", { recurrent_activation: "hard_sigmoid" });
    expect(() => fromTfjs(tfjsArtifactsFromModelJSON(k3.json, k3.files))).toThrow(/layers\[1\] \(GRU "gru"\): config\.recurrent_activation "hard_sigmoid" of Keras 3 is relu6/);
  });

  it("on to ONNX Runtime: the Keras file's model exported by toOnnx predicts torch's numbers", async () => {
    for (const name of ["stacked", "perstep_backwards"]) {
      const c = fixtureCase(name);
      const { json, files } = kerasModelJSON(c, "keras3");
      const s = await ort.InferenceSession.create(toOnnx(fromTfjs(tfjsArtifactsFromModelJSON(json, files))));
      expectAgree(`Keras reset_after true → toOnnx: ${name}`, (await runOrt(s, c.x)).data as Float32Array, flatten(c.y));
    }
  });
});

describe("fromTfjs refuses by name what it cannot read in a GRU (FormatError), the artifacts untouched", () => {
  const base = (): { modelTopology: any; weightSpecs: any[]; weightData: ArrayBuffer } => {
    const m = new Sequential([new GRU({ units: 3, inputDim: 2, resetAfter: false, returnSequences: true }), new GRU({ units: 2, resetAfter: false }), new Dense({ units: 1 })], { dtype: "float32" });
    return structuredClone(toTfjs(m)) as never;
  };
  const layer = (a: { modelTopology: any }, i: number): any => a.modelTopology.config.layers[i];
  function refused(mutate: (a: ReturnType<typeof base>) => void, ...parts: string[]): void {
    const a = base();
    mutate(a);
    const before = JSON.stringify([a.modelTopology, a.weightSpecs]);
    let err: unknown;
    try { fromTfjs(a as TfjsArtifactsInput); } catch (e) { err = e; }
    expect(err, `expected a FormatError mentioning ${parts.join(", ")}`).toBeInstanceOf(FormatError);
    for (const p of parts) expect((err as Error).message).toContain(p);
    expect(JSON.stringify([a.modelTopology, a.weightSpecs])).toBe(before);
  }

  it("the base loads", () => {
    expect(fromTfjs(base() as TfjsArtifactsInput).layers.map((l) => l.kind)).toEqual(["gru", "gru", "dense"]);
  });

  it("activations: another activation than tanh, another or a missing recurrent_activation, Keras 3's hard_sigmoid", () => {
    refused((a) => { layer(a, 0).config.activation = "relu"; }, "layers[0] (GRU \"gru\")", "config.activation \"relu\" is not supported; longshort's GRU computes \"tanh\"");
    refused((a) => { layer(a, 1).config.activation = "linear"; }, "layers[1] (GRU \"gru_1\")", "activation \"linear\"");
    refused((a) => { layer(a, 1).config.recurrent_activation = "tanh"; }, "layers[1]", "config.recurrent_activation \"tanh\" is not supported");
    refused((a) => { delete layer(a, 0).config.recurrent_activation; }, "layers[0]", "config.recurrent_activation is missing");
    refused((a) => { layer(a, 0).config.activation = { class_name: "Custom" }; }, "layers[0]", "custom activations");
    refused((a) => { a.modelTopology.keras_version = "3.1.0"; layer(a, 0).config.recurrent_activation = "hard_sigmoid"; }, "layers[0]", "Keras 3", "relu6(x + 3) / 6");
  });

  it("reset_after: not a boolean; true on tfjs's [3H] bias", () => {
    refused((a) => { layer(a, 0).config.reset_after = "yes"; }, "layers[0] (GRU \"gru\")", "config.reset_after: expected true or false");
    // reset_after true wants the [2, 3H] bias; the file has tfjs's [3H].
    refused((a) => { layer(a, 0).config.reset_after = true; }, "gru/bias", "expected shape [2, 9], got [9]");
    // … also when the bytes would be enough: a [2, 3] bias of 6 values for gru_1's [2, 6].
    refused((a) => { layer(a, 1).config.reset_after = true; a.weightSpecs[5].shape = [2, 3]; }, "gru_1/bias", "expected shape [2, 6], got [2, 3]");
  });

  it("reset_after false or absent (tfjs's form) on Keras's [2, 3H] bias is refused by the bias's shape", () => {
    const c = fixtureCase("perstep_backwards");
    for (const over of [{ reset_after: false }, { reset_after: undefined }]) {
      const { json, files } = kerasModelJSON(c, "keras2", over);
      expect(() => fromTfjs(tfjsArtifactsFromModelJSON(json, files))).toThrow(FormatError);
      expect(() => fromTfjs(tfjsArtifactsFromModelJSON(json, files))).toThrow(/gru\/gru_cell\/bias \(gru_0\/bias\): expected shape \[15\], got \[2, 15\]/);
    }
  });

  it("return_state, time_major, a GRU that gets no sequence, dropout rates, units", () => {
    refused((a) => { layer(a, 0).config.return_state = true; }, "layers[0]", "config.return_state true is not supported");
    refused((a) => { layer(a, 1).config.time_major = true; }, "layers[1]", "config.time_major true is not supported");
    refused((a) => { layer(a, 0).config.return_sequences = false; }, "layers[1] (GRU \"gru_1\")", "a GRU below it has return_sequences false, so this GRU would get no sequence");
    refused((a) => { layer(a, 0).config.dropout = 1; }, "layers[0]", "config.dropout: expected a rate in [0, 1), got 1");
    refused((a) => { layer(a, 1).config.units = 0; }, "layers[1]", "config.units: expected a positive integer");
    refused((a) => { layer(a, 1).config.go_backwards = "no"; }, "layers[1]", "config.go_backwards: expected true or false");
  });

  it("what only speed or training randomness reads is ignored: implementation, unroll, Keras 3's seed and use_cudnn", () => {
    const a = base(), want = fromTfjs(a as TfjsArtifactsInput);
    Object.assign(layer(a, 0).config, { implementation: 1, unroll: true, seed: 42, use_cudnn: "auto" });
    expect(bits(fromTfjs(a as TfjsArtifactsInput).getWeights())).toEqual(bits(want.getWeights()));
    expect(config(fromTfjs(a as TfjsArtifactsInput))).toEqual(config(want));
  });

  it("SimpleRNN stays refused, the message naming the GRU among what is read; a Bidirectional needs the layer it wraps", () => {
    refused((a) => { layer(a, 1).class_name = "SimpleRNN"; }, "layers[1]", "\"SimpleRNN\" is not supported", "LSTM, GRU and Dense");
    refused((a) => { layer(a, 1).class_name = "Bidirectional"; }, "layers[1] (Bidirectional \"gru_1\")", "config.layer: expected a layer { class_name, config }");
  });
});

// ---------------------------------------------------------------------------------------------------
// toOnnx

interface OnnxCase { name: string; input: "ids" | number; layers: () => (GRU | LSTM | Dense | Embedding)[]; dtype?: DType; scale?: number }

const ONNX_CASES: OnnxCase[] = [
  { name: "GRU (resetAfter true) → Dense (sigmoid)", input: 3, layers: () => [new GRU({ units: 5, inputDim: 3 }), new Dense({ units: 2, activation: "sigmoid" })] },
  { name: "GRU (resetAfter false) → Dense", input: 3, layers: () => [new GRU({ units: 5, inputDim: 3, resetAfter: false }), new Dense({ units: 2 })] },
  {
    name: "GRU (hardSigmoid, sequences) → GRU (hardSigmoid, resetAfter false), weights large enough that the gates clip", input: 3, scale: 1.5,
    layers: () => [new GRU({ units: 4, inputDim: 3, returnSequences: true, recurrentActivation: "hardSigmoid" }), new GRU({ units: 3, resetAfter: false, recurrentActivation: "hardSigmoid" })],
  },
  {
    name: "useBias false, both forms: GRU (sequences) → GRU (resetAfter false) → Dense", input: 2,
    layers: () => [new GRU({ units: 4, inputDim: 2, useBias: false, returnSequences: true }), new GRU({ units: 3, useBias: false, resetAfter: false }), new Dense({ units: 2 })],
  },
  {
    name: "goBackwards: GRU (sequences, backwards) → GRU (backwards, resetAfter false) → Dense", input: 3,
    layers: () => [new GRU({ units: 4, inputDim: 3, returnSequences: true, goBackwards: true }), new GRU({ units: 3, goBackwards: true, resetAfter: false }), new Dense({ units: 1 })],
  },
  {
    name: "per step: GRU (sequences, resetAfter false, backwards) → Dense (tanh) per step", input: 3,
    layers: () => [new GRU({ units: 4, inputDim: 3, returnSequences: true, resetAfter: false, goBackwards: true }), new Dense({ units: 2, activation: "tanh" })],
  },
  {
    name: "mix: LSTM (sequences) → GRU (sequences, resetAfter false) → LSTM (sequences, backwards) → GRU → Dense", input: 3,
    layers: () => [
      new LSTM({ units: 4, inputDim: 3, returnSequences: true }), new GRU({ units: 3, returnSequences: true, resetAfter: false }),
      new LSTM({ units: 3, returnSequences: true, goBackwards: true }), new GRU({ units: 2 }), new Dense({ units: 2 }),
    ],
  },
  {
    name: "Dense (relu) first → GRU (sequences) → LSTM (sequences) per step, ending on the LSTM", input: 3,
    layers: () => [new Dense({ units: 4, inputDim: 3, activation: "relu" }), new GRU({ units: 3, returnSequences: true }), new LSTM({ units: 2, returnSequences: true })],
  },
  { name: "Embedding → GRU → Dense (softmax)", input: "ids", layers: () => [new Embedding({ inputDim: V, outputDim: 3 }), new GRU({ units: 4 }), new Dense({ units: 3, activation: "softmax" })] },
  {
    name: "float64 model (weights rounded to float32): GRU (sequences) → GRU (resetAfter false, hardSigmoid)", input: 2, dtype: "float64",
    layers: () => [new GRU({ units: 4, inputDim: 2, returnSequences: true }), new GRU({ units: 3, resetAfter: false, recurrentActivation: "hardSigmoid" })],
  },
];

function onnxInput(c: { input: "ids" | number }, seed: string, B: number, T: number): number[][] | number[][][] {
  return c.input === "ids" ? ids(seed, B, T) : seqX(seed, B, T, c.input);
}

describe("toOnnx: every GRU is one ONNX GRU node, and ORT's y is predict", () => {
  ONNX_CASES.forEach((c, ci) => {
    it(c.name, async () => {
      const model = new Sequential(c.layers(), { seed: 30 + ci, dtype: c.dtype ?? "float32" });
      if (!model.engine.built) model.build(1);
      perturb(model, 30 + ci, c.scale ?? 0.4);
      const bytes = toOnnx(model);
      const nodes = onnxNodes(bytes);
      const grus = model.layers.filter((l): l is GRU => l instanceof GRU);
      const gruNodes = nodes.filter((n) => n.op === "GRU");
      expect(gruNodes.length).toBe(grus.length);
      expect(nodes.filter((n) => n.op === "LSTM").length).toBe(model.layers.filter((l) => l instanceof LSTM).length);
      gruNodes.forEach((n, k) => {
        const l = grus[k]!;
        expect(n.name).toBe(`gru_${k}`);
        expect(n.attrs["hidden_size"]).toBe(l.units);
        expect(n.attrs["linear_before_reset"]).toBe(l.resetAfter ? 1 : 0);
        expect(n.attrs["activations"]).toEqual(l.recurrentActivation === "hardSigmoid" ? ["HardSigmoid", "Tanh"] : undefined);
        expect(n.attrs["direction"]).toBe(l.goBackwards ? "reverse" : undefined);
        expect(n.inputs.length).toBe(l.useBias ? 4 : 3); // X, W, R[, B]
      });
      const s = await ort.InferenceSession.create(bytes);
      for (const [b, t] of [[3, 5], [1, 1], [4, 7]] as const) {
        const x = onnxInput(c, `onnx/${ci}/${b}/${t}`, b, t);
        const want = model.predict(x as number[][][]), got = await runOrt(s, x);
        expect(got.type).toBe("float32");
        expect(got.dims).toEqual(want.shape);
        expectAgree(`toOnnx: ${c.name} (B=${b}, T=${t})`, got.data as Float32Array, want.data);
      }
      if (c.scale) {
        // The hard sigmoid's clipping was reached: pre-activations of the first GRU's z and r gates past ±2.5 at step 0.
        const [k, , bias] = model.getWeights();
        const x0 = onnxInput(c, "onnx/clip", 4, 1) as number[][][];
        const H = grus[0]!.units, G = 3 * H, I = c.input as number;
        let clipped = 0, linear = 0;
        for (const row of x0) {
          for (let j = 0; j < 2 * H; j++) {
            let z = bias!.data[j]! + bias!.data[G + j]!;
            for (let i = 0; i < I; i++) z += row[0]![i]! * k!.data[i * G + j]!;
            if (Math.abs(z) > 2.5) clipped++; else linear++;
          }
        }
        expect(clipped).toBeGreaterThan(0);
        expect(linear).toBeGreaterThan(0);
      }
    });
  });

  it("ORT's GRU has no float64 kernel, so the graph is float32 throughout: the exported float64 model's input and output are float32", async () => {
    const model = new Sequential([new GRU({ units: 2, inputDim: 2 })], { dtype: "float64", seed: 1 });
    const s = await ort.InferenceSession.create(toOnnx(model));
    const [inMeta] = s.inputMetadata, [outMeta] = s.outputMetadata;
    expect(inMeta!.isTensor && [inMeta!.type, outMeta!.isTensor && outMeta!.type]).toEqual(["float32", "float32"]);
  });

  it("sensitivity: the comparisons above would see a z/r block swap and a flipped linear_before_reset", () => {
    const x = seqX("sens", 3, 6, 3);
    const model = perturb(new Sequential([new GRU({ units: 4, inputDim: 3 }), new Dense({ units: 2 })], { dtype: "float32", seed: 3 }), 3);
    const y = model.predict(x).data;
    // z and r swapped in every GRU weight (kernel, recurrent kernel, both bias rows).
    const H = 4, G = 3 * H;
    const swapped = model.getWeights().map((w, i) => {
      if (i > 2) return w;
      const d = Float32Array.from(w.data);
      for (let r = 0; r < d.length / G; r++) for (let j = 0; j < H; j++) [d[r * G + j], d[r * G + H + j]] = [d[r * G + H + j]!, d[r * G + j]!];
      return fromData(d, w.shape);
    });
    const other = new Sequential([new GRU({ units: 4, inputDim: 3 }), new Dense({ units: 2 })], { dtype: "float32" });
    other.setWeights(swapped);
    expect(distance(other.predict(x).data, y)).toBeGreaterThan(1e-3);
    // resetAfter false on the same kernels and the input bias row: another number.
    const before = new Sequential([new GRU({ units: 4, inputDim: 3, resetAfter: false }), new Dense({ units: 2 })], { dtype: "float32" });
    const [k, r, b, ...head] = model.getWeights();
    before.setWeights([k!, r!, fromData(b!.data.slice(0, G), [G]), ...head]);
    const zeroH = new Sequential([new GRU({ units: 4, inputDim: 3 }), new Dense({ units: 2 })], { dtype: "float32" });
    zeroH.setWeights([k!, r!, fromData(Float32Array.from([...b!.data.slice(0, G), ...new Array(G).fill(0)]), [2, G]), ...head]);
    expect(distance(before.predict(x).data, zeroH.predict(x).data)).toBeGreaterThan(1e-3);
  });
});

/**
 * Masked GRU models, each run with zeroOutputForMask false and true on every recurrent layer: the top recurrent layer
 * (a GRU or an LSTM, over a GRU or an LSTM) per step or last step, forward or backwards. `zeroMatters`: whether
 * zeroOutputForMask changes predict on post-padded rows (not for a backwards top).
 */
const MASKED: { name: string; input: "ids" | { F: number; maskValue: number }; zeroMatters: boolean; layers: (z: boolean) => (Masking | Embedding | GRU | LSTM | Dense)[] }[] = [
  {
    name: "Embedding (maskZero) → GRU → Dense: a last-step top GRU", input: "ids", zeroMatters: true,
    layers: (z) => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new GRU({ units: 4, zeroOutputForMask: z }), new Dense({ units: 2 })],
  },
  {
    name: "Masking (−1) → GRU (sequences, resetAfter false) → Dense (relu) → GRU (sequences) per step: a per-step top GRU", input: { F: 2, maskValue: -1 }, zeroMatters: true,
    layers: (z) => [
      new Masking({ maskValue: -1 }), new GRU({ units: 4, inputDim: 2, returnSequences: true, resetAfter: false, zeroOutputForMask: z }),
      new Dense({ units: 3, activation: "relu" }), new GRU({ units: 3, returnSequences: true, zeroOutputForMask: z }),
    ],
  },
  {
    name: "Masking (0) → LSTM (sequences) → GRU (sequences, hardSigmoid) per step: a top GRU over an LSTM", input: { F: 3, maskValue: 0 }, zeroMatters: true,
    layers: (z) => [new Masking(), new LSTM({ units: 3, inputDim: 3, returnSequences: true, zeroOutputForMask: z }), new GRU({ units: 3, returnSequences: true, recurrentActivation: "hardSigmoid", zeroOutputForMask: z })],
  },
  {
    name: "Masking (0) → LSTM (sequences) → GRU: a last-step top GRU over an LSTM", input: { F: 2, maskValue: 0 }, zeroMatters: true,
    layers: (z) => [new Masking(), new LSTM({ units: 3, inputDim: 2, returnSequences: true, zeroOutputForMask: z }), new GRU({ units: 2, zeroOutputForMask: z })],
  },
  {
    name: "Masking (0) → GRU (sequences, backwards, resetAfter false) → LSTM (sequences) per step: a top LSTM over a backwards GRU", input: { F: 3, maskValue: 0 }, zeroMatters: true,
    layers: (z) => [new Masking(), new GRU({ units: 3, inputDim: 3, returnSequences: true, goBackwards: true, resetAfter: false, zeroOutputForMask: z }), new LSTM({ units: 2, returnSequences: true, zeroOutputForMask: z })],
  },
  {
    name: "Embedding (maskZero) → GRU (sequences) → GRU (sequences, backwards) → Dense per step: a backwards top GRU", input: "ids", zeroMatters: false,
    layers: (z) => [new Embedding({ inputDim: V, outputDim: 4, maskZero: true }), new GRU({ units: 3, returnSequences: true, zeroOutputForMask: z }), new GRU({ units: 3, returnSequences: true, goBackwards: true, zeroOutputForMask: z }), new Dense({ units: 2 })],
  },
];

/** The case's input for rows kept up to lens[b] (then padded), or masked where `masked(b, t)`. */
function maskedInput(c: (typeof MASKED)[number], seed: string, T: number, masked: (b: number, t: number) => boolean, B: number): number[][] | number[][][] {
  if (c.input === "ids") return ids(seed, B, T, masked);
  const { F: f, maskValue } = c.input;
  const x = seqX(seed, B, T, f);
  x.forEach((row, b) => row.forEach((step, t) => { if (masked(b, t)) step.fill(maskValue); }));
  return x;
}

describe("toOnnx masks GRUs as LSTMs (sequence_lens): ORT's y is predict on rows padded at the end, NaN on others", () => {
  MASKED.forEach((c, ci) => {
    it(c.name, async () => {
      await expectOnnxMasking(c.name, (z) => perturb(new Sequential(c.layers(z), { seed: 50 + ci, dtype: "float32" }), 50 + ci), Boolean(c.zeroMatters), String(ci),
        (seed, T, masked, B) => maskedInput(c, seed, T, masked, B), expectAgree);
    });
  });
});
