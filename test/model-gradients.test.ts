/**
 * Model-level gradient checks in float64: `computeGradients` (weights, dL/dx, dL/d initial state) against
 * finite differences of the model's own loss (`testOnBatch`) on random configurations drawn from a seeded
 * RNG (batch, steps, features, units, one or two LSTM layers, per-step or last-step head, one to three
 * Dense layers with linear/sigmoid/tanh/relu, BCE or MSE, stateless or stateful), with the one helper in
 * test/helpers/gradcheck.ts. Then the public `gradCheck`, and `hiddenGradNorms` against an independent
 * computation through `stateGrads` and `inputGrad`.
 */
import { afterAll, describe, expect, it } from "vitest";
import ndarray from "ndarray";
import { Sequential, LSTM, Dense, gradCheck, type Activation, type LossName, type Tensor } from "../src/index.js";
import type { DenseWorkspace } from "../src/layers/dense.js";
import type { LSTMWorkspace } from "../src/layers/lstm.js";
import type { Rng } from "../src/init.js";
import {
  makeRng, uniformArray, randInt, checkGradients, expectGradientsMatch, WorstTracker, type Wrt,
} from "./helpers/gradcheck.js";

const TOL = 1e-6;
const worst = new WorstTracker();
// The figures quoted in reports: GRADCHECK_REPORT=1 npx vitest run test/model-gradients.test.ts
afterAll(() => { if (process.env.GRADCHECK_REPORT) console.log(`worst relative errors (model):\n${worst.summary()}`); });

interface Config {
  B: number; T: number; I: number;
  units: number[];            // LSTM units, bottom to top
  returnSequences: boolean;   // of the top LSTM: a per-step head
  denses: { units: number; activation: Activation; useBias?: boolean }[];
  loss: LossName;
  stateful: boolean;
  /** Per LSTM: hardSigmoid gates, and whether it has a bias (both default to the plain LSTM). */
  hard?: boolean[];
  lstmBias?: boolean[];
}

function describeConfig(c: Config): string {
  return `B=${c.B} T=${c.T} I=${c.I} H=[${c.units}] ${c.returnSequences ? "perStep" : "lastStep"} ` +
    `dense=[${c.denses.map((d) => `${d.units}${d.activation}${d.useBias === false ? "-nobias" : ""}`)}] ${c.loss} ${c.stateful ? "stateful" : "stateless"}` +
    `${c.hard?.some(Boolean) ? ` hard=[${c.hard}]` : ""}${c.lstmBias?.some((b) => !b) ? ` lstmBias=[${c.lstmBias}]` : ""}`;
}

const HIDDEN_ACTS: Activation[] = ["linear", "sigmoid", "tanh", "relu"];

function randomConfig(rng: Rng): Config {
  const nL = randInt(rng, 1, 2), nD = randInt(rng, 1, 3);
  const loss: LossName = rng.uniform() < 0.5 ? "binaryCrossentropy" : "meanSquaredError";
  // Heads: sigmoid or linear for either loss (a linear head under BCE is kept inside (0, 1), below);
  // tanh and relu heads with MSE.
  const heads: Activation[] = loss === "binaryCrossentropy" ? ["sigmoid", "sigmoid", "linear"] : ["sigmoid", "linear", "tanh", "relu"];
  const denses: Config["denses"] = Array.from({ length: nD }, (_, k) => ({
    units: randInt(rng, 1, k === nD - 1 ? 3 : 4),
    activation: k === nD - 1 ? heads[rng.int(heads.length)]! : HIDDEN_ACTS[rng.int(4)]!,
  }));
  const c: Config = {
    B: randInt(rng, 1, 4), T: randInt(rng, 1, 6), I: randInt(rng, 1, 4),
    units: Array.from({ length: nL }, () => randInt(rng, 1, 5)),
    returnSequences: rng.uniform() < 0.5,
    denses, loss, stateful: rng.uniform() < 0.5,
  };
  // The options imported models carry: hard-sigmoid gates and layers without a bias (a ReLU layer keeps its
  // bias, which holds its inputs away from the kink, and so does a linear head under BCE, whose bias keeps
  // its outputs inside (0, 1); see randomizeWeights).
  c.hard = c.units.map(() => rng.uniform() < 0.4);
  c.lstmBias = c.units.map(() => rng.uniform() < 0.7);
  denses.forEach((d, k) => {
    const keep = d.activation === "relu" || (k === nD - 1 && d.activation === "linear" && loss === "binaryCrossentropy");
    if (!keep && rng.uniform() < 0.3) d.useBias = false;
  });
  return c;
}

