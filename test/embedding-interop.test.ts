/**
 * The Embedding layer, and masking, through TensorFlow.js and ONNX Runtime (the real @tensorflow/tfjs on its CPU
 * backend and the real onnxruntime-node; no mocks):
 * - fromTfjs reads an Embedding: models built and trained in tfjs (mask_zero with 0 anywhere in the ids, an LSTM
 *   above; a per-step head; an InputLayer first; a folder written as tfjs's file handler writes it) predict what tfjs
 *   predicts; ours → toTfjs → (tfjs) → fromTfjs keeps every weight's bits; what cannot be read is refused by name;
 * - toOnnx exports an Embedding as a Gather on its table, the graph's input int64 ids [batch, time];
 * - toOnnx exports masking (Masking, or maskZero) as the LSTMs' sequence_lens: the graph is predict on rows padded
 *   at the end, in every LSTM variant whose masked output differs from ONNX's (returnSequences, zeroOutputForMask,
 *   goBackwards), and NaN on any other row; why NaN: what sequence_lens computes on such a row is not Keras's.
 *
 * No golden values: every comparison is against our own predict (or tfjs's, for tfjs-built models). Agreement with
 * tfjs and ORT is |a − b| ≤ 1e-5·(1 + |b|) elementwise (float32; ORT's LSTM has no float64 kernel).
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Sequential, LSTM, Dense, Embedding, Masking, FormatError, ValueError, toTfjs, fromTfjs, toOnnx, loadTfjs, randomNormal,
  type DType,
} from "../src/node/index.js";
import type { TfjsArtifactsInput } from "../src/interop/tfjs.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";
import { agreement, bits, distance, fitTf, pbFields, runOrt, tfPredict, tfSave, utf8 } from "./helpers/interop.js";

// ---------------------------------------------------------------------------------------------------
// Helpers

const TOL = 1e-5;
const expectAgree = agreement("tfjs/ORT", TOL);

const V = 9;

/** ids [B, T] in [1, V), then 0 at the steps `pad(b, t)` says. */
function ids(seed: string, B: number, T: number, pad: (b: number, t: number) => boolean = () => false): number[][] {
  const r = new Rng(`embedding-interop/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (pad(b, t) ? 0 : 1 + r.int(V - 1))));
}

/** Post-padded ids: row b keeps its first lens[b] steps. */
const postIds = (seed: string, T: number, lens: number[]): number[][] => ids(seed, lens.length, T, (b, t) => t >= lens[b]!);

/** x [B, T, F] of float32-representable normals; row b's steps from lens[b] on are all `maskValue` (post-padding). */
function postX(seed: string, T: number, F: number, lens: number[], maskValue: number): number[][][] {
  const r = new Rng(`embedding-interop/x/${seed}`);
  return lens.map((len) => Array.from({ length: T }, (_, t) => Array.from({ length: F }, () => (t >= len ? maskValue : Math.fround(r.normal())))));
}

/** Spread every weight so that a swapped, dropped or misplaced one would show. */
function perturb(model: Sequential, seed: number): Sequential {
  const r = new Rng(`embedding-interop/perturb/${seed}`);
  model.setWeights(model.getWeights().map((w) => fromData(w.data.map((v) => v + 0.4 * (2 * r.uniform() - 1)), w.shape)));
  return model;
}

/** tfjs's file handler, as tfjs-node's file:// writes a folder: model.json (topology + manifest) and weights.bin. */
async function saveTfFolder(m: tf.LayersModel, dir: string): Promise<void> {
  await m.save(tf.io.withSaveHandler(async (a) => {
    const json = { modelTopology: a.modelTopology, format: a.format, generatedBy: a.generatedBy, convertedBy: a.convertedBy, weightsManifest: [{ paths: ["weights.bin"], weights: a.weightSpecs }] };
    writeFileSync(join(dir, "model.json"), JSON.stringify(json));
    writeFileSync(join(dir, "weights.bin"), new Uint8Array(a.weightData as ArrayBuffer));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
  }));
}

/** The op types of an ONNX ModelProto's graph, read with a minimal protobuf walk (ModelProto 7 → GraphProto 1 → NodeProto 4). */
function onnxOps(model: Uint8Array): string[] {
  const graph = pbFields(model).find((f) => f.field === 7)!.bytes!;
  return pbFields(graph).filter((f) => f.field === 1).map((n) => utf8(pbFields(n.bytes!).find((f) => f.field === 4)!.bytes!));
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend("cpu");
});

// ---------------------------------------------------------------------------------------------------
// TensorFlow.js

describe("fromTfjs reads an Embedding: models built and trained in tfjs predict what tfjs predicts", () => {
  it("Embedding (mask_zero, a regularizer and a constraint) → LSTM → Dense (sigmoid), ids with 0 at the front, in the middle and at the end", async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({
      inputDim: V, outputDim: 4, maskZero: true,
      embeddingsRegularizer: tf.regularizers.l2({ l2: 0.01 }), embeddingsConstraint: tf.constraints.maxNorm({ maxValue: 0.5 }),
    }));
    m.add(tf.layers.lstm({ units: 5 })); // tfjs's default recurrent activation: the hard sigmoid
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    await fitTf(m, ids("fit-a", 8, 6, (b, t) => (b + t) % 4 === 0), randomNormal([8, 1], { seed: 1 }));
    const model = fromTfjs(await tfSave(m));
    expect(model.layers.map((l) => l.kind)).toEqual(["embedding", "lstm", "dense"]);
    const e = model.layers[0] as Embedding;
    expect([e.inputDim, e.outputDim, e.maskZero]).toEqual([V, 4, true]);
    // Another length than in training (the topology's time is null); rows padded at the front, the middle, the end, all of it.
    const x = [[0, 0, 3, 4, 5, 6, 7], [1, 0, 0, 2, 8, 0, 3], [5, 6, 7, 8, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]];
    const ours = model.predict(x), theirs = tfPredict(m, x);
    expect(ours.shape).toEqual(theirs.shape);
    expectAgree("tfjs-built: Embedding (mask_zero) → LSTM → Dense", ours.data, theirs.data);
    // The mask travelled: without it (same weights) the zeros are read as id 0 and the output moves.
    const bare = new Sequential([new Embedding({ inputDim: V, outputDim: 4 }), new LSTM({ units: 5, recurrentActivation: "hardSigmoid" }), new Dense({ units: 1, activation: "sigmoid" })], { dtype: "float32" });
    bare.setWeights(model.getWeights());
    expect(distance(bare.predict(x).data, ours.data)).toBeGreaterThan(1e-4);
    m.dispose();
  });

  it("Embedding (input_length 6) → LSTM (return_sequences) → Dense (tanh) per step, read from a folder written as tfjs's file handler writes it (loadTfjs)", async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: V, outputDim: 3, inputLength: 6 }));
    m.add(tf.layers.lstm({ units: 4, returnSequences: true, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 2, activation: "tanh" }));
    await fitTf(m, ids("fit-b", 8, 6), randomNormal([8, 6, 2], { seed: 2 }));
    const dir = mkdtempSync(join(tmpdir(), "longshort-embio-"));
    try {
      await saveTfFolder(m, dir);
      const model = await loadTfjs(dir);
      expect(model.layers.map((l) => l.kind)).toEqual(["embedding", "lstm", "dense"]);
      expect(model.perStep).toBe(true);
      const x = ids("test-b", 3, 6);
      const ours = model.predict(x), theirs = tfPredict(m, x);
      expect(ours.shape).toEqual([3, 6, 2]);
      expect(theirs.shape).toEqual([3, 6, 2]);
      expectAgree("tfjs-built: Embedding → LSTM (sequences) → Dense per step", ours.data, theirs.data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    m.dispose();
  });

  it("InputLayer (int32 [null, null]) → Embedding (mask_zero) → LSTM (sequences) → Dense (relu) → LSTM → Dense; then on to ONNX Runtime", async () => {
    const m = tf.sequential();
    m.add(tf.layers.inputLayer({ batchInputShape: [null, null], dtype: "int32" }));
    m.add(tf.layers.embedding({ inputDim: V, outputDim: 3, maskZero: true }));
    m.add(tf.layers.lstm({ units: 4, returnSequences: true, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 3, activation: "relu" }));
    m.add(tf.layers.lstm({ units: 3, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 2 }));
    await fitTf(m, ids("fit-c", 8, 5, (b, t) => t >= 5 - (b % 3)), randomNormal([8, 2], { seed: 3 }));
    const model = fromTfjs(await tfSave(m));
    expect(model.layers.map((l) => l.kind)).toEqual(["embedding", "lstm", "dense", "lstm", "dense"]);
    const x = [[1, 2, 3, 0, 0], [0, 4, 5, 0, 6], [7, 8, 1, 2, 3], [0, 0, 0, 0, 0]];
    expectAgree("tfjs-built: InputLayer → Embedding (mask_zero) → LSTM → Dense → LSTM → Dense", model.predict(x).data, tfPredict(m, x).data);
    // tfjs → longshort → ONNX Runtime, on post-padded rows.
    const post = postIds("chain", 5, [5, 3, 1, 0]);
    const s = await ort.InferenceSession.create(toOnnx(model));
    expectAgree("tfjs-built → toOnnx: ORT", (await runOrt(s, post)).data as Float32Array, tfPredict(m, post).data);
    m.dispose();
  });
});

describe("ours → tfjs → ours: every weight's bits", () => {
  const cases: { name: string; layers: () => (Embedding | LSTM | Dense)[] }[] = [
    { name: "Embedding (maskZero) → LSTM → Dense (sigmoid)", layers: () => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 4 }), new Dense({ units: 1, activation: "sigmoid" })] },
    { name: "Embedding → Dense (tanh) → LSTM (sequences, hardSigmoid, backwards) → Dense per step", layers: () => [new Embedding({ inputDim: V, outputDim: 4 }), new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 3, returnSequences: true, recurrentActivation: "hardSigmoid", goBackwards: true }), new Dense({ units: 2 })] },
  ];
  cases.forEach((c, ci) => {
    it(`${c.name}: fromTfjs(toTfjs), and through tfjs itself (tf.loadLayersModel, then tfjs's save)`, async () => {
      const model = perturb(new Sequential(c.layers(), { seed: 5 + ci, dtype: "float32" }), ci); // built: its input is one id per step
      const a = toTfjs(model);
      const tfModel = await tf.loadLayersModel(tf.io.fromMemory(a as tf.io.ModelArtifacts));
      const x = ids(`rt/${ci}`, 3, 5, (b, t) => b === 1 && t > 2);
      expectAgree(`toTfjs: ${c.name}`, model.predict(x).data, tfPredict(tfModel, x).data);
      for (const back of [fromTfjs(a), fromTfjs(await tfSave(tfModel))]) {
        expect(back.layers.map((l) => l.kind)).toEqual(model.layers.map((l) => l.kind));
        expect((back.layers[0] as Embedding).maskZero).toBe((model.layers[0] as Embedding).maskZero);
        expect(back.weightShapes()).toEqual(model.weightShapes());
        expect(bits(back.getWeights())).toEqual(bits(model.getWeights()));
        expect(bits([back.predict(x)])).toEqual(bits([model.predict(x)]));
      }
      tfModel.dispose();
    });
  });

  it("toTfjs refuses an Embedding (maskZero) model with zeroOutputForMask by name: tfjs's RNN has no such option", () => {
    const m = new Sequential([new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 2, zeroOutputForMask: true })]);
    expect(() => toTfjs(m)).toThrow(ValueError);
    expect(() => toTfjs(m)).toThrow(/toTfjs model: layers\[1\] has zeroOutputForMask, which TensorFlow\.js's RNN does not have/);
    // Without a mask the option changes nothing, and the model goes.
    const plain = new Sequential([new Embedding({ inputDim: V, outputDim: 3 }), new LSTM({ units: 2, zeroOutputForMask: true })]);
    expect(toTfjs(plain).modelTopology).toBeDefined();
  });
});

