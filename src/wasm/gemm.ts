/**
 * The SIMD products: C = (accumulate ? C : 0) + op(A)·op(B) for the three forms the engine uses (A·B, Aᵀ·B,
 * A·Bᵀ), in WebAssembly SIMD128, f64x2 and f32x4, over row-major matrices that live in one WebAssembly.Memory
 * (pointers are byte offsets into it, leading dimensions count elements). The SIMD backend (src/wasm/arena.ts,
 * `Sequential({ backend: "wasm" })`) runs them on the model's own buffers, in place.
 *
 * Legend: M, N, K the product's sizes, C (M, N), op(A) (M, K), op(B) (K, N); a, b, c byte offsets into the
 * memory, lda, ldb, ldc leading dimensions in elements; w the bytes of a value (8 float64, 4 float32), cols a
 * tile's columns (4 float64, 8 float32).
 *
 * This is the module the arena, the model, the tests and the benches import: the module's bytes (`gemmModule`),
 * the product that drives its kernels (`createGemm64`, `createGemm32`: which kernel runs which part of C, the
 * packing, the blocks of K), and the WebAssembly plumbing around them. The kernels live one idea to a file: the
 * tiles and their scalar edge, with what fused means (gemm-tiles.ts); the rows kernel, for fewer rows than a tile
 * (gemm-rows.ts); the packing and the transpositions (gemm-pack.ts).
 *
 * Given a scratch region (the arena gives one), the products pack first: B, one panel of columns at a time, in
 * strips that the tiles read as one contiguous run (`pack`); A·Bᵀ then runs in the A·B tiles on the packed Bᵀ,
 * and Aᵀ·B on a transposed copy of A (`transpose`). Aᵀ·B with a long K is also cut into blocks of K (`KC_TN`),
 * which does change the order of its additions.
 */
import { Code, V128, assemble } from "./assembler.js";
import { type Form, edge, tiles, tiles32 } from "./gemm-tiles.js";
import { rows } from "./gemm-rows.js";
import { pack, packT32, transpose } from "./gemm-pack.js";

export { type Form, rows, pack, packT32 };

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

/**
 * Compiled modules by key: every model's arena instantiates the same bytes, so they are assembled and compiled
 * once per thread (~3 ms) and each arena only instantiates them.
 */
const MODULES = new Map<string, object>();
export function compiled(key: string, bytes: () => Uint8Array): object {
  let m = MODULES.get(key);
  if (!m) MODULES.set(key, m = new WA.Module(bytes()));
  return m;
}

/** A WebAssembly.Memory of `pages` 64 KiB pages. */
export function createMemory(pages: number): WasmMemory {
  return new WA.Memory({ initial: pages });
}

/** Whether this runtime accepts the bytes as a module (SIMD included). */
export function validModule(bytes: Uint8Array): boolean {
  return WA.validate(bytes);
}

/** The module's bytes, for a memory of `pages` 64 KiB pages (shared when asked, which needs `maxPages`). */
export function gemmModule(memory: { pages: number; maxPages?: number; shared?: boolean }, fused = false): Uint8Array {
  const f = fused;
  return assemble([
    tiles("NN", false, f), tiles("TN", false, f), tiles("NT", false, f), tiles("NN", true, f), edge(8, f),
    pack(8, false), pack(8, true), transpose(8), rows(8, f),
    tiles32("NN", false, f), tiles32("TN", false, f), tiles32("NT", false, f), tiles32("NN", true, f), edge(4, f),
    pack(4, false), packT32(), transpose(4), rows(4, f),
  ], memory);
}

/**
 * Whether this runtime has WebAssembly relaxed SIMD's multiply-add, which the fused products need: Chrome 114+,
 * Node 22+; Node 20 only when started with --experimental-wasm-relaxed-simd. (Asked each time a model asks for it,
 * ~20 µs: a V8 flag set at run time changes the answer.)
 */
export function relaxedSimd(): boolean {
  const c = new Code([V128, V128, V128]);
  c.get(0).get(1).get(2).f32x4RelaxedMadd();
  try {
    return validModule(assemble([{ name: "madd", params: [V128, V128, V128], results: [V128], code: c }], { pages: 1 }));
  } catch {
    return false;
  }
}