function buildModel(c: Config, seed: string, override: Partial<{ stateful: boolean; returnSequences: boolean }> = {}): Sequential {
  const stateful = override.stateful ?? c.stateful;
  const layers: (LSTM | Dense)[] = c.units.map((u, i) => new LSTM({
    units: u, inputDim: i === 0 ? c.I : undefined,
    returnSequences: i < c.units.length - 1 || (override.returnSequences ?? c.returnSequences),
    stateful, batchSize: stateful ? c.B : undefined,
    recurrentActivation: c.hard?.[i] ? "hardSigmoid" : "sigmoid", useBias: c.lstmBias?.[i] ?? true,
  }));
  for (const d of c.denses) layers.push(new Dense(d));
  const model = new Sequential(layers, { dtype: "float64", seed });
  model.compile({ optimizer: "sgd", loss: c.loss });
  return model;
}

/**
 * Random weights that keep finite differences meaningful: ReLU layers get small kernels and biases of
 * ±(0.55…0.95), so no ReLU input comes within 0.1 of the kink (asserted after the forward pass); a linear
 * head under BCE gets bias 0.5 and a small kernel, so its outputs are probabilities far from the clip.
 */
function randomizeWeights(model: Sequential, c: Config, rng: Rng): void {
  // Hard-sigmoid layers get larger weights, so that some gates sit on each clipped side.
  const shapes = model.weightShapes();
  const ws: Tensor[] = [];
  let w = 0;
  for (const l of model.layers) {
    const n = l.weightShapes().length;
    for (let k = 0; k < n; k++, w++) {
      const shape = shapes[w]!, size = shape.reduce((a, b) => a * b, 1);
      let data: Float64Array;
      if (l instanceof LSTM) {
        const s = (k === 2 ? 1 : 0.7) * (l.recurrentActivation === "hardSigmoid" ? 2.5 : 1);
        data = uniformArray(rng, size, -s, s);
      }
      else {
        const isHead = l === model.engine.layers[model.engine.layers.length - 1];
        const In = l.inputDim!;
        if ((l as Dense).activation === "relu") {
          data = k === 0 ? uniformArray(rng, size, -0.1 / In, 0.1 / In)
            : Float64Array.from({ length: size }, (_, j) => (j % 2 === 0 ? 1 : -1) * (0.55 + 0.4 * rng.uniform()));
        } else if (isHead && (l as Dense).activation === "linear" && c.loss === "binaryCrossentropy") {
          data = k === 0 ? uniformArray(rng, size, -0.08 / In, 0.08 / In) : new Float64Array(size).fill(0.5);
        } else data = uniformArray(rng, size, -0.9, 0.9);
      }
      ws.push(ndarray(data, shape) as Tensor);
    }
  }
  model.setWeights(ws);
}

function tensorOf(data: Float64Array, shape: number[]): Tensor {
  return ndarray(data, shape) as Tensor;
}

function randomLabels(c: Config, rng: Rng): Float64Array {
  const D = c.denses[c.denses.length - 1]!.units;
  const n = c.B * (c.returnSequences ? c.T : 1) * D;
  if (c.loss === "meanSquaredError") return uniformArray(rng, n, -1, 1);
  // Hard labels with some soft ones.
  return Float64Array.from({ length: n }, () => (rng.uniform() < 0.3 ? rng.uniform() : rng.int(2)));
}

function flatGrads(grads: Tensor[]): Float64Array {
  const n = grads.reduce((s, g) => s + g.data.length, 0);
  const out = new Float64Array(n);
  let off = 0;
  for (const g of grads) { out.set(g.data, off); off += g.data.length; }
  return out;
}

/**
 * How far the hard-sigmoid gates are from the kinks after the last forward pass: a finite difference across a
 * kink would measure neither side. Gates exactly 0 or 1 are clipped (and stay so under a tiny step); the rest
 * must be at least this far inside (0, 1). Infinity when there is no hard-sigmoid layer.
 */
