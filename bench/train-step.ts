/**
 * The whole training step, as a user calls it: Sequential.trainOnBatch on LSTM(H) → Dense(1, sigmoid)
 * with binary cross-entropy and Adam, at the shapes S0 … S4 of PERFORMANCE.md (validation, forward,
 * loss, backward, the atomic Adam update and the state commit: everything).
 *
 * Also here:
 * - `stepMatmuls:S…`: exactly the matmul calls of one step (same shapes, same strides, same order) and
 *   nothing else. The step's time over this is what the elementwise work, the backward's bookkeeping and
 *   Adam add; the target (issues 4 and 10) is ≤ 15% at S3 and S4. `stepMatmuls:S…,float32,wasm`: the same
 *   products on the SIMD backend (operands in a WebAssembly memory), beside its float32 step.
 * - float32 vs float64: the step in each dtype, each in its own process (a kernel that has seen both array
 *   types is compiled polymorphic, which would slow whichever runs second), two interleaved rounds.
 *
 * Check before timing: the loss is finite, and dL/dw from computeGradients matches a central difference
 * of testOnBatch's loss for a weight in each of the LSTM kernel, recurrent kernel and the Dense kernel.
 * FLOPs: step ≈ 3 × forward = 3 · 2·B·T·(I+H)·4H.
 */
import { Sequential, LSTM, Dense, Adam, tensor, type DType } from "../src/index.js";
import { type FloatArray, type Tensor, allocate } from "../src/tensor/tensor.js";
import { HOLD_NEW, HOLD_SAME, matmulNN, matmulNT, matmulTN2 } from "../src/tensor/kernels.js";
import { WasmArena, withArena } from "../src/wasm/arena.js";
import { setThreads } from "../src/node/index.js";
import {
  type Case, type Options, type Spec, type Result, type Shape, SHAPES, shape, rng, randomArray, runSpecs,
  stepFlops, shapeLabel, registerChild, spawnChild, timeSteps, median, formatTime, suiteSelected, randomBatch,
  standalone, FMA,
} from "./harness.js";

export interface StepModel {
  model: Sequential;
  x: Tensor; // (B, T, I)
  y: Tensor; // (B, 1) labels 0/1
}

/** The benchmark model and one batch of data, seeded. */
export function makeStepModel(s: Shape, dtype: DType, seed = 1, backend: "js" | "wasm" = "js"): StepModel {
  const model = new Sequential([
    new LSTM({ units: s.H, inputDim: s.I }),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed, dtype, backend, ...(FMA && backend === "wasm" ? { fma: true } : {}) });
  model.compile({ optimizer: new Adam({ learningRate: 1e-3 }), loss: "binaryCrossentropy" });
  const { xs, ys } = randomBatch(s, seed + 100);
  return { model, x: tensor(xs, dtype), y: tensor(ys, dtype) };
}

/** Throws unless the loss is finite and three gradient entries match central differences. */
export function checkStepModel(m: StepModel, s: Shape): void {
  const { model, x, y } = m;
  const g = model.computeGradients(x, y);
  if (!Number.isFinite(g.loss)) throw new Error(`loss is ${g.loss}`);
  if (model.dtype === "float32") return; // differences in float32 are too coarse to check a gradient
  const G = 4 * s.H;
  // Flat indices: LSTM kernel (I, G), recurrent kernel (H, G), bias (G), then Dense kernel (H, 1).
  const probes = [
    { name: "lstm kernel[0, 1]", k: 1, grad: g.grads[0]!.data[1]! },
    { name: `lstm recurrentKernel[${s.H - 1}, ${G - 1}]`, k: s.I * G + s.H * G - 1, grad: g.grads[1]!.data[s.H * G - 1]! },
    { name: "dense kernel[0]", k: s.I * G + s.H * G + G, grad: g.grads[3]!.data[0]! },
  ];
  for (const p of probes) {
    const w = model.engine.params[p.k]!, eps = 1e-5;
    model.engine.params[p.k] = w + eps;
    const up = model.testOnBatch(x, y).loss;
    model.engine.params[p.k] = w - eps;
    const down = model.testOnBatch(x, y).loss;
    model.engine.params[p.k] = w;
    const fd = (up - down) / (2 * eps);
    if (!(Math.abs(fd - p.grad) <= 1e-6 * Math.abs(fd) + 1e-9)) {
      throw new Error(`dL/d ${p.name} = ${p.grad} vs finite difference ${fd}`);
    }
  }
}

