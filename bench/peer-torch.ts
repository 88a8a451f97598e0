/**
 * The PyTorch peer, optional: when `python3` can `import torch`, the same training step (LSTM(H) →
 * Dense(1, sigmoid), binary cross-entropy, Adam 1e-3) runs in PyTorch in the same run, from longshort's initial
 * weights on the same batch, and the ratios per shape are printed. PyTorch is never a dependency: without it the
 * suite says so and skips.
 *
 * Check: PyTorch's loss on the given weights and batch equals ours (1e-9 relative in float64, 1e-5 in float32).
 * Each measurement runs in its own process: ours on the TypeScript kernels (float64, the library's default dtype)
 * and on the SIMD backend (float64 and float32, one thread; float32 on two threads), PyTorch in float64 and
 * float32 on one thread and float32 on two (OPENBLAS_NUM_THREADS and OMP_NUM_THREADS set to match; on two,
 * OMP_WAIT_POLICY=PASSIVE, PyTorch's fastest setting here). The shapes
 * are interleaved over three rounds; each figure is the median of the rounds' medians. The BLAS that PyTorch
 * loaded is printed: Debian's PyTorch calls whatever libblas.so.3 points to, and the reference BLAS (the
 * default without libopenblas0 installed) made its steps several times slower than OpenBLAS here.
 *
 *   npm run bench -- torch            (or: npx tsx bench/peer-torch.ts [S0 S1 …])
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Sequential, LSTM, Dense, Adam, tensor } from "../src/index.js";
import {
  type Options, type Result, SHAPES, stepFlops, shapeLabel, spawnChild, median, formatTime, randomBatch, standalone,
  type Shape,
} from "./harness.js";
import "./train-step.js"; // registers the "ours" child measurement

const SCRIPT = fileURLToPath(new URL("./peer-torch.py", import.meta.url)).replace(/\/node_modules\/\.cache\/[^/]+\//, "/");

/** A python that has torch, or null. */
function findPython(): string | null {
  for (const py of ["python3", "/usr/bin/python3"]) {
    const r = spawnSync(py, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
    if (r.status === 0) return py;
  }
  return null;
}

/** One PyTorch measurement; checks its loss against ours on the same weights and batch first. */
function torchStep(
  py: string, script: string, s: Shape, dtype: "float32" | "float64", threads: number, budgetMs: number, dir: string,
): { samples: number[]; version: string; blas: string } | null {
  const model = new Sequential([new LSTM({ units: s.H, inputDim: s.I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1, backend: "js" });
  model.compile({ optimizer: new Adam(), loss: "binaryCrossentropy" });
  const { xs, ys } = randomBatch(s, 101);
  const ourLoss = model.testOnBatch(tensor(xs), tensor(ys)).loss;
  const spec = join(dir, `${s.name}-${dtype}-${threads}.json`);
  writeFileSync(spec, JSON.stringify({
    B: s.B, T: s.T, I: s.I, H: s.H, dtype, threads, budget_ms: budgetMs,
    weights: model.getWeights().map((w) => {
      const [r, c] = w.shape as [number, number?];
      return c === undefined ? Array.from(w.data) : Array.from({ length: r }, (_, i) => Array.from(w.data.subarray(i * c, (i + 1) * c)));
    }),
    x: xs, y: ys,
  }));
  const n = String(threads);
  const r = spawnSync(py, [script, spec], {
    encoding: "utf8", maxBuffer: 1 << 26,
    // On two threads OpenMP's waiting threads spin against OpenBLAS's on two cores: passive waiting ran PyTorch's
    // two-thread step 1.3× faster at S3 and S4 here (and without it two threads were slower than one).
    env: { ...process.env, OPENBLAS_NUM_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n, ...(threads > 1 ? { OMP_WAIT_POLICY: "PASSIVE" } : {}) },
  });
  const last = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !last.startsWith("{")) {
    console.log(`  (PyTorch ${s.name} ${dtype} ${threads}T failed: ${(r.stderr ?? "").trim().split("\n").slice(-2).join(" | ")})`);
    return null;
  }
  const out = JSON.parse(last) as { loss: number; samples: number[]; torch: string; blas: string };
  const tol = dtype === "float64" ? 1e-9 : 1e-5;
  if (!(Math.abs(out.loss - ourLoss) <= tol * (1 + Math.abs(ourLoss)))) {
    console.log(`  CHECK FAILED: PyTorch ${s.name} ${dtype} loss ${out.loss} vs ours ${ourLoss} on the same weights and batch`);
    process.exitCode = 1;
    return null;
  }
  return { samples: out.samples, version: out.torch, blas: out.blas };
}

/** Our measurements: key, child arguments, column label. */
const OURS = [
  { key: "js-f64", args: { dtype: "float64", backend: "js" }, label: "js f64" },
  { key: "wasm-f64", args: { dtype: "float64", backend: "wasm" }, label: "wasm f64" },
  { key: "wasm-f32", args: { dtype: "float32", backend: "wasm" }, label: "wasm f32" },
  { key: "wasm-f32-2T", args: { dtype: "float32", backend: "wasm", threads: "2" }, label: "wasm f32 2T" },
] as const;
/** PyTorch's: key, dtype, threads, column label. */
const TORCH = [
  { key: "torch-f64", dtype: "float64", threads: 1, label: "torch f64" },
  { key: "torch-f32", dtype: "float32", threads: 1, label: "torch f32" },
  { key: "torch-f32-2T", dtype: "float32", threads: 2, label: "torch f32 2T" },
] as const;
/** The ratios printed, ours over theirs: like for like. */
const RATIOS = [
  ["js-f64", "torch-f64", "js f64 / torch"], ["wasm-f64", "torch-f64", "wasm f64 / torch"],
  ["wasm-f32", "torch-f32", "wasm f32 / torch"], ["wasm-f32-2T", "torch-f32-2T", "2T f32 / torch 2T"],
] as const;

export async function runTorchPeer(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  const py = findPython();
  if (!py) {
    console.log("\n## peer: PyTorch not found (python3 cannot import torch): skipped, as it is optional");
    return {};
  }
  const named = SHAPES.filter((s) => opts.filters.includes(s.name));
  const shapes = named.length ? named : SHAPES.filter((s) => (opts.quick ? s.name <= "S2" : true));
  const rounds = opts.quick ? 1 : 3, budget = opts.quick ? 400 : 1500;
  const dir = mkdtempSync(join(tmpdir(), "longshort-torch-"));
  const med: Record<string, number[]> = {};
  let version = "", blas = "";
  console.log(`\n## peer: one training step, ours vs PyTorch (${rounds} interleaved round${rounds > 1 ? "s" : ""}, each measurement in its own process)`);
  const fmt = (k: string, s: Shape) => formatTime(med[`${s.name} ${k}`]?.at(-1) ?? NaN);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of shapes) {
        for (const o of OURS) {
          const r = spawnChild("ours", { shape: s.name, budget: String(budget), ...o.args }) as { samples: number[] } | null;
          if (r) (med[`${s.name} ${o.key}`] ??= []).push(median(r.samples));
        }
        for (const t of TORCH) {
          const r = torchStep(py, SCRIPT, s, t.dtype, t.threads, budget, dir);
          if (!r) continue;
          version = r.version;
          blas = r.blas;
          (med[`${s.name} ${t.key}`] ??= []).push(median(r.samples));
        }
        console.log(`  round ${round + 1} ${s.name}: ${[...OURS, ...TORCH].map((c) => `${c.label} ${fmt(c.key, s)}`).join(", ")}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nPyTorch ${version} (BLAS: ${blas}); medians of the rounds' medians; ratios are ours / PyTorch's time`);
  const cols = [...OURS, ...TORCH];
  console.log(`${"shape".padEnd(30)} ${cols.map((c) => c.label.padStart(12)).join(" ")}  ${RATIOS.map(([, , l]) => l.padStart(18)).join("")}`);
  const table: Record<string, unknown> = {};
  for (const s of shapes) {
    const m = (k: string) => (med[`${s.name} ${k}`] ? median(med[`${s.name} ${k}`]!) : NaN);
    const row: Record<string, number> = {};
    for (const c of cols) row[`${c.key}Ms`] = m(c.key);
    for (const [a, b] of RATIOS) row[`${a}/${b}`] = m(a) / m(b);
    console.log(`${shapeLabel(s).padEnd(30)} ${cols.map((c) => formatTime(m(c.key)).padStart(12)).join(" ")}  ` +
      RATIOS.map(([a, b]) => `${(m(a) / m(b)).toFixed(2)}×`.padStart(18)).join(""));
    table[s.name] = row;
    const f = stepFlops(s);
    for (const t of TORCH) {
      const v = m(t.key);
      if (Number.isFinite(v)) {
        results.push({ name: `peer:${t.key}:${shapeLabel(s)}`, group: "peer", medianMs: v, meanMs: v, rmePercent: NaN, samples: med[`${s.name} ${t.key}`]!.length, opsPerSample: 1, flops: f, gflops: f / (v * 1e6) });
      }
    }
  }
  return { torch: { version, blas, table } };
}

await standalone("peer-torch", import.meta.url, runTorchPeer);
