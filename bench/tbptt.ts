/**
 * One truncated-BPTT window: `TruncatedBPTT.trainSequence` fed one window of k1 = T steps at a time of an
 * endless sequence (`endOfSequence: false`, so the state carries and nothing is reset), with k2 = k1 and
 * with k2 = 2·k1 (the update's gradient reaching one window further back, through kept activations).
 * LSTM(H) → Dense(1, sigmoid), BCE, Adam, at the shapes of PERFORMANCE.md. Compare with trainStep:S…:
 * with k2 = k1 the window costs what a stateful trainOnBatch step costs.
 *
 * FLOP model: a window with k2 = k1 ≈ 3 × forward = 3 · 2·B·T·(I+H)·4H; with k2 = 2·k1 the backward runs
 * over 2T steps: ≈ (1 + 2·2) × forward.
 *
 * Check before timing, on two windows with `update: false` (so the kept history is exercised): the first
 * window's gradients equal computeGradients of the same window from zero state; the second window's equal,
 * with k2 = 2·k1, computeGradients of both windows as one sequence (the loss at its end reaching back to step
 * 0), and with k2 = k1, computeGradients of the second window from the first one's final state, carried by a
 * stateful copy (the state a constant). To 1e-12.
 *
 *   npx tsx bench/tbptt.ts [S1 S2 …]      (or npm run bench -- tbptt)
 */
import { Sequential, LSTM, Dense, Adam, TruncatedBPTT, zeros, type Tensor } from "../src/index.js";
import {
  type Case, type Options, type Spec, type Result, type Shape, SHAPES, forwardFlops, shapeLabel, rng, runSpecs,
  assertClose, standalone,
} from "./harness.js";

function model(s: Shape): Sequential {
  const m = new Sequential([new LSTM({ units: s.H, inputDim: s.I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 3, backend: "js" });
  m.compile({ optimizer: new Adam({ learningRate: 1e-3 }), loss: "binaryCrossentropy" });
  return m;
}

function data(s: Shape): { x: Tensor; y: Tensor } {
  const r = rng(17);
  const x = zeros([s.B, s.T, s.I]), y = zeros([s.B, 1]);
  for (let i = 0; i < x.data.length; i++) x.data[i] = 2 * r() - 1;
  for (let b = 0; b < s.B; b++) y.data[b] = b % 2;
  return { x, y };
}

export function tbpttCase(s: Shape, reach: 1 | 2): Case {
  const m = model(s);
  const { x, y } = data(s);
  const tbptt = new TruncatedBPTT(m, { windowLength: s.T, backpropLength: reach * s.T });
  return {
    name: `tbpttWindow:${shapeLabel(s)},k2=${reach === 1 ? "k1" : "2k1"}`,
    group: "tbptt",
    flops: (1 + 2 * reach) * forwardFlops(s),
    check: () => {
      const got: Float64Array[] = [];
      const x2 = zeros([s.B, 2 * s.T, s.I]); // the window twice over: a sequence of two windows
      for (let b = 0; b < s.B; b++) {
        const row = x.data.subarray(b * s.T * s.I, (b + 1) * s.T * s.I);
        x2.data.set(row, b * 2 * s.T * s.I);
        x2.data.set(row, (b * 2 + 1) * s.T * s.I);
      }
      new TruncatedBPTT(m, { windowLength: s.T, backpropLength: reach * s.T }).trainSequence(x2, y, {
        update: false, onWindow: (w) => { got.push(Float64Array.from(w.grads)); },
      });
      const flat = (m2: Sequential, xx: Tensor) => m2.computeGradients(xx, y).grads.flatMap((g) => Array.from(g.data));
      assertClose("first window's gradients vs computeGradients", got[0]!, flat(model(s), x), 1e-12, 1e-6);
      let second: number[];
      if (reach === 2) second = flat(model(s), x2);
      else {
        const carried = new Sequential([new LSTM({ units: s.H, inputDim: s.I, stateful: true, batchSize: s.B }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 3, backend: "js" });
        carried.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
        carried.setWeights(m.getWeights());
        carried.predict(x); // the first window: its final state carries into the next call
        second = flat(carried, x);
      }
      assertClose("second window's gradients (through the kept history when k2 = 2·k1)", got[1]!, second, 1e-12, 1e-6);
    },
    run: () => { tbptt.trainSequence(x, y, { endOfSequence: false }); },
  };
}

export function tbpttSpecs(opts: Options): Spec[] {
  const shapes = SHAPES.filter((s) => (opts.quick ? s.name === "S1" : s.name !== "S4"));
  return shapes.flatMap((s) => ([1, 2] as const).map((reach) => ({
    name: `tbpttWindow:${shapeLabel(s)},k2=${reach === 1 ? "k1" : "2k1"}`,
    group: "tbptt",
    build: () => tbpttCase(s, reach),
  })));
}

export async function runTbptt(opts: Options, results: Result[]): Promise<void> {
  runSpecs(opts, "tbptt: one window of TruncatedBPTT.trainSequence, k1 = T (float64; FLOPs = (1 + 2·k2/k1) × forward)", tbpttSpecs(opts), results);
}

await standalone("tbptt", import.meta.url, runTbptt);
