/**
 * One LSTM step's gate math in WebAssembly SIMD. σ on i, f, o and tanh on g, in place over z (B, 4H); then
 * c = f ⊙ cPrev + i ⊙ g, tanhC = tanh(c), h = o ⊙ tanhC.
 *
 * Float64 (f64x2): the same computation as `lstmGatesForward` in src/tensor/kernels.ts for σ gates, operation
 * for operation, so that the results are bit-identical to it. σ and tanh are `fastSigmoid` and `fastTanh`
 * (2^(n/64)·e^r with a degree-6 polynomial and the tables of src/tensor/math.ts, copied into the memory once):
 * the arithmetic runs two lanes at a time, the table lookups lane by lane.
 *
 * Float32 (f32x4, `gatesForward32`): float32 arithmetic four lanes at a time with no tables, within a few
 * float32 ulps of the true values rather than bit-identical to the TypeScript kernel (which computes in float64
 * and rounds where it stores); it ran the gate step ~2× faster than widening to float64 did. Fused (a model with
 * `fma: true`, `gatesModule(…, true)`), its exp's range reduction and polynomial add with relaxed SIMD's
 * multiply-add: within the same ulp bounds (test/wasm.test.ts), and 0.85–0.89× the unfused kernel's time per unit
 * from B = 1, H = 10 to B = 64, H = 256 (paired in one process, the Zen 3 machine).
 *
 * In float64, σ of an input below -708 takes `math.exp` there (a subnormal result); the kernel looks for such
 * inputs first and returns 1 without writing anything, and the caller then runs the TypeScript kernel on the
 * step. H must be even (pairs of units); the caller keeps odd H on the TypeScript kernel.
 */
import { Code, I32, V128, assemble, type FunctionDef } from "./assembler.js";
import * as math from "../tensor/math.js";

/** Byte offsets of the tables in the region `tables` points to: EXP2_FRAC, POW2, EXPM1_TABLE, as float64. */
const T_EXP2 = 0, T_POW2 = 8 * math.EXP2_FRAC.length, T_EXPM1 = T_POW2 + 8 * math.POW2.length;
/** Bytes the tables take. */
export const TABLE_BYTES = T_EXPM1 + 8 * math.EXPM1_TABLE.length;

/** The tables, in the layout the kernel reads, written at `at` (bytes) of `buffer`. */
export function writeTables(buffer: ArrayBufferLike, at: number): void {
  const f = new Float64Array(buffer, at, TABLE_BYTES / 8);
  f.set(math.EXP2_FRAC, T_EXP2 / 8);
  f.set(math.POW2, T_POW2 / 8);
  f.set(math.EXPM1_TABLE, T_EXPM1 / 8);
}

// Parameters: B, H, z, cPrev, c, tanhC, h (byte offsets), tables (byte offset). Result: 0 done, 1 not done.
const B_ = 0, H_ = 1, Z = 2, CP = 3, C = 4, TC = 5, HH = 6, TAB = 7;

/** One block of units handled in phases (loads, computation, stores), so that several blocks can interleave. */
type Phases = { load(o: number): void; compute(): void; store(o: number): void };

/**
 * for (p = from; p < to; …) over 16-byte vectors of units, pointers in bytes: `sets` vectors per pass, side by
 * side, each with its own set of working locals (`use` switches to set n), in phases (all loads, all
 * computations, all stores); then the vectors left one at a time with set 0; then `rest`, if given, for what is
 * left of less than a vector (it finds p < end).
 */
