/**
 * One LSTM step's gate math in WebAssembly SIMD (f64x2): the same computation as `lstmGatesForward` in
 * src/tensor/kernels.ts for σ gates, operation for operation, so that the results are bit-identical to it.
 *
 * σ on i, f, o and tanh on g, in place over z (B, 4H); then c = f ⊙ cPrev + i ⊙ g, tanhC = tanh(c),
 * h = o ⊙ tanhC. σ and tanh are `fastSigmoid` and `fastTanh` (2^(n/64)·e^r with a degree-6 polynomial and
 * the tables of src/tensor/math.ts, copied into the memory once): the arithmetic runs two lanes at a time,
 * the table lookups lane by lane. In float32 every value is widened to float64, computed as the TypeScript
 * kernel computes it on a Float32Array, and rounded to float32 where that kernel stores it (the cell's c is
 * used unrounded for tanh(c), as there).
 *
 * σ of an input below -708 takes `math.exp` there (a subnormal result); this kernel looks for such inputs
 * first and returns 1 without writing anything, and the caller then runs the TypeScript kernel on the step.
 * H must be even (pairs of units); the caller keeps odd H on the TypeScript kernel.
 */
import { Code, I32, V128, F64, assemble, type FunctionDef } from "./assembler.js";
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

/** The step's kernel for float64 (`w` 8) or float32 (`w` 4) arrays. */
export function gatesForward(w: 4 | 8): FunctionDef {
  const params = [I32, I32, I32, I32, I32, I32, I32, I32] as const;
  const c = new Code(params);
  const b = c.local(I32), p = c.local(I32), end = c.local(I32), zb = c.local(I32), sb = c.local(I32), hw = c.local(I32);
  const n = c.local(I32);
  const bad = c.local(V128);
  /**
   * The working locals of one pair's σ or tanh, in two sets: the loops take two pairs per pass, and the two
   * chains side by side ran the step ~20% faster than one pair per pass (each chain is long and serial).
   */
  const regs = () => ({
    x: c.local(V128), y: c.local(V128), nf: c.local(V128), r: c.local(V128), q: c.local(V128), tv: c.local(V128),
    pv: c.local(V128), ni: c.local(V128), t: c.local(V128), cv: c.local(V128), tcv: c.local(V128),
  });
  const R0 = regs(), R1 = regs();
  let { x, y, nf, r, q, tv, pv, ni, t, cv, tcv } = R0;
  const use = (R: typeof R0): void => { ({ x, y, nf, r, q, tv, pv, ni, t, cv, tcv } = R); };
  const em = c.local(F64), ql = c.local(F64), tl = c.local(F64);
  const k = {
    cut: c.local(V128), max: c.local(V128), inv: c.local(V128), shift: c.local(V128), hi: c.local(V128), lo: c.local(V128),
    one: c.local(V128), half: c.local(V128), c6: c.local(V128), c24: c.local(V128), c120: c.local(V128), c720: c.local(V128),
    t22: c.local(V128), tm22: c.local(V128), m2: c.local(V128), two: c.local(V128),
    minExp: c.local(V128), bias1023: c.local(V128),
  };
  c.i32(-1022).i32x4Splat().set(k.minExp);
  c.i32(1023).i32x4Splat().set(k.bias1023);
  const consts: [number, number][] = [
    [k.cut, -708], [k.max, 745.2], [k.inv, math.INV_LN2_64], [k.shift, math.ROUND_SHIFT], [k.hi, math.LN2_64_HI],
    [k.lo, math.LN2_64_LO], [k.one, 1], [k.half, 0.5], [k.c6, 1 / 6], [k.c24, 1 / 24], [k.c120, 1 / 120],
    [k.c720, 1 / 720], [k.t22, 22], [k.tm22, -22], [k.m2, -2], [k.two, 2],
  ];
  for (const [local, v] of consts) c.f64(v).f64x2Splat().set(local);
  const sh = w === 8 ? 3 : 2;

  /** Two values at the address on the stack, as f64x2. */
  const load = (off = 0): void => { if (w === 8) c.v128Load(off); else c.v128Load64Zero(off).f64x2PromoteLowF32x4(); };
  /** Stores `v` at the address on the stack, plus `off` bytes (float32: rounded). */
  const store = (v: number, off = 0): void => {
    c.get(v);
    if (w === 8) c.v128Store(off); else c.f32x4DemoteF64x2Zero().v128Store64Lane(0, off);
  };
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
  /** The float64 at tables + base + 8·(index on the stack). */
  const table = (base: number): void => { c.i32(3).i32Shl().get(TAB).i32Add().f64Load(base); };
  /** lane l of ni, on the stack */
  const nLane = (l: number): void => { c.get(ni).i32x4ExtractLane(l); };

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

  /** x (f64x2) → tanh(x) in t: `fastTanh`, −expm1(y)/(expm1(y) + 2) with y = −2·clamp(x, ±22). */
  const tanh = (): void => {
    c.get(x).get(k.t22).f64x2Pmin().get(k.tm22).f64x2Pmax().get(k.m2).f64x2Mul().set(y);
    reduce();
    for (let l = 0; l < 2; l++) {
      nLane(l); c.set(n);
      c.get(q).f64x2ExtractLane(l).set(ql);
      c.block().block();
      // |n| ≤ EXPM1_RANGE: expm1 = tm + (q + tm·q) with tm = 2^(n/64) − 1 from the table
      c.get(n).i32(math.EXPM1_RANGE).i32Add().i32(2 * math.EXPM1_RANGE).i32LeU().i32Eqz().brIf(0);
      c.get(n).i32(math.EXPM1_RANGE).i32Add(); table(T_EXPM1); c.set(tl);
      c.get(tl).get(ql).get(tl).get(ql).f64Mul().f64Add().f64Add().set(em);
      c.br(1);
      c.end();
      // else: 2^(n div 64)·(t + t·q) − 1
      c.get(n).i32(63).i32And(); table(T_EXP2); c.set(tl);
      c.get(n).i32(6).i32ShrS().i32(math.POW2_BIAS).i32Add(); table(T_POW2);
      c.get(tl).get(tl).get(ql).f64Mul().f64Add().f64Mul().f64(1).f64Sub().set(em);
      c.end();
      if (l === 0) c.get(em).f64x2Splat().set(tv); else c.get(tv).get(em).f64x2ReplaceLane(1).set(tv);
    }
    c.get(tv).f64x2Neg().get(tv).get(k.two).f64x2Add().f64x2Div().set(t);
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
  /**
   * for (p = from; p + 4w ≤ to; p += 4w): the pairs at p and p + 2w, each with its own set of locals, in phases
   * (both loads, both computations, both stores), then the last pair alone if the block holds an odd number.
   */
  type Phases = { load(o: number): void; compute(o: number): void; store(o: number): void };
  const pairs2 = (from: () => void, to: () => void, ph: Phases): void => {
    from(); c.set(p);
    to(); c.set(end);
    c.block().loop();
    c.get(p).i32(4 * w).i32Add().get(end).i32GtS().brIf(1);
    for (const step of ["load", "compute", "store"] as const) {
      use(R0); ph[step](0);
      use(R1); ph[step](2 * w);
    }
    use(R0);
    c.get(p).i32(4 * w).i32Add().set(p);
    c.br(0).end().end();
    c.block();
    c.get(p).get(end).i32GeS().brIf(0);
    ph.load(0); ph.compute(0); ph.store(0);
    c.end();
  };
  /** for each row b: zb = z + b·4H·w, sb = b·H·w; body() */
  const rows = (body: () => void): void => {
    c.i32(0).set(b);
    c.block().loop();
    c.get(b).get(B_).i32GeS().brIf(1);
    c.get(Z).get(b).get(hw).i32(4).i32Mul().i32Mul().i32Add().set(zb);
    c.get(b).get(hw).i32Mul().set(sb);
    body();
    c.get(b).i32(1).i32Add().set(b);
    c.br(0).end().end();
  };
  const at = (base: () => void, units: number): (() => void) => () => { base(); c.get(hw).i32(units).i32Mul().i32Add(); };
  const zAt = (units: number): (() => void) => at(() => c.get(zb), units);

  c.get(H_).i32(sh).i32Shl().set(hw); // bytes per H values
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
    const sig: Phases = {
      load: (o) => { c.get(p); load(o); c.set(x); },
      compute: () => sigmoid(),
      store: (o) => { c.get(p); store(x, o); },
    };
    const tnh: Phases = {
      load: (o) => { c.get(p); load(o); c.set(x); },
      compute: () => tanh(),
      store: (o) => { c.get(p); store(t, o); },
    };
    // Units j, j + 1 at p + o: p walks the i block; the others are p + H, + 2H, + 3H (bytes hw); the states at
    // sb + (p − zb) + o.
    const off = (): void => { c.get(p).get(zb).i32Sub().get(sb).i32Add(); }; // (b·H + j)·w, less o
    const cell: Phases = {
      load: (o) => {
        // c = f·cPrev + i·g
        c.get(p).get(hw).i32Add(); load(o);
        off(); c.get(CP).i32Add(); load(o);
        c.f64x2Mul();
        c.get(p); load(o);
        c.get(p).get(hw).i32(2).i32Mul().i32Add(); load(o);
        c.f64x2Mul().f64x2Add().set(cv);
        c.get(cv).set(x);
      },
      compute: () => { tanh(); c.get(t).set(tcv); },
      store: (o) => {
        off(); c.get(C).i32Add(); store(cv, o);
        off(); c.get(TC).i32Add(); store(tcv, o);
        // h = o·tanh(c)
        off(); c.get(HH).i32Add();
        c.get(p).get(hw).i32(3).i32Mul().i32Add(); load(o);
        c.get(tcv).f64x2Mul();
        c.set(y); store(y, o);
      },
    };
    pairs2(zAt(0), zAt(2), sig); // i, f
    pairs2(zAt(3), zAt(4), sig); // o
    pairs2(zAt(2), zAt(3), tnh); // g
    pairs2(zAt(0), zAt(1), cell);
  });
  c.i32(0);
  return { name: w === 8 ? "gates" : "gates32", params, results: [I32], code: c };
}

