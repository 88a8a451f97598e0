/**
 * Elementary functions from IEEE-754 arithmetic alone, so that the same inputs give the same bits in every
 * JavaScript engine.
 *
 * Why: `+ - × ÷` and `Math.sqrt` are correctly rounded by the standard, so every engine agrees on them to
 * the last bit. `Math.exp`, `Math.log`, `Math.cos`, `Math.pow` (and `**`) are not: the ECMAScript spec
 * leaves their accuracy to the implementation, and V8 versions differ. Measured: Node 20 and Chromium 156
 * round `Math.exp` differently in the last bit on ~10% of inputs, so a model trained with them in a page
 * drifts from the same model trained in Node by ~1e-15 after one step. Everything on the training path
 * (initialisers, gate and head activations, losses, Adam's bias correction) uses the functions here, and
 * a seed gives the same weights and predictions in Node and in every browser.
 *
 * How: table-driven exp (x = (64m + j)·ln2/64 + r, |r| ≤ ln2/128, exp(x) = 2^m · 2^(j/64) · e^r with a
 * degree-6 polynomial for e^r - 1); log through s = f/(2+f) and the odd series of 2·atanh(s); cos and sin
 * of 2πv reduced by quarter turns on v itself (exactly) and Taylor polynomials on |x| ≤ π/4. The tables
 * (2^(j/64), 2^(n/64) - 1) are built at load time in double-double arithmetic (pairs hi + lo carrying ~106
 * bits) and rounded once, so each entry is the correctly rounded value (test/math.test.ts proves it with
 * exact BigInt arithmetic). Accuracy against the true values is measured in test/math.test.ts.
 */

// ---------------------------------------------------------------------------------------------------
// Double-double arithmetic: a value is hi + lo with |lo| ≤ ulp(hi)/2. The operations below return their
// result in the registers R = [hi, lo] rather than as a new array, so they allocate nothing (module-level
// `let` doubles would: V8 boxes a double each time it stores one in a module variable).

const R = new Float64Array(2);

/** R[0] + R[1] = a + b exactly (Knuth's two-sum). */
function twoSum(a: number, b: number): void {
  const s = a + b, bb = s - a;
  R[1] = (a - (s - bb)) + (b - bb);
  R[0] = s;
}

/** 2^27 + 1: splits a double into two halves of 26 bits whose products are exact (Dekker). */
const SPLITTER = 134217729;

/** R[0] + R[1] = a · b exactly (Dekker's two-product; JavaScript has no fused multiply-add). */
function twoProd(a: number, b: number): void {
  const p = a * b;
  const ca = SPLITTER * a, ah = ca - (ca - a), al = a - ah;
  const cb = SPLITTER * b, bh = cb - (cb - b), bl = b - bh;
  R[1] = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
  R[0] = p;
}

/** (ah + al) · (bh + bl) in double-double. */
function ddMul(ah: number, al: number, bh: number, bl: number): void {
  twoProd(ah, bh);
  const lo = R[1]! + (ah * bl + al * bh);
  const s = R[0]! + lo;
  R[1] = lo - (s - R[0]!);
  R[0] = s;
}

/** (ah + al) + (bh + bl) in double-double. */
function ddAdd(ah: number, al: number, bh: number, bl: number): void {
  twoSum(ah, bh);
  const lo = R[1]! + al + bl;
  const s = R[0]! + lo;
  R[1] = lo - (s - R[0]!);
  R[0] = s;
}

/** (ah + al) / k in double-double, for a small positive integer k. */
function ddDivInt(ah: number, al: number, k: number): void {
  const q = ah / k;
  twoProd(q, k); // q·k = R[0] + R[1] exactly
  const ql = ((ah - R[0]!) - R[1]! + al) / k;
  const s = q + ql;
  R[1] = ql - (s - q);
  R[0] = s;
}

// ---------------------------------------------------------------------------------------------------
// Constants and tables

/** ln 2 as the nearest double plus the remainder: ln 2 = LN2 + LN2_TAIL to ~2^-106. */
const LN2 = 0.6931471805599453;
const LN2_TAIL = 2.3190468138462996e-17;
/**
 * ln 2 split so that k·LN2_HI is exact for |k| < 2^21 (LN2_HI has 32 significant bits) and
 * LN2_HI + LN2_LO = ln 2 to ~2^-85: the split used to reduce arguments without rounding error.
 */
export const LN2_HI = 6.93147180369123816490e-01;
export const LN2_LO = 1.90821492927058770002e-10;

