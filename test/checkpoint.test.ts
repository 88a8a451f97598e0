/**
 * Checkpoints (src/io.ts): exact round trips in memory and on disk, a resumed run that matches an
 * uninterrupted one bit for bit, and refusal, by CheckpointError naming the problem, of truncated,
 * corrupted, newer-version and malformed checkpoints.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Sequential, LSTM, Dense, Adam, SGD, CheckpointError, type DType, type CheckpointJSON,
  encodeCheckpoint, decodeCheckpoint, checkpointToJSON, checkpointFromJSON, CHECKPOINT_VERSION,
} from "../src/index.js";
import { saveCheckpoint, loadCheckpoint, saveCheckpointSync, loadCheckpointSync } from "../src/node/index.js";
import { Rng } from "../src/init.js";
import { snapshot, expectSame, randomSeq, randomLabels, smallModel } from "./helpers/rel-snapshot.js";

let dir = "";
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "longshort-ckpt-")); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

/** A trained model of each kind: stacked per-step stateless, and stateful with a fixed batch. */
function trained(kind: "stacked" | "stateful", dtype: DType, optimizer: "adam" | "sgd"): { m: Sequential; x: number[][][]; y: any } {
  const rng = new Rng(`ckpt/${kind}/${dtype}/${optimizer}`);
  const stateful = kind === "stateful";
  const m = smallModel({
    F: 2, units: stateful ? [4] : [3, 4], D: 2, perStep: !stateful, stateful, batchSize: stateful ? 3 : undefined,
    dtype, seed: `${kind}-${dtype}`, head: "sigmoid", hidden: stateful ? [] : ["tanh"],
  });
  m.compile({
    optimizer: optimizer === "adam" ? new Adam({ learningRate: 0.01, clipNorm: 1.5 }) : new SGD({ learningRate: 0.05, momentum: 0.9, clipValue: 2 }),
    loss: "binaryCrossentropy", metrics: ["accuracy"], onNonFinite: "skip",
  });
  const B = 3, T = 4;
  const x = randomSeq(rng, B, T, 2);
  const y = randomLabels(rng, B, 2, true, stateful ? undefined : T);
  for (let s = 0; s < 3; s++) m.trainOnBatch(x, y);
  rng.uniform();
  m.engine.shuffleRng.uniform(); // move the shuffling RNG off its start
  return { m, x, y };
}

