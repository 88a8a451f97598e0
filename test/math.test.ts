/**
 * tensor/math.ts: the elementary functions built from IEEE arithmetic alone, which make a seed give the
 * same bits in Node and in every browser (the browser test in test/package.test.ts checks that end to
 * end). Here: their accuracy, their special values, and the tables, proven correctly rounded with exact
 * BigInt arithmetic.
 *
 * Ulps are counted exactly: the number of doubles between the two values (via their bit patterns), so a
 * difference of one ulp is 1 whatever the exponent.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  exp, log, log1p, cos2pi, oneMinusPow, EXP2_FRAC, EXPM1_TABLE, EXPM1_RANGE, POW2, POW2_BIAS,
} from "../src/tensor/math.js";
import { Rng } from "../src/init.js";

const F = new Float64Array(1);
const I = new BigInt64Array(F.buffer);

/** A double's position on the number line of doubles (monotonic, -0 and +0 both 0). */
function ordinal(x: number): bigint {
  F[0] = x;
  const i = I[0]!;
  return i < 0n ? -(i & 0x7fffffffffffffffn) : i;
}

/** Doubles between a and b: 0 when equal, 1 for neighbours. */
function ulps(a: number, b: number): number {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b) ? 0 : Infinity;
  const d = ordinal(a) - ordinal(b);
  return Number(d < 0n ? -d : d);
}

/** A double as an exact fraction n / 2^k (k ≥ 0). */
function exact(x: number): { n: bigint; k: bigint } {
  F[0] = x;
  const bits = I[0]!;
  const e = Number((bits >> 52n) & 0x7ffn), m = bits & 0xfffffffffffffn;
  const mant = e === 0 ? m : m | (1n << 52n), pow = (e === 0 ? 1 : e) - 1075; // x = mant · 2^pow
  return pow >= 0 ? { n: mant << BigInt(pow), k: 0n } : { n: mant, k: BigInt(-pow) };
}

/** The midpoints between x and its two neighbours, as exact fractions n / 2^k. */
function midpoints(x: number): [{ n: bigint; k: bigint }, { n: bigint; k: bigint }] {
  const { n, k } = exact(x);
  // x = n / 2^k; one ulp of x is 2^(pow) = 2^-k when x is normal with a 53-bit n, so neighbours are n ± 1.
  const lowUlpHalf = x === 2 ** Math.floor(Math.log2(x)) ? 1n : 2n; // below a power of two the spacing halves
  return [{ n: 4n * n - lowUlpHalf, k: k + 2n }, { n: 4n * n + 2n, k: k + 2n }];
}

describe("the tables are correctly rounded (exact BigInt proof)", () => {
  it("EXP2_FRAC[j] is the double nearest 2^(j/64): its midpoints m- < 2^(j/64) < m+, i.e. m-^64 < 2^j < m+^64", () => {
    for (let j = 0; j < 64; j++) {
      const [lo, hi] = midpoints(EXP2_FRAC[j]!);
      // (n / 2^k)^64 vs 2^j  ⇔  n^64 vs 2^(j + 64k)
      const target = (k: bigint): bigint => 1n << (BigInt(j) + 64n * k);
      expect(lo.n ** 64n < target(lo.k), `2^(${j}/64) above the lower midpoint`).toBe(true);
      expect(hi.n ** 64n > target(hi.k), `2^(${j}/64) below the upper midpoint`).toBe(true);
    }
  });

  it("EXPM1_TABLE[n] is the double nearest 2^(n/64) - 1 for |n| ≤ 1024: (1 + m-)^64 < 2^n < (1 + m+)^64", () => {
    for (let n = -EXPM1_RANGE; n <= EXPM1_RANGE; n++) {
      const v = EXPM1_TABLE[n + EXPM1_RANGE]!;
      if (n === 0) { expect(v).toBe(0); continue; }
      const [m1, m2] = v > 0 ? midpoints(v) : midpoints(-v).map((m) => ({ n: -m.n, k: m.k })).reverse() as [{ n: bigint; k: bigint }, { n: bigint; k: bigint }];
      // (1 + a/2^k)^64 = (2^k + a)^64 / 2^(64k) vs 2^n  ⇔  (2^k + a)^64 vs 2^(n + 64k) (or 2^(64k) / 2^-n for n < 0)
      const cmp = (m: { n: bigint; k: bigint }): number => {
        const lhs = ((1n << m.k) + m.n) ** 64n;
        const e = BigInt(n) + 64n * m.k;
        const rhs = 1n << e;
        return lhs < rhs ? -1 : lhs > rhs ? 1 : 0;
      };
      expect(cmp(m1), `n = ${n}: above the lower midpoint`).toBe(-1);
      expect(cmp(m2), `n = ${n}: below the upper midpoint`).toBe(1);
    }
  });

  it("POW2 holds exact powers of two, subnormals included, 0 below 2^-1074 and Infinity from 2^1024", () => {
    for (let m = -1074; m < 1024; m++) expect(POW2[m + POW2_BIAS], `2^${m}`).toBe(2 ** m);
    expect(POW2[-1075 + POW2_BIAS]).toBe(0);
    expect(POW2[1024 + POW2_BIAS]).toBe(Infinity);
  });
});

