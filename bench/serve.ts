/**
 * The serving path: `Sequential.predict` against ONNX Runtime (onnxruntime-node, its CPU execution provider) running
 * longshort's own ONNX export of the same model (`toOnnx`), in the same process, the two engines' calls interleaved.
 *
 * The model per shape: LSTM(H) → Dense(1) (linear head), float32, seeded, on the SIMD backend ("wasm", `fma: true`
 * with --fma); ORT's session on `toOnnx(model)` with intraOpNumThreads 1, interOpNumThreads 1, sequential execution,
 * every graph optimisation. The shapes (B, T, I, H), as issue 26 set them:
 *
 *   S0  (1, 10, 1, 10)        the tutorial's model, one sequence
 *   B1  (1, 100, 8, 64)       one longer request
 *   S2  (32, 50, 32, 64)      a batch
 *   S4  (64, 100, 128, 256)   a large batch; also on two threads: ours with setThreads(model, 2) from
 *                             "longshort/node" against ORT with intraOpNumThreads 2
 *   stream  1000 calls of T = 1 (I 8, H 64, B 1): ours a stateful model, one step per `predict`, the state carried;
 *           ORT the graph of `toOnnx(model, { states: true })`, each call fed the state outputs of the one before
 *           (`lstm_0/h_out` → `lstm_0/h_in`, `lstm_0/c_out` → `lstm_0/c_in`; zeros to start).
 *
 * Check before timing: ours and ORT's outputs on the same input agree, max |ours − ORT| ≤ 1e-5 · max(1, max |ORT|)
 * (the stream: our outputs after steps 1, 2, 10, 100 and 1000 against ORT's stateless graph on those prefixes in one
 * call, and ORT's stream against ours at every step); a case that disagrees prints CHECK FAILED and is not timed.
 *
 * Timing: each side warmed up (300 ms and at least 3 calls: a fresh WebAssembly module runs its first calls in the
 * baseline compiler, and V8 optimises a fast call's JavaScript path only after thousands), then paired rounds, which
 * side goes first alternating. A round times as many calls of each side as fill ~50 ms of the slower one (one call at
 * S4): on a loaded machine a process waits for a core in slices of a few ms, and rounds of 5 ms caught either side
 * in a fast or a slow slice (per-round ratios scattered over 4×); 50 ms spans many slices. The ratio ours / ORT is
 * taken per round and the figures are medians over the rounds, in wall-clock time and, beside it, in the process's
 * CPU time (process.cpuUsage: every thread, so what waiting for a core adds is left out; on two threads it is both
 * threads' work, not the latency). ORT's time is `await session.run(feeds)` as a user calls it, which includes one
 * event-loop turn (onnxruntime-node runs the graph in a setImmediate callback); that turn's cost alone is printed
 * too. Both sides reuse one input tensor per case; each call allocates its output (ours a Tensor, ORT's a Tensor).
 * GFLOP/s: the LSTM forward, 2·B·T·(I+H)·4H (the head ignored), as bench/harness.ts's FLOP model.
 *
 *   npm run bench -- serve            (or npx tsx bench/serve.ts)
 *   npm run bench -- serve:S4         only the cases whose name contains it (serve:S0, serve:B1, serve:S2, serve:S4,
 *                                     serve:stream)
 */
import { createRequire } from "node:module";
import { Sequential, LSTM, Dense, tensor, toOnnx, type Tensor } from "../src/index.js";
import { setThreads } from "../src/node/index.js";
import {
  type Options, type Result, type Shape, FMA, forwardFlops, formatTime, median, randomBatch, selected, standalone,
  suiteSelected,
} from "./harness.js";

type Ort = typeof import("onnxruntime-node");
type OrtSession = import("onnxruntime-node").InferenceSession;
type OrtTensor = import("onnxruntime-node").Tensor;

interface ServeCase extends Shape {
  /** Threads on each side (ours: setThreads; ORT: intraOpNumThreads). */
  threads: number;
  /** Streaming: this many calls of T = 1 on a stateful model. */
  steps?: number;
  rounds: number;
}