/** e^(xh + xl) for 0 ≤ x < 1 in double-double: the Taylor series, summed until its terms vanish. */
function ddExp(xh: number, xl: number): void {
  let sh = 1, sl = 0, th = 1, tl = 0;
  for (let k = 1; th > 1e-40; k++) {
    ddMul(th, tl, xh, xl);
    ddDivInt(R[0]!, R[1]!, k);
    th = R[0]!; tl = R[1]!;
    ddAdd(sh, sl, th, tl);
    sh = R[0]!; sl = R[1]!;
  }
  R[0] = sh; R[1] = sl;
}

/** 2^(j/64) for j = 0 … 63: the correctly rounded double, and the remainder (2^(j/64) = hi + lo to ~2^-100). */
export const EXP2_FRAC: Float64Array = new Float64Array(64);
const EXP2_FRAC_LO = new Float64Array(64);
for (let j = 0; j < 64; j++) {
  ddMul(LN2, LN2_TAIL, j / 64, 0);
  ddExp(R[0]!, R[1]!);
  EXP2_FRAC[j] = R[0]!;
  EXP2_FRAC_LO[j] = R[1]!;
}

/** Offset of 2^0 in POW2. */
export const POW2_BIAS = 1100;
/** 2^m for m in [-1100, 1100), by exact doubling and halving (0 below 2^-1074, Infinity from 2^1024). */
export const POW2: Float64Array = new Float64Array(2 * POW2_BIAS);
POW2[POW2_BIAS] = 1;
for (let m = 1; m < POW2_BIAS; m++) POW2[POW2_BIAS + m] = POW2[POW2_BIAS + m - 1]! * 2;
for (let m = 1; m <= POW2_BIAS; m++) POW2[POW2_BIAS - m] = POW2[POW2_BIAS - m + 1]! * 0.5;

/** Half-width of EXPM1_TABLE: n in [-1024, 1024], so |n·ln2/64| ≤ 11.1. */
export const EXPM1_RANGE = 1024;
/**
 * 2^(n/64) - 1 for |n| ≤ 1024, correctly rounded: expm1 at the table points without the cancellation of
 * subtracting 1 in double precision (tanh near 0 needs it).
 */
export const EXPM1_TABLE: Float64Array = new Float64Array(2 * EXPM1_RANGE + 1);
for (let n = -EXPM1_RANGE; n <= EXPM1_RANGE; n++) {
  const j = n & 63, p = POW2[(n >> 6) + POW2_BIAS]!; // n = 64·(n >> 6) + j
  twoSum(p * EXP2_FRAC[j]!, -1); // exact: scaling by 2^m is exact, and so is the two-sum
  EXPM1_TABLE[n + EXPM1_RANGE] = R[0]! + (R[1]! + p * EXP2_FRAC_LO[j]!);
}

/** 64/ln 2, for the table index n = round(x·64/ln 2). */
export const INV_LN2_64 = 64 / LN2;
/** ln2/64 split like LN2_HI / LN2_LO (n·LN2_64_HI is exact for the n in range). */
export const LN2_64_HI = LN2_HI / 64;
export const LN2_64_LO = LN2_LO / 64;
/** 1.5·2^52: (v + shift) - shift rounds v to the nearest integer (ties to even), without a call. */
export const ROUND_SHIFT = 6755399441055744;

// ---------------------------------------------------------------------------------------------------
// exp

/** Largest x with a finite e^x. */
const EXP_MAX = 709.782712893384;
/** Below this e^x is 0 even as a subnormal. */
const EXP_MIN = -745.1332191019412;

/**
 * e^x, within 1 ulp of the true value (test/math.test.ts), the same bits in every engine.
 *
 * @example
 * exp(1);      // 2.718281828459045
 */
export function exp(x: number): number {
  if (!(x <= EXP_MAX)) return x !== x ? x : Infinity;
  if (x < EXP_MIN) return 0;
  const nf = (x * INV_LN2_64 + ROUND_SHIFT) - ROUND_SHIFT;
  const n = nf | 0;
  const r = (x - nf * LN2_64_HI) - nf * LN2_64_LO;
  const q = r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720)))))); // e^r - 1
  const t = EXP2_FRAC[n & 63]!;
  const m = n >> 6;
  // 2^m overflows for m = 1024 although the product does not (r < 0 there): scale in two steps.
  if (m > 1023) return POW2[1023 + POW2_BIAS]! * (2 * (t + t * q));
  // Near the bottom 2^m itself underflows (m = -1075) although the product does not: scale in two steps.
  if (m < -1021) return (POW2[m + 64 + POW2_BIAS]! * (t + t * q)) * POW2[POW2_BIAS - 64]!;
  return POW2[m + POW2_BIAS]! * (t + t * q);
}

