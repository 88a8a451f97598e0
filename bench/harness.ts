/**
 * The shared bench harness: options, the shapes of PERFORMANCE.md, the FLOP model, a case runner on top
 * of tinybench (check first, then time), the printed table and the JSON file, and the launcher that runs
 * the benches as plain JavaScript under `node` (see `launch` for why).
 *
 * Every case checks its result against a reference before it is timed, and is named `kernel:B=…,H=…`.
 * Timings are medians; the machine may be shared, so compare ratios measured in the same run.
 */
import { Bench } from "tinybench";
import { spawnSync } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { createRequire } from "node:module";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import os from "node:os";
import { Sequential, LSTM, Dense } from "../src/index.js";

// ---------------------------------------------------------------------------------------------------
// Shapes and the FLOP model

export interface Shape {
  name: string; // S0 … S4
  B: number;    // batch
  T: number;    // timesteps
  I: number;    // input features
  H: number;    // units
}

/** The shapes of PERFORMANCE.md. */
export const SHAPES: Shape[] = [
  { name: "S0", B: 1, T: 10, I: 1, H: 10 },
  { name: "S1", B: 32, T: 20, I: 1, H: 10 },
  { name: "S2", B: 32, T: 50, I: 32, H: 64 },
  { name: "S3", B: 64, T: 50, I: 64, H: 128 },
  { name: "S4", B: 64, T: 100, I: 128, H: 256 },
];

export function shape(name: string): Shape {
  const s = SHAPES.find((x) => x.name === name);
  if (!s) throw new Error(`unknown shape ${name}`);
  return s;
}

export const FLOP_MODEL =
  "matmul = 2·M·N·K; LSTM forward = 2·B·T·(I+H)·4H; LSTM backward ≈ 2 × forward; " +
  "training step ≈ 3 × forward (elementwise and head terms ignored)";

/** 2·B·T·(I+H)·4H: the multiply-adds of the input and recurrent projections over a window. */
export function forwardFlops(s: Shape): number {
  return 2 * s.B * s.T * (s.I + s.H) * 4 * s.H;
}

/** The training step: forward + backward (twice the forward's matmul work) ≈ 3 × forward. */
export function stepFlops(s: Shape): number {
  return 3 * forwardFlops(s);
}

export function shapeLabel(s: Shape): string {
  return `${s.name},B=${s.B},T=${s.T},I=${s.I},H=${s.H}`;
}

// ---------------------------------------------------------------------------------------------------
// Options

export interface Options {
  /** Substrings; a case runs when its name or group contains one of them (all cases when empty). */
  filters: string[];
  /** Fewer and smaller cases, shorter timing: a smoke test. */
  quick: boolean;
  /** Write the results as JSON here. */
  json: string | null;
  /** Measure in this process (under tsx) instead of re-running as plain JavaScript under node. */
  inProcess: boolean;
  /** The SIMD models and products with fused multiply-adds (`fma: true`; Node 20's relaxed SIMD flag set). */
  fma: boolean;
  /** Arguments left for a particular entry (e.g. the peer bench's child mode). */
  rest: string[];
}

export function parseArgs(argv: string[]): Options {
  const o: Options = { filters: [], quick: false, json: null, inProcess: false, fma: false, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") o.quick = true;
    else if (a === "--in-process") o.inProcess = true;
    else if (a === "--fma") o.fma = true;
    else if (a === "--json") {
      const f = argv[++i];
      if (!f) throw new Error("--json needs a file name");
      o.json = f;
    } else if (a.startsWith("--json=")) o.json = a.slice("--json=".length);
    else if (a.startsWith("--")) o.rest.push(a, ...(argv[i + 1] && !argv[i + 1]!.startsWith("--") ? [argv[++i]!] : []));
    else o.filters.push(a);
  }
  return o;
}

export function selected(opts: Options, name: string, group: string): boolean {
  return opts.filters.length === 0 || opts.filters.some((f) => name.includes(f) || group === f || group.includes(f));
}