function sideBySide(
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
 * One row's gate blocks in Keras order (i, f, g, o in z): σ over i and f, then over o, tanh over g, then the cell
 * over the i block's units. `zAt(k)` puts the address of block k on the stack; `loop` runs phases over [from, to).
 */
function gateBlocks(
  zAt: (block: number) => () => void, loop: (from: () => void, to: () => void, ph: Phases) => void,
  ph: { sig: Phases; tnh: Phases; cell: Phases },
): void {
  loop(zAt(0), zAt(2), ph.sig); // i, f
  loop(zAt(3), zAt(4), ph.sig); // o
  loop(zAt(2), zAt(3), ph.tnh); // g
  loop(zAt(0), zAt(1), ph.cell);
}

/** The address of gate block k (0 … 4) of the row at zb, as gateBlocks takes it: zb + k·hw (hw = H·w bytes). */
function blockAt(c: Code, zb: number, hw: number): (k: number) => () => void {
  return (k) => () => { c.get(zb); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
}

/** for b in [0, B): zb = z + b·4H·w, sb = b·H·w (hw = H·w bytes); body() */
function eachRow(c: Code, b: number, B: number, z: number, hw: number, zb: number, sb: number, body: () => void): void {
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B).i32GeS().brIf(1);
  c.get(z).get(b).get(hw).i32(4).i32Mul().i32Mul().i32Add().set(zb);
  c.get(b).get(hw).i32Mul().set(sb);
  body();
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
}

/**
 * The phases of a step, shared by both forward kernels: σ and tanh in place over a block of z at p + o (bytes),
 * and the cell's c = f·cPrev + i·g, tanh(c), h = o·tanh(c), for the units at p + o of the i block; f, g, o at
 * p + H, + 2H, + 3H (hw bytes), the states at sb + (p − zb) + o. `r()` names the working locals in effect (the
 * kernels swap between sets): cv holds c, x the activations' input, t tanh's output, tcv tanh(c), tmp h. Parameter
 * locals: cPrev, c, tanhC, h (byte offsets).
 */
function stepPhases(
  c: Code, at: { p: number; hw: number; zb: number; sb: number; cPrev: number; c: number; tanhC: number; h: number },
  ops: { load(o: number): void; store(v: number, o: number): void; mul(): void; add(): void; sigmoid(): void; tanh(): void },
  r: () => { cv: number; x: number; t: number; tcv: number; tmp: number },
): { sig: Phases; tnh: Phases; cell: Phases } {
  const { p, hw, zb, sb } = at;
  // σ and tanh in place over a block of z: x in, σ's result in x, tanh's in t.
  const sig: Phases = {
    load: (o) => { c.get(p); ops.load(o); c.set(r().x); },
    compute: () => ops.sigmoid(),
    store: (o) => { c.get(p); ops.store(r().x, o); },
  };
  const tnh: Phases = {
    load: (o) => { c.get(p); ops.load(o); c.set(r().x); },
    compute: () => ops.tanh(),
    store: (o) => { c.get(p); ops.store(r().t, o); },
  };
  const off = (): void => { c.get(p).get(zb).i32Sub().get(sb).i32Add(); }; // (b·H + j)·w, less o
  const cell: Phases = {
    load: (o) => {
      const { cv, x } = r();
      c.get(p).get(hw).i32Add(); ops.load(o); // f
      off(); c.get(at.cPrev).i32Add(); ops.load(o);
      ops.mul();
      c.get(p); ops.load(o); // i
      c.get(p).get(hw).i32(2).i32Mul().i32Add(); ops.load(o); // g
      ops.mul(); ops.add(); c.set(cv);
      c.get(cv).set(x);
    },
    compute: () => { ops.tanh(); const { t, tcv } = r(); c.get(t).set(tcv); },
    store: (o) => {
      const { cv, tcv, tmp } = r();
      off(); c.get(at.c).i32Add(); ops.store(cv, o);
      off(); c.get(at.tanhC).i32Add(); ops.store(tcv, o);
      off(); c.get(at.h).i32Add(); // h = o·tanh(c)
      c.get(p).get(hw).i32(3).i32Mul().i32Add(); ops.load(o);
      c.get(tcv); ops.mul(); c.set(tmp);
      ops.store(tmp, o);
    },
  };
  return { sig, tnh, cell };
}

/** The step's kernel for float64 arrays (`gatesForward32` is float32's). */
export function gatesForward(): FunctionDef {
  const PAIRS = 4;
  const w = 8;
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  const bad = c.local(V128);
  /**
   * The working locals of one pair's σ or tanh, in PAIRS sets: the loops take PAIRS pairs per pass, because each
   * pair's chain is long and serial. Two side by side ran the step ~20% faster than one pair per pass; four, per
   * unit at B = 32, H = 256 and B = 64, H = 128 (interleaved runs): 11.3–13.2 ns where two took 12.3–14.4.
   */
  const regs = () => ({
    x: c.local(V128), y: c.local(V128), nf: c.local(V128), r: c.local(V128), q: c.local(V128), tv: c.local(V128),
    pv: c.local(V128), ni: c.local(V128), t: c.local(V128), cv: c.local(V128), tcv: c.local(V128),
    ci: c.local(V128), m: c.local(V128), e: c.local(V128),
  });
  const RS = Array.from({ length: PAIRS }, regs);
  let { x, y, nf, r, q, tv, pv, ni, t, cv, tcv, ci, m, e } = RS[0]!;
  /** Makes set n the working locals. */
  const use = (n: number): void => { ({ x, y, nf, r, q, tv, pv, ni, t, cv, tcv, ci, m, e } = RS[n]!); };
  const k = {
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

  /** Two values at the address on the stack, plus `off` bytes. */
  const load = (off = 0): void => { c.v128Load(off); };
  /** Stores `v` at the address on the stack, plus `off` bytes. */
  const store = (v: number, off = 0): void => { c.get(v).v128Store(off); };
  /** nf = round(y·64/ln 2) (the shift trick), n = nf as int32 lanes, r = y − nf·ln2/64 (two parts), q = e^r − 1. */
  const reduce = (): void => {
    c.get(y).get(k.inv).f64x2Mul().get(k.shift).f64x2Add().get(k.shift).f64x2Sub().set(nf);
    c.get(nf).i32x4TruncSatF64x2SZero().set(ni);
    c.get(y).get(nf).get(k.hi).f64x2Mul().f64x2Sub().get(nf).get(k.lo).f64x2Mul().f64x2Sub().set(r);
    // q = r·(1 + r·(1/2 + r·(1/6 + r·(1/24 + r·(1/120 + r·(1/720)))))), innermost first as JavaScript does.
    c.get(r).get(k.c720).f64x2Mul();
    for (const cc of [k.c120, k.c24, k.c6, k.half, k.one]) c.get(cc).f64x2Add().get(r).f64x2Mul();
    c.set(q);
  };
  /** lane l of ni (or of `of`), on the stack */
  const nLane = (l: number, of = ni): void => { c.get(of).i32x4ExtractLane(l); };

  /** x (f64x2) → σ(x) in x: `fastSigmoid` for inputs ≥ -708. */
  const sigmoid = (): void => {
    c.get(x).get(k.max).f64x2Pmin().f64x2Neg().set(y); // y = -min(x, 745.2)
    reduce();
    // t = 2^((n mod 64)/64) from the table, lane by lane (straight into the vector's lanes)
    nLane(0); c.i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXP2).set(tv);
    nLane(1); c.i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().get(tv).v128Load64Lane(1, T_EXP2).set(tv);
    // p = 2^(n div 64), built from its bits in both lanes: exponent field (n >> 6) + 1023, shifted into place. It
    // equals the table's POW2 wherever that is a normal number; below 2^-1022 (σ of inputs past 708) the table
    // holds subnormals and this holds 2^-1022, and either way 1 + p·(t + t·q) rounds to exactly 1.
    c.get(ni).i32(6).i32x4ShrS().get(k.minExp).i32x4MaxS().get(k.bias1023).i32x4Add().i64x2ExtendLowI32x4S().i32(52).i64x2Shl().set(pv);
    // 1 / (1 + p·(t + t·q))
    c.get(k.one).get(k.one).get(pv).get(tv).get(tv).get(q).f64x2Mul().f64x2Add().f64x2Mul().f64x2Add().f64x2Div().set(x);
  };

  /**
   * x (f64x2) → tanh(x) in t: `fastTanh`, −expm1(y)/(expm1(y) + 2) with y = −2·clamp(x, ±22). Both lanes take
   * expm1 = tm + (q + tm·q), tm = 2^(n/64) − 1 from the table at n clamped into its range; only when a lane's n
   * is outside that range (|x| > 5.5, rare in a gate) is the other form, 2^(n div 64)·(t + t·q) − 1, computed
   * for both lanes and put in that lane. No branch per lane (the lane-by-lane scalar version it replaced, with a
   * branch each, ran the gate step a few percent slower).
   */
  const tanh = (): void => {
    c.get(x).get(k.t22).f64x2Pmin().get(k.tm22).f64x2Pmax().get(k.m2).f64x2Mul().set(y);
    reduce();
    c.get(ni).get(k.mRange).i32x4MaxS().get(k.pRange).i32x4MinS().set(ci); // n clamped into the table's range
    nLane(0, ci); c.i32(math.EXPM1_RANGE).i32Add().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXPM1).set(tv);
    nLane(1, ci); c.i32(math.EXPM1_RANGE).i32Add().i32(3).i32Shl().get(TAB).i32Add().get(tv).v128Load64Lane(1, T_EXPM1).set(tv);
    c.get(tv).get(q).get(tv).get(q).f64x2Mul().f64x2Add().f64x2Add().set(e);
    c.block();
    c.get(ni).get(ci).i32x4Eq().tee(m).i32x4AllTrue().brIf(0); // every lane in the table's range
    // t = 2^((n mod 64)/64), and 2^(n div 64) from its bits (n div 64 ≥ -64 here: always a normal number)
    nLane(0); c.i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().v128Load64Zero(T_EXP2).set(tv);
    nLane(1); c.i32(63).i32And().i32(3).i32Shl().get(TAB).i32Add().get(tv).v128Load64Lane(1, T_EXP2).set(tv);
    c.get(ni).i32(6).i32x4ShrS().get(k.bias1023).i32x4Add().i64x2ExtendLowI32x4S().i32(52).i64x2Shl().set(pv);
    c.get(e); // kept where the lane is in range
    c.get(pv).get(tv).get(tv).get(q).f64x2Mul().f64x2Add().f64x2Mul().get(k.one).f64x2Sub(); // the other form
    c.get(m).i64x2ExtendLowI32x4S().v128Bitselect().set(e);
    c.end();
    c.get(e).f64x2Neg().get(e).get(k.two).f64x2Add().f64x2Div().set(t);
  };

  /** for (p = from; p < to; p += 2w) body() — pointers in bytes */
  const pairs = (from: () => void, to: () => void, body: () => void): void => {
    from(); c.set(p);
    to(); c.set(end);
    c.block().loop();
    c.get(p).get(end).i32GeS().brIf(1);
    body();
    c.get(p).i32(2 * w).i32Add().set(p);
    c.br(0).end().end();
  };
  const phased = (from: () => void, to: () => void, ph: Phases): void => sideBySide(c, p, end, from, to, ph, PAIRS, use);
  const rows = (body: () => void): void => eachRow(c, b, B_, Z, hw, zb, sb, body);
  const zAt = blockAt(c, zb, hw);

  c.get(H_).i32(3).i32Shl().set(hw); // bytes per H values
  // First, any σ input below -708? Then nothing is written and the caller runs the TypeScript kernel.
  c.f64(0).f64x2Splat().set(bad);
  const scan = (): void => { c.get(p); load(); c.get(k.cut).f64x2Lt().get(bad).v128Or().set(bad); };
  rows(() => {
    pairs(zAt(0), zAt(2), scan);
    pairs(zAt(3), zAt(4), scan);
  });
  c.block();
  c.get(bad).v128AnyTrue().i32Eqz().brIf(0);
  c.i32(1).return();
  c.end();

  rows(() => {
    // Each handles the pair at p + o (bytes) with the current set of locals.
    gateBlocks(zAt, phased, stepPhases(c, { p, hw, zb, sb, cPrev: CP, c: C, tanhC: TC, h: HH },
      { load, store, mul: () => c.f64x2Mul(), add: () => c.f64x2Add(), sigmoid, tanh }, () => ({ cv, x, t, tcv, tmp: y })));
  });
  c.i32(0);
  return { name: "gates", params, results: [I32], code: c };
}

