/**
 * Forecasting a real series with a stateful LSTM: the monthly CO₂ concentration at Mauna Loa (ppm,
 * 1964-05 … 2020-04, from the vega-datasets package), one month ahead.
 *
 * A raw trending series breaks an LSTM (the test values lie above everything it was trained on), so the
 * model forecasts the month-over-month change instead, z-scored with the training months' mean and
 * spread, and the forecast adds it back to the last known value. Each step's input is that step's change
 * and the calendar month (sin and cos); the label is the next change.
 *
 * Training is stateful, batch 1: LSTM(32, returnSequences) → Dense(1), the training months cut into
 * windows of 24 fed in order with `trainOnBatch` (a label every step), the state carried from window to
 * window and reset between epochs. The last ~10% of the months (a tail) are held out. To forecast them,
 * the model reads the training months from zero state, then goes on one month at a time: each true value,
 * once known, is fed in with the carried state, and the model forecasts the next. Five models (seeds 1 … 5)
 * are trained this way and their forecasts averaged; each one's own RMSE is printed too.
 *
 * Baselines on the same tail: seasonal naive (the value 12 months earlier), last value, and seasonal naive
 * with drift (last value plus last year's change over the same month: x[t-1] + x[t-12] - x[t-13]).
 *
 *   npm run example:co2
 */
import { Sequential, LSTM, Dense, Adam } from "../src/node/index.js";
import ndarray from "ndarray";
import { pathToFileURL } from "node:url";
import { loadCo2, numberFlag } from "./data.js";

export interface Co2Options {
  /** Use only the first `months` months of the series (tests run on a short prefix). Default: all 672. */
  months?: number;
  /** Fraction of the months held out at the end. Default 0.1. */
  testFraction?: number;
  /** Default 100. */
  epochs?: number;
  /** LSTM units. Default 32. */
  units?: number;
  /** Steps per training window (one update per window). Default 24. */
  window?: number;
  /** Adam's learning rate. Default 0.003. */
  learningRate?: number;
  /** Models averaged (seeds seed, seed + 1, …). Default 5. */
  ensemble?: number;
  seed?: number;
  /** Called with a line after each model's training and forecast. */
  log?: (line: string) => void;
}

export interface Co2Result {
  months: number;
  trainMonths: number;
  testMonths: number;
  /** First and last held-out month, "YYYY-MM". */
  testRange: [string, string];
  /** RMSE in ppm over the held-out months, one step ahead. */
  rmse: { lstm: number; seasonalNaive: number; lastValue: number; seasonalDrift: number };
  /** RMSE of each model of the ensemble on its own. */
  rmseEach: number[];
  /** Mean training loss (MSE on z-scored changes) of each epoch, of the first model. */
  trainLoss: number[];
  /** The held-out months ("YYYY-MM"), their true values and the LSTM's (ensemble's) forecasts, ppm. */
  testMonthsList: string[];
  actual: number[];
  forecast: number[];
  seconds: number;
}

const FEATURES = 3; // z-scored change, sin and cos of the calendar month

function rmse(a: number[], b: number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s / a.length);
}

