/**
 * Bidirectional through TensorFlow.js and ONNX Runtime (the real @tensorflow/tfjs on its CPU backend and the real
 * onnxruntime-node; no mocks). "Masks through Bidirectional: check against tfjs running the same model":
 * - toTfjs: Bidirectional(LSTM) and Bidirectional(GRU, resetAfter false), every merge mode, returnSequences on and off,
 *   behind a Masking layer (rows masked at the end, at the start, inside, wholly) and behind an Embedding with
 *   maskZero, load in tf.loadLayersModel as tfjs's Bidirectional wrapper and predict what we predict; tfjs's own
 *   forward and backward sublayers hold our directions' weights, bit for bit; what tfjs saves back reads back to the
 *   same model; resetAfter true is refused by name as for the layer alone, and so is a sequence-returning
 *   Bidirectional on top of a masked model (its zeros at masked steps, as Keras's wrapper forces them, are not tfjs's);
 * - fromTfjs: Bidirectional models built in tfjs (its random initial weights, and once trained by tfjs's fit) predict
 *   here what tfjs predicts; Keras-written ones (tf.keras 2 names, weights listed alphabetically; Keras 3's numbered
 *   variables and backward_layer) land their weights in the right direction and take Keras's forced
 *   zero_output_for_mask; merge_mode null, a custom backward_layer, a wrapped layer reading backwards and the like are
 *   refused by name;
 * - toOnnx: one ONNX LSTM or GRU node with direction "bidirectional", every merge mode, both cells, with and without
 *   returnSequences; ORT's y is predict, masked models included (sequence_lens; rows padded at the end agree, others NaN).
 *
 * Agreement with tfjs and ORT is |ours − theirs| ≤ 1e-5·(1 + |theirs|) elementwise (float32), as in the other
 * interop tests.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import {
  Sequential, LSTM, GRU, Bidirectional, Dense, Embedding, Masking, FormatError, ValueError, toTfjs, fromTfjs, toOnnx,
  randomNormal, type MergeMode,
} from "../src/index.js";
import { tfjsArtifactsFromModelJSON, type TfjsArtifactsInput, type TfjsModelJSON } from "../src/interop/tfjs.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";
import { agreement, bits, distance, expectOnnxMasking, fitTf, onnxInitializerDims, onnxNodes, runOrt, tfLoad, tfPredict, tfSave } from "./helpers/interop.js";

// ---------------------------------------------------------------------------------------------------
// Helpers

const TOL = 1e-5;
const expectAgree = agreement("tfjs/ORT", TOL);
const MODES: MergeMode[] = ["concat", "sum", "mul", "ave"];
const V = 7;
const F = 3;
type Cell = "lstm" | "gru";
type AnyLayer = LSTM | GRU | Bidirectional | Dense | Masking | Embedding;

/** x [B, T, f] of float32-representable normals, every feature of a step set to `maskValue` where `masked(b, t)`. */
function seqX(seed: string, B: number, T: number, f = F, masked: (b: number, t: number) => boolean = () => false, maskValue = 0): number[][][] {
  const r = new Rng(`bidi-interop/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => Array.from({ length: f }, () => (masked(b, t) ? maskValue : Math.fround(r.normal())))));
}

/** ids [B, T] in [1, V), 0 where `pad(b, t)`. */
function ids(seed: string, B: number, T: number, pad: (b: number, t: number) => boolean = () => false): number[][] {
  const r = new Rng(`bidi-interop/ids/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (pad(b, t) ? 0 : 1 + r.int(V - 1))));
}

/** Row b of a batch of 5: nothing masked, the last two steps, the first two, two inside, every step. */
const ROWS: ((t: number, T: number) => boolean)[] = [() => false, (t, T) => t >= T - 2, (t) => t < 2, (t) => t === 1 || t === 2, () => true];
const rowMask = (b: number, t: number, T: number): boolean => ROWS[b % ROWS.length]!(t, T);

/** Spread every weight so that a swapped direction, a misplaced gate block or a dropped bias would show. */
function perturb(model: Sequential, seed: number, scale = 0.4): Sequential {
  const r = new Rng(`bidi-interop/perturb/${seed}`);
  model.setWeights(model.getWeights().map((w) => fromData(w.data.map((v) => v + scale * (2 * r.uniform() - 1)), w.shape)));
  return model;
}

/** An LSTM, or a GRU with tfjs's resetAfter false unless told. */
function cell(kind: Cell, o: Record<string, unknown>): LSTM | GRU {
  return kind === "lstm" ? new LSTM(o as never) : new GRU({ resetAfter: false, ...o } as never);
}

/** What decides what each layer computes (for round trips), a Bidirectional's both directions included. */
function config(m: Sequential): unknown[] {
  const rec = (l: LSTM | GRU): unknown[] => [
    l.kind, l.units, l.recurrentActivation, l.useBias, l.returnSequences, l.goBackwards, l.stateful, l.batchSize, l.zeroOutputForMask,
    l instanceof GRU ? l.resetAfter : l.unitForgetBias, l.dropout, l.recurrentDropout,
  ];
  return [m.masking?.maskValue ?? null, ...m.layers.map((l) => {
    if (l instanceof Bidirectional) return ["bidirectional", l.mergeMode, rec(l.forwardLayer), rec(l.backwardLayer)];
    if (l instanceof LSTM || l instanceof GRU) return rec(l);
    if (l instanceof Embedding) return ["embedding", l.inputDim, l.outputDim, l.maskZero];
    return ["dense", l.units, (l as Dense).activation, (l as Dense).useBias];
  })];
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend("cpu");
});

// ---------------------------------------------------------------------------------------------------
// toTfjs

interface ExportCase {
  name: string;
  layers: () => AnyLayer[];
  /** The input for B rows and T steps. */
  x: (seed: string, B: number, T: number) => number[][][] | number[][];
  classes: string[];
  /** A stateful model's batch size: both carry the state into the next calls. */
  stateful?: number;
}

const maskedX = (seed: string, B: number, T: number) => seqX(seed, B, T, F, (b, t) => rowMask(b, t, T));

