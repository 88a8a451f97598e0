/**
 * Learning-rate schedules (src/schedules.ts): ExponentialDecay and CosineDecay against Keras 3's formulas
 * (keras/src/optimizers/schedules/learning_rate_schedule.py) computed here with Math; the optimizers use the
 * schedule at `iterations` before each update (Keras's `learning_rate(self.iterations)`, so the first update
 * uses step 0), per update, not per epoch; checkpoints store a schedule and resume bit for bit; every bad
 * option is refused by name, in the constructors and in a checkpoint.
 */
import { describe, expect, it } from "vitest";
import {
  Sequential, LSTM, Dense, Adam, SGD, ValueError, CheckpointError, type Optimizer,
  checkpointToJSON, checkpointFromJSON, encodeCheckpoint, decodeCheckpoint,
} from "../src/index.js";
import { ExponentialDecay, CosineDecay, type Schedule } from "../src/schedules.js";
import { Rng } from "../src/init.js";
import { flat } from "./helpers/fixtures.js";

/** Keras's ExponentialDecay: initial · rate^(step / decaySteps), the exponent floored when staircase. */
function expRef(o: { initialLearningRate: number; decaySteps: number; decayRate: number; staircase?: boolean }, step: number): number {
  const p = o.staircase ? Math.floor(step / o.decaySteps) : step / o.decaySteps;
  return o.initialLearningRate * Math.pow(o.decayRate, p);
}

/** Keras 3's CosineDecay, warmup included (see the header of src/schedules.ts's CosineDecay). */
function cosRef(o: { initialLearningRate: number; decaySteps: number; alpha?: number; warmupTarget?: number; warmupSteps?: number }, step: number): number {
  const alpha = o.alpha ?? 0, d = o.decaySteps;
  const decay = (s: number, from: number): number => from * ((1 - alpha) * 0.5 * (1 + Math.cos(Math.PI * s / d)) + alpha);
  if (o.warmupTarget === undefined) return decay(Math.min(step, d), o.initialLearningRate);
  const w = o.warmupSteps ?? 0, s = Math.min(step, d + w);
  if (s < w) return (o.warmupTarget - o.initialLearningRate) * (s / w) + o.initialLearningRate;
  return decay(s - w, o.warmupTarget);
}

const model = (seed = 1): Sequential =>
  new Sequential([new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed });

function data(name: string, B: number, T = 5): { x: number[][][]; y: number[][] } {
  const rng = new Rng(name);
  const x = Array.from({ length: B }, () => Array.from({ length: T }, () => [rng.normal(), rng.normal()]));
  const y = Array.from({ length: B }, () => [rng.uniform() < 0.5 ? 0 : 1]);
  return { x, y };
}

const EPS = Number.EPSILON; // 2^-52

