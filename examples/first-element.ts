/**
 * The classic Keras stateful-LSTM tutorial, reproduced: sequences of 20 steps whose label is their first
 * value (half begin with 1, the rest is zeros). Cut into windows of 10, a stateless model cannot see the
 * first value from the second window (test accuracy 0.75); a stateful one, carrying (h, c) from window to
 * window, can (~1.00). Truncated BPTT(10, 10) on the unsplit sequences is the same computation as the
 * stateful loop, and gives identical weights.
 *
 *   npm run demo                 # the table, 3 seeds
 *   npm run demo -- --json       # the same as JSON
 *   npm run demo -- --seeds 1,2  # other seeds
 *   npm run demo -- --plot DIR   # instead of the table: SVG plots of a short run of each playground mode
 *                                # (loss, accuracy, ‖dL/dh_t‖ heatmap, cell state), the page's own SVG code
 */
import {
  Sequential, LSTM, Dense, Adam, TruncatedBPTT, prepareSequences, resetStatesEvery, tensor, type Tensor,
} from "../src/index.js";
import { Rng } from "../src/init.js";
import { pathToFileURL } from "node:url";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runSession, MODES, type Mode, type Settings } from "../playground/session.js";
import { runPlots } from "../playground/plots.js";

const T = 20, WINDOW = 10, UNITS = 10, N_TRAIN = 1000, N_TEST = 200;

/** x [n, 20, 1] of zeros except x[i, 0] = 1 for a random half of the rows; y [n, 1] = x[:, 0]. */
function makeData(n: number, rng: Rng): { x: Tensor; y: Tensor } {
  const ones = new Set<number>();
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [order[i], order[j]] = [order[j]!, order[i]!]; }
  for (let i = 0; i < n / 2; i++) ones.add(order[i]!);
  const x = Array.from({ length: n }, (_, i) => Array.from({ length: T }, (_, t) => [t === 0 && ones.has(i) ? 1 : 0]));
  const y = Array.from({ length: n }, (_, i) => [ones.has(i) ? 1 : 0]);
  return { x: tensor(x), y: tensor(y) };
}

function model(seed: number, opts: { stateful?: boolean; batchSize?: number; linear?: boolean } = {}): Sequential {
  const m = new Sequential([
    new LSTM({ units: UNITS, inputDim: 1, stateful: opts.stateful, batchSize: opts.batchSize }),
    new Dense({ units: 1, activation: opts.linear ? "linear" : "sigmoid" }),
  ], { seed });
  m.compile({ optimizer: new Adam(), loss: opts.linear ? "meanSquaredError" : "binaryCrossentropy", metrics: ["accuracy"] });
  return m;
}

/** Rows [a, b) of a tensor. */
function rows(t: Tensor, a: number, b: number): Tensor {
  return t.hi(b, ...t.shape.slice(1)).lo(a, ...t.shape.slice(1).map(() => 0)) as Tensor;
}

/** Accuracy over every window of the test sequences, the state carried from window to window of a sequence. */
function statefulWindowAccuracy(m: Sequential, x: Tensor, y: Tensor): number {
  const [xw] = prepareSequences(x, y, WINDOW, WINDOW);
  const perSeq = T / WINDOW;
  let hit = 0;
  for (let i = 0; i < x.shape[0]!; i++) {
    m.resetStates();
    const p = m.predict(rows(xw, i * perSeq, (i + 1) * perSeq), { batchSize: 1 });
    for (let w = 0; w < perSeq; w++) if ((p.data[w]! > 0.5 ? 1 : 0) === y.data[i]) hit++;
  }
  return hit / (x.shape[0]! * perSeq);
}

export interface Row { name: string; keras: string; accuracy: number[]; seconds: number[]; note?: string }