/**
 * The backward of one step's σ-gate math (`lstmGatesBackward` in kernels.ts), two units at a time, the same
 * operations in the same order, so bit-identical to it. Parameters: B, H, gates, cPrev, tanhC, dh, dc, dz (byte
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
  c.f64(1).f64x2Splat().set(one);
  const load = (): void => { if (w === 8) c.v128Load(); else c.v128Load64Zero().f64x2PromoteLowF32x4(); };
  /** Stores the f64x2 on the stack at the address below it (float32: rounded). */
  const store = (): void => { if (w === 8) c.v128Store(); else c.f32x4DemoteF64x2Zero().v128Store64Lane(0); };
  c.get(H_).i32(w === 8 ? 3 : 2).i32Shl().set(hw);
  c.i32(0).set(b);
  c.block().loop();
  c.get(b).get(B_).i32GeS().brIf(1);
  c.get(b).get(hw).i32(4).i32Mul().i32Mul().set(gb); // row b of gates and dz: b·4H values in
  c.get(G_).get(gb).i32Add().set(p);
  c.get(DZ_).get(gb).i32Add().set(zb);
  c.get(b).get(hw).i32Mul().set(sb); // row b of the (B, H) arrays
  c.get(p).get(hw).i32Add().set(end);
  c.block().loop(); // p walks the i block of row b; units j, j + 1
  c.get(p).get(end).i32GeS().brIf(1);
  c.get(p).get(G_).i32Sub().get(gb).i32Sub().get(sb).i32Add().set(s); // (b·H + j)·w
  c.get(p); load(); c.set(ig);
  c.get(p).get(hw).i32Add(); load(); c.set(fg);
  c.get(p).get(hw).i32(2).i32Mul().i32Add(); load(); c.set(gg);
  c.get(p).get(hw).i32(3).i32Mul().i32Add(); load(); c.set(og);
  c.get(TC_).get(s).i32Add(); load(); c.set(tc);
  c.get(DH_).get(s).i32Add(); load(); c.set(dh);
  // dcv = dc + dh·o·(1 − tanh²(c))
  c.get(DC_).get(s).i32Add(); load();
  c.get(dh).get(og).f64x2Mul().get(one).get(tc).get(tc).f64x2Mul().f64x2Sub().f64x2Mul().f64x2Add().set(dcv);
  // the four gate blocks of dz, at zb + (p − G − gb) + k·H
  const dzAt = (k: number): void => { c.get(zb).get(p).get(G_).i32Sub().get(gb).i32Sub().i32Add(); if (k) c.get(hw).i32(k).i32Mul().i32Add(); };
  dzAt(0); c.get(dcv).get(gg).f64x2Mul().get(ig).f64x2Mul().get(one).get(ig).f64x2Sub().f64x2Mul(); store(); // dcv·g·i·(1 − i)
  dzAt(1); c.get(dcv).get(CP_).get(s).i32Add(); load(); c.f64x2Mul().get(fg).f64x2Mul().get(one).get(fg).f64x2Sub().f64x2Mul(); store(); // dcv·cPrev·f·(1 − f)
  dzAt(2); c.get(dcv).get(ig).f64x2Mul().get(one).get(gg).get(gg).f64x2Mul().f64x2Sub().f64x2Mul(); store(); // dcv·i·(1 − g²)
  dzAt(3); c.get(dh).get(tc).f64x2Mul().get(og).f64x2Mul().get(one).get(og).f64x2Sub().f64x2Mul(); store(); // dh·tanh(c)·o·(1 − o)
  c.get(DC_).get(s).i32Add().get(dcv).get(fg).f64x2Mul(); store(); // dL/dc_{t-1} = dcv·f
  c.get(p).i32(2 * w).i32Add().set(p);
  c.br(0).end().end();
  c.get(b).i32(1).i32Add().set(b);
  c.br(0).end().end();
  return { name: w === 8 ? "gatesBack" : "gatesBack32", params, results: [], code: c };
}