describe("fromTfjs refuses by name what it cannot read in an Embedding model (FormatError)", () => {
  const base = (): { modelTopology: any; weightSpecs: any[]; weightData: ArrayBuffer } => {
    const m = new Sequential([new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 2 }), new Dense({ units: 1 })], { dtype: "float32" });
    return structuredClone(toTfjs(m)) as never;
  };
  const layers = (a: { modelTopology: any }): any[] => a.modelTopology.config.layers;
  function refused(mutate: (a: ReturnType<typeof base>) => void, ...parts: string[]): void {
    const a = base();
    mutate(a);
    let err: unknown;
    try { fromTfjs(a as TfjsArtifactsInput); } catch (e) { err = e; }
    expect(err, `expected a FormatError mentioning ${parts.join(", ")}`).toBeInstanceOf(FormatError);
    for (const p of parts) expect((err as Error).message).toContain(p);
  }

  it("the base loads", () => {
    expect(fromTfjs(base() as TfjsArtifactsInput).layers.map((l) => l.kind)).toEqual(["embedding", "lstm", "dense"]);
  });

  it("an Embedding not first, or after a Masking layer", () => {
    refused((a) => { layers(a).splice(2, 0, structuredClone(layers(a)[0])); layers(a)[2].config.name = "embedding_1"; }, "layers[2] (Embedding \"embedding_1\")", "only supported as the first layer");
    // As tfjs would save it (the shape on the Masking layer), or with the Embedding's ids shape left on.
    refused((a) => {
      delete layers(a)[0].config.batch_input_shape;
      layers(a).unshift({ class_name: "Masking", config: { name: "masking", batch_input_shape: [null, null, 1], mask_value: 0 } });
    }, "layers[1] (Embedding \"embedding\")", "an Embedding after a Masking layer is not supported");
    refused((a) => { layers(a).unshift({ class_name: "Masking", config: { name: "masking", mask_value: 0 } }); }, "layers[1] (Embedding \"embedding\")", "an Embedding after a Masking layer");
  });

  it("an input shape that is not ids [batch, timesteps], an input_length that disagrees with it, a LoRA rank, bad sizes", () => {
    refused((a) => { layers(a)[0].config.batch_input_shape = [null, null, 1]; }, "layers[0] (Embedding \"embedding\")", "expected a batch shape [batch, timesteps]", "got 3 entries");
    refused((a) => { layers(a)[0].config.batch_input_shape = [null, 6]; layers(a)[0].config.input_length = 5; }, "config.input_length 5 disagrees with the input shape's 6 timesteps");
    refused((a) => { layers(a)[0].config.input_length = "five"; }, "config.input_length: expected null or a positive integer");
    refused((a) => { layers(a)[0].config.lora_rank = 4; }, "config.lora_rank 4", "LoRA");
    refused((a) => { layers(a)[0].config.input_dim = 0; }, "layers[0] (Embedding \"embedding\")", "config.input_dim: expected a positive integer");
    refused((a) => { layers(a)[0].config.mask_zero = "yes"; }, "config.mask_zero: expected true or false");
    refused((a) => { a.weightSpecs[0].shape = [3, V]; }, "embedding/embeddings", `expected shape [${V}, 3], got [3, ${V}]`);
    refused((a) => { a.weightSpecs[0].name = "embedding/kernel"; }, "\"kernel\" is not a weight of layers[0] (Embedding \"embedding\") (expected embeddings)");
  });

  it("what only training reads is ignored, the table the file holds kept: an initializer, regularizers, a constraint, a matching input_length", () => {
    const a = base(), want = fromTfjs(a as TfjsArtifactsInput);
    const cfg = layers(a)[0].config;
    Object.assign(cfg, {
      embeddings_initializer: { class_name: "Zeros", config: {} }, embeddings_regularizer: { class_name: "L1L2", config: { l1: 0.1, l2: 0.1 } },
      activity_regularizer: { class_name: "L1L2", config: { l1: 0, l2: 1 } }, embeddings_constraint: { class_name: "MaxNorm", config: { max_value: 1e-3, axis: 0 } },
      batch_input_shape: [null, 4], input_length: [4],
    });
    const got = fromTfjs(a as TfjsArtifactsInput);
    expect(bits(got.getWeights())).toEqual(bits(want.getWeights()));
  });
});

