/**
 * The Embedding's backward at a large vocabulary: Embedding(V, D = 32) → LSTM(32) → Dense(1, sigmoid), BCE, at
 * V = 1,000 / 10,000 / 50,000 with B = 32, T = 20 fixed (float64, the default backend). The backward scatter-adds
 * each (row, step)'s gradient into the row of its id, B·T·D adds whatever V; what does grow with V is every pass
 * over the whole parameter buffer, which this bench times apart:
 *
 * - `embeddingBackward:V=…`: the layer's backward alone (src/layers/embedding.ts) on the ids and a gradient from
 *   above, B·T·D work: its time should not move with V.
 * - `embeddingGrads:V=…`: `computeGradients` on the model: forward, loss, the whole backward, and two passes over
 *   the V·D + LSTM + Dense parameters (the gradient buffer zeroed before the backward, every gradient copied out
 *   into the returned tensors).
 * - `embeddingGradBuffer:V=…`: the memory traffic of those two passes alone (a buffer of the model's parameter
 *   count zeroed, then copied into a preallocated one); computeGradients also allocates its copies (12.9 MB at
 *   V = 50,000), whose cost in allocation and collection varies from run to run.
 * - `embeddingStep:V=…`: `trainOnBatch`: the pass plus the Adam step over every parameter (V·D of them the
 *   table's), which is proportional to V.
 *
 * After the cases: their medians per V with the ratio V = 50,000 over V = 1,000, then paired rounds (each V's
 * layer backward, computeGradients and trainOnBatch timed in turn within a round, the ratio taken per round, medians
 * over the rounds; robust to a shared machine's slow spells) and the layer backward's share of computeGradients.
 *
 * Check before timing: the layer's dE against a naive accumulation (each row the sum of the gradients of the
 * steps that read it, untouched rows zero), to 1e-12; the model's dE on two entries of a used row and one of an
 * unused row against central differences of testOnBatch.
 *
 *   npx tsx bench/embedding.ts        (or npm run bench -- embedding)
 */
import { Sequential, Embedding, LSTM, Dense, Adam } from "../src/index.js";
import type { GradStream, PassContext, Stream } from "../src/layers/layer.js";
import {
  type Case, type Options, type Spec, type Result, rng, runSpecs, standalone, defaultBackend, formatTime, assertClose, median,
} from "./harness.js";

const B = 32, T = 20, D = 32, H = 32;
const VOCABS = [1000, 10000, 50000];

/** Ids [B, T], uniform over [1, V) (seeded). */
function ids(V: number): number[][] {
  const r = rng(V);
  return Array.from({ length: B }, () => Array.from({ length: T }, () => 1 + Math.floor(r() * (V - 1))));
}

function labels(): number[][] {
  return Array.from({ length: B }, (_, b) => [b % 2]);
}

function model(V: number): Sequential {
  const m = new Sequential([
    new Embedding({ inputDim: V, outputDim: D }), new LSTM({ units: H }), new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed: 5, backend: defaultBackend() });
  m.compile({ optimizer: new Adam({ learningRate: 1e-3 }), loss: "binaryCrossentropy" });
  return m;
}

const label = (V: number) => `V=${V},B=${B},T=${T},D=${D},H=${H}`;

/** The layer alone: bound to its own V·D buffers, fed time-major ids and a random gradient from above. */
export function layerCase(V: number): Case {
  const layer = new Embedding({ inputDim: V, outputDim: D });
  const params = new Float64Array(V * D), grads = new Float64Array(V * D);
  layer.bind(params, grads, 0);
  const ws = layer.workspace("float64", B, T, "sequence", false, null);
  const rows = ids(V), idBuf = new Float64Array(T * B);
  for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) idBuf[t * B + b] = rows[b]![t]!;
  const r = rng(7);
  const g = new Float64Array(T * B * D);
  for (let k = 0; k < g.length; k++) g[k] = 2 * r() - 1;
  const x: Stream = { buf: idBuf, off: 0 };
  const dOut: GradStream = { buf: g, off: 0, from: 0 };
  const dx: GradStream = { buf: new Float64Array(0), off: 0, from: 0 };
  const pass: PassContext = { valid: null, dhNorms: null, study: null, needDx: false, logitGrad: false, infer: false };
  return {
    name: `embeddingBackward:${label(V)}`,
    group: "embedding",
    check: () => {
      grads.fill(0);
      layer.backward(ws, x, 0, T, dOut, pass, dx);
      const want = new Float64Array(V * D);
      for (let q = 0; q < T * B; q++) for (let j = 0; j < D; j++) want[idBuf[q]! * D + j] += g[q * D + j]!;
      assertClose("dE vs a naive accumulation", grads, want, 1e-12);
      if (grads.subarray(0, D).some((v) => v !== 0)) throw new Error("row 0 (never read) has a gradient");
    },
    // Accumulates, as the engine's backward does after the buffer is zeroed (the zeroing is the model's, timed below).
    run: () => layer.backward(ws, x, 0, T, dOut, pass, dx),
    note: (ms) => `${((ms * 1e6) / (B * T * D)).toFixed(2)} ns per (row, step, unit)`,
  };
}

