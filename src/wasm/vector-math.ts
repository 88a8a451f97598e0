/**
 * σ and tanh in WebAssembly SIMD, as code emitted into a gate kernel (the LSTM's in gates.ts, the GRU's in
 * gru-gates.ts), and the loop that runs a kernel's blocks of units several vectors side by side.
 *
 * Float64 (f64x2, `F64x2Math`): `fastSigmoid` and `fastTanh` of src/tensor/lstm-gates.ts, operation for operation, so
 * that the results are bit-identical to them: 2^(n/64)·e^r with a degree-6 polynomial and the tables of
 * src/tensor/math.ts (copied into the memory once, `writeTables`); the arithmetic runs two lanes at a time, the table
 * lookups lane by lane. σ of an input below −708 takes `math.exp` there (a subnormal result), which this does not
 * compute: a kernel looks for such inputs first and declines.
 *
 * Float32 (f32x4, `F32x4Math`): float32 arithmetic four lanes at a time with no tables, within a few float32 ulps of
 * the true values (test/wasm.test.ts) rather than bit-identical to the TypeScript kernels (which compute in float64 and
 * round where they store); it ran the LSTM's gate step ~2× faster than widening to float64 did. Fused (`fma: true`),
 * its exp's range reduction and polynomial add with relaxed SIMD's multiply-add, within the same ulp bounds.
 *
 * e^a for a ≤ 0 in float32: n = round(a/ln 2), r = (a − n·L1) − n·L2 (L1 = ln 2 to 15 bits, so n·L1 is exact, and L2
 * the rest), |r| ≤ ln 2 / 2; e^r − 1 = q(r) = r + r²/2! + … + r⁸/8! (the first term left out, r⁹/9!, is below 2^-32
 * of q); 2^n from its bits.
 * - σ(x) = (x ≥ 0 ? 1 : u)/(1 + u) with u = e^−|x|: never overflows, and keeps the relative precision of σ far left,
 *   down into the subnormals (2^n is applied as 2^(n>>1)·2^(n−(n>>1)), both normal, so that the result rounds once);
 *   past x = −104, e^x is below half the smallest subnormal and σ is 0.
 * - tanh(x) = −m/(m + 2) with m = expm1(−2x) = 2^n·q + (2^n − 1) (n = 0 gives q itself: full relative precision near
 *   0), with the sign of x; |x| is clamped at 10, past which tanh is ±1 in float32.
 */
import { type Code, V128 } from "./assembler.js";
import * as math from "../tensor/math.js";

/** Byte offsets of the tables in the region `tables` points to: EXP2_FRAC, POW2, EXPM1_TABLE, as float64. */
const T_EXP2 = 0, T_POW2 = 8 * math.EXP2_FRAC.length, T_EXPM1 = T_POW2 + 8 * math.POW2.length;
/** Bytes the tables take. */
export const TABLE_BYTES = T_EXPM1 + 8 * math.EXPM1_TABLE.length;

/** The tables, in the layout the float64 kernels read, written at `at` (bytes) of `buffer`. */
export function writeTables(buffer: ArrayBufferLike, at: number): void {
  const f = new Float64Array(buffer, at, TABLE_BYTES / 8);
  f.set(math.EXP2_FRAC, T_EXP2 / 8);
  f.set(math.POW2, T_POW2 / 8);
  f.set(math.EXPM1_TABLE, T_EXPM1 / 8);
}

/** One block of units handled in phases (loads, computation, stores), so that several blocks can interleave. */
export type Phases = { load(o: number): void; compute(): void; store(o: number): void };

/**
 * for (p = from; p < to; …) over 16-byte vectors of units, pointers in bytes: `sets` vectors per pass, side by
 * side, each with its own set of working locals (`use` switches to set n), in phases (all loads, all
 * computations, all stores); then the vectors left one at a time with set 0; then `rest`, if given, for what is
 * left of less than a vector (it finds p < end).
 */