/**
 * C (M, N) = (accumulate ? C : 0) + op(A)·op(B) over byte offsets into the module's memory (float64 or float32
 * matrices, as created): for "NN" A is
 * (M, K) and B (K, N); for "TN" A is (K, M); for "NT" B is (N, K). Leading dimensions count elements.
 * `hold`: see Hold. "TN" with M2 > 0: a second A, (K, M2) at a2, whose product fills C's next M2 rows (C is then
 * (M + M2, N)); with scratch both run as one product on the two transposed A's, which packs B once for both (an
 * LSTM's dKernel and dRecurrentKernel from one dZ), else as two. Each entry sums the same products in the same
 * order either way.
 */
export type Gemm = (
  form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, accumulate: boolean,
  hold?: Hold, M2?: number, a2?: number, lda2?: number,
) => void;

/**
 * For a loop of products on one B (the recurrent kernel, step after step): `HOLD_NEW` packs all of B into a
 * region kept for it, `HOLD_SAME` promises that B has not changed since the last `HOLD_NEW` call with the same
 * form, B and shape, and reuses that packing (it packs afresh if anything differs). 0: pack per call.
 */
export type Hold = 0 | 1 | 2;
export const HOLD_NEW = 1, HOLD_SAME = 2;

/**
 * Instantiates the kernels on `memory` (synchronously: the module is small) and returns the product, which
 * runs the 4×4 tiles in SIMD and the edges in the scalar loop. Throws when this runtime has no WebAssembly
 * SIMD (the caller then keeps the TypeScript kernels).
 *
 * @example
 * const memory = createMemory(16);                   // the engine will own one
 * const gemm = createGemm64(memory);
 * const f = new Float64Array(memory.buffer);          // A at 0, B at 8·M·K, C after them: offsets in bytes
 * gemm("NN", M, N, K, 0, K, 8 * M * K, N, 8 * (M * K + K * N), N, false);
 */
export function createGemm64(memory: WasmMemory, shared?: { maxPages: number }, scratch?: Scratch, fused = false): Gemm {
  const ex = instantiate(memory, shared, fused);
  return wrap({ NN: ex.tilesNN!, TN: ex.tilesTN!, NT: ex.tilesNT!, NNP: ex.tilesNNP! }, ex.edge!, ex.packN!, ex.packT!, ex.transpose!, ex.rows!, 4, scratch);
}

/**
 * The float32 product, on float32 matrices in the memory (byte offsets, leading dimensions in elements): the
 * 4×8 tiles in SIMD, the edges in the scalar loop, every value rounded to float32 as it is computed.
 *
 * @example
 * const gemm = createGemm32(createMemory(16));
 * gemm("TN", M, N, K, aBytes, lda, bBytes, ldb, cBytes, ldc, true);   // C += Aᵀ·B
 */
export function createGemm32(memory: WasmMemory, shared?: { maxPages: number }, scratch?: Scratch, fused = false): Gemm {
  const ex = instantiate(memory, shared, fused);
  return wrap({ NN: ex.tiles32NN!, TN: ex.tiles32TN!, NT: ex.tiles32NT!, NNP: ex.tiles32NNP! }, ex.edge32!, ex.pack32N!, ex.pack32T!, ex.transpose32!, ex.rows32!, 8, scratch);
}

/**
 * Where the products pack: the byte offset of a region of at least `bytes` bytes in the memory, 16-byte
 * aligned, that nothing else uses: region 0 while a product runs, region 1 for a held B between products
 * (see `Hold`). Without one, the tiles read B where it is (A·Bᵀ gathering B's columns: slower).
 */
export type Scratch = (bytes: number, region: 0 | 1) => number;

