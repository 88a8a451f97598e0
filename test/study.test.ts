/**
 * The gradient-study surface, each piece checked against an independent computation and used to study
 * something real:
 * - computeGradients' `hiddenGrads` / `gradNorms` (dL/dh_t and dL/dc_t per sample and step) equal the
 *   dL/d(initial state) of the same model run on the sequence's suffix from (h_t, c_t), which a stateful twin
 *   reaches by reading the prefix; and they show the gradient fading with distance from the loss;
 * - `keepState` looks without moving a stateful model's state;
 * - gradCheck checks dL/dx and dL/d(initial state) too, and catches them wrong;
 * - TruncatedBPTT's onWindow hands over per-weight gradients, dL/dx over the reached steps, dL/d(state at the
 *   cut) and per-step norms, and k2 moves the cut exactly where the README says.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import { Sequential, LSTM, Dense, TruncatedBPTT, gradCheck, type Tensor, type WindowInfo } from "../src/index.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

const B = 3, T = 8, F = 2, H = 4;

function model(stateful: boolean, seed = 7, units = H): Sequential {
  const m = new Sequential([
    new LSTM({ units, inputDim: F, stateful, batchSize: stateful ? B : undefined }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed });
  m.compile({ optimizer: "sgd", loss: "binaryCrossentropy" });
  return m;
}

const rng = makeRng("study");
const X = ndarray(uniformArray(rng, B * T * F, -1.5, 1.5), [B, T, F]) as Tensor;
const Y = ndarray(Float64Array.from([1, 0, 1]), [B, 1]) as Tensor;

/** Steps [t0, t1) of X as a [B, t1 - t0, F] tensor. */
function steps(t0: number, t1: number, x: Tensor = X, n = T): Tensor {
  const out = new Float64Array(B * (t1 - t0) * F);
  for (let b = 0; b < B; b++) for (let t = t0; t < t1; t++) for (let k = 0; k < F; k++) out[(b * (t1 - t0) + t - t0) * F + k] = x.data[(b * n + t) * F + k]!;
  return ndarray(out, [B, t1 - t0, F]) as Tensor;
}

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-12): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) expect.fail(`${what}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

describe("computeGradients: dL/dh_t and dL/dc_t per sample and step", () => {
  it("equal dL/d(initial state) of the suffix run from (h_t, c_t), for every step", () => {
    const m = model(false);
    const g = m.computeGradients(X, Y, { hiddenGrads: true, gradNorms: true, hiddenGradNorms: true });
    const dh = g.hiddenGrads![0]!, norms = g.gradNorms![0]!;
    expect(dh.shape).toEqual([B, T, H]);
    expect(norms.h.shape).toEqual([B, T]);
    expect(norms.c!.shape).toEqual([B, T]);
    const twin = model(true);
    twin.setWeights(m.getWeights());
    for (let t = 0; t < T - 1; t++) {
      twin.resetStates();
      twin.predict(steps(0, t + 1)); // reads x_0 … x_t: its state is now (h_t, c_t)
      const st = twin.getStates()[0]!;
      const s = twin.computeGradients(steps(t + 1, T), Y).stateGrads[0]!; // the loss depends on (h_t, c_t) only through the suffix
      for (let b = 0; b < B; b++) {
        const row = Array.from({ length: H }, (_, j) => dh.data[(b * T + t) * H + j]!);
        close(`dL/dh_${t} row ${b}`, row, Array.from(s.h.data.subarray(b * H, (b + 1) * H)));
        // The suffix sees h_t and c_t as separate inputs; the whole dL/dc_t adds the path through
        // h_t = o_t ⊙ tanh(c_t): dL/dh_t ⊙ o_t ⊙ (1 - tanh²(c_t)), with o_t = h_t / tanh(c_t).
        const dc = Array.from({ length: H }, (_, j) => {
          const k = b * H + j, th = Math.tanh(st.c!.data[k]!);
          return s.c!.data[k]! + row[j]! * (st.h.data[k]! / th) * (1 - th * th);
        });
        const nh = Math.hypot(...row), nc = Math.hypot(...dc);
        close(`‖dL/dh_${t}‖ row ${b}`, [norms.h.data[b * T + t]!], [nh]);
        close(`‖dL/dc_${t}‖ row ${b}`, [norms.c!.data[b * T + t]!], [nc]);
      }
    }
    // The batch norm of hiddenGradNorms is the root of the sum of the per-sample squares.
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += norms.h.data[b * T + t]! ** 2;
      close(`hiddenGradNorms[${t}]`, [g.hiddenGradNorms![0]![t]!], [Math.sqrt(s)]);
    }
  });

  it("study: with the forget gate shut the gradient fades step by step with distance from the loss; opened, it carries", () => {
    const fade = (forgetBias: number): number[] => {
      const m = model(false, 3, 6);
      const w = m.getWeights();
      w[2]!.data.fill(0);
      for (let j = 6; j < 12; j++) w[2]!.data[j] = forgetBias; // the forget block of the bias
      m.setWeights(w);
      const { gradNorms } = m.computeGradients(X, Y, { gradNorms: true });
      // Each sample's ‖dL/dc_t‖ relative to its value at the last step.
      return Array.from({ length: T }, (_, t) => {
        let s = 0;
        for (let b = 0; b < B; b++) s += gradNorms![0]!.c!.data[b * T + t]! / gradNorms![0]!.c!.data[b * T + T - 1]!;
        return s / B;
      });
    };
    const shut = fade(-6), open = fade(6);
    for (let t = 1; t < T; t++) expect(shut[t - 1]!, `shut, step ${t - 1} vs ${t}`).toBeLessThan(shut[t]!);
    expect(shut[0]!).toBeLessThan(1e-6);  // f ≈ σ(-6) per step: seven steps back, almost nothing is left
    expect(open[0]!).toBeGreaterThan(0.3); // f ≈ σ(6): the cell carries the gradient back
  });
});

describe("computeGradients({ keepState: true }) on a stateful model", () => {
  it("looks without moving: the same result twice, the state unchanged; without it the state moves", () => {
    const m = model(true);
    m.predict(X); // some carried state
    const before = m.getStates()[0]!;
    const a = m.computeGradients(X, Y, { keepState: true }), b = m.computeGradients(X, Y, { keepState: true });
    expect(b.loss).toBe(a.loss);
    close("grads", b.grads.flatMap((t) => Array.from(t.data)), a.grads.flatMap((t) => Array.from(t.data)), 0);
    expect(Array.from(m.getStates()[0]!.h.data)).toEqual(Array.from(before.h.data));
    expect(Array.from(m.getStates()[0]!.c!.data)).toEqual(Array.from(before.c!.data));
    const moved = m.computeGradients(X, Y);
    expect(moved.loss).toBe(a.loss); // it started from the same state…
    expect(Array.from(m.getStates()[0]!.h.data)).not.toEqual(Array.from(before.h.data)); // …and moved it
    expect(m.computeGradients(X, Y).loss).not.toBe(a.loss);
  });
});

describe("gradCheck over inputs and initial states", () => {
  it("checks dL/dx and dL/d(h0, c0) as well as every weight, stateless and stateful, leaving the state alone", () => {
    for (const stateful of [false, true]) {
      const m = model(stateful);
      if (stateful) m.resetStates([{ h: ndarray(uniformArray(rng, B * H, -0.5, 0.5), [B, H]) as Tensor, c: ndarray(uniformArray(rng, B * H, -1, 1), [B, H]) as Tensor }]);
      const before = m.getStates()[0]!;
      const r = gradCheck(m, X, Y);
      expect(r.perWeight.map((p) => p.name)).toEqual(m.weightNames());
      expect(r.input!.checked).toBe(40);
      expect(r.states!.map((s) => s.name)).toEqual(["lstm_0/h", "lstm_0/c"]);
      expect(r.states!.every((s) => s.checked === B * H)).toBe(true);
      expect(r.maxRelativeError, `stateful ${stateful}`).toBeLessThan(1e-6);
      expect(r.input!.maxRelativeError).toBeLessThan(1e-6);
      expect(Array.from(m.getStates()[0]!.c!.data)).toEqual(Array.from(before.c!.data));
      expect(gradCheck(m, X, Y, { wrt: ["input"] }).perWeight).toEqual([]);
    }
  });

  it("catches a wrong dL/dx and a wrong dL/dc0", () => {
    const m = model(true);
    const real = m.computeGradients.bind(m);
    m.computeGradients = (x, y, o) => {
      const g = real(x, y, o);
      g.inputGrad.data[0] = g.inputGrad.data[0]! * 1.01;
      g.stateGrads[0]!.c!.data[1] = -g.stateGrads[0]!.c!.data[1]!;
      return g;
    };
    const r = gradCheck(m, X, Y, { samples: 1000 });
    expect(r.input!.maxRelativeError).toBeGreaterThan(1e-3);
    expect(r.states!.find((s) => s.name === "lstm_0/c")!.maxRelativeError).toBeGreaterThan(1e-1);
    expect(r.states!.find((s) => s.name === "lstm_0/h")!.maxRelativeError).toBeLessThan(1e-6);
  });
});

describe("TruncatedBPTT onWindow: the window's whole gradient, and where k2 cuts it", () => {
  const T2 = 2 * T;
  const X2 = ndarray(uniformArray(rng, B * T2 * F, -1.5, 1.5), [B, T2, F]) as Tensor;

  /** The info of every window of an update-free pass (copies taken during the callback). */
  function windows(k1: number, k2: number, m: Sequential) {
    const out: { info: WindowInfo; weights: { name: string; grad: Tensor }[]; dx: Tensor; states: { h: Tensor; c?: Tensor }[] }[] = [];
    new TruncatedBPTT(m, { windowLength: k1, backpropLength: k2 }).trainSequence(X2, Y, {
      update: false,
      onWindow: (info) => out.push({ info, weights: info.weightGrads(), dx: info.inputGrad(), states: info.stateGrads() }),
    });
    return out;
  }

  it("k2 = k1: window 2's gradients are computeGradients of its own steps from the carried state (a constant)", () => {
    const m = model(false), w = windows(T, T, m);
    expect(w.map((x) => x.info.reach)).toEqual([T, T]);
    const twin = model(true);
    twin.setWeights(m.getWeights());
    twin.predict(steps(0, T, X2, T2));
    const ref = twin.computeGradients(steps(T, T2, X2, T2), Y, { hiddenGradNorms: true });
    const second = w[1]!;
    expect(second.weights.map((g) => g.name)).toEqual(m.weightNames());
    second.weights.forEach((g, i) => close(g.name, g.grad.data, ref.grads[i]!.data));
    expect(second.dx.shape).toEqual([B, T, F]);
    close("dL/dx", second.dx.data, ref.inputGrad.data);
    close("dL/dh at the cut", second.states[0]!.h.data, ref.stateGrads[0]!.h.data);
    close("dL/dc at the cut", second.states[0]!.c!.data, ref.stateGrads[0]!.c!.data);
    close("‖dL/dh_t‖", second.info.hiddenGradNorms[0]!, ref.hiddenGradNorms![0]!);
  });

  it("k2 = 2·k1: window 2 reaches back through window 1 to step 0, as computeGradients over both does", () => {
    const m = model(false), w = windows(T, 2 * T, m);
    expect(w.map((x) => x.info.reach)).toEqual([T, 2 * T]);
    const ref = model(false);
    ref.setWeights(m.getWeights());
    const full = ref.computeGradients(X2, Y, { hiddenGradNorms: true });
    const second = w[1]!;
    second.weights.forEach((g, i) => close(g.name, g.grad.data, full.grads[i]!.data));
    expect(second.dx.shape).toEqual([B, 2 * T, F]);
    close("dL/dx over both windows", second.dx.data, full.inputGrad.data);
    close("dL/d(h0)", second.states[0]!.h.data, full.stateGrads[0]!.h.data);
    close("‖dL/dh_t‖ over both windows", second.info.hiddenGradNorms[0]!, full.hiddenGradNorms![0]!);
    // Study: the cut. The same window with k2 = k1 sees nothing of window 1; here its steps carry gradient.
    expect(second.info.hiddenGradNorms[0]!.slice(0, T).every((v) => v > 0)).toBe(true);
  });

  it("k2 < k1: the cut falls inside the window", () => {
    const m = model(false), w = windows(T, 3, m);
    expect(w.map((x) => x.info.reach)).toEqual([3, 3]);
    expect(w[0]!.dx.shape).toEqual([B, 3, F]);
    expect(w[0]!.info.hiddenGradNorms[0]!).toHaveLength(3);
  });
});