const bytes = (a: Float64Array | Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");

describe("ExponentialDecay: initialLearningRate · decayRate^(step / decaySteps)", () => {
  const cases = [
    { initialLearningRate: 0.01, decaySteps: 100, decayRate: 0.96 },
    { initialLearningRate: 0.1, decaySteps: 7, decayRate: 0.5 },
    { initialLearningRate: 0.1, decaySteps: 7, decayRate: 0.5, staircase: true },
    { initialLearningRate: 3e-4, decaySteps: 1, decayRate: 0.9, staircase: true },
    { initialLearningRate: 0.001, decaySteps: 3, decayRate: 1.05 }, // a rate above 1 grows, as in Keras
    { initialLearningRate: 0.02, decaySteps: 1000, decayRate: 0.1, staircase: true },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c)}: the formula at 0, 1, d − 1, d, d + 1, 2.5d, 10d and beyond; exact at step 0`, () => {
      const s = new ExponentialDecay(c), d = c.decaySteps;
      const steps = [0, 1, 2, d - 1, d, d + 1, Math.floor(2.5 * d), 3 * d - 1, 3 * d, 10 * d, 10 * d + 3, 12345];
      for (const step of steps) {
        const want = expRef(c, step), got = s.at(step);
        // exp(p·log r): the rounding of the exponent p·log r scales with its size, |x|·2^-52 or so.
        const p = c.staircase ? Math.floor(step / d) : step / d, x = Math.abs(p * Math.log(c.decayRate));
        expect(Math.abs(got - want), `step ${step}: ${got} vs ${want}`).toBeLessThanOrEqual(2 * EPS * (1 + x) * want);
      }
      expect(s.at(0)).toBe(c.initialLearningRate);
      if (c.staircase) {
        for (let k = 0; k < d; k++) expect(s.at(k), `step ${k} in the first period`).toBe(c.initialLearningRate);
        expect(s.at(2 * d)).toBe(s.at(3 * d - 1)); // constant over a period
        expect(s.at(d)).toBeLessThan(s.at(d - 1)); // and steps down at its boundary
      } else {
        // continuous: every step moves (down, or up for a rate above 1)
        if (c.decayRate < 1) expect(s.at(d - 1)).toBeGreaterThan(s.at(d));
        else expect(s.at(d - 1)).toBeLessThan(s.at(d));
        expect(s.at(1)).not.toBe(s.at(0));
      }
    });
  }

  it("relative error within 1e-15 while |p·ln r| ≤ 3, and within 2·(1 + |p·ln r|)·2^-52 over 30 periods, on many rates", () => {
    const rng = new Rng("expdecay");
    let worstNear = 0, worstFar = 0;
    for (let t = 0; t < 400; t++) {
      const c = { initialLearningRate: 1e-4 + rng.uniform() * 0.1, decaySteps: 1 + rng.int(500), decayRate: 0.01 + rng.uniform() * 1.5, staircase: rng.uniform() < 0.5 };
      const s = new ExponentialDecay(c);
      for (let k = 0; k < 20; k++) {
        const step = rng.int(c.decaySteps * 30);
        const p = c.staircase ? Math.floor(step / c.decaySteps) : step / c.decaySteps, x = Math.abs(p * Math.log(c.decayRate));
        const rel = Math.abs(s.at(step) - expRef(c, step)) / expRef(c, step);
        if (x <= 3) worstNear = Math.max(worstNear, rel);
        worstFar = Math.max(worstFar, rel / (EPS * (1 + x)));
      }
    }
    expect(worstNear).toBeLessThanOrEqual(1e-15);
    expect(worstFar).toBeLessThanOrEqual(2);
  });

  it("config() is every option, defaults filled in; the same options give the same schedule", () => {
    const s = new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.9 });
    expect(s.name).toBe("exponentialDecay");
    expect(s.config()).toEqual({ initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.9, staircase: false });
    const t = new ExponentialDecay(s.config() as any);
    for (const step of [0, 3, 10, 77]) expect(t.at(step)).toBe(s.at(step));
  });
});

describe("CosineDecay (Keras 3): cosine from the start rate to alpha · it, with an optional linear warmup", () => {
  const plain = [
    { initialLearningRate: 0.1, decaySteps: 1000 },
    { initialLearningRate: 0.01, decaySteps: 10, alpha: 0.1 },
    { initialLearningRate: 0.5, decaySteps: 7, alpha: 1 }, // alpha 1: constant
    { initialLearningRate: 2e-3, decaySteps: 1 },
  ];
  for (const c of plain) {
    it(`${JSON.stringify(c)}: the formula at 0, 1, d/2, d − 1, d and beyond`, () => {
      const s = new CosineDecay(c), d = c.decaySteps, peak = c.initialLearningRate, alpha = c.alpha ?? 0;
      for (const step of [0, 1, 2, Math.floor(d / 3), Math.floor(d / 2), d - 2, d - 1, d, d + 1, 2 * d, 10 * d + 5]) {
        if (step < 0) continue;
        const want = cosRef(c, step), got = s.at(step);
        // 1 + cos(πf) cancels near the end (in Keras too): the error is measured against the schedule's scale.
        expect(Math.abs(got - want), `step ${step}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-15 * peak);
        if (step <= d / 2) expect(Math.abs(got - want), `step ${step} (relative)`).toBeLessThanOrEqual(1e-15 * want);
      }
      expect(s.at(0)).toBe(peak);
      expect(s.at(d)).toBe(peak * alpha); // cos(π) = -1 exactly: the floor, exactly
      expect(s.at(d + 1)).toBe(s.at(d));
      expect(s.at(100 * d)).toBe(s.at(d)); // min(step, decaySteps): the floor holds beyond
      if (alpha < 1 && d > 1) expect(s.at(d - 1)).toBeGreaterThan(s.at(d));
    });
  }

  it("the half-way point is exact: cos(π/2) = 0, so lr(d/2) = initialLearningRate · (1 + alpha)/2", () => {
    expect(new CosineDecay({ initialLearningRate: 0.1, decaySteps: 1000 }).at(500)).toBe(0.05);
    expect(new CosineDecay({ initialLearningRate: 1, decaySteps: 10, alpha: 0.5 }).at(5)).toBe(0.75);
  });

  const warm = [
    { initialLearningRate: 0, decaySteps: 50, warmupTarget: 0.1, warmupSteps: 10 },
    { initialLearningRate: 0.001, decaySteps: 20, alpha: 0.1, warmupTarget: 0.02, warmupSteps: 7 },
    { initialLearningRate: 0.05, decaySteps: 5, warmupTarget: 0.01, warmupSteps: 3 }, // a "warmup" down: linear all the same
    { initialLearningRate: 0.05, decaySteps: 9, warmupTarget: 0.2, warmupSteps: 1 },
  ];
  for (const c of warm) {
    it(`warmup ${JSON.stringify(c)}: linear from initialLearningRate to warmupTarget, then the decay from warmupTarget`, () => {
      const s = new CosineDecay(c), w = c.warmupSteps, d = c.decaySteps, alpha = c.alpha ?? 0;
      for (let step = 0; step <= w + d + 3; step++) {
        const want = cosRef(c, step), got = s.at(step);
        expect(Math.abs(got - want), `step ${step}: ${got} vs ${want}`).toBeLessThanOrEqual(1e-15 * Math.max(c.warmupTarget, c.initialLearningRate));
      }
      expect(s.at(0)).toBe(c.initialLearningRate); // the warmup starts at initialLearningRate
      // the last warmup step is one step short of the target, the first decay step is the target
      const lastUp = c.initialLearningRate + (c.warmupTarget - c.initialLearningRate) * (w - 1) / w;
      expect(Math.abs(s.at(w - 1) - lastUp)).toBeLessThanOrEqual(2 * EPS * lastUp);
      expect(s.at(w)).toBeCloseTo(c.warmupTarget, 16);
      if (alpha === 0) expect(s.at(w)).toBe(c.warmupTarget);
      // the decay runs d steps counted after the warmup
      expect(s.at(w + d)).toBe(c.warmupTarget * alpha);
      expect(s.at(w + d + 100)).toBe(s.at(w + d));
      if (d > 1) expect(s.at(w + d - 1)).toBeGreaterThan(s.at(w + d));
    });
  }

  it("warmupTarget with warmupSteps 0: no warmup, the decay starts from warmupTarget (as Keras)", () => {
    const c = { initialLearningRate: 0.5, decaySteps: 10, warmupTarget: 0.1 };
    const s = new CosineDecay(c);
    expect(s.at(0)).toBe(0.1);
    for (let step = 0; step < 14; step++) expect(Math.abs(s.at(step) - cosRef(c, step))).toBeLessThanOrEqual(1e-16);
  });

  it("config() is every option, warmupTarget null when none; the same options give the same schedule", () => {
    const s = new CosineDecay({ initialLearningRate: 0.1, decaySteps: 100 });
    expect(s.name).toBe("cosineDecay");
    expect(s.config()).toEqual({ initialLearningRate: 0.1, decaySteps: 100, alpha: 0, warmupTarget: null, warmupSteps: 0 });
    const w = new CosineDecay({ initialLearningRate: 0, decaySteps: 10, alpha: 0.2, warmupTarget: 0.3, warmupSteps: 4 });
    expect(w.config()).toEqual({ initialLearningRate: 0, decaySteps: 10, alpha: 0.2, warmupTarget: 0.3, warmupSteps: 4 });
  });
});

