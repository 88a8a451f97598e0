/**
 * toOnnx against the real ONNX Runtime (onnxruntime-node): every exported graph is loaded and run by ORT and
 * compared element by element with model.predict on the same input, |ort - predict| ≤ 1e-5·(1 + |predict|).
 * A wrong gate order, a missing transpose, a wrong activation or bias would all break that comparison; the
 * "sensitivity" tests check that the models used are ones where such a mistake shows.
 */
import { describe, it, expect, afterAll } from "vitest";
import * as ort from "onnxruntime-node";
import { Sequential, LSTM, Dense, StateError, ValueError, type Tensor } from "../src/index.js";
import { toOnnx } from "../src/interop/onnx.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";

const TOL = 1e-5;
const maxDiffs: Record<string, number> = {};

/** x [B, T, F] of standard normals (float32-representable, so predict and ORT see the same numbers). */
function input(seed: number, B: number, T: number, F: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: B * T * F }, () => scale * rng.normal());
}

async function session(model: Sequential): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(toOnnx(model));
}

async function runOrt(s: ort.InferenceSession, x: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const out = await s.run({ x: new ort.Tensor("float32", x, dims) });
  return out.y!;
}

/** Runs ORT and predict on the same x and checks them elementwise; returns the largest |difference|. */
async function agree(label: string, model: Sequential, s: ort.InferenceSession, B: number, T: number, seed = 7, scale = 1): Promise<number> {
  const F = model.inputDim!;
  const x = input(seed, B, T, F, scale);
  const want = model.predict(fromData(Float64Array.from(x), [B, T, F]));
  const got = await runOrt(s, x, [B, T, F]);
  expect(got.type).toBe("float32");
  expect(got.dims).toEqual(want.shape);
  const g = got.data as Float32Array;
  expect(g.length).toBe(want.data.length);
  let max = 0;
  const bad: string[] = [];
  for (let k = 0; k < g.length; k++) {
    const d = Math.abs(g[k]! - want.data[k]!);
    max = Math.max(max, d);
    if (!(d <= TOL * (1 + Math.abs(want.data[k]!)))) bad.push(`[${k}] ort ${g[k]} vs predict ${want.data[k]}`);
  }
  expect(bad.slice(0, 5), `${label}: ${bad.length} of ${g.length} values differ`).toEqual([]);
  maxDiffs[label] = Math.max(maxDiffs[label] ?? 0, max);
  return max;
}

/** Largest |a - b| between two predictions. */
function distance(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let k = 0; k < a.data.length; k++) m = Math.max(m, Math.abs(a.data[k]! - b.data[k]!));
  return m;
}

afterAll(() => {
  if (process.env.ONNX_DIFFS) console.log("max |ORT - predict|:", maxDiffs);
});

