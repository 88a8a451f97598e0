/**
 * longshort/node's interop files: what the root entry's bytes functions make, written atomically to disk and
 * read back; a missing file is a FormatError naming the path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import {
  Sequential, LSTM, Dense, FormatError, ValueError, toSafetensors, toOnnx,
  saveSafetensors, loadSafetensors, saveOnnx,
} from "../src/node/index.js";

let dir = "";
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), "longshort-interop-")); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

const model = (seed = 2) => new Sequential([
  new LSTM({ units: 3, inputDim: 2, recurrentActivation: "hardSigmoid" }),
  new Dense({ units: 1, activation: "sigmoid", useBias: false }),
], { dtype: "float32", seed });
const X = [[[0.5, -1], [1, 0.25], [-0.5, 2]]];

describe("longshort/node interop files", () => {
  it("saveSafetensors writes toSafetensors' bytes; loadSafetensors reads them back, alone or into a model", async () => {
    const m = model(), path = join(dir, "m.safetensors");
    await saveSafetensors(m, path);
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(toSafetensors(m)))).toBe(true);
    const back = await loadSafetensors(path);
    expect(Array.from(back.predict(X).data)).toEqual(Array.from(m.predict(X).data));
    const into = model(9);
    expect(await loadSafetensors(path, into)).toBe(into);
    expect(Array.from(into.predict(X).data)).toEqual(Array.from(m.predict(X).data));
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("saveOnnx writes toOnnx' bytes, which ONNX Runtime opens from the file", async () => {
    const m = model(), path = join(dir, "m.onnx");
    await saveOnnx(m, path);
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(toOnnx(m)))).toBe(true);
    const session = await ort.InferenceSession.create(path);
    const out = await session.run({ x: new ort.Tensor("float32", Float32Array.from(X.flat(2)), [1, 3, 2]) });
    expect(Math.abs((out.y!.data as Float32Array)[0]! - m.predict(X).data[0]!)).toBeLessThan(1e-6);
  });

  it("errors name the path: a missing file, a file that is not safetensors, a bad path argument", async () => {
    await expect(loadSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(FormatError);
    await expect(loadSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(/load .*nope\.safetensors: cannot read the safetensors file: ENOENT/);
    await saveOnnx(model(), join(dir, "x.onnx"));
    await expect(loadSafetensors(join(dir, "x.onnx"))).rejects.toThrow(/^load .*x\.onnx: /);
    await expect(saveSafetensors(model(), "" as string)).rejects.toThrow(ValueError);
    await expect(saveOnnx(model(), 5 as unknown as string)).rejects.toThrow(/saveOnnx path: expected a non-empty file path string, got 5/);
    await expect(saveOnnx(model(), join(dir, "no", "such", "dir.onnx"))).rejects.toThrow(/save .*dir\.onnx: cannot write the ONNX model/);
  });
});