// ---------------------------------------------------------------------------------------------------
// ONNX: the Embedding

describe("toOnnx exports an Embedding: a Gather on its table, the graph's input int64 ids [batch, time]", () => {
  const cases: { name: string; layers: () => (Embedding | LSTM | Dense)[]; out: (B: number, T: number) => number[] }[] = [
    { name: "Embedding → LSTM → Dense (sigmoid)", layers: () => [new Embedding({ inputDim: V, outputDim: 4 }), new LSTM({ units: 5 }), new Dense({ units: 2, activation: "sigmoid" })], out: (B) => [B, 2] },
    { name: "Embedding → LSTM (sequences) → Dense (softmax) per step", layers: () => [new Embedding({ inputDim: V, outputDim: 3 }), new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 3, activation: "softmax" })], out: (B, T) => [B, T, 3] },
    { name: "Embedding → Dense (tanh) → LSTM (hardSigmoid, no bias, backwards)", layers: () => [new Embedding({ inputDim: V, outputDim: 4 }), new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 3, recurrentActivation: "hardSigmoid", useBias: false, goBackwards: true })], out: (B) => [B, 3] },
  ];
  for (const dtype of ["float32", "float64"] as DType[]) {
    cases.forEach((c, ci) => {
      it(`${c.name} (${dtype}${dtype === "float64" ? ", weights rounded to float32" : ""})`, async () => {
        const model = perturb(new Sequential(c.layers(), { seed: 20 + ci, dtype }), 20 + ci);
        const bytes = toOnnx(model);
        const ops = onnxOps(bytes);
        expect(ops.slice(0, 2)).toEqual(["Transpose", "Gather"]);
        const s = await ort.InferenceSession.create(bytes);
        const [inMeta] = s.inputMetadata, [outMeta] = s.outputMetadata;
        expect(inMeta!.isTensor && [inMeta!.type, inMeta!.shape]).toEqual(["int64", ["batch", "time"]]);
        expect(outMeta!.isTensor && outMeta!.type).toBe("float32");
        for (const [b, t] of [[3, 5], [1, 1], [4, 7]] as const) {
          const x = ids(`onnx/${ci}/${b}/${t}`, b, t);
          const want = model.predict(x), got = await runOrt(s, x);
          expect(want.shape).toEqual(c.out(b, t));
          expect(got.dims).toEqual(want.shape);
          expectAgree(`toOnnx ${dtype}: ${c.name} (B=${b}, T=${t})`, got.data as Float32Array, want.data);
        }
      });
    });
  }

  it("a model without an Embedding keeps its float32 input x [batch, time, F]", async () => {
    const s = await ort.InferenceSession.create(toOnnx(new Sequential([new Masking(), new LSTM({ units: 2, inputDim: 3 })])));
    const [inMeta] = s.inputMetadata;
    expect(inMeta!.isTensor && [inMeta!.name, inMeta!.type, inMeta!.shape]).toEqual(["x", "float32", ["batch", "time", 3]]);
  });

  it("ids ORT reads where predict refuses: ≥ V is an error, a negative id counts from the end of the table (the README says so)", async () => {
    const model = new Sequential([new Embedding({ inputDim: V, outputDim: 2 }), new LSTM({ units: 2 })], { seed: 3, dtype: "float32" });
    const s = await ort.InferenceSession.create(toOnnx(model));
    await expect(runOrt(s, [[V]])).rejects.toThrow(/out of data bounds/);
    expect(Array.from((await runOrt(s, [[-1]])).data as Float32Array)).toEqual(Array.from((await runOrt(s, [[V - 1]])).data as Float32Array));
    expect(() => model.predict([[-1]])).toThrow(/expected an id/);
  });
});