function hardKinkMargin(model: Sequential): number {
  let m = Infinity;
  model.engine.rnns.forEach((l, k) => {
    if (l.kind === "bidirectional" || l.recurrentActivation !== "hardSigmoid") return;
    const ws = model.engine.ws(k), H = l.units, G = 4 * H;
    const n = ws.B * ws.cap * G;
    for (let q = 0; q < n; q++) {
      if (Math.floor(q / H) % 4 === 2) continue; // the tanh block
      const v = (ws as LSTMWorkspace).gates[q]!;
      if (v !== 0 && v !== 1) m = Math.min(m, v, 1 - v);
    }
  });
  return m;
}

/** Every ReLU input at least `margin` from 0, after the last forward pass. */
function reluMargin(model: Sequential): number {
  let m = Infinity;
  model.engine.layers.forEach((d, k) => {
    if (!(d instanceof Dense) || d.activation !== "relu") return;
    for (const v of (model.engine.workspaceOf(k) as DenseWorkspace).logits) m = Math.min(m, Math.abs(v));
  });
  return m;
}

const N_CONFIGS = 20;

describe("computeGradients vs finite differences on random configurations", () => {
  const rng = makeRng("model/configs");
  const configs = Array.from({ length: N_CONFIGS }, () => randomConfig(rng));

  it("the configurations cover every feature the issue lists", () => {
    const has = (p: (c: Config) => boolean): boolean => configs.some(p);
    expect(has((c) => c.units.length === 2)).toBe(true);
    expect(has((c) => c.units.length === 1)).toBe(true);
    expect(has((c) => c.returnSequences) && has((c) => !c.returnSequences)).toBe(true);
    expect(has((c) => c.stateful) && has((c) => !c.stateful)).toBe(true);
    expect(has((c) => c.denses.length >= 2)).toBe(true);
    for (const loss of ["binaryCrossentropy", "meanSquaredError"] as const) {
      for (const head of ["sigmoid", "linear"] as const) {
        expect(has((c) => c.loss === loss && c.denses[c.denses.length - 1]!.activation === head), `${loss} with a ${head} head`).toBe(true);
      }
    }
    for (const act of ["tanh", "relu"] as const) expect(has((c) => c.denses.some((d) => d.activation === act)), act).toBe(true);
    expect(has((c) => c.hard!.some(Boolean)) && has((c) => c.lstmBias!.some((b) => !b)) && has((c) => c.denses.some((d) => d.useBias === false))).toBe(true);
    expect(has((c) => c.B === 1) && has((c) => c.T === 1) && has((c) => c.units.includes(1))).toBe(true);
  });

  configs.forEach((c, ci) => {
    it(`#${ci} ${describeConfig(c)}: every weight, dL/dx${c.stateful ? ", dL/d(initial state)" : ""}`, () => {
      const r = makeRng(`model/config/${ci}`);
      const model = buildModel(c, `cfg${ci}`);
      randomizeWeights(model, c, r);
      const xData = uniformArray(r, c.B * c.T * c.I, -1.5, 1.5);
      const x = tensorOf(xData, [c.B, c.T, c.I]);
      const D = c.denses[c.denses.length - 1]!.units;
      const y = tensorOf(randomLabels(c, r), c.returnSequences ? [c.B, c.T, D] : [c.B, D]);
      // A stateful model starts from a random state (set by resetStates), so dL/d(initial state) is checked.
      const s0 = c.units.map((H) => ({
        h: tensorOf(uniformArray(r, c.B * H, -0.8, 0.8), [c.B, H]),
        c: tensorOf(uniformArray(r, c.B * H, -1.5, 1.5), [c.B, H]),
      }));
      const restart = (): void => { if (c.stateful) model.resetStates(s0); };
      const loss = (): number => { restart(); return model.testOnBatch(x, y).loss; };

      restart();
      const g = model.computeGradients(x, y);
      expect(reluMargin(model), "ReLU inputs away from the kink").toBeGreaterThan(0.1);
      // Hard sigmoid is piecewise linear: with one in the model the stencil steps 1e-5 (which moves a gate by
      // ~1e-5, a quarter of the margin asserted here), and the floor rises to 1e-4 so that the smaller step's
      // round-off (~2e-11·|L|) stays inside the tolerance (an absolute 1e-10 below the floor).
      const hard = c.hard!.some(Boolean);
      if (hard) expect(hardKinkMargin(model), "hard-sigmoid gates away from the kinks").toBeGreaterThan(3e-5);
      expect(g.loss).toBe(loss()); // the same forward pass as testOnBatch
      const wrts: Wrt[] = [];
      const names = model.weightNames(), grads = flatGrads(g.grads);
      let off = 0;
      g.grads.forEach((t, i) => {
        wrts.push({ name: names[i]!, values: model.engine.params as Float64Array, off, count: t.data.length, analytic: grads.subarray(off, off + t.data.length) });
        off += t.data.length;
      });
      wrts.push({ name: "inputGrad", values: xData, analytic: g.inputGrad.data });
      if (c.stateful) {
        s0.forEach((s, i) => {
          wrts.push({ name: `stateGrads[${i}].h`, values: s.h.data as Float64Array, analytic: g.stateGrads[i]!.h.data });
          wrts.push({ name: `stateGrads[${i}].c`, values: s.c!.data as Float64Array, analytic: g.stateGrads[i]!.c!.data });
        });
      }
      const rep = checkGradients(loss, wrts, hard ? { step: 1e-5, floor: 1e-4 } : {});
      worst.add("computeGradients", rep);
      expectGradientsMatch(`#${ci}`, rep, TOL);
      // Not vacuous: some gradient is far above the floor.
      expect(Math.max(...rep.entries.map((e) => e.maxAbsGrad))).toBeGreaterThan(1e-3);
    });
  });
});