describe("exp, log, log1p, cos2pi: within 1 ulp of V8's Math functions over their whole range", () => {
  // V8's Math.exp/log/log1p/cos are fdlibm ports, themselves within 1 ulp of the true values.
  const rng = new Rng("math");
  const N = 20000;

  it("exp over [-745, 710], including the subnormal results and the last finite ones", () => {
    let worst = 0;
    for (let i = 0; i < N; i++) {
      const x = -745.13 + rng.uniform() * (709.78 + 745.13);
      worst = Math.max(worst, ulps(exp(x), Math.exp(x)));
    }
    for (const x of [-745.1332191019411, -745, -744.44, -708.4, -708.39, -1e-300, 0, 1e-300, 1e-10, 0.5, 1, 2.5, 700, 709.7, 709.78, 709.782712893384]) {
      worst = Math.max(worst, ulps(exp(x), Math.exp(x)));
    }
    expect(worst).toBeLessThanOrEqual(1);
  });

  it("exp's edges and special values", () => {
    expect(exp(709.782712893384)).toBe(Math.exp(709.782712893384)); // the largest finite result
    expect(Number.isFinite(exp(709.78))).toBe(true);
    expect(exp(709.7828)).toBe(Infinity);
    expect(exp(-745)).toBe(5e-324); // e^-745 = 0.57·2^-1074: the smallest subnormal
    // Just below ln(2^-1075) the true value is under half the smallest subnormal: 0, correctly rounded
    // (fdlibm, so V8's Math.exp, returns 5e-324 there).
    expect(exp(-745.1332191019412)).toBe(0);
    expect(exp(-745.14)).toBe(0);
    expect(exp(0)).toBe(1);
    expect(exp(Infinity)).toBe(Infinity);
    expect(exp(-Infinity)).toBe(0);
    expect(exp(NaN)).toBeNaN();
  });

  it("log over every binade, subnormals included", () => {
    let worst = 0;
    for (let i = 0; i < N; i++) {
      const x = (1 + rng.uniform()) * 2 ** (Math.floor(rng.uniform() * 2098) - 1074);
      worst = Math.max(worst, ulps(log(x), Math.log(x)));
      const near1 = 1 + (rng.uniform() - 0.5) * 2 ** -Math.floor(rng.uniform() * 50);
      worst = Math.max(worst, ulps(log(near1), Math.log(near1)));
    }
    for (const x of [5e-324, 1e-310, 2.2250738585072014e-308, 0.5, Math.SQRT1_2, 1, Math.SQRT2, 2, Math.E, 10, Number.MAX_VALUE]) {
      worst = Math.max(worst, ulps(log(x), Math.log(x)));
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(log(1)).toBe(0);
    expect(log(0)).toBe(-Infinity);
    expect(log(-1)).toBeNaN();
    expect(log(Infinity)).toBe(Infinity);
    expect(log(NaN)).toBeNaN();
  });

  it("log1p from tiny arguments to large, on both sides of 0", () => {
    let worst = 0;
    for (let i = 0; i < N; i++) {
      const x = rng.uniform() * 2 ** (20 - Math.floor(rng.uniform() * 80));
      worst = Math.max(worst, ulps(log1p(x), Math.log1p(x)));
      const neg = -rng.uniform() * 2 ** -Math.floor(rng.uniform() * 60);
      worst = Math.max(worst, ulps(log1p(neg), Math.log1p(neg)));
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(log1p(1e-300)).toBe(1e-300);
    expect(log1p(0)).toBe(0);
    expect(log1p(-1)).toBe(-Infinity);
    expect(log1p(-2)).toBeNaN();
    expect(log1p(Infinity)).toBe(Infinity);
  });

  it("cos2pi(v) = cos(2πv): within 1 ulp of Math.cos/sin on the exactly reduced argument, exact at the quarter turns", () => {
    let worst = 0;
    for (let i = 0; i < N; i++) {
      const v = (rng.uniform() * 2 - 1) * 1000;
      const q = Math.round(4 * v), x = (v - q / 4) * 2 * Math.PI;
      const ref = [Math.cos(x), -Math.sin(x), -Math.cos(x), Math.sin(x)][q & 3]!;
      worst = Math.max(worst, ulps(cos2pi(v), ref));
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(cos2pi(0)).toBe(1);
    expect(cos2pi(0.5)).toBe(-1);
    expect(cos2pi(1)).toBe(1);
    expect(Math.abs(cos2pi(0.25))).toBe(0); // Math.cos(2π·0.25) is 6.1e-17: π is rounded
  });
});

describe("oneMinusPow(b, t) = 1 - b^t, Adam's bias correction", () => {
  it("is the correctly rounded value for the Adam betas (checked against exact rational arithmetic)", () => {
    for (const b of [0.9, 0.999, 0.5, 0.99]) {
      const { n, k } = exact(b);
      for (const t of [1, 2, 3, 7, 10, 100, 255, 256, 257, 1000, 4321]) {
        const got = oneMinusPow(b, t);
        // 1 - (n/2^k)^t = (2^(kt) - n^t) / 2^(kt); compare got's midpoints with it exactly.
        const num = (1n << (k * BigInt(t))) - n ** BigInt(t), den = k * BigInt(t);
        const [lo, hi] = midpoints(got);
        // lo.n / 2^lo.k < num / 2^den < hi.n / 2^hi.k, cross-multiplied by powers of two
        const scale = (a: bigint, from: bigint, to: bigint): bigint => (to >= from ? a << (to - from) : a);
        const K = [lo.k, hi.k, den].reduce((p, c) => (c > p ? c : p));
        expect(scale(lo.n, lo.k, K) < scale(num, den, K), `${b}^${t}: above the lower midpoint`).toBe(true);
        expect(scale(hi.n, hi.k, K) > scale(num, den, K), `${b}^${t}: below the upper midpoint`).toBe(true);
      }
    }
  });

  it("gives the same bits whatever came before (its tables are kept per b, its squarings grown for larger t), and as plain repeated squaring", () => {
    // A repeated-squaring reference over all of t's bits, written out here (oneMinusPow splits t at 256 instead,
    // which rounds the double-double differently, but both are far more precise than the double they round to):
    // the value must not depend on the calls made before.
    const ref = (b: number, t: number): number => {
      let lo = 0, hi = 1, bh = b, bl = 0;
      const mul = (ah: number, al: number, ch: number, cl: number): [number, number] => {
        // Dekker's product and a two-sum, as math.ts's ddMul (exact splitting at 2^27 + 1)
        const split = (x: number): [number, number] => { const c = 134217729 * x, h = c - (c - x); return [h, x - h]; };
        const p = ah * ch, [a1, a2] = split(ah), [c1, c2] = split(ch);
        const e = ((a1 * c1 - p) + a1 * c2 + a2 * c1) + a2 * c2;
        const q = e + (ah * cl + al * ch), s = p + q;
        return [s, q - (s - p)];
      };
      while (t > 0) {
        if (t % 2 === 1) [hi, lo] = mul(hi, lo, bh, bl);
        t = Math.floor(t / 2);
        if (t > 0) [bh, bl] = mul(bh, bl, bh, bl);
      }
      const s = 1 - hi, err = (1 - s) - hi; // two-sum of 1 and -hi
      return s + (err - lo);
    };
    const ts = [1, 2, 3, 1000, 4096, 4095, 65535, 65536, 1e6 + 7, 123456789, 5, 70000, 255, 256, 257, 511, 512, 0];
    for (const b of [0.9, 0.999, 0.123456789]) {
      for (const t of ts) expect(oneMinusPow(b, t), `${b}^${t}`).toBe(ref(b, t)); // small, then larger: the squarings grow
      for (const t of ts.slice().reverse()) expect(oneMinusPow(b, t), `${b}^${t} again`).toBe(ref(b, t));
    }
  });

  it("edge values", () => {
    expect(oneMinusPow(0.9, 0)).toBe(0);
    expect(oneMinusPow(0, 5)).toBe(1);
    expect(oneMinusPow(0.999, 1e6)).toBe(1);
    expect(oneMinusPow(0.999, 1)).toBe(1 - 0.999); // 1 - b is exact for b in [0.5, 1]
  });
});

describe("the library uses these, not the engine's own functions", () => {
  it("no source file but the tests' naive reference calls Math.exp, log, pow, cos, tanh… or `**` on variables", () => {
    const root = fileURLToPath(new URL("../src/", import.meta.url));
    const files = readdirSync(root, { recursive: true }).map(String).filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith(".d.ts"));
    expect(files.length).toBeGreaterThan(20);
    const banned = /Math\.(exp|expm1|log|log1p|log2|log10|pow|sin|cos|tan|tanh|sinh|cosh|asinh|acosh|atanh|atan|atan2|asin|acos|cbrt|hypot)\b|[\w)\]]\s*\*\*\s*[A-Za-z_(]/;
    const found: string[] = [];
    for (const f of files) {
      if (f.endsWith("naive.ts")) continue; // the reference the tests compare the kernels with; the library never imports it
      readFileSync(join(root, f), "utf8").split("\n").forEach((line, i) => {
        const code = line.replace(/\/\/.*$/, "").replace(/^\s*\*.*$/, ""); // comments may name them
        if (banned.test(code)) found.push(`src/${f}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(found).toEqual([]);
  });
});