describe("the optimizers use the schedule at `iterations` before each update (the first update: step 0)", () => {
  const { x, y } = data("sgd-steps", 3);

  const schedules = (): [string, Schedule][] => [
    ["ExponentialDecay", new ExponentialDecay({ initialLearningRate: 0.5, decaySteps: 2, decayRate: 0.25 })],
    ["ExponentialDecay staircase", new ExponentialDecay({ initialLearningRate: 0.5, decaySteps: 2, decayRate: 0.25, staircase: true })],
    // starts at 0: an update that used step 1 for the first update would move the weights
    ["CosineDecay with warmup from 0", new CosineDecay({ initialLearningRate: 0, decaySteps: 4, warmupTarget: 0.4, warmupSteps: 2 })],
  ];

  for (const [name, schedule] of schedules()) {
    it(`SGD, ${name}: update t moves the weights by exactly −lr(t − 1)·g`, () => {
      const m = model();
      const opt = new SGD({ learningRate: schedule });
      m.compile({ optimizer: opt, loss: "binaryCrossentropy" });
      let moved = 0;
      for (let t = 1; t <= 7; t++) {
        expect(opt.currentLearningRate(), `rate before update ${t}`).toBe(schedule.at(t - 1));
        const w0 = Float64Array.from(m.engine.params);
        const g = Float64Array.from(m.computeGradients(x, y).grads.flatMap(flat));
        m.trainOnBatch(x, y);
        expect(opt.iterations).toBe(t);
        const lr = schedule.at(t - 1);
        m.engine.params.forEach((v, k) => expect(v, `update ${t}, weight ${k}`).toBe(w0[k]! - lr * g[k]!));
        if (m.engine.params.some((v, k) => v !== w0[k])) moved++;
      }
      expect(moved).toBeGreaterThan(4);
    });
  }

  it("SGD with a schedule that is constant (decayRate 1) trains bit for bit as SGD with the number", () => {
    const a = model(), b = model();
    a.compile({ optimizer: new SGD({ learningRate: new ExponentialDecay({ initialLearningRate: 0.3, decaySteps: 5, decayRate: 1 }), momentum: 0.9 }), loss: "binaryCrossentropy" });
    b.compile({ optimizer: new SGD({ learningRate: 0.3, momentum: 0.9 }), loss: "binaryCrossentropy" });
    for (let t = 0; t < 5; t++) expect(a.trainOnBatch(x, y)).toEqual(b.trainOnBatch(x, y));
    expect(bytes(a.engine.params)).toBe(bytes(b.engine.params));
  });

  it("Adam: a few steps equal Keras-form Adam with the scheduled rate, lr(t − 1) at update t", () => {
    const g = [1e-6, -3e-4, 0.02, -0.5, 1, 0.3], n = g.length;
    const schedule = new ExponentialDecay({ initialLearningRate: 0.05, decaySteps: 1, decayRate: 0.5 }); // halves every update
    const opt = new Adam({ learningRate: schedule, epsilon: 1e-7 });
    opt.init(n);
    const w = new Float64Array(n), ref = new Float64Array(n), late = new Float64Array(n);
    const m = new Float64Array(n), v = new Float64Array(n);
    for (let t = 1; t <= 6; t++) {
      const grads = Float64Array.from(g, (x, k) => x * (1 + 0.2 * t * (k % 2 ? -1 : 1)));
      expect(opt.currentLearningRate()).toBe(schedule.at(t - 1));
      expect(Math.abs(schedule.at(t - 1) - 0.05 * Math.pow(0.5, t - 1))).toBeLessThanOrEqual(1e-15 * schedule.at(t - 1));
      opt.apply(w, grads.slice());
      const c1 = 1 - Math.pow(0.9, t), c2 = 1 - Math.pow(0.999, t);
      const lr = 0.05 * Math.pow(0.5, t - 1), lrLate = 0.05 * Math.pow(0.5, t); // late: the off-by-one
      for (let k = 0; k < n; k++) {
        m[k] = m[k]! + (grads[k]! - m[k]!) * 0.1;
        v[k] = v[k]! + (grads[k]! * grads[k]! - v[k]!) * 0.001;
        ref[k] = ref[k]! - (lr * Math.sqrt(c2) / c1) * m[k]! / (Math.sqrt(v[k]!) + 1e-7);
        late[k] = late[k]! - (lrLate * Math.sqrt(c2) / c1) * m[k]! / (Math.sqrt(v[k]!) + 1e-7);
      }
      for (let k = 0; k < n; k++) expect(Math.abs(w[k]! - ref[k]!), `update ${t}, w[${k}]`).toBeLessThanOrEqual(1e-14 * Math.abs(ref[k]!));
    }
    expect(opt.iterations).toBe(6);
    for (let k = 0; k < n; k++) expect(Math.abs(late[k]! - ref[k]!)).toBeGreaterThan(0.1 * Math.abs(ref[k]!));
  });

  it("Adam with a CosineDecay on a model: each update's rate is the schedule at the steps taken before it", () => {
    // Two models, one trained with the schedule, one recompiled each step with Adam at the number lr(t − 1)
    // carrying the same moments: equal bit for bit.
    const schedule = new CosineDecay({ initialLearningRate: 0.001, decaySteps: 6, alpha: 0.1, warmupTarget: 0.05, warmupSteps: 2 });
    const a = model(), b = model();
    const opt = new Adam({ learningRate: schedule });
    a.compile({ optimizer: opt, loss: "binaryCrossentropy" });
    let prev: Adam<number> | null = null;
    for (let t = 1; t <= 9; t++) {
      const fixed = new Adam({ learningRate: schedule.at(t - 1) });
      b.compile({ optimizer: fixed, loss: "binaryCrossentropy" });
      if (prev) { fixed.m.set(prev.m); fixed.v.set(prev.v); fixed.iterations = prev.iterations; }
      expect(a.trainOnBatch(x, y)).toEqual(b.trainOnBatch(x, y));
      expect(bytes(a.engine.params), `update ${t}`).toBe(bytes(b.engine.params));
      prev = fixed;
    }
    expect(opt.currentLearningRate()).toBe(schedule.at(9));
  });

  it("a skipped non-finite step leaves the step count, so the rate, where it was", () => {
    // lr(0) = 10, lr(1) = 10 · 1e308 = Infinity: the second update gives non-finite weights and is skipped.
    const schedule = new ExponentialDecay({ initialLearningRate: 10, decaySteps: 1, decayRate: 1e308 });
    const m = model();
    const opt = new SGD({ learningRate: schedule });
    m.compile({ optimizer: opt, loss: "binaryCrossentropy", onNonFinite: "skip" });
    m.trainOnBatch(x, y);
    expect(opt.iterations).toBe(1);
    const w1 = bytes(m.engine.params);
    m.trainOnBatch(x, y);
    expect(opt.iterations).toBe(1);
    expect(bytes(m.engine.params)).toBe(w1);
    expect(opt.currentLearningRate()).toBe(Infinity);
  });
});