export function trainStepName(s: Shape, dtype: DType, backend: "js" | "wasm" = "js"): string {
  return `trainStep:${shapeLabel(s)},${dtype}${backend === "wasm" ? ",wasm" : ""}`;
}

export function trainStepCase(s: Shape, dtype: DType, backend: "js" | "wasm" = "js"): Case {
  const m = makeStepModel(s, dtype, 1, backend);
  if (backend === "wasm" && m.model.backend !== "wasm") throw new Error("the wasm backend is not available here");
  return {
    name: trainStepName(s, dtype, backend),
    group: "train-step",
    flops: stepFlops(s),
    check: () => checkStepModel(m, s),
    run: () => { m.model.trainOnBatch(m.x, m.y); },
    ...(s.B === 1 ? {} : s.name === "S4" ? { iterations: 3, time: 0, warmupIterations: 1 } : s.name === "S3" ? { iterations: 5, time: 0, warmupIterations: 1 } : {}),
  };
}

/**
 * A batch of one at the sizes of S2 and S3 (T, I, H), float32 on the SIMD backend: the path of a batch below four
 * rows (each LSTM layer's forward and backward in one WebAssembly call; see src/wasm/steps.ts), as streaming or
 * sample-by-sample training takes it.
 */
export const BATCH_OF_ONE: Shape[] = SHAPES.filter((s) => s.name === "S2" || s.name === "S3").map((s) => ({ ...s, B: 1 }));

/**
 * The matmuls of one training step and nothing else, on buffers of the engine's shapes (float64):
 * forward X·W over all T·B rows, then per step h_{t-1}·Wr (accumulated into that step's gates);
 * backward per step dZ_t·Wrᵀ, then Xᵀ·dZ and Hᵀ·dZ over all rows (one call, as lstm.ts makes it). The head's (·, 1) products are
 * left out: they are part of the step's overhead.
 */
export function stepMatmulsCase(s: Shape, dtype: DType = "float64", backend: "js" | "wasm" = "js"): Case {
  const { B, T, I, H } = s, G = 4 * H, BH = B * H, R = T * B;
  const r = rng(31);
  // The SIMD backend's products run on buffers in its memory: the same values, copied into an arena (its products
  // fused with --fma, as the step's are).
  const arena = backend === "wasm" ? WasmArena.create(undefined, FMA) : null;
  if (backend === "wasm" && !arena) throw new Error("the wasm backend is not available here");
  const put = (v: FloatArray): FloatArray => withArena(arena, () => { const a = allocate(dtype, v.length); a.set(v); return a; });
  const zero = (n: number): FloatArray => withArena(arena, () => allocate(dtype, n));
  const xs = put(randomArray(Float64Array, R * I, r)), W = put(randomArray(Float64Array, I * G, r)), Wr = put(randomArray(Float64Array, H * G, r, 0.1));
  const hs = put(randomArray(Float64Array, (T + 1) * BH, r)), gates = zero(R * G), dZ = put(randomArray(Float64Array, R * G, r));
  const dh = zero(BH), dWeights = zero((I + H) * G); // dW (I, G) then dWr (H, G), as in the model's gradients
  const run = (): void => {
    matmulNN(R, G, I, xs, 0, I, W, 0, G, gates, 0, G, false);
    // As lstm.ts: the recurrent kernel held packed over each loop (the TypeScript kernels ignore the flag).
    for (let t = 0; t < T; t++) matmulNN(B, G, H, hs, t * BH, H, Wr, 0, G, gates, t * B * G, G, true, t === 0 ? HOLD_NEW : HOLD_SAME);
    for (let t = T - 1; t >= 0; t--) matmulNT(B, H, G, dZ, t * B * G, G, Wr, 0, G, dh, 0, H, false, t === T - 1 ? HOLD_NEW : HOLD_SAME);
    matmulTN2(I, H, G, R, xs, 0, I, hs, 0, H, dZ, 0, G, dWeights, 0, G, true); // Xᵀ·dZ and Hᵀ·dZ, one product as lstm.ts
    // (No dZ·Wᵀ: a training step skips the bottom layer's dL/dx.)
  };
  const label = `stepMatmuls:${shapeLabel(s)}${backend === "wasm" ? `,${dtype},wasm` : ""}`;
  const tol = dtype === "float32" ? 1e-5 : 1e-12;
  return {
    name: label,
    group: "train-step",
    flops: stepFlops(s),
    check: () => {
      run();
      // dh after the loop is dZ_0 · Wrᵀ: compare a few entries with plain dot products.
      for (const [b, j] of [[0, 0], [B - 1, H - 1], [B >> 1, H >> 1]] as const) {
        let v = 0;
        for (let k = 0; k < G; k++) v += dZ[b * G + k]! * Wr[j * G + k]!;
        if (!(Math.abs(v - dh[b * H + j]!) <= tol * (1 + Math.abs(v)))) throw new Error(`dh[${b}, ${j}] = ${dh[b * H + j]} vs ${v}`);
      }
    },
    run,
    ...(s.name === "S4" ? { iterations: 3, time: 0, warmupIterations: 1 } : s.name === "S3" ? { iterations: 5, time: 0, warmupIterations: 1 } : {}),
  };
}

