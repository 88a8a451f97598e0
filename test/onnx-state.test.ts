/**
 * toOnnx(model, { states: true }) against the real ONNX Runtime (onnxruntime-node): every recurrent layer's states are
 * graph inputs `<layer>/<state>_in` and outputs `<layer>/<state>_out`, [batch, H] each, so a stateful model streams in
 * ORT as it streams here.
 * - Streaming: a stateful model (stacked LSTMs + Dense, LSTM → GRU per step, GRUs, Bidirectionals, an Embedding first,
 *   and masked ones: Masking, Embedding maskZero) fed chunk after chunk (T = 1 steps as a real-time stream, and longer
 *   chunks), ORT fed back its own state outputs each time: y is `predict` chunk by chunk, and the states are
 *   `getStates()` after each chunk. Masked streams have rows that end inside a chunk, rows idle for a whole chunk (no kept
 *   step: the state passes through, the output is zeros) and rows that come back.
 * - `predict(x, { initialStates })` on a stateless model is ORT fed the same states, y and final states; masked, rows
 *   padded at the end agree and any other row gives NaN, its states included.
 * - Without the option (or with states false) the graph is byte for byte what it was before the option existed.
 * - The option is checked at the boundary: unknown keys by name, a states that is not a boolean.
 *
 * Agreement: |ORT − ours| ≤ 1e-5·(1 + |ours|) elementwise (float32), as in the other ONNX tests.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { Sequential, LSTM, GRU, Bidirectional, Dense, Embedding, Masking, ValueError, toOnnx, type RecurrentState } from "../src/index.js";
import type { StatesLike } from "../src/model.js";
import { saveOnnx } from "../src/node/index.js";
import { fromData } from "../src/tensor/tensor.js";
import { Rng } from "../src/init.js";
import { agreement, distance, onnxNodes } from "./helpers/interop.js";

const expectAgree = agreement("ORT (states)");
const F = 2;
const V = 7;

// ---------------------------------------------------------------------------------------------------
// Helpers

/** Spread every weight so that a swapped state, direction or gate block would show. */
function perturb(model: Sequential, seed: number, scale = 0.4): Sequential {
  const r = new Rng(`onnx-state/perturb/${seed}`);
  model.setWeights(model.getWeights().map((w) => fromData(w.data.map((v) => v + scale * (2 * r.uniform() - 1)), w.shape)));
  return model;
}

/** The recurrent layers' names as in weight names (lstm_0, gru_0, bidirectional_0) and their state names, in getStates order. */
function stateLayout(model: Sequential): { layer: string; states: string[]; H: number }[] {
  const out: { layer: string; states: string[]; H: number }[] = [];
  const names = model.weightNames();
  const prefixes = [...new Set(names.map((n) => n.split("/")[0]!))].filter((p) => /^(lstm|gru|bidirectional)_/.test(p));
  model.layers.filter((l) => l.kind === "lstm" || l.kind === "gru" || l.kind === "bidirectional").forEach((l, i) => {
    const cell = l instanceof Bidirectional ? l.forwardLayer : (l as LSTM | GRU);
    const base = cell instanceof LSTM ? ["h", "c"] : ["h"];
    out.push({ layer: prefixes[i]!, states: l instanceof Bidirectional ? [...base, ...base.map((s) => `${s}Backward`)] : base, H: cell.units });
  });
  return out;
}

type Chunk = number[][][] | number[][];
type States = Record<string, Float32Array>; // by state name, "lstm_0/h", …

/** An ORT tensor of x: ids [B, T] (int64) or features [B, T, F] (float32). */
function xTensor(x: Chunk): ort.Tensor {
  const ids = !Array.isArray(x[0]![0]);
  const dims = ids ? [x.length, x[0]!.length] : [x.length, x[0]!.length, (x[0]![0] as number[]).length];
  const flat = (x as number[][]).flat(2) as number[];
  return ids ? new ort.Tensor("int64", BigInt64Array.from(flat, (v) => BigInt(v)), dims) : new ort.Tensor("float32", Float32Array.from(flat), dims);
}