describe("fit: the rate moves per update (batch), not per epoch", () => {
  const { x, y } = data("fit", 12);

  it("each batch of each epoch sees the schedule at the updates taken before it; the weights equal trainOnBatch on the same batches", async () => {
    const schedule = new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 2, decayRate: 0.7 });
    const a = model();
    a.compile({ optimizer: new SGD({ learningRate: schedule, momentum: 0.5 }), loss: "binaryCrossentropy" });
    const seen: number[] = [];
    await a.fit(x, y, {
      epochs: 3, batchSize: 4, shuffle: false, verbose: 0,
      callbacks: [{ onBatchBegin(_b, _l, mm) { seen.push((mm.optimizer as Optimizer).currentLearningRate()); } }],
    });
    expect(a.optimizer!.iterations).toBe(9);
    expect(seen).toEqual(Array.from({ length: 9 }, (_, k) => schedule.at(k)));
    expect(new Set(seen).size).toBe(9); // a rate per batch: a per-epoch rate would repeat within an epoch

    const b = model();
    b.compile({ optimizer: new SGD({ learningRate: schedule, momentum: 0.5 }), loss: "binaryCrossentropy" });
    for (let e = 0; e < 3; e++) for (let i = 0; i < 12; i += 4) b.trainOnBatch(x.slice(i, i + 4), y.slice(i, i + 4));
    expect(bytes(a.engine.params)).toBe(bytes(b.engine.params));
  });
});