/** The kernels on `memory`: a shared memory (give its maximum) is imported as shared, from one page up. */
function instantiate(memory: WasmMemory, shared?: { maxPages: number }, fused = false): Record<string, (...args: number[]) => void> {
  const limits = shared ? { pages: 1, maxPages: shared.maxPages, shared: true } : { pages: memory.buffer.byteLength / 65536 };
  const module = compiled(`gemm ${limits.pages} ${shared?.maxPages ?? ""}${fused ? " fused" : ""}`, () => gemmModule(limits, fused));
  return new WA.Instance(module, { env: { memory } }).exports as Record<string, (...args: number[]) => void>;
}

/**
 * Aᵀ·B products with a long K (the weight gradients sum over every step and row) are cut into blocks of KC
 * rows of A and B, each block's sums added into C: a tile's k loop then walks a few hundred rows of each operand,
 * which stay in cache, instead of thousands. (This changes the order of the additions, so such products agree
 * with the naive loop to rounding, not bit for bit.)
 */
export const KC_TN = 256;

/**
 * Elements added to each row of Aᵀ·B's transposed copy of A. Unpadded, a float32 block's rows are K·4 bytes apart:
 * 1 KiB for the usual K = KC_TN, so the transpose's writes down a column, and the tiles' four rows of A, all fall
 * in a few of L1's sets and evict each other. With 8 more (32 bytes) the two Aᵀ·B products of an S4 step on 32 rows
 * took 47.3 ms where they took 51.0 (interleaved, 18 rounds; 4, 12 and 20 were as good as 8).
 */
const TN_PAD = 8;

/**
 * Bytes of packed B per panel: the tiles sweep C one panel of columns at a time, so that B's part (K × n values,
 * packed in strips) stays in cache while every row of A passes over it. 128 KiB: in an interleaved comparison of
 * 64, 128 and 256 KiB over S3's and S4's products (both dtypes, nine rounds each), 128 KiB was as fast as 64 or
 * faster in ten of twelve (A·Bᵀ at S4 in float64 16.6 vs 14.2 GFLOP/s; A·B at S4 in float32 38.9 vs 34.6), and
 * 256 KiB no better overall. (This machine's L2 is 1 MiB per core.)
 */
export const PANEL_BYTES = 131072;

/**
 * From this size of B's whole strips on (past L1), a loop of A·B products with fewer than four rows (`few`, held) reads
 * B packed rather than in place, its rows then being 4H values apart: the rows kernel alone, one row, float32, K 64,
 * N 256 took 1.45 µs on the packing and 2.29 in place; K 128, N 512 8.4 against 11.6. Smaller, B stays in L1 and the
 * packing would cost more than it saves. (@internal: an object, so that the tests can make every such loop pack, or none.)
 */
export const fewPack = { bytes: 32768 };

type Kernel = (...args: number[]) => void;

