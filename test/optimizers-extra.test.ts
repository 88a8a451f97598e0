/**
 * RMSprop and AdamW (src/optimizers-extra.ts), Keras 3's forms: golden steps from PyTorch in float64
 * (test/fixtures/optimizers_torch.py: the Keras form written out, checked there against torch.optim) on both backends
 * at 1e-12; each option against a hand-written reference on a few numbers; validation; names, slots, config and
 * checkpoints; the bound `maxStep` gives atomic-update.ts, and a rollback when a step overflows; two threads.
 */
import { afterAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  Sequential, LSTM, Dense, RMSprop, AdamW, Adam, SGD, ExponentialDecay, CosineDecay, ValueError, NonFiniteError,
  encodeCheckpoint, decodeCheckpoint, checkpointToJSON, checkpointFromJSON, setThreads, type DType, type Optimizer,
} from "../src/node/index.js";
import { resolveOptimizer } from "../src/optimizers-extra.js";
import { FIXTURE_DIR, expectClose } from "./helpers/fixtures.js";
import { Rng } from "../src/init.js";
import { snapshot, expectSame, randomSeq } from "./helpers/rel-snapshot.js";
import { expectRel, expectTensors, randomTensor, stream } from "./helpers/threads.js";

const FX = JSON.parse(readFileSync(join(FIXTURE_DIR, "optimizer_steps_B4_T5_I3_H4_D2.json"), "utf8"));

/** The fixture's options as longshort's optimizer (a learningRate `{ exponentialDecay }` as the schedule). */
function fromFixture(name: string, options: any): Optimizer {
  const o = { ...options };
  if (typeof o.learningRate === "object") o.learningRate = new ExponentialDecay(o.learningRate.exponentialDecay);
  return name === "rmsprop" ? new RMSprop(o) : new AdamW(o);
}

function headModel(dtype: DType, backend: "js" | "wasm"): Sequential {
  const c = FX.config;
  return new Sequential([new LSTM({ units: c.units, inputDim: c.inputDim }), new Dense({ units: c.denseUnits, activation: c.activation })], { dtype, seed: 1, backend });
}

