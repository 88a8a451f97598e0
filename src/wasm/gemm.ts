/**
 * The first SIMD kernel: C = (accumulate ? C : 0) + A·B in float64, in WebAssembly SIMD128 (f64x2), over
 * row-major matrices that live in one WebAssembly.Memory (pointers are byte offsets into it, leading
 * dimensions count elements). Not wired into the engine yet: it is the building block the SIMD backend
 * (issue "SIMD: WebAssembly kernels emitted from TypeScript") will use, measured by `bench/matmul.ts`.
 *
 * The kernel sweeps C in 4×4 tiles: per step of k it loads 4 values of B's row k (two f64x2), splats one value
 * of each of A's 4 rows, and adds the 4 × 2 products into 8 accumulators that stay in registers (V8 gives wasm
 * xmm0–15: a 4×4 f64 tile fits, bigger ones spill; PERFORMANCE.md). Each entry is summed in k order from its
 * start value, with one rounding per multiply and per add, exactly as a plain scalar loop does: the results are
 * bit-identical to `naiveMatmul`. The edges (rows past the last multiple of 4, columns likewise) run a scalar
 * loop in the same order.
 */
import { Code, I32, V128, F64, assemble, type FunctionDef } from "./assembler.js";

/**
 * The WebAssembly API, typed here as far as it is used: the core is type-checked without the DOM's and Node's
 * declarations in one configuration and with them in the other, and this reads the same in both.
 */
const WA = (globalThis as unknown as {
  WebAssembly: {
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
    Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
    validate(bytes: Uint8Array): boolean;
  };
}).WebAssembly;

/** A WebAssembly.Memory, as far as the kernels use it. */
export interface WasmMemory { readonly buffer: ArrayBuffer | SharedArrayBuffer }

/** A WebAssembly.Memory of `pages` 64 KiB pages. */
export function createMemory(pages: number): WasmMemory {
  return new WA.Memory({ initial: pages });
}

/** Whether this runtime accepts the bytes as a module (SIMD included). */
export function validModule(bytes: Uint8Array): boolean {
  return WA.validate(bytes);
}

const P = [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32] as const;
// Parameters of both functions: M, N, K, a, lda, b, ldb, c, ldc, accumulate (0 or 1).
const M_ = 0, N_ = 1, K_ = 2, A_ = 3, LDA = 4, B_ = 5, LDB = 6, C_ = 7, LDC = 8, ACC = 9;

/** The 4×4-tile kernel over the first M, N (multiples of 4). */
function tiles(): FunctionDef {
  const c = new Code(P);
  const i = c.local(I32), j = c.local(I32), k = c.local(I32);
  const ldaB = c.local(I32), ldbB = c.local(I32), ldcB = c.local(I32);
  const pa = [c.local(I32), c.local(I32), c.local(I32), c.local(I32)];
  const pb = c.local(I32), pc = c.local(I32);
  const acc = Array.from({ length: 8 }, () => c.local(V128));
  const bv0 = c.local(V128), bv1 = c.local(V128), av = c.local(V128);
  // Strides in bytes.
  c.get(LDA).i32(3).i32Shl().set(ldaB);
  c.get(LDB).i32(3).i32Shl().set(ldbB);
  c.get(LDC).i32(3).i32Shl().set(ldcB);
  c.i32(0).set(i);
  c.block().loop(); // rows of tiles
  c.get(i).get(M_).i32GeS().brIf(1);
  c.i32(0).set(j);
  c.block().loop(); // columns of tiles
  c.get(j).get(N_).i32GeS().brIf(1);
  // pc = c + (i·ldc + j)·8: the tile's first entry. The sums start from zero (C is added at the end, as the
  // naive loop does: (C) + Σ_k a·b).
  c.get(C_).get(i).get(LDC).i32Mul().get(j).i32Add().i32(3).i32Shl().i32Add().set(pc);
  for (let q = 0; q < 8; q++) c.f64(0).f64x2Splat().set(acc[q]!);
  // Row pointers into A (row i + r, column 0) and B (row 0, column j).
  c.get(A_).get(i).get(LDA).i32Mul().i32(3).i32Shl().i32Add().set(pa[0]!);
  for (let r = 1; r < 4; r++) c.get(pa[r - 1]!).get(ldaB).i32Add().set(pa[r]!);
  c.get(B_).get(j).i32(3).i32Shl().i32Add().set(pb);
  c.i32(0).set(k);
  c.block().loop(); // k
  c.get(k).get(K_).i32GeS().brIf(1);
  c.get(pb).v128Load(0).set(bv0);
  c.get(pb).v128Load(16).set(bv1);
  for (let r = 0; r < 4; r++) {
    c.get(pa[r]!).v128Load64Splat(0).set(av);
    c.get(acc[2 * r]!).get(av).get(bv0).f64x2Mul().f64x2Add().set(acc[2 * r]!);
    c.get(acc[2 * r + 1]!).get(av).get(bv1).f64x2Mul().f64x2Add().set(acc[2 * r + 1]!);
    c.get(pa[r]!).i32(8).i32Add().set(pa[r]!);
  }
  c.get(pb).get(ldbB).i32Add().set(pb);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  for (let r = 0; r < 4; r++) {
    for (let h = 0; h < 2; h++) {
      // C = (accumulate ? C : 0) + sum
      const q = acc[2 * r + h]!;
      c.block();
      c.get(ACC).i32Eqz().brIf(0);
      c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().v128Load(16 * h).get(q).f64x2Add().set(q);
      c.end();
      c.get(pc).get(ldcB).i32(r).i32Mul().i32Add().get(q).v128Store(16 * h);
    }
  }
  c.get(j).i32(4).i32Add().set(j);
  c.br(0).end().end();
  c.get(i).i32(4).i32Add().set(i);
  c.br(0).end().end();
  return { name: "tiles", params: P, results: [], code: c };
}