export function sideBySide(
  c: Code, p: number, end: number, from: () => void, to: () => void, ph: Phases, sets: number, use: (n: number) => void,
  rest?: () => void,
): void {
  from(); c.set(p);
  to(); c.set(end);
  c.block().loop();
  c.get(p).i32(16 * sets).i32Add().get(end).i32GtS().brIf(1);
  for (let n = 0; n < sets; n++) { use(n); ph.load(16 * n); }
  for (let n = 0; n < sets; n++) { use(n); ph.compute(); }
  for (let n = 0; n < sets; n++) { use(n); ph.store(16 * n); }
  use(0);
  c.get(p).i32(16 * sets).i32Add().set(p);
  c.br(0).end().end();
  c.block().loop();
  c.get(p).i32(16).i32Add().get(end).i32GtS().brIf(1);
  ph.load(0); ph.compute(); ph.store(0);
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  rest?.();
}

/**
 * The float32 tail of a pass over units: when p < end, two units are left (H ≡ 2 mod 4), and `run` emits them once
 * as a half vector, `setHalf(true)` around it so that its loads and stores take 8 bytes.
 */
export function halfTail(c: Code, p: number, end: number, setHalf: (on: boolean) => void, run: () => void): void {
  c.block();
  c.get(p).get(end).i32GeS().brIf(0);
  setHalf(true);
  run();
  setHalf(false);
  c.end();
}

/**
 * The working locals of one float64 σ or tanh (v128 each): x the input (σ's result too), t tanh's result; the rest
 * scratch (y the reduced argument's source, nf and ni n as float and int lanes, r, q = e^r − 1, tv and pv the table's
 * and the power of two's factors, ci, m and e tanh's in-range test and expm1).
 */
export interface F64Regs { x: number; y: number; nf: number; r: number; q: number; tv: number; pv: number; ni: number; t: number; ci: number; m: number; e: number }

/** A fresh set of F64Regs. */
export function f64Regs(c: Code): F64Regs {
  return {
    x: c.local(V128), y: c.local(V128), nf: c.local(V128), r: c.local(V128), q: c.local(V128), tv: c.local(V128),
    pv: c.local(V128), ni: c.local(V128), t: c.local(V128), ci: c.local(V128), m: c.local(V128), e: c.local(V128),
  };
}

/**
 * fastSigmoid and fastTanh two lanes at a time, for a float64 kernel. Construction declares the constants' locals
 * and writes their values (so it goes before the kernel's body); `tab` is the local holding the tables' byte offset.
 */
export class F64x2Math {
  private readonly k;
  constructor(private readonly c: Code, private readonly tab: number) {
    const k = this.k = {
      cut: c.local(V128), max: c.local(V128), inv: c.local(V128), shift: c.local(V128), hi: c.local(V128), lo: c.local(V128),
      one: c.local(V128), half: c.local(V128), c6: c.local(V128), c24: c.local(V128), c120: c.local(V128), c720: c.local(V128),
      t22: c.local(V128), tm22: c.local(V128), m2: c.local(V128), two: c.local(V128),
      minExp: c.local(V128), bias1023: c.local(V128), mRange: c.local(V128), pRange: c.local(V128),
    };
    c.i32(-1022).i32x4Splat().set(k.minExp);
    c.i32(1023).i32x4Splat().set(k.bias1023);
    c.i32(-math.EXPM1_RANGE).i32x4Splat().set(k.mRange);
    c.i32(math.EXPM1_RANGE).i32x4Splat().set(k.pRange);
    const consts: [number, number][] = [
      [k.cut, -708], [k.max, 745.2], [k.inv, math.INV_LN2_64], [k.shift, math.ROUND_SHIFT], [k.hi, math.LN2_64_HI],
      [k.lo, math.LN2_64_LO], [k.one, 1], [k.half, 0.5], [k.c6, 1 / 6], [k.c24, 1 / 24], [k.c120, 1 / 120],
      [k.c720, 1 / 720], [k.t22, 22], [k.tm22, -22], [k.m2, -2], [k.two, 2],
    ];
    for (const [local, v] of consts) c.f64(v).f64x2Splat().set(local);
  }

  /** The local holding 1 in both lanes. */
  get one(): number { return this.k.one; }

  /** Pops a vector; pushes all ones in its lanes below −708 (where σ declines), zeros elsewhere. */
  belowCut(): void { this.c.get(this.k.cut).f64x2Lt(); }

