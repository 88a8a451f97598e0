/**
 * The generalised layer orders (Dense before, between or after LSTMs; models ending on an LSTM, with its last h or
 * its whole sequence; Masking first, its mask passed through Dense layers) through every exchange format:
 * - tfjs: toTfjs loads in the real @tensorflow/tfjs (CPU backend) and predicts what we predict; fromTfjs rebuilds a
 *   model that predicts the original's bits; models built and trained in tfjs in such orders import and predict
 *   what tfjs predicts;
 * - ONNX: toOnnx runs in ONNX Runtime and its "y" is predict (the per-step graph ends with a Transpose to batch
 *   major); a Masking model's graph is predict on rows padded at the end, NaN on others;
 * - safetensors and checkpoints: bit-exact round trips (float64), and a restored checkpoint trains on the same bits.
 *
 * No golden values: every comparison is against our own predict (or tfjs's, for tfjs-built models).
 * Agreement with tfjs and ORT is |a − b| ≤ 1e-5·(1 + |b|) elementwise (float32), as in tfjs-interop/onnx tests.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import {
  Sequential, LSTM, Dense, Masking, toSafetensors, fromSafetensors, toTfjs, fromTfjs, toOnnx,
  checkpointFromJSON, encodeCheckpoint, decodeCheckpoint, randomNormal, type DType,
} from "../src/index.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";
import { snapshot, expectSame } from "./helpers/rel-snapshot.js";
import { agreement, bits, distance, fitTf, pbFields, tfLoad, tfPredict, tfSave, utf8 } from "./helpers/interop.js";

// ---------------------------------------------------------------------------------------------------
// Helpers

const TOL = 1e-5;
const expectAgree = agreement("tfjs/ORT", TOL);

/** x [B, T, F] of float32-representable standard normals, with every feature of the listed (row, step) pairs 0. */
function seqX(seed: string | number, B: number, T: number, F: number, maskAt: readonly [number, number][] = []): number[][][] {
  const r = new Rng(`orders-interop/${seed}`);
  const x = Array.from({ length: B }, () => Array.from({ length: T }, () => Array.from({ length: F }, () => Math.fround(r.normal()))));
  for (const [b, t] of maskAt) x[b]![t]!.fill(0);
  return x;
}

/** Spread every weight (biases start at 0 or 1) so that a swapped or dropped weight would show. */
function perturb(model: Sequential, seed: number): void {
  const r = new Rng(`orders-interop/perturb/${seed}`);
  model.setWeights(model.getWeights().map((w) => fromData(w.data.map((v) => v + 0.3 * (2 * r.uniform() - 1)), w.shape)));
}

/** The graph's nodes in order: op type, outputs and int-list attributes (ModelProto.graph 7 → GraphProto.node 1). */
function onnxNodes(model: Uint8Array): { op: string; outputs: string[]; ints: Record<string, number[]> }[] {
  const graph = pbFields(model).find((f) => f.field === 7)!.bytes!;
  return pbFields(graph).filter((f) => f.field === 1).map((n) => {
    const fs = pbFields(n.bytes!);
    const ints: Record<string, number[]> = {};
    for (const a of fs.filter((f) => f.field === 5)) {
      const af = pbFields(a.bytes!);
      const name = utf8(af.find((f) => f.field === 1)!.bytes!);
      ints[name] = af.filter((f) => f.field === 8 && f.wire === 0).map((f) => Number(BigInt.asIntN(64, f.int!)));
    }
    return { op: utf8(fs.find((f) => f.field === 4)!.bytes!), outputs: fs.filter((f) => f.field === 2).map((f) => utf8(f.bytes!)), ints };
  });
}

beforeAll(async () => {
  tf.enableProdMode();
  await tf.setBackend("cpu");
});

// ---------------------------------------------------------------------------------------------------
// The orders

type Kind = "dense" | "lstm" | "masking";

interface OrderCase {
  name: string;
  F: number;
  layers: () => (Masking | LSTM | Dense)[];
  /** The layer kinds, Masking included, and tfjs's class names in that order. */
  kinds: Kind[];
  /** Output shape for B rows and T steps. */
  out: (B: number, T: number) => number[];
  /** Steps of x set to the mask value 0 (only for Masking models). */
  mask?: [number, number][];
}