// ---------------------------------------------------------------------------------------------------
// Cases and results

export interface Case {
  /** `kernel:B=…,H=…` style name. */
  name: string;
  /** The suite it belongs to (matmul, gates, lstm, train-step, adam, …). */
  group: string;
  /** Floating-point operations of one op, per the FLOP model (omitted when the model does not apply). */
  flops?: number;
  /** Runs before timing; throws (with a message naming what differs) when the result is wrong. */
  check: () => void;
  /** One op. Must not allocate in steady state; buffers are set up when the case is built. */
  run: () => void;
  /** Timing budget in ms (default 400, quick 120) and minimum iterations (default 10). */
  time?: number;
  iterations?: number;
  /** Warm-up iterations (default: a time budget of 100 ms). */
  warmupIterations?: number;
  /** A note printed after the figures (e.g. ns per unit). */
  note?: (medianMs: number) => string;
}

export interface Result {
  name: string;
  group: string;
  medianMs: number;
  meanMs: number;
  rmePercent: number;
  samples: number;
  opsPerSample: number;
  flops?: number;
  gflops?: number;
  note?: string;
}

/** A case to be built only when selected (building allocates its buffers). */
export interface Spec {
  name: string;
  group: string;
  build: () => Case;
}

/**
 * Builds and runs the selected cases one at a time, so a filtered run allocates nothing else; prints the
 * section header before the first one. Returns how many ran.
 */
export function runSpecs(opts: Options, title: string, specs: Spec[], results: Result[]): number {
  let n = 0;
  for (const spec of specs) {
    if (!selected(opts, spec.name, spec.group)) continue;
    if (n++ === 0) header(title);
    results.push(runCase(opts, spec.build()));
  }
  return n;
}

/** Whether a whole suite that is not made of named cases (heap, peer) was asked for. */
export function suiteSelected(opts: Options, ...names: string[]): boolean {
  return opts.filters.length === 0 || opts.filters.some((f) => names.some((n) => n.includes(f) || f.includes(n)));
}

/** True when this process was started on the named bench file (bench/<name>.ts, or its bundle). */
export function isMain(name: string): boolean {
  const arg = process.argv[1];
  return arg !== undefined && basename(arg).replace(/\.(ts|mjs|js)$/, "") === name;
}

/** Checks, then times one case with tinybench, and prints its line. */
export function runCase(opts: Options, c: Case): Result {
  try {
    c.check();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    console.log(`${c.name.padEnd(58)} CHECK FAILED: ${msg}`);
    process.exitCode = 1;
    return { name: c.name, group: c.group, medianMs: NaN, meanMs: NaN, rmePercent: NaN, samples: 0, opsPerSample: 0, note: `check failed: ${msg}` };
  }
  // Several ops per sample for fast ops, so the timer's own cost (~0.1 µs) stays out of the figure.
  // Calibrate on warm code (up to 50 calls or 50 ms first, then the mean of three), unless one call is slow.
  let t0 = performance.now();
  c.run();
  let once = performance.now() - t0;
  if (once < 200) {
    let calls = 0;
    t0 = performance.now();
    do { c.run(); calls++; } while (calls < 50 && performance.now() - t0 < 50);
    t0 = performance.now();
    for (let k = 0; k < 3; k++) c.run();
    once = (performance.now() - t0) / 3;
  }
  const inner = once >= 0.5 ? 1 : Math.min(100000, Math.ceil(0.5 / Math.max(once, 1e-4)));
  const run = c.run;
  const fn = inner === 1 ? run : () => { for (let k = 0; k < inner; k++) run(); };
  const slow = once * inner > 200;
  const bench = new Bench({
    time: c.time ?? (opts.quick ? 120 : 400),
    iterations: c.iterations ?? (slow ? 3 : 10),
    warmup: true,
    warmupTime: slow ? 0 : (opts.quick ? 30 : 100),
    warmupIterations: c.warmupIterations ?? (slow ? 1 : 5),
  });
  bench.add(c.name, fn);
  t0 = performance.now();
  bench.runSync();
  const task = bench.tasks[0]!;
  const r = task.result;
  if (r.state !== "completed") {
    console.log(`${c.name.padEnd(58)} FAILED: ${"error" in r ? String(r.error) : r.state}`);
    process.exitCode = 1;
    return { name: c.name, group: c.group, medianMs: NaN, meanMs: NaN, rmePercent: NaN, samples: 0, opsPerSample: inner };
  }
  const med = r.latency.p50 / inner, mean = r.latency.mean / inner;
  const res: Result = {
    name: c.name, group: c.group, medianMs: med, meanMs: mean, rmePercent: r.latency.rme,
    samples: task.runs, opsPerSample: inner,
  };
  if (c.flops) {
    res.flops = c.flops;
    res.gflops = c.flops / (med * 1e6);
  }
  if (c.note) res.note = c.note(med);
  console.log(formatLine(res));
  return res;
}