/**
 * One step's σ-gate math for float32 arrays, in float32 arithmetic, four units at a time (f32x4): twice the
 * lanes of the float64 kernel and no table lookups, so not bit-identical to the TypeScript kernel (which
 * computes in float64 and rounds at each store) but within a few float32 ulps of the true values (the bounds are
 * in test/wasm.test.ts, over the whole float32 range). Parameters: B, H, z, cPrev, c, tanhC, h (byte offsets);
 * returns 0 (it never declines). H must be even: the last two units of a block of H ≡ 2 (mod 4) go as a half vector.
 *
 * e^a for a ≤ 0: n = round(a/ln 2), r = (a − n·L1) − n·L2 (L1 = ln 2 to 15 bits, so n·L1 is exact, and L2 the
 * rest), |r| ≤ ln 2 / 2; e^r − 1 = q(r) = r + r²/2! + … + r⁸/8! (the first term left out, r⁹/9!, is below 2^-32
 * of q); 2^n from its bits.
 * - σ(x) = (x ≥ 0 ? 1 : u)/(1 + u) with u = e^−|x|: never overflows, and keeps the relative precision of σ far
 *   left, down into the subnormals (2^n is applied as 2^(n>>1)·2^(n−(n>>1)), both normal, so that the result
 *   rounds once); past x = −104, e^x is below half the smallest subnormal and σ is 0.
 * - tanh(x) = −m/(m + 2) with m = expm1(−2x) = 2^n·q + (2^n − 1) (n = 0 gives q itself: full relative precision
 *   near 0), with the sign of x; |x| is clamped at 10, past which tanh is ±1 in float32.
 */
