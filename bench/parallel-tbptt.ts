/**
 * Both cores for truncated BPTT: one `TruncatedBPTT.trainSequence` call (a chunk of an endless sequence,
 * `endOfSequence: false`, so the state and kept history carry from call to call, as the char-LM example feeds
 * them) on one thread and on two (setThreads(model, 2): the batch rows split for the whole sequence, each window
 * one message to the worker), with the TypeScript kernels in float64 and with the SIMD backend in float32.
 *
 * - charLM: the char-LM example's model and settings (examples/char-lm.ts): B = 16 streams, one-hot input of the
 *   names' V = 28 characters, LSTM(128, returnSequences) → Dense(28, softmax), sparse categorical cross-entropy,
 *   Adam, TruncatedBPTT(k1 16, k2 32), chunks of 128 steps (8 windows a call). The example runs float32 on the
 *   default (SIMD) backend: `charLM,wasm,float32`.
 * - S3: B 64, I 64, H 128 (PERFORMANCE.md's S3) as LSTM(128) → Dense(1, sigmoid), BCE on per-sequence labels,
 *   Adam, TruncatedBPTT(k1 10, k2 10) (S3's T = 50 cut into five windows), chunks of 50 steps (5 windows a call).
 *
 * FLOP model (as every bench here): a window = forward over k1 steps + backward over k2 (twice the forward's
 * work a step): 2·B·(I+H)·4H·(k1 + 2·k2), the head, elementwise and optimizer terms ignored.
 *
 * Before timing, each case checks that two threads give one thread's losses and weights after two calls from the
 * same start (relative to the tensor's scale: 1e-12 in float64, 1e-4 in float32, where the slices' gradients are
 * summed in another order and Adam's g/√v magnifies that for entries near zero), and that every window ran split.
 * Then the calls are timed in interleaved pairs (one thread, then two), and the speed-up is the median of the
 * pairs' ratios (see parallel.ts for why).
 *
 *   npx tsx bench/parallel-tbptt.ts              # charLM and S3, both configurations
 *   npx tsx bench/parallel-tbptt.ts charLM       # one case
 *   npm run bench -- parallel                    # within the whole run, after parallel.ts's train steps
 */
import { FMA, isMain, launch, median, relDiff } from "./harness.js";
import { Sequential, LSTM, Dense, Adam, TruncatedBPTT, zeros, setThreads, type Tensor } from "../src/node/index.js";
import type { ThreadPool } from "../src/threads/pool.js";

export interface TbpttCase {
  name: string; B: number; I: number; H: number; D: number; k1: number; k2: number; chunk: number;
  /** The char-LM's: one-hot input, per-step class labels, a softmax head. */
  lm: boolean;
  /** Timed pairs on the TypeScript kernels (three times as many on the SIMD backend). */
  iterations: number;
}

export const TBPTT_CASES: TbpttCase[] = [
  { name: "charLM", B: 16, I: 28, H: 128, D: 28, k1: 16, k2: 32, chunk: 128, lm: true, iterations: 5 },
  { name: "S3", B: 64, I: 64, H: 128, D: 1, k1: 10, k2: 10, chunk: 50, lm: false, iterations: 5 },
];

interface Config { backend: "js" | "wasm"; dtype: "float64" | "float32" }
const CONFIGS: Config[] = [{ backend: "js", dtype: "float64" }, { backend: "wasm", dtype: "float32" }];

export interface TbpttResult {
  name: string;
  windows: number;
  oneThreadMs: number;
  twoThreadMs: number;
  speedup: number;
  maxRelDiff: number;
}

function windowFlops(c: TbpttCase): number {
  return 2 * c.B * (c.I + c.H) * 4 * c.H * (c.k1 + 2 * c.k2);
}

function model(c: TbpttCase, threads: number, cfg: Config): Sequential {
  const layers = c.lm
    ? [new LSTM({ units: c.H, inputDim: c.I, returnSequences: true }), new Dense({ units: c.D, activation: "softmax" })]
    : [new LSTM({ units: c.H, inputDim: c.I }), new Dense({ units: 1, activation: "sigmoid" })];
  const m = new Sequential(layers, { seed: 7, ...cfg, ...(FMA && cfg.backend === "wasm" ? { fma: true } : {}) });
  if (m.backend !== cfg.backend) throw new Error(`parallelTbptt:${c.name}: backend ${cfg.backend} is not available here`);
  setThreads(m, threads, { minFlops: 0 }); // the two-thread model splits whatever the default threshold would say
  m.compile({ optimizer: new Adam({ learningRate: 1e-3 }), loss: c.lm ? "sparseCategoricalCrossentropy" : "binaryCrossentropy" });
  return m;
}

/** A chunk: x [B, chunk, I] (one-hot characters for the LM, uniform in [-1, 1) otherwise) and its labels. */
function data(c: TbpttCase, dtype: Config["dtype"], seed: number): { x: Tensor; y: Tensor } {
  let s = seed;
  const next = (): number => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
  const x = zeros([c.B, c.chunk, c.I], dtype);
  if (!c.lm) {
    for (let i = 0; i < x.data.length; i++) x.data[i] = 2 * next() - 1;
    const y = zeros([c.B, 1], dtype);
    for (let b = 0; b < c.B; b++) y.data[b] = next() < 0.5 ? 0 : 1;
    return { x, y };
  }
  const y = zeros([c.B, c.chunk], dtype);
  for (let b = 0; b < c.B; b++) {
    let code = Math.floor(next() * c.I);
    for (let t = 0; t < c.chunk; t++) {
      x.data[(b * c.chunk + t) * c.I + code] = 1;
      code = Math.floor(next() * c.I);
      y.data[b * c.chunk + t] = code; // the next character
    }
  }
  return { x, y };
}