/** ORT's y and final states for x from the given states. */
async function runStates(s: ort.InferenceSession, model: Sequential, x: Chunk, states: States): Promise<{ y: ort.Tensor; states: States }> {
  const B = x.length;
  const feeds: Record<string, ort.Tensor> = { x: xTensor(x) };
  for (const { layer, states: names, H } of stateLayout(model)) {
    for (const n of names) feeds[`${layer}/${n}_in`] = new ort.Tensor("float32", states[`${layer}/${n}`]!, [B, H]);
  }
  const out = await s.run(feeds);
  const next: States = {};
  for (const { layer, states: names, H } of stateLayout(model)) {
    for (const n of names) {
      const t = out[`${layer}/${n}_out`]!;
      expect(t.dims).toEqual([B, H]);
      next[`${layer}/${n}`] = t.data as Float32Array;
    }
  }
  return { y: out.y!, states: next };
}

/** Our states by name, from getStates() (or initial states given as StatesLike). */
function named(model: Sequential, st: RecurrentState[] | StatesLike[]): States {
  const out: States = {};
  stateLayout(model).forEach(({ layer, states }, i) => {
    for (const n of states) {
      const v = (st[i] as unknown as Record<string, { data: ArrayLike<number> } | number[][]>)[n]!;
      out[`${layer}/${n}`] = Float32Array.from(Array.isArray(v) ? v.flat() : v.data);
    }
  });
  return out;
}

function zeroStates(model: Sequential, B: number): States {
  const out: States = {};
  for (const { layer, states, H } of stateLayout(model)) for (const n of states) out[`${layer}/${n}`] = new Float32Array(B * H);
  return out;
}

/** Initial states of normals, as predict's initialStates takes them ([B, H] nested arrays per state). */
function randomStates(model: Sequential, B: number, seed: string): StatesLike[] {
  const r = new Rng(`onnx-state/states/${seed}`);
  return stateLayout(model).map(({ states, H }) => Object.fromEntries(states.map((n) => [n, Array.from({ length: B }, () => Array.from({ length: H }, () => Math.fround(0.8 * r.normal())))])) as unknown as StatesLike);
}