describe("checkpointToJSON / checkpointFromJSON (and JSON.stringify(model))", () => {
  for (const kind of ["stacked", "stateful"] as const) {
    for (const dtype of ["float64", "float32"] as DType[]) {
      for (const opt of ["adam", "sgd"] as const) {
        it(`${kind} ${dtype} ${opt}: every piece restored bit for bit, and training continues identically`, () => {
          const { m, x, y } = trained(kind, dtype, opt);
          const copy = checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(m))));
          expectSame("restored", snapshot(m), snapshot(copy));
          expect(copy.dtype).toBe(dtype);
          expect(copy.seed).toBe(m.seed);
          expect(checkpointToJSON(copy).config).toEqual(checkpointToJSON(m).config);
          expect(copy.batchSize).toBe(m.batchSize);
          expect(copy.optimizer!.config()).toEqual(m.optimizer!.config());
          for (let s = 0; s < 3; s++) {
            expect(copy.trainOnBatch(x, y)).toEqual(m.trainOnBatch(x, y));
            expect(copy.engine.shuffleRng.uniform()).toBe(m.engine.shuffleRng.uniform());
          }
          expectSame("after 3 more steps", snapshot(m), snapshot(copy));
        });
      }
    }
  }

  it("JSON.stringify(model) is the checkpoint", () => {
    const { m } = trained("stateful", "float64", "adam");
    expect(JSON.parse(JSON.stringify(m))).toEqual(JSON.parse(JSON.stringify(checkpointToJSON(m))));
  });

  it("stores weights losslessly as bytes: -0, subnormals, 1/3, the largest doubles and float32s", () => {
    for (const dtype of ["float64", "float32"] as DType[]) {
      const m = smallModel({ F: 1, units: [1], D: 1, dtype });
      const tricky = dtype === "float64"
        ? [-0, 5e-324, 1 / 3, Number.MAX_VALUE, -Number.MIN_VALUE, 0.1 + 0.2, 1e-300, -2.5e-308]
        : [-0, 1e-45, Math.fround(1 / 3), 3.4028234663852886e38, -1.401298464324817e-45, Math.fround(0.1), 1.1754942106924411e-38, -7];
      m.engine.params.set(tricky.map((v) => (dtype === "float32" ? Math.fround(v) : v)));
      const text = JSON.stringify(m);
      expect(text).not.toContain("0.333333"); // not decimal text
      const back = checkpointFromJSON(JSON.parse(text));
      for (let k = 0; k < m.engine.params.length; k++) expect(Object.is(back.engine.params[k], m.engine.params[k]), `${dtype} params[${k}]`).toBe(true);
      expect(Object.is(back.engine.params[0], -0)).toBe(true);
    }
  });

  it("round-trips models that are not built or not compiled", () => {
    const make = () => new Sequential([new LSTM({ units: 2 }), new Dense({ units: 1 })], { seed: "u" });
    const orig = make();
    const a = checkpointFromJSON(JSON.parse(JSON.stringify(orig))); // neither built nor compiled
    expect(a.engine.params.length).toBe(0);
    expect(a.optimizer).toBeNull();
    orig.compile({ optimizer: "sgd", loss: "meanSquaredError" });
    const b = checkpointFromJSON(JSON.parse(JSON.stringify(orig))); // compiled, not built
    expect(b.engine.params.length).toBe(0);
    expect(b.optimizer!.name).toBe("sgd");
    a.compile({ optimizer: "sgd", loss: "meanSquaredError" });
    const x = [[[0.5], [-0.25]]], y = [[0.3]];
    const r = orig.trainOnBatch(x, y); // builds from the data, from the seed
    expect(a.trainOnBatch(x, y)).toEqual(r);
    expect(b.trainOnBatch(x, y)).toEqual(r);
    expectSame("a", snapshot(orig), snapshot(a));
    expectSame("b", snapshot(orig), snapshot(b));
    const c = checkpointFromJSON(JSON.parse(JSON.stringify(orig))); // built from data: inputDim recorded
    expect(c.inputDim).toBe(1);
    expectSame("built from data", snapshot(orig), snapshot(c));
  });
});

describe("the losses' options", () => {
  it("Huber's delta travels (and only Huber writes one); a Huber checkpoint without it is refused", () => {
    const make = (loss: any) => {
      const m = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 4 });
      m.compile({ optimizer: "adam", loss });
      return m;
    };
    const h = make({ name: "huber", delta: 0.25 });
    expect([h.loss, h.huberDelta]).toEqual(["huber", 0.25]);
    const json = checkpointToJSON(h);
    expect(json.config.compile!.huberDelta).toBe(0.25);
    const back = checkpointFromJSON(JSON.parse(JSON.stringify(json)));
    expect([back.loss, back.huberDelta]).toEqual(["huber", 0.25]);
    expect(decodeCheckpoint(encodeCheckpoint(h)).huberDelta).toBe(0.25);
    expect(make("huber").huberDelta).toBe(1);
    expect(make("mae").loss).toBe("meanAbsoluteError");
    expect(checkpointToJSON(make("mae")).config.compile).not.toHaveProperty("huberDelta");
    const broken = JSON.parse(JSON.stringify(json));
    delete broken.config.compile.huberDelta;
    expect(() => checkpointFromJSON(broken)).toThrow(/config\.compile\.huberDelta: .*huberDelta: expected a positive finite number, got undefined/);
    expect(() => make({ name: "huber", delta: 0 })).toThrow(/compile loss\.delta: expected a positive finite number, got 0/);
    expect(() => make({ name: "mse", delta: 1 })).toThrow(/compile loss: only "huber" takes options/);
    expect(() => make({ name: "huber", d: 1 })).toThrow(/compile loss options: unknown option "d"/);
  });
});

