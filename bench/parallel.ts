/**
 * Both cores: one training step (forward over T, backward through all T, one Adam update) of
 * LSTM(H) → Dense(1, sigmoid) on the last step, binary cross-entropy, on one thread and on two
 * (setThreads(model, 2): half the batch here, half in a worker thread), with the TypeScript kernels in
 * float64 (the defaults) and with the SIMD backend in float32 (`parallel:S3,wasm,float32`).
 *
 * FLOP model (as every bench here): forward = 2·B·T·(I+H)·4H, a training step ≈ 3 × forward
 * (elementwise, head and optimizer terms ignored). Times are medians; the one- and two-thread steps are
 * interleaved so that noise from other work on the machine hits both alike, and the speed-up is the median of
 * each pair's ratio (one step on one thread over the next on two): this machine has slow spells of seconds,
 * which a ratio of the two medians took in whenever it caught one side's steps more than the other's (S3 on the
 * SIMD backend read 1.37× in a run whose PyTorch peer suite, timing each side in its own processes, had one thread
 * at 38.5–48.5 ms and two at 20.7–23.7). The SIMD cases time three times as many pairs as the TypeScript ones,
 * which take up to 5 s a pair.
 *
 * Before timing, each shape checks that the two-thread step gives the one-thread step's loss and
 * weights (relative difference ≤ 1e-12) from the same start.
 *
 * Two more cases at S3 time the roads that used to stay on one thread: `S3,masked` (a Masking layer first, each row
 * padded at the end to T from a length in [T/2, T], so the pool weighs its slices by their kept steps) and
 * `S3,dropout` (dropout 0.2 and recurrent dropout 0.2 on the LSTM: the masks drawn for the whole batch on the
 * calling thread, each worker given its rows).
 *
 *   npx tsx bench/parallel.ts              # S2, S3, S4, S3,masked, S3,dropout (re-runs itself compiled, under plain node, as every suite)
 *   npx tsx bench/parallel.ts S3           # some shapes only (S3,masked and S3,dropout by those names)
 *   npm run bench -- parallel              # the same, within the whole run
 */
import { FMA, isMain, launch, median, relDiff } from "./harness.js";
import { Sequential, LSTM, Dense, Masking, zeros, setThreads, type Tensor } from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";

/** The model's road: plain, masked (a Masking layer over end-padded rows) or dropout (on the LSTM's x and h). */
export type ParallelVariant = "plain" | "masked" | "dropout";

export interface ParallelCase { name: string; B: number; T: number; I: number; H: number; iterations: number; variant?: ParallelVariant }

export const CASES: ParallelCase[] = [
  { name: "S2", B: 32, T: 50, I: 32, H: 64, iterations: 11 },
  { name: "S3", B: 64, T: 50, I: 64, H: 128, iterations: 5 },
  { name: "S4", B: 64, T: 100, I: 128, H: 256, iterations: 2 },
  { name: "S3,masked", B: 64, T: 50, I: 64, H: 128, iterations: 5, variant: "masked" },
  { name: "S3,dropout", B: 64, T: 50, I: 64, H: 128, iterations: 5, variant: "dropout" },
];

/** The value padded steps hold (the random inputs are never exactly 0). */
const MASK_VALUE = 0;

/** The model's configuration: the default (TypeScript kernels, float64), or the fastest here (SIMD, float32). */
export interface ParallelConfig { backend: "js" | "wasm"; dtype: "float64" | "float32" }
export const CONFIGS: ParallelConfig[] = [{ backend: "js", dtype: "float64" }, { backend: "wasm", dtype: "float32" }];

export interface ParallelResult {
  name: string;
  oneThreadMs: number;
  twoThreadMs: number;
  oneThreadGflops: number;
  twoThreadGflops: number;
  speedup: number;
  maxRelDiff: number;
}

function stepFlops(c: ParallelCase): number {
  return 3 * 2 * c.B * c.T * (c.I + c.H) * 4 * c.H;
}

function model(c: ParallelCase, threads: number, cfg: ParallelConfig): Sequential {
  // minFlops 0: the two-thread model splits whatever the default threshold would say.
  const rate = c.variant === "dropout" ? 0.2 : 0;
  const layers = [new LSTM({ units: c.H, inputDim: c.I, dropout: rate, recurrentDropout: rate }), new Dense({ units: 1, activation: "sigmoid" })];
  const m = new Sequential(c.variant === "masked" ? [new Masking({ maskValue: MASK_VALUE }), ...layers] : layers, { seed: 7, ...cfg, ...(FMA && cfg.backend === "wasm" ? { fma: true } : {}) });
  if (m.backend !== cfg.backend) throw new Error(`parallel:${c.name}: backend ${cfg.backend} is not available here`);
  setThreads(m, threads, { minFlops: 0 });
  m.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
  return m;
}

