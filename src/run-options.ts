/**
 * Where a model runs (its kernels and whether its products fuse), checked: a choice of the runtime, which the
 * model's constructor and every loader take beside the model or the bytes.
 */
import { relaxedSimd } from "./wasm/gemm.js";
import { ValueError, fmtValue } from "./errors.js";

/**
 * Where a model runs: its kernels (`backend`) and whether its products fuse (`fma`). A choice of the runtime, not a
 * part of the model, so a checkpoint or a weights file does not hold it; the loaders take it beside the bytes
 * (`decodeCheckpoint(bytes, { fma: true })`, `loadCheckpoint(path, { backend: "js" })`, `fromTfjs(a, { fma: true })`).
 */
export interface RunOptions {
  /**
   * "wasm" (default): the products and the LSTM's and GRU's gate math run in WebAssembly SIMD on buffers in the model's
   * own WebAssembly memory. It needs SharedArrayBuffer (Node; a cross-origin-isolated page) and WebAssembly SIMD;
   * elsewhere the model takes "js", and `model.backend` says which is in effect. "js": the TypeScript kernels
   * everywhere. Both pass every golden fixture; "wasm" is never slower and 2–7× faster from S1 up (README,
   * "The SIMD backend").
   */
  backend?: "js" | "wasm";
  /**
   * true: the SIMD backend's products add each product with WebAssembly relaxed SIMD's multiply-add, rounded once
   * where the CPU fuses it (x64 with FMA3, arm64), instead of rounding the product and then the sum, which frees
   * a vector pipe (README, "Fused multiply-add"); in float32 the gate math's exp fuses its steps too. Every sum
   * keeps its order, so threads and truncated BPTT agree with one thread as before, and the golden fixtures hold;
   * results differ from `fma: false` (and from the "js" backend) in the last bits. It needs relaxed SIMD: Chrome 114+, Node 22+, Node 20 started with
   * `--experimental-wasm-relaxed-simd`; elsewhere `fma: true` throws. Default false: results the same bits on every
   * runtime. `model.fma` says whether it is on.
   */
  fma?: boolean;
}

/**
 * `backend` and `fma` checked and defaulted, errors prefixed by `what` ("Sequential " → "Sequential fma: …",
 * "decodeCheckpoint options." → "decodeCheckpoint options.fma: …"). Throws where fma is asked for and this
 * runtime has no relaxed SIMD. (Whether the SIMD backend itself runs here is known only once the model's
 * memory is made: the constructor checks that.)
 */
export function checkRunOptions(what: string, backendGiven?: unknown, fmaGiven?: unknown): Required<RunOptions> {
  const backend = backendGiven ?? "wasm", fma = fmaGiven ?? false;
  if (backend !== "js" && backend !== "wasm") throw new ValueError(`${what}backend: expected "js" or "wasm", got ${fmtValue(backend)}`);
  if (typeof fma !== "boolean") throw new ValueError(`${what}fma: expected true or false, got ${fmtValue(fma)}`);
  if (fma && backend !== "wasm") throw new ValueError(`${what}fma: fused multiply-adds run on the SIMD backend, got backend "${backend}"`);
  if (fma && !relaxedSimd()) {
    throw new ValueError(
      `${what}fma: this runtime has no WebAssembly relaxed SIMD, which the fused multiply-add needs ` +
      "(Chrome 114+, Node 22+; Node 20 with --experimental-wasm-relaxed-simd); leave fma off here",
    );
  }
  return { backend, fma };
}
