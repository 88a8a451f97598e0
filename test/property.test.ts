/**
 * Property-based tests (fast-check, fixed seeds, modest run counts, each printed):
 * - random small configurations pass gradCheck (float64, fourth-order differences) at 1e-6;
 * - random bad inputs at random entry points always raise the library's errors (never a TypeError or
 *   RangeError) and leave weights, optimizer, states and RNG bit for bit unchanged;
 * - save → load → save is byte-identical for random models in random states;
 * - a checkpoint JSON with a random field replaced by junk is either still valid or refused with
 *   CheckpointError, never anything else.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  Sequential, Adam, SGD, TruncatedBPTT, gradCheck, encodeCheckpoint, decodeCheckpoint, checkpointToJSON, checkpointFromJSON,
  LongshortError, CheckpointError, type DType,
} from "../src/index.js";
import { Rng } from "../src/init.js";
import type { DenseWorkspace } from "../src/layers/dense.js";
import { Dense } from "../src/layers/dense.js";
import { snapshot, expectSame, randomSeq, randomLabels, smallModel, type SmallConfig } from "./helpers/rel-snapshot.js";

const activation = fc.constantFrom("linear", "tanh", "sigmoid", "relu") as fc.Arbitrary<"linear" | "tanh" | "sigmoid" | "relu">;

/** A small random model configuration plus the data to feed it. */
const configArb = fc.record({
  F: fc.integer({ min: 1, max: 3 }),
  B: fc.integer({ min: 1, max: 3 }),
  T: fc.integer({ min: 1, max: 5 }),
  units: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 2 }),
  D: fc.integer({ min: 1, max: 3 }),
  perStep: fc.boolean(),
  stateful: fc.boolean(),
  unitForgetBias: fc.boolean(),
  hidden: fc.array(activation, { maxLength: 1 }),
  bce: fc.boolean(),
  seed: fc.integer({ min: 0, max: 1_000_000 }),
  data: fc.integer({ min: 0, max: 1_000_000 }),
});
type Config = typeof configArb extends fc.Arbitrary<infer C> ? C : never;

function build(c: Config, dtype: DType = "float64", compile = true): { m: Sequential; x: number[][][]; y: number[][] | number[][][] } {
  const sc: SmallConfig = {
    F: c.F, units: c.units, D: c.D, perStep: c.perStep, stateful: c.stateful, dtype, seed: c.seed,
    head: c.bce ? "sigmoid" : "linear", hidden: c.hidden, unitForgetBias: c.unitForgetBias,
  };
  const m = smallModel(sc);
  if (compile) m.compile({ optimizer: "adam", loss: c.bce ? "binaryCrossentropy" : "meanSquaredError" });
  const r = new Rng(`prop/${c.data}`);
  return { m, x: randomSeq(r, c.B, c.T, c.F), y: randomLabels(r, c.B, c.D, c.bce, c.perStep ? c.T : undefined) };
}

describe("property: random small models pass gradCheck at 1e-6", () => {
  it("LSTM stacks, per-step or last-step heads, hidden Dense layers, BCE or MSE, stateful or not", () => {
    const EPS = 1e-3; // gradCheck's default step
    let runs = 0, kinks = 0, worst = 0;
    fc.assert(fc.property(configArb, (c) => {
      const { m, x, y } = build(c);
      // A relu hidden unit whose pre-activation is within a few steps of its kink is not differentiable at
      // the scale of the finite difference: such draws are discarded (and counted), not loosened.
      if (c.hidden[0] === "relu") {
        if (m.stateful) m.resetStates();
        m.testOnBatch(x, y);
        const logits = (m.engine.workspaceOf(m.engine.layers.findIndex((l) => l instanceof Dense)) as DenseWorkspace).logits;
        let near = Infinity;
        for (let k = 0; k < logits.length; k++) near = Math.min(near, Math.abs(logits[k]!));
        if (m.stateful) m.resetStates();
        if (near < 20 * EPS) { kinks++; fc.pre(false); }
      }
      runs++;
      const g = gradCheck(m, x, y);
      worst = Math.max(worst, g.maxRelativeError);
      expect(g.maxRelativeError, JSON.stringify({ c, perWeight: g.perWeight })).toBeLessThanOrEqual(1e-6);
    }), { seed: 20240601, numRuns: 100 });
    console.log(`gradCheck property: ${runs} random models checked (${kinks} draws discarded near a relu kink), worst relative error ${worst.toExponential(2)}`);
    expect(runs).toBe(100);
  });
});