export function gatesForward32(fused = false): FunctionDef {
  const QUADS = 4;
  const params = [I32, I32, I32, I32, I32, I32, I32] as const;
  const B_ = 0, H_ = 1, Z = 2, CP = 3, C = 4, TC = 5, HH = 6;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  /**
   * One quad's working locals, in QUADS sets: the loops take QUADS quads per pass, side by side, because each
   * quad's chain is serial (Horner's polynomial, then a division). Measured per unit at B = 32, H = 256 (and S2,
   * S3 alike): one quad per pass 7.3 ns, two 6.4, four 5.4, six or eight ~5.0 but slower where H is small.
   */
  const regs = () => ({
    x: c.local(V128), a: c.local(V128), nf: c.local(V128), ni: c.local(V128), n1: c.local(V128), r: c.local(V128),
    q: c.local(V128), u: c.local(V128), t: c.local(V128), cv: c.local(V128), tcv: c.local(V128),
  });
  const RS = Array.from({ length: QUADS }, regs);
  let { x, a, nf, ni, n1, r, q, u, t, cv, tcv } = RS[0]!;
  /** Makes set n the working locals. */
  const use = (n: number): void => { ({ x, a, nf, ni, n1, r, q, u, t, cv, tcv } = RS[n]!); };
  const L1 = Math.round(Math.LN2 * 32768) / 32768, L2 = Math.fround(Math.LN2 - L1);
  const k = {
    one: c.local(V128), zero: c.local(V128), floor: c.local(V128), inv: c.local(V128), l1: c.local(V128), l2: c.local(V128),
    t10: c.local(V128), tm10: c.local(V128), m2: c.local(V128), two: c.local(V128), bias: c.local(V128),
    shift: c.local(V128), shiftBits: c.local(V128), sign: c.local(V128),
  };
  /** 1/k! for k = 8 … 1, the coefficients of q in Horner's order. */
  const coef: number[] = [];
  const poly = [8, 7, 6, 5, 4, 3, 2, 1].map(() => c.local(V128));
  for (let j = 1, f = 1; j <= 8; j++) { f *= j; coef.unshift(1 / f); }
  const consts: [number, number][] = [
    [k.one, 1], [k.zero, 0], [k.floor, -104], [k.inv, 1 / Math.LN2], [k.l1, L1], [k.l2, L2], [k.t10, 10], [k.tm10, -10],
    [k.m2, -2], [k.two, 2], [k.shift, 1.5 * 2 ** 23], ...poly.map((l, j): [number, number] => [l, coef[j]!]),
  ];
  for (const [local, v] of consts) c.f32(v).f32x4Splat().set(local);
  c.i32(127).i32x4Splat().set(k.bias);
  c.i32(0x4b400000).i32x4Splat().set(k.shiftBits);
  c.i32(0x80000000 | 0).i32x4Splat().set(k.sign);

  /** Four values at the address on the stack (two, in the half vector at the end of an odd number of pairs). */
  let half = false;
  const load = (off = 0): void => { if (half) c.v128Load64Zero(off); else c.v128Load(off); };
  const store = (v: number, off = 0): void => { c.get(v); if (half) c.v128Store64Lane(0, off); else c.v128Store(off); };
  /** 2^k for the int32 lanes k on the stack (−126 ≤ k ≤ 127): the exponent field k + 127. */
  const pow2 = (): void => { c.get(k.bias).i32x4Add().i32(23).i32x4Shl(); };
  /**
   * a → nf = round(a/ln 2) by the shift trick (a/ln 2 + 1.5·2^23 rounds to an integer, whose float32 bits are
   * 0x4b400000 + n), ni = n as int32 lanes from those bits, r = a − nf·ln 2 (two parts), q = e^r − 1.
   */
  const reduce = (): void => {
    if (!fused) {
      c.get(a).get(k.inv).f32x4Mul().get(k.shift).f32x4Add().tee(nf).get(k.shiftBits).i32x4Sub().set(ni);
      c.get(nf).get(k.shift).f32x4Sub().set(nf);
      c.get(a).get(nf).get(k.l1).f32x4Mul().f32x4Sub().get(nf).get(k.l2).f32x4Mul().f32x4Sub().set(r);
      c.get(r).get(poly[0]!).f32x4Mul();
      for (let j = 1; j < 8; j++) c.get(poly[j]!).f32x4Add().get(r).f32x4Mul();
    } else {
      // The same steps with relaxed SIMD's multiply-adds (fma: true): a·(1/ln 2) + shift rounds once, so n is
      // a/ln 2 rounded to an integer as before; r = a − n·L1 − n·L2 and each Horner step a·b + c round once.
      c.get(a).get(k.inv).get(k.shift).f32x4RelaxedMadd().tee(nf).get(k.shiftBits).i32x4Sub().set(ni);
      c.get(nf).get(k.shift).f32x4Sub().set(nf);
      c.get(nf).get(k.l1).get(a).f32x4RelaxedNmadd().set(r);
      c.get(nf).get(k.l2).get(r).f32x4RelaxedNmadd().set(r);
      c.get(r).get(poly[0]!).get(poly[1]!).f32x4RelaxedMadd();
      for (let j = 2; j < 8; j++) c.get(r).get(poly[j]!).f32x4RelaxedMadd(); // (the sum so far)·r + c_j
      c.get(r).f32x4Mul();
    }
    c.set(q);
  };
  /** x → σ(x) in x. */
  const sigmoid = (): void => {
    c.get(x).get(k.sign).v128Or().get(k.floor).f32x4Pmax().set(a); // a = max(−|x|, −104): the sign bit set
    reduce();
    // u = e^a = ((1 + q)·2^(n>>1))·2^(n − (n>>1))
    c.get(k.one).get(q).f32x4Add();
    c.get(ni).i32(1).i32x4ShrS().tee(n1); pow2(); c.f32x4Mul();
    c.get(ni).get(n1).i32x4Sub(); pow2(); c.f32x4Mul().set(u);
    c.get(k.one).get(u).get(x).get(k.zero).f32x4Ge().v128Bitselect(); // x ≥ 0 ? 1 : u (NaN: u, NaN)
    c.get(k.one).get(u).f32x4Add().f32x4Div().set(x);
  };
  /** x → tanh(x) in t. */
  const tanh = (): void => {
    c.get(x).get(k.t10).f32x4Pmin().get(k.tm10).f32x4Pmax().get(k.m2).f32x4Mul().set(a); // a = −2·clamp(x, ±10)
    reduce();
    c.get(ni); pow2(); c.set(u); // 2^n, |n| ≤ 29
    if (fused) c.get(u).get(q).get(u).get(k.one).f32x4Sub().f32x4RelaxedMadd().set(u); // m = 2^n·q + (2^n − 1)
    else c.get(u).get(q).f32x4Mul().get(u).get(k.one).f32x4Sub().f32x4Add().set(u);
    c.get(u).f32x4Neg().get(u).get(k.two).f32x4Add().f32x4Div().set(t);
    c.get(x).get(t).get(k.sign).v128Bitselect().set(t); // x's sign (tanh is odd): tanh(±0) = ±0, where m would give −0 for both
  };

  /** The last two units of a block (H ≡ 2 mod 4), as a half vector. */
  const halfVector = (ph: Phases): (() => void) => () => {
    c.block();
    c.get(p).get(end).i32GeS().brIf(0);
    half = true;
    ph.load(0); ph.compute(); ph.store(0);
    half = false;
    c.end();
  };
  const quads = (from: () => void, to: () => void, ph: Phases): void =>
    sideBySide(c, p, end, from, to, ph, QUADS, use, halfVector(ph));
  const zAt = blockAt(c, zb, hw);

  c.get(H_).i32(2).i32Shl().set(hw); // bytes per H values
  eachRow(c, b, B_, Z, hw, zb, sb, () => {
    gateBlocks(zAt, quads, stepPhases(c, { p, hw, zb, sb, cPrev: CP, c: C, tanhC: TC, h: HH },
      { load, store, mul: () => c.f32x4Mul(), add: () => c.f32x4Add(), sigmoid, tanh }, () => ({ cv, x, t, tcv, tmp: a })));
  });
  c.i32(0);
  return { name: "gates32", params, results: [I32], code: c };
}