export function trainStepSpecs(opts: Options): Spec[] {
  const shapes = opts.quick ? SHAPES.filter((s) => s.name === "S0" || s.name === "S1" || s.name === "S2") : SHAPES;
  const out: Spec[] = shapes.map((s) => ({ name: trainStepName(s, "float64"), group: "train-step", build: () => trainStepCase(s, "float64") }));
  // The SIMD backend (its products only, so far), float64 and float32.
  for (const s of shapes) {
    for (const dt of ["float64", "float32"] as DType[]) {
      out.push({ name: trainStepName(s, dt, "wasm"), group: "train-step", build: () => trainStepCase(s, dt, "wasm") });
    }
  }
  for (const s of opts.quick ? [] : BATCH_OF_ONE) {
    out.push({ name: trainStepName(s, "float32", "wasm"), group: "train-step", build: () => trainStepCase(s, "float32", "wasm") });
  }
  for (const s of shapes.filter((x) => x.name >= "S2")) {
    out.push({ name: `stepMatmuls:${shapeLabel(s)}`, group: "train-step", build: () => stepMatmulsCase(s) });
    out.push({ name: `stepMatmuls:${shapeLabel(s)},float32,wasm`, group: "train-step", build: () => stepMatmulsCase(s, "float32", "wasm") });
  }
  return out;
}

/**
 * What everything that is not a matmul adds to a step, measured directly: for each shape, R rounds that each
 * time the step and then its matmuls alone back to back (so the machine's changes of speed, which come
 * seconds apart, mostly hit both sides of a round alike), one ratio per round; printed as the median and the
 * interquartile range over the rounds (a round that straddles a change of speed lands in the tails), and the
 * ratio of the best step to the best matmuls. (A difference of two medians taken minutes apart measured
 * anything from -10% to +14% at S2.)
 */
function overheadRounds(
  opts: Options, shapes: Shape[], dtype: DType = "float64", backend: "js" | "wasm" = "js",
): Record<string, { median: number; q1: number; q3: number; best: number; rounds: number }> {
  const out: Record<string, { median: number; q1: number; q3: number; best: number; rounds: number }> = {};
  for (const s of shapes) {
    const step = trainStepCase(s, dtype, backend), mm = stepMatmulsCase(s, dtype, backend);
    const reps = s.name === "S2" ? 4 : 1;
    const rounds = opts.quick ? 3 : s.name === "S4" ? 9 : s.name === "S3" ? 15 : 25;
    const time = (c: Case): number => {
      const t0 = performance.now();
      for (let k = 0; k < reps; k++) c.run();
      return (performance.now() - t0) / reps;
    };
    time(step); time(mm); // warm
    const ratios: number[] = [];
    let bestStep = Infinity, bestMm = Infinity;
    for (let r = 0; r < rounds; r++) {
      const a = time(step), b = time(mm);
      bestStep = Math.min(bestStep, a);
      bestMm = Math.min(bestMm, b);
      ratios.push(a / b - 1);
    }
    ratios.sort((a, b) => a - b);
    const q = (p: number): number => ratios[Math.min(ratios.length - 1, Math.round(p * (ratios.length - 1)))]!;
    const o = { median: median(ratios), q1: q(0.25), q3: q(0.75), best: bestStep / bestMm - 1, rounds };
    out[s.name] = o;
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    console.log(`  ${s.name}${backend === "wasm" ? ` (${dtype}, wasm)` : ""}: everything else adds ${pct(o.median)} (median of ${rounds} paired rounds, quartiles ${pct(o.q1)} … ${pct(o.q3)}; ` +
      `best step over best matmuls ${pct(o.best)})${s.name === "S3" || s.name === "S4" ? " (target ≤ 15%)" : ""}`);
  }
  return out;
}