export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  if (ms < 1) return `${(ms * 1000).toFixed(ms < 0.01 ? 3 : 2)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 3 : 1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function formatLine(r: Result): string {
  const g = r.gflops !== undefined ? `${r.gflops.toFixed(2).padStart(6)} GFLOP/s` : " ".repeat(14);
  const note = r.note ? `  ${r.note}` : "";
  return `${r.name.padEnd(58)} ${formatTime(r.medianMs).padStart(10)}  ${g}  ±${r.rmePercent.toFixed(1)}% (${r.samples}×${r.opsPerSample})${note}`;
}

export function header(title: string): void {
  console.log(`\n## ${title}`);
  console.log(`${"case".padEnd(58)} ${"median".padStart(10)}  ${"rate".padStart(14)}  spread (samples × ops)`);
}

/** Writes `{ meta, results, extra }` to opts.json when asked. */
export function writeJson(opts: Options, results: Result[], extra: Record<string, unknown> = {}): void {
  if (!opts.json) return;
  const file = resolve(process.cwd(), opts.json);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ meta: meta(), flopModel: FLOP_MODEL, results, ...extra }, null, 2) + "\n");
  console.log(`\nwrote ${file}`);
}

export function meta(): Record<string, unknown> {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    mode: runMode(),
    defaultBackend: defaultBackend(),
  };
}

/** `--fma` (or a parent's): the SIMD models get `fma: true` and the SIMD products are fused. */
export let FMA = process.env.LONGSHORT_BENCH_FMA === "1";

/** What `new Sequential(…)` picks on this runtime: "wasm" (SIMD, where it validates) or "js". */
export function defaultBackend(): "js" | "wasm" {
  return new Sequential([new LSTM({ units: 1, inputDim: 1 }), new Dense({ units: 1 })]).backend;
}

/** "plain node" when launched through `launch`, else "in-process (tsx)". */
export function runMode(): string {
  return process.env.LONGSHORT_BENCH_PLAIN === "1" ? "plain node (compiled by esbuild)" : "in-process (tsx)";
}

// ---------------------------------------------------------------------------------------------------
// Helpers for building cases