const EXPORTS: ExportCase[] = [];
// Behind a Masking layer, every merge mode of both cells, returning sequences (then read by another recurrent layer:
// a sequence-returning Bidirectional gives zeros at masked steps, which tfjs does not, so it cannot be the top of a
// masked model there) or not.
(["lstm", "gru"] as const).forEach((kind, ki) => [true, false].forEach((seq) => MODES.forEach((mode, mi) => EXPORTS.push({
  name: `Masking (0) → Bidirectional(${kind === "lstm" ? "LSTM" : "GRU"}${seq ? ", sequences" : ""}${(ki + mi) % 2 ? ", hardSigmoid" : ""}), ${mode}${seq ? ` → ${kind === "lstm" ? "GRU" : "LSTM"}` : ""} → Dense (tanh)`,
  layers: () => [
    new Masking(),
    new Bidirectional(cell(kind, { units: 4, inputDim: F, returnSequences: seq, recurrentActivation: (ki + mi) % 2 ? "hardSigmoid" : "sigmoid" }), { mergeMode: mode }),
    ...(seq ? [cell(kind === "lstm" ? "gru" : "lstm", { units: 3 })] : []),
    new Dense({ units: 2, activation: "tanh" }),
  ],
  x: maskedX, classes: ["Masking", "Bidirectional", ...(seq ? [kind === "lstm" ? "GRU" : "LSTM"] : []), "Dense"],
}))));
// Unmasked, a Bidirectional's sequence is the model's output (per step).
(["lstm", "gru"] as const).forEach((kind, ki) => MODES.forEach((mode, mi) => {
  if ((ki + mi) % 2) return;
  EXPORTS.push({
    name: `Bidirectional(${kind === "lstm" ? "LSTM" : "GRU"}, sequences), ${mode} → Dense per step, no mask`,
    layers: () => [new Bidirectional(cell(kind, { units: 4, inputDim: F, returnSequences: true }), { mergeMode: mode }), new Dense({ units: 2 })],
    x: (seed, B, T) => seqX(seed, B, T), classes: ["Bidirectional", "Dense"],
  });
}));
EXPORTS.push(
  {
    name: "Embedding (maskZero) → Bidirectional(GRU, sequences), concat → Bidirectional(LSTM), sum → Dense: ids padded at the end, the start, inside",
    layers: () => [
      new Embedding({ inputDim: V, outputDim: 3, maskZero: true }),
      new Bidirectional(new GRU({ units: 3, resetAfter: false, returnSequences: true }), { mergeMode: "concat" }),
      new Bidirectional(new LSTM({ units: 3 }), { mergeMode: "sum" }),
      new Dense({ units: 2 }),
    ],
    x: (seed, B, T) => ids(seed, B, T, (b, t) => rowMask(b, t, T)), classes: ["Embedding", "Bidirectional", "Bidirectional", "Dense"],
  },
  {
    name: "Embedding (maskZero) → Bidirectional(LSTM, sequences), ave → LSTM (sequences) → Dense per step",
    layers: () => [new Embedding({ inputDim: V, outputDim: 4, maskZero: true }), new Bidirectional(new LSTM({ units: 3, returnSequences: true }), { mergeMode: "ave" }), new LSTM({ units: 3, returnSequences: true }), new Dense({ units: 2 })],
    x: (seed, B, T) => ids(seed, B, T, (b, t) => rowMask(b + 1, t, T)), classes: ["Embedding", "Bidirectional", "LSTM", "Dense"],
  },
  {
    name: "Masking (−1) → Bidirectional(LSTM, sequences, hardSigmoid), mul → Bidirectional(GRU, sequences), ave → LSTM (goBackwards) → Dense",
    layers: () => [
      new Masking({ maskValue: -1 }),
      new Bidirectional(new LSTM({ units: 3, inputDim: F, returnSequences: true, recurrentActivation: "hardSigmoid" }), { mergeMode: "mul" }),
      new Bidirectional(new GRU({ units: 3, resetAfter: false, returnSequences: true }), { mergeMode: "ave" }),
      new LSTM({ units: 3, goBackwards: true }),
      new Dense({ units: 1 }),
    ],
    x: (seed, B, T) => seqX(seed, B, T, F, (b, t) => rowMask(b, t, T), -1), classes: ["Masking", "Bidirectional", "Bidirectional", "LSTM", "Dense"],
  },
  {
    name: "Dense (relu) → Bidirectional(GRU, useBias false, dropout and recurrentDropout in the config, sequences), concat",
    layers: () => [new Dense({ units: 4, inputDim: F, activation: "relu" }), new Bidirectional(new GRU({ units: 3, resetAfter: false, useBias: false, dropout: 0.2, recurrentDropout: 0.1, returnSequences: true }))],
    x: (seed, B, T) => seqX(seed, B, T), classes: ["Dense", "Bidirectional"],
  },
  {
    name: "stateful Bidirectional(LSTM), sum, batch size 2: each direction's state carried call to call as tfjs carries it",
    layers: () => [new Bidirectional(new LSTM({ units: 4, inputDim: F, stateful: true, batchSize: 2 }), { mergeMode: "sum" }), new Dense({ units: 1 })],
    x: (seed, B, T) => seqX(seed, B, T), classes: ["Bidirectional", "Dense"], stateful: 2,
  },
);