/** Features [B, T, F]: a row's steps t ≥ kept[b] are padding (every feature `maskValue`). */
function features(seed: string, B: number, T: number, kept: number[] = [], maskValue = 0): number[][][] {
  const r = new Rng(`onnx-state/x/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => Array.from({ length: F }, () => (t >= (kept[b] ?? T) ? maskValue : Math.fround(r.normal())))));
}

/** Ids [B, T] in [1, V): a row's steps t ≥ kept[b] are 0 (padding under maskZero). */
function idsOf(seed: string, B: number, T: number, kept: number[] = []): number[][] {
  const r = new Rng(`onnx-state/ids/${seed}`);
  return Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (t >= (kept[b] ?? T) ? 0 : 1 + r.int(V - 1))));
}

/** Chunk lengths of a stream: single steps as a real-time one, and longer chunks between them. */
const CHUNKS = [1, 1, 1, 5, 1, 3, 8, 1, 1, 4];
/** For the masked streams, each row's kept steps per chunk (the rest padding at the chunk's end): row 0 all of them, row 1
 * ends inside chunks and idles through some (0), row 2 starts late, idles and comes back. */
const KEPT = [CHUNKS, [1, 0, 1, 3, 0, 2, 5, 1, 0, 4], [0, 0, 1, 5, 1, 0, 8, 0, 1, 2]];

const B = 3;

/**
 * Streams `model` (stateful, batch size B, fresh) and its states-graph in ORT over CHUNKS, ORT fed its own previous
 * state outputs: each chunk's y is predict's and the states are getStates(). Returns the largest difference between
 * a chunk's y and ORT's from zero states instead (over the chunks after the first): what the carried states change.
 */
async function stream(label: string, model: Sequential, masked: boolean, ids: boolean): Promise<number> {
  expect(model.stateful).toBe(true);
  const s = await ort.InferenceSession.create(toOnnx(model, { states: true }));
  let states = zeroStates(model, B);
  let carried = 0;
  for (const [k, T] of CHUNKS.entries()) {
    const kept = masked ? KEPT.map((row) => row[k]!) : [];
    const x = ids ? idsOf(`${label}/${k}`, B, T, kept) : features(`${label}/${k}`, B, T, kept);
    const want = model.predict(x);
    const got = await runStates(s, model, x, states);
    expect(got.y.dims).toEqual(want.shape);
    expectAgree(`stream: ${label}: y`, got.y.data as Float32Array, want.data);
    const ours = named(model, model.getStates());
    for (const [name, v] of Object.entries(ours)) expectAgree(`stream: ${label}: states`, got.states[name]!, v);
    if (k > 0) carried = Math.max(carried, distance((await runStates(s, model, x, zeroStates(model, B))).y.data as Float32Array, want.data));
    states = got.states;
  }
  return carried;
}

// ---------------------------------------------------------------------------------------------------
// Models

const st = { stateful: true, batchSize: B } as const;

interface Case { name: string; make: (stateful: boolean) => Sequential; ids?: boolean; masked?: boolean }

const CASES: Case[] = [
  {
    name: "stacked LSTM (hardSigmoid on top) + Dense heads",
    make: (s) => new Sequential([
      new LSTM({ units: 5, inputDim: F, returnSequences: true, ...(s ? st : {}) }),
      new LSTM({ units: 4, recurrentActivation: "hardSigmoid", ...(s ? st : {}) }),
      new Dense({ units: 6, activation: "relu" }), new Dense({ units: 2, activation: "sigmoid" }),
    ], { seed: 1, dtype: "float32" }),
  },
  {
    name: "LSTM → GRU (resetAfter false, no bias) per step",
    make: (s) => new Sequential([
      new LSTM({ units: 4, inputDim: F, returnSequences: true, ...(s ? st : {}) }),
      new GRU({ units: 3, returnSequences: true, resetAfter: false, useBias: false, ...(s ? st : {}) }),
      new Dense({ units: 2 }),
    ], { seed: 2, dtype: "float32" }),
  },
  {
    name: "GRU (goBackwards) → GRU + Dense",
    make: (s) => new Sequential([
      new GRU({ units: 5, inputDim: F, returnSequences: true, goBackwards: true, ...(s ? st : {}) }),
      new GRU({ units: 3, ...(s ? st : {}) }),
      new Dense({ units: 1, activation: "tanh" }),
    ], { seed: 3, dtype: "float32" }),
  },
  {
    name: "Bidirectional(LSTM) concat per step → Bidirectional(GRU) ave + Dense",
    make: (s) => new Sequential([
      new Bidirectional(new LSTM({ units: 3, inputDim: F, returnSequences: true, ...(s ? st : {}) })),
      new Bidirectional(new GRU({ units: 4, ...(s ? st : {}) }), { mergeMode: "ave" }),
      new Dense({ units: 2 }),
    ], { seed: 4, dtype: "float32" }),
  },
  {
    name: "Embedding → LSTM → Dense softmax",
    ids: true,
    make: (s) => new Sequential([
      new Embedding({ inputDim: V, outputDim: 3 }),
      new LSTM({ units: 4, ...(s ? st : {}) }),
      new Dense({ units: 3, activation: "softmax" }),
    ], { seed: 5, dtype: "float32" }),
  },
  {
    name: "masked: Masking → LSTM → LSTM per step (repeats its last kept output) + Dense",
    masked: true,
    make: (s) => new Sequential([
      new Masking({ maskValue: 0 }),
      new LSTM({ units: 4, inputDim: F, returnSequences: true, ...(s ? st : {}) }),
      new LSTM({ units: 3, returnSequences: true, ...(s ? st : {}) }),
      new Dense({ units: 2 }),
    ], { seed: 6, dtype: "float32" }),
  },
  {
    name: "masked: Masking → GRU (goBackwards) → LSTM last step + Dense",
    masked: true,
    make: (s) => new Sequential([
      new Masking({ maskValue: 0 }),
      new GRU({ units: 4, inputDim: F, returnSequences: true, goBackwards: true, ...(s ? st : {}) }),
      new LSTM({ units: 3, ...(s ? st : {}) }),
      new Dense({ units: 2 }),
    ], { seed: 7, dtype: "float32" }),
  },
  {
    name: "masked: Masking → LSTM last step, zeroOutputForMask + Dense",
    masked: true,
    make: (s) => new Sequential([
      new Masking({ maskValue: 0 }),
      new LSTM({ units: 4, inputDim: F, zeroOutputForMask: true, ...(s ? st : {}) }),
      new Dense({ units: 2, activation: "sigmoid" }),
    ], { seed: 8, dtype: "float32" }),
  },
  {
    name: "masked: Embedding maskZero → Bidirectional(GRU) sum, last step + Dense",
    masked: true, ids: true,
    make: (s) => new Sequential([
      new Embedding({ inputDim: V, outputDim: 3, maskZero: true }),
      new Bidirectional(new GRU({ units: 3, ...(s ? st : {}) }), { mergeMode: "sum" }),
      new Dense({ units: 2 }),
    ], { seed: 9, dtype: "float32" }),
  },
  {
    name: "masked: Embedding maskZero → Bidirectional(LSTM) mul per step + Dense",
    masked: true, ids: true,
    make: (s) => new Sequential([
      new Embedding({ inputDim: V, outputDim: 3, maskZero: true }),
      new Bidirectional(new LSTM({ units: 3, returnSequences: true, ...(s ? st : {}) }), { mergeMode: "mul" }),
      new Dense({ units: 2 }),
    ], { seed: 10, dtype: "float32" }),
  },
];

const build = (c: Case, stateful: boolean): Sequential => {
  const m = c.make(stateful);
  if (!m.engine.built) m.build(1);
  return perturb(m, 11);
};

// ---------------------------------------------------------------------------------------------------
// Tests

describe("toOnnx states: a stateful model streamed in ONNX Runtime, chunk by chunk", () => {
  it.each(CASES)("$name", async (c) => {
    const model = build(c, true);
    // The states carried matter: from zero states instead, ORT's y would be another one.
    expect(await stream(c.name, model, c.masked === true, c.ids === true)).toBeGreaterThan(1e-2);
  });
});

describe("toOnnx states: predict(x, { initialStates }) is ORT fed the same states", () => {
  it.each(CASES)("$name", async (c) => {
    const model = build(c, false);
    const s = await ort.InferenceSession.create(toOnnx(model, { states: true }));
    for (const [N, T] of [[4, 6], [2, 1]] as const) {
      const kept = c.masked ? [T, Math.max(1, T - 2), 0, 1].slice(0, N) : [];
      const x = c.ids ? idsOf(`given/${c.name}/${T}`, N, T, kept) : features(`given/${c.name}/${T}`, N, T, kept);
      const initialStates = randomStates(model, N, `${c.name}/${T}`);
      const want = model.predict(x, { initialStates });
      const got = await runStates(s, model, x, named(model, initialStates));
      expect(got.y.dims).toEqual(want.shape);
      expectAgree(`initialStates: ${c.name}: y`, got.y.data as Float32Array, want.data);
      const ours = named(model, model.getStates());
      for (const [name, v] of Object.entries(ours)) expectAgree(`initialStates: ${c.name}: states`, got.states[name]!, v);
      // The states given matter: from zero states, ORT's y is another one.
      expect(distance((await runStates(s, model, x, zeroStates(model, N))).y.data as Float32Array, want.data)).toBeGreaterThan(1e-2);
    }
  });

  it("masked: a row padded at the front or inside gets NaN y and NaN states; the post-padded rows beside it agree", async () => {
    const model = build(CASES[6]!, false); // Masking → GRU (goBackwards) → LSTM
    const s = await ort.InferenceSession.create(toOnnx(model, { states: true }));
    const T = 5;
    const x = features("nan-rows", 4, T, [T, 3, T, 0]);
    for (const t of [0, 1]) x[2]![t]!.fill(0); // row 2: padded at the front
    const inside = features("nan-rows/inside", 1, T)[0]!;
    inside[2]!.fill(0);
    x.push(inside); // row 4: padded inside
    const initialStates = randomStates(model, 5, "nan-rows");
    const want = model.predict(x, { initialStates });
    const got = await runStates(s, model, x, named(model, initialStates));
    const y = got.y.data as Float32Array, D = 2;
    const ours = named(model, model.getStates());
    for (const b of [0, 1, 3]) {
      expectAgree("initialStates, masked rows beside NaN rows: y", y.subarray(b * D, (b + 1) * D), want.data.subarray(b * D, (b + 1) * D));
      for (const { layer, states, H } of stateLayout(model)) {
        for (const n of states) expectAgree("initialStates, masked rows beside NaN rows: states", got.states[`${layer}/${n}`]!.subarray(b * H, (b + 1) * H), ours[`${layer}/${n}`]!.subarray(b * H, (b + 1) * H));
      }
    }
    for (const b of [2, 4]) {
      expect([...y.subarray(b * D, (b + 1) * D)].every(Number.isNaN), `row ${b} y`).toBe(true);
      for (const { layer, states, H } of stateLayout(model)) {
        for (const n of states) expect([...got.states[`${layer}/${n}`]!.subarray(b * H, (b + 1) * H)].every(Number.isNaN), `row ${b} ${layer}/${n}`).toBe(true);
      }
    }
  });
});

describe("toOnnx states: the graph's boundary", () => {
  it("inputs x then <layer>/<state>_in, outputs y then <layer>/<state>_out, [batch, H] each, bottom layer first", async () => {
    const model = new Sequential([
      new Embedding({ inputDim: V, outputDim: 3 }),
      new LSTM({ units: 4, returnSequences: true }),
      new Bidirectional(new GRU({ units: 2, returnSequences: true })),
      new Bidirectional(new LSTM({ units: 3, returnSequences: true }), { mergeMode: "sum" }),
      new GRU({ units: 5 }),
      new Dense({ units: 1 }),
    ], { seed: 12, dtype: "float32" });
    model.build(1);
    const s = await ort.InferenceSession.create(toOnnx(model, { states: true }));
    const names = (dir: string) => [
      "lstm_0/h", "lstm_0/c", "bidirectional_0/h", "bidirectional_0/hBackward",
      "bidirectional_1/h", "bidirectional_1/c", "bidirectional_1/hBackward", "bidirectional_1/cBackward", "gru_0/h",
    ].map((n) => `${n}_${dir}`);
    expect(s.inputNames).toEqual(["x", ...names("in")]);
    expect(s.outputNames).toEqual(["y", ...names("out")]);
    const H = [4, 4, 2, 2, 3, 3, 3, 3, 5];
    expect(s.inputMetadata.slice(1).map((m) => m.isTensor && [m.type, m.shape])).toEqual(H.map((h) => ["float32", ["batch", h]]));
    expect(s.outputMetadata.slice(1).map((m) => m.isTensor && [m.type, m.shape])).toEqual(H.map((h) => ["float32", ["batch", h]]));
    // And it runs: the states given are the states used.
    const x = idsOf("boundary", 2, 4);
    const initialStates = randomStates(model, 2, "boundary");
    const got = await runStates(s, model, x, named(model, initialStates));
    expectAgree("boundary model: y", got.y.data as Float32Array, model.predict(x, { initialStates }).data);
  });

  it("without the option (or with states false or undefined) the graph is byte for byte the one before the option", () => {
    // sha256 of toOnnx(model) for these models, computed before `states` existed.
    const pinned: [string, () => Sequential, string][] = [
      ["lstm stack", () => new Sequential([new LSTM({ units: 5, inputDim: 2, returnSequences: true }), new LSTM({ units: 4, recurrentActivation: "hardSigmoid" }), new Dense({ units: 2, activation: "sigmoid" })], { seed: 1 }),
        "86f3024000eb24d62a5fbc4d4156c764523da0365fcf273f7c3c4d9d25bfc74e"],
      ["gru per step, goBackwards, no bias", () => new Sequential([new GRU({ units: 4, inputDim: 3, returnSequences: true, goBackwards: true }), new GRU({ units: 3, returnSequences: true, resetAfter: false, useBias: false }), new Dense({ units: 2, activation: "softmax" })], { seed: 2 }),
        "5e7c48feb35ccc1969aefff07b4a2771f2eb3e64e4ffc3bc0c5b67e7d3d906cb"],
      ["bidi masked", () => new Sequential([new Masking({ maskValue: 0 }), new Bidirectional(new LSTM({ units: 3, inputDim: 2, returnSequences: true }), { mergeMode: "ave" }), new Bidirectional(new GRU({ units: 2 })), new Dense({ units: 1 })], { seed: 3 }),
        "dd3813b81440b84f4c6708b6c25de6f2f264624d3cdee152b46c70dffddf8183"],
      ["embedding maskZero per step", () => new Sequential([new Embedding({ inputDim: 6, outputDim: 3, maskZero: true }), new LSTM({ units: 4, returnSequences: true }), new Dense({ units: 2 })], { seed: 4 }),
        "c45f442350ebfebb5d55feb0d8f4bfe05eadb4a59850d11afa0a77708e779761"],
      ["masking last step zeroOutputForMask stateful", () => new Sequential([new Masking({ maskValue: -1 }), new LSTM({ units: 3, inputDim: 2, zeroOutputForMask: true, stateful: true, batchSize: 2 }), new Dense({ units: 1 })], { seed: 5 }),
        "ab3d7a06a7af4a08de3fbfec49c590ba08736e1a6df7074797ac6bfae34d40ea"],
    ];
    const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
    for (const [name, make, hash] of pinned) {
      const m = make();
      if (!m.engine.built) m.build(name.startsWith("embedding") ? 1 : 2);
      for (const bytes of [toOnnx(m), toOnnx(m, {}), toOnnx(m, { states: false }), toOnnx(m, { states: undefined })]) expect(sha(bytes), name).toBe(hash);
      expect(sha(toOnnx(m, { states: true })), name).not.toBe(hash);
    }
  });

  it("masked, a row with no kept step: its states are the ones given and its output zeros, whatever a backend's Y_h is there", () => {
    // ONNX's spec leaves Y_h and Y_c of a row with sequence_lens 0 open (ONNX Runtime 1.30 gives zeros, which the
    // streams above would catch for the states); the graph selects both itself, so no backend's choice reaches y or the states.
    for (const c of CASES.filter((k) => k.masked)) {
      const nodes = onnxNodes(toOnnx(build(c, false), { states: true }));
      const top = nodes.filter((n) => n.op === "LSTM" || n.op === "GRU").at(-1)!;
      const reads = (suffix: string) => nodes.filter((n) => n.op === "Where" && n.name.endsWith(suffix) && n.inputs.includes(`${top.name}/Y_h`));
      expect(reads("/final_h").map((n) => n.inputs), c.name).toEqual([["mask/some_kept_2d", `${top.name}/Y_h`, `${top.name}/initial_h`]]);
      // y reads the top layer's Y_h for a last step, and where it repeats the last kept output; a Bidirectional per step does not.
      expect(reads("/no_kept_step_zero").length, c.name).toBe(/last step|repeats/.test(c.name) ? 1 : 0);
    }
  });

  it("saveOnnx passes the option on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "longshort-onnx-state-"));
    try {
      const model = build(CASES[0]!, false);
      await saveOnnx(model, join(dir, "s.onnx"), { states: true });
      expect(new Uint8Array(readFileSync(join(dir, "s.onnx")))).toEqual(toOnnx(model, { states: true }));
      await expect(saveOnnx(model, join(dir, "t.onnx"), { state: true } as never)).rejects.toThrow(/toOnnx options: unknown option "state"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("toOnnx options", () => {
  const model = (): Sequential => new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1 });

  it("an unknown key is a ValueError naming it (and the key meant)", () => {
    expect(() => toOnnx(model(), { state: true } as never)).toThrow(ValueError);
    expect(() => toOnnx(model(), { state: true } as never)).toThrow(/^toOnnx options: unknown option "state" \(did you mean "states"\?\); the options are "states"/);
    expect(() => toOnnx(model(), { states: true, opset: 18 } as never)).toThrow(/unknown option "opset"/);
  });

  it("states that is not a boolean is a ValueError naming states", () => {
    for (const [bad, shown] of [["yes", '"yes"'], [1, "1"], [null, "null"], [{}, "an object (Object)"]] as const) {
      expect(() => toOnnx(model(), { states: bad } as never)).toThrow(ValueError);
      expect(() => toOnnx(model(), { states: bad } as never)).toThrow(new RegExp(`^toOnnx states: expected a boolean, got ${shown.replace(/[()]/g, "\\$&")}$`));
    }
  });

  it("options that are not an object are a ValueError naming toOnnx options", () => {
    for (const bad of [null, 5, "states", true, [true]]) {
      expect(() => toOnnx(model(), bad as never)).toThrow(/^toOnnx options: expected an object like \{ states: true \}, got /);
    }
  });
});