describe("files", () => {
  it("save (async) and load (async), save/load sync: same state, byte-identical re-save", async () => {
    const { m } = trained("stacked", "float64", "adam");
    const p = join(dir, "a.ckpt");
    await saveCheckpoint(m, p);
    const back = await loadCheckpoint(p);
    expectSame("async", snapshot(m), snapshot(back));
    const p2 = join(dir, "b.ckpt");
    saveCheckpointSync(back, p2);
    expect(readFileSync(p2).equals(readFileSync(p))).toBe(true);
    expectSame("sync", snapshot(m), snapshot(loadCheckpointSync(p2)));
    const text = readFileSync(p, "utf8");
    const header = JSON.parse(text.slice(0, text.indexOf("\n")));
    expect(header).toMatchObject({ format: "longshort-checkpoint", version: CHECKPOINT_VERSION });
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]); // no temporary left behind
  });

  it("missing parent folders are created (the README's runs/epoch-5.ckpt in a fresh folder), sync and async", async () => {
    const { m } = trained("stateful", "float64", "sgd");
    const a = join(dir, "fresh", "runs", "epoch-5.ckpt"), b = join(dir, "fresh2", "deeper", "epoch-5.ckpt");
    await saveCheckpoint(m, a);
    saveCheckpointSync(m, b);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expectSame("in a created folder", snapshot(m), snapshot(loadCheckpointSync(a)));
    expect(readdirSync(join(dir, "fresh", "runs"))).toEqual(["epoch-5.ckpt"]);
  });

  it("a failed write throws CheckpointError, leaves no temporary file and no target", async () => {
    const { m } = trained("stateful", "float64", "sgd");
    writeFileSync(join(dir, "a-file"), "not a folder");
    await expect(saveCheckpoint(m, join(dir, "a-file", "x.ckpt"))).rejects.toThrow(CheckpointError);
    await expect(saveCheckpoint(m, join(dir, "a-file", "x.ckpt"))).rejects.toThrow(/a-file\/x\.ckpt: cannot create the folder .*a-file for the checkpoint/);
    expect(() => saveCheckpointSync(m, join(dir, "a-file", "sub", "x.ckpt"))).toThrow(/cannot create the folder .*a-file\/sub for the checkpoint/);
    const target = join(dir, "is-a-dir");
    mkdirSync(target);
    await expect(saveCheckpoint(m, target)).rejects.toThrow(/is-a-dir: cannot write the checkpoint/);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(() => saveCheckpointSync(m, "")).toThrow(/save path: expected a non-empty file path/);
    await expect(loadCheckpoint(join(dir, "missing.ckpt"))).rejects.toThrow(/missing\.ckpt: cannot read the checkpoint/);
  });
});