describe("toTfjs: a Bidirectional loads in tf.loadLayersModel as tfjs's Bidirectional and predicts what we predict", () => {
  EXPORTS.forEach((c, ci) => {
    it(c.name, async () => {
      const model = new Sequential(c.layers(), { seed: 10 + ci, dtype: "float32" });
      if (!model.engine.built) model.build(1); // an Embedding first: one id per step
      perturb(model, 10 + ci);
      const artifacts = toTfjs(model);
      const layers = (artifacts.modelTopology as any).config.layers as any[];
      expect(layers.map((l) => l.class_name)).toEqual(c.classes);
      const ours = model.layers.filter((l): l is Bidirectional => l instanceof Bidirectional);
      const written = layers.filter((l) => l.class_name === "Bidirectional");
      written.forEach((l, k) => {
        const fw = ours[k]!.forwardLayer;
        expect(l.config.merge_mode).toBe(ours[k]!.mergeMode);
        expect(l.config.layer.class_name).toBe(fw instanceof LSTM ? "LSTM" : "GRU");
        expect(l.config.layer.config).toMatchObject({ units: fw.units, go_backwards: fw.goBackwards, return_sequences: fw.returnSequences, ...(fw instanceof GRU ? { reset_after: false } : {}) });
      });
      const tfModel = await tfLoad(artifacts);
      expect(tfModel.layers.map((l) => l.getClassName())).toEqual(c.classes);
      // tfjs's own sublayers hold our directions: its forward_ layer our forward direction's weights, its backward_ one
      // the mirrored copy's (go_backwards flipped), bit for bit.
      const tfBidis = tfModel.layers.filter((l) => l.getClassName() === "Bidirectional") as any[];
      tfBidis.forEach((tl, k) => {
        const n = ours[k]!.forwardLayer.weightNames().length;
        const own = ourLayerWeights(model, ours[k]!);
        expect([tl.forwardLayer.goBackwards, tl.backwardLayer.goBackwards]).toEqual([false, true]);
        expect(tfBits(tl.forwardLayer.getWeights())).toEqual(bits(own.slice(0, n)));
        expect(tfBits(tl.backwardLayer.getWeights())).toEqual(bits(own.slice(n)));
      });
      const shapes = c.stateful ? [[c.stateful, 5], [c.stateful, 3], [c.stateful, 4]] : [[5, 6], [5, 4], [2, 3], [1, 1]];
      for (const [b, t] of shapes) {
        const x = c.x(`tfjs/${ci}/${b}/${t}`, b!, t!);
        const y = model.predict(x as number[][][]), theirs = tfPredict(tfModel, x);
        expect(theirs.shape).toEqual(y.shape);
        expectAgree(`toTfjs: ${c.name} (B=${b}, T=${t})`, y.data, theirs.data);
      }
      // What tfjs saves back for the loaded model reads back to this model, as do our artifacts.
      const again = await tfSave(tfModel);
      for (const back of [fromTfjs(artifacts), fromTfjs(again)]) {
        expect(config(back)).toEqual(config(model));
        expect(bits(back.getWeights())).toEqual(bits(model.getWeights()));
      }
      tfModel.dispose();
    });
  });

  it("names the weights as tfjs does: <wrapper>/forward_<layer>/kernel, …, then backward_, the wrapped layers counted with the model's own", () => {
    const model = new Sequential([
      new Bidirectional(new LSTM({ units: 3, inputDim: 2, returnSequences: true }), { mergeMode: "sum" }),
      new LSTM({ units: 2, returnSequences: true }),
      new Bidirectional(new GRU({ units: 2, resetAfter: false, useBias: false })),
    ], { dtype: "float32" });
    const a = toTfjs(model);
    expect(a.weightSpecs.map((s) => [s.name, s.shape])).toEqual([
      ["bidirectional/forward_lstm/kernel", [2, 12]], ["bidirectional/forward_lstm/recurrent_kernel", [3, 12]], ["bidirectional/forward_lstm/bias", [12]],
      ["bidirectional/backward_lstm/kernel", [2, 12]], ["bidirectional/backward_lstm/recurrent_kernel", [3, 12]], ["bidirectional/backward_lstm/bias", [12]],
      ["lstm_1/kernel", [3, 8]], ["lstm_1/recurrent_kernel", [2, 8]], ["lstm_1/bias", [8]],
      ["bidirectional_1/forward_gru/kernel", [2, 6]], ["bidirectional_1/forward_gru/recurrent_kernel", [2, 6]],
      ["bidirectional_1/backward_gru/kernel", [2, 6]], ["bidirectional_1/backward_gru/recurrent_kernel", [2, 6]],
    ]);
    const [first, , last] = (a.modelTopology as any).config.layers;
    expect(first.config).toMatchObject({ name: "bidirectional", trainable: true, batch_input_shape: [null, null, 2], dtype: "float32", merge_mode: "sum" });
    expect(first.config.layer).toMatchObject({ class_name: "LSTM", config: { name: "lstm", units: 3, return_sequences: true, go_backwards: false, unit_forget_bias: true } });
    expect(first.config.layer.config.batch_input_shape).toBeUndefined();
    expect(last.config).toMatchObject({ name: "bidirectional_1", merge_mode: "concat", layer: { class_name: "GRU", config: { name: "gru", use_bias: false, reset_after: false } } });
  });
});

/** A Bidirectional's weights in our model (its slice of getWeights). */
function ourLayerWeights(model: Sequential, layer: Bidirectional) {
  let off = 0;
  for (const l of model.layers) {
    if (l === layer) break;
    off += l.weightNames().length;
  }
  return model.getWeights().slice(off, off + layer.weightNames().length);
}

const tfBits = (ws: tf.Tensor[]): string[] => ws.map((w) => Buffer.from(new Uint8Array((w.dataSync() as Float32Array).buffer)).toString("hex"));