// -----------------------------------------------------------------------------------------------
// Random bad inputs

const JUNK: unknown[] = [NaN, Infinity, -Infinity, "1", null, undefined, {}, [], true, 10n];

/** Applies one random corruption to nested x [B, T, F]; every result is invalid for the model. */
function corruptX(x: number[][][], kind: number, pos: number, junk: unknown): unknown {
  const c: any = x.map((b) => b.map((s) => s.slice()));
  const B = c.length, T = c[0].length, F = c[0][0].length;
  const b = pos % B, t = Math.floor(pos / 7) % T, f = Math.floor(pos / 49) % F;
  switch (kind % 8) {
    case 0: c[b][t][f] = junk; return c;                          // a non-number or non-finite entry
    case 1: c[b][t] = []; return c;                               // ragged, or no features at all
    case 2: c[b][t] = c[b][t].concat([0.5]); return c;           // ragged features
    case 3: return c.map((bb: number[][]) => bb.map((s) => s.concat([0.1]))); // one feature too many
    case 4: return c[0];                                          // rank 2
    case 5: return [c];                                           // rank 4
    case 6: return [];                                            // empty batch
    default: return junk;                                         // not an array at all
  }
}

function corruptY(y: any, kind: number, pos: number, junk: unknown, bce: boolean): unknown {
  const c: any = JSON.parse(JSON.stringify(y));
  const flatRef = (): [any[], number] => {
    let node = c;
    while (Array.isArray(node[0])) node = node[pos % node.length];
    return [node, pos % node.length];
  };
  switch (kind % 6) {
    case 0: { const [arr, i] = flatRef(); arr[i] = junk; return c; }
    case 1: { if (!bce) return c.concat([c[0]]); const [arr, i] = flatRef(); arr[i] = pos % 2 ? 1 + (pos % 5) + 0.5 : -0.25 - (pos % 3); return c; } // labels outside [0, 1], or an extra row
    case 2: return c.slice(0, -1).length ? c.slice(0, -1) : [];   // one row short
    case 3: return c.map((r: any) => (Array.isArray(r[0]) ? r.slice(0, -1).concat([r[0].concat([0])]) : r.concat([0]))); // wrong units / ragged
    case 4: return [c];                                            // rank + 1
    default: return junk;
  }
}

const badArb = fc.record({
  cfg: configArb,
  target: fc.constantFrom("trainOnBatch x", "trainOnBatch y", "testOnBatch x", "testOnBatch y", "computeGradients x", "computeGradients y",
    "predict x", "evaluate y", "fit x", "fit y", "fit options", "setWeights", "resetStates", "trainSequence x", "trainSequence y", "stateful batch"),
  kind: fc.nat({ max: 1000 }),
  pos: fc.nat({ max: 10_000 }),
  junk: fc.constantFrom(...JUNK),
  warm: fc.integer({ min: 0, max: 2 }),
});