  /** nf = round(y·64/ln 2) (the shift trick), n = nf as int32 lanes, r = y − nf·ln2/64 (two parts), q = e^r − 1. */
  private reduce(g: F64Regs): void {
    const c = this.c, k = this.k;
    c.get(g.y).get(k.inv).f64x2Mul().get(k.shift).f64x2Add().get(k.shift).f64x2Sub().set(g.nf);
    c.get(g.nf).i32x4TruncSatF64x2SZero().set(g.ni);
    c.get(g.y).get(g.nf).get(k.hi).f64x2Mul().f64x2Sub().get(g.nf).get(k.lo).f64x2Mul().f64x2Sub().set(g.r);
    // q = r·(1 + r·(1/2 + r·(1/6 + r·(1/24 + r·(1/120 + r·(1/720)))))), innermost first as JavaScript does.
    c.get(g.r).get(k.c720).f64x2Mul();
    for (const cc of [k.c120, k.c24, k.c6, k.half, k.one]) c.get(cc).f64x2Add().get(g.r).f64x2Mul();
    c.set(g.q);
  }

  /** g.x (f64x2) → σ(x) in g.x: `fastSigmoid` for inputs ≥ −708. */
  sigmoid(g: F64Regs): void {
    const c = this.c, k = this.k, TAB = this.tab, ni = g.ni;
    c.get(g.x).get(k.max).f64x2Pmin().f64x2Neg().set(g.y); // y = -min(x, 745.2)
    this.reduce(g);
    // t = 2^((n mod 64)/64) from the table, lane by lane (straight into the vector's lanes)
    c.get(ni).i32x4ExtractLane(0).i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXP2).set(g.tv);
    c.get(ni).i32x4ExtractLane(1).i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().get(g.tv).v128Load64Lane(1, T_EXP2).set(g.tv);
    // p = 2^(n div 64), built from its bits in both lanes: exponent field (n >> 6) + 1023, shifted into place. It
    // equals the table's POW2 wherever that is a normal number; below 2^-1022 (σ of inputs past 708) the table
    // holds subnormals and this holds 2^-1022, and either way 1 + p·(t + t·q) rounds to exactly 1.
    c.get(ni).i32(6).i32x4ShrS().get(k.minExp).i32x4MaxS().get(k.bias1023).i32x4Add().i64x2ExtendLowI32x4S().i32(52).i64x2Shl().set(g.pv);
    // 1 / (1 + p·(t + t·q))
    c.get(k.one).get(k.one).get(g.pv).get(g.tv).get(g.tv).get(g.q).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Div().set(g.x);
  }

  /**
   * g.x (f64x2) → tanh(x) in g.t: `fastTanh`, −expm1(y)/(expm1(y) + 2) with y = −2·clamp(x, ±22). Both lanes take
   * expm1 = tm + (q + tm·q), tm = 2^(n/64) − 1 from the table at n clamped into its range; only when a lane's n
   * is outside that range (|x| > 5.5, rare in a gate) is the other form, 2^(n div 64)·(t + t·q) − 1, computed
   * for both lanes and put in that lane. No branch per lane (the lane-by-lane scalar version it replaced, with a
   * branch each, ran the LSTM's gate step a few percent slower).
   */
  tanh(g: F64Regs): void {
    const c = this.c, k = this.k, TAB = this.tab, { ni, ci, tv, e } = g;
    c.get(g.x).get(k.t22).f64x2Pmin().get(k.tm22).f64x2Pmax().get(k.m2).f64x2Mul().set(g.y);
    this.reduce(g);
    c.get(ni).get(k.mRange).i32x4MaxS().get(k.pRange).i32x4MinS().set(ci); // n clamped into the table's range
    c.get(ci).i32x4ExtractLane(0).i32(math.EXPM1_RANGE).i32Add().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXPM1).set(tv);
    c.get(ci).i32x4ExtractLane(1).i32(math.EXPM1_RANGE).i32Add().i32(3).i32Shl().get(TAB).i32Add().get(tv).v128Load64Lane(1, T_EXPM1).set(tv);
    c.get(tv).get(g.q).get(tv).get(g.q).f64x2Mul().f64x2Add().f64x2Add().set(e);
    c.block();
    c.get(ni).get(ci).i32x4Eq().tee(g.m).i32x4AllTrue().brIf(0); // every lane in the table's range
    // t = 2^((n mod 64)/64), and 2^(n div 64) from its bits (n div 64 ≥ -64 here: always a normal number)
    c.get(ni).i32x4ExtractLane(0).i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXP2).set(tv);
    c.get(ni).i32x4ExtractLane(1).i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().get(tv).v128Load64Lane(1, T_EXP2).set(tv);
    c.get(ni).i32(6).i32x4ShrS().get(k.bias1023).i32x4Add().i64x2ExtendLowI32x4S().i32(52).i64x2Shl().set(g.pv);
    c.get(e); // kept where the lane is in range
    c.get(g.pv).get(tv).get(tv).get(g.q).f64x2Mul().f64x2Add().f64x2Mul().get(k.one).f64x2Sub(); // the other form
    c.get(g.m).i64x2ExtendLowI32x4S().v128Bitselect().set(e);
    c.end();
    c.get(e).f64x2Neg().get(e).get(k.two).f64x2Add().f64x2Div().set(g.t);
  }
}