describe("toTfjs refuses a Bidirectional by name where tfjs would compute something else (ValueError), as for the layer alone", () => {
  it("a GRU with resetAfter true inside: tfjs's GRUCell has reset_after false only", () => {
    const m = new Sequential([new Masking(), new Bidirectional(new GRU({ units: 2, inputDim: 2 })), new Dense({ units: 1 })]);
    const before = bits(m.getWeights());
    expect(() => toTfjs(m)).toThrow(ValueError);
    expect(() => toTfjs(m)).toThrow(/toTfjs model: layers\[1\] is a Bidirectional over a GRU with resetAfter true/);
    expect(() => toTfjs(m)).toThrow(/GRUCell does not support reset_after parameter set to true/);
    expect(bits(m.getWeights())).toEqual(before);
  });

  it("a sequence-returning Bidirectional on top of a masked model: zeros at masked steps, where tfjs repeats the previous output", async () => {
    const m = new Sequential([new Masking(), new Bidirectional(new LSTM({ units: 2, inputDim: 2, returnSequences: true })), new Dense({ units: 1 })]);
    expect(() => toTfjs(m)).toThrow(ValueError);
    expect(() => toTfjs(m)).toThrow(/toTfjs model: layers\[1\] is a Bidirectional returning sequences, the top recurrent layer of a masked model: it gives zeros at masked steps/);
    expect(() => toTfjs(m)).toThrow(/TensorFlow\.js's RNN repeats the previous output/);
    const e = new Sequential([new Embedding({ inputDim: V, outputDim: 2, maskZero: true }), new Bidirectional(new GRU({ units: 2, resetAfter: false, returnSequences: true }), { mergeMode: "mul" })]);
    expect(() => toTfjs(e)).toThrow(/layers\[1\] is a Bidirectional returning sequences, the top recurrent layer of a masked model/);
    // Why: the same model with the Masking layer put into the file by hand loads in tfjs, which gives other numbers at
    // the masked steps (its RNN repeats the previous output) and ours at the kept ones.
    const bare = new Sequential([new Bidirectional(new LSTM({ units: 2, inputDim: 2, returnSequences: true })), new Dense({ units: 1 })], { dtype: "float32" });
    bare.setWeights(m.getWeights());
    const a = toTfjs(bare) as any;
    const first = a.modelTopology.config.layers[0].config;
    a.modelTopology.config.layers.unshift({ class_name: "Masking", config: { name: "masking", trainable: true, batch_input_shape: first.batch_input_shape, dtype: "float32", mask_value: 0 } });
    delete first.batch_input_shape;
    delete first.dtype;
    const tfModel = await tfLoad(a);
    const T = 5, x = seqX("top-masked", 5, T, 2, (b, t) => rowMask(b, t, T));
    const ours = m.predict(x).data, theirs = tfPredict(tfModel, x).data;
    let kept = 0, masked = 0;
    for (let b = 0; b < 5; b++) {
      for (let t = 0; t < T; t++) {
        const d = Math.abs(ours[b * T + t]! - theirs[b * T + t]!);
        if (rowMask(b, t, T)) masked = Math.max(masked, d); else kept = Math.max(kept, d);
      }
    }
    expect(kept).toBeLessThan(1e-5);
    expect(masked).toBeGreaterThan(1e-3);
    tfModel.dispose();
    // Without a mask, or with a recurrent layer above it (which reads none of the masked steps), it goes.
    expect(toTfjs(new Sequential([new Bidirectional(new GRU({ units: 2, inputDim: 2, resetAfter: false, returnSequences: true }))])).modelTopology).toBeDefined();
    expect(toTfjs(new Sequential([new Masking(), new Bidirectional(new LSTM({ units: 2, inputDim: 2, returnSequences: true })), new LSTM({ units: 2 })])).modelTopology).toBeDefined();
  });

  it("zeroOutputForMask counts on the top recurrent layer only, as for the layer alone: below it the option goes (tfjs predicts the same)", async () => {
    const top = new Sequential([new Masking(), new LSTM({ units: 3, inputDim: 2, returnSequences: true }), new GRU({ units: 2, resetAfter: false, zeroOutputForMask: true })]);
    expect(() => toTfjs(top)).toThrow(/toTfjs model: layers\[2\] has zeroOutputForMask, which TensorFlow\.js's RNN does not have/);
    const below = perturb(new Sequential([
      new Masking(), new LSTM({ units: 3, inputDim: 2, returnSequences: true, zeroOutputForMask: true }), new Dense({ units: 3, activation: "tanh" }),
      new GRU({ units: 2, resetAfter: false }), new Dense({ units: 1 }),
    ], { dtype: "float32", seed: 2 }), 2);
    const tfModel = await tfLoad(toTfjs(below));
    const x = seqX("zero-below", 5, 6, 2, (b, t) => rowMask(b, t, 6));
    expectAgree("toTfjs: zeroOutputForMask below the top", below.predict(x).data, tfPredict(tfModel, x).data);
    tfModel.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// fromTfjs: Bidirectional models built (and trained) in tfjs

describe("fromTfjs: Bidirectional models built in tfjs predict what tfjs predicts", () => {
  MODES.forEach((mode, mi) => {
    it(`Masking → Bidirectional(LSTM, sequences), ${mode} → Bidirectional(GRU), ${MODES[(mi + 1) % 4]} → Dense: tfjs's random weights and hard sigmoid`, async () => {
      const m = tf.sequential();
      m.add(tf.layers.masking({ maskValue: 0, inputShape: [null, F] }));
      m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 4, returnSequences: true }) as never, mergeMode: mode }));
      m.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3 }) as never, mergeMode: MODES[(mi + 1) % 4] }));
      m.add(tf.layers.dense({ units: 2, activation: "tanh" }));
      const model = fromTfjs(await tfSave(m));
      expect(model.layers.map((l) => l.kind)).toEqual(["bidirectional", "bidirectional", "dense"]);
      const [b0, b1] = model.layers as Bidirectional[];
      expect([b0!.mergeMode, b1!.mergeMode]).toEqual([mode, MODES[(mi + 1) % 4]]);
      expect([b0!.forwardLayer.kind, b0!.forwardLayer.recurrentActivation, b1!.forwardLayer.kind, (b1!.forwardLayer as GRU).resetAfter]).toEqual(["lstm", "hardSigmoid", "gru", false]);
      // Each direction's zeroOutputForMask is its returnSequences (Keras's, not tfjs's: tfjs repeats the previous output
      // at a masked step), which matters only where the masked steps reach the output: not below another recurrent layer.
      expect([b0!.forwardLayer.zeroOutputForMask, b0!.backwardLayer.zeroOutputForMask, b1!.forwardLayer.zeroOutputForMask]).toEqual([true, true, false]);
      for (const [b, t] of [[5, 6], [5, 4], [1, 1]] as const) {
        const x = maskedX(`tfjs-built/${mi}/${b}/${t}`, b, t);
        expectAgree(`tfjs-built: Masking → Bidirectional(LSTM) ${mode} → Bidirectional(GRU) → Dense (B=${b}, T=${t})`, model.predict(x).data, tfPredict(m, x).data);
      }
      m.dispose();
    });
  });

  it("Embedding (mask_zero) → Bidirectional(GRU, sequences, sigmoid), sum → GRU (sequences) → Dense per step, ids padded anywhere", async () => {
    const m = tf.sequential();
    m.add(tf.layers.embedding({ inputDim: V, outputDim: 3, maskZero: true, inputShape: [null] }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3, returnSequences: true, recurrentActivation: "sigmoid" }) as never, mergeMode: "sum" }));
    m.add(tf.layers.gru({ units: 3, returnSequences: true }));
    m.add(tf.layers.dense({ units: 2 }));
    const model = fromTfjs(await tfSave(m));
    const b = model.layers[1] as Bidirectional;
    expect([b.forwardLayer.goBackwards, b.backwardLayer.goBackwards, b.forwardLayer.recurrentActivation, b.mergeMode]).toEqual([false, true, "sigmoid", "sum"]);
    const x = ids("tfjs-built/e", 5, 6, (r, t) => rowMask(r, t, 6));
    const ours = model.predict(x);
    expect(ours.shape).toEqual([5, 6, 2]);
    expectAgree("tfjs-built: Embedding → Bidirectional(GRU) sum → GRU → Dense per step", ours.data, tfPredict(m, x).data);
    m.dispose();
  });

  it("unmasked, a sequence-returning Bidirectional on top: Bidirectional(LSTM, sequences), mul → Dense per step", async () => {
    const m = tf.sequential();
    m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 3, returnSequences: true }) as never, mergeMode: "mul", inputShape: [null, F] }));
    m.add(tf.layers.dense({ units: 2 }));
    const model = fromTfjs(await tfSave(m));
    const x = seqX("tfjs-built/u", 3, 5);
    expectAgree("tfjs-built: Bidirectional(LSTM, sequences) mul → Dense per step", model.predict(x).data, tfPredict(m, x).data);
    m.dispose();
  });

  it("refused by name (FormatError): a sequence-returning Bidirectional on top of a masked tfjs model, a wrapped layer reading backwards", async () => {
    const top = tf.sequential();
    top.add(tf.layers.masking({ maskValue: 0, inputShape: [null, F] }));
    top.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 2, returnSequences: true }) as never }));
    top.add(tf.layers.dense({ units: 1 }));
    const a = await tfSave(top);
    expect(() => fromTfjs(a)).toThrow(FormatError);
    expect(() => fromTfjs(a)).toThrow(/layers\[1\] \(Bidirectional "[^"]+"\): a Bidirectional returning sequences, the top recurrent layer of a masked model written by TensorFlow\.js/);
    const back = tf.sequential();
    back.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 2, goBackwards: true }) as never, inputShape: [null, F] }));
    const b = await tfSave(back);
    expect(() => fromTfjs(b)).toThrow(FormatError);
    expect(() => fromTfjs(b)).toThrow(/layers\[0\] \(Bidirectional "[^"]+"\) layer: config\.go_backwards true is not supported in a Bidirectional/);
    top.dispose();
    back.dispose();
  });

  it("trained by tfjs's fit (Adam, masked data): Masking → Bidirectional(LSTM, sequences), concat → Bidirectional(GRU), ave → Dense (sigmoid)", async () => {
    const m = tf.sequential();
    m.add(tf.layers.masking({ maskValue: 0, inputShape: [null, F] }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 4, returnSequences: true }) as never, mergeMode: "concat" }));
    m.add(tf.layers.bidirectional({ layer: tf.layers.gru({ units: 3 }) as never, mergeMode: "ave" }));
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    const before = fromTfjs(await tfSave(m));
    const N = 10, T = 5;
    await fitTf(m, seqX("fit", N, T, F, (b, t) => rowMask(b, t, T)), randomNormal([N, 1], { seed: 7 }));
    const model = fromTfjs(await tfSave(m));
    // The weights did move in training (each direction's), and the trained ones are what we read.
    const moved = model.getWeights().map((w, k) => distance(w.data, before.getWeights()[k]!.data));
    expect(moved.every((d) => d > 1e-3)).toBe(true);
    const x = maskedX("fit-test", 5, 7);
    expectAgree("tfjs-trained: Masking → Bidirectional(LSTM) concat → Bidirectional(GRU) ave → Dense", model.predict(x).data, tfPredict(m, x).data);
    m.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// fromTfjs: Keras-written Bidirectional topologies (as tensorflowjs_converter writes them)

