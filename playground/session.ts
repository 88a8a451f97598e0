/**
 * One training run of the first-element task (the Keras stateful-LSTM tutorial, as examples/first-element.ts),
 * epoch by epoch, with what the playground plots: train/test loss and accuracy, ‖dL/dh_t‖ over the 20 steps
 * of a fixed probe batch, and the cell state c_t of one sequence. Pure: no DOM, no Node; the page's worker,
 * the page itself (when no worker can start) and `npm run demo -- --plot DIR` all run this.
 *
 * Modes:
 * - "full":     stateless LSTM on the whole 20-step sequences (sees the first value: ~100%);
 * - "split":    stateless LSTM on windows of 10, every window a separate sample labelled with the first
 *               value (the second window never sees it: ~75%);
 * - "stateful": stateful LSTM, the two windows of a sequence in order, state carried, reset per sequence (~100%);
 * - "tbptt":    TruncatedBPTT(k1, k2) on the unsplit sequences (k1 = k2 = 10 is the stateful computation).
 */
import {
  Sequential, LSTM, Dense, Adam, TruncatedBPTT, randomUniform, tensor, type Tensor,
} from "../src/index.js";

export type Mode = "full" | "split" | "stateful" | "tbptt";
export const MODES: readonly Mode[] = ["full", "split", "stateful", "tbptt"];
export const MODE_LABELS: Record<Mode, string> = {
  full: "stateless, full 20-step sequences",
  split: "stateless, split windows of 10",
  stateful: "stateful, windows of 10 carried",
  tbptt: "TruncatedBPTT(k1, k2), unsplit sequences",
};

/** Steps per sequence and the split window, as the Keras tutorial. */
export const T = 20, WINDOW = 10;

export interface Settings {
  mode: Mode;
  units: number;
  learningRate: number;
  seed: number;
  epochs: number;
  /** TruncatedBPTT window k1 and backprop reach k2 (mode "tbptt" only). */
  k1: number;
  k2: number;
  batchSize: number;
  nTrain: number;
  nTest: number;
}

export const DEFAULTS: Settings = {
  mode: "stateful", units: 10, learningRate: 0.005, seed: 1, epochs: 8, k1: 10, k2: 10, batchSize: 10, nTrain: 300, nTest: 200,
};

export interface EpochReport {
  epoch: number;
  loss: number;
  accuracy: number;
  testLoss: number;
  testAccuracy: number;
  /** ‖dL/dh_t‖ over the probe batch for t = 0 … T-1 (0 where no gradient reached). */
  gradNorms: number[];
  /** c_t of one test sequence that starts with 1: [T][units]. */
  cell: number[][];
  seconds: number;
}

export interface RunHooks {
  onEpoch?(report: EpochReport): void | Promise<void>;
  /** Checked between batches; true stops the run after the current batch (the epoch is not reported). */
  shouldStop?(): boolean;
  /** Awaited every few batches, so a worker or page can take messages (e.g. "stop"). */
  pause?(): Promise<void>;
}

export interface RunResult {
  settings: Settings;
  reports: EpochReport[];
  stopped: boolean;
  model: Sequential;
}

/** Checked, completed settings: a ValueError-like Error naming the field otherwise. */
export function checkSettings(s: Partial<Settings>): Settings {
  const out = { ...DEFAULTS, ...s };
  if (!MODES.includes(out.mode)) throw new Error(`mode: expected one of ${MODES.join(", ")}, got ${String(out.mode)}`);
  const ints: [keyof Settings, number, number][] = [
    ["units", 1, 128], ["seed", 0, 2 ** 31], ["epochs", 1, 200], ["k1", 1, T], ["k2", 1, T], ["batchSize", 1, 1000], ["nTrain", 2, 5000], ["nTest", 2, 2000],
  ];
  for (const [k, lo, hi] of ints) {
    const v = out[k] as number;
    if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`${k}: expected an integer in [${lo}, ${hi}], got ${String(v)}`);
  }
  if (!(out.learningRate > 0 && out.learningRate <= 1)) throw new Error(`learningRate: expected a number in (0, 1], got ${String(out.learningRate)}`);
  if (out.nTrain % 2 || out.nTest % 2) throw new Error("nTrain and nTest must be even (half the sequences start with 1)");
  return out;
}