// The child measurement: our step at one shape and dtype, in a fresh process.
registerChild("ours", async (args) => {
  const s = shape(args.shape!);
  const m = makeStepModel(s, (args.dtype ?? "float64") as DType, 1, (args.backend ?? "js") as "js" | "wasm");
  if (args.backend === "wasm" && m.model.backend !== "wasm") throw new Error("the wasm backend is not available here");
  checkStepModel(m, s);
  // threads > 1: half the batch in a worker (minFlops 0: split whatever the default threshold would say)
  const threads = Number(args.threads ?? 1);
  if (threads > 1) setThreads(m.model, threads, { minFlops: 0 });
  const samples = await timeSteps(() => m.model.trainOnBatch(m.x, m.y), Number(args.budget ?? 1500));
  if (threads > 1) m.model.dispose();
  return { samples };
});

/** float32 vs float64 at S2 and S3, each dtype in its own process, interleaved over two rounds. */
export function dtypeComparison(opts: Options): Record<string, unknown> {
  const shapes = opts.quick ? ["S2"] : ["S2", "S3"];
  const rounds = opts.quick ? 1 : 2, budget = String(opts.quick ? 400 : 2000);
  const samples: Record<string, number[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const sn of shapes) {
      for (const dtype of ["float64", "float32"]) {
        const r = spawnChild("ours", { shape: sn, dtype, budget }) as { samples: number[] } | null;
        if (r) (samples[`${sn} ${dtype}`] ??= []).push(median(r.samples));
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const sn of shapes) {
    const f64 = samples[`${sn} float64`], f32 = samples[`${sn} float32`];
    if (!f64 || !f32) continue;
    const a = median(f64), b = median(f32), s = shape(sn);
    console.log(`  trainStep:${shapeLabel(s)}: float64 ${formatTime(a)} (${(stepFlops(s) / a / 1e6).toFixed(2)} GFLOP/s), ` +
      `float32 ${formatTime(b)} (${(stepFlops(s) / b / 1e6).toFixed(2)} GFLOP/s): float32 takes ${(b / a).toFixed(2)}× float64's time`);
    out[sn] = { float64Ms: a, float32Ms: b, float32OverFloat64: b / a, rounds: f64.length };
  }
  return out;
}

export async function runTrainStep(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  runSpecs(opts, "train-step: Sequential.trainOnBatch, LSTM(H) → Dense(1, sigmoid), BCE, Adam (float64; step ≈ 3 × 2·B·T·(I+H)·4H)",
    trainStepSpecs(opts), results);
  const extra: Record<string, unknown> = {};
  // The paired rounds of each backend for the shapes whose products were timed (`-- float32,wasm`: the SIMD ones alone).
  const paired = (suffix: string): Shape[] => SHAPES.filter((s) => s.name >= "S2" && results.some((r) => r.name === `stepMatmuls:${shapeLabel(s)}${suffix}`) && (!opts.quick || s.name === "S2"));
  const js = paired(""), wasm = paired(",float32,wasm");
  if (js.length || wasm.length) console.log("\nOverhead over the step's matmuls (elementwise gates, head, loss, backward bookkeeping, Adam, validation):");
  if (js.length) extra.overhead = overheadRounds(opts, js);
  if (wasm.length) extra.overheadWasm = overheadRounds(opts, wasm, "float32", "wasm");
  if (suiteSelected(opts, "dtype", "train-step", "float32")) {
    console.log("\nfloat32 vs float64 (each dtype in its own process; medians over interleaved rounds):");
    extra.dtype = dtypeComparison(opts);
  }
  return extra;
}

await standalone("train-step", import.meta.url, runTrainStep);