export async function runCo2(options: Co2Options = {}): Promise<Co2Result> {
  const start = performance.now();
  const {
    testFraction = 0.1, epochs = 100, units = 32, window = 24, learningRate = 0.003, ensemble = 5, seed = 1,
    log = () => undefined,
  } = options;
  const series = loadCo2();
  const n = Math.min(options.months ?? series.values.length, series.values.length);
  const x = series.values.slice(0, n), months = series.months.slice(0, n);
  const nTest = Math.max(1, Math.round(n * testFraction)), split = n - nTest; // x[split …] is held out
  if (split < 26 + window) throw new Error(`runCo2: ${n} months leave too few for training`);

  // Changes d[t] = x[t] - x[t-1] (t ≥ 1), z-scored with the training months' statistics.
  const d = x.map((v, t) => (t === 0 ? 0 : v - x[t - 1]!));
  const trainD = d.slice(1, split);
  const mean = trainD.reduce((a, b) => a + b, 0) / trainD.length;
  const sd = Math.sqrt(trainD.reduce((a, b) => a + (b - mean) ** 2, 0) / trainD.length);
  const month0 = Number(months[0]!.slice(5, 7)) - 1;
  /** The input of step t: the change that led to x[t], and x[t]'s calendar month. */
  const writeInput = (out: Float64Array, off: number, t: number): void => {
    const angle = (2 * Math.PI * ((month0 + t) % 12)) / 12;
    out[off] = (d[t]! - mean) / sd;
    out[off + 1] = Math.sin(angle);
    out[off + 2] = Math.cos(angle);
  };

  // Training steps t = 1 … split - 2: input at t, label the z-scored d[t + 1] (x[t + 1] still a training month).
  const steps = split - 2;
  const xs = new Float64Array(steps * FEATURES), ys = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    writeInput(xs, i * FEATURES, i + 1);
    ys[i] = (d[i + 2]! - mean) / sd;
  }
  const windows: [ndarray.NdArray<Float64Array>, ndarray.NdArray<Float64Array>][] = [];
  for (let a = 0; a < steps; a += window) {
    const b = Math.min(steps, a + window);
    windows.push([ndarray(xs.slice(a * FEATURES, b * FEATURES), [1, b - a, FEATURES]), ndarray(ys.slice(a, b), [1, b - a, 1])]);
  }

  const forecastSum = new Array<number>(nTest).fill(0);
  let trainLoss: number[] = [];
  const rmseEach: number[] = [];
  for (let k = 0; k < ensemble; k++) {
    const model = new Sequential([
      new LSTM({ units, inputDim: FEATURES, returnSequences: true, stateful: true, batchSize: 1 }),
      new Dense({ units: 1, activation: "linear" }),
    ], { seed: seed + k });
    model.compile({ optimizer: new Adam({ learningRate }), loss: "meanSquaredError" });
    const losses: number[] = [];
    for (let epoch = 0; epoch < epochs; epoch++) {
      model.resetStates();
      let sum = 0, count = 0;
      for (const [wx, wy] of windows) {
        const { loss } = model.trainOnBatch(wx, wy);
        sum += loss * wx.shape[1]!;
        count += wx.shape[1]!;
      }
      losses.push(sum / count);
    }
    if (k === 0) trainLoss = losses;

    // Forecast: read the training months (inputs at t = 1 … split - 2) from zero state, then step by step.
    model.resetStates();
    model.predict(ndarray(xs, [1, steps, FEATURES]));
    const step = ndarray(new Float64Array(FEATURES), [1, 1, FEATURES]);
    const own: number[] = [];
    for (let t = split - 1; t < n - 1; t++) {
      writeInput(step.data, 0, t); // x[t] is known now: it is a training month or an already revealed test month
      const z = model.predict(step).data[0]!;
      own.push(x[t]! + mean + sd * z); // forecast of x[t + 1]
    }
    own.forEach((v, i) => { forecastSum[i]! += v; });
    rmseEach.push(rmse(x.slice(split), own));
    log(`model ${k + 1}/${ensemble} (seed ${seed + k}): training loss ${losses[0]!.toFixed(3)} → ${losses[losses.length - 1]!.toFixed(3)} (MSE of z-scored changes), held-out RMSE ${rmseEach[k]!.toFixed(3)} ppm`);
  }
  const forecast = forecastSum.map((v) => v / ensemble);
  const actual = x.slice(split);
  const base = (f: (t: number) => number): number => rmse(actual, actual.map((_, i) => f(split + i)));
  return {
    months: n, trainMonths: split, testMonths: nTest, testRange: [months[split]!, months[n - 1]!], testMonthsList: months.slice(split),
    rmse: {
      lstm: rmse(actual, forecast),
      seasonalNaive: base((t) => x[t - 12]!),
      lastValue: base((t) => x[t - 1]!),
      seasonalDrift: base((t) => x[t - 1]! + x[t - 12]! - x[t - 13]!),
    },
    rmseEach, trainLoss, actual, forecast, seconds: (performance.now() - start) / 1000,
  };
}

/** The report main prints: the RMSE table and the last 12 held-out months. */
export function formatCo2(r: Co2Result): string {
  const out: string[] = [];
  out.push(`Mauna Loa CO₂, monthly, ${r.months} months (${r.trainMonths} for training); held out the last ${r.testMonths} (${r.testRange[0]} … ${r.testRange[1]}), forecast one month ahead.`, "");
  const each = [...r.rmseEach].sort((a, b) => a - b);
  const rows: [string, string][] = [
    [`stateful LSTM, mean of ${each.length} seed${each.length === 1 ? "" : "s"}`, r.rmse.lstm.toFixed(3).padStart(10)],
    ...(each.length > 1 ? [[`stateful LSTM, one seed (best … worst)`, `${each[0]!.toFixed(3)} … ${each[each.length - 1]!.toFixed(3)}`] as [string, string]] : []),
    ["seasonal naive: x[t-12]", r.rmse.seasonalNaive.toFixed(3).padStart(10)],
    ["last value: x[t-1]", r.rmse.lastValue.toFixed(3).padStart(10)],
    ["seasonal naive with drift: x[t-1] + x[t-12] - x[t-13]", r.rmse.seasonalDrift.toFixed(3).padStart(10)],
  ];
  const w = Math.max(...rows.map(([name]) => name.length));
  out.push(`${"forecast".padEnd(w)}  RMSE (ppm)`);
  for (const [name, cell] of rows) out.push(`${name.padEnd(w)}  ${cell}`);
  const n = r.actual.length, k = Math.min(12, n);
  out.push("", `The last ${k} held-out months (ppm):`, `month    actual  forecast`);
  for (let i = n - k; i < n; i++) out.push(`${r.testMonthsList[i]}  ${r.actual[i]!.toFixed(2).padStart(6)}  ${r.forecast[i]!.toFixed(2).padStart(8)}`);
  out.push("", `${r.seconds.toFixed(1)} s in all.`);
  return out.join("\n");
}

async function main(): Promise<void> {
  const num = (flag: string): number | undefined => numberFlag(process.argv.slice(2), flag);
  const r = await runCo2({
    epochs: num("--epochs"), ensemble: num("--ensemble"), units: num("--units"), window: num("--window"),
    learningRate: num("--lr"), seed: num("--seed"), log: console.log,
  });
  console.log(`\n${formatCo2(r)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