const CASES: OrderCase[] = [
  {
    name: "Dense (tanh) first on the sequence → LSTM → Dense (sigmoid)",
    F: 3,
    layers: () => [new Dense({ units: 4, inputDim: 3, activation: "tanh" }), new LSTM({ units: 5 }), new Dense({ units: 1, activation: "sigmoid" })],
    kinds: ["dense", "lstm", "dense"],
    out: (B) => [B, 1],
  },
  {
    name: "LSTM (sequences) → Dense (tanh) per step → LSTM → Dense (linear)",
    F: 3,
    layers: () => [new LSTM({ units: 4, inputDim: 3, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 3 }), new Dense({ units: 2 })],
    kinds: ["lstm", "dense", "lstm", "dense"],
    out: (B) => [B, 2],
  },
  {
    name: "ending on an LSTM, vector output: LSTM (sequences) → Dense (tanh) → LSTM",
    F: 3,
    layers: () => [new LSTM({ units: 4, inputDim: 3, returnSequences: true }), new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 2 })],
    kinds: ["lstm", "dense", "lstm"],
    out: (B) => [B, 2],
  },
  {
    name: "ending on an LSTM, sequence output: Dense (relu) → LSTM (sequences) → Dense (tanh) → LSTM (sequences)",
    F: 3,
    layers: () => [
      new Dense({ units: 4, inputDim: 3, activation: "relu" }), new LSTM({ units: 5, returnSequences: true }),
      new Dense({ units: 3, activation: "tanh" }), new LSTM({ units: 3, returnSequences: true }),
    ],
    kinds: ["dense", "lstm", "dense", "lstm"],
    out: (B, T) => [B, T, 3],
  },
  {
    name: "Masking → LSTM (sequences) → Dense (relu) per step → LSTM (sequences), per-step output",
    F: 2,
    layers: () => [
      new Masking({ maskValue: 0 }), new LSTM({ units: 4, inputDim: 2, returnSequences: true }),
      new Dense({ units: 3, activation: "relu" }), new LSTM({ units: 3, returnSequences: true }),
    ],
    kinds: ["masking", "lstm", "dense", "lstm"],
    out: (B, T) => [B, T, 3],
    mask: [[0, 0], [0, 1], [1, 3], [2, 2], [2, 4]],
  },
  {
    name: "Masking → Dense (tanh) on the sequence → LSTM → Dense (linear), mask passed through the Dense",
    F: 2,
    layers: () => [new Masking({ maskValue: 0 }), new Dense({ units: 4, inputDim: 2, activation: "tanh" }), new LSTM({ units: 3 }), new Dense({ units: 2 })],
    kinds: ["masking", "dense", "lstm", "dense"],
    out: (B) => [B, 2],
    mask: [[0, 4], [1, 0], [1, 1], [2, 2]],
  },
];

const B = 3, T = 5; // B ≠ T: a missing or wrong transpose changes the output's shape

function build(c: OrderCase, dtype: DType, seed: number): Sequential {
  const m = new Sequential(c.layers(), { dtype, seed });
  perturb(m, seed);
  return m;
}

function kindsOf(m: Sequential): Kind[] {
  return [...(m.masking ? ["masking" as const] : []), ...m.layers.map((l) => (l instanceof LSTM ? "lstm" as const : "dense" as const))];
}

const TFJS_CLASS: Record<Kind, string> = { masking: "Masking", lstm: "LSTM", dense: "Dense" };