const CASES: ServeCase[] = [
  { name: "S0", B: 1, T: 10, I: 1, H: 10, threads: 1, rounds: 25 },
  { name: "B1", B: 1, T: 100, I: 8, H: 64, threads: 1, rounds: 25 },
  { name: "S2", B: 32, T: 50, I: 32, H: 64, threads: 1, rounds: 25 },
  { name: "S4", B: 64, T: 100, I: 128, H: 256, threads: 1, rounds: 11 },
  { name: "S4", B: 64, T: 100, I: 128, H: 256, threads: 2, rounds: 11 },
  { name: "stream", B: 1, T: 1, I: 8, H: 64, threads: 1, steps: 1000, rounds: 21 },
];

/** A round's length per side (its slower side; at least one op). */
const ROUND_MS = 50;

function caseName(c: ServeCase): string {
  const dims = `B=${c.B},T=${c.T},I=${c.I},H=${c.H}`;
  return `serve:${c.name},${c.steps ? `${c.steps} calls of ${dims}` : dims}${c.threads > 1 ? `,${c.threads} threads` : ""}`;
}

function loadOrt(): Ort {
  // require, not import: a CommonJS package imported from an ES module goes through Node's module lexer.
  return createRequire(import.meta.url)("onnxruntime-node") as Ort;
}

async function session(ort: Ort, bytes: Uint8Array, threads: number): Promise<OrtSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
  });
}

function makeModel(c: ServeCase, stateful: boolean): Sequential {
  return new Sequential([
    new LSTM({ units: c.H, inputDim: c.I, ...(stateful ? { stateful: true, batchSize: c.B } : {}) }),
    new Dense({ units: 1 }),
  ], { seed: 1, dtype: "float32", backend: "wasm", ...(FMA ? { fma: true } : {}) });
}

/** max |a − b| and max |b|; throws unless the first is ≤ 1e-5 · max(1, the second). */
function agree(what: string, ours: ArrayLike<number>, theirs: ArrayLike<number>): number {
  if (ours.length !== theirs.length) throw new Error(`${what}: ${ours.length} outputs vs ORT's ${theirs.length}`);
  let d = 0, scale = 0, at = 0;
  for (let k = 0; k < theirs.length; k++) {
    const e = Math.abs(ours[k]! - theirs[k]!);
    if (!(e <= d)) { d = Number.isNaN(e) ? Infinity : e; at = k; }
    scale = Math.max(scale, Math.abs(theirs[k]!));
  }
  const tol = 1e-5 * Math.max(1, scale);
  if (!(d <= tol)) throw new Error(`${what}: output ${at} is ${ours[at]} here, ${theirs[at]} in ORT (|diff| ${d.toExponential(2)} > ${tol.toExponential(2)})`);
  return d;
}

/** Wall-clock and CPU time (every thread of the process, user and system) of one measured stretch, in ms. */
interface Span { wall: number; cpu: number }

function span<T>(f: () => T): [T, () => Span] {
  const c0 = process.cpuUsage(), t0 = performance.now();
  const v = f();
  return [v, () => {
    const w = performance.now() - t0, c = process.cpuUsage(c0);
    return { wall: w, cpu: (c.user + c.system) / 1000 };
  }];
}

interface Side { run: () => unknown; reset?: () => void }
interface AsyncSide { run: () => Promise<unknown>; reset?: () => void }

interface Measured {
  oursMs: number; ortMs: number; ratio: number; q1: number; q3: number; rounds: number; reps: number;
  /** Medians of CPU time per op (all threads), and of its ratio per round. */
  oursCpuMs: number; ortCpuMs: number; cpuRatio: number;
}

/**
 * Warms both sides, then `rounds` paired rounds (which side goes first alternates), `reps` ops of each per round; an
 * op is `calls` calls (the stream's 1000 steps, `reset` before them, untimed). Returns medians per op and the median
 * ratio ours / ORT, in wall-clock and in CPU time.
 */