/**
 * The working locals of one float32 σ or tanh (v128 each): x the input (σ's result too), t tanh's result; a the
 * exponent's argument, nf and ni n as float and int lanes, n1 = n >> 1, r, q = e^r − 1, u e^a or expm1.
 */
export interface F32Regs { x: number; a: number; nf: number; ni: number; n1: number; r: number; q: number; u: number; t: number }

/** A fresh set of F32Regs. */
export function f32Regs(c: Code): F32Regs {
  return {
    x: c.local(V128), a: c.local(V128), nf: c.local(V128), ni: c.local(V128), n1: c.local(V128), r: c.local(V128),
    q: c.local(V128), u: c.local(V128), t: c.local(V128),
  };
}

/**
 * σ and tanh four float32 lanes at a time (see the header), for a float32 kernel; `fused`: with relaxed SIMD's
 * multiply-add. Construction declares the constants' locals and writes their values (before the kernel's body).
 */
export class F32x4Math {
  private readonly k;
  private readonly poly: number[];
  constructor(private readonly c: Code, private readonly fused: boolean) {
    const L1 = Math.round(Math.LN2 * 32768) / 32768, L2 = Math.fround(Math.LN2 - L1);
    const k = this.k = {
      one: c.local(V128), zero: c.local(V128), floor: c.local(V128), inv: c.local(V128), l1: c.local(V128), l2: c.local(V128),
      t10: c.local(V128), tm10: c.local(V128), m2: c.local(V128), two: c.local(V128), bias: c.local(V128),
      shift: c.local(V128), shiftBits: c.local(V128), sign: c.local(V128),
    };
    /** 1/k! for k = 8 … 1, the coefficients of q in Horner's order. */
    const coef: number[] = [];
    const poly = this.poly = [8, 7, 6, 5, 4, 3, 2, 1].map(() => c.local(V128));
    for (let j = 1, f = 1; j <= 8; j++) { f *= j; coef.unshift(1 / f); }
    const consts: [number, number][] = [
      [k.one, 1], [k.zero, 0], [k.floor, -104], [k.inv, 1 / Math.LN2], [k.l1, L1], [k.l2, L2], [k.t10, 10], [k.tm10, -10],
      [k.m2, -2], [k.two, 2], [k.shift, 1.5 * 2 ** 23], ...poly.map((l, j): [number, number] => [l, coef[j]!]),
    ];
    for (const [local, v] of consts) c.f32(v).f32x4Splat().set(local);
    c.i32(127).i32x4Splat().set(k.bias);
    c.i32(0x4b400000).i32x4Splat().set(k.shiftBits);
    c.i32(0x80000000 | 0).i32x4Splat().set(k.sign);
  }

  /** The local holding 1 in every lane. */
  get one(): number { return this.k.one; }

  /** 2^k for the int32 lanes k on the stack (−126 ≤ k ≤ 127): the exponent field k + 127. */
  private pow2(): void { this.c.get(this.k.bias).i32x4Add().i32(23).i32x4Shl(); }