describe("toOnnx in ONNX Runtime", () => {
  it("single LSTM + sigmoid head; input x and output y with symbolic batch and time", async () => {
    const model = new Sequential([new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 2, activation: "sigmoid" })], { seed: 1, dtype: "float32" });
    const bytes = toOnnx(model);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect([...bytes.subarray(0, 2)]).toEqual([0x08, 8]); // field 1 (ir_version), varint 8
    const s = await ort.InferenceSession.create(bytes);
    expect(s.inputNames).toEqual(["x"]);
    expect(s.outputNames).toEqual(["y"]);
    const [inMeta] = s.inputMetadata, [outMeta] = s.outputMetadata;
    expect(inMeta!.isTensor && inMeta!.shape).toEqual(["batch", "time", 3]);
    expect(outMeta!.isTensor && outMeta!.shape).toEqual(["batch", 2]);
    await agree("single LSTM + sigmoid", model, s, 4, 7);
  });

  it.each([
    { name: "2 LSTMs + relu, linear", units: [6, 4], heads: [["relu", 5], ["linear", 2]] as const },
    { name: "3 LSTMs + relu, tanh, linear", units: [6, 5, 4], heads: [["relu", 7], ["tanh", 3], ["linear", 2]] as const },
  ])("stacked: $name", async ({ name, units, heads }) => {
    const layers = [
      ...units.map((u, i) => new LSTM({ units: u, inputDim: i === 0 ? 4 : undefined, returnSequences: i < units.length - 1 })),
      ...heads.map(([activation, u]) => new Dense({ units: u, activation })),
    ];
    const model = new Sequential(layers, { seed: 2, dtype: "float32" });
    await agree(`stacked ${name}`, model, await session(model), 3, 9);
  });

  it("per-step model: y is [batch, time, D]", async () => {
    const model = new Sequential([
      new LSTM({ units: 5, inputDim: 3, returnSequences: true }),
      new LSTM({ units: 4, returnSequences: true }),
      new Dense({ units: 3, activation: "tanh" }),
      new Dense({ units: 2, activation: "sigmoid" }),
    ], { seed: 3, dtype: "float32" });
    expect(model.perStep).toBe(true);
    const s = await session(model);
    const [outMeta] = s.outputMetadata;
    expect(outMeta!.isTensor && outMeta!.shape).toEqual(["batch", "time", 2]);
    await agree("per-step", model, s, 3, 6);
  });

  it("recurrentActivation hardSigmoid, with weights large enough that the gates clip", async () => {
    const make = (ra: "sigmoid" | "hardSigmoid") => new Sequential([
      new LSTM({ units: 6, inputDim: 3, returnSequences: true, recurrentActivation: ra }),
      new LSTM({ units: 4, recurrentActivation: ra }),
      new Dense({ units: 2 }),
    ], { seed: 4, dtype: "float32" });
    const model = make("hardSigmoid");
    const [kernel, ...rest] = model.getWeights();
    const k3 = fromData(kernel!.data.map((v) => 3 * v), kernel!.shape);
    model.setWeights([k3, ...rest]);
    // First-step pre-activations of layer 0 (h0 = 0): z = x0 · kernel + bias. Some of i, f, o must lie past
    // ±2.5, where hardSigmoid is clipped to 0 or 1, and some inside, where it is linear.
    const x = input(7, 4, 8, 3);
    const H = 6, G = 4 * H;
    const bias = rest[1]!.data;
    let clipped = 0, linear = 0;
    for (let b = 0; b < 4; b++) {
      for (let c = 0; c < G; c++) {
        if (c >= 2 * H && c < 3 * H) continue; // the candidate g uses tanh
        let z = bias[c]!;
        for (let i = 0; i < 3; i++) z += x[b * 8 * 3 + i]! * k3.data[i * G + c]!;
        if (Math.abs(z) > 2.5) clipped++; else linear++;
      }
    }
    expect(clipped).toBeGreaterThan(5);
    expect(linear).toBeGreaterThan(5);
    await agree("hardSigmoid", model, await session(model), 4, 8);
    // The same weights under sigmoid predict something else: the agreement above did test HardSigmoid.
    const soft = make("sigmoid");
    soft.setWeights(model.getWeights());
    const xt = fromData(Float64Array.from(x), [4, 8, 3]);
    expect(distance(model.predict(xt), soft.predict(xt))).toBeGreaterThan(1e-2);
  });

  it("useBias false on LSTM and Dense layers", async () => {
    const model = new Sequential([
      new LSTM({ units: 5, inputDim: 3, returnSequences: true, useBias: false }),
      new LSTM({ units: 4 }),
      new Dense({ units: 3, activation: "relu", useBias: false }),
      new Dense({ units: 2, activation: "sigmoid" }),
    ], { seed: 5, dtype: "float32" });
    expect(model.weightShapes()).toEqual([[3, 20], [5, 20], [5, 16], [4, 16], [16], [4, 3], [3, 2], [2]]);
    await agree("useBias false (mixed)", model, await session(model), 3, 7);
    const bare = new Sequential([
      new LSTM({ units: 4, inputDim: 2, useBias: false, recurrentActivation: "hardSigmoid" }),
      new Dense({ units: 1, useBias: false }),
    ], { seed: 6, dtype: "float32" });
    expect(bare.weightShapes()).toEqual([[2, 16], [4, 16], [4, 1]]);
    await agree("useBias false (all)", bare, await session(bare), 3, 7, 7, 2);
  });

  it("a float64 model (weights rounded to float32)", async () => {
    const model = new Sequential([
      new LSTM({ units: 8, inputDim: 3, returnSequences: true }),
      new LSTM({ units: 6 }),
      new Dense({ units: 2, activation: "tanh" }),
    ], { seed: 7, dtype: "float64" });
    expect(model.dtype).toBe("float64");
    await agree("float64", model, await session(model), 3, 10);
  });

  it("one session serves any batch size and length (B=1, T=3 and B=4, T=11)", async () => {
    for (const returnSequences of [false, true]) {
      const model = new Sequential([
        new LSTM({ units: 5, inputDim: 2, returnSequences }),
        new Dense({ units: 3, activation: "relu" }),
      ], { seed: 8, dtype: "float32" });
      const s = await session(model);
      await agree(`dynamic (perStep ${returnSequences}) B=1 T=3`, model, s, 1, 3, 11);
      await agree(`dynamic (perStep ${returnSequences}) B=4 T=11`, model, s, 4, 11, 12);
    }
  });

  it("a stateful model's graph computes predict from a zero state", async () => {
    const model = new Sequential([
      new LSTM({ units: 4, inputDim: 2, stateful: true, batchSize: 2 }),
      new Dense({ units: 1 }),
    ], { seed: 9, dtype: "float32" });
    const s = await session(model);
    await agree("stateful, fresh", model, s, 2, 5); // predict from the zero state, leaves a state behind
    const x = input(7, 2, 5, 2);
    const carried = model.predict(fromData(Float64Array.from(x), [2, 5, 2])); // from the carried state
    const fromZero = await runOrt(s, x, [2, 5, 2]);
    expect(distance(carried, fromData(Float64Array.from(fromZero.data as Float32Array), [2, 1]))).toBeGreaterThan(1e-4);
    model.resetStates();
    await agree("stateful, reset", model, s, 2, 5);
  });

  it("sensitivity: Keras gate blocks f and o swapped predict something else", async () => {
    const model = new Sequential([new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 2 })], { seed: 10, dtype: "float32" });
    const H = 5, G = 4 * H;
    const swapFO = (t: Tensor): Tensor => {
      const out = t.data.slice();
      const rows = t.data.length / G;
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < H; j++) {
          out[r * G + H + j] = t.data[r * G + 3 * H + j]!;
          out[r * G + 3 * H + j] = t.data[r * G + H + j]!;
        }
      }
      return fromData(out, t.shape);
    };
    const [k, r, b, ...head] = model.getWeights();
    const swapped = new Sequential([new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 2 })], { seed: 10, dtype: "float32" });
    swapped.setWeights([swapFO(k!), swapFO(r!), swapFO(b!), ...head]);
    const s = await session(model);
    await agree("sensitivity base", model, s, 3, 6);
    const x = input(7, 3, 6, 3);
    const ortY = await runOrt(s, x, [3, 6, 3]);
    const other = swapped.predict(fromData(Float64Array.from(x), [3, 6, 3]));
    expect(distance(other, fromData(Float64Array.from(ortY.data as Float32Array), [3, 2]))).toBeGreaterThan(1e-2);
  });
});

describe("toOnnx arguments", () => {
  it("an unbuilt model is a StateError naming toOnnx", () => {
    const model = new Sequential([new LSTM({ units: 3 }), new Dense({ units: 1 })], { seed: 1 });
    expect(() => toOnnx(model)).toThrow(StateError);
    expect(() => toOnnx(model)).toThrow(/toOnnx/);
  });

  it("anything but a Sequential is a ValueError naming `toOnnx model`", () => {
    for (const bad of [undefined, null, {}, [], "model", new LSTM({ units: 2, inputDim: 1 })]) {
      expect(() => toOnnx(bad as unknown as Sequential)).toThrow(ValueError);
      expect(() => toOnnx(bad as unknown as Sequential)).toThrow(/^toOnnx model: expected a Sequential/);
    }
  });

  it("a float64 weight beyond the float32 range is a ValueError naming the weight", () => {
    const model = new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1 });
    const ws = model.getWeights();
    ws[3]!.data[0] = 1e300;
    model.setWeights(ws);
    expect(() => toOnnx(model)).toThrow(/dense_0\/kernel/);
  });
});