/** The scalar loop for a block of C: rows [i0, i1) × columns [j0, j1), passed as M = i1, N = j1 and two extras. */
function edge(): FunctionDef {
  const params = [...P, I32, I32] as const; // … then i0, j0
  const I0 = 10, J0 = 11;
  const c = new Code(params);
  const i = c.local(I32), j = c.local(I32), k = c.local(I32), pa = c.local(I32), pb = c.local(I32), pc = c.local(I32);
  const s = c.local(F64);
  c.get(I0).set(i);
  c.block().loop();
  c.get(i).get(M_).i32GeS().brIf(1);
  c.get(J0).set(j);
  c.block().loop();
  c.get(j).get(N_).i32GeS().brIf(1);
  c.get(C_).get(i).get(LDC).i32Mul().get(j).i32Add().i32(3).i32Shl().i32Add().set(pc);
  c.f64(0).set(s);
  c.get(A_).get(i).get(LDA).i32Mul().i32(3).i32Shl().i32Add().set(pa);
  c.get(B_).get(j).i32(3).i32Shl().i32Add().set(pb);
  c.i32(0).set(k);
  c.block().loop();
  c.get(k).get(K_).i32GeS().brIf(1);
  c.get(s).get(pa).f64Load().get(pb).f64Load().f64Mul().f64Add().set(s);
  c.get(pa).i32(8).i32Add().set(pa);
  c.get(pb).get(LDB).i32(3).i32Shl().i32Add().set(pb);
  c.get(k).i32(1).i32Add().set(k);
  c.br(0).end().end();
  c.block();
  c.get(ACC).i32Eqz().brIf(0);
  c.get(pc).f64Load().get(s).f64Add().set(s);
  c.end();
  c.get(pc).get(s).f64Store();
  c.get(j).i32(1).i32Add().set(j);
  c.br(0).end().end();
  c.get(i).i32(1).i32Add().set(i);
  c.br(0).end().end();
  return { name: "edge", params, results: [], code: c };
}

/** The module's bytes, for a memory of `pages` 64 KiB pages (shared when asked, which needs `maxPages`). */
export function gemmModule(memory: { pages: number; maxPages?: number; shared?: boolean }): Uint8Array {
  return assemble([tiles(), edge()], memory);
}

/** C = (accumulate ? C : 0) + A·B over byte offsets into the module's memory (see the file's header). */
export type Gemm64 = (M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, accumulate: boolean) => void;

/**
 * Instantiates the kernel on `memory` (synchronously: the module is small) and returns the product, which
 * runs the 4×4 tiles in SIMD and the edges in the scalar loop. Throws when this runtime has no WebAssembly
 * SIMD (the caller then keeps the TypeScript kernels).
 *
 * @example
 * const memory = createMemory(16);                   // the engine will own one
 * const gemm = createGemm64(memory);
 * const f = new Float64Array(memory.buffer);          // A at 0, B at 8·M·K, C after them: offsets in bytes
 * gemm(M, N, K, 0, K, 8 * M * K, N, 8 * (M * K + K * N), N, false);
 */
export function createGemm64(memory: WasmMemory): Gemm64 {
  const pages = memory.buffer.byteLength / 65536;
  const module = new WA.Module(gemmModule({ pages }));
  const { tiles: t, edge: e } = new WA.Instance(module, { env: { memory } }).exports as {
    tiles: (...args: number[]) => void; edge: (...args: number[]) => void;
  };
  return (M, N, K, a, lda, b, ldb, c, ldc, accumulate) => {
    const M4 = M - (M % 4), N4 = N - (N % 4), acc = accumulate ? 1 : 0;
    if (M4 > 0 && N4 > 0) t(M4, N4, K, a, lda, b, ldb, c, ldc, acc);
    if (N4 < N && M4 > 0) e(M4, N, K, a, lda, b, ldb, c, ldc, acc, 0, N4);
    if (M4 < M) e(M, N, K, a, lda, b, ldb, c, ldc, acc, M4, 0);
  };
}