describe("checkpoints store the schedule; a resumed run continues bit for bit", () => {
  const { x, y } = data("ckpt", 10);
  const optimizers: [string, () => Optimizer][] = [
    ["Adam + CosineDecay with warmup", () => new Adam({ learningRate: new CosineDecay({ initialLearningRate: 0.001, decaySteps: 12, alpha: 0.05, warmupTarget: 0.03, warmupSteps: 3 }), clipNorm: 2 })],
    ["SGD + ExponentialDecay staircase", () => new SGD({ learningRate: new ExponentialDecay({ initialLearningRate: 0.2, decaySteps: 3, decayRate: 0.6, staircase: true }), momentum: 0.9 })],
    ["Adam + CosineDecay", () => new Adam({ learningRate: new CosineDecay({ initialLearningRate: 0.02, decaySteps: 10 }) })],
  ];

  for (const [name, make] of optimizers) {
    it(`${name}: the JSON form, a round trip, and training on equal to the original`, () => {
      const m = model(3);
      m.compile({ optimizer: make(), loss: "binaryCrossentropy", metrics: ["accuracy"] });
      for (let s = 0; s < 4; s++) m.trainOnBatch(x, y);
      const json = checkpointToJSON(m);
      const lr = json.config.compile!.optimizer.config.learningRate as any;
      const sched = (m.optimizer as Adam | SGD).learningRate as Schedule;
      expect(lr).toEqual({ schedule: sched.name, config: sched.config() });
      const copy = checkpointFromJSON(JSON.parse(JSON.stringify(json)));
      const copied = (copy.optimizer as Adam | SGD).learningRate;
      expect(copied).toBeInstanceOf(sched.constructor);
      expect(copy.optimizer!.config()).toEqual(m.optimizer!.config());
      expect(copy.optimizer!.iterations).toBe(4);
      expect(copy.optimizer!.currentLearningRate()).toBe(sched.at(4));
      for (let s = 0; s < 12; s++) expect(copy.trainOnBatch(x, y)).toEqual(m.trainOnBatch(x, y));
      expect(bytes(copy.engine.params)).toBe(bytes(m.engine.params));
      expect(checkpointToJSON(copy)).toEqual(checkpointToJSON(m));
    });
  }

  it("fit k epochs, encode, decode, fit N − k equals N epochs, bit for bit (and a restart of the schedule would not)", async () => {
    const make = (): Sequential => {
      const m = model(9);
      m.compile({ optimizer: new Adam({ learningRate: new CosineDecay({ initialLearningRate: 0.002, decaySteps: 10, warmupTarget: 0.05, warmupSteps: 4 }) }), loss: "binaryCrossentropy" });
      return m;
    };
    const opts = { batchSize: 4, shuffle: true, verbose: 0 as const }; // 3 updates per epoch
    const full = make();
    const hFull = await full.fit(x, y, { ...opts, epochs: 5 });
    const first = make();
    const h1 = await first.fit(x, y, { ...opts, epochs: 2 });
    const resumed = decodeCheckpoint(encodeCheckpoint(first));
    expect(resumed.optimizer!.currentLearningRate()).toBe(first.optimizer!.currentLearningRate());
    const h2 = await resumed.fit(x, y, { ...opts, epochs: 3 });
    expect(bytes(resumed.engine.params)).toBe(bytes(full.engine.params));
    expect(resumed.optimizer!.slots().map(bytes)).toEqual(full.optimizer!.slots().map(bytes));
    expect(resumed.optimizer!.iterations).toBe(15);
    expect([...h1.history.loss, ...h2.history.loss]).toEqual(hFull.history.loss);

    // Not vacuous: the same state with the schedule's step back at 0 (its rates from the warmup's start) differs.
    const restarted = decodeCheckpoint(encodeCheckpoint(first));
    const json = checkpointToJSON(restarted);
    json.optimizer!.iterations = 0;
    const wrong = checkpointFromJSON(JSON.parse(JSON.stringify(json)));
    await wrong.fit(x, y, { ...opts, epochs: 3 });
    expect(bytes(wrong.engine.params)).not.toBe(bytes(full.engine.params));
  });

  it("bad schedule configurations in a checkpoint: CheckpointError naming the field", () => {
    const exp = model(2);
    exp.compile({ optimizer: new SGD({ learningRate: new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 5, decayRate: 0.5 }) }), loss: "binaryCrossentropy" });
    exp.trainOnBatch(x, y);
    const cos = model(2);
    cos.compile({ optimizer: new Adam({ learningRate: new CosineDecay({ initialLearningRate: 0, decaySteps: 5, warmupTarget: 0.1, warmupSteps: 2 }) }), loss: "binaryCrossentropy" });
    cos.trainOnBatch(x, y);
    const P = "config\\.compile\\.optimizer\\.config\\.learningRate";
    const cases: [string, Sequential, (lr: any, j: any) => void, RegExp][] = [
      ["unknown schedule", exp, (lr) => { lr.schedule = "polynomialDecay"; }, new RegExp(`${P}\\.schedule: expected one of "exponentialDecay", "cosineDecay", got "polynomialDecay"`)],
      ["schedule missing", exp, (lr) => { delete lr.schedule; }, new RegExp(`${P}\\.schedule: expected one of .* got undefined`)],
      ["config missing", exp, (lr) => { delete lr.config; }, new RegExp(`${P}\\.config: expected an object, got undefined`)],
      ["config an array", exp, (lr) => { lr.config = [1]; }, new RegExp(`${P}\\.config: expected an object, got an array`)],
      ["an unknown field beside schedule and config", exp, (lr) => { lr.step = 3; }, new RegExp(`${P}\\.step: unknown field`)],
      ["learningRate an array", exp, (_lr, j) => { j.config.compile.optimizer.config.learningRate = [0.1]; }, new RegExp(`${P}: expected an object, got an array`)],
      ["learningRate null", exp, (_lr, j) => { j.config.compile.optimizer.config.learningRate = null; }, /config\.compile\.optimizer\.config: SGD learningRate: expected a positive finite number or a schedule .* got null/],
      ["decaySteps missing (no default assumed)", exp, (lr) => { delete lr.config.decaySteps; }, new RegExp(`${P}\\.config\\.decaySteps: missing`)],
      ["staircase missing (no default assumed)", exp, (lr) => { delete lr.config.staircase; }, new RegExp(`${P}\\.config\\.staircase: missing`)],
      ["decaySteps 0", exp, (lr) => { lr.config.decaySteps = 0; }, new RegExp(`${P}\\.config: ExponentialDecay decaySteps: expected a positive integer, got 0`)],
      ["decaySteps 2.5", exp, (lr) => { lr.config.decaySteps = 2.5; }, new RegExp(`${P}\\.config: ExponentialDecay decaySteps: expected a positive integer, got 2.5`)],
      ["decayRate negative", exp, (lr) => { lr.config.decayRate = -0.5; }, new RegExp(`${P}\\.config: ExponentialDecay decayRate: expected a positive finite number, got -0.5`)],
      ["initialLearningRate null (NaN in JSON)", exp, (lr) => { lr.config.initialLearningRate = null; }, new RegExp(`${P}\\.config: ExponentialDecay initialLearningRate: expected a positive finite number, got null`)],
      ["staircase a string", exp, (lr) => { lr.config.staircase = "yes"; }, new RegExp(`${P}\\.config: ExponentialDecay staircase: expected true or false, got "yes"`)],
      ["an unknown option", exp, (lr) => { lr.config.decay_rate = 0.5; }, new RegExp(`${P}\\.config: ExponentialDecay options: unknown option "decay_rate"`)],
      ["cosine fields under exponentialDecay", exp, (lr) => { lr.schedule = "cosineDecay"; }, new RegExp(`${P}\\.config\\.alpha: missing`)],
      ["alpha above 1", cos, (lr) => { lr.config.alpha = 1.5; }, new RegExp(`${P}\\.config: CosineDecay alpha: expected a number in \\[0, 1\\], got 1.5`)],
      ["alpha missing", cos, (lr) => { delete lr.config.alpha; }, new RegExp(`${P}\\.config\\.alpha: missing`)],
      ["warmupTarget missing (null is written for none)", cos, (lr) => { delete lr.config.warmupTarget; }, new RegExp(`${P}\\.config\\.warmupTarget: missing`)],
      ["warmupTarget a string", cos, (lr) => { lr.config.warmupTarget = "0.1"; }, new RegExp(`${P}\\.config: CosineDecay warmupTarget: expected a positive finite number, got "0.1"`)],
      ["warmupSteps fractional", cos, (lr) => { lr.config.warmupSteps = 1.5; }, new RegExp(`${P}\\.config: CosineDecay warmupSteps: expected a non-negative integer, got 1.5`)],
      ["warmupSteps without a warmupTarget", cos, (lr) => { lr.config.warmupTarget = null; }, new RegExp(`${P}\\.config: CosineDecay warmupSteps: 2 warmup steps need a warmupTarget`)],
      ["initialLearningRate 0 without a warmup", cos, (lr) => { lr.config.warmupTarget = null; lr.config.warmupSteps = 0; }, new RegExp(`${P}\\.config: CosineDecay initialLearningRate: expected a positive finite number, got 0`)],
      ["decaySteps negative", cos, (lr) => { lr.config.decaySteps = -5; }, new RegExp(`${P}\\.config: CosineDecay decaySteps: expected a positive integer, got -5`)],
    ];
    for (const [name, m, mutate, pattern] of cases) {
      const j = JSON.parse(JSON.stringify(checkpointToJSON(m)));
      mutate(j.config.compile.optimizer.config.learningRate, j);
      let err: unknown;
      try { checkpointFromJSON(j, "ckpt"); } catch (e) { err = e; }
      expect(err, name).toBeInstanceOf(CheckpointError);
      expect((err as Error).message, name).toMatch(pattern);
      expect((err as Error).message.startsWith("ckpt: "), name).toBe(true);
    }
    // and the unmutated ones load
    expect(() => checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(exp))))).not.toThrow();
    expect(() => checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(cos))))).not.toThrow();
  });
});