describe("resume: train k epochs, save, load, train N - k equals N epochs, bit for bit", () => {
  const cases: { name: string; dtype: DType; stateful: boolean }[] = [
    { name: "stateless, shuffled, float64", dtype: "float64", stateful: false },
    { name: "stateless, shuffled, float32", dtype: "float32", stateful: false },
    { name: "stateful, state carried across epochs, float64", dtype: "float64", stateful: true },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const rng = new Rng(`resume/${c.name}`);
      const Nsamples = c.stateful ? 12 : 13, T = 5, F = 2, bs = c.stateful ? 4 : 5, N = 4, k = 2;
      const x = randomSeq(rng, Nsamples, T, F);
      const y = randomLabels(rng, Nsamples, 1, true) as number[][];
      const make = (): Sequential => {
        const m = smallModel({ F, units: [5], D: 1, head: "sigmoid", dtype: c.dtype, seed: 77, stateful: c.stateful, batchSize: c.stateful ? bs : undefined });
        m.compile({ optimizer: new Adam({ learningRate: 0.02 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
        return m;
      };
      const opts = { batchSize: bs, shuffle: !c.stateful, verbose: 0 as const };
      const full = make();
      const hFull = await full.fit(x, y, { ...opts, epochs: N });

      const first = make();
      const h1 = await first.fit(x, y, { ...opts, epochs: k });
      const p = join(dir, `resume-${c.dtype}-${c.stateful}.ckpt`);
      await saveCheckpoint(first, p);
      const resumed = await loadCheckpoint(p);
      const h2 = await resumed.fit(x, y, { ...opts, epochs: N - k });

      expectSame(c.name, snapshot(full), snapshot(resumed));
      expect([...h1.history.loss, ...h2.history.loss]).toEqual(hFull.history.loss);
      expect([...h1.history.accuracy!, ...h2.history.accuracy!]).toEqual(hFull.history.accuracy);
      // and the shuffle really did something: a run with another shuffling stream differs
      if (!c.stateful) {
        const other = make();
        other.engine.shuffleRng = new Rng("another stream");
        await other.fit(x, y, { ...opts, epochs: N });
        expect(snapshot(other).params).not.toBe(snapshot(full).params);
      }
    });
  }
});

/** Builds a file with a valid header for any payload text (to test payload validation behind a good checksum). */
function fileFor(payload: string, version = CHECKPOINT_VERSION): Buffer {
  const body = Buffer.from(payload, "utf8");
  const sum = createHash("sha256").update(body).digest("hex");
  return Buffer.concat([Buffer.from(`${JSON.stringify({ format: "longshort-checkpoint", version, bytes: body.length, sha256: sum })}\n`), body]);
}

describe("refusing bad checkpoints", () => {
  const { m } = trained("stacked", "float64", "adam");
  const good = Buffer.from(encodeCheckpoint(m)); // a Buffer view, for its text and concat helpers
  const nl = good.indexOf(10);

  it("truncated anywhere: CheckpointError saying truncated (or empty)", () => {
    const cuts = [0, 1, 20, nl, nl + 1, nl + 100, Math.floor((nl + good.length) / 2), good.length - 1];
    for (const n of cuts) {
      expect(() => decodeCheckpoint(good.subarray(0, n)), `cut at ${n}`).toThrow(CheckpointError);
      expect(() => decodeCheckpoint(good.subarray(0, n)), `cut at ${n}`).toThrow(/truncated|empty file/);
    }
  });

  it("a changed byte anywhere in the payload: checksum mismatch", () => {
    const rng = new Rng("flip");
    for (let t = 0; t < 20; t++) {
      const bad = Buffer.from(good);
      const at = nl + 1 + rng.int(good.length - nl - 1);
      bad[at] = bad[at]! ^ (1 << rng.int(7));
      expect(() => decodeCheckpoint(bad), `flip at ${at}`).toThrow(/corrupted: checksum mismatch/);
    }
  });

  it("trailing bytes, a broken header, a file that is not a checkpoint", () => {
    expect(() => decodeCheckpoint(Buffer.concat([good, Buffer.from("x")]))).toThrow(/corrupted: 1 unexpected bytes/);
    const header = good.subarray(0, nl).toString();
    const withHeader = (h: string) => Buffer.concat([Buffer.from(h), good.subarray(nl)]);
    expect(() => decodeCheckpoint(withHeader(header.replace(/"sha256":"[0-9a-f]{4}/, '"sha256":"zzzz')))).toThrow(/corrupted header: sha256/);
    expect(() => decodeCheckpoint(withHeader(header.replace(/"bytes":\d+/, '"bytes":-1')))).toThrow(/corrupted header: payload size/);
    expect(() => decodeCheckpoint(withHeader(header.replace("}", "")))).toThrow(/corrupted: the header line is not JSON/);
    expect(() => decodeCheckpoint(Buffer.from('{"hello": 1}\n{}'))).toThrow(/not a longshort checkpoint/);
    expect(() => decodeCheckpoint(Buffer.from("PK\u0003\u0004 some zip"))).toThrow(/not a longshort checkpoint/);
    expect(() => decodeCheckpoint(randomBytesLike(5000))).toThrow(CheckpointError);
  });

  it("a newer format version is refused by name", () => {
    const json = checkpointToJSON(m);
    expect(() => decodeCheckpoint(fileFor(JSON.stringify(json), CHECKPOINT_VERSION + 1))).toThrow(/format version 4, newer than this longshort reads \(up to 3\)/);
    expect(() => checkpointFromJSON({ ...json, version: 7 })).toThrow(/version: written by checkpoint format version 7/);
  });

  it("a valid checksum over a malformed payload: CheckpointError naming the field", () => {
    const base = (): CheckpointJSON => JSON.parse(JSON.stringify(checkpointToJSON(m)));
    const nanBytes = Buffer.alloc(8 * 12); nanBytes.writeDoubleLE(NaN, 8 * 5);
    const mutations: [string, (j: any) => void, RegExp][] = [
      ["payload not an object", (j) => { j.__replace = 5; }, /checkpoint: expected an object/],
      ["wrong format", (j) => { j.format = "keras"; }, /format: not a longshort checkpoint/],
      ["missing config", (j) => { delete j.config; }, /config: expected an object/],
      ["unknown dtype", (j) => { j.config.dtype = "float16"; }, /config\.dtype: expected one of/],
      ["seed not a string", (j) => { j.config.seed = 5; }, /config\.seed: expected a string/],
      ["unknown layer kind", (j) => { j.config.layers[0].kind = "gru"; }, /config\.layers\[0\]\.kind/],
      ["units 0", (j) => { j.config.layers[1].units = 0; }, /config\.layers\[1\]\.units/],
      ["bad initializer", (j) => { j.config.layers[0].kernelInitializer = "he"; }, /config\.layers\[0\]\.kernelInitializer: expected one of "glorotUniform", "orthogonal", "zeros", got "he"/],
      ["initializer missing (no silent default)", (j) => { delete j.config.layers[0].recurrentInitializer; }, /config\.layers\[0\]\.recurrentInitializer: expected one of .* got undefined/],
      ["bad activation", (j) => { j.config.layers[2].activation = "softplus"; }, /config\.layers\[2\]\.activation: expected one of "linear", "sigmoid", "tanh", "relu", "softmax", got "softplus"/],
      ["activation missing (no silent linear)", (j) => { delete j.config.layers[3].activation; }, /config\.layers\[3\]\.activation: expected one of .* got undefined/],
      ["returnSequences not boolean", (j) => { j.config.layers[0].returnSequences = "yes"; }, /config\.layers\[0\]\.returnSequences/],
      ["unknown loss", (j) => { j.config.compile.loss = "hinge"; }, /config\.compile\.loss: expected one of "binaryCrossentropy", "meanSquaredError", "meanAbsoluteError", "huber", "categoricalCrossentropy", "sparseCategoricalCrossentropy", got "hinge"/],
      ["huberDelta with another loss", (j) => { j.config.compile.huberDelta = 0.5; }, /config\.compile\.huberDelta: only with loss "huber", got loss "binaryCrossentropy"/],
      ["unknown metric", (j) => { j.config.compile.metrics = ["rmse"]; }, /config\.compile\.metrics\[0\]: expected one of "accuracy", "mae", "mse", got "rmse"/],
      ["unknown optimizer", (j) => { j.config.compile.optimizer.name = "adagrad"; }, /config\.compile\.optimizer\.name/],
      ["bad optimizer config", (j) => { j.config.compile.optimizer.config.learningRate = -1; }, /config\.compile\.optimizer\.config: Adam learningRate/],
      ["bad onNonFinite", (j) => { j.config.compile.onNonFinite = "ignore"; }, /config\.compile\.onNonFinite: expected one of "throw", "skip", got "ignore"/],
      ["onNonFinite missing", (j) => { delete j.config.compile.onNonFinite; }, /config\.compile\.onNonFinite: expected one of .* got undefined/],
      ["too few weights", (j) => { j.weights.pop(); }, /weights: expected 10 arrays/],
      ["weights renamed", (j) => { j.weights[0].name = "w"; }, /weights\[0\]\.name/],
      ["weight shape", (j) => { j.weights[1].shape = [1, 2]; }, /weights\[1\] \(lstm_0\/recurrentKernel\)\.shape/],
      ["weight dtype", (j) => { j.weights[2].dtype = "float32"; }, /weights\[2\] \(lstm_0\/bias\)\.dtype/],
      ["weight bytes short", (j) => { j.weights[2].data = j.weights[2].data.slice(0, 8); }, /weights\[2\] \(lstm_0\/bias\)\.data: expected 12 float64 values/],
      ["weight not base64", (j) => { j.weights[2].data = "!!!!" + j.weights[2].data.slice(4); }, /not valid base64/],
      ["weight NaN", (j) => { j.weights[2].data = nanBytes.toString("base64"); }, /weights\[2\] \(lstm_0\/bias\)\.data: non-finite value NaN at flat index 5/],
      ["weights null on a built model", (j) => { j.weights = null; }, /weights: the configuration builds the model/],
      ["optimizer missing", (j) => { delete j.optimizer; }, /optimizer: expected an object/],
      ["iterations negative", (j) => { j.optimizer.iterations = -1; }, /optimizer\.iterations/],
      ["slots missing one", (j) => { j.optimizer.slots.pop(); }, /optimizer\.slots: expected 2 arrays for adam/],
      ["slot wrong size", (j) => { j.optimizer.slots[0].shape = [3]; }, /optimizer\.slots\[0\]\.shape/],
      ["states wrong count", (j) => { j.states.layers.pop(); }, /states\.layers: expected 2 entries/],
      ["state shape", (j) => { j.states.layers[0].c.shape = [3, 9]; }, /states\.layers\[0\]\.c\.shape/],
      ["batchSize on a stateless model", (j) => { j.states.batchSize = 4; }, /states\.batchSize: expected null/],
      ["rng S short", (j) => { j.shuffleRng.S.pop(); }, /shuffleRng\.S: expected 256 entries/],
      ["rng S entry", (j) => { j.shuffleRng.S[3] = 300; }, /shuffleRng\.S\[3\]: expected an integer in \[0, 255\], got 300/],
      ["rng S not a permutation", (j) => { j.shuffleRng.S[7] = j.shuffleRng.S[8]; }, /shuffleRng\.S\[(7|8)\]: \d+ appears twice; the ARC4 state is a permutation/],
      ["state renamed", (j) => { j.states.layers[1].h.name = "lstm_0/h"; }, /states\.layers\[1\]\.h\.name: expected "lstm_1\/h", got "lstm_0\/h"/],
      ["slot renamed", (j) => { j.optimizer.slots[1].name = "m"; }, /optimizer\.slots\[1\]\.name: expected "v", got "m"/],
      ["rng i", (j) => { j.shuffleRng.i = 1.5; }, /shuffleRng\.i/],
      ["a version-2 field in a version-1 file", (j) => { j.config.layers[1].recurrentActivation = "hardSigmoid"; }, /config\.layers\[1\]\.recurrentActivation: a version-1 checkpoint has no recurrentActivation/],
      ["inputDims that do not chain", (j) => { j.config.layers[2].inputDim = 5; }, /config\.layers\[2\]\.inputDim: expected 4 \(the output of the layer below\), got 5/],
      ["the first inputDim not what the weights hold", (j) => { j.config.layers[0].inputDim = 3; }, /weights\[0\] \(lstm_0\/kernel\)\.shape: expected \[3, 12\], got \[2,12\]/],
    ];
    for (const [name, mutate, pattern] of mutations) {
      const j = base();
      mutate(j);
      const payload = (j as any).__replace !== undefined ? JSON.stringify((j as any).__replace) : JSON.stringify(j);
      let err: unknown;
      try { decodeCheckpoint(fileFor(payload), "ckpt"); } catch (e) { err = e; }
      expect(err, name).toBeInstanceOf(CheckpointError);
      expect((err as Error).message, name).toMatch(pattern);
      expect((err as Error).message.startsWith("ckpt: "), name).toBe(true);
    }
    console.log(`checkpoint payload mutations refused: ${mutations.length}`);
  });
});

describe("format version 2: the layer options of imported models", () => {
  const layers = () => [
    new LSTM({ units: 4, inputDim: 2, returnSequences: true, recurrentActivation: "hardSigmoid", useBias: false }),
    new LSTM({ units: 3 }),
    new Dense({ units: 2, activation: "tanh", useBias: false }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ];

  it("round-trips recurrentActivation and useBias, written as version 2; a model without them stays version 1", () => {
    const m = new Sequential(layers(), { seed: 4 });
    m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
    const x = [[[0.5, -1], [2, 0.3], [-1, 1]], [[1, 1], [0, -2], [0.4, 0.1]]], y = [[1], [0]];
    m.trainOnBatch(x, y);
    const json = checkpointToJSON(m);
    expect(json.version).toBe(2);
    expect(json.config.layers.map((l: any) => [l.recurrentActivation, l.useBias])).toEqual([["hardSigmoid", false], ["sigmoid", true], [undefined, false], [undefined, true]]);
    const copy = decodeCheckpoint(encodeCheckpoint(m));
    expect(copy.layers.map((l) => [(l as LSTM).recurrentActivation, (l as LSTM).useBias])).toEqual([["hardSigmoid", false], ["sigmoid", true], [undefined, false], [undefined, true]]);
    expect(copy.weightNames()).toEqual(m.weightNames());
    expect(copy.trainOnBatch(x, y)).toEqual(m.trainOnBatch(x, y));
    expect(checkpointToJSON(trained("stacked", "float64", "adam").m).version).toBe(1);
  });

  it("a version-2 file must say both options; an unknown value is refused by name", () => {
    const base = (): any => JSON.parse(JSON.stringify(checkpointToJSON(new Sequential(layers(), { seed: 4 }))));
    const cases: [(j: any) => void, RegExp][] = [
      [(j) => { delete j.config.layers[0].recurrentActivation; }, /config\.layers\[0\]\.recurrentActivation: expected one of "sigmoid", "hardSigmoid", got undefined/],
      [(j) => { j.config.layers[1].recurrentActivation = "hard_sigmoid"; }, /config\.layers\[1\]\.recurrentActivation: expected one of "sigmoid", "hardSigmoid", got "hard_sigmoid"/],
      [(j) => { delete j.config.layers[2].useBias; }, /config\.layers\[2\]\.useBias: expected one of true, false, got undefined/],
      // Saying there is a bias when the file holds none: the weights no longer match the configuration.
      [(j) => { j.config.layers[0].useBias = true; }, /weights: expected 9 arrays \(lstm_0\/kernel, lstm_0\/recurrentKernel, lstm_0\/bias, /],
    ];
    for (const [mutate, pattern] of cases) {
      const j = base();
      mutate(j);
      expect(() => decodeCheckpoint(fileFor(JSON.stringify(j)))).toThrow(pattern);
    }
  });
});

describe("a checkpoint is untrusted input", () => {
  it("a valid checksum over a configuration that asks for 20,000,000 inputs is refused before anything is allocated or initialised", () => {
    const m = new Sequential([new LSTM({ units: 10, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
    const j: any = JSON.parse(JSON.stringify(checkpointToJSON(m)));
    j.config.layers[0].inputDim = 20_000_000;
    const file = fileFor(JSON.stringify(j));
    expect(file.length).toBeLessThan(8000);
    const before = process.memoryUsage().arrayBuffers;
    let err: unknown;
    try { decodeCheckpoint(file, "hostile"); } catch (e) { err = e; }
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toBe("hostile: weights[0] (lstm_0/kernel).shape: expected [20000000, 40], got [1,40]");
    // Building first would have allocated 2 × 6.4 GB of float64 weights and gradients (and failed in most
    // processes); refusing first allocates nothing sized by the configuration.
    expect(grown).toBeLessThan(64 * 1024 * 1024);
  });

  it("fuzz: random bytes, truncations and byte flips only ever throw CheckpointError, allocating nothing large", () => {
    const good = encodeCheckpoint(trained("stacked", "float32", "adam").m);
    const onlyOurs = (b: Uint8Array): void => {
      const before = process.memoryUsage().arrayBuffers;
      try { decodeCheckpoint(b); } catch (e) { if (!(e instanceof CheckpointError)) throw e; }
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), onlyOurs), { seed: 7, numRuns: 300 });
    fc.assert(fc.property(fc.nat(good.length), (n) => onlyOurs(good.subarray(0, n))), { seed: 8, numRuns: 200 });
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (flips) => {
      const b = good.slice();
      for (const [i, v] of flips) b[i] = v;
      onlyOurs(b);
    }), { seed: 9, numRuns: 300 });
  });

  it("a stateful batch size from the file allocates no state slots until a pass needs them", () => {
    const m = new Sequential([new LSTM({ units: 3, inputDim: 1, stateful: true, batchSize: 2 }), new Dense({ units: 1 })], { seed: 1 });
    const j: any = JSON.parse(JSON.stringify(checkpointToJSON(m)));
    j.config.layers[0].batchSize = 50_000_000;
    j.states.batchSize = 50_000_000;
    const before = process.memoryUsage().arrayBuffers;
    const copy = decodeCheckpoint(fileFor(JSON.stringify(j)));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
    expect(copy.batchSize).toBe(50_000_000);
    expect(copy.engine.state).toEqual([null]);
  });
});

function randomBytesLike(n: number): Buffer {
  const rng = new Rng("junk");
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

describe("save → load → save is byte-identical", () => {
  it("for every kind of model in this file", () => {
    for (const kind of ["stacked", "stateful"] as const) for (const dtype of ["float64", "float32"] as DType[]) for (const o of ["adam", "sgd"] as const) {
      const bytes = encodeCheckpoint(trained(kind, dtype, o).m);
      expect(Buffer.from(encodeCheckpoint(decodeCheckpoint(bytes))).equals(bytes), `${kind} ${dtype} ${o}`).toBe(true);
    }
  });

  it("writing over an existing checkpoint replaces it whole", () => {
    const p = join(dir, "over.ckpt");
    const a = trained("stateful", "float64", "adam").m;
    const b = trained("stacked", "float32", "sgd").m;
    saveCheckpointSync(a, p);
    saveCheckpointSync(b, p);
    expect(readFileSync(p).equals(encodeCheckpoint(b))).toBe(true);
    writeFileSync(join(dir, "note.txt"), "unrelated");
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