describe("public gradCheck", () => {
  const rng = makeRng("model/public");
  const cases: Config[] = [
    { B: 3, T: 5, I: 2, units: [6], returnSequences: false, denses: [{ units: 1, activation: "sigmoid" }], loss: "binaryCrossentropy", stateful: false },
    { B: 2, T: 4, I: 3, units: [4, 3], returnSequences: true, denses: [{ units: 3, activation: "tanh" }, { units: 2, activation: "linear" }], loss: "meanSquaredError", stateful: false },
    { B: 2, T: 3, I: 1, units: [5], returnSequences: false, denses: [{ units: 2, activation: "sigmoid" }], loss: "meanSquaredError", stateful: true },
  ];
  cases.forEach((c, ci) => {
    it(`${describeConfig(c)}: worst relative error ≤ 1e-6, weights and states untouched`, () => {
      const model = buildModel(c, `pub${ci}`);
      randomizeWeights(model, c, rng);
      const x = tensorOf(uniformArray(rng, c.B * c.T * c.I, -1, 1), [c.B, c.T, c.I]);
      const D = c.denses[c.denses.length - 1]!.units;
      const y = tensorOf(randomLabels(c, rng), c.returnSequences ? [c.B, c.T, D] : [c.B, D]);
      if (c.stateful) {
        model.resetStates(c.units.map((H) => ({ h: tensorOf(uniformArray(rng, c.B * H), [c.B, H]), c: tensorOf(uniformArray(rng, c.B * H), [c.B, H]) })));
      }
      if (!c.stateful) model.predict(x); // so a stateless model has a last state to keep, too
      const p0 = Float64Array.from(model.engine.params), st0 = model.getStates();
      const res = gradCheck(model, x, y, { samples: 1000 });
      expect(res.perWeight.map((p) => p.name)).toEqual(model.weightNames());
      expect(res.perWeight.every((p) => p.checked === model.getWeights()[res.perWeight.indexOf(p)]!.data.length)).toBe(true);
      worst.worst.set("public gradCheck", Math.max(worst.worst.get("public gradCheck") ?? 0, res.maxRelativeError));
      expect(res.maxRelativeError).toBeLessThanOrEqual(TOL);
      expect(Array.from(model.engine.params)).toEqual(Array.from(p0));
      const st1 = model.getStates();
      st0.forEach((s, i) => {
        expect(Array.from(st1[i]!.h.data)).toEqual(Array.from(s.h.data));
        expect(Array.from(st1[i]!.c!.data)).toEqual(Array.from(s.c!.data));
      });
    });
  });

  it("catches a wrong gradient: a model whose loss is perturbed behind computeGradients' back reports a large error", () => {
    // gradCheck must be able to fail: compare against the gradient of a different point.
    const c = cases[0]!;
    const model = buildModel(c, "pub-wrong");
    const x = tensorOf(uniformArray(rng, c.B * c.T * c.I), [c.B, c.T, c.I]);
    const y = tensorOf(randomLabels(c, rng), [c.B, 1]);
    const real = model.computeGradients.bind(model);
    model.computeGradients = (xx, yy, o) => {
      const r = real(xx, yy, o);
      r.grads[1]!.data[3] = r.grads[1]!.data[3]! * 1.001 + 1e-4;
      return r;
    };
    expect(gradCheck(model, x, y, { samples: 1000 }).maxRelativeError).toBeGreaterThan(1e-4);
  });
});

