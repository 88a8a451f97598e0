/**
 * The GRU's training step against the LSTM's, per FLOP: Sequential.trainOnBatch on GRU(H) → Dense(1, sigmoid) and on
 * LSTM(H) → Dense(1, sigmoid), BCE and Adam, at S2, S3 and S4 (bench/harness.ts's SHAPES), float32 and float64 on
 * the default (SIMD) backend.
 *
 * FLOP model: a recurrent layer's forward is 2·B·T·(I + H)·G multiply-adds with G = 4H gate columns for the LSTM and
 * 3H for the GRU, and the step ≈ 3 × forward (the elementwise gate math and the head ignored, as bench/harness.ts's
 * FLOP_MODEL). So the GRU does 3/4 of the LSTM's FLOPs, and "per FLOP" is (t_GRU / t_LSTM) · 4/3: 1.00 means as
 * fast per FLOP; the target (issue 25) is ≤ 1.1.
 *
 * Measured in paired rounds: each round times a few steps of each model in turn (which goes first alternates), and
 * the ratio is taken per round, medians over the rounds: robust to a shared machine's slow spells.
 * Check before timing: both losses finite, and the GRU's dL/d(recurrent kernel) at one entry against a central
 * difference of testOnBatch's loss (float64).
 *
 *   npx tsx bench/gru.ts         (or npm run bench -- gru)
 */
import { Sequential, GRU, LSTM, Dense, Adam, tensor, type DType } from "../src/index.js";
import { type Options, type Result, type Shape, SHAPES, randomBatch, standalone, defaultBackend, formatTime, median, suiteSelected } from "./harness.js";

function model(kind: "gru" | "lstm", s: Shape, dtype: DType): { m: Sequential; x: ReturnType<typeof tensor>; y: ReturnType<typeof tensor> } {
  const cell = kind === "gru" ? new GRU({ units: s.H, inputDim: s.I }) : new LSTM({ units: s.H, inputDim: s.I });
  const m = new Sequential([cell, new Dense({ units: 1, activation: "sigmoid" })], { seed: 3, dtype, backend: defaultBackend() });
  m.compile({ optimizer: new Adam({ learningRate: 1e-3 }), loss: "binaryCrossentropy" });
  const { xs, ys } = randomBatch(s, 77);
  return { m, x: tensor(xs, dtype), y: tensor(ys, dtype) };
}

function check(g: ReturnType<typeof model>, s: Shape): void {
  const { m, x, y } = g;
  const r = m.computeGradients(x, y);
  if (!Number.isFinite(r.loss)) throw new Error(`loss ${r.loss}`);
  if (m.dtype !== "float64") return;
  const G = 3 * s.H, k = s.I * G + 5, w = m.engine.params[k]!, eps = 1e-5;
  m.engine.params[k] = w + eps; const up = m.testOnBatch(x, y).loss;
  m.engine.params[k] = w - eps; const down = m.testOnBatch(x, y).loss;
  m.engine.params[k] = w;
  const fd = (up - down) / (2 * eps), an = r.grads[1]!.data[5]!;
  if (!(Math.abs(fd - an) <= 1e-6 * Math.abs(fd) + 1e-9)) throw new Error(`GRU dL/dU[0][5] = ${an} vs central difference ${fd}`);
}

function time(m: Sequential, x: ReturnType<typeof tensor>, y: ReturnType<typeof tensor>, reps: number): number {
  const t0 = performance.now();
  for (let k = 0; k < reps; k++) m.trainOnBatch(x, y);
  return (performance.now() - t0) / reps;
}

export async function runGru(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  if (!suiteSelected(opts, "gru")) return {};
  const shapes = SHAPES.filter((s) => (opts.quick ? s.name === "S2" : s.name >= "S2"));
  console.log(`\n## gru: GRU(H) vs LSTM(H) → Dense(1), trainOnBatch, backend ${defaultBackend()}; per FLOP = (t_GRU / t_LSTM) · 4/3 (target ≤ 1.1)`);
  const out: Record<string, unknown> = {};
  for (const dtype of ["float32", "float64"] as DType[]) {
    for (const s of shapes) {
      const g = model("gru", s, dtype), l = model("lstm", s, dtype);
      check(g, s);
      if (!Number.isFinite(l.m.computeGradients(l.x, l.y).loss)) throw new Error("LSTM loss not finite");
      const reps = s.name === "S2" ? 4 : 1, rounds = opts.quick ? 3 : s.name === "S4" ? 7 : s.name === "S3" ? 11 : 15;
      time(g.m, g.x, g.y, reps); time(l.m, l.x, l.y, reps); // warm-up
      const tg: number[] = [], tl: number[] = [], ratio: number[] = [];
      for (let r = 0; r < rounds; r++) {
        let a: number, b: number;
        if (r % 2 === 0) { a = time(g.m, g.x, g.y, reps); b = time(l.m, l.x, l.y, reps); } else { b = time(l.m, l.x, l.y, reps); a = time(g.m, g.x, g.y, reps); }
        tg.push(a); tl.push(b); ratio.push((a / b) * (4 / 3));
      }
      const name = `${s.name} B=${s.B} T=${s.T} I=${s.I} H=${s.H} ${dtype}`;
      const perFlop = median(ratio);
      console.log(`${name}: GRU ${formatTime(median(tg))}, LSTM ${formatTime(median(tl))} (medians of ${rounds} paired rounds); GRU per FLOP ${perFlop.toFixed(2)}× the LSTM's`);
      results.push({ name: `gruStep:${name}`, group: "gru", medianMs: median(tg), meanMs: tg.reduce((p, q) => p + q, 0) / rounds, rmePercent: 0, samples: rounds, opsPerSample: reps });
      out[name] = { gruMs: median(tg), lstmMs: median(tl), perFlop };
    }
  }
  return { gru: out };
}

await standalone("gru", import.meta.url, runGru);