/** n sequences of T steps: zeros except x[i][0] = 1 for exactly half of them (seeded); label = x[i][0]. */
export function makeData(n: number, seed: string): { first: number[] } {
  const u = randomUniform([n], { seed }).data;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => u[a]! - u[b]! || a - b);
  const first = new Array<number>(n).fill(0);
  for (let k = 0; k < n / 2; k++) first[order[k]!] = 1;
  return { first };
}

/** Nested x [rows, steps, 1] for sequences `idx`, steps [from, from + steps). */
const xRows = (first: number[], idx: number[], from: number, steps: number): number[][][] =>
  idx.map((i) => Array.from({ length: steps }, (_, t) => [from + t === 0 ? first[i]! : 0]));
const xOf = (first: number[], idx: number[], from: number, steps: number): Tensor => tensor(xRows(first, idx, from, steps));
const yOf = (first: number[], idx: number[]): Tensor => tensor(idx.map((i) => [first[i]!]));
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** The model of a run: LSTM(units) → Dense(1, sigmoid), binary cross-entropy, Adam(lr). */
export function makeModel(s: Settings, stateful = false, batchSize?: number): Sequential {
  const m = new Sequential([
    new LSTM({ units: s.units, inputDim: 1, stateful, batchSize: stateful ? batchSize : undefined }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed: s.seed });
  m.compile({ optimizer: new Adam({ learningRate: s.learningRate }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  return m;
}

/** A stateful copy of `m`'s weights with a fixed batch size, for carrying state across windows. */
function statefulCopy(s: Settings, m: Sequential, batchSize: number): Sequential {
  const c = makeModel(s, true, batchSize);
  c.setWeights(m.getWeights());
  return c;
}

/**
 * Test loss and accuracy as the mode sees the test set: "full" on whole sequences, "split" on every window
 * separately (a fresh state per window), "stateful"/"tbptt" on every window with the state carried from the
 * first window of a sequence to its second. Split modes average over both windows, as the demo.
 */
export function evaluate(s: Settings, m: Sequential, first: number[]): { loss: number; accuracy: number } {
  const idx = range(0, first.length), y = yOf(first, idx);
  if (s.mode === "full") {
    const r = m.evaluate(xOf(first, idx, 0, T), y);
    return { loss: r.loss, accuracy: r.accuracy! };
  }
  if (s.mode === "split") {
    const a = m.testOnBatch(xOf(first, idx, 0, WINDOW), y), b = m.testOnBatch(xOf(first, idx, WINDOW, WINDOW), y);
    return { loss: (a.loss + b.loss) / 2, accuracy: (a.accuracy! + b.accuracy!) / 2 };
  }
  const c = statefulCopy(s, m, idx.length);
  c.resetStates();
  const a = c.testOnBatch(xOf(first, idx, 0, WINDOW), y), b = c.testOnBatch(xOf(first, idx, WINDOW, WINDOW), y);
  return { loss: (a.loss + b.loss) / 2, accuracy: (a.accuracy! + b.accuracy!) / 2 };
}

/**
 * ‖dL/dh_t‖ for t = 0 … T-1 on a probe batch, as the mode trains: one backward pass over the whole sequence
 * ("full"), one per window from a fresh state ("split"), one per window with the state carried ("stateful"),
 * or the TruncatedBPTT windows' own norms ("tbptt", from `onWindow`: steps before the k2 cut stay 0). Where
 * two windows reach the same step (k2 > k1), their norms add.
 */
export function gradientNorms(s: Settings, m: Sequential, first: number[], idx: number[]): number[] {
  const y = yOf(first, idx), out = new Array<number>(T).fill(0);
  if (s.mode === "full") return m.computeGradients(xOf(first, idx, 0, T), y, { hiddenGradNorms: true }).hiddenGradNorms![0]!.slice();
  if (s.mode === "split" || s.mode === "stateful") {
    const c = s.mode === "stateful" ? statefulCopy(s, m, idx.length) : m;
    if (s.mode === "stateful") c.resetStates();
    for (let w = 0; w < T / WINDOW; w++) {
      const g = c.computeGradients(xOf(first, idx, w * WINDOW, WINDOW), y, { hiddenGradNorms: true }).hiddenGradNorms![0]!;
      g.forEach((v, t) => { out[w * WINDOW + t] = v; });
    }
    return out;
  }
  let start = 0;
  new TruncatedBPTT(m, { windowLength: s.k1, backpropLength: s.k2 }).trainSequence(xOf(first, idx, 0, T), y, {
    update: false,
    onWindow(info) {
      const from = start + info.steps - info.reach;
      info.hiddenGradNorms[0]!.forEach((v, k) => { out[from + k]! += v; });
      start += info.steps;
    },
  });
  return out;
}

/** c_t, t = 0 … T-1, of one sequence stepped through a stateful batch-1 copy (reset at t = 10 in "split"). */
export function cellStates(s: Settings, m: Sequential, value = 1): number[][] {
  const c = statefulCopy(s, m, 1), out: number[][] = [];
  c.resetStates();
  for (let t = 0; t < T; t++) {
    if (s.mode === "split" && t % WINDOW === 0) c.resetStates();
    c.predict(tensor([[[t === 0 ? value : 0]]]));
    out.push(Array.from(c.getStates()[0]!.c!.data));
  }
  return out;
}

/** Trains one run; reports every epoch. The data depend on the seed only, the weights on the seed too. */
export async function runSession(settings: Partial<Settings>, hooks: RunHooks = {}, model?: Sequential): Promise<RunResult> {
  const s = checkSettings(settings);
  const train = makeData(s.nTrain, `train/${s.seed}`).first, test = makeData(s.nTest, `test/${s.seed}`).first;
  const bs = Math.min(s.batchSize, s.nTrain);
  const groups = Math.floor(s.nTrain / bs);
  const probe = range(0, Math.min(32, s.nTest));
  // "stateful" trains a stateful model of batch bs: row r of window 2 continues row r of window 1.
  const m = model ?? makeModel(s, s.mode === "stateful", bs);
  const tbptt = s.mode === "tbptt" ? new TruncatedBPTT(m, { windowLength: s.k1, backpropLength: s.k2 }) : null;
  const order = range(0, s.nTrain);
  const reports: EpochReport[] = [];
  let stopped = false;
  for (let epoch = 0; epoch < s.epochs && !stopped; epoch++) {
    const t0 = performance.now();
    // A seeded shuffle of the sequences per epoch (whole sequences: windows of one stay together).
    const u = randomUniform([s.nTrain], { seed: `shuffle/${s.seed}/${epoch}` }).data;
    order.sort((a, b) => u[a]! - u[b]! || a - b);
    let loss = 0, acc = 0, count = 0;
    for (let g = 0; g < groups; g++) {
      if (hooks.shouldStop?.()) { stopped = true; break; }
      if (hooks.pause && g % 5 === 0) await hooks.pause();
      const idx = order.slice(g * bs, (g + 1) * bs), y = yOf(train, idx);
      const add = (r: { loss: number; accuracy?: number }): void => { loss += r.loss; acc += r.accuracy ?? 0; count++; };
      if (s.mode === "full") add(m.trainOnBatch(xOf(train, idx, 0, T), y));
      else if (s.mode === "split") {
        // Both windows of the batch's sequences as 2·bs independent samples.
        add(m.trainOnBatch(tensor([...xRows(train, idx, 0, WINDOW), ...xRows(train, idx, WINDOW, WINDOW)]), yOf(train, [...idx, ...idx])));
      } else if (s.mode === "stateful") {
        m.resetStates();
        for (let w = 0; w < T / WINDOW; w++) add(m.trainOnBatch(xOf(train, idx, w * WINDOW, WINDOW), y));
      } else {
        const r = tbptt!.trainSequence(xOf(train, idx, 0, T), y);
        add({ loss: r.loss, accuracy: r.accuracy });
      }
    }
    if (stopped) break;
    const ev = evaluate(s, m, test);
    const report: EpochReport = {
      epoch, loss: loss / count, accuracy: acc / count, testLoss: ev.loss, testAccuracy: ev.accuracy,
      gradNorms: gradientNorms(s, m, test, probe), cell: cellStates(s, m), seconds: (performance.now() - t0) / 1000,
    };
    reports.push(report);
    await hooks.onEpoch?.(report);
  }
  return { settings: s, reports, stopped, model: m };
}