/** dE of the model at a few entries against central differences of testOnBatch. */
function checkModel(m: Sequential, x: number[][], y: number[][], V: number): void {
  const g = m.computeGradients(x, y).grads[0]!.data;
  const used = x[0]![0]!, unused = 0;
  const w = m.getWeights(), E = w[0]!.data, h = 1e-5;
  for (const k of [used * D, used * D + D - 1, unused * D + 3]) {
    const e0 = E[k]!;
    E[k] = e0 + h; m.setWeights(w); const up = m.testOnBatch(x, y).loss;
    E[k] = e0 - h; m.setWeights(w); const dn = m.testOnBatch(x, y).loss;
    E[k] = e0; m.setWeights(w);
    assertClose(`dE[${Math.floor(k / D)}][${k % D}] (V=${V}) vs central difference`, [g[k]!], [(up - dn) / (2 * h)], 1e-6, 1e-3);
  }
}

export function gradsCase(V: number): Case {
  const m = model(V), x = ids(V), y = labels();
  return {
    name: `embeddingGrads:${label(V)}`,
    group: "embedding",
    check: () => checkModel(m, x, y, V),
    run: () => { m.computeGradients(x, y); },
  };
}

/** A buffer of the model's parameter count zeroed, then copied into another (preallocated): the memory traffic of
 * computeGradients' two passes over every parameter, without the allocation of the returned copies. */
export function bufferCase(V: number): Case {
  const n = V * D + new LSTM({ units: H, inputDim: D }).paramCount() + H + 1;
  const buf = new Float64Array(n), copy = new Float64Array(n);
  return {
    name: `embeddingGradBuffer:${label(V)}`,
    group: "embedding",
    check: () => {
      const m = model(V);
      m.predict(ids(V)); // built
      if (m.countParams() !== n) throw new Error(`${m.countParams()} parameters, expected ${n}`);
    },
    run: () => { buf.fill(0); copy.set(buf); },
    note: () => `${n} parameters`,
  };
}

export function stepCase(V: number): Case {
  const m = model(V), x = ids(V), y = labels();
  return {
    name: `embeddingStep:${label(V)}`,
    group: "embedding",
    check: () => {
      const before = m.getWeights()[0]!.data.slice(0, D);
      const { loss } = m.trainOnBatch(x, y);
      if (!Number.isFinite(loss)) throw new Error(`loss ${loss}`);
      // Row 0 is never read: its gradient is zero, so Adam leaves it where it was.
      assertClose("row 0 after a step", m.getWeights()[0]!.data.slice(0, D), before, 0);
    },
    run: () => { m.trainOnBatch(x, y); },
  };
}

export function embeddingSpecs(opts: Options): Spec[] {
  const vocabs = opts.quick ? [1000, 50000] : VOCABS;
  const kinds: [string, (V: number) => Case][] = [
    ["embeddingBackward", layerCase], ["embeddingGrads", gradsCase], ["embeddingGradBuffer", bufferCase], ["embeddingStep", stepCase],
  ];
  return kinds.flatMap(([k, build]) => vocabs.map((V) => ({ name: `${k}:${label(V)}`, group: "embedding", build: () => build(V) })));
}