async function pairedRounds(ours: Side, ort: AsyncSide, rounds: number, calls: number, roundMs: number): Promise<Measured> {
  // reps ops, each reset first (outside the clock), timed together.
  const oursOps = (reps: number): Span => {
    let wall = 0, cpu = 0;
    for (let k = 0; k < reps; k++) {
      ours.reset?.();
      const [, done] = span(() => { for (let j = 0; j < calls; j++) ours.run(); });
      const s = done(); wall += s.wall; cpu += s.cpu;
    }
    return { wall: wall / reps, cpu: cpu / reps };
  };
  const ortOps = async (reps: number): Promise<Span> => {
    let wall = 0, cpu = 0;
    for (let k = 0; k < reps; k++) {
      ort.reset?.();
      const [p, done] = span(async () => { for (let j = 0; j < calls; j++) await ort.run(); });
      await p;
      const s = done(); wall += s.wall; cpu += s.cpu;
    }
    return { wall: wall / reps, cpu: cpu / reps };
  };
  // Warm-up: 300 ms a side and at least 3 ops (fast calls need thousands before V8 has optimised their whole path).
  let t0 = performance.now();
  for (let n = 0; n < 3 || performance.now() - t0 < 300; n++) oursOps(1);
  t0 = performance.now();
  for (let n = 0; n < 3 || performance.now() - t0 < 300; n++) await ortOps(1);
  // Ops per round: enough for roundMs of the slower side, so that a round spans many of the scheduler's time slices
  // (on a loaded machine a process waits for the core in slices of a few ms, and a 5 ms round caught either side in
  // a slow or a fast slice: per-round ratios scattered over 4×).
  const once = Math.max(median([oursOps(1).wall, oursOps(1).wall, oursOps(1).wall]), median([(await ortOps(1)).wall, (await ortOps(1)).wall, (await ortOps(1)).wall]));
  const reps = Math.max(1, Math.min(100000, Math.round(roundMs / once)));
  const a: Span[] = [], b: Span[] = [], r: number[] = [], rc: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let x: Span, y: Span;
    if (i % 2 === 0) { x = oursOps(reps); y = await ortOps(reps); } else { y = await ortOps(reps); x = oursOps(reps); }
    a.push(x); b.push(y); r.push(x.wall / y.wall); rc.push(x.cpu / y.cpu);
  }
  r.sort((p, q) => p - q);
  const q = (p: number): number => r[Math.min(r.length - 1, Math.round(p * (r.length - 1)))]!;
  return {
    oursMs: median(a.map((s) => s.wall)), ortMs: median(b.map((s) => s.wall)), ratio: median(r), q1: q(0.25), q3: q(0.75), rounds, reps,
    oursCpuMs: median(a.map((s) => s.cpu)), ortCpuMs: median(b.map((s) => s.cpu)), cpuRatio: median(rc),
  };
}

interface Row { name: string; c: ServeCase; m: Measured; diff: number; note: string }