describe("property: random bad inputs raise the library's errors and change nothing", () => {
  it("at random entry points of random models", async () => {
    let runs = 0;
    const seenErrors = new Map<string, number>();
    await fc.assert(fc.asyncProperty(badArb, async ({ cfg, target, kind, pos, junk, warm }) => {
      const { m, x, y } = build(cfg);
      for (let s = 0; s < warm; s++) m.trainOnBatch(x, y);
      const before = snapshot(m);
      const call = (): unknown => {
        const bx = () => corruptX(x, kind, pos, junk) as any;
        const by = () => corruptY(y, kind, pos, junk, cfg.bce) as any;
        switch (target) {
          case "trainOnBatch x": return m.trainOnBatch(bx(), y);
          case "trainOnBatch y": return m.trainOnBatch(x, by());
          case "testOnBatch x": return m.testOnBatch(bx(), y);
          case "testOnBatch y": return m.testOnBatch(x, by());
          case "computeGradients x": return m.computeGradients(bx(), y);
          case "computeGradients y": return m.computeGradients(x, by());
          case "predict x": return m.predict(bx());
          case "evaluate y": return m.evaluate(x, by());
          case "fit x": return m.fit(bx(), y, { verbose: 0 });
          case "fit y": return m.fit(x, by(), { verbose: 0 });
          case "fit options": {
            const bad: Record<string, unknown[]> = {
              batchSize: [0, -2, 1.5, NaN], epochs: [-1, 0.5, NaN, "2"], shuffle: ["yes", 1, 0, {}], verbose: [2, -1, "1", true],
              callbacks: ["cb", [null], [{ onEpochEnd: 1 }], 5], validationData: [[x], 7, "v", [[], []]],
            };
            const key = Object.keys(bad)[kind % 6]!;
            return m.fit(x, y, { verbose: 0, [key]: bad[key]![pos % 4] } as any);
          }
          case "setWeights": {
            const ws: any[] = m.getWeights().map((w) => Array.from(w.data));
            const i = pos % ws.length;
            if (kind % 3 === 0) ws[i][pos % ws[i].length] = junk;          // bad value (or the shape flattened)
            else if (kind % 3 === 1) ws.splice(i, 1);                        // one array missing
            else ws[i] = ws[i].concat([0]);                                  // one value too many
            return m.setWeights(ws);
          }
          case "resetStates": {
            const H = m.engine.rnns[0]!.units;
            const states: any[] = m.engine.rnns.map((l) => ({ h: [new Array(l.units).fill(0)], c: [new Array(l.units).fill(0)] }));
            if (kind % 3 === 0) states[0].h[0][pos % H] = junk;
            else if (kind % 3 === 1) states[0].c = [new Array(H + 1).fill(0)];
            else states.push(states[0]);
            return m.resetStates(states);
          }
          case "trainSequence x": return new TruncatedBPTT(m, { windowLength: 1 + (pos % 3) }).trainSequence(bx(), y);
          case "trainSequence y": return new TruncatedBPTT(m, { windowLength: 1 + (pos % 3) }).trainSequence(x, by());
          case "stateful batch": {
            if (!m.stateful) return m.trainOnBatch(x, [y[0], ...y] as any); // labels for one row too many
            if (warm === 0) m.testOnBatch(x, y); // fix the batch size first (and the snapshot with it)
            const x2 = [...x, x[0]!], y2 = [...(y as any[]), (y as any[])[0]];
            Object.assign(before, snapshot(m));
            return m.trainOnBatch(x2, y2);
          }
        }
      };
      let err: unknown;
      try { await call(); } catch (e) { err = e; }
      expect(err, `${target}: no error`).toBeDefined();
      expect(err instanceof TypeError || err instanceof RangeError, `${target}: ${(err as Error).name}: ${(err as Error).message}`).toBe(false);
      expect(err, `${target}: ${(err as Error).message}`).toBeInstanceOf(LongshortError);
      expectSame(target, before, snapshot(m));
      seenErrors.set((err as Error).name, (seenErrors.get((err as Error).name) ?? 0) + 1);
      runs++;
    }), { seed: 424242, numRuns: 300 });
    console.log(`bad-input property: ${runs} random bad inputs, errors raised ${JSON.stringify(Object.fromEntries(seenErrors))}`);
    expect(runs).toBe(300);
  });
});

// -----------------------------------------------------------------------------------------------
// Checkpoints