describe("the orders themselves (what the format tests below rely on)", () => {
  for (const c of CASES) {
    it(`${c.name}: builds, predicts shape ${JSON.stringify(c.out(B, T))}${c.mask ? ", and the mask changes the output" : ""}`, () => {
      const m = build(c, "float64", 1);
      expect(kindsOf(m)).toEqual(c.kinds);
      const x = seqX("shape", B, T, c.F, c.mask);
      const y = m.predict(x);
      expect(y.shape).toEqual(c.out(B, T));
      expect(m.perStep).toBe(c.out(B, T).length === 3);
      if (c.mask) {
        // Without the Masking layer (same weights) the zero steps are read as data: a different output, so the
        // formats' agreement below on masked inputs does test that the mask travelled.
        const bare = new Sequential(c.layers().filter((l) => !(l instanceof Masking)), { dtype: "float64", seed: 1 });
        bare.setWeights(m.getWeights());
        expect(distance(bare.predict(x).data, y.data)).toBeGreaterThan(1e-3);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// tfjs

describe("toTfjs: real tfjs (tf.loadLayersModel(tf.io.fromMemory)) predicts what we predict, within float32 tolerance", () => {
  CASES.forEach((c, ci) => {
    it(c.name, async () => {
      const model = build(c, "float32", 10 + ci);
      const artifacts = toTfjs(model);
      const classes = (artifacts.modelTopology as any).config.layers.map((l: any) => l.class_name);
      expect(classes).toEqual(c.kinds.map((k) => TFJS_CLASS[k]));
      const tfModel = await tfLoad(artifacts);
      expect(tfModel.layers.map((l) => l.getClassName())).toEqual(c.kinds.map((k) => TFJS_CLASS[k]));
      for (const [seed, b, t] of [[1, B, T], [2, 2, 6]] as const) {
        const x = seqX(`tfjs/${ci}/${seed}`, b, t, c.F, c.mask?.filter(([r, s]) => r < b && s < t));
        const ours = model.predict(x);
        const theirs = tfPredict(tfModel, x);
        expect(theirs.shape).toEqual(ours.shape);
        expect(ours.shape).toEqual(c.out(b, t));
        expectAgree(`toTfjs: ${c.name} (B=${b}, T=${t})`, ours.data, theirs.data);
      }
      tfModel.dispose();
    });
  });
});

describe("toTfjs → fromTfjs: the rebuilt float32 model predicts the original's bits (golden-free)", () => {
  CASES.forEach((c, ci) => {
    it(c.name, () => {
      const model = build(c, "float32", 20 + ci);
      const back = fromTfjs(toTfjs(model));
      expect(kindsOf(back)).toEqual(c.kinds);
      expect(back.masking?.maskValue).toBe(model.masking?.maskValue);
      expect(back.weightShapes()).toEqual(model.weightShapes());
      expect(bits(back.getWeights())).toEqual(bits(model.getWeights()));
      const x = seqX(`tfjs-rt/${ci}`, B, T, c.F, c.mask);
      const a = model.predict(x), b = back.predict(x);
      expect(b.shape).toEqual(a.shape);
      expect(bits([b])).toEqual(bits([a]));
    });
  });
});

describe("fromTfjs: models built and trained in tfjs in the new orders predict what tfjs predicts (float32 tolerance)", () => {
  const N = 8, Tt = 6, F = 3;

  it("Dense (inputShape [null, F]) on the sequence → LSTM → Dense (sigmoid)", async () => {
    const m = tf.sequential();
    m.add(tf.layers.dense({ units: 4, activation: "tanh", inputShape: [null, F] }));
    m.add(tf.layers.lstm({ units: 5 }));
    m.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
    await fitTf(m, seqX("tf-a", N, Tt, F), randomNormal([N, 1], { seed: 31 }));
    const model = fromTfjs(await tfSave(m));
    expect(kindsOf(model)).toEqual(["dense", "lstm", "dense"]);
    const xt = seqX("tf-a-test", 3, 4, F); // another length: the topology has time null
    const ours = model.predict(xt);
    expect(ours.shape).toEqual([3, 1]);
    expectAgree("tfjs-built: Dense → LSTM → Dense", ours.data, tfPredict(m, xt).data);
    m.dispose();
  });

  it("LSTM (sequences) → Dense (tanh) → LSTM, ending on the LSTM: vector output", async () => {
    const m = tf.sequential();
    m.add(tf.layers.lstm({ units: 4, returnSequences: true, recurrentActivation: "sigmoid", inputShape: [null, F] }));
    m.add(tf.layers.dense({ units: 3, activation: "tanh" }));
    m.add(tf.layers.lstm({ units: 2 })); // tfjs's default recurrent activation: hard sigmoid
    await fitTf(m, seqX("tf-b", N, Tt, F), randomNormal([N, 2], { seed: 32 }));
    const model = fromTfjs(await tfSave(m));
    expect(kindsOf(model)).toEqual(["lstm", "dense", "lstm"]);
    expect(model.layers.map((l) => (l instanceof LSTM ? l.recurrentActivation : null))).toEqual(["sigmoid", null, "hardSigmoid"]);
    const xt = seqX("tf-b-test", 4, 5, F);
    const ours = model.predict(xt);
    expect(ours.shape).toEqual([4, 2]);
    expectAgree("tfjs-built: LSTM → Dense → LSTM", ours.data, tfPredict(m, xt).data);
    m.dispose();
  });

  it("Masking → LSTM (sequences) → Dense (relu) → LSTM (sequences): per-step output on masked input", async () => {
    const m = tf.sequential();
    m.add(tf.layers.masking({ maskValue: 0, inputShape: [null, 2] }));
    m.add(tf.layers.lstm({ units: 4, returnSequences: true, recurrentActivation: "sigmoid" }));
    m.add(tf.layers.dense({ units: 3, activation: "relu" }));
    m.add(tf.layers.lstm({ units: 3, returnSequences: true, recurrentActivation: "sigmoid" }));
    const mask: [number, number][] = [[0, 0], [1, 5], [2, 2], [2, 3], [5, 1], [7, 0], [7, 1]];
    await fitTf(m, seqX("tf-c", N, Tt, 2, mask), randomNormal([N, Tt, 3], { seed: 33 }));
    const model = fromTfjs(await tfSave(m));
    expect(kindsOf(model)).toEqual(["masking", "lstm", "dense", "lstm"]);
    expect(model.masking!.maskValue).toBe(0);
    const xt = seqX("tf-c-test", 3, 5, 2, [[0, 1], [1, 4], [2, 0], [2, 2]]);
    const ours = model.predict(xt);
    const theirs = tfPredict(m, xt);
    expect(ours.shape).toEqual([3, 5, 3]);
    expect(theirs.shape).toEqual([3, 5, 3]);
    expectAgree("tfjs-built: Masking → LSTM → Dense → LSTM (per step)", ours.data, theirs.data);
    m.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// ONNX

describe("toOnnx: ONNX Runtime's y equals predict (float32 tolerance)", () => {
  CASES.filter((c) => !c.mask).forEach((c, ci) => {
    it(c.name, async () => {
      const model = build(c, "float32", 40 + ci);
      const bytes = toOnnx(model);
      const s = await ort.InferenceSession.create(bytes);
      const D = c.out(1, 1).at(-1)!;
      const perStep = c.out(B, T).length === 3;
      const [outMeta] = s.outputMetadata;
      expect(outMeta!.isTensor && outMeta!.shape).toEqual(perStep ? ["batch", "time", D] : ["batch", D]);
      const nodes = onnxNodes(bytes);
      const last = nodes.at(-1)!;
      expect(last.outputs).toEqual(["y"]);
      if (perStep) {
        // Sequences are time-major inside the graph; the output is turned back to batch-major at the end.
        expect(last.op).toBe("Transpose");
        expect(last.ints["perm"]).toEqual([1, 0, 2]);
      } else {
        expect(last.op).not.toBe("Transpose");
      }
      expect(nodes.filter((n) => n.op === "LSTM").length).toBe(c.kinds.filter((k) => k === "lstm").length);
      expect(nodes.filter((n) => n.op === "MatMul").length).toBe(c.kinds.filter((k) => k === "dense").length);
      for (const [seed, b, t] of [[1, B, T], [2, 1, 3], [3, 4, 6]] as const) {
        const x = seqX(`onnx/${ci}/${seed}`, b, t, c.F);
        const want = model.predict(x);
        expect(want.shape).toEqual(c.out(b, t));
        const got = (await s.run({ x: new ort.Tensor("float32", Float32Array.from(x.flat(2)), [b, t, c.F]) })).y!;
        expect(got.type).toBe("float32");
        expect(got.dims).toEqual(want.shape);
        expectAgree(`toOnnx: ${c.name} (B=${b}, T=${t})`, want.data, got.data as Float32Array);
      }
    });
  });

  for (const c of CASES.filter((c) => c.mask)) {
    it(`a Masking model (sequence_lens): predict on rows padded at the end, NaN on the case's own masks: ${c.name}`, async () => {
      const model = build(c, "float32", 50);
      const s = await ort.InferenceSession.create(toOnnx(model));
      const run = async (x: number[][][]) => (await s.run({ x: new ort.Tensor("float32", Float32Array.from(x.flat(2)), [B, T, c.F]) })).y!.data as Float32Array;
      // Rows kept for 5, 2 and 0 steps, then padded (test/embedding-interop.test.ts covers every LSTM variant).
      const post = seqX("onnx-masked", B, T, c.F, [[1, 2], [1, 3], [1, 4], ...[0, 1, 2, 3, 4].map((t) => [2, t] as [number, number])]);
      expectAgree(`toOnnx: ${c.name}, post-padded`, model.predict(post).data, await run(post));
      // The case's own masks: a row with a kept step after a masked one is NaN (ONNX's sequence_lens cannot say that),
      // a row masked only at its end is predict.
      const x = seqX("onnx-masked", B, T, c.F, c.mask), got = await run(x), want = model.predict(x).data, per = want.length / B;
      for (let b = 0; b < B; b++) {
        const steps = c.mask!.filter(([r]) => r === b).map(([, t]) => t);
        const post = steps.every((t) => t >= T - steps.length);
        const row = got.subarray(b * per, (b + 1) * per);
        if (post) expectAgree(`toOnnx: ${c.name}, the case's mask, row ${b}`, want.subarray(b * per, (b + 1) * per), row);
        else expect(Array.from(row).every(Number.isNaN), `row ${b}`).toBe(true);
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------
// safetensors

describe("toSafetensors → fromSafetensors (float64): the same weight names, shapes and bits, and predict's bits (golden-free)", () => {
  CASES.forEach((c, ci) => {
    it(c.name, () => {
      const model = build(c, "float64", 60 + ci);
      const copy = fromSafetensors(toSafetensors(model));
      expect(copy.dtype).toBe("float64");
      expect(kindsOf(copy)).toEqual(c.kinds);
      expect(copy.masking?.maskValue).toBe(model.masking?.maskValue);
      expect(copy.weightNames()).toEqual(model.weightNames());
      expect(copy.weightShapes()).toEqual(model.weightShapes());
      expect(bits(copy.getWeights())).toEqual(bits(model.getWeights()));
      expect(copy.layers.map((l) => [l.kind, l.units, (l as LSTM).useBias, (l as LSTM).returnSequences, (l as Dense).activation]))
        .toEqual(model.layers.map((l) => [l.kind, l.units, (l as LSTM).useBias, (l as LSTM).returnSequences, (l as Dense).activation]));
      const x = seqX(`st/${ci}`, B, T, c.F, c.mask);
      const a = model.predict(x), b = copy.predict(x);
      expect(b.shape).toEqual(c.out(B, T));
      expect(bits([b])).toEqual(bits([a]));
      // Into a given model of the same order (other seed): the same bits again.
      const other = new Sequential(c.layers(), { dtype: "float64", seed: 999 });
      expect(bits(other.getWeights())).not.toEqual(bits(model.getWeights()));
      fromSafetensors(toSafetensors(model), other);
      expect(bits([other.predict(x)])).toEqual(bits([a]));
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Checkpoints

describe("checkpoints (float64, Adam, MSE): restored models predict and train on the same bits (golden-free)", () => {
  const routes = {
    "JSON.parse(JSON.stringify(model.toJSON()))": (m: Sequential) => checkpointFromJSON(JSON.parse(JSON.stringify(m.toJSON()))),
    "decodeCheckpoint(encodeCheckpoint(model))": (m: Sequential) => decodeCheckpoint(encodeCheckpoint(m)),
  };
  CASES.forEach((c, ci) => {
    for (const [route, restore] of Object.entries(routes)) {
      it(`${c.name} via ${route}`, () => {
        const model = build(c, "float64", 70 + ci);
        model.compile({ optimizer: "adam", loss: "meanSquaredError" });
        const x = seqX(`ckpt/${ci}`, B, T, c.F, c.mask);
        const y = randomNormal(c.out(B, T), { seed: 80 + ci }); // [B, D] or [B, T, D], as the output
        model.trainOnBatch(x, y); // Adam's moments and step count are not at their start
        const copy = restore(model);
        expect(kindsOf(copy)).toEqual(c.kinds);
        expect(copy.masking?.maskValue).toBe(model.masking?.maskValue);
        expect(copy.weightNames()).toEqual(model.weightNames());
        expectSame("restored", snapshot(model), snapshot(copy));
        const xp = seqX(`ckpt-predict/${ci}`, 2, 6, c.F, c.mask?.filter(([r]) => r < 2));
        expect(bits([copy.predict(xp)])).toEqual(bits([model.predict(xp)]));
        const before = bits(model.getWeights());
        for (let s = 0; s < 2; s++) {
          const r1 = model.trainOnBatch(x, y), r2 = copy.trainOnBatch(x, y);
          expect(Number.isFinite(r1.loss)).toBe(true);
          expect(r2).toEqual(r1);
        }
        expect(bits(model.getWeights())).not.toEqual(before); // the steps did train
        expect(bits(copy.getWeights())).toEqual(bits(model.getWeights()));
        expectSame("after 2 more steps", snapshot(model), snapshot(copy));
        expect(bits([copy.predict(xp)])).toEqual(bits([model.predict(xp)]));
      });
    }
  });
});