async function runCase(ort: Ort, c: ServeCase, opts: Options): Promise<Row> {
  const name = caseName(c);
  const rounds = opts.quick ? Math.min(c.rounds, 5) : c.rounds;
  if (!c.steps) {
    const model = makeModel(c, false);
    const { xs } = randomBatch(c, 101);
    const x: Tensor = tensor(xs, "float32");
    const xo = new ort.Tensor("float32", Float32Array.from(x.data), [c.B, c.T, c.I]);
    const s = await session(ort, toOnnx(model), c.threads);
    if (c.threads > 1) setThreads(model, c.threads);
    try {
      const diff = agree(name, model.predict(x).data, (await s.run({ x: xo })).y!.data as Float32Array);
      const feeds = { x: xo };
      const m = await pairedRounds({ run: () => model.predict(x) }, { run: () => s.run(feeds) }, rounds, 1, ROUND_MS);
      return { name, c, m, diff, note: "" };
    } finally {
      if (c.threads > 1) model.dispose();
      await s.release();
    }
  }
  // The stream: a stateful model, B rows, one step per call.
  const N = c.steps;
  const model = makeModel(c, true);
  const { xs } = randomBatch({ ...c, T: N }, 202); // one sequence of N steps per row
  const step = (t: number): number[][][] => xs.map((row) => [row[t]!]);
  const xt: Tensor[] = Array.from({ length: N }, (_, t) => tensor(step(t), "float32"));
  const flat = (t: number): Float32Array => Float32Array.from(step(t).flat(2));
  const xo: OrtTensor[] = Array.from({ length: N }, (_, t) => new ort.Tensor("float32", flat(t), [c.B, 1, c.I]));
  // Check: our output after step t + 1 against ORT's stateless graph over steps 0 … t in one call.
  const whole = await session(ort, toOnnx(model), c.threads);
  const ours: number[][] = [];
  model.resetStates();
  for (let t = 0; t < N; t++) ours.push(Array.from(model.predict(xt[t]!).data));
  let diff = 0;
  for (const t of [0, 1, 9, 99, N - 1].filter((v) => v < N)) {
    const prefix = new ort.Tensor("float32", Float32Array.from(xs.map((row) => row.slice(0, t + 1)).flat(2)), [c.B, t + 1, c.I]);
    diff = Math.max(diff, agree(`${name} (our step ${t + 1} vs ORT on steps 1…${t + 1})`, ours[t]!, (await whole.run({ x: prefix })).y!.data as Float32Array));
  }
  await whole.release();
  // ORT's side: toOnnx(model, { states: true }), whose inputs <layer>/<state>_in take the states that the previous
  // call's outputs <layer>/<state>_out gave ([batch, H] each; zeros to start), as a user streams through it.
  const stream = await session(ort, toOnnx(model, { states: true }), c.threads);
  try {
    const names = stream.inputNames.filter((n) => n !== "x");
    const outOf = names.map((n) => n.replace(/_in$/, "_out"));
    if (names.length === 0 || outOf.some((n) => !stream.outputNames.includes(n))) {
      throw new Error(`toOnnx(model, { states: true }): state inputs [${names.join(", ")}], outputs [${stream.outputNames.join(", ")}]: expected <layer>/<state>_in and _out pairs`);
    }
    const feeds: Record<string, OrtTensor> = { x: xo[0]! };
    let v = 0;
    const reset = (): void => { v = 0; for (const n of names) feeds[n] = new ort.Tensor("float32", new Float32Array(c.B * c.H), [c.B, c.H]); };
    const call = async (): Promise<Float32Array> => {
      feeds.x = xo[v++]!;
      const out = await stream.run(feeds);
      names.forEach((n, k) => { feeds[n] = out[outOf[k]!]! as OrtTensor; });
      return out.y!.data as Float32Array;
    };
    // Check the stream itself: ORT's output at every step against ours.
    reset();
    for (let t = 0; t < N; t++) diff = Math.max(diff, agree(`${name} (ORT's stream, step ${t + 1})`, ours[t]!, await call()));
    let u = 0;
    const m = await pairedRounds(
      { run: () => model.predict(xt[u++]!), reset: () => { u = 0; model.resetStates(); } },
      { run: call, reset }, rounds, N, ROUND_MS);
    return { name, c, m: perCall(m, N), diff, note: `ORT streams through toOnnx(model, { states: true }): ${names.join(", ")} fed from the previous call's ${outOf.join(", ")}` };
  } finally {
    await stream.release();
  }
}

/** The stream's figures per call rather than per 1000-call op. */
function perCall(m: Measured, n: number): Measured {
  return { ...m, oursMs: m.oursMs / n, ortMs: m.ortMs / n, oursCpuMs: m.oursCpuMs / n, ortCpuMs: m.ortCpuMs / n };
}

/** What one `await` of a setImmediate callback costs here: the event-loop turn in each of ORT's calls. */
async function turnCost(): Promise<number> {
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  for (let k = 0; k < 2000; k++) await turn();
  const xs: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = performance.now();
    for (let k = 0; k < 2000; k++) await turn();
    xs.push((performance.now() - t0) / 2000);
  }
  return median(xs);
}