const ckptArb = fc.record({
  cfg: configArb,
  dtype: fc.constantFrom("float64", "float32") as fc.Arbitrary<DType>,
  optimizer: fc.constantFrom("adam", "sgd", "none"),
  steps: fc.integer({ min: 0, max: 3 }),
  draws: fc.integer({ min: 0, max: 5 }),
});

function ckptModel(a: typeof ckptArb extends fc.Arbitrary<infer C> ? C : never): { m: Sequential; x: number[][][]; y: any } {
  const { m, x, y } = build(a.cfg, a.dtype, false);
  if (a.optimizer !== "none") {
    m.compile({
      optimizer: a.optimizer === "adam" ? new Adam({ learningRate: 0.01, clipValue: 3 }) : new SGD({ learningRate: 0.1, momentum: 0.5 }),
      loss: a.cfg.bce ? "binaryCrossentropy" : "meanSquaredError", metrics: a.cfg.bce ? ["accuracy"] : [],
    });
    for (let s = 0; s < a.steps; s++) m.trainOnBatch(x, y);
  } else {
    for (let s = 0; s < a.steps; s++) m.predict(x);
  }
  for (let s = 0; s < a.draws; s++) m.engine.shuffleRng.uniform();
  return { m, x, y };
}

describe("property: checkpoints", () => {
  it("save → load → save is byte-identical, and the loaded model is the same bit for bit", () => {
    let runs = 0;
    fc.assert(fc.property(ckptArb, (a) => {
      const { m } = ckptModel(a);
      const bytes = encodeCheckpoint(m);
      const back = decodeCheckpoint(bytes);
      expect(Buffer.from(encodeCheckpoint(back)).equals(bytes)).toBe(true);
      expectSame("loaded", snapshot(m), snapshot(back));
      runs++;
    }), { seed: 777, numRuns: 80 });
    console.log(`save→load→save property: ${runs} random models, all byte-identical`);
    expect(runs).toBe(80);
  });

  it("a random field replaced by junk: still a valid checkpoint, or CheckpointError, nothing else", () => {
    let runs = 0, refused = 0;
    // Sizes too (20,000,000 units or inputs, 2^31 rows): a configuration must not make the reader allocate
    // beyond what the file holds, so each call's growth in ArrayBuffer memory is bounded as well.
    const junk = fc.constantFrom<unknown>(null, undefined, -1, 0, 1.5, 1e308, NaN, "x", "AAAA", [], {}, true, [1, 2], { kind: "lstm" }, 20_000_000, 2 ** 31);
    fc.assert(fc.property(ckptArb, fc.nat(), junk, (a, pick, value) => {
      const json: any = checkpointToJSON(ckptModel(a).m);
      const paths: (string | number)[][] = [];
      const walk = (node: any, path: (string | number)[]): void => {
        paths.push(path);
        if (node !== null && typeof node === "object") for (const k of Object.keys(node)) walk(node[k], [...path, Array.isArray(node) ? Number(k) : k]);
      };
      walk(json, []);
      const path = paths[1 + (pick % (paths.length - 1))]!; // any field but the root
      let parent = json;
      for (const k of path.slice(0, -1)) parent = parent[k];
      if (value === undefined) delete parent[path[path.length - 1]!];
      else parent[path[path.length - 1]!] = value;
      const before = process.memoryUsage().arrayBuffers;
      try {
        checkpointFromJSON(json);
      } catch (e) {
        expect(e, `${path.join(".")} = ${String(value)}: ${(e as Error).name}: ${(e as Error).message}`).toBeInstanceOf(CheckpointError);
        refused++;
      }
      expect(process.memoryUsage().arrayBuffers - before, `${path.join(".")} = ${String(value)}: memory`).toBeLessThan(32 * 1024 * 1024);
      runs++;
    }), { seed: 99, numRuns: 300 });
    console.log(`checkpoint junk property: ${runs} random field replacements, ${refused} refused with CheckpointError, ${runs - refused} still valid`);
    expect(runs).toBe(300);
  });
});