/**
 * The backward of one step's σ-gate math (`lstmGatesBackward` in kernels.ts), the same operations in the same
 * order. Float64: two units at a time, so bit-identical to it. Float32: four units at a time in float32
 * arithmetic (the TypeScript kernel rounds only where it stores), so within float32 rounding of it; the last two
 * units of an H ≡ 2 (mod 4) go as a half vector. Parameters: B, H, gates, cPrev, tanhC, dh, dc, dz (byte
 * offsets): dz (B, 4H) is written, dc (B, H) replaced by dL/dc_{t-1}. No transcendentals: every derivative
 * comes from the activations forward saved. H must be even.
 */
export function gatesBackward(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const B_ = 0, H_ = 1, G_ = 2, CP_ = 3, TC_ = 4, DH_ = 5, DC_ = 6, DZ_ = 7;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), gb = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  const s = c.local(I32);
  const ig = c.local(V128), fg = c.local(V128), gg = c.local(V128), og = c.local(V128), tc = c.local(V128), dh = c.local(V128);
  const dcv = c.local(V128), one = c.local(V128);
  const f64 = w === 8;
  if (f64) c.f64(1).f64x2Splat().set(one); else c.f32(1).f32x4Splat().set(one);
  let half = false; // float32: the half vector at the end of a row
  const load = (): void => { if (f64 || !half) c.v128Load(); else c.v128Load64Zero(); };
  /** Stores the vector on the stack at the address below it. */
  const store = (): void => { if (f64 || !half) c.v128Store(); else c.v128Store64Lane(0); };
  const mul = (): void => { if (f64) c.f64x2Mul(); else c.f32x4Mul(); };
  const add = (): void => { if (f64) c.f64x2Add(); else c.f32x4Add(); };
  const sub = (): void => { if (f64) c.f64x2Sub(); else c.f32x4Sub(); };
  /** Units at p (w·lanes bytes of each block): the whole computation. */
  const body = (): void => {
    c.get(p).get(G_).i32Sub().get(gb).i32Sub().get(sb).i32Add().set(s); // (b·H + j)·w
    c.get(p); load(); c.set(ig);
    c.get(p).get(hw).i32Add(); load(); c.set(fg);
    c.get(p).get(hw).i32(2).i32Mul().i32Add(); load(); c.set(gg);
    c.get(p).get(hw).i32(3).i32Mul().i32Add(); load(); c.set(og);
    c.get(TC_).get(s).i32Add(); load(); c.set(tc);
    c.get(DH_).get(s).i32Add(); load(); c.set(dh);
    // dcv = dc + dh·o·(1 − tanh²(c))
    c.get(DC_).get(s).i32Add(); load();
    c.get(dh).get(og); mul(); c.get(one).get(tc).get(tc); mul(); sub(); mul(); add(); c.set(dcv);
    // the four gate blocks of dz, at zb + (p − G − gb) + k·H
    const dzAt = (k: number): void => { c.get(zb).get(p).get(G_).i32Sub().get(gb).i32Sub().i32Add(); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
    dzAt(0); c.get(dcv).get(gg); mul(); c.get(ig); mul(); c.get(one).get(ig); sub(); mul(); store(); // dcv·g·i·(1 − i)
    dzAt(1); c.get(dcv).get(CP_).get(s).i32Add(); load(); mul(); c.get(fg); mul(); c.get(one).get(fg); sub(); mul(); store(); // dcv·cPrev·f·(1 − f)
    dzAt(2); c.get(dcv).get(ig); mul(); c.get(one).get(gg).get(gg); mul(); sub(); mul(); store(); // dcv·i·(1 − g²)
    dzAt(3); c.get(dh).get(tc); mul(); c.get(og); mul(); c.get(one).get(og); sub(); mul(); store(); // dh·tanh(c)·o·(1 − o)
    c.get(DC_).get(s).i32Add().get(dcv).get(fg); mul(); store(); // dL/dc_{t-1} = dcv·f
  };
  c.get(H_).i32(f64 ? 3 : 2).i32Shl().set(hw);
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B_).i32GeS().brIf(1);
  c.get(b).get(hw).i32(4).i32Mul().i32Mul().set(gb); // row b of gates and dz: b·4H values in
  c.get(G_).get(gb).i32Add().set(p);
  c.get(DZ_).get(gb).i32Add().set(zb);
  c.get(b).get(hw).i32Mul().set(sb); // row b of the (B, H) arrays
  c.get(p).get(hw).i32Add().set(end);
  c.block().loop(); // p walks the i block of row b, 16 bytes (two float64 or four float32 units) a pass
  c.get(p).i32(16).i32Add().get(end).i32GtS().brIf(1);
  body();
  c.get(p).i32(16).i32Add().set(p);
  c.br(0).end().end();
  if (!f64) { // two float32 units left
    c.block();
    c.get(p).get(end).i32GeS().brIf(0);
    half = true;
    body();
    half = false;
    c.end();
  }
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
  return { name: f64 ? "gatesBack" : "gatesBack32", params, results: [], code: c };
}