/** A small seeded generator (mulberry32) for bench data; the values only need to be reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;

export function randomArray(Arr: Ctor, n: number, r: () => number, scale = 1): Float32Array | Float64Array {
  const a = new Arr(n);
  for (let i = 0; i < n; i++) a[i] = (2 * r() - 1) * scale;
  return a;
}

/** Throws naming the worst entry when |a - b| > tol·(|b| + floor) somewhere. */
export function assertClose(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number, floor = 1): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length} vs ${b.length}`);
  let worst = 0, at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + floor);
    if (!(e <= worst)) { worst = Number.isNaN(e) ? Infinity : e; at = i; }
  }
  if (worst > tol) throw new Error(`${what}: entry ${at} is ${a[at]} vs ${b[at]} (relative error ${worst.toExponential(2)} > ${tol})`);
}

// ---------------------------------------------------------------------------------------------------
// Child processes: engines measured in their own process

/**
 * A measurement that runs in a child process and returns JSON. Peers (tfjs) and the float32/float64
 * comparison run this way: tfjs's WebAssembly backend detaches ArrayBuffers when its memory grows (see
 * `launch`), and a kernel that has seen both Float32Array and Float64Array is compiled polymorphic, so
 * sharing one process would slow whichever engine runs second.
 */
export type ChildFn = (args: Record<string, string>) => Promise<unknown>;
const childFns = new Map<string, ChildFn>();

export function registerChild(name: string, fn: ChildFn): void {
  childFns.set(name, fn);
}

/** Runs `name` in a fresh process (same entry file, same mode) and returns its JSON, or null on failure. */
export function spawnChild(name: string, args: Record<string, string>): unknown {
  const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, "--child", name, "--args", JSON.stringify(args)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    env: process.env,
    maxBuffer: 1 << 26,
  });
  const lines = (r.stdout ?? "").trim().split("\n");
  const last = lines[lines.length - 1] ?? "";
  if (r.status !== 0 || !last.startsWith("{")) {
    console.log(`  (child ${name} ${JSON.stringify(args)} failed with status ${r.status}: ${lines.slice(-3).join(" | ")})`);
    return null;
  }
  return JSON.parse(last);
}

/**
 * Times a training step the way the children do: one step (compilation, first allocations), more
 * warm-up steps for up to a third of the budget, then timed steps for the rest (at least `minSteps`,
 * fewer when one step takes seconds). Returns the timed samples in ms.
 */
export async function timeSteps(step: () => unknown, budgetMs: number, minSteps = 3): Promise<number[]> {
  // Awaiting only real promises: an `await` on a synchronous step would add a microtask turn (~µs).
  const once = async (): Promise<number> => {
    const t0 = performance.now();
    const r = step();
    if (r instanceof Promise) await r;
    return performance.now() - t0;
  };
  const first = await once();
  let warm = first, n = 1;
  // Fast steps need thousands of calls before V8 has optimised everything on their path.
  while (warm < budgetMs / 3 && n < 20000 && first < 2000) {
    warm += await once();
    n++;
  }
  const est = n > 1 ? (warm - first) / (n - 1) : first;
  const count = Math.max(first > 5000 ? 1 : minSteps, Math.min(5000, Math.round((2 * budgetMs) / 3 / est)));
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await once());
  return samples;
}

/** |a − b| relative to the larger of the two (0 when equal): the benches' one-thread vs two-thread checks. */
export function relDiff(a: number, b: number): number {
  return a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
}

export function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// ---------------------------------------------------------------------------------------------------
// The launcher

/**
 * Runs `main` as plain JavaScript under `node` unless asked not to.
 *
 * Why: V8 compiles typed-array loads without a "buffer detached?" check as long as no ArrayBuffer in the
 * process has ever been detached. Under tsx, loading the CommonJS dependencies (ndarray-ops) detaches one
 * (tsx's module lexer runs in WebAssembly and its memory grows), after which every typed-array access in
 * the process carries the extra check: our kernels measured ~15% slower under tsx than the same code
 * under plain node, which is how a user runs the published library. So by default src/ and bench/ are
 * compiled file by file with esbuild (installed with tsx) into node_modules/.cache/longshort-bench/, as
 * tsc would for dist/, and the entry is re-run with `node --expose-gc`; `--in-process` measures under tsx
 * instead, and the run says which mode it used. (Compiled, not bundled: esbuild's bundler turns
 * top-level `const` into `var`, which makes the gate math's table lookups ~30% slower.)
 * A process started with `--child NAME --args JSON` runs that registered measurement and prints its JSON.
 */
export async function launch(entryUrl: string, main: (opts: Options) => Promise<void>): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseArgs(argv);
  if (opts.fma || FMA) {
    // Relaxed SIMD is behind a flag in Node 20; the flag is process-wide (worker threads see it too), and child
    // processes learn it from the environment.
    setFlagsFromString("--experimental-wasm-relaxed-simd");
    process.env.LONGSHORT_BENCH_FMA = "1";
    FMA = true;
  }
  const ci = opts.rest.indexOf("--child");
  if (ci >= 0) {
    const name = opts.rest[ci + 1]!, ai = opts.rest.indexOf("--args");
    const fn = childFns.get(name);
    if (!fn) throw new Error(`unknown child measurement ${name}`);
    const out = await fn(ai >= 0 ? JSON.parse(opts.rest[ai + 1]!) : {});
    process.stdout.write(`\n${JSON.stringify(out)}\n`);
    return;
  }
  if (!opts.inProcess && process.env.LONGSHORT_BENCH_PLAIN !== "1") {
    const compiled = await compile(fileURLToPath(entryUrl));
    if (compiled) {
      const r = spawnSync(process.execPath, ["--expose-gc", compiled, ...argv], {
        stdio: "inherit",
        env: { ...process.env, LONGSHORT_BENCH_PLAIN: "1" },
      });
      process.exit(r.status ?? 1);
    }
    console.log("(esbuild not found: measuring in-process under tsx, which runs our kernels ~15% slower)");
  }
  console.log(`mode: ${runMode()}; node ${process.version}; ${os.cpus()[0]?.model ?? "cpu?"} × ${os.cpus().length}; default backend here: ${defaultBackend()}`);
  if (FMA) console.log("fused multiply-add (--fma): the SIMD models run with fma: true, the SIMD products and float32 gate kernels fused");
  console.log(`FLOP model: ${FLOP_MODEL}`);
  await main(opts);
}

/** Compiles src/ and bench/ to JavaScript next to node_modules; returns the entry's output, or null without esbuild. */
async function compile(entry: string): Promise<string | null> {
  const req = createRequire(import.meta.url);
  let esbuildPath: string | null = null;
  for (const from of [null, "tsx/package.json"]) {
    try {
      esbuildPath = (from === null ? req : createRequire(req.resolve(from))).resolve("esbuild");
      break;
    } catch {
      // not resolvable from here: try the next place
    }
  }
  if (!esbuildPath) return null;
  const esbuild = await import(pathToFileURL(esbuildPath).href);
  const root = resolve(dirname(entry), "..");
  const outdir = join(root, "node_modules", ".cache", "longshort-bench");
  const files = ["src", "bench"].flatMap((d) =>
    (readdirSync(join(root, d), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
      .map((f) => join(root, d, f)));
  await (esbuild.build ?? esbuild.default.build)({
    entryPoints: files,
    outbase: root,
    outdir,
    bundle: false,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
  });
  writeFileSync(join(outdir, "package.json"), '{ "type": "module" }\n');
  return join(outdir, "bench", basename(entry).replace(/\.ts$/, ".js"));
}

/** A seeded batch for shape s as nested arrays: x [B, T, I] uniform in [-1, 1), y [B, 1] of 0s and 1s. */
export function randomBatch(s: Shape, seed: number): { xs: number[][][]; ys: number[][] } {
  const r = rng(seed);
  const xs: number[][][] = [], ys: number[][] = [];
  for (let b = 0; b < s.B; b++) {
    const row: number[][] = [];
    for (let t = 0; t < s.T; t++) {
      const f: number[] = [];
      for (let i = 0; i < s.I; i++) f.push(2 * r() - 1);
      row.push(f);
    }
    xs.push(row);
    ys.push([r() < 0.5 ? 0 : 1]);
  }
  return { xs, ys };
}

/**
 * Runs one suite when this process was started on its file (`npx tsx bench/<name>.ts`): launches it (see
 * `launch`), collects its results and extra figures, and writes them with --json.
 */
export async function standalone(
  name: string, url: string,
  run: (opts: Options, results: Result[]) => Promise<Record<string, unknown> | void>,
): Promise<void> {
  if (!isMain(name)) return;
  await launch(url, async (opts) => {
    const results: Result[] = [];
    const extra = await run(opts, results);
    writeJson(opts, results, extra ?? {});
  });
}