/**
 * The bias kernels, two columns at a time, the same operations in the same order as `addBiasRows` and
 * `sumRowsInto` in kernels.ts (bit-identical): Y (M, N) += bias by rows, and dBias += the column sums of dY (M, N),
 * four rows per pass as ((y0 + y1) + (y2 + y3)), then one row at a time. Parameters: M, N, y, ldy (elements),
 * bias (byte offsets). N must be even.
 */
function biasRows(w: 4 | 8, sum: boolean): FunctionDef {
  const params = [I32, I32, I32, I32, I32] as const;
  const M_ = 0, N_ = 1, Y_ = 2, LD_ = 3, BI_ = 4, sh = w === 8 ? 3 : 2;
  const c = new Code(params);
  const i = c.local(I32), j = c.local(I32), row = c.local(I32), ld = c.local(I32), nb = c.local(I32), m4 = c.local(I32);
  const v = c.local(V128);
  const load = (): void => { if (w === 8) c.v128Load(); else c.v128Load64Zero().f64x2PromoteLowF32x4(); };
  const store = (): void => { if (w === 8) c.v128Store(); else c.f32x4DemoteF64x2Zero().v128Store64Lane(0); };
  c.get(LD_).i32(sh).i32Shl().set(ld);
  c.get(N_).i32(sh).i32Shl().set(nb);
  c.get(M_).i32(-4).i32And().set(m4); // rows in passes of four (sum) — every row, for add
  /** for (j = 0; j < N·w; j += 2w) body() over the row starting at `row` */
  const cols = (body: () => void): void => {
    c.i32(0).set(j);
    c.block().loop();
    c.get(j).get(nb).i32GeS().brIf(1);
    body();
    c.get(j).i32(2 * w).i32Add().set(j);
    c.br(0).end().end();
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
      at(0); load(); at(1); load(); c.f64x2Add();
      at(2); load(); at(3); load(); c.f64x2Add();
      c.f64x2Add().f64x2Add().set(v);
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
      c.get(BI_).get(j).i32Add(); load(); at(0); load(); c.f64x2Add().set(v);
    } else {
      at(0);
      at(0); load(); c.get(BI_).get(j).i32Add(); load(); c.f64x2Add().set(v);
    }
    c.get(v); store();
  });
  c.get(i).i32(1).i32Add().set(i);
  c.br(0).end().end();
  return { name: `${sum ? "sumRows" : "addBias"}${w === 8 ? "" : "32"}`, params, results: [], code: c };
}

/** The module's bytes (all the kernels), for a shared memory of at most `maxPages` pages, or a plain one of `pages`. */
export function gatesModule(memory: { pages: number; maxPages?: number; shared?: boolean }): Uint8Array {
  return assemble([
    gatesForward(8), gatesForward(4), gatesBackward(8), gatesBackward(4),
    biasRows(8, false), biasRows(4, false), biasRows(8, true), biasRows(4, true),
  ], memory);
}