describe("validation: every bad option is a ValueError naming it", () => {
  const E = { initialLearningRate: 0.1, decaySteps: 10, decayRate: 0.5 };
  const C = { initialLearningRate: 0.1, decaySteps: 10 };
  const cases: [string, () => unknown, RegExp][] = [
    ["ExponentialDecay no options", () => new ExponentialDecay(undefined as any), /ExponentialDecay options: expected an object, got undefined/],
    ["ExponentialDecay options an array", () => new ExponentialDecay([] as any), /ExponentialDecay options: expected an object, got an array/],
    ["ExponentialDecay initialLearningRate missing", () => new ExponentialDecay({ decaySteps: 10, decayRate: 0.5 } as any), /ExponentialDecay initialLearningRate: expected a positive finite number, got undefined/],
    ["ExponentialDecay initialLearningRate 0", () => new ExponentialDecay({ ...E, initialLearningRate: 0 }), /ExponentialDecay initialLearningRate: expected a positive finite number, got 0/],
    ["ExponentialDecay initialLearningRate -1", () => new ExponentialDecay({ ...E, initialLearningRate: -1 }), /ExponentialDecay initialLearningRate: expected a positive finite number, got -1/],
    ["ExponentialDecay initialLearningRate NaN", () => new ExponentialDecay({ ...E, initialLearningRate: NaN }), /ExponentialDecay initialLearningRate: expected a positive finite number, got NaN/],
    ["ExponentialDecay initialLearningRate Infinity", () => new ExponentialDecay({ ...E, initialLearningRate: Infinity }), /ExponentialDecay initialLearningRate: expected a positive finite number, got Infinity/],
    ["ExponentialDecay initialLearningRate a string", () => new ExponentialDecay({ ...E, initialLearningRate: "0.1" as any }), /ExponentialDecay initialLearningRate: expected a positive finite number, got "0.1"/],
    ["ExponentialDecay decaySteps missing", () => new ExponentialDecay({ initialLearningRate: 0.1, decayRate: 0.5 } as any), /ExponentialDecay decaySteps: expected a positive integer, got undefined/],
    ["ExponentialDecay decaySteps 0", () => new ExponentialDecay({ ...E, decaySteps: 0 }), /ExponentialDecay decaySteps: expected a positive integer, got 0/],
    ["ExponentialDecay decaySteps 1.5", () => new ExponentialDecay({ ...E, decaySteps: 1.5 }), /ExponentialDecay decaySteps: expected a positive integer, got 1.5/],
    ["ExponentialDecay decaySteps Infinity", () => new ExponentialDecay({ ...E, decaySteps: Infinity }), /ExponentialDecay decaySteps: expected a positive integer, got Infinity/],
    ["ExponentialDecay decayRate missing", () => new ExponentialDecay({ initialLearningRate: 0.1, decaySteps: 10 } as any), /ExponentialDecay decayRate: expected a positive finite number, got undefined/],
    ["ExponentialDecay decayRate 0", () => new ExponentialDecay({ ...E, decayRate: 0 }), /ExponentialDecay decayRate: expected a positive finite number, got 0/],
    ["ExponentialDecay decayRate negative", () => new ExponentialDecay({ ...E, decayRate: -0.5 }), /ExponentialDecay decayRate: expected a positive finite number, got -0.5/],
    ["ExponentialDecay decayRate Infinity", () => new ExponentialDecay({ ...E, decayRate: Infinity }), /ExponentialDecay decayRate: expected a positive finite number, got Infinity/],
    ["ExponentialDecay staircase 1", () => new ExponentialDecay({ ...E, staircase: 1 as any }), /ExponentialDecay staircase: expected true or false, got 1/],
    ["ExponentialDecay decay_rate (snake_case)", () => new ExponentialDecay({ ...E, decay_rate: 0.5 } as any), /ExponentialDecay options: unknown option "decay_rate" \(did you mean "decayRate"\?\); the options are "initialLearningRate", "decaySteps", "decayRate", "staircase"/],
    ["ExponentialDecay name (Keras's, not taken)", () => new ExponentialDecay({ ...E, name: "x" } as any), /ExponentialDecay options: unknown option "name"/],
    ["CosineDecay no options", () => new CosineDecay(null as any), /CosineDecay options: expected an object, got null/],
    ["CosineDecay initialLearningRate 0 without a warmup", () => new CosineDecay({ ...C, initialLearningRate: 0 }), /CosineDecay initialLearningRate: expected a positive finite number, got 0/],
    ["CosineDecay initialLearningRate -1 with a warmup", () => new CosineDecay({ ...C, initialLearningRate: -1, warmupTarget: 0.1, warmupSteps: 2 }), /CosineDecay initialLearningRate: expected a non-negative finite number \(the warmup's start\), got -1/],
    ["CosineDecay initialLearningRate NaN", () => new CosineDecay({ ...C, initialLearningRate: NaN }), /CosineDecay initialLearningRate: expected a positive finite number, got NaN/],
    ["CosineDecay decaySteps missing", () => new CosineDecay({ initialLearningRate: 0.1 } as any), /CosineDecay decaySteps: expected a positive integer, got undefined/],
    ["CosineDecay decaySteps 0", () => new CosineDecay({ ...C, decaySteps: 0 }), /CosineDecay decaySteps: expected a positive integer, got 0/],
    ["CosineDecay decaySteps 2.5", () => new CosineDecay({ ...C, decaySteps: 2.5 }), /CosineDecay decaySteps: expected a positive integer, got 2.5/],
    ["CosineDecay alpha -0.1", () => new CosineDecay({ ...C, alpha: -0.1 }), /CosineDecay alpha: expected a number in \[0, 1\], got -0.1/],
    ["CosineDecay alpha 1.5", () => new CosineDecay({ ...C, alpha: 1.5 }), /CosineDecay alpha: expected a number in \[0, 1\], got 1.5/],
    ["CosineDecay alpha NaN", () => new CosineDecay({ ...C, alpha: NaN }), /CosineDecay alpha: expected a number in \[0, 1\], got NaN/],
    ["CosineDecay alpha a string", () => new CosineDecay({ ...C, alpha: "0" as any }), /CosineDecay alpha: expected a number in \[0, 1\], got "0"/],
    ["CosineDecay warmupTarget 0", () => new CosineDecay({ ...C, warmupTarget: 0, warmupSteps: 2 }), /CosineDecay warmupTarget: expected a positive finite number, got 0/],
    ["CosineDecay warmupTarget Infinity", () => new CosineDecay({ ...C, warmupTarget: Infinity, warmupSteps: 2 }), /CosineDecay warmupTarget: expected a positive finite number, got Infinity/],
    ["CosineDecay warmupTarget null", () => new CosineDecay({ ...C, warmupTarget: null as any }), /CosineDecay warmupTarget: expected a positive finite number, got null/],
    ["CosineDecay warmupSteps -1", () => new CosineDecay({ ...C, warmupTarget: 0.2, warmupSteps: -1 }), /CosineDecay warmupSteps: expected a non-negative integer, got -1/],
    ["CosineDecay warmupSteps 2.5", () => new CosineDecay({ ...C, warmupTarget: 0.2, warmupSteps: 2.5 }), /CosineDecay warmupSteps: expected a non-negative integer, got 2.5/],
    ["CosineDecay warmupSteps without a warmupTarget (Keras would ignore them)", () => new CosineDecay({ ...C, warmupSteps: 5 }), /CosineDecay warmupSteps: 5 warmup steps need a warmupTarget/],
    ["CosineDecay a warmup from 0 without its warmupTarget: the missing target is named", () => new CosineDecay({ ...C, initialLearningRate: 0, warmupSteps: 5 }), /CosineDecay warmupSteps: 5 warmup steps need a warmupTarget/],
    ["CosineDecay warmup_steps (snake_case)", () => new CosineDecay({ ...C, warmup_steps: 5 } as any), /CosineDecay options: unknown option "warmup_steps" \(did you mean "warmupSteps"\?\)/],
    ["CosineDecay decay_steps only", () => new CosineDecay({ initialLearningRate: 0.1, decay_steps: 5 } as any), /CosineDecay options: unknown option "decay_steps" \(did you mean "decaySteps"\?\)/],
    ["at(-1)", () => new CosineDecay(C).at(-1), /CosineDecay step: expected a non-negative integer \(the updates taken so far\), got -1/],
    ["at(1.5)", () => new ExponentialDecay(E).at(1.5), /ExponentialDecay step: expected a non-negative integer .* got 1.5/],
    ["at(NaN)", () => new ExponentialDecay(E).at(NaN), /ExponentialDecay step: expected a non-negative integer .* got NaN/],
    ["Adam learningRate an object", () => new Adam({ learningRate: { schedule: "cosineDecay" } as any }), /Adam learningRate: expected a positive finite number or a schedule \(an ExponentialDecay or a CosineDecay\), got an object \(Object\)/],
    ["Adam learningRate a function", () => new Adam({ learningRate: ((s: number) => 0.1 / (s + 1)) as any }), /Adam learningRate: expected a positive finite number or a schedule .* got function/],
    ["SGD learningRate a look-alike schedule", () => new SGD({ learningRate: { name: "cosineDecay", at: () => 0.1, config: () => ({}) } as any }), /SGD learningRate: expected a positive finite number or a schedule/],
    ["SGD learningRate a string", () => new SGD({ learningRate: "0.1" as any }), /SGD learningRate: expected a positive finite number or a schedule .* got "0.1"/],
    ["Adam learningRate 0 (numbers as before)", () => new Adam({ learningRate: 0 }), /Adam learningRate: expected a positive finite number, got 0/],
  ];
  for (const [name, fn, pattern] of cases) {
    it(name, () => {
      let err: unknown;
      try { fn(); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(ValueError);
      expect((err as Error).message).toMatch(pattern);
    });
  }

  it("the edges that are allowed: alpha 0 and 1, a warmup from 0, a rate above 1, decaySteps 1", () => {
    expect(() => new CosineDecay({ ...C, alpha: 0 })).not.toThrow();
    expect(() => new CosineDecay({ ...C, alpha: 1 })).not.toThrow();
    expect(() => new CosineDecay({ ...C, initialLearningRate: 0, warmupTarget: 0.1, warmupSteps: 3 })).not.toThrow();
    expect(() => new ExponentialDecay({ ...E, decayRate: 2 })).not.toThrow();
    expect(() => new ExponentialDecay({ ...E, decaySteps: 1 })).not.toThrow();
    expect(new Adam({ learningRate: new CosineDecay(C) }).currentLearningRate()).toBe(0.1);
    expect(new SGD().currentLearningRate()).toBe(0.01);
  });
});