// ---------------------------------------------------------------------------------------------------
// log and log1p

/** 2·s^(2k)/(2k+1) terms of log(1+f) = 2·atanh(s), s = f/(2+f): the coefficients 2/(2k+1), k = 1 … 11. */
const L1 = 2 / 3, L2 = 2 / 5, L3 = 2 / 7, L4 = 2 / 9, L5 = 2 / 11, L6 = 2 / 13, L7 = 2 / 15, L8 = 2 / 17;
const L9 = 2 / 19, L10 = 2 / 21, L11 = 2 / 23;

const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);
/** Index of the high (sign and exponent) word of a double in U32. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const SMALLEST_NORMAL = 2.2250738585072014e-308;
const TWO54 = 18014398509481984;

/**
 * log(u) + c for u > 0, finite, with c a small correction (log1p's rounding of 1 + x). Writes
 * u = 2^k·(1 + f) with √½ ≤ 1 + f < √2 (f exact), then, with s = f/(2+f) and hfsq = f²/2,
 * log(1 + f) = f - hfsq + s·(hfsq + R(s²)), R = Σ 2s^(2k)/(2k+1): an identity, since 2s = f - s·f.
 * |s| ≤ 0.1716, so eleven terms leave a tail below 2^-64 relative.
 */
function logPlus(u: number, c: number): number {
  let k = 0;
  if (u < SMALLEST_NORMAL) { u *= TWO54; k = -54; } // subnormal: scale into the normal range (exact)
  F64[0] = u;
  const hi = U32[HI]!;
  k += (hi >>> 20) - 1023;
  U32[HI] = (hi & 0x000fffff) | 0x3ff00000; // the same mantissa with exponent 0: a value in [1, 2)
  let m = F64[0]!;
  if (m > Math.SQRT2) { m *= 0.5; k++; }
  const f = m - 1; // exact (Sterbenz): m is in [√½, √2)
  const s = f / (2 + f), z = s * s;
  const R = z * (L1 + z * (L2 + z * (L3 + z * (L4 + z * (L5 + z * (L6 + z * (L7 + z * (L8 + z * (L9 + z * (L10 + z * L11))))))))));
  const hfsq = 0.5 * f * f;
  return k * LN2_HI - ((hfsq - (s * (hfsq + R) + (k * LN2_LO + c))) - f);
}

/**
 * The natural logarithm, within 1 ulp of the true value (test/math.test.ts), the same bits in every engine.
 *
 * @example
 * log(Math.E);   // 1
 */
export function log(x: number): number {
  if (!(x > 0)) return x === 0 ? -Infinity : NaN; // negative or NaN
  if (x === Infinity) return x;
  return logPlus(x, 0);
}

/**
 * log(1 + x), accurate for tiny x too, within 1 ulp (test/math.test.ts), the same bits in every engine.
 *
 * @example
 * log1p(1e-20);  // 1e-20 (log(1 + 1e-20) would be 0)
 */
export function log1p(x: number): number {
  if (!(x > -1)) return x === -1 ? -Infinity : NaN;
  if (x === Infinity) return x;
  const u = 1 + x;
  if (u === 1) return x; // |x| < 2^-53: log(1 + x) = x - x²/2 + … rounds to x
  // 1 + x was rounded to u; log(1 + x) = log(u) + log(1 + (x - (u - 1))/u) ≈ log(u) + (x - (u - 1))/u.
  return logPlus(u, (x - (u - 1)) / u);
}

// ---------------------------------------------------------------------------------------------------
// cos(2πv) and sin(2πv), for Box–Muller

/** 2π (exactly twice the double nearest π). */
const TWO_PI = 2 * Math.PI;

// Taylor coefficients (-1)^k/(2k)! and (-1)^k/(2k+1)!, each one correctly rounded division of exact
// integers (every factorial up to 19! is exact in a double). On |x| ≤ π/4 the first omitted term of
// each series is below 2^-60 relative.
const C = new Float64Array(10); // C[k] = (-1)^k / (2k)!
const S = new Float64Array(10); // S[k] = (-1)^k / (2k+1)!
for (let n = 0, fact = 1; n < 20; n++) {
  if (n > 0) fact *= n; // n!, exact
  const k = n >> 1, sign = k % 2 === 0 ? 1 : -1;
  if (n % 2 === 0) C[k] = sign / fact;
  else S[k] = sign / fact;
}