// ---------------------------------------------------------------------------------------------------
// ONNX: masking as sequence_lens

/**
 * Masked orders: each LSTM variant whose masked output ONNX gives differently (a per-step forward top without
 * zeroOutputForMask repeats; a last-step forward top with it zeros) or the same (backwards, zeroOutputForMask per
 * step), stacked too. Each case runs with zeroOutputForMask on every LSTM false and true; `zeroMatters`: whether
 * that changes predict on post-padded rows (not for a backwards top: it reads the padding first, while its output
 * is zero either way).
 */
const MASKED: { name: string; input: "ids" | { F: number; maskValue: number }; zeroMatters: boolean; layers: (z: boolean) => (Masking | Embedding | LSTM | Dense)[] }[] = [
  { name: "Embedding (maskZero) → LSTM → Dense", input: "ids", zeroMatters: true, layers: (z) => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 4, zeroOutputForMask: z }), new Dense({ units: 2 })] },
  { name: "Embedding (maskZero) → LSTM (sequences) → Dense (tanh) per step", input: "ids", zeroMatters: true, layers: (z) => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 4, returnSequences: true, zeroOutputForMask: z }), new Dense({ units: 2, activation: "tanh" })] },
  { name: "Masking (−1) → LSTM (sequences) → Dense (relu) → LSTM", input: { F: 2, maskValue: -1 }, zeroMatters: true, layers: (z) => [new Masking({ maskValue: -1 }), new LSTM({ units: 4, inputDim: 2, returnSequences: true, zeroOutputForMask: z }), new Dense({ units: 3, activation: "relu" }), new LSTM({ units: 3, zeroOutputForMask: z })] },
  { name: "Masking (0) → LSTM (sequences, backwards) → LSTM (sequences) per step", input: { F: 3, maskValue: 0 }, zeroMatters: true, layers: (z) => [new Masking(), new LSTM({ units: 3, inputDim: 3, returnSequences: true, goBackwards: true, zeroOutputForMask: z }), new LSTM({ units: 2, returnSequences: true, zeroOutputForMask: z })] },
  { name: "Embedding (maskZero) → LSTM (sequences) → LSTM (sequences, backwards, hardSigmoid) → Dense per step", input: "ids", zeroMatters: false, layers: (z) => [new Embedding({ inputDim: V, outputDim: 4, maskZero: true }), new LSTM({ units: 3, returnSequences: true, zeroOutputForMask: z }), new LSTM({ units: 3, returnSequences: true, goBackwards: true, recurrentActivation: "hardSigmoid", zeroOutputForMask: z }), new Dense({ units: 2 })] },
  { name: "Masking (0) → Dense (tanh) → LSTM (backwards) → Dense (sigmoid)", input: { F: 2, maskValue: 0 }, zeroMatters: false, layers: (z) => [new Masking(), new Dense({ units: 3, inputDim: 2, activation: "tanh" }), new LSTM({ units: 3, goBackwards: true, zeroOutputForMask: z }), new Dense({ units: 1, activation: "sigmoid" })] },
];