  /**
   * a → nf = round(a/ln 2) by the shift trick (a/ln 2 + 1.5·2^23 rounds to an integer, whose float32 bits are
   * 0x4b400000 + n), ni = n as int32 lanes from those bits, r = a − nf·ln 2 (two parts), q = e^r − 1.
   */
  private reduce(g: F32Regs): void {
    const c = this.c, k = this.k, poly = this.poly, { a, nf, r } = g;
    if (!this.fused) {
      c.get(a).get(k.inv).f32x4Mul().get(k.shift).f32x4Add().tee(nf).get(k.shiftBits).i32x4Sub().set(g.ni);
      c.get(nf).get(k.shift).f32x4Sub().set(nf);
      c.get(a).get(nf).get(k.l1).f32x4Mul().f32x4Sub().get(nf).get(k.l2).f32x4Mul().f32x4Sub().set(r);
      c.get(r).get(poly[0]!).f32x4Mul();
      for (let j = 1; j < 8; j++) c.get(poly[j]!).f32x4Add().get(r).f32x4Mul();
    } else {
      // The same steps with relaxed SIMD's multiply-adds (fma: true): a·(1/ln 2) + shift rounds once, so n is
      // a/ln 2 rounded to an integer as before; r = a − n·L1 − n·L2 and each Horner step a·b + c round once.
      c.get(a).get(k.inv).get(k.shift).f32x4RelaxedMadd().tee(nf).get(k.shiftBits).i32x4Sub().set(g.ni);
      c.get(nf).get(k.shift).f32x4Sub().set(nf);
      c.get(nf).get(k.l1).get(a).f32x4RelaxedNmadd().set(r);
      c.get(nf).get(k.l2).get(r).f32x4RelaxedNmadd().set(r);
      c.get(r).get(poly[0]!).get(poly[1]!).f32x4RelaxedMadd();
      for (let j = 2; j < 8; j++) c.get(r).get(poly[j]!).f32x4RelaxedMadd(); // (the sum so far)·r + c_j
      c.get(r).f32x4Mul();
    }
    c.set(g.q);
  }

  /** g.x → σ(x) in g.x. */
  sigmoid(g: F32Regs): void {
    const c = this.c, k = this.k, { x, u } = g;
    c.get(x).get(k.sign).v128Or().get(k.floor).f32x4Pmax().set(g.a); // a = max(−|x|, −104): the sign bit set
    this.reduce(g);
    // u = e^a = ((1 + q)·2^(n>>1))·2^(n − (n>>1))
    c.get(k.one).get(g.q).f32x4Add();
    c.get(g.ni).i32(1).i32x4ShrS().tee(g.n1); this.pow2(); c.f32x4Mul();
    c.get(g.ni).get(g.n1).i32x4Sub(); this.pow2(); c.f32x4Mul().set(u);
    c.get(k.one).get(u).get(x).get(k.zero).f32x4Ge().v128Bitselect(); // x ≥ 0 ? 1 : u (NaN: u, NaN)
    c.get(k.one).get(u).f32x4Add().f32x4Div().set(x);
  }

  /** g.x → tanh(x) in g.t. */
  tanh(g: F32Regs): void {
    const c = this.c, k = this.k, { x, u, t } = g;
    c.get(x).get(k.t10).f32x4Pmin().get(k.tm10).f32x4Pmax().get(k.m2).f32x4Mul().set(g.a); // a = −2·clamp(x, ±10)
    this.reduce(g);
    c.get(g.ni); this.pow2(); c.set(u); // 2^n, |n| ≤ 29
    if (this.fused) c.get(u).get(g.q).get(u).get(k.one).f32x4Sub().f32x4RelaxedMadd().set(u); // m = 2^n·q + (2^n − 1)
    else c.get(u).get(g.q).f32x4Mul().get(u).get(k.one).f32x4Sub().f32x4Add().set(u);
    c.get(u).f32x4Neg().get(u).get(k.two).f32x4Add().f32x4Div().set(t);
    c.get(x).get(t).get(k.sign).v128Bitselect().set(t); // x's sign (tanh is odd): tanh(±0) = ±0, where m would give −0 for both
  }
}