/**
 * The bias kernels, the same operations in the same order as `addBiasRows` and `sumRowsInto` in kernels.ts:
 * Y (M, N) += bias by rows, and dBias += the column sums of dY (M, N), four rows per pass as
 * ((y0 + y1) + (y2 + y3)), then one row at a time. Float64: two columns at a time, bit-identical. Float32: four
 * columns at a time in float32 arithmetic (a half vector for the last two of N ≡ 2 mod 4): Y += bias is one
 * rounding either way, so bit-identical too; the sums round at each addition where TypeScript rounds at the
 * store. Parameters: M, N, y, ldy (elements), bias (byte offsets). N must be even.
 */
export function biasRows(w: 4 | 8, sum: boolean): FunctionDef {
  const params = [I32, I32, I32, I32, I32] as const;
  const M_ = 0, N_ = 1, Y_ = 2, LD_ = 3, BI_ = 4, sh = w === 8 ? 3 : 2, f64 = w === 8;
  const c = new Code(params);
  const i = c.local(I32), j = c.local(I32), row = c.local(I32), ld = c.local(I32), nb = c.local(I32), m4 = c.local(I32);
  const v = c.local(V128);
  let half = false; // float32: the last two columns
  const load = (): void => { if (f64 || !half) c.v128Load(); else c.v128Load64Zero(); };
  const store = (): void => { if (f64 || !half) c.v128Store(); else c.v128Store64Lane(0); };
  const add = (): void => { if (f64) c.f64x2Add(); else c.f32x4Add(); };
  c.get(LD_).i32(sh).i32Shl().set(ld);
  c.get(N_).i32(sh).i32Shl().set(nb);
  c.get(M_).i32(-4).i32And().set(m4); // rows in passes of four (sum) — every row, for add
  /** for (j = 0; j + 16 ≤ N·w; j += 16) body() over the row starting at `row`, then (float32) the half vector left */
  const cols = (body: () => void): void => {
    c.i32(0).set(j);
    c.block().loop();
    c.get(j).i32(16).i32Add().get(nb).i32GtS().brIf(1);
    body();
    c.get(j).i32(16).i32Add().set(j);
    c.br(0).end().end();
    if (!f64) {
      c.block();
      c.get(j).get(nb).i32GeS().brIf(0);
      half = true;
      body();
      half = false;
      c.end();
    }
  };
  const at = (r: number): void => { c.get(row).get(j).i32Add(); if (r) c.get(ld).i32(r).i32Mul().i32Add(); };
  c.i32(0).set(i);
  if (sum) {
    c.block().loop();
    c.get(i).get(m4).i32GeS().brIf(1);
    c.get(Y_).get(i).get(ld).i32Mul().i32Add().set(row);
    cols(() => {
      c.get(BI_).get(j).i32Add(); // dBias[j] = dBias[j] + ((y0 + y1) + (y2 + y3))
      c.get(BI_).get(j).i32Add(); load();
      at(0); load(); at(1); load(); add();
      at(2); load(); at(3); load(); add();
      add(); add(); c.set(v);
      c.get(v); store();
    });
    c.get(i).i32(4).i32Add().set(i);
    c.br(0).end().end();
  }
  c.block().loop(); // the remaining rows one at a time (for add: every row)
  c.get(i).get(M_).i32GeS().brIf(1);
  c.get(Y_).get(i).get(ld).i32Mul().i32Add().set(row);
  cols(() => {
    if (sum) {
      c.get(BI_).get(j).i32Add();
      c.get(BI_).get(j).i32Add(); load(); at(0); load(); add(); c.set(v);
    } else {
      at(0);
      at(0); load(); c.get(BI_).get(j).i32Add(); load(); add(); c.set(v);
    }
    c.get(v); store();
  });
  c.get(i).i32(1).i32Add().set(i);
  c.br(0).end().end();
  return { name: `${sum ? "sumRows" : "addBias"}${w === 8 ? "" : "32"}`, params, results: [], code: c };
}

/** The module's bytes (all the kernels), for a shared memory of at most `maxPages` pages, or a plain one of `pages`. */
export function gatesModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  return assemble([
    gatesForward(), gatesForward32(fused), gatesBackward(8), gatesBackward(4),
    biasRows(8, false), biasRows(4, false), biasRows(8, true), biasRows(4, true),
  ], memory);
}