async function runSeed(seed: number, rowsOut: Map<string, Row>): Promise<void> {
  const rng = new Rng(`data/${seed}`);
  const train = makeData(N_TRAIN, rng), test = makeData(N_TEST, rng);
  const add = (name: string, keras: string, acc: number, t0: number, note?: string): void => {
    const r = rowsOut.get(name) ?? { name, keras, accuracy: [], seconds: [] };
    r.accuracy.push(acc);
    r.seconds.push((performance.now() - t0) / 1000);
    if (note) r.note = note;
    rowsOut.set(name, r);
  };
  let t0 = performance.now();

  // 1. Stateless on the full 20-step sequences.
  {
    const m = model(seed);
    await m.fit(train.x, train.y, { epochs: 5, batchSize: 11, verbose: 0 });
    add("stateless, full sequences (batch 11, 5 epochs)", "1.00", m.evaluate(test.x, test.y).accuracy!, t0);
  }
  // 2. Stateless on the sequences split into 2 windows of 10: the second window never sees the first value.
  t0 = performance.now();
  const [xw, yw] = prepareSequences(train.x, train.y, WINDOW, WINDOW);
  const [txw, tyw] = prepareSequences(test.x, test.y, WINDOW, WINDOW);
  {
    const m = model(seed);
    await m.fit(xw, yw, { epochs: 15, batchSize: 2, verbose: 0 });
    add("stateless, 2 windows of 10 (batch 2, 15 epochs)", "0.75", m.evaluate(txw, tyw).accuracy!, t0);
  }
  // 3. Stateless on 11 sliding windows of 10: only the first window holds the first value.
  t0 = performance.now();
  {
    const [xs, ys] = prepareSequences(train.x, train.y, WINDOW, 1);
    const [txs, tys] = prepareSequences(test.x, test.y, WINDOW, 1);
    const m = model(seed);
    await m.fit(xs, ys, { epochs: 2, batchSize: 11, verbose: 0 });
    add("stateless, 11 sliding windows of 10 (batch 11, 2 epochs)", "~0.55", m.evaluate(txs, tys).accuracy!, t0);
  }
  // 4. Stateful, batch 1: a trainOnBatch loop over the windows, resetting after each sequence's 2 windows.
  t0 = performance.now();
  const loop = model(seed, { stateful: true, batchSize: 1 });
  for (let epoch = 0; epoch < 5; epoch++) {
    for (let i = 0; i < N_TRAIN; i++) {
      loop.resetStates();
      for (let w = 0; w < 2; w++) loop.trainOnBatch(rows(xw, 2 * i + w, 2 * i + w + 1), rows(yw, 2 * i + w, 2 * i + w + 1));
    }
  }
  add("stateful, trainOnBatch loop, reset every 2 windows (batch 1, 5 epochs)", "~0.99", statefulWindowAccuracy(loop, test.x, test.y), t0);
  // 5. Stateful via fit and a reset callback.
  t0 = performance.now();
  {
    const m = model(seed, { stateful: true, batchSize: 1 });
    await m.fit(xw, yw, { epochs: 5, batchSize: 1, shuffle: false, callbacks: [resetStatesEvery(2)], verbose: 0 });
    add("stateful, fit + resetStatesEvery(2) (batch 1, 5 epochs)", "1.00", statefulWindowAccuracy(m, test.x, test.y), t0);
  }
  // 6. TruncatedBPTT(10, 10) on the unsplit sequences: the same computation as the loop in 4.
  t0 = performance.now();
  {
    const m = model(seed);
    const tbptt = new TruncatedBPTT(m, { windowLength: WINDOW });
    for (let epoch = 0; epoch < 5; epoch++) {
      for (let i = 0; i < N_TRAIN; i++) tbptt.trainSequence(rows(train.x, i, i + 1), rows(train.y, i, i + 1));
    }
    const a = m.getWeights(), b = loop.getWeights();
    let diff = 0;
    a.forEach((w, k) => w.data.forEach((v, j) => { diff = Math.max(diff, Math.abs(v - b[k]!.data[j]!)); }));
    const s = model(seed, { stateful: true, batchSize: 1 });
    s.setWeights(a);
    add("TruncatedBPTT(10, 10), unsplit sequences (5 epochs)", "= row 4", statefulWindowAccuracy(s, test.x, test.y), t0,
      `max |weight difference| from row 4: ${diff === 0 ? "0 (identical)" : diff.toExponential(2)}`);
  }
  // 7. Stateful, batch 3, MSE with a linear head, epoch by epoch with resets, then predicting at batch size 1.
  t0 = performance.now();
  {
    const m = model(seed, { stateful: true, batchSize: 3, linear: true });
    const groups = Math.floor(N_TRAIN / 3); // 333 groups of 3 sequences: row r of a batch continues row r
    for (let epoch = 0; epoch < 5; epoch++) {
      for (let g = 0; g < groups; g++) {
        m.resetStates();
        for (let w = 0; w < 2; w++) {
          const idx = [0, 1, 2].map((r) => 2 * (3 * g + r) + w);
          m.trainOnBatch(tensor(idx.map((i) => [...Array(WINDOW)].map((_, t) => [xw.get(i, t, 0)]))), tensor(idx.map((i) => [yw.get(i, 0)])));
        }
      }
    }
    m.setBatchSize(1); // same model, same weights: predict one sequence at a time
    add("stateful batch 3, MSE + linear head, then predict at batch 1 (5 epochs)", "~1.00", statefulWindowAccuracy(m, test.x, test.y), t0,
      "999 of the 1000 sequences (a multiple of 3)");
  }
}