function maskedModel(c: (typeof MASKED)[number], z: boolean, seed: number): Sequential {
  return perturb(new Sequential(c.layers(z), { seed, dtype: "float32" }), seed);
}

/** The case's input for rows kept up to lens[b] (then padded). */
function maskedInput(c: (typeof MASKED)[number], seed: string, T: number, lens: number[]): number[][] | number[][][] {
  return c.input === "ids" ? postIds(seed, T, lens) : postX(seed, T, c.input.F, lens, c.input.maskValue);
}

describe("toOnnx exports masking as sequence_lens: ORT's y is predict on rows padded at the end", () => {
  MASKED.forEach((c, ci) => {
    it(c.name, async () => {
      const outs: Float64Array[] = [];
      for (const z of [false, true]) {
        const model = maskedModel(c, z, 40 + ci);
        const s = await ort.InferenceSession.create(toOnnx(model));
        // Every length from none to all, one step, and a batch that is all padding at the last steps.
        for (const [T, lens] of [[5, [5, 3, 0, 1, 4]], [1, [1, 0]], [6, [2, 2, 6]]] as [number, number[]][]) {
          const x = maskedInput(c, `${ci}/${T}`, T, lens);
          const want = model.predict(x as number[][]), got = await runOrt(s, x);
          expect(got.dims).toEqual(want.shape);
          expectAgree(`toOnnx masked: ${c.name}, zeroOutputForMask ${z} (T=${T})`, got.data as Float32Array, want.data);
          if (T === 5) outs.push(Float64Array.from(want.data));
        }
        if (z) {
          // The mask reached the graph: without it (same weights) the padding is read as data.
          const bare = new Sequential(c.layers(z).filter((l) => !(l instanceof Masking)).map((l) => (l instanceof Embedding ? new Embedding({ inputDim: V, outputDim: l.outputDim }) : l)), { dtype: "float32" });
          bare.setWeights(model.getWeights());
          expect(distance(bare.predict(maskedInput(c, `${ci}/5`, 5, [5, 3, 0, 1, 4]) as number[][]).data, outs[1]!)).toBeGreaterThan(1e-4);
        }
      }
      // Where zeroOutputForMask changes predict, the graph followed each (and where it does not, it is the same).
      if (c.zeroMatters) expect(distance(outs[0]!, outs[1]!)).toBeGreaterThan(1e-4);
      else expect(distance(outs[0]!, outs[1]!)).toBe(0);
    });
  });
});

