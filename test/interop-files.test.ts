/**
 * longshort/node's interop files: what the root entry's bytes functions make, written atomically to disk and
 * read back; a missing file is a FormatError naming the path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import * as tf from "@tensorflow/tfjs";
import {
  Sequential, LSTM, Dense, FormatError, ValueError, toSafetensors, toOnnx, toTfjs,
  saveSafetensors, loadSafetensors, saveOnnx, saveTfjs, loadTfjs,
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

  it("saveSafetensors, saveOnnx and saveTfjs create missing parent folders", async () => {
    const m = model(), root = join(dir, "new", "models");
    await saveSafetensors(m, join(root, "a", "m.safetensors"));
    await saveOnnx(m, join(root, "b", "m.onnx"));
    await saveTfjs(m, join(root, "c", "web"));
    expect(readFileSync(join(root, "a", "m.safetensors")).equals(Buffer.from(toSafetensors(m)))).toBe(true);
    expect(readFileSync(join(root, "b", "m.onnx")).equals(Buffer.from(toOnnx(m)))).toBe(true);
    expect(readdirSync(join(root, "c", "web")).sort()).toEqual(["model.json", "weights.bin"]);
    writeFileSync(join(dir, "plain-file"), "x");
    await expect(saveOnnx(m, join(dir, "plain-file", "m.onnx"))).rejects.toThrow(/cannot create the folder .*plain-file for the ONNX model/);
  });

  it("saveTfjs writes model.json + weights.bin, which tfjs loads and loadTfjs reads back", async () => {
    const m = model(), folder = join(dir, "tfjs");
    mkdirSync(folder);
    await saveTfjs(m, folder);
    expect(readdirSync(folder).sort()).toEqual(["model.json", "weights.bin"]);
    const json = JSON.parse(readFileSync(join(folder, "model.json"), "utf8"));
    const weights = readFileSync(join(folder, "weights.bin"));
    expect(json.weightsManifest).toEqual([{ paths: ["weights.bin"], weights: toTfjs(m).weightSpecs }]);
    expect(weights.equals(Buffer.from(toTfjs(m).weightData))).toBe(true);
    tf.setBackend("cpu");
    const tfModel = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights,
      weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
    }));
    const fromTf = (tfModel.predict(tf.tensor3d(X)) as tf.Tensor).dataSync()[0]!;
    expect(Math.abs(fromTf - m.predict(X).data[0]!)).toBeLessThan(1e-6);
    for (const p of [folder, join(folder, "model.json")]) {
      const back = await loadTfjs(p);
      expect(Array.from(back.predict(X).data)).toEqual(Array.from(m.predict(X).data));
      expect((back.layers[0] as LSTM).recurrentActivation).toBe("hardSigmoid");
    }
    // A manifest that points outside its folder is refused before any file is read; a missing shard is named.
    writeFileSync(join(folder, "model.json"), JSON.stringify({ ...json, weightsManifest: [{ paths: ["../m.onnx"], weights: json.weightsManifest[0].weights }] }));
    await expect(loadTfjs(folder)).rejects.toThrow(/weightsManifest\[0\]\.paths\[0\]: "\.\.\/m\.onnx" is not a plain relative path inside the model's folder/);
    writeFileSync(join(folder, "model.json"), JSON.stringify({ ...json, weightsManifest: [{ paths: ["gone.bin"], weights: json.weightsManifest[0].weights }] }));
    await expect(loadTfjs(folder)).rejects.toThrow(/paths\[0\] "gone\.bin": cannot be read \(load .*gone\.bin: cannot read the TensorFlow\.js model: ENOENT/);
    await expect(loadTfjs(join(dir, "nothing-here"))).rejects.toThrow(/load .*nothing-here\/model\.json: cannot read the TensorFlow\.js model: ENOENT/);
  });

  it("errors name the path: a missing file, a file that is not safetensors, a bad path argument", async () => {
    await expect(loadSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(FormatError);
    await expect(loadSafetensors(join(dir, "nope.safetensors"))).rejects.toThrow(/load .*nope\.safetensors: cannot read the safetensors file: ENOENT/);
    await saveOnnx(model(), join(dir, "x.onnx"));
    await expect(loadSafetensors(join(dir, "x.onnx"))).rejects.toThrow(/^load .*x\.onnx: /);
    await expect(saveSafetensors(model(), "" as string)).rejects.toThrow(ValueError);
    await expect(saveOnnx(model(), 5 as unknown as string)).rejects.toThrow(/saveOnnx path: expected a non-empty file path string, got 5/);
    mkdirSync(join(dir, "taken.onnx"));
    await expect(saveOnnx(model(), join(dir, "taken.onnx"))).rejects.toThrow(/save .*taken\.onnx: cannot write the ONNX model/);
  });
});
