/**
 * The PyTorch peer, optional: when `python3` can `import torch`, the same training step (LSTM(H) →
 * Dense(1, sigmoid), binary cross-entropy, Adam 1e-3, one thread) runs in PyTorch in the same run, from
 * longshort's initial weights on the same batch, and the ratio per shape is printed. PyTorch is never a
 * dependency: without it the suite says so and skips.
 *
 * Check: PyTorch's loss on the given weights and batch equals ours (1e-9 relative in float64).
 * Ours runs float64 (the library's default) in its own process as in the tfjs peer; PyTorch runs float64 and
 * float32, each in its own process; the shapes are interleaved over two rounds and the figure is the median
 * of the rounds' medians.
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
function torchStep(py: string, script: string, s: Shape, dtype: "float32" | "float64", budgetMs: number, dir: string): { samples: number[]; version: string } | null {
  const model = new Sequential([new LSTM({ units: s.H, inputDim: s.I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1, backend: "js" });
  model.compile({ optimizer: new Adam(), loss: "binaryCrossentropy" });
  const { xs, ys } = randomBatch(s, 101);
  const ourLoss = model.testOnBatch(tensor(xs), tensor(ys)).loss;
  const spec = join(dir, `${s.name}-${dtype}.json`);
  writeFileSync(spec, JSON.stringify({
    B: s.B, T: s.T, I: s.I, H: s.H, dtype, budget_ms: budgetMs,
    weights: model.getWeights().map((w) => {
      const [r, c] = w.shape as [number, number?];
      return c === undefined ? Array.from(w.data) : Array.from({ length: r }, (_, i) => Array.from(w.data.subarray(i * c, (i + 1) * c)));
    }),
    x: xs, y: ys,
  }));
  const r = spawnSync(py, [script, spec], { encoding: "utf8", maxBuffer: 1 << 26 });
  const last = (r.stdout ?? "").trim().split("\n").pop() ?? "";
  if (r.status !== 0 || !last.startsWith("{")) {
    console.log(`  (PyTorch ${s.name} ${dtype} failed: ${(r.stderr ?? "").trim().split("\n").slice(-2).join(" | ")})`);
    return null;
  }
  const out = JSON.parse(last) as { loss: number; samples: number[]; torch: string };
  const tol = dtype === "float64" ? 1e-9 : 1e-5;
  if (!(Math.abs(out.loss - ourLoss) <= tol * (1 + Math.abs(ourLoss)))) {
    console.log(`  CHECK FAILED: PyTorch ${s.name} ${dtype} loss ${out.loss} vs ours ${ourLoss} on the same weights and batch`);
    process.exitCode = 1;
    return null;
  }
  return { samples: out.samples, version: out.torch };
}

export async function runTorchPeer(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  const py = findPython();
  if (!py) {
    console.log("\n## peer: PyTorch not found (python3 cannot import torch): skipped, as it is optional");
    return {};
  }
  const named = SHAPES.filter((s) => opts.filters.includes(s.name));
  const shapes = named.length ? named : SHAPES.filter((s) => (opts.quick ? s.name <= "S2" : true));
  const rounds = opts.quick ? 1 : 2, budget = opts.quick ? 400 : 1500;
  const dir = mkdtempSync(join(tmpdir(), "longshort-torch-"));
  const med: Record<string, number[]> = {};
  let version = "";
  console.log(`\n## peer: one training step, ours (float64) vs PyTorch (1 thread, float64 and float32; ${rounds} interleaved round${rounds > 1 ? "s" : ""})`);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const s of shapes) {
        const ours = spawnChild("ours", { shape: s.name, dtype: "float64", budget: String(budget) }) as { samples: number[] } | null;
        if (ours) (med[`${s.name} ours`] ??= []).push(median(ours.samples));
        for (const dt of ["float64", "float32"] as const) {
          const t = torchStep(py, SCRIPT, s, dt, budget, dir);
          if (!t) continue;
          version = t.version;
          (med[`${s.name} torch-${dt}`] ??= []).push(median(t.samples));
        }
        console.log(`  round ${round + 1} ${s.name}: ours ${formatTime(med[`${s.name} ours`]?.at(-1) ?? NaN)}, PyTorch float64 ${formatTime(med[`${s.name} torch-float64`]?.at(-1) ?? NaN)}, float32 ${formatTime(med[`${s.name} torch-float32`]?.at(-1) ?? NaN)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nPyTorch ${version}, one thread`);
  console.log(`${"shape".padEnd(30)} ${"ours f64".padStart(10)} ${"torch f64".padStart(10)} ${"torch f32".padStart(10)}   ours/torch f64  ours/torch f32`);
  const table: Record<string, unknown> = {};
  for (const s of shapes) {
    const m = (k: string) => (med[`${s.name} ${k}`] ? median(med[`${s.name} ${k}`]!) : NaN);
    const o = m("ours"), t64 = m("torch-float64"), t32 = m("torch-float32");
    console.log(`${shapeLabel(s).padEnd(30)} ${formatTime(o).padStart(10)} ${formatTime(t64).padStart(10)} ${formatTime(t32).padStart(10)}   ` +
      `${((o / t64).toFixed(2) + "×").padStart(14)}  ${((o / t32).toFixed(2) + "×").padStart(14)}`);
    table[s.name] = { oursMs: o, torchFloat64Ms: t64, torchFloat32Ms: t32, oursOverTorch64: o / t64, oursOverTorch32: o / t32 };
    const f = stepFlops(s);
    for (const [k, v] of [["torch-float64", t64], ["torch-float32", t32]] as const) {
      if (Number.isFinite(v)) {
        results.push({ name: `peer:${k}:${shapeLabel(s)}`, group: "peer", medianMs: v, meanMs: v, rmePercent: NaN, samples: med[`${s.name} ${k}`]!.length, opsPerSample: 1, flops: f, gflops: f / (v * 1e6) });
      }
    }
  }
  return { torch: table };
}

await standalone("peer-torch", import.meta.url, runTorchPeer);