describe("golden steps from PyTorch (float64, Keras 3's RMSprop and AdamW)", () => {
  for (const backend of ["js", "wasm"] as const) {
    for (const c of FX.cases) {
      it(`${backend}: ${c.name}: the loss before and every weight after each of ${FX.config.steps} steps, to 1e-12`, () => {
        const m = headModel("float64", backend);
        expect(m.backend).toBe(backend);
        m.compile({ optimizer: fromFixture(c.optimizer, c.options), loss: FX.config.loss });
        m.setWeights(FX.weights);
        for (let s = 0; s < FX.config.steps; s++) {
          const { loss } = m.trainOnBatch(FX.x, FX.y);
          expectClose(`${c.name} step ${s} loss`, loss, c.losses[s], 1e-12, 0);
          const ws = m.getWeights();
          // relative 1e-12 (absolute 1e-14 for a weight within 1e-2 of zero)
          c.weights[s].forEach((w: unknown, i: number) => expectClose(`${c.name} step ${s} weights[${i}]`, ws[i], w, 1e-12, 1e-14));
        }
      });
    }
    it(`${backend}: float32 follows the same steps to 1e-4`, () => {
      for (const c of FX.cases) {
        const m = headModel("float32", backend);
        m.compile({ optimizer: fromFixture(c.optimizer, c.options), loss: FX.config.loss });
        m.setWeights(FX.weights);
        for (let s = 0; s < FX.config.steps; s++) m.trainOnBatch(FX.x, FX.y);
        const last = c.weights[FX.config.steps - 1];
        m.getWeights().forEach((w, i) => expectClose(`${c.name} float32 weights[${i}]`, w, last[i], 1e-4, 1e-5));
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Each option against a reference written here from Keras's formulas, on a few numbers.

const W0 = [0.5, -1.25, 2, 0.03, -0.7];
const G1 = [0.2, -3, 1e-4, 0.5, -0.05];
const G2 = [-0.4, 2.5, 3e-4, 0.5, 0.01];
const G3 = [0.1, -0.2, -2e-4, -1.5, 0.3];

/** Three updates of `opt` on W0 with G1, G2, G3; the weights after each. */
function run(opt: Optimizer, grads = [G1, G2, G3]): number[][] {
  const w = new Float64Array(W0);
  opt.init(w.length);
  return grads.map((g) => { opt.apply(w, new Float64Array(g)); return Array.from(w); });
}

interface RmsRef { lr: (t: number) => number; rho: number; mu: number; eps: number; centered: boolean }

/** RMSprop, Keras 3's update_step, weight by weight. */
function rmspropRef(o: RmsRef, grads = [G1, G2, G3]): number[][] {
  const w = W0.slice(), v = W0.map(() => 0), a = W0.map(() => 0), b = W0.map(() => 0);
  return grads.map((g, t) => {
    for (let k = 0; k < w.length; k++) {
      v[k] = o.rho * v[k]! + (1 - o.rho) * g[k]! ** 2;
      let d = v[k]! + o.eps;
      if (o.centered) {
        a[k] = o.rho * a[k]! + (1 - o.rho) * g[k]!;
        d = v[k]! - a[k]! ** 2 + o.eps;
      }
      const inc = (o.lr(t) * g[k]!) / Math.sqrt(d);
      b[k] = o.mu * b[k]! + inc;
      w[k] = w[k]! - (o.mu > 0 ? b[k]! : inc);
    }
    return w.slice();
  });
}

interface AdamWRef { lr: (t: number) => number; b1: number; b2: number; eps: number; wd: number }

/** AdamW, Keras 3: decay w − w·wd·lr first, then Adam's step (epsilon hat). */
function adamwRef(o: AdamWRef, grads = [G1, G2, G3]): number[][] {
  const w = W0.slice(), m = W0.map(() => 0), v = W0.map(() => 0);
  return grads.map((g, i) => {
    const t = i + 1, lr = o.lr(i);
    const alpha = (lr * Math.sqrt(1 - o.b2 ** t)) / (1 - o.b1 ** t);
    for (let k = 0; k < w.length; k++) {
      w[k] = w[k]! - w[k]! * o.wd * lr;
      m[k] = m[k]! + (g[k]! - m[k]!) * (1 - o.b1);
      v[k] = v[k]! + (g[k]! ** 2 - v[k]!) * (1 - o.b2);
      w[k] = w[k]! - (alpha * m[k]!) / (Math.sqrt(v[k]!) + o.eps);
    }
    return w.slice();
  });
}

function expectSteps(name: string, got: number[][], want: number[][]): void {
  got.forEach((w, t) => expectClose(`${name} step ${t + 1}`, w, want[t], 1e-14, 0));
}

const lr = (x: number) => () => x;

describe("RMSprop's formula, option by option", () => {
  it("defaults (lr 0.001, rho 0.9, eps 1e-7 inside the root): a gradient of 1e-4 moves lr·g/√(0.1·g² + ε), not PyTorch's lr·g/(√(0.1·g²) + ε)", () => {
    const got = run(new RMSprop());
    expectSteps("defaults", got, rmspropRef({ lr: lr(0.001), rho: 0.9, mu: 0, eps: 1e-7, centered: false }));
    const keras = 0.001 * 1e-4 / Math.sqrt(0.1 * 1e-8 + 1e-7), torch = 0.001 * 1e-4 / (Math.sqrt(0.1 * 1e-8) + 1e-7);
    expect(W0[2]! - got[0]![2]!).toBeCloseTo(keras, 15);
    expect(Math.abs(keras - torch) / keras).toBeGreaterThan(0.5); // where ε matters, the placements differ by much
  });
  it("rho", () => expectSteps("rho 0.5", run(new RMSprop({ rho: 0.5, learningRate: 0.1 })), rmspropRef({ lr: lr(0.1), rho: 0.5, mu: 0, eps: 1e-7, centered: false })));
  it("rho 0: v is g² alone", () => expectSteps("rho 0", run(new RMSprop({ rho: 0, learningRate: 0.1 })), rmspropRef({ lr: lr(0.1), rho: 0, mu: 0, eps: 1e-7, centered: false })));
  it("epsilon", () => expectSteps("eps 0.01", run(new RMSprop({ epsilon: 0.01, learningRate: 0.1 })), rmspropRef({ lr: lr(0.1), rho: 0.9, mu: 0, eps: 0.01, centered: false })));
  it("momentum: the buffer holds lr·g/√d", () => expectSteps("momentum", run(new RMSprop({ momentum: 0.7, learningRate: 0.1 })), rmspropRef({ lr: lr(0.1), rho: 0.9, mu: 0.7, eps: 1e-7, centered: false })));
  it("centered: divides by √(v − a² + ε)", () => expectSteps("centered", run(new RMSprop({ centered: true, learningRate: 0.1, epsilon: 1e-3 })), rmspropRef({ lr: lr(0.1), rho: 0.9, mu: 0, eps: 1e-3, centered: true })));
  it("centered with momentum", () => expectSteps("both", run(new RMSprop({ centered: true, momentum: 0.5, rho: 0.8, learningRate: 0.1 })), rmspropRef({ lr: lr(0.1), rho: 0.8, mu: 0.5, eps: 1e-7, centered: true })));
  it("a schedule: update t uses the rate at step t − 1, and the momentum buffer keeps each step's own rate", () => {
    const s = new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 1, decayRate: 0.5 });
    const opt = new RMSprop({ learningRate: s, momentum: 0.9 });
    expect(opt.currentLearningRate()).toBe(0.1);
    const got = run(opt);
    expect(opt.currentLearningRate()).toBeCloseTo(0.0125, 15);
    expectSteps("schedule", got, rmspropRef({ lr: (t) => s.at(t), rho: 0.9, mu: 0.9, eps: 1e-7, centered: false }));
    // PyTorch's buffer (g/√d, the whole of it times the current rate) moves the weights otherwise once the rate changes
    const w = W0.slice(), v = W0.map(() => 0), buf = W0.map(() => 0);
    [G1, G2].forEach((g, t) => {
      for (let k = 0; k < w.length; k++) {
        v[k] = 0.9 * v[k]! + 0.1 * g[k]! ** 2;
        buf[k] = 0.9 * buf[k]! + g[k]! / Math.sqrt(v[k]! + 1e-7);
        w[k] = w[k]! - s.at(t) * buf[k]!;
      }
    });
    expect(Math.abs(w[0]! - got[1]![0]!)).toBeGreaterThan(1e-3);
  });
  it("clipValue, then clipNorm, before the moving averages see g", () => {
    const clipped = [G1, G2, G3].map((g) => {
      const c = g.map((x) => Math.max(-0.3, Math.min(0.3, x)));
      const n = Math.hypot(...c);
      return n > 0.4 ? c.map((x) => (x * 0.4) / n) : c;
    });
    expectSteps("clip", run(new RMSprop({ clipValue: 0.3, clipNorm: 0.4, learningRate: 0.1, momentum: 0.5 })),
      rmspropRef({ lr: lr(0.1), rho: 0.9, mu: 0.5, eps: 1e-7, centered: false }, clipped));
  });
});

describe("AdamW's formula, option by option", () => {
  const ref = (o: Partial<AdamWRef>) => adamwRef({ lr: lr(0.001), b1: 0.9, b2: 0.999, eps: 1e-7, wd: 0.004, ...o });
  it("defaults: lr 0.001, betas 0.9 / 0.999, epsilon 1e-7, weightDecay 0.004 (Keras's)", () => expectSteps("defaults", run(new AdamW()), ref({})));
  it("weightDecay decays first: w − w·wd·lr, then Adam's step", () => {
    const got = run(new AdamW({ learningRate: 0.1, weightDecay: 0.5 }));
    expectSteps("wd 0.5", got, ref({ lr: lr(0.1), wd: 0.5 }));
    // decaying after the step instead would give (w − Δ)(1 − wd·lr): off by wd·lr·Δ
    const adam = run(new Adam({ learningRate: 0.1 }));
    const after = adam[0]!.map((x) => x * (1 - 0.05));
    expect(Math.abs(after[0]! - got[0]![0]!)).toBeGreaterThan(1e-4);
  });
  it("weightDecay 0 is Adam, bit for bit", () => {
    expect(run(new AdamW({ learningRate: 0.1, weightDecay: 0 }))).toEqual(run(new Adam({ learningRate: 0.1 })));
  });
  it("beta1, beta2, epsilon", () => {
    expectSteps("betas", run(new AdamW({ learningRate: 0.05, beta1: 0.5, beta2: 0.9, epsilon: 0.01, weightDecay: 0.2 })), ref({ lr: lr(0.05), b1: 0.5, b2: 0.9, eps: 0.01, wd: 0.2 }));
  });
  it("a schedule: the decay and the step both use the rate at step t − 1", () => {
    const s = new CosineDecay({ initialLearningRate: 0.1, decaySteps: 4 });
    expectSteps("schedule", run(new AdamW({ learningRate: s, weightDecay: 0.3 })), ref({ lr: (t) => s.at(t), wd: 0.3 }));
  });
  it("clipping applies to the gradient, not to the decay", () => {
    const clipped = [G1, G2, G3].map((g) => g.map((x) => Math.max(-0.1, Math.min(0.1, x))));
    expectSteps("clip", run(new AdamW({ clipValue: 0.1, learningRate: 0.1, weightDecay: 0.5 })), adamwRef({ lr: lr(0.1), b1: 0.9, b2: 0.999, eps: 1e-7, wd: 0.5 }, clipped));
  });
});

describe("validation names the argument, the expected and the actual value", () => {
  const cases: [string, () => unknown, RegExp][] = [
    ["RMSprop rho 1", () => new RMSprop({ rho: 1 }), /RMSprop rho: expected a number in \[0, 1\), got 1/],
    ["RMSprop momentum -0.1", () => new RMSprop({ momentum: -0.1 }), /RMSprop momentum: expected a number in \[0, 1\), got -0\.1/],
    ["RMSprop epsilon 0", () => new RMSprop({ epsilon: 0 }), /RMSprop epsilon: expected a positive finite number, got 0/],
    ["RMSprop centered 1", () => new RMSprop({ centered: 1 as any }), /RMSprop centered: expected true or false, got 1/],
    ["RMSprop learningRate NaN", () => new RMSprop({ learningRate: NaN }), /RMSprop learningRate: expected a positive finite number, got NaN/],
    ["RMSprop clipNorm -1", () => new RMSprop({ clipNorm: -1 }), /RMSprop clipNorm: expected a positive finite number, got -1/],
    ["RMSprop clipValue 0", () => new RMSprop({ clipValue: 0 }), /RMSprop clipValue: expected a positive finite number, got 0/],
    ["RMSprop Keras's snake_case", () => new RMSprop({ learning_rate: 0.1 } as any), /RMSprop options: unknown option "learning_rate" \(did you mean "learningRate"\?\)/],
    ["RMSprop PyTorch's alpha", () => new RMSprop({ alpha: 0.99 } as any), /RMSprop options: unknown option "alpha"/],
    ["RMSprop options a number", () => new RMSprop(3 as any), /RMSprop options: expected an object, got 3/],
    ["AdamW weightDecay -0.01", () => new AdamW({ weightDecay: -0.01 }), /AdamW weightDecay: expected a finite number ≥ 0, got -0\.01/],
    ["AdamW weightDecay Infinity", () => new AdamW({ weightDecay: Infinity }), /AdamW weightDecay: expected a finite number ≥ 0, got Infinity/],
    ["AdamW beta2 1", () => new AdamW({ beta2: 1 }), /AdamW beta2: expected a number in \[0, 1\), got 1/],
    ["AdamW beta1 -1", () => new AdamW({ beta1: -1 }), /AdamW beta1: expected a number in \[0, 1\), got -1/],
    ["AdamW epsilon -1", () => new AdamW({ epsilon: -1 }), /AdamW epsilon: expected a positive finite number, got -1/],
    ["AdamW weight_decay", () => new AdamW({ weight_decay: 0.1 } as any), /AdamW options: unknown option "weight_decay" \(did you mean "weightDecay"\?\)/],
    ["AdamW amsgrad", () => new AdamW({ amsgrad: true } as any), /AdamW options: unknown option "amsgrad"/],
  ];
  for (const [name, f, re] of cases) it(name, () => { expect(f).toThrow(ValueError); expect(f).toThrow(re); });
});

describe("names, compile, slots and config", () => {
  it("compile takes \"rmsprop\" and \"adamw\" (Keras's identifiers) at Keras's defaults, and instances", () => {
    const r = resolveOptimizer("rmsprop") as RMSprop, a = resolveOptimizer("adamw") as AdamW;
    expect(r).toBeInstanceOf(RMSprop);
    expect([r.name, r.learningRate, r.rho, r.momentum, r.epsilon, r.centered]).toEqual(["rmsprop", 0.001, 0.9, 0, 1e-7, false]);
    expect(a).toBeInstanceOf(AdamW);
    expect([a.name, a.learningRate, a.beta1, a.beta2, a.epsilon, a.weightDecay]).toEqual(["adamw", 0.001, 0.9, 0.999, 1e-7, 0.004]);
    const m = new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1 });
    m.compile({ optimizer: "rmsprop", loss: "mse" });
    expect(m.optimizer).toBeInstanceOf(RMSprop);
    m.compile({ optimizer: "adamw", loss: "mse" });
    expect(m.optimizer!.name).toBe("adamw");
    const mine = new RMSprop({ momentum: 0.5 });
    m.compile({ optimizer: mine, loss: "mse" });
    expect(m.optimizer).toBe(mine);
    const other = new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1 });
    expect(() => other.compile({ optimizer: mine, loss: "mse" })).toThrow(/compile optimizer: this RMSprop instance already belongs to another model/);
    expect(() => other.compile({ optimizer: "RMSprop" as any, loss: "mse" })).toThrow(/optimizer: expected "adam", "sgd", "rmsprop", "adamw", .* got "RMSprop"/);
  });

  it("slots: float64 (P) each, only those the options use, the momentum buffer first", () => {
    const cases: [RMSprop | AdamW, string[]][] = [
      [new RMSprop(), ["velocity"]],
      [new RMSprop({ momentum: 0.9 }), ["momentum", "velocity"]],
      [new RMSprop({ centered: true }), ["velocity", "averageGradient"]],
      [new RMSprop({ momentum: 0.9, centered: true }), ["momentum", "velocity", "averageGradient"]],
      [new AdamW(), ["m", "v"]],
    ];
    for (const [opt, names] of cases) {
      opt.init(7);
      expect(opt.slotNames()).toEqual(names);
      expect(opt.slots().map((s) => [s.constructor.name, s.length])).toEqual(names.map(() => ["Float64Array", 7]));
    }
    const r = new RMSprop({ momentum: 0.9, centered: true });
    r.init(3);
    expect(r.slots()).toEqual([r.momentumBuffer, r.velocity, r.averageGradient]);
    const f32 = new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { seed: 1, dtype: "float32" });
    f32.compile({ optimizer: new RMSprop({ centered: true }), loss: "mse" });
    expect(f32.optimizer!.slots().every((s) => s instanceof Float64Array && s.length === f32.countParams())).toBe(true);
  });

  it("config(): every option as plain JSON, a schedule as { schedule, config }", () => {
    expect(new RMSprop({ centered: true, momentum: 0.5, clipNorm: 1 }).config()).toEqual({
      learningRate: 0.001, rho: 0.9, momentum: 0.5, epsilon: 1e-7, centered: true, clipNorm: 1, clipValue: undefined,
    });
    expect(new AdamW({ learningRate: new ExponentialDecay({ initialLearningRate: 0.01, decaySteps: 10, decayRate: 0.5 }), weightDecay: 0.1 }).config()).toEqual({
      learningRate: { schedule: "exponentialDecay", config: { initialLearningRate: 0.01, decaySteps: 10, decayRate: 0.5, staircase: false } },
      beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0.1, clipNorm: undefined, clipValue: undefined,
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------

function small(opt: () => Optimizer, dtype: DType = "float64", onNonFinite: "throw" | "skip" = "throw"): Sequential {
  const m = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 3, dtype });
  m.compile({ optimizer: opt(), loss: "meanSquaredError", onNonFinite });
  return m;
}
const rng = new Rng("optimizers-extra");
const X = randomSeq(rng, 2, 3, 2);
const Y = [[0.5], [-0.5]];

const OPTIMIZERS: [string, () => Optimizer][] = [
  ["RMSprop", () => new RMSprop({ learningRate: 0.01 })],
  ["RMSprop momentum", () => new RMSprop({ learningRate: 0.01, momentum: 0.9 })],
  ["RMSprop centered", () => new RMSprop({ learningRate: 0.01, centered: true })],
  ["RMSprop centered, momentum, schedule", () => new RMSprop({ learningRate: new ExponentialDecay({ initialLearningRate: 0.01, decaySteps: 3, decayRate: 0.7 }), momentum: 0.5, centered: true })],
  ["AdamW", () => new AdamW({ learningRate: 0.01, weightDecay: 0.1 })],
];

describe("checkpoints: name, config and slots round-trip", () => {
  for (const [name, opt] of OPTIMIZERS) {
    it(`${name}: bytes and JSON, then the next steps equal the uninterrupted model's bit for bit`, () => {
      const m = small(opt);
      m.trainOnBatch(X, Y); m.trainOnBatch(X, Y);
      for (const copy of [decodeCheckpoint(encodeCheckpoint(m)), checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(m))))]) {
        expect(copy.optimizer!.constructor).toBe(m.optimizer!.constructor);
        expect(copy.optimizer!.config()).toEqual(m.optimizer!.config());
        expect(copy.optimizer!.slotNames()).toEqual(m.optimizer!.slotNames());
        expectSame("loaded", snapshot(m), snapshot(copy));
        const twin = decodeCheckpoint(encodeCheckpoint(m));
        for (let s = 0; s < 2; s++) expect(copy.trainOnBatch(X, Y)).toEqual(twin.trainOnBatch(X, Y));
        expectSame("trained on", snapshot(twin), snapshot(copy));
      }
      const json = checkpointToJSON(m);
      expect(json.optimizer!.slots.map((s) => s.name)).toEqual(m.optimizer!.slotNames());
    });
  }

  it("refused: an unknown name (naming the path and the four), slots that do not fit the options, a bad option", () => {
    const m = small(() => new RMSprop({ momentum: 0.9 }));
    m.trainOnBatch(X, Y);
    const json = () => JSON.parse(JSON.stringify(checkpointToJSON(m)));
    const a = json(); a.config.compile.optimizer.name = "adagrad";
    expect(() => checkpointFromJSON(a)).toThrow(/config\.compile\.optimizer\.name.*"adam", "sgd", "rmsprop", "adamw".*"adagrad"/);
    const b = json(); b.config.compile.optimizer.config.momentum = 0; // one slot now, the file has two
    expect(() => checkpointFromJSON(b)).toThrow(/optimizer\.slots: expected 1 arrays for rmsprop, got 2/);
    const c = json(); c.config.compile.optimizer.config.centered = "yes";
    expect(() => checkpointFromJSON(c)).toThrow(/RMSprop centered: expected true or false, got "yes"/);
    const d = json(); d.optimizer.slots.reverse(); // velocity where the momentum buffer should be
    expect(() => checkpointFromJSON(d)).toThrow(/optimizer\.slots\[0\]/);
  });

  it("Adam's and SGD's checkpoints still read as before (slot names m, v and velocity)", () => {
    for (const opt of [() => new Adam(), () => new SGD({ momentum: 0.9 })]) {
      const m = small(opt);
      m.trainOnBatch(X, Y);
      const json = checkpointToJSON(m);
      expect(json.optimizer!.slots.map((s) => s.name)).toEqual(m.optimizer!.name === "adam" ? ["m", "v"] : ["velocity"]);
      expectSame("Adam/SGD", snapshot(m), snapshot(checkpointFromJSON(json)));
    }
  });
});