describe("toOnnx masking: a row not padded at the end gives NaN, because sequence_lens cannot compute it", () => {
  it("pre-padded and gapped rows are NaN in every value; the post-padded rows of the same batch agree", async () => {
    for (const [ci, z] of [[0, false], [1, false], [2, true], [3, false]] as [number, boolean][]) {
      const c = MASKED[ci]!;
      const model = maskedModel(c, z, 60 + ci);
      const s = await ort.InferenceSession.create(toOnnx(model));
      const T = 5;
      // Rows: post-padded (kept 3), pre-padded (Keras's pad_sequences default), a gap, post-padded (kept 5).
      const masked = [(t: number) => t >= 3, (t: number) => t < 2, (t: number) => t === 1 || t === 3, () => false];
      let x: number[][] | number[][][];
      if (c.input === "ids") x = ids(`nan/${ci}`, 4, T, (b, t) => masked[b]!(t));
      else {
        const mv = c.input.maskValue, F = c.input.F;
        x = postX(`nan/${ci}`, T, F, [T, T, T, T], mv).map((row, b) => row.map((step, t) => (masked[b]!(t) ? step.map(() => mv) : step)));
      }
      const want = model.predict(x as number[][]), got = (await runOrt(s, x)).data as Float32Array;
      const per = want.data.length / 4;
      for (const b of [0, 3]) expectAgree(`toOnnx masked, post-padded rows beside others: ${c.name} row ${b}`, got.subarray(b * per, (b + 1) * per), want.data.subarray(b * per, (b + 1) * per));
      for (const b of [1, 2]) {
        expect(Array.from(got.subarray(b * per, (b + 1) * per)).every(Number.isNaN), `${c.name} row ${b}`).toBe(true);
        expect(Array.from(want.data.subarray(b * per, (b + 1) * per)).every(Number.isFinite)).toBe(true);
      }
    }
  });

  it("the README's caveat holds: on a pre-padded row, ONNX's LSTM with sequence_lens = the kept count reads the first steps (padding included), not the kept ones", () => {
    // What ORT's LSTM would compute for the row [0, 0, a, b, c] with sequence_lens 3: the LSTM over [0, 0, a] as data.
    // Keras's (predict's) masked LSTM: over [a, b, c]. Both computed here, by predict.
    const masked = new Sequential([new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new LSTM({ units: 4 })], { seed: 7, dtype: "float32" });
    perturb(masked, 7);
    const plain = new Sequential([new Embedding({ inputDim: V, outputDim: 3 }), new LSTM({ units: 4 })], { dtype: "float32" });
    plain.setWeights(masked.getWeights());
    const row = [0, 0, 5, 6, 7];
    const keras = masked.predict([row]).data, keptOnly = plain.predict([row.slice(2)]).data, firstSteps = plain.predict([row.slice(0, 3)]).data;
    expect(distance(keras, keptOnly)).toBeLessThan(1e-6); // a masked step keeps the zero state: the kept steps alone
    expect(distance(keras, firstSteps)).toBeGreaterThan(1e-3); // what sequence_lens would give: another number
    // And on the post-padded row [a, b, c, 0, 0] the first `count` steps are the kept ones: the same number.
    expect(distance(masked.predict([[5, 6, 7, 0, 0]]).data, keptOnly)).toBeLessThan(1e-6);
  });
});
