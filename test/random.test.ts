/**
 * randomNormal and randomUniform: seeded and reproducible, the right moments and range, float32 or float64,
 * and every argument checked.
 */
import { describe, expect, it } from "vitest";
import { randomNormal, randomUniform, ValueError } from "../src/index.js";

describe("seeded random tensors", () => {
  it("the same seed gives the same values; another seed, others", () => {
    expect(Array.from(randomNormal([3, 4], { seed: 1 }).data)).toEqual(Array.from(randomNormal([3, 4], { seed: 1 }).data));
    expect(Array.from(randomNormal([3, 4], { seed: 1 }).data)).not.toEqual(Array.from(randomNormal([3, 4], { seed: 2 }).data));
    expect(Array.from(randomUniform([5], { seed: "a" }).data)).toEqual(Array.from(randomUniform([5], { seed: "a" }).data));
    // Without a seed, a random one: two calls differ.
    expect(Array.from(randomUniform([8]).data)).not.toEqual(Array.from(randomUniform([8]).data));
  });

  it("normal: mean and standard deviation as asked (200,000 draws), shape and dtype", () => {
    const t = randomNormal([400, 500], { mean: 2, stddev: 0.5, seed: 7 });
    expect(t.shape).toEqual([400, 500]);
    expect(t.data).toBeInstanceOf(Float64Array);
    let s = 0, s2 = 0;
    for (const v of t.data) { s += v; s2 += v * v; }
    const n = t.data.length, mean = s / n, sd = Math.sqrt(s2 / n - mean * mean);
    expect(Math.abs(mean - 2)).toBeLessThan(4 * 0.5 / Math.sqrt(n)); // four standard errors
    expect(Math.abs(sd - 0.5)).toBeLessThan(0.005);
    const f = randomNormal([2, 3, 4], { seed: 7, dtype: "float32" });
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(Array.from(f.data)).toEqual(Array.from(randomNormal([2, 3, 4], { seed: 7 }).data, Math.fround));
  });

  it("uniform: every draw in [min, max), spread over it", () => {
    const t = randomUniform([10000], { min: -3, max: 5, seed: 4 });
    expect(Math.min(...t.data)).toBeGreaterThanOrEqual(-3);
    expect(Math.max(...t.data)).toBeLessThan(5);
    const buckets = new Array(8).fill(0);
    for (const v of t.data) buckets[Math.floor(v + 3)]++;
    for (const b of buckets) expect(Math.abs(b - 1250)).toBeLessThan(200);
  });

  it("refuses bad arguments by name", () => {
    expect(() => randomNormal([2, -1])).toThrow(/randomNormal shape: expected a non-empty array of non-negative integers like \[2, 10, 1\], got \[2,-1\]/);
    expect(() => randomNormal("3" as never)).toThrow(ValueError);
    expect(() => randomNormal([2], { stddev: -1 })).toThrow(/randomNormal stddev: expected a non-negative number, got -1/);
    expect(() => randomNormal([2], { std: 1 } as never)).toThrow(/randomNormal options: unknown option "std" \(did you mean "stddev"\?\)/);
    expect(() => randomUniform([2], { min: 1, max: 1 })).toThrow(/randomUniform max: expected a number above min \(1\), got 1/);
    expect(() => randomUniform([2], { dtype: "int32" as never })).toThrow(/randomUniform dtype: expected "float32" or "float64", got "int32"/);
    expect(() => randomUniform([2], { seed: NaN })).toThrow(/randomUniform seed: expected a finite number or a string, got NaN/);
    expect(() => randomUniform([1e6, 1e6])).toThrow(/more than 2\^31/);
    expect(randomUniform([0, 3], { seed: 1 }).shape).toEqual([0, 3]);
  });
});
