/**
 * The WebAssembly SIMD GEMM (src/wasm/gemm.ts, emitted by src/wasm/assembler.ts) against the naive reference:
 * bit-identical results (the same summation order), every edge of the 4×4 tiling, leading dimensions larger
 * than the rows, offsets into the memory, accumulate or overwrite, and nothing outside C written.
 */
import { describe, expect, it } from "vitest";
import { createGemm64, createMemory, gemmModule, validModule } from "../src/wasm/gemm.js";
import { naiveMatmul } from "../src/tensor/naive.js";
import { makeRng, uniformArray } from "./helpers/gradcheck.js";

describe("WebAssembly SIMD GEMM, float64", () => {
  it("is a valid module in this runtime", () => {
    expect(validModule(gemmModule({ pages: 1 }))).toBe(true);
  });

  it("C = A·B and C += A·B bit for bit as the naive loop, over shapes around the 4×4 tile, with strides and offsets", () => {
    const memory = createMemory(64); // 4 MiB
    const gemm = createGemm64(memory);
    const f = new Float64Array(memory.buffer);
    const rng = makeRng("wasm/gemm");
    let cases = 0;
    for (const M of [1, 3, 4, 5, 8, 13]) {
      for (const N of [1, 2, 4, 6, 9, 16]) {
        for (const K of [1, 3, 8, 33]) {
          for (const accumulate of [false, true]) {
            const lda = K + 2, ldb = N + 3, ldc = N + 1;
            // A at element 5, B after it, C after B: offsets that are not multiples of the tile.
            const aOff = 5, bOff = aOff + M * lda + 7, cOff = bOff + K * ldb + 3, end = cOff + M * ldc + 4;
            f.fill(0, 0, end + 8);
            f.set(uniformArray(rng, M * lda, -1, 1), aOff);
            f.set(uniformArray(rng, K * ldb, -1, 1), bOff);
            f.set(uniformArray(rng, M * ldc + 4, -1, 1), cOff);
            const before = f.slice(0, end + 8);
            const want = before.slice();
            naiveMatmul(false, false, M, N, K, want, aOff, lda, want, bOff, ldb, want, cOff, ldc, accumulate);
            gemm(M, N, K, 8 * aOff, lda, 8 * bOff, ldb, 8 * cOff, ldc, accumulate);
            const got = f.slice(0, end + 8);
            // Every entry of C as the naive loop gives it, bit for bit; everything else untouched.
            for (let q = 0; q < got.length; q++) {
              if (!Object.is(got[q], want[q])) expect.fail(`M=${M} N=${N} K=${K} acc=${accumulate}: element ${q}: ${got[q]} vs ${want[q]}`);
            }
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(288);
  });
});