/** Runs every case for every seed; the rows keep one accuracy per seed. */
export async function runDemo(seeds: number[]): Promise<{ rows: Row[]; totalSeconds: number }> {
  const rowsOut = new Map<string, Row>();
  const start = performance.now();
  for (const seed of seeds) await runSeed(seed, rowsOut);
  return { rows: [...rowsOut.values()], totalSeconds: (performance.now() - start) / 1000 };
}

/**
 * `--plot DIR`: a short run of each mode (the playground's defaults unless overridden) and its four plots
 * as SVG files, DIR/<mode>-{loss,accuracy,gradients,cell}.svg, drawn by the same code as the playground page.
 */
export async function writePlots(dir: string, options: { modes?: readonly Mode[]; settings?: Partial<Settings> } = {}): Promise<{ files: string[]; testAccuracy: Record<string, number> }> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [], testAccuracy: Record<string, number> = {};
  for (const mode of options.modes ?? MODES) {
    const { reports } = await runSession({ ...options.settings, mode });
    testAccuracy[mode] = reports.at(-1)!.testAccuracy;
    for (const [name, svg] of Object.entries(runPlots(reports))) {
      const file = join(dir, `${mode}-${name}.svg`);
      writeFileSync(file, `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`);
      files.push(file);
    }
  }
  return { files, testAccuracy };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const pi = args.indexOf("--plot");
  if (pi >= 0) {
    const dir = args[pi + 1];
    if (!dir || dir.startsWith("--")) throw new Error("--plot: expected a directory, e.g. --plot /tmp/plots");
    const { files, testAccuracy } = await writePlots(dir);
    for (const [mode, acc] of Object.entries(testAccuracy)) console.log(`${mode.padEnd(8)} test accuracy ${acc.toFixed(3)}`);
    console.log(`wrote ${files.length} SVG files to ${dir}`);
    return;
  }
  const json = args.includes("--json");
  const si = args.indexOf("--seeds");
  const seeds = si >= 0 ? args[si + 1]!.split(",").map(Number) : [1, 2, 3];
  if (seeds.some((s) => !Number.isFinite(s))) throw new Error(`--seeds: expected comma-separated numbers, got ${args[si + 1]}`);
  const { rows: table, totalSeconds: total } = await runDemo(seeds);
  if (json) {
    console.log(JSON.stringify({ seeds, totalSeconds: total, rows: table }, null, 2));
    return;
  }
  console.log(`The first-element task: ${N_TRAIN} training and ${N_TEST} test sequences of ${T} steps, LSTM(${UNITS}), Adam(0.001).`);
  console.log(`Test accuracy per seed (${seeds.join(", ")}), beside the Keras tutorial's figures.\n`);
  const w = Math.max(...table.map((r) => r.name.length));
  console.log(`${"case".padEnd(w)}  Keras   ${seeds.map((s) => `seed ${s}`.padStart(7)).join(" ")}    mean`);
  for (const r of table) {
    const mean = r.accuracy.reduce((a, b) => a + b, 0) / r.accuracy.length;
    console.log(`${r.name.padEnd(w)}  ${r.keras.padEnd(6)}  ${r.accuracy.map((a) => a.toFixed(3).padStart(7)).join(" ")}  ${mean.toFixed(3).padStart(6)}`);
    if (r.note) console.log(`${"".padEnd(w)}    ${r.note}`);
  }
  console.log(`\n${total.toFixed(1)} s in all.`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