function wrap(
  kernels: Record<Form | "NNP", Kernel>, e: Kernel, packN: Kernel, packT: Kernel, tr: Kernel, rowsK: Kernel, cols: number, scratch?: Scratch,
): Gemm {
  const w = cols === 4 ? 8 : 4;
  // Packed, Aᵀ·B runs as (Aᵀ)·B (`tr`, the transposition): in float32 its own tiles splat 8 values of B per k and
  // reached 17-18 GFLOP/s, the A·B tiles on a transposed copy of A 37-45 (npm run bench -- wasmTN); in float64,
  // medians fused 15.8 against 20.5, unfused 13.5 against 15.8 (the same bench, the Zen 3 machine). Unpacked (no
  // scratch) it keeps the Aᵀ·B tiles.
  /** The whole tiles (4 rows × `cols` columns) in SIMD, the scalar loop over the rest. */
  const run = (form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number): void => {
    const M4 = M - (M % 4), Nt = N - (N % cols);
    const ta = form === "TN" ? 1 : 0, tb = form === "NT" ? 1 : 0;
    if (M4 > 0 && Nt > 0) kernels[form](M4, Nt, K, a, lda, b, ldb, c, ldc, acc);
    if (Nt < N && M4 > 0) e(M4, N, K, a, lda, b, ldb, c, ldc, acc, 0, Nt, ta, tb);
    if (M4 < M) {
      // The last rows: the rows kernel on B where it is (not for A·Bᵀ, whose B would need packing), then the corner.
      const am = ta ? w : w * lda, ak = ta ? w * lda : w, nr = tb ? 0 : Nt;
      if (nr > 0) rowsK(M - M4, nr / cols, K, a + M4 * am, am, ak, b, 32, w * ldb, c + w * M4 * ldc, w * ldc, acc, 0);
      e(M, N, K, a, lda, b, ldb, c, ldc, acc, M4, nr, ta, tb);
    }
  };
  /**
   * Panels of columns of C: B's part packed in strips (scratch), the packed tiles over the whole tiles, the
   * scalar loop (on B as it is) over the rest. Summation order unchanged.
   */
  // The held packing: what it holds (form code, B, ldb, K, N) and where.
  let heldForm = -1, heldB = -1, heldLd = -1, heldK = -1, heldN = -1, heldAt = -1, heldFresh = true;
  /**
   * The region holding B's packing across a loop (its N − N mod cols columns, in strips), recorded as holding
   * (code, b, ldb, K, N); `heldFresh` says whether to pack it now: on HOLD_NEW, or when it held something else.
   */
  const holdB = (code: number, b: number, ldb: number, K: number, N: number, hold: Hold): number => {
    const at = scratch!(w * K * (N - (N % cols)), 1);
    heldFresh = hold === HOLD_NEW || heldForm !== code || heldB !== b || heldLd !== ldb || heldK !== K || heldN !== N || heldAt !== at;
    heldForm = code; heldB = b; heldLd = ldb; heldK = K; heldN = N; heldAt = at;
    return at;
  };
  const packed = (
    form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold,
    M2 = 0, a2 = 0, lda2 = 0,
  ): void => {
    let ta = form === "TN" ? 1 : 0;
    const tb = form === "NT" ? 1 : 0;
    const nc = Math.max(cols, Math.floor(PANEL_BYTES / (w * K * cols)) * cols);
    const panel = w * K * Math.min(nc, N - (N % cols));
    const ldt = K + TN_PAD;
    const s = scratch!(panel + (ta ? w * (M + M2) * ldt + 16 : 0), 0);
    // Held: every panel of B packed one after the other (panel j0 at w·K·j0), packed now unless already held.
    const held = hold !== 0 ? holdB(ta + 2 * tb, b, ldb, K, N, hold) : -1, fresh = held < 0 || heldFresh;
    if (ta) {
      // Aᵀ (M, K), rows ldt apart, after the panel, and a second A's below it (M2 rows); then the A·B tiles on
      // them, C's rows in the same order: each panel of B is packed once for both.
      const at = s + ((panel + 15) & ~15);
      tr(M, K, a, lda, at, ldt);
      if (M2 > 0) tr(M2, K, a2, lda2, at + w * M * ldt, ldt);
      a = at; lda = ldt; ta = 0; M += M2;
    }
    const M4 = M - (M % 4);
    for (let j0 = 0; j0 < N; j0 += nc) {
      const n = Math.min(nc, N - j0), nt = n - (n % cols);
      const bp = b + w * (tb ? j0 * ldb : j0), cp = c + w * j0;
      const dst = held >= 0 ? held + w * K * j0 : s;
      if (nt > 0 && M4 > 0) {
        if (fresh) (tb ? packT : packN)(nt, K, bp, ldb, dst);
        kernels.NNP(M4, nt, K, a, lda, dst, 0, cp, ldc, acc);
      }
      if (nt < n && M4 > 0) e(M4, n, K, a, lda, bp, ldb, cp, ldc, acc, 0, nt, ta, tb);
      if (M4 < M) {
        // The last rows: the rows kernel on the panel just packed (the tiles ran, so M4 > 0), then the corner.
        const am = ta ? w : w * lda, ak = ta ? w * lda : w, nr = M4 > 0 ? nt : 0;
        if (nr > 0) rowsK(M - M4, nr / cols, K, a + M4 * am, am, ak, dst, 32 * K, 32, cp + w * M4 * ldc, w * ldc, acc, 0);
        e(M, n, K, a, lda, bp, ldb, cp, ldc, acc, M4, nr, ta, tb);
      }
    }
  };
  /**
   * Fewer than four rows: the rows kernel over the whole strips, on B where it is (A·B, Aᵀ·B) or on Bᵀ packed
   * (A·Bᵀ: held like the tiles' packing, in the same layout, so either path reuses the other's), the scalar
   * loop over the remaining columns.
   */
  const few = (form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold): void => {
    const Nt = N - (N % cols), ta = form === "TN" ? 1 : 0, tb = form === "NT" ? 1 : 0;
    const am = ta ? w : w * lda, ak = ta ? w * lda : w;
    if (!tb) {
      if (!ta && hold === HOLD_SAME && scratch && w * K * Nt >= fewPack.bytes) {
        // A loop's second product on the same B onwards (a recurrence's h·R with fewer than four rows): B's whole strips
        // packed once, held (form 4), and the rows kernel on the packing, whose strips are contiguous runs.
        const dst = holdB(4, b, ldb, K, Nt, hold);
        if (heldFresh) packN(Nt, K, b, ldb, dst);
        rowsK(M, Nt / cols, K, a, am, ak, dst, 32 * K, 32, c, w * ldc, acc, 0);
      } else {
        // In place; a loop's first product (HOLD_NEW) forgets what is held, so that its next one packs B afresh.
        if (hold === HOLD_NEW) heldForm = -1;
        rowsK(M, Nt / cols, K, a, am, ak, b, 32, w * ldb, c, w * ldc, acc, 0);
      }
      if (Nt < N) e(M, N, K, a, lda, b, ldb, c, ldc, acc, 0, Nt, ta, tb);
    } else {
      // Bᵀ packed with its last columns too, as a partial strip, which the rows kernel runs instead of the edge.
      // (Held as form 3, not 2: the tiles' packing of the same B stops at the whole strips.)
      const Np = N + ((cols - (N % cols)) % cols);
      const dst = hold !== 0 ? holdB(3, b, ldb, K, Np, hold) : scratch!(w * K * Np, 0);
      if (hold === 0 || heldFresh) packT(N, K, b, ldb, dst);
      rowsK(M, Nt / cols, K, a, am, ak, dst, 32 * K, 32, c, w * ldc, acc, N - Nt);
    }
  };
  const one = (
    form: Form, M: number, N: number, K: number, a: number, lda: number, b: number, ldb: number, c: number, ldc: number, acc: number, hold: Hold,
    M2: number, a2: number, lda2: number,
  ): void => {
    if (M2 > 0) packed(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold, M2, a2, lda2); // (the caller checked that it may)
    else if (M < 4 && N >= cols && (scratch || form !== "NT")) few(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold);
    else if (scratch && N >= cols) packed(form, M, N, K, a, lda, b, ldb, c, ldc, acc, hold);
    else run(form, M, N, K, a, lda, b, ldb, c, ldc, acc);
  };
  const product: Gemm = (form, M, N, K, a, lda, b, ldb, c, ldc, accumulate, hold = 0, M2 = 0, a2 = 0, lda2 = 0) => {
    if (M2 > 0 && !(form === "TN" && scratch && N >= cols && M + M2 >= 4)) {
      // Two A's on one B run as one product only on the transposing path (packed Aᵀ·B): else one after the other.
      product(form, M, N, K, a, lda, b, ldb, c, ldc, accumulate, hold);
      product(form, M2, N, K, a2, lda2, b, ldb, c + w * M * ldc, ldc, accumulate, hold);
      return;
    }
    if (form !== "TN" || K <= KC_TN) { one(form, M, N, K, a, lda, b, ldb, c, ldc, accumulate ? 1 : 0, hold, M2, a2, lda2); return; }
    // Rows [k0, k0 + KC) of A (K, M) and B (K, N): the first block overwrites or accumulates as asked, the rest add.
    for (let k0 = 0; k0 < K; k0 += KC_TN) {
      const kb = Math.min(KC_TN, K - k0);
      one(form, M, N, kb, a + w * k0 * lda, lda, b + w * k0 * ldb, ldb, c, ldc, k0 === 0 && !accumulate ? 0 : 1, 0, M2, a2 + w * k0 * lda2, lda2);
    }
  };
  return product;
}