describe("maxStep is a true bound, and a step that overflows is rolled back", () => {
  it("random weights, gradients and slots: every |Δw| ≤ maxStep(‖g‖, ‖first slot‖, ‖w‖)", () => {
    const r = new Rng("maxStep");
    const makers: (() => Optimizer)[] = [
      ...OPTIMIZERS.map(([, f]) => f),
      () => new RMSprop({ learningRate: 3, epsilon: 1e-12, momentum: 0.99 }),
      () => new AdamW({ learningRate: 2, weightDecay: 3 }), // wd·lr = 6: the decay alone grows |w| fivefold
      () => new AdamW({ learningRate: 1e-3, weightDecay: 1e3, epsilon: 1e-3 }),
    ];
    let bounded = 0;
    for (const make of makers) {
      for (let trial = 0; trial < 30; trial++) {
        const n = 6, opt = make();
        opt.init(n);
        const scale = 10 ** (6 * r.uniform() - 3);
        const w = Float64Array.from({ length: n }, () => (2 * r.uniform() - 1) * scale);
        // the averages of g² (velocity, v) are ≥ 0, as every update keeps them; the others take either sign
        opt.slots().forEach((s, i) => {
          const signed = !["velocity", "v"].includes(opt.slotNames()[i]!);
          s.set(Float64Array.from({ length: n }, (_, k) => (signed ? 2 * r.uniform() - 1 : r.uniform()) * scale * (k + 1) / n));
        });
        opt.iterations = Math.floor(5 * r.uniform());
        const g = Float64Array.from({ length: n }, () => (2 * r.uniform() - 1) * 10 ** (8 * r.uniform() - 4));
        const norm = (x: Float64Array) => Math.hypot(...x);
        const bound = opt.maxStep(norm(g), norm(opt.slots()[0]!), norm(w));
        const before = w.slice();
        opt.apply(w, g);
        const moved = Math.max(...w.map((x, k) => Math.abs(x - before[k]!)));
        if (Number.isFinite(bound)) { expect(moved, `${opt.name} ${JSON.stringify(opt.config())}`).toBeLessThanOrEqual(bound); bounded++; }
      }
    }
    expect(bounded).toBe(30 * 6); // all but the two centered RMSprops give a bound
    // a large momentum buffer and small gradients: the buffer's μ·|b| is nearly all of the step
    const mo = new RMSprop({ learningRate: 1e-3, momentum: 0.9 });
    mo.init(2);
    mo.momentumBuffer.set([1e3, -2e3]);
    const w = new Float64Array([0.5, 0.5]), g = new Float64Array([1e-6, -1e-6]);
    const bound = (mo as Optimizer).maxStep(Math.hypot(...g), Math.hypot(...mo.momentumBuffer), Math.hypot(...w));
    mo.apply(w, g);
    expect(Math.abs(w[1]! - 0.5)).toBeGreaterThan(1.8e3);
    expect(Math.abs(w[1]! - 0.5)).toBeLessThanOrEqual(bound);
    expect((new RMSprop({ centered: true }) as Optimizer).maxStep(1, 1, 1)).toBe(Infinity);
    expect((new RMSprop() as Optimizer).maxStep(1e151, 0, 1)).toBe(Infinity);
  });

  const overflows: [string, () => Optimizer, DType][] = [
    ["RMSprop at lr 1e308 (the first |Δw| is lr·|g|/√(0.1·g² + ε), about lr·√10)", () => new RMSprop({ learningRate: 1e308 }), "float64"],
    ["RMSprop with momentum at lr 1e308", () => new RMSprop({ learningRate: 1e308, momentum: 0.9 }), "float64"],
    ["RMSprop centered at lr 1e308", () => new RMSprop({ learningRate: 1e308, centered: true }), "float64"],
    ["AdamW whose decay alone overflows (wd 1e308, lr 10)", () => new AdamW({ learningRate: 10, weightDecay: 1e308 }), "float64"],
    ["AdamW, float32: a decay past 3.4e38 (wd 1e38, lr 10)", () => new AdamW({ learningRate: 10, weightDecay: 1e38 }), "float32"],
    ["RMSprop, float32, lr 3e38 (finite as a double, past 3.4e38 once stored)", () => new RMSprop({ learningRate: 3e38 }), "float32"],
    ["RMSprop with momentum, float32, lr 3e38", () => new RMSprop({ learningRate: 3e38, momentum: 0.5 }), "float32"],
  ];
  for (const [name, opt, dtype] of overflows) {
    it(`${name}: onNonFinite "skip" leaves weights, slots and iterations as they were; "throw" names the weights`, () => {
      const m = small(opt, dtype, "skip");
      const before = snapshot(m);
      m.trainOnBatch(X, Y);
      expectSame("skipped", before, snapshot(m));
      expect(m.optimizer!.iterations).toBe(0);
      const t = small(opt, dtype);
      expect(() => t.trainOnBatch(X, Y)).toThrow(NonFiniteError);
      expect(() => t.trainOnBatch(X, Y)).toThrow(/non-finite updated weights/);
    });
  }
});