function data(c: ParallelCase, dtype: "float64" | "float32"): { x: Tensor; y: Tensor } {
  const x = zeros([c.B, c.T, c.I], dtype), y = zeros([c.B, 1], dtype);
  let s = 12345;
  const next = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < x.data.length; i++) x.data[i] = 2 * next() - 1;
  for (let b = 0; b < c.B; b++) y.data[b] = next() < 0.5 ? 0 : 1;
  if (c.variant === "masked") {
    // Row b keeps its first L_b steps, L_b in [T/2, T]; the rest is padding.
    for (let b = 0; b < c.B; b++) {
      const L = Math.ceil(c.T / 2) + Math.floor(next() * (c.T - Math.ceil(c.T / 2) + 1));
      x.data.fill(MASK_VALUE, (b * c.T + L) * c.I, (b + 1) * c.T * c.I);
    }
  }
  return { x, y };
}

/** Timed pairs: the case's count, three times that on the SIMD backend. */
function iterationsOf(c: ParallelCase, cfg: ParallelConfig): number {
  return cfg.backend === "wasm" ? 3 * c.iterations : c.iterations;
}

export function caseName(c: ParallelCase, cfg: ParallelConfig): string {
  return cfg.backend === "js" ? c.name : `${c.name},${cfg.backend},${cfg.dtype}`;
}

export function runCase(c: ParallelCase, cfg: ParallelConfig = CONFIGS[0]!): ParallelResult {
  const one = model(c, 1, cfg), two = model(c, 2, cfg);
  const { x, y } = data(c, cfg.dtype);
  const name = caseName(c, cfg);
  // Check first (this step also starts the worker and warms both up): same loss, same weights after.
  const l1 = one.trainOnBatch(x, y).loss, l2 = two.trainOnBatch(x, y).loss;
  let worst = relDiff(l1, l2);
  const w1 = one.getWeights(), w2 = two.getWeights();
  w1.forEach((w, i) => {
    // Relative to the tensor's scale, so an entry near zero does not count as a large relative error.
    let scale = 0;
    for (const v of w.data) scale = Math.max(scale, Math.abs(v));
    w.data.forEach((v, k) => { worst = Math.max(worst, Math.abs(v - w2[i]!.data[k]!) / scale); });
  });
  // float32: the two halves' gradients are summed in another order, so they agree to float32 rounding, and
  // Adam's g/√v magnifies that for entries whose gradient is near zero: 1e-4 of the largest weight.
  const tol = cfg.dtype === "float32" ? 1e-4 : 1e-12;
  if (!(worst <= tol)) throw new Error(`parallel:${name}: two threads differ from one by ${worst} (relative)`);
  const pool = two.engine.executor as ThreadPool | null;
  if (pool?.parallelCalls !== 1) throw new Error(`parallel:${name}: the two-thread step did not run on two threads`);
  if (cfg.backend === "wasm" && pool.simdWorkers !== 1) throw new Error(`parallel:${name}: the worker does not compute in SIMD`);
  // Warm-up: a new worker's WebAssembly starts in V8's baseline compiler and moves to the optimising one as it
  // runs; without these steps the first timed steps of the SIMD backend's two-thread model measure that.
  for (let i = 0; i < 3; i++) { one.trainOnBatch(x, y); two.trainOnBatch(x, y); }
  const t1: number[] = [], t2: number[] = [], ratios: number[] = [];
  const iterations = iterationsOf(c, cfg);
  for (let i = 0; i < iterations; i++) {
    let t = performance.now();
    one.trainOnBatch(x, y);
    t1.push(performance.now() - t);
    t = performance.now();
    two.trainOnBatch(x, y);
    t2.push(performance.now() - t);
    ratios.push(t1[i]! / t2[i]!);
  }
  two.dispose();
  const f = stepFlops(c), m1 = median(t1), m2 = median(t2);
  return {
    name, oneThreadMs: m1, twoThreadMs: m2,
    oneThreadGflops: f / m1 / 1e6, twoThreadGflops: f / m2 / 1e6, speedup: median(ratios), maxRelDiff: worst,
  };
}

export function main(names: string[] = []): ParallelResult[] {
  console.log(
    "train step LSTM(H) → Dense(1, sigmoid), BCE, Adam (masked: Masking first, rows end-padded; dropout: 0.2 on x and h); " +
    "FLOP model: forward = 2·B·T·(I+H)·4H, step ≈ 3 × forward",
  );
  const out: ParallelResult[] = [];
  for (const c of CASES) for (const cfg of CONFIGS) {
    if (names.length && !names.includes(c.name)) continue;
    const r = runCase(c, cfg);
    out.push(r);
    const label = `parallel:${r.name} B=${c.B},T=${c.T},I=${c.I},H=${c.H}`;
    console.log(
      `${label.padEnd(52)} 1 thread ${fmtMs(r.oneThreadMs)} (${r.oneThreadGflops.toFixed(2)} GFLOP/s)   ` +
      `2 threads ${fmtMs(r.twoThreadMs)} (${r.twoThreadGflops.toFixed(2)} GFLOP/s)   speed-up ${r.speedup.toFixed(2)}×   ` +
      `max rel diff ${r.maxRelDiff.toExponential(1)}   (medians of ${iterationsOf(c, cfg)} pairs)`,
    );
  }
  return out;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

// On its own, like every suite: compiled and run under plain node (under tsx the kernels run ~15% slower).
if (isMain("parallel")) await launch(import.meta.url, async (opts) => { main(opts.filters); });
