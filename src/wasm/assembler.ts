/**
 * A small WebAssembly assembler: just what longshort's SIMD kernels need, emitted at run time from TypeScript
 * (no toolchain, no binary in the repository). A module imports one memory (the engine's buffers are views of
 * it) and exports functions built with `Code`, an instruction writer with one method per opcode used.
 *
 * Facts from the WebAssembly binary format (core spec 2.0 and its SIMD proposal) used here: a module is the
 * magic "\0asm" and version 1, then sections (id, byte size, contents): 1 types, 2 imports, 3 functions,
 * 7 exports, 10 code. Integers are LEB128 (unsigned, or signed for constants). A function body is its locals
 * (count, type pairs) and an expression ended by 0x0b. SIMD instructions are the prefix 0xfd and a LEB128
 * opcode; loads and stores carry a memarg (log2 alignment, offset).
 */

/** Value types. */
export const I32 = 0x7f, F32 = 0x7d, F64 = 0x7c, V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof F64 | typeof V128;

/** A growable byte buffer with LEB128 writers. */
class Bytes {
  private buf = new Uint8Array(256);
  length = 0;

  byte(b: number): this {
    if (this.length === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = b;
    return this;
  }

  bytes(bs: ArrayLike<number>): this {
    for (let i = 0; i < bs.length; i++) this.byte(bs[i]!);
    return this;
  }

  /** Unsigned LEB128. */
  u32(v: number): this {
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }

  /** Signed LEB128 of a 32-bit integer. */
  s32(v: number): this {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) { this.byte(b); return this; }
      this.byte(b | 0x80);
    }
  }

  name(s: string): this {
    this.u32(s.length);
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i)); // names here are ASCII
    return this;
  }

  /** A length-prefixed copy of another buffer (a section's or a body's contents). */
  sized(inner: Bytes): this {
    this.u32(inner.length);
    return this.bytes(inner.view());
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

/**
 * An instruction writer for one function body. Locals are numbered after the parameters; `local(type)`
 * declares one and returns its index. Blocks and loops nest with `block`/`loop` … `end`, and branches count
 * outward from the innermost (0).
 */
export class Code {
  readonly out = new Bytes();
  private readonly locals: ValType[] = [];

  constructor(private readonly params: readonly ValType[]) {}

  /** A new local of `type`; its index (parameters come first). */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  private op(b: number): this { this.out.byte(b); return this; }
  private simd(op: number): this { this.out.byte(0xfd).u32(op); return this; }
  private memarg(alignLog2: number, offset: number): this { this.out.u32(alignLog2).u32(offset); return this; }

  block(): this { return this.op(0x02).op(0x40); }
  loop(): this { return this.op(0x03).op(0x40); }
  end(): this { return this.op(0x0b); }
  br(depth: number): this { this.op(0x0c); this.out.u32(depth); return this; }
  brIf(depth: number): this { this.op(0x0d); this.out.u32(depth); return this; }

  get(i: number): this { this.op(0x20); this.out.u32(i); return this; }
  set(i: number): this { this.op(0x21); this.out.u32(i); return this; }
  tee(i: number): this { this.op(0x22); this.out.u32(i); return this; }

  i32(v: number): this { this.op(0x41); this.out.s32(v); return this; }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Mul(): this { return this.op(0x6c); }
  i32Shl(): this { return this.op(0x74); }
  i32And(): this { return this.op(0x71); }
  i32GeS(): this { return this.op(0x4e); }
  i32GtS(): this { return this.op(0x4a); }
  i32Eqz(): this { return this.op(0x45); }
  i32ShrS(): this { return this.op(0x75); }
  i32LeU(): this { return this.op(0x4d); }
  i32LeS(): this { return this.op(0x4c); }
  return(): this { return this.op(0x0f); }
  /** Calls function `index` of this module (its position in `assemble`'s list): its arguments on the stack. */
  call(index: number): this { this.op(0x10); this.out.u32(index); return this; }

  f64Load(offset = 0): this { return this.op(0x2b).memarg(3, offset); }
  f64Store(offset = 0): this { return this.op(0x39).memarg(3, offset); }
  f64Add(): this { return this.op(0xa0); }
  f64Mul(): this { return this.op(0xa2); }
  f64Sub(): this { return this.op(0xa1); }
  f64Div(): this { return this.op(0xa3); }
  f64Neg(): this { return this.op(0x9a); }
  f64Sqrt(): this { return this.op(0x9f); }
  /** float32 → float64 (exact). */
  f64PromoteF32(): this { return this.op(0xbb); }
  /** float64 → float32, rounded to nearest. */
  f32DemoteF64(): this { return this.op(0xb6); }
  f64(v: number): this {
    this.op(0x44);
    const b = new Uint8Array(new Float64Array([v]).buffer);
    this.out.bytes(b); // IEEE 754 little-endian
    return this;
  }

  v128Load(offset = 0): this { return this.simd(0x00).memarg(4, offset); }
  v128Store(offset = 0): this { return this.simd(0x0b).memarg(4, offset); }
  v128Load64Splat(offset = 0): this { return this.simd(0x0a).memarg(3, offset); }
  f64x2Splat(): this { return this.simd(0x14); }
  f32Load(offset = 0): this { return this.op(0x2a).memarg(2, offset); }
  f32Store(offset = 0): this { return this.op(0x38).memarg(2, offset); }
  f32Add(): this { return this.op(0x92); }
  f32Mul(): this { return this.op(0x94); }
  f32(v: number): this {
    this.op(0x43);
    this.out.bytes(new Uint8Array(new Float32Array([v]).buffer));
    return this;
  }
  v128Load32Splat(offset = 0): this { return this.simd(0x09).memarg(2, offset); }
  f32x4Splat(): this { return this.simd(0x13); }
  f32x4ExtractLane(lane: number): this { this.simd(0x1f); this.out.byte(lane); return this; }
  f32x4ReplaceLane(lane: number): this { this.simd(0x20); this.out.byte(lane); return this; }
  f32x4Add(): this { return this.simd(0xe4); }
  f32x4Sub(): this { return this.simd(0xe5); }
  f32x4Mul(): this { return this.simd(0xe6); }
  f32x4Div(): this { return this.simd(0xe7); }
  /**
   * Relaxed SIMD (a later proposal than SIMD128: Chrome 114+, Node 22+, Node 20 behind
   * --experimental-wasm-relaxed-simd). Pops c, b, a: a·b + c, rounded once where the CPU has a fused
   * multiply-add (x64 with FMA3, arm64), else rounded after the product and after the sum.
   */
  f32x4RelaxedMadd(): this { return this.simd(0x105); }
  /** Relaxed SIMD, as f32x4RelaxedMadd: pops c, b, a: c − a·b. */
  f32x4RelaxedNmadd(): this { return this.simd(0x106); }
  f32x4Neg(): this { return this.simd(0xe1); }
  /** Pops b, a: b < a ? b : a. */
  f32x4Pmin(): this { return this.simd(0xea); }
  /** Pops b, a: a < b ? b : a. */
  f32x4Pmax(): this { return this.simd(0xeb); }
  /** Pops b, a: all ones where a ≥ b, else zeros. */
  f32x4Ge(): this { return this.simd(0x46); }
  i32x4Sub(): this { return this.simd(0xb1); }
  i32x4Shl(): this { return this.simd(0xab); }
  f64x2ExtractLane(lane: number): this { this.simd(0x21); this.out.byte(lane); return this; }
  f64x2ReplaceLane(lane: number): this { this.simd(0x22); this.out.byte(lane); return this; }
  /** Pops c, b, a: a when c ≠ 0, else b. */
  select(): this { return this.op(0x1b); }
  f64x2Add(): this { return this.simd(0xf0); }
  f64x2Mul(): this { return this.simd(0xf2); }
  /** Relaxed SIMD, as f32x4RelaxedMadd: pops c, b, a: a·b + c. */
  f64x2RelaxedMadd(): this { return this.simd(0x107); }
  f64x2Sub(): this { return this.simd(0xf1); }
  f64x2Div(): this { return this.simd(0xf3); }
  f64x2Neg(): this { return this.simd(0xed); }
  f64x2Sqrt(): this { return this.simd(0xef); }
  /** Pops b, a: b < a ? b : a (the JavaScript `a > b ? b : a`, NaN in a kept). */
  f64x2Pmin(): this { return this.simd(0xf6); }
  /** Pops b, a: a < b ? b : a. */
  f64x2Pmax(): this { return this.simd(0xf7); }
  f64x2Lt(): this { return this.simd(0x49); }
  v128Or(): this { return this.simd(0x50); }
  /** Pops c, b, a: a's bits where c's are set, b's elsewhere. */
  v128Bitselect(): this { return this.simd(0x52); }
  v128AnyTrue(): this { return this.simd(0x53); }
  i32x4ExtractLane(lane: number): this { this.simd(0x1b); this.out.byte(lane); return this; }
  /** Lanes 0 and 1: the two float64 lanes truncated to int32 (saturating); lanes 2 and 3 zero. */
  i32x4TruncSatF64x2SZero(): this { return this.simd(0xfc); }
  i32x4Splat(): this { return this.simd(0x11); }
  i32x4ShrS(): this { return this.simd(0xac); }
  i32x4Add(): this { return this.simd(0xae); }
  i32x4MaxS(): this { return this.simd(0xb8); }
  i32x4MinS(): this { return this.simd(0xb6); }
  /** Lane by lane: all ones where a = b, else zeros. */
  i32x4Eq(): this { return this.simd(0x37); }
  /** 1 if every lane is non-zero, else 0. */
  i32x4AllTrue(): this { return this.simd(0xa3); }
  i64x2ExtendLowI32x4S(): this { return this.simd(0xc7); }
  i64x2Shl(): this { return this.simd(0xcb); }
  v128Load64Lane(lane: number, offset = 0): this { this.simd(0x57).memarg(3, offset); this.out.byte(lane); return this; }
  f64x2PromoteLowF32x4(): this { return this.simd(0x5f); }
  f32x4DemoteF64x2Zero(): this { return this.simd(0x5e); }
  v128Load64Zero(offset = 0): this { return this.simd(0x5d).memarg(3, offset); }
  v128Store64Lane(lane: number, offset = 0): this { this.simd(0x5b).memarg(3, offset); this.out.byte(lane); return this; }
  /** The 32-bit lanes `lanes` (0–3 of the first operand, 4–7 of the second) of the two vectors below it. */
  i32x4Shuffle(lanes: readonly [number, number, number, number]): this {
    this.simd(0x0d);
    for (const l of lanes) for (let b = 0; b < 4; b++) this.out.byte(4 * l + b);
    return this;
  }

  /** The body's bytes: the locals (grouped by runs of one type) and the instructions, ended. */
  body(): Bytes {
    const b = new Bytes();
    const runs: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = runs[runs.length - 1];
      if (last && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    b.u32(runs.length);
    for (const [n, t] of runs) b.u32(n).byte(t);
    b.bytes(this.out.view()).byte(0x0b);
    return b;
  }
}

/** One exported function: its name, signature and body. */
export interface FunctionDef {
  name: string;
  params: readonly ValType[];
  results: readonly ValType[];
  code: Code;
}

/**
 * A module importing memory `env.memory` (`pages` 64 KiB pages at least; shared when `shared`, which needs a
 * maximum) and exporting `functions`.
 */
export function assemble(functions: readonly FunctionDef[], memory: { pages: number; maxPages?: number; shared?: boolean }): Uint8Array {
  const mod = new Bytes().bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, contents: Bytes): void => { mod.byte(id).sized(contents); };
  const types = new Bytes().u32(functions.length);
  for (const f of functions) {
    types.byte(0x60).u32(f.params.length).bytes(f.params).u32(f.results.length).bytes(f.results);
  }
  section(1, types);
  const imports = new Bytes().u32(1).name("env").name("memory").byte(0x02);
  if (memory.shared) imports.byte(0x03).u32(memory.pages).u32(memory.maxPages!);
  else if (memory.maxPages !== undefined) imports.byte(0x01).u32(memory.pages).u32(memory.maxPages);
  else imports.byte(0x00).u32(memory.pages);
  section(2, imports);
  const funcs = new Bytes().u32(functions.length);
  functions.forEach((_, i) => funcs.u32(i));
  section(3, funcs);
  const exports = new Bytes().u32(functions.length);
  functions.forEach((f, i) => exports.name(f.name).byte(0x00).u32(i));
  section(7, exports);
  const code = new Bytes().u32(functions.length);
  for (const f of functions) code.sized(f.code.body());
  section(10, code);
  return mod.view().slice();
}