describe("hiddenGradNorms", () => {
  /** ‖v‖₂ of a tensor's data. */
  const norm = (a: ArrayLike<number>): number => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

  for (const units of [[5], [4, 3]]) {
    it(`${units.length} layer(s): ‖dL/dh_t‖ of every layer and step equals an independent split of the sequence`, () => {
      const rng = makeRng(`norms/${units.length}`);
      const c: Config = { B: 3, T: 6, I: 2, units, returnSequences: false, denses: [{ units: 2, activation: "sigmoid" }], loss: "binaryCrossentropy", stateful: false };
      const model = buildModel(c, "norms");
      randomizeWeights(model, c, rng);
      const weights = model.getWeights();
      const xData = uniformArray(rng, c.B * c.T * c.I, -1.5, 1.5);
      const x = tensorOf(xData, [c.B, c.T, c.I]);
      const y = tensorOf(randomLabels(c, rng), [c.B, 2]);
      const g = model.computeGradients(x, y, { hiddenGradNorms: true });
      const norms = g.hiddenGradNorms!;
      expect(norms.length).toBe(units.length);
      for (const n of norms) expect(n.length).toBe(c.T);

      // The independent computation, through stateGrads and inputGrad of other models on parts of the
      // sequence. A stateful copy runs steps [0, t] from zeros (predict), then computeGradients on steps
      // [t+1, T) from that state: with a last-step head the loss is the same function of that state, and
      // its stateGrads[l].h is the gradient reaching h_t of layer l through layer l's own recurrence.
      // For the top layer that is all of dL/dh_t (t < T-1). A lower layer's h_t also feeds the layer above
      // at step t: that part is the inputGrad at step 0 of an [upper LSTM + Dense] model started from the
      // upper layer's state at t-1 and fed the lower layer's h_t … h_{T-1}. The sum is dL/dh_t.
      const sf = buildModel(c, "norms", { stateful: true });
      sf.setWeights(weights);
      const sliceX = (a: number, b: number): Tensor => {
        const out = new Float64Array(c.B * (b - a) * c.I);
        for (let s = 0; s < c.B; s++) out.set(xData.subarray((s * c.T + a) * c.I, (s * c.T + b) * c.I), s * (b - a) * c.I);
        return tensorOf(out, [c.B, b - a, c.I]);
      };
      const stateAfter = (t: number) => { // states after step t (t = -1: zeros)
        sf.resetStates();
        if (t >= 0) sf.predict(sliceX(0, t + 1));
        return sf.getStates();
      };
      const top = units.length - 1;
      const upper = units.length === 2
        ? buildModel({ ...c, I: units[0]!, units: [units[1]!] }, "norms-top", { stateful: true })
        : null;
      upper?.setWeights(weights.slice(3));
      const h1 = g.hiddenStates[0]!; // [B, T, H0]
      for (let t = 0; t < c.T; t++) {
        // dL/dh_t through each layer's own recurrence (zero at the last step).
        const rec = units.map((H) => new Float64Array(c.B * H));
        if (t < c.T - 1) {
          sf.resetStates(stateAfter(t));
          const gs = sf.computeGradients(sliceX(t + 1, c.T), y);
          expect(gs.loss).toBeCloseTo(g.loss, 13);
          units.forEach((_, l) => rec[l]!.set(gs.stateGrads[l]!.h.data));
        } else {
          // The top layer's last h reaches the loss through the head only: dL/dlogits · Wᵀ with
          // dL/dlogits = (p - y)/(B·D) for a sigmoid head under BCE.
          const H = units[top]!, D = 2, W = weights[3 * units.length]!.data; // dense kernel (H, D)
          for (let b = 0; b < c.B; b++) for (let j = 0; j < H; j++) {
            let s = 0;
            for (let k = 0; k < D; k++) s += ((g.outputs.data[b * D + k]! - y.data[b * D + k]!) / (c.B * D)) * W[j * D + k]!;
            rec[top]![b * H + j] = s;
          }
        }
        if (upper) {
          const H0 = units[0]!, n = c.T - t;
          const inp = new Float64Array(c.B * n * H0);
          for (let b = 0; b < c.B; b++) for (let s = 0; s < n; s++) for (let j = 0; j < H0; j++) inp[(b * n + s) * H0 + j] = h1.get(b, t + s, j);
          upper.resetStates([stateAfter(t - 1)[1]!]);
          const gu = upper.computeGradients(tensorOf(inp, [c.B, n, H0]), y);
          expect(gu.loss).toBeCloseTo(g.loss, 13);
          for (let b = 0; b < c.B; b++) for (let j = 0; j < H0; j++) rec[0]![b * H0 + j] = rec[0]![b * H0 + j]! + gu.inputGrad.get(b, 0, j);
        }
        units.forEach((_, l) => {
          const expected = norm(rec[l]!);
          expect(expected).toBeGreaterThan(1e-6);
          expect(Math.abs(norms[l]![t]! - expected), `layer ${l} step ${t}: ${norms[l]![t]} vs ${expected}`).toBeLessThanOrEqual(1e-12 * expected);
        });
      }
    });
  }

  it("includes the per-step head's gradient at each step (a per-step head: dL/dh_t reaches every step from above)", () => {
    const rng = makeRng("norms/perstep");
    const c: Config = { B: 2, T: 5, I: 1, units: [3], returnSequences: true, denses: [{ units: 1, activation: "linear" }], loss: "meanSquaredError", stateful: false };
    const model = buildModel(c, "norms-ps");
    // With a zero recurrent kernel no gradient crosses steps through h, and a zero forget gate
    // (bias -1e3: f = 0 exactly) none through c: dL/dh_t is then the head's alone, dOut_t · Wᵀ.
    randomizeWeights(model, c, rng);
    const w = model.getWeights();
    w[1]!.data.fill(0);
    for (let j = 0; j < 3; j++) w[2]!.data[3 + j] = -1e3;
    model.setWeights(w);
    const x = tensorOf(uniformArray(rng, c.B * c.T, -1, 1), [c.B, c.T, 1]);
    const y = tensorOf(uniformArray(rng, c.B * c.T, -1, 1), [c.B, c.T, 1]);
    const g = model.computeGradients(x, y, { hiddenGradNorms: true });
    const W = w[3]!.data; // (3, 1)
    for (let t = 0; t < c.T; t++) {
      let s = 0;
      for (let b = 0; b < c.B; b++) {
        const dOut = 2 * (g.outputs.get(b, t, 0) - y.get(b, t, 0)) / (c.B * c.T);
        for (let j = 0; j < 3; j++) s += (dOut * W[j]!) ** 2;
      }
      expect(Math.abs(g.hiddenGradNorms![0]![t]! - Math.sqrt(s)), `step ${t}`).toBeLessThanOrEqual(1e-14);
    }
  });

  it("shows vanishing gradients along the sequence for a saturated model, and not for an open forget gate", () => {
    const T = 30, H = 8;
    const rng = makeRng("norms/vanish");
    const c: Config = { B: 2, T, I: 1, units: [H], returnSequences: false, denses: [{ units: 1, activation: "sigmoid" }], loss: "binaryCrossentropy", stateful: false };
    const x = tensorOf(uniformArray(rng, 2 * T, -1, 1), [2, T, 1]);
    const y = tensorOf(Float64Array.from([1, 0]), [2, 1]);
    const ratioFor = (forgetBias: number): number[] => {
      const model = buildModel(c, "vanish"); // default init: orthogonal recurrent kernel
      const w = model.getWeights();
      for (let j = 0; j < H; j++) w[2]!.data[H + j] = forgetBias;
      for (let k = 0; k < w[1]!.data.length; k++) w[1]!.data[k] = w[1]!.data[k]! * 0.3;
      model.setWeights(w);
      return model.computeGradients(x, y, { hiddenGradNorms: true }).hiddenGradNorms![0]!;
    };
    // Forget gate saturated shut (σ(-10) ≈ 4.5e-5) and a contracting recurrence: the gradient shrinks at
    // every step back in time, geometrically.
    const closed = ratioFor(-10);
    for (let t = 0; t < T - 1; t++) expect(closed[t]!, `step ${t} < step ${t + 1}`).toBeLessThan(closed[t + 1]!);
    expect(closed[0]! / closed[T - 1]!).toBeLessThan(1e-10);
    // Forget gate saturated open (σ(10) ≈ 1): the cell carries the gradient back.
    const open = ratioFor(10);
    expect(open[0]! / open[T - 1]!).toBeGreaterThan(1e-3);
  });
});