/** The LSTM forward of one call (the stream: of one step). */
function flops(c: ServeCase): number {
  return forwardFlops(c);
}

export async function runServe(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  const cases = CASES.filter((c) => selected(opts, caseName(c), "serve") && (!opts.quick || c.name !== "S4"));
  if (!suiteSelected(opts, "serve") || cases.length === 0) return {};
  const ort = loadOrt();
  const version = (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string }).version;
  console.log(`\n## serve: predict, LSTM(H) → Dense(1), float32, SIMD backend${FMA ? " (fma)" : ""}, vs ONNX Runtime ${version} (CPU EP) on toOnnx(model), same process, paired rounds`);
  const turn = await turnCost();
  console.log(`(ORT's time is await session.run(feeds), which includes one setImmediate turn: ${formatTime(turn)} alone here)`);
  console.log(`${"case".padEnd(50)} ${"ours".padStart(10)} ${"GFLOP/s".padStart(7)} ${"ORT".padStart(10)} ${"GFLOP/s".padStart(7)}  ${"ours/ORT".padStart(8)} ${"quartiles".padEnd(11)} ${"CPU time".padStart(8)}  rounds × ops  max|diff|`);
  const rows: Row[] = [];
  for (const c of cases) {
    let row: Row;
    try {
      row = await runCase(ort, c, opts);
    } catch (e) {
      console.log(`${caseName(c).padEnd(50)} CHECK FAILED: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
      continue;
    }
    rows.push(row);
    const { m } = row, f = flops(c), gf = (ms: number): string => (f / ms / 1e6).toFixed(2);
    console.log(`${row.name.padEnd(50)} ${formatTime(m.oursMs).padStart(10)} ${gf(m.oursMs).padStart(7)} ${formatTime(m.ortMs).padStart(10)} ${gf(m.ortMs).padStart(7)}  ` +
      `${(m.ratio.toFixed(2) + "×").padStart(8)} ${`${m.q1.toFixed(2)}–${m.q3.toFixed(2)}`.padEnd(11)} ${(m.cpuRatio.toFixed(2) + "×").padStart(8)}  ` +
      `${`${m.rounds} × ${m.reps}${c.steps ? ` × ${c.steps}` : ""}`.padEnd(12)}  ${row.diff.toExponential(1)}`);
    if (row.note) console.log(`  (${row.note})`);
    for (const [side, ms] of [["ours", m.oursMs], ["ort", m.ortMs]] as const) {
      results.push({
        name: `${row.name.replace("serve:", `serve:${side}:`)}`, group: "serve", medianMs: ms, meanMs: ms, rmePercent: NaN,
        samples: m.rounds, opsPerSample: m.reps * (c.steps ?? 1), flops: f, gflops: f / (ms * 1e6),
      });
    }
  }
  console.log("ours/ORT: the median of the rounds' ratios of wall-clock time (quartiles beside it); CPU time: the same of the process's CPU time " +
    "(every thread: what a loaded machine's waits for a core leave out; on two threads, both threads' work)");
  const table = Object.fromEntries(rows.map((r) => [r.name, {
    oursMs: r.m.oursMs, ortMs: r.m.ortMs, oursOverOrt: r.m.ratio, q1: r.m.q1, q3: r.m.q3,
    oursCpuMs: r.m.oursCpuMs, ortCpuMs: r.m.ortCpuMs, cpuOursOverOrt: r.m.cpuRatio, rounds: r.m.rounds, opsPerRound: r.m.reps,
    maxAbsDiff: r.diff, gflopsOurs: flops(r.c) / (r.m.oursMs * 1e6), gflopsOrt: flops(r.c) / (r.m.ortMs * 1e6), ...(r.note ? { note: r.note } : {}),
  }]));
  return { serve: { ort: version, setImmediateTurnMs: turn, cases: table } };
}

await standalone("serve", import.meta.url, runServe);