describe("two threads give one thread's results", () => {
  const live: Sequential[] = [];
  afterAll(() => { for (const m of live) m.dispose(); });
  for (const [name, opt] of [OPTIMIZERS[3]!, OPTIMIZERS[1]!, OPTIMIZERS[4]!]) {
    it(`${name}: 4 steps, each loss and gradient, then the weights and the slots, to 1e-12`, () => {
      const make = (threads: number) => {
        const m = new Sequential([new LSTM({ units: 5, inputDim: 3 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 11 });
        setThreads(m, threads, { minFlops: 0 });
        m.compile({ optimizer: opt(), loss: "binaryCrossentropy" });
        live.push(m);
        return m;
      };
      const one = make(1), two = make(2);
      const next = stream(4);
      const x = randomTensor([7, 4, 3], next), y = randomTensor([7, 1], next, true);
      for (let s = 0; s < 4; s++) {
        expectRel(`step ${s} loss`, [two.trainOnBatch(x, y).loss], [one.trainOnBatch(x, y).loss]);
        expectRel(`step ${s} gradients`, two.engine.grads, one.engine.grads);
      }
      expectTensors("weights", two.getWeights(), one.getWeights());
      two.optimizer!.slots().forEach((s, i) => expectRel(`slot ${two.optimizer!.slotNames()[i]}`, s, one.optimizer!.slots()[i]!));
      expect(two.threads).toBe(2);
    });
  }
});

