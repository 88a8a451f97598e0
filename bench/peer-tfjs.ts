/**
 * The peer bench: the same training step in @tensorflow/tfjs (4.x) on its cpu and wasm backends, at the
 * shapes S0 … S4 of PERFORMANCE.md, measured in the same run as ours, with the ratio per shape.
 *
 * The tfjs model is the same network: tf.layers.lstm({ units: H, recurrentActivation: "sigmoid" }) (the
 * Keras gate order and unit forget bias, as ours) → tf.layers.dense({ units: 1, activation: "sigmoid" }),
 * binaryCrossentropy, tf.train.adam(1e-3), one model.trainOnBatch per step. Its recurrent kernel is
 * initialised glorotUniform rather than orthogonal only because tfjs's orthogonal initializer takes
 * ~110 s to build S4 on the cpu backend; the values do not change the cost of a step.
 * Check: our engine, given the tfjs model's weights, must compute the same loss on the same batch.
 *
 * Each engine runs in its own process (tfjs's WebAssembly memory growth detaches ArrayBuffers, which
 * would slow typed-array code for the rest of a shared process; see harness.ts), shape by shape,
 * interleaved over two rounds; the figure is the median of the rounds' medians. A step slower than 5 s
 * (tfjs cpu at S4) is measured once, in the first round. The wasm backend loads its .wasm files from
 * node_modules (setWasmPaths with the package's dist directory): no network. Single-threaded (SIMD).
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Sequential, LSTM, Dense, Adam, tensor } from "../src/index.js";
import {
  type Options, type Result, SHAPES, shape, shapeLabel, stepFlops, registerChild, spawnChild, timeSteps,
  median, formatTime, randomBatch, standalone,
} from "./harness.js";
import "./train-step.js"; // registers the "ours" child measurement

type Engine = "ours" | "tfjs-cpu" | "tfjs-wasm";
const ENGINES: Engine[] = ["ours", "tfjs-cpu", "tfjs-wasm"];

registerChild("tfjs", async (args) => {
  const s = shape(args.shape!);
  const backend = args.backend!;
  const tf = await import("@tensorflow/tfjs");
  if (backend === "wasm") {
    const wasm = await import("@tensorflow/tfjs-backend-wasm");
    const req = createRequire(import.meta.url);
    wasm.setWasmPaths(join(dirname(req.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist") + "/");
  }
  // tfjs's cpu backend prints a banner suggesting tfjs-node on first use; keep the bench output clean.
  const warn = console.warn;
  console.warn = (...a: unknown[]) => { if (!String(a[0]).includes("tfjs-node")) warn(...a); };
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs backend ${backend} did not initialise`);
  await tf.ready();
  const model = tf.sequential();
  model.add(tf.layers.lstm({ units: s.H, inputShape: [s.T, s.I], recurrentActivation: "sigmoid", recurrentInitializer: "glorotUniform" }));
  model.add(tf.layers.dense({ units: 1, activation: "sigmoid" }));
  model.compile({ optimizer: tf.train.adam(1e-3), loss: "binaryCrossentropy" });
  // The batch: the same seeded values as our train-step bench.
  const { xs, ys } = randomBatch(s, 101);
  const x = tf.tensor3d(xs), y = tf.tensor2d(ys);
  // Check: the same loss from our engine on tfjs's initial weights.
  const tfLoss = (model.evaluate(x, y) as import("@tensorflow/tfjs").Scalar).dataSync()[0]!;
  const ours = new Sequential([new LSTM({ units: s.H, inputDim: s.I }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1, backend: "js" });
  ours.compile({ optimizer: new Adam(), loss: "binaryCrossentropy" });
  ours.setWeights(model.getWeights().map((w) => w.arraySync() as number[][]));
  const ourLoss = ours.testOnBatch(tensor(xs), tensor(ys)).loss;
  if (!(Math.abs(ourLoss - tfLoss) <= 1e-4 * (1 + Math.abs(tfLoss)))) {
    throw new Error(`loss mismatch: tfjs ${tfLoss} vs ours ${ourLoss} on the same weights and batch`);
  }
  const samples = await timeSteps(() => model.trainOnBatch(x, y), Number(args.budget ?? 1500));
  return { samples, tfLoss, ourLoss, backend: tf.getBackend() };
});

function measure(engine: Engine, sn: string, budget: string): number[] | null {
  const r = engine === "ours"
    ? spawnChild("ours", { shape: sn, dtype: "float64", budget })
    : spawnChild("tfjs", { shape: sn, backend: engine === "tfjs-cpu" ? "cpu" : "wasm", budget });
  return r ? (r as { samples: number[] }).samples : null;
}

export async function runPeer(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  // Shape names among the filters (e.g. `peer S2`) pick shapes; otherwise all (S0 … S2 with --quick).
  const named = SHAPES.filter((s) => opts.filters.includes(s.name));
  const shapes = named.length ? named : SHAPES.filter((s) => (opts.quick ? s.name <= "S2" : true));
  const rounds = opts.quick ? 1 : 2, budget = String(opts.quick ? 400 : 1500);
  console.log(`\n## peer: one training step, ours vs @tensorflow/tfjs cpu and wasm (each engine in its own process, ${rounds} interleaved round${rounds > 1 ? "s" : ""})`);
  const med: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const s of shapes) {
      for (const e of ENGINES) {
        const prev = med[`${s.name} ${e}`];
        if (round > 0 && prev && prev[0]! > 5000) continue; // seconds per step: once is enough
        const samples = measure(e, s.name, budget);
        if (!samples) continue;
        (med[`${s.name} ${e}`] ??= []).push(median(samples));
        console.log(`  round ${round + 1} ${s.name} ${e.padEnd(9)} ${formatTime(median(samples)).padStart(10)} (${samples.length} steps)`);
      }
    }
  }
  console.log(`\n${"shape".padEnd(30)} ${"ours".padStart(10)} ${"tfjs cpu".padStart(10)} ${"tfjs wasm".padStart(10)}   cpu/ours  wasm/ours   GFLOP/s ours / cpu / wasm`);
  const table: Record<string, unknown> = {};
  for (const s of shapes) {
    const t = Object.fromEntries(ENGINES.map((e) => [e, med[`${s.name} ${e}`] ? median(med[`${s.name} ${e}`]!) : NaN])) as Record<Engine, number>;
    const f = stepFlops(s), gf = (ms: number) => (Number.isFinite(ms) ? (f / ms / 1e6).toFixed(2) : "n/a");
    const rc = t["tfjs-cpu"] / t.ours, rw = t["tfjs-wasm"] / t.ours;
    console.log(`${shapeLabel(s).padEnd(30)} ${formatTime(t.ours).padStart(10)} ${formatTime(t["tfjs-cpu"]).padStart(10)} ${formatTime(t["tfjs-wasm"]).padStart(10)}   ` +
      `${(rc.toFixed(1) + "×").padStart(8)} ${(rw.toFixed(1) + "×").padStart(10)}   ${gf(t.ours)} / ${gf(t["tfjs-cpu"])} / ${gf(t["tfjs-wasm"])}`);
    table[s.name] = { oursMs: t.ours, tfjsCpuMs: t["tfjs-cpu"], tfjsWasmMs: t["tfjs-wasm"], cpuOverOurs: rc, wasmOverOurs: rw };
    for (const e of ENGINES) {
      if (!Number.isFinite(t[e])) continue;
      results.push({
        name: `peer:${e}:${shapeLabel(s)}`, group: "peer", medianMs: t[e], meanMs: t[e], rmePercent: NaN,
        samples: med[`${s.name} ${e}`]!.length, opsPerSample: 1, flops: f, gflops: f / (t[e] * 1e6),
      });
    }
  }
  return { peer: table };
}

await standalone("peer-tfjs", import.meta.url, runPeer);