/** Median time per call of f over `calls` calls (after one untimed call), in ms. */
function burst(f: () => unknown, calls: number): number {
  f();
  const xs: number[] = [];
  for (let k = 0; k < calls; k++) {
    const t0 = performance.now();
    f();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

/**
 * Paired rounds: in each round every vocabulary's layer backward, computeGradients and trainOnBatch are timed in
 * turn (a short burst each, the order of the vocabularies rotating), so that a slow spell of a shared machine
 * counts against every V alike; the ratio V = max over V = min is taken within each round, and the medians over
 * the rounds are reported.
 */
function pairedRounds(opts: Options, vocabs: number[]): Record<string, unknown> {
  const rounds = opts.quick ? 3 : 9;
  const subjects = vocabs.map((V) => {
    const layer = layerCase(V), m = model(V), x = ids(V), y = labels();
    return { V, backward: () => { for (let k = 0; k < 50; k++) layer.run(); }, grads: () => m.computeGradients(x, y), step: () => m.trainOnBatch(x, y) };
  });
  const what = [
    ["backward", "the layer's backward (B·T·D)", 1 / 50, 40], ["grads", "computeGradients", 1, 10], ["step", "trainOnBatch (Adam over V·D)", 1, 10],
  ] as const;
  const ms: Record<string, number[][]> = { backward: [], grads: [], step: [] };
  for (let r = 0; r < rounds; r++) {
    const order = subjects.map((_, i) => subjects[(i + r) % subjects.length]!);
    for (const [k, , scale, calls] of what) {
      const row = new Array<number>(subjects.length);
      for (const sub of order) row[subjects.indexOf(sub)] = burst(sub[k], calls) * scale;
      ms[k]!.push(row);
    }
  }
  console.log(`
Paired rounds (${rounds}; medians over the rounds; the last column: the median over rounds of V=${vocabs[vocabs.length - 1]} / V=${vocabs[0]}):`);
  const out: Record<string, unknown> = { rounds };
  for (const [k, label] of what) {
    const per = vocabs.map((_, i) => median(ms[k]!.map((row) => row[i]!)));
    const ratio = median(ms[k]!.map((row) => row[row.length - 1]! / row[0]!));
    console.log(`  ${label.padEnd(40)} ${vocabs.map((V, i) => `V=${V} ${formatTime(per[i]!)}`).join(", ")}; ×${ratio.toFixed(2)}`);
    out[k] = { medianMs: Object.fromEntries(vocabs.map((V, i) => [V, per[i]])), ratio };
  }
  const share = vocabs.map((_, i) => median(ms.backward!.map((row, r) => row[i]! / ms.grads![r]![i]!)));
  console.log(`  the layer's backward as a share of computeGradients: ${vocabs.map((V, i) => `V=${V} ${(100 * share[i]!).toFixed(2)}%`).join(", ")}`);
  out.backwardShare = Object.fromEntries(vocabs.map((V, i) => [V, share[i]]));
  return out;
}

export async function runEmbedding(opts: Options, results: Result[]): Promise<Record<string, unknown>> {
  const n = runSpecs(opts, `embedding: Embedding(V, ${D}) → LSTM(${H}) → Dense(1), B=${B}, T=${T}, float64, backend ${defaultBackend()}: ` +
    "the layer's backward, computeGradients, a parameter-sized buffer's two passes, trainOnBatch", embeddingSpecs(opts), results);
  if (n === 0) return {};
  const at = (k: string, V: number) => results.find((r) => r.name === `${k}:${label(V)}`)?.medianMs;
  const vocabs = (opts.quick ? [1000, 50000] : VOCABS).filter((V) => ["embeddingBackward", "embeddingGrads", "embeddingStep"].some((k) => at(k, V) !== undefined));
  if (vocabs.length < 2) return {};
  const summary: Record<string, unknown> = {};
  console.log(`
The cases' medians by vocabulary (V=${vocabs[vocabs.length - 1]} over V=${vocabs[0]} in the last column):`);
  for (const [k, what] of [
    ["embeddingBackward", "the layer's backward (B·T·D)"], ["embeddingGrads", "computeGradients"],
    ["embeddingGradBuffer", "zero + copy of a parameter-sized buffer"], ["embeddingStep", "trainOnBatch (Adam over V·D)"],
  ] as const) {
    const ms = vocabs.map((V) => at(k, V));
    if (ms.some((v) => v === undefined || Number.isNaN(v))) continue;
    const ratio = ms[ms.length - 1]! / ms[0]!;
    console.log(`  ${what.padEnd(40)} ${vocabs.map((V, i) => `V=${V} ${formatTime(ms[i]!)}`).join(", ")}; ×${ratio.toFixed(2)}`);
    summary[k] = { ...Object.fromEntries(vocabs.map((V, i) => [V, ms[i]])), ratio };
  }
  summary.paired = pairedRounds(opts, vocabs);
  return { embedding: summary };
}

await standalone("embedding", import.meta.url, runEmbedding);
