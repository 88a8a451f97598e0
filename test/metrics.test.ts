/**
 * Keras's error metrics, `metrics: ["mae", "mse"]`: the mean absolute and mean squared error of the output against
 * the labels, over the elements the loss counts, reported by trainOnBatch (before the update, as the loss), testOnBatch,
 * evaluate, fit's History and logs, held here to the same means computed from predict's outputs by hand.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, LSTM, Dense, Masking, Adam, earlyStopping, checkpointToJSON, checkpointFromJSON, randomNormal, setThreads, type Tensor,
} from "../src/node/index.js";

const x = randomNormal([6, 4, 2], { seed: 3 }), y = randomNormal([6, 2], { seed: 4 });
const model = (metrics: string[], loss = "meanSquaredError") => {
  const m = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 2 })], { seed: 8 });
  m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: loss as "meanSquaredError", metrics: metrics as ["mae"] });
  return m;
};
const byHand = (p: Tensor, t: Tensor) => {
  let a = 0, s = 0;
  for (let k = 0; k < p.data.length; k++) { const d = p.data[k]! - t.data[k]!; a += Math.abs(d); s += d * d; }
  return { mae: a / p.data.length, mse: s / p.data.length };
};

describe("metrics: mae and mse", () => {
  it("trainOnBatch (before its update), testOnBatch and evaluate report them; mse equals the MSE loss", () => {
    const m = model(["mae", "mse"]);
    const want = byHand(m.predict(x), y);
    const r = m.trainOnBatch(x, y);
    expect(r.mae).toBeCloseTo(want.mae, 14);
    expect(r.mse).toBeCloseTo(want.mse, 14);
    expect(r.mse).toBeCloseTo(r.loss, 15);
    const after = byHand(m.predict(x), y);
    const t = m.testOnBatch(x, y);
    expect([t.mae, t.mse]).toEqual([expect.closeTo(after.mae, 14), expect.closeTo(after.mse, 14)]);
    const ev = m.evaluate(x, y, { batchSize: 4 }); // batches of 4 and 2, weighted by their sizes
    expect(ev.mae).toBeCloseTo(after.mae, 14);
    expect(ev.mse).toBeCloseTo(after.mse, 14);
    expect(model([]).testOnBatch(x, y)).not.toHaveProperty("mae");
    expect(model(["mse"]).testOnBatch(x, y)).not.toHaveProperty("mae");
  });

  it("a masked per-step head: over the kept steps only, as the loss", () => {
    const m = new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 3, inputDim: 1, returnSequences: true }), new Dense({ units: 1 })], { seed: 2 });
    m.compile({ loss: "mae", metrics: ["mae", "mse"] });
    const xs = ndarray(Float64Array.from([1, 2, 0, 0, 3, 0.5, 1, 0]), [2, 4, 1]) as unknown as Tensor;
    const ys = ndarray(Float64Array.from([1, -1, 9, 9, 0.5, 2, -2, 9]), [2, 4, 1]) as unknown as Tensor; // 9s sit under masked steps
    const p = m.predict(xs);
    let a = 0, s = 0, n = 0;
    for (let k = 0; k < 8; k++) if (xs.data[k] !== 0) { const d = p.data[k]! - ys.data[k]!; a += Math.abs(d); s += d * d; n++; }
    const r = m.testOnBatch(xs, ys);
    expect(r.mae).toBeCloseTo(a / n, 14);
    expect(r.mse).toBeCloseTo(s / n, 14);
    expect(r.loss).toBeCloseTo(a / n, 14); // the MAE loss counts the same elements
  });

  it("fit's History and logs carry them (and their validation values); earlyStopping can monitor them", async () => {
    const m = model(["mae", "accuracy"]);
    const lines: string[] = [];
    const stop = earlyStopping({ monitor: "valMae", patience: 50 });
    const h = await m.fit(x, y, { epochs: 3, batchSize: 3, validationData: [x, y], verbose: 1, log: (l: string) => lines.push(l), callbacks: [stop] } as never);
    expect(h.history.mae).toHaveLength(3);
    expect(h.history.valMae).toHaveLength(3);
    expect(h.history.mse).toBeUndefined();
    expect(h.history.valMae![2]).toBeCloseTo(m.evaluate(x, y).mae!, 14);
    expect(lines.join("\n")).toMatch(/mae: \d\.\d{4}.*valMae: \d\.\d{4}/);
  });

  it("names: Keras's long names, no repeats, not with sparse labels; checkpoints keep them", () => {
    expect(model(["mean_absolute_error", "mean_squared_error", "accuracy"]).metrics).toEqual(["mae", "mse", "accuracy"]);
    expect(() => model(["mae", "mean_absolute_error"])).toThrow(/compile metrics\[1\]: "mae" is given twice/);
    expect(() => model(["rmse"])).toThrow(/compile metrics\[0\]: expected one of "accuracy", "mae", "mse" \(or "mean_absolute_error", "mean_squared_error"\), got "rmse"/);
    expect(() => model("mae" as never)).toThrow(/compile metrics: expected an array/);
    const c = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 3, activation: "softmax" })]);
    expect(() => c.compile({ loss: "sparseCategoricalCrossentropy", metrics: ["mse"] })).toThrow(/compile metrics\[0\]: mse compares the output with labels of its shape/);
    const m = model(["mse", "mae"]);
    expect(checkpointFromJSON(JSON.parse(JSON.stringify(checkpointToJSON(m)))).metrics).toEqual(["mse", "mae"]);
  });

  it("split across 2 and 3 threads (each slice's means weighed as its loss): one thread's results, masked per-step rows too", () => {
    const masked = () => {
      const m = new Sequential([new Masking({ maskValue: 0 }), new LSTM({ units: 3, inputDim: 2, returnSequences: true }), new Dense({ units: 2 })], { seed: 6 });
      m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "huber", metrics: ["mse", "mae", "accuracy"] });
      return m;
    };
    // Rows 3–5 end-padded by different amounts, so the slices keep different numbers of steps.
    const xm = randomNormal([6, 4, 2], { seed: 9 }), ym = randomNormal([6, 4, 2], { seed: 10 });
    for (const [b, from] of [[3, 1], [4, 2], [5, 3]] as const) for (let t = from; t < 4; t++) { xm.data[(b * 4 + t) * 2] = 0; xm.data[(b * 4 + t) * 2 + 1] = 0; }
    for (const [make, xs, ys] of [[() => model(["mae", "mse"]), x, y], [masked, xm, ym]] as const) {
      for (const threads of [2, 3]) {
        const one = make(), many = make();
        setThreads(many, threads, { minFlops: 0 });
        try {
          const close = (what: string, a: number | undefined, b: number | undefined) => {
            expect(b, what).toBeDefined();
            expect(Math.abs(b! - a!), what).toBeLessThanOrEqual(1e-12 * Math.abs(a!));
          };
          for (let s = 0; s < 3; s++) {
            const a = one.trainOnBatch(xs, ys), b = many.trainOnBatch(xs, ys);
            for (const k of ["loss", "mae", "mse"] as const) close(`step ${s} ${k}`, a[k], b[k]);
          }
          const a = one.evaluate(xs, ys), b = many.evaluate(xs, ys);
          close("evaluate mae", a.mae, b.mae);
          close("evaluate mse", a.mse, b.mse);
          expect((many.engine.executor as unknown as { parallelCalls: number }).parallelCalls).toBe(4);
        } finally {
          many.dispose();
        }
      }
    }
  });
});