export function caseName(c: TbpttCase, cfg: Config): string {
  return cfg.backend === "js" ? c.name : `${c.name},${cfg.backend},${cfg.dtype}`;
}

export function runTbpttCase(c: TbpttCase, cfg: Config): TbpttResult {
  const name = caseName(c, cfg);
  const one = model(c, 1, cfg), two = model(c, 2, cfg);
  const t1 = new TruncatedBPTT(one, { windowLength: c.k1, backpropLength: c.k2 });
  const t2 = new TruncatedBPTT(two, { windowLength: c.k1, backpropLength: c.k2 });
  const chunks = [data(c, cfg.dtype, 12345), data(c, cfg.dtype, 777)];
  // Check first (this also starts the worker and warms both up): two calls of the same sequence, the second
  // training on the kept history and carried state the first left in each slice.
  let worst = 0;
  for (const { x, y } of chunks) {
    const a = t1.trainSequence(x, y, { endOfSequence: false }), b = t2.trainSequence(x, y, { endOfSequence: false });
    a.losses.forEach((l, i) => { worst = Math.max(worst, relDiff(l, b.losses[i]!)); });
  }
  const w1 = one.getWeights(), w2 = two.getWeights();
  w1.forEach((w, i) => {
    let scale = 0;
    for (const v of w.data) scale = Math.max(scale, Math.abs(v));
    w.data.forEach((v, k) => { worst = Math.max(worst, Math.abs(v - w2[i]!.data[k]!) / scale); });
  });
  const tol = cfg.dtype === "float32" ? 1e-4 : 1e-12;
  if (!(worst <= tol)) throw new Error(`parallelTbptt:${name}: two threads differ from one by ${worst} (relative)`);
  const pool = two.engine.executor as ThreadPool;
  const windows = Math.ceil(c.chunk / c.k1);
  if (pool.parallelWindows !== 2 * windows) throw new Error(`parallelTbptt:${name}: ${pool.parallelWindows} of ${2 * windows} windows ran on two threads`);
  if (cfg.backend === "wasm" && pool.simdWorkers !== 1) throw new Error(`parallelTbptt:${name}: the worker does not compute in SIMD`);
  // Warm-up (a new worker's WebAssembly moves from V8's baseline compiler to the optimising one as it runs).
  for (let i = 0; i < 2; i++) {
    const { x, y } = chunks[i % 2]!;
    t1.trainSequence(x, y, { endOfSequence: false });
    t2.trainSequence(x, y, { endOfSequence: false });
  }
  const ms1: number[] = [], ms2: number[] = [], ratios: number[] = [];
  const iterations = cfg.backend === "wasm" ? 3 * c.iterations : c.iterations;
  for (let i = 0; i < iterations; i++) {
    const { x, y } = chunks[i % 2]!;
    let t = performance.now();
    t1.trainSequence(x, y, { endOfSequence: false });
    ms1.push(performance.now() - t);
    t = performance.now();
    t2.trainSequence(x, y, { endOfSequence: false });
    ms2.push(performance.now() - t);
    ratios.push(ms1[i]! / ms2[i]!);
  }
  two.dispose();
  return { name, windows, oneThreadMs: median(ms1), twoThreadMs: median(ms2), speedup: median(ratios), maxRelDiff: worst };
}

export function main(names: string[] = []): TbpttResult[] {
  console.log("TruncatedBPTT.trainSequence, one chunk (endOfSequence: false); FLOP model: a window = 2·B·(I+H)·4H·(k1 + 2·k2)");
  const out: TbpttResult[] = [];
  for (const c of TBPTT_CASES) for (const cfg of CONFIGS) {
    if (names.length && !names.some((n) => c.name === n || caseName(c, cfg) === n)) continue;
    const r = runTbpttCase(c, cfg);
    out.push(r);
    const f = windowFlops(c) * r.windows, label = `parallelTbptt:${r.name} B=${c.B},I=${c.I},H=${c.H},k1=${c.k1},k2=${c.k2},chunk=${c.chunk}`;
    console.log(
      `${label.padEnd(72)} 1 thread ${r.oneThreadMs.toFixed(1)} ms (${(f / r.oneThreadMs / 1e6).toFixed(2)} GFLOP/s, ${(r.oneThreadMs / r.windows).toFixed(2)} ms a window)   ` +
      `2 threads ${r.twoThreadMs.toFixed(1)} ms (${(r.twoThreadMs / r.windows).toFixed(2)} ms a window)   speed-up ${r.speedup.toFixed(2)}×   ` +
      `max rel diff ${r.maxRelDiff.toExponential(1)}   (medians of ${cfg.backend === "wasm" ? 3 * c.iterations : c.iterations} pairs)`,
    );
  }
  return out;
}

if (isMain("parallel-tbptt")) await launch(import.meta.url, async (opts) => { main(opts.filters); });