function cosPoly(x: number): number {
  const z = x * x;
  return 1 + z * (C[1]! + z * (C[2]! + z * (C[3]! + z * (C[4]! + z * (C[5]! + z * (C[6]! + z * (C[7]! + z * (C[8]! + z * C[9]!))))))));
}

function sinPoly(x: number): number {
  const z = x * x;
  return x + x * z * (S[1]! + z * (S[2]! + z * (S[3]! + z * (S[4]! + z * (S[5]! + z * (S[6]! + z * (S[7]! + z * (S[8]! + z * S[9]!))))))));
}

/**
 * cos(2π·v) for |v| < 2^50, within 1 ulp of cos of 2π·v (test/math.test.ts), the same bits in every
 * engine. v is reduced by quarter turns exactly (w = v - q/4 loses nothing), so there is no large-argument
 * problem.
 *
 * @example
 * cos2pi(0.25);  // 0 (Math.cos(2 * Math.PI * 0.25) is 6.1e-17)
 */
export function cos2pi(v: number): number {
  const q = Math.round(4 * v);
  const w = v - q * 0.25; // |w| ≤ 1/8, exact
  const x = w * TWO_PI;
  switch (q & 3) {
    case 0: return cosPoly(x);
    case 1: return -sinPoly(x);
    case 2: return -cosPoly(x);
    default: return sinPoly(x);
  }
}

// ---------------------------------------------------------------------------------------------------
// Adam's bias correction

/**
 * 1 - b^t for b in [0, 1) and an integer t ≥ 0, computed in double-double and rounded once, so it is correctly
 * rounded in practice and the same bits in every engine (`b ** t` is neither). b^t = b^(t mod 256)·(b^256)^(t div
 * 256): the first factor from a table of b^0 … b^255 (successive products), the second by repeated squaring of
 * b^256 over the set bits of t div 256, kept until t div 256 changes. Adam asks for consecutive t, so a call is
 * one double-double product; by repeated squaring of b over all of t's bits it took ~0.3 µs (a chain of ~19
 * dependent double-double products at t ~ 300k), 6% of the seed model's training step. The value depends on b and
 * t alone, never on the calls made before.
 *
 * @example
 * oneMinusPow(0.999, 1);  // 0.001 (to the last bit: 1 - 0.999 in exact arithmetic, rounded)
 */
export function oneMinusPow(b: number, t: number): number {
  const p = powers(b);
  const lo = t % 256, hi = (t - lo) / 256;
  if (hi !== p.hi) highPower(p, hi);
  ddMul(p.ph, p.pl, p.low[2 * lo]!, p.low[2 * lo + 1]!);
  const ph = R[0]!, pl = R[1]!;
  twoSum(1, -ph);
  return R[0]! + (R[1]! - pl);
}

/**
 * Per b: `low` holds b^k for k = 0 … 255 as double-double (hi, lo) pairs; `sq` (b^256)^(2^i), i = 0, 1, …, grown
 * when a larger t needs more; (ph, pl) is (b^256)^hi for the last `hi` asked for.
 */
interface Powers { low: Float64Array; sq: number[]; hi: number; ph: number; pl: number }
const POWERS = new Map<number, Powers>();

function powers(b: number): Powers {
  let p = POWERS.get(b);
  if (p === undefined) {
    if (POWERS.size >= 16) POWERS.clear(); // many different b: keep it small
    const low = new Float64Array(512);
    low[0] = 1;
    for (let k = 1; k < 256; k++) { ddMul(low[2 * k - 2]!, low[2 * k - 1]!, b, 0); low[2 * k] = R[0]!; low[2 * k + 1] = R[1]!; }
    ddMul(low[510]!, low[511]!, b, 0); // b^256
    p = { low, sq: [R[0]!, R[1]!], hi: 0, ph: 1, pl: 0 };
    POWERS.set(b, p);
  }
  return p;
}

/** (b^256)^hi into p.ph, p.pl: the squarings of b^256 over hi's set bits, lowest first. */
function highPower(p: Powers, hi: number): void {
  const sq = p.sq;
  let ph = 1, pl = 0;
  for (let i = 0, u = hi; u > 0; i += 2) {
    if (i === sq.length) {
      ddMul(sq[i - 2]!, sq[i - 1]!, sq[i - 2]!, sq[i - 1]!);
      sq.push(R[0]!, R[1]!);
    }
    if (u % 2 === 1) { ddMul(ph, pl, sq[i]!, sq[i + 1]!); ph = R[0]!; pl = R[1]!; }
    u = Math.floor(u / 2);
  }
  p.hi = hi; p.ph = ph; p.pl = pl;
}