/**
 * A model.json and its weight file for Masking → Bidirectional(cell) → Dense as tensorflowjs_converter writes a Keras
 * model: Keras 3 (InputLayer batch_shape; the wrapper's get_config writes its forward layer, named "forward_<name>",
 * and its backward_layer, "backward_<name>" with go_backwards true; variables "layers/bidirectional/forward_layer/
 * cell/vars/0") or tf.keras 2 (batch_input_shape; config.layer the layer as given, no backward_layer; weights
 * "bidirectional/forward_lstm/lstm_cell/kernel:0", listed alphabetically, so the backward direction's come first).
 * The weights are `model`'s.
 */
function kerasJSON(model: Sequential, style: "keras3" | "keras2"): { json: TfjsModelJSON; files: Map<string, Uint8Array> } {
  const k3 = style === "keras3";
  const b = model.layers[0] as Bidirectional, fw = b.forwardLayer, kind = fw.kind, dense = model.layers[1] as Dense;
  const init = (cls: string, config: object) => ({ module: "keras.initializers", class_name: cls, config, registered_name: null });
  const dtype = k3 ? { module: "keras", class_name: "DTypePolicy", config: { name: "float32" }, registered_name: null } : "float32";
  const rec = (name: string, goBackwards: boolean) => ({
    module: "keras.layers", class_name: kind === "lstm" ? "LSTM" : "GRU", registered_name: null,
    config: {
      name, trainable: true, dtype, return_sequences: fw.returnSequences, return_state: false, go_backwards: goBackwards, stateful: false, unroll: false,
      // Keras 3 serialises the zero_output_for_mask its wrapper forced; tf.keras 2's config.layer is the layer as given.
      ...(k3 ? { zero_output_for_mask: fw.returnSequences } : { time_major: false }), units: fw.units, activation: "tanh",
      recurrent_activation: fw.recurrentActivation === "hardSigmoid" ? "hard_sigmoid" : "sigmoid", use_bias: fw.useBias,
      kernel_initializer: init("GlorotUniform", { seed: null }), recurrent_initializer: init("Orthogonal", { gain: 1.0, seed: null }),
      bias_initializer: init("Zeros", {}), ...(kind === "lstm" ? { unit_forget_bias: true } : { reset_after: (fw as GRU).resetAfter }),
      kernel_regularizer: null, recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null,
      recurrent_constraint: null, bias_constraint: null, dropout: 0.0, recurrent_dropout: 0.0, ...(k3 ? { seed: null } : { implementation: 2 }),
    },
  });
  const bidi = {
    module: "keras.layers", class_name: "Bidirectional", registered_name: null,
    config: {
      name: "bidirectional", trainable: true, dtype, merge_mode: b.mergeMode,
      layer: rec(k3 ? `forward_${kind}` : kind, false), ...(k3 ? { backward_layer: rec(`backward_${kind}`, true) } : {}),
    },
  };
  const layers = [
    k3
      ? { class_name: "InputLayer", config: { batch_shape: [null, null, fw.inputDim], dtype: "float32", sparse: false, name: "input_layer" } }
      : { class_name: "InputLayer", config: { batch_input_shape: [null, null, fw.inputDim], dtype: "float32", sparse: false, ragged: false, name: "masking_input" } },
    { module: "keras.layers", class_name: "Masking", registered_name: null, config: { name: "masking", trainable: true, dtype, mask_value: model.masking!.maskValue } },
    bidi,
    {
      module: "keras.layers", class_name: "Dense", registered_name: null,
      config: { name: "dense", trainable: true, dtype, units: dense.units, activation: dense.activation, use_bias: true, kernel_initializer: init("GlorotUniform", { seed: null }), bias_initializer: init("Zeros", {}) },
    },
  ];
  const ws = model.getWeights(), slots = fw.useBias ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"];
  const specs: { name: string; shape: number[]; data: ArrayLike<number> }[] = [];
  let w = 0;
  for (const d of ["forward", "backward"]) {
    slots.forEach((s, k) => {
      const t = ws[w++]!;
      specs.push({ name: k3 ? `layers/bidirectional/${d}_layer/cell/vars/${k}` : `bidirectional/${d}_${kind}/${kind}_cell/${s}:0`, shape: t.shape.slice(), data: t.data });
    });
  }
  ["kernel", "bias"].forEach((s, k) => {
    const t = ws[w++]!;
    specs.push({ name: k3 ? `layers/dense/vars/${k}` : `dense/${s}:0`, shape: t.shape.slice(), data: t.data });
  });
  if (!k3) specs.sort((a, c) => (a.name < c.name ? -1 : 1));
  const bytes = new Uint8Array(4 * specs.reduce((s, p) => s + p.data.length, 0));
  const view = new DataView(bytes.buffer);
  let off = 0;
  for (const p of specs) for (let k = 0; k < p.data.length; k++, off += 4) view.setFloat32(off, p.data[k]!, true);
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

/** Masking → Bidirectional(cell) → Dense, perturbed (a GRU with Keras's default reset_after true). */
function kerasTwin(kind: Cell, seq: boolean, mode: MergeMode): Sequential {
  const c = kind === "lstm" ? new LSTM({ units: 3, inputDim: 2, returnSequences: seq }) : new GRU({ units: 3, inputDim: 2, returnSequences: seq });
  return perturb(new Sequential([new Masking(), new Bidirectional(c, { mergeMode: mode }), new Dense({ units: 2 })], { dtype: "float32", seed: 5 }), 5);
}

describe("fromTfjs: Keras-written Bidirectionals put each weight in its direction and take Keras's forced zero_output_for_mask", () => {
  const cases = [
    { style: "keras2" as const, kind: "lstm" as Cell, mode: "concat" as MergeMode },
    { style: "keras2" as const, kind: "gru" as Cell, mode: "mul" as MergeMode },
    { style: "keras3" as const, kind: "gru" as Cell, mode: "ave" as MergeMode },
    { style: "keras3" as const, kind: "lstm" as Cell, mode: "sum" as MergeMode },
  ];
  for (const c of cases) {
    for (const seq of [true, false]) {
      it(`${c.style === "keras3" ? "Keras 3 (numbered variables, backward_layer)" : "tf.keras 2 (weights alphabetical: backward first)"}: Bidirectional(${c.kind}${seq ? ", sequences" : ""}), ${c.mode}`, () => {
        // Keras's wrapper sets zero_output_for_mask to return_sequences on both directions, whatever the config says
        // (tf.keras 2's config.layer has none), as longshort's does.
        const twin = kerasTwin(c.kind, seq, c.mode);
        const { json, files } = kerasJSON(twin, c.style);
        const model = fromTfjs(tfjsArtifactsFromModelJSON(json, files));
        expect(config(model)).toEqual(config(twin));
        expect(bits(model.getWeights())).toEqual(bits(twin.getWeights()));
        const x = seqX(`keras/${c.style}/${c.kind}`, 5, 5, 2, (b, t) => rowMask(b, t, 5));
        expect(bits([model.predict(x)])).toEqual(bits([twin.predict(x)]));
        const b = model.layers[0] as Bidirectional;
        expect([b.forwardLayer.zeroOutputForMask, b.backwardLayer.zeroOutputForMask]).toEqual([seq, seq]);
      });
    }
  }
});

describe("fromTfjs refuses by name what a Bidirectional it cannot read has (FormatError), the artifacts untouched", () => {
  const base = (mergeMode: MergeMode = "sum"): { modelTopology: any; weightSpecs: any[]; weightData: ArrayBuffer } => {
    const m = new Sequential([new Masking(), new Bidirectional(new LSTM({ units: 3, inputDim: 2, returnSequences: true }), { mergeMode }), new LSTM({ units: 2 }), new Dense({ units: 1 })], { dtype: "float32" });
    return structuredClone(toTfjs(m)) as never;
  };
  const bidi = (a: { modelTopology: any }): any => a.modelTopology.config.layers[1].config;
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
  const mirrored = (a: ReturnType<typeof base>, edit: (c: any) => void = () => {}): void => {
    const back = structuredClone(bidi(a).layer);
    back.config.name = "backward_lstm";
    back.config.go_backwards = true;
    edit(back);
    bidi(a).backward_layer = back;
  };

  it("the base loads, and with a backward_layer that is the mirrored copy (as Keras 3 writes it) too, merge_mode absent is concat", () => {
    expect(fromTfjs(base() as TfjsArtifactsInput).layers.map((l) => l.kind)).toEqual(["bidirectional", "lstm", "dense"]);
    const a = base();
    mirrored(a);
    expect((fromTfjs(a as TfjsArtifactsInput).layers[0] as Bidirectional).mergeMode).toBe("sum");
    const b = base("concat");
    delete bidi(b).merge_mode;
    expect((fromTfjs(b as TfjsArtifactsInput).layers[0] as Bidirectional).mergeMode).toBe("concat");
  });

  it("merge_mode null (Keras's None: the outputs as a list) and an unknown merge_mode", () => {
    refused((a) => { bidi(a).merge_mode = null; }, "layers[1] (Bidirectional \"bidirectional\")", "config.merge_mode null", "a Sequential passes one output on");
    refused((a) => { bidi(a).merge_mode = "max"; }, "layers[1]", "config.merge_mode: expected \"concat\", \"sum\", \"mul\" or \"ave\", got");
  });

  it("a custom backward_layer that differs from the mirrored copy, by the setting that differs", () => {
    refused((a) => mirrored(a, (c) => { c.config.units = 4; }), "layers[1]", "config.backward_layer has units 4 where the mirrored copy", "has 3", "a custom backward layer is not supported");
    refused((a) => mirrored(a, (c) => { c.config.go_backwards = false; }), "config.backward_layer has go_backwards false");
    refused((a) => mirrored(a, (c) => { c.config.recurrent_activation = "hard_sigmoid"; }), "config.backward_layer has recurrent_activation \"hardSigmoid\"");
    refused((a) => mirrored(a, (c) => { c.class_name = "GRU"; c.config.reset_after = false; }), "config.backward_layer has class_name");
    refused((a) => mirrored(a, (c) => { c.class_name = "SimpleRNN"; }), "config.backward_layer has class_name");
    refused((a) => mirrored(a, (c) => { c.config.activation = "relu"; }), "layers[1] (Bidirectional \"bidirectional\") backward_layer", "config.activation \"relu\" is not supported");
    refused((a) => mirrored(a, (c) => { c.config.dropout = 0.5; }), "config.backward_layer has dropout 0.5");
  });

  it("a wrapped layer other than an LSTM or a GRU, or missing; what the wrapped layer cannot have (as alone); num_constants", () => {
    refused((a) => { bidi(a).layer.class_name = "SimpleRNN"; }, "layers[1]", "config.layer: only a wrapped LSTM or GRU is supported, got \"SimpleRNN\"");
    refused((a) => { delete bidi(a).layer; }, "config.layer: expected a layer { class_name, config }");
    refused((a) => { bidi(a).layer.config.return_state = true; }, "layers[1] (Bidirectional \"bidirectional\") layer", "config.return_state true is not supported");
    refused((a) => { bidi(a).layer.config.activation = "relu"; }, "config.activation \"relu\" is not supported");
    refused((a) => { bidi(a).num_constants = 1; }, "config.num_constants 1");
    refused((a) => { bidi(a).layer.config.go_backwards = true; }, "layers[1] (Bidirectional \"bidirectional\") layer", "config.go_backwards true is not supported in a Bidirectional");
  });

  it("a Bidirectional (or any layer) above one with return_sequences false", () => {
    refused((a) => {
      const l = a.modelTopology.config.layers;
      l.splice(2, 0, { class_name: "Bidirectional", config: { name: "bidirectional_1", trainable: true, merge_mode: "sum", layer: structuredClone(bidi(a).layer) } });
      bidi(a).layer.config.return_sequences = false;
    }, "layers[2] (Bidirectional \"bidirectional_1\")", "a Bidirectional below it has return_sequences false");
  });

  it("weights: one that names neither direction, two for the same slot, a direction's weight missing", () => {
    refused((a) => { a.weightSpecs[0].name = "bidirectional/sideways_lstm/kernel"; }, "weightSpecs[0] (\"bidirectional/sideways_lstm/kernel\")", "names neither direction of layers[1]", "\"forward_lstm\"", "\"backward_lstm\"");
    refused((a) => { a.weightSpecs[3].name = "bidirectional/forward_lstm/recurrent_kernel"; }, "weightSpecs[3]", "appears twice");
    refused((a) => { a.weightSpecs[4].name = "bidirectional/forward_lstm/kernel:0"; }, "weightSpecs[4]", "already has its forward/kernel from weightSpecs[0]");
  });
});

// ---------------------------------------------------------------------------------------------------
// toOnnx

interface OnnxCase { name: string; input: "ids" | number; layers: () => AnyLayer[] }

const ONNX_CASES: OnnxCase[] = [];
(["lstm", "gru"] as const).forEach((kind, ki) => [true, false].forEach((seq) => MODES.forEach((mode, mi) => ONNX_CASES.push({
  name: `Bidirectional(${kind === "lstm" ? "LSTM" : `GRU, resetAfter ${mi % 2 === 0}`}${seq ? ", sequences" : ""}${(ki + mi) % 2 ? ", hardSigmoid" : ""}), ${mode} → Dense${seq ? " per step" : ""}`,
  input: 3,
  layers: () => [
    new Bidirectional(kind === "lstm"
      ? new LSTM({ units: 4, inputDim: 3, returnSequences: seq, recurrentActivation: (ki + mi) % 2 ? "hardSigmoid" : "sigmoid" })
      : new GRU({ units: 4, inputDim: 3, returnSequences: seq, resetAfter: mi % 2 === 0, recurrentActivation: (ki + mi) % 2 ? "hardSigmoid" : "sigmoid" }), { mergeMode: mode }),
    new Dense({ units: 2 }),
  ],
}))));
ONNX_CASES.push(
  {
    name: "stacked: Bidirectional(LSTM, sequences), concat → Bidirectional(GRU, resetAfter false), mul",
    input: 3,
    layers: () => [new Bidirectional(new LSTM({ units: 3, inputDim: 3, returnSequences: true })), new Bidirectional(new GRU({ units: 3, resetAfter: false }), { mergeMode: "mul" })],
  },
  {
    name: "LSTM (sequences, goBackwards) → Bidirectional(GRU, sequences), sum per step",
    input: 2, layers: () => [new LSTM({ units: 3, inputDim: 2, returnSequences: true, goBackwards: true }), new Bidirectional(new GRU({ units: 3, returnSequences: true }), { mergeMode: "sum" })],
  },
  {
    name: "useBias false: LSTM (sequences) → Bidirectional(GRU, sequences, no bias), ave → Bidirectional(LSTM, no bias) → Dense (sigmoid)",
    input: 3,
    layers: () => [
      new LSTM({ units: 3, inputDim: 3, returnSequences: true }),
      new Bidirectional(new GRU({ units: 3, useBias: false, returnSequences: true }), { mergeMode: "ave" }),
      new Bidirectional(new LSTM({ units: 2, useBias: false })),
      new Dense({ units: 1, activation: "sigmoid" }),
    ],
  },
  {
    name: "Embedding → Bidirectional(LSTM, sequences, hardSigmoid), concat → GRU → Dense (softmax)",
    input: "ids",
    layers: () => [new Embedding({ inputDim: V, outputDim: 3 }), new Bidirectional(new LSTM({ units: 3, returnSequences: true, recurrentActivation: "hardSigmoid" })), new GRU({ units: 3 }), new Dense({ units: 3, activation: "softmax" })],
  },
);

const onnxInput = (c: { input: "ids" | number }, seed: string, B: number, T: number) => (c.input === "ids" ? ids(seed, B, T) : seqX(seed, B, T, c.input));

describe("toOnnx: a Bidirectional is one ONNX LSTM or GRU node with direction \"bidirectional\", and ORT's y is predict", () => {
  ONNX_CASES.forEach((c, ci) => {
    it(c.name, async () => {
      const model = new Sequential(c.layers(), { seed: 30 + ci, dtype: "float32" });
      if (!model.engine.built) model.build(1);
      perturb(model, 30 + ci);
      const bytes = toOnnx(model);
      const nodes = onnxNodes(bytes), dims = onnxInitializerDims(bytes);
      const recurrent = model.layers.filter((l) => l instanceof LSTM || l instanceof GRU || l instanceof Bidirectional);
      const rnn = nodes.filter((n) => n.op === "LSTM" || n.op === "GRU");
      expect(rnn.length).toBe(recurrent.length);
      rnn.forEach((n, k) => {
        const l = recurrent[k]!, bidi = l instanceof Bidirectional, cl = bidi ? l.forwardLayer : (l as LSTM | GRU);
        const D = bidi ? 2 : 1, G = cl instanceof LSTM ? 4 : 3, H = cl.units;
        expect(n.op).toBe(cl instanceof LSTM ? "LSTM" : "GRU");
        expect(n.attrs["direction"]).toBe(bidi ? "bidirectional" : cl.goBackwards ? "reverse" : undefined);
        expect(n.attrs["hidden_size"]).toBe(H);
        if (cl instanceof GRU) expect(n.attrs["linear_before_reset"]).toBe(cl.resetAfter ? 1 : 0);
        const acts = cl instanceof LSTM ? ["HardSigmoid", "Tanh", "Tanh"] : ["HardSigmoid", "Tanh"];
        expect(n.attrs["activations"]).toEqual(cl.recurrentActivation === "hardSigmoid" ? (bidi ? [...acts, ...acts] : acts) : undefined);
        // X, W (D, GH, I), R (D, GH, H)[, B (D, 2GH)]
        expect(n.inputs.length).toBe(cl.useBias ? 4 : 3);
        expect([dims[n.inputs[1]!], dims[n.inputs[2]!]]).toEqual([[D, G * H, cl.inputDim], [D, G * H, H]]);
        if (cl.useBias) expect(dims[n.inputs[3]!]).toEqual([D, 2 * G * H]);
      });
      const s = await ort.InferenceSession.create(bytes);
      for (const [b, t] of [[3, 5], [1, 1], [4, 7]] as const) {
        const x = onnxInput(c, `onnx/${ci}/${b}/${t}`, b, t);
        const want = model.predict(x as number[][][]), got = await runOrt(s, x);
        expect(got.dims).toEqual(want.shape);
        expectAgree(`toOnnx: ${c.name} (B=${b}, T=${t})`, got.data as Float32Array, want.data);
      }
    });
  });

  it("sensitivity: the directions' weights swapped, or the backward direction's last output taken from ONNX's Y_h[0], is another number", () => {
    const x = seqX("sens", 3, 6);
    for (const seq of [true, false]) {
      const model = perturb(new Sequential([new Bidirectional(new LSTM({ units: 4, inputDim: 3, returnSequences: seq }), { mergeMode: "concat" })], { dtype: "float32", seed: 3 }), 3);
      const w = model.getWeights();
      const swapped = new Sequential([new Bidirectional(new LSTM({ units: 4, inputDim: 3, returnSequences: seq }), { mergeMode: "concat" })], { dtype: "float32" });
      swapped.setWeights([...w.slice(3), ...w.slice(0, 3)]);
      expect(distance(swapped.predict(x).data, model.predict(x).data)).toBeGreaterThan(1e-3);
    }
    // Last step, concat: the backward half of y is the backward direction's state after reading step 0, not after step T − 1.
    const m = perturb(new Sequential([new Bidirectional(new GRU({ units: 3, inputDim: 3 }))], { dtype: "float32", seed: 4 }), 4);
    const y = m.predict(x).data, seqY = new Sequential([new Bidirectional(new GRU({ units: 3, inputDim: 3, returnSequences: true }))], { dtype: "float32" });
    seqY.setWeights(m.getWeights());
    const ys = seqY.predict(x).data; // [B, T, 6]: the backward half at step 0 is the last step's backward half
    const T = 6, U = 6;
    for (let b = 0; b < 3; b++) {
      for (let j = 0; j < 3; j++) {
        expect(Math.abs(y[b * U + 3 + j]! - ys[(b * T + 0) * U + 3 + j]!)).toBeLessThan(1e-6);
        expect(Math.abs(y[b * U + j]! - ys[(b * T + T - 1) * U + j]!)).toBeLessThan(1e-6);
      }
    }
    // … which the ORT comparisons above pin for ONNX's Y_h[1]; Y_h[0] of the reverse direction would be the state after step T − 1.
    expect(distance(Array.from({ length: 9 }, (_, k) => y[Math.floor(k / 3) * U + 3 + (k % 3)]!), Array.from({ length: 9 }, (_, k) => ys[(Math.floor(k / 3) * T + T - 1) * U + 3 + (k % 3)]!))).toBeGreaterThan(1e-3);
  });
});

/**
 * Masked models with a Bidirectional, each run with zeroOutputForMask false and true on every plain LSTM or GRU (a
 * Bidirectional's is its returnSequences): a Bidirectional on top per step or last step, below an LSTM, above one.
 * `zeroMatters`: whether zeroOutputForMask changes predict on rows padded at the end (only where a plain layer is on top).
 */
const MASKED: { name: string; input: "ids" | { F: number; maskValue: number }; zeroMatters: boolean; layers: (z: boolean) => AnyLayer[] }[] = [
  ...MODES.map((mode) => ({
    name: `Masking (0) → Bidirectional(LSTM, sequences), ${mode} per step: the top layer, zeros at masked steps`, input: { F: 3, maskValue: 0 }, zeroMatters: false,
    layers: () => [new Masking(), new Bidirectional(new LSTM({ units: 3, inputDim: 3, returnSequences: true }), { mergeMode: mode })],
  })),
  ...MODES.map((mode) => ({
    name: `Embedding (maskZero) → Bidirectional(GRU), ${mode} → Dense: a last-step top, each direction's last kept output`, input: "ids" as const, zeroMatters: false,
    layers: () => [new Embedding({ inputDim: V, outputDim: 3, maskZero: true }), new Bidirectional(new GRU({ units: 3 }), { mergeMode: mode }), new Dense({ units: 2 })],
  })),
  {
    name: "Masking (−1) → Bidirectional(GRU, sequences, resetAfter false), concat → LSTM (sequences) per step: a Bidirectional below the top", input: { F: 2, maskValue: -1 }, zeroMatters: true,
    layers: (z) => [new Masking({ maskValue: -1 }), new Bidirectional(new GRU({ units: 3, inputDim: 2, returnSequences: true, resetAfter: false })), new LSTM({ units: 2, returnSequences: true, zeroOutputForMask: z })],
  },
  {
    name: "Masking (0) → LSTM (sequences, goBackwards) → Bidirectional(GRU, sequences), sum per step: a Bidirectional above a backwards LSTM", input: { F: 3, maskValue: 0 }, zeroMatters: false,
    layers: (z) => [new Masking(), new LSTM({ units: 3, inputDim: 3, returnSequences: true, goBackwards: true, zeroOutputForMask: z }), new Bidirectional(new GRU({ units: 3, returnSequences: true }), { mergeMode: "sum" })],
  },
  {
    name: "Embedding (maskZero) → Bidirectional(LSTM, sequences, hardSigmoid), ave → Bidirectional(LSTM), concat → Dense", input: "ids", zeroMatters: false,
    layers: () => [
      new Embedding({ inputDim: V, outputDim: 4, maskZero: true }),
      new Bidirectional(new LSTM({ units: 3, returnSequences: true, recurrentActivation: "hardSigmoid" }), { mergeMode: "ave" }),
      new Bidirectional(new LSTM({ units: 2 })),
      new Dense({ units: 2 }),
    ],
  },
];

function maskedInput(c: (typeof MASKED)[number], seed: string, T: number, masked: (b: number, t: number) => boolean, B: number): number[][] | number[][][] {
  if (c.input === "ids") return ids(seed, B, T, masked);
  return seqX(seed, B, T, c.input.F, masked, c.input.maskValue);
}

describe("toOnnx masks a Bidirectional through sequence_lens: ORT's y is predict on rows padded at the end, NaN on others", () => {
  MASKED.forEach((c, ci) => {
    it(c.name, async () => {
      await expectOnnxMasking(c.name, (z) => perturb(new Sequential(c.layers(z), { seed: 50 + ci, dtype: "float32" }), 50 + ci), Boolean(c.zeroMatters), String(ci),
        (seed, T, masked, B) => maskedInput(c, seed, T, masked, B), expectAgree);
    });
  });
});
