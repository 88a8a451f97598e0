/**
 * PyTorch through safetensors: round trips bit for bit in both dtypes; the bytes read by a parser written here
 * from the format's specification (not our importer); files written by PyTorch itself (test/fixtures/
 * torch_safetensors.py, PyTorch 1.13, bias_hh non-zero) load into a model and predict what PyTorch predicted;
 * and bad bytes fail with FormatError, leaving the target model as it was.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import {
  Sequential, LSTM, Dense, toSafetensors, fromSafetensors, FormatError, LongshortError, StateError, ValueError,
  type Tensor,
} from "../src/index.js";

const fixture = (f: string): Uint8Array => new Uint8Array(readFileSync(new URL(`./fixtures/${f}`, import.meta.url)));

function bits(ts: Tensor[]): string[] {
  return ts.map((t) => Buffer.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toString("hex"));
}

/** A model with every option the format must carry. */
function varied(dtype: "float32" | "float64", seed = 3): Sequential {
  return new Sequential([
    new LSTM({ units: 4, inputDim: 3, returnSequences: true, useBias: false }),
    new LSTM({ units: 5, returnSequences: true, recurrentActivation: "hardSigmoid", unitForgetBias: false }),
    new Dense({ units: 3, activation: "relu", useBias: false }),
    new Dense({ units: 2, activation: "sigmoid" }),
  ], { dtype, seed });
}

const X = [[[0.1, -0.4, 0.9], [1.2, 0.3, -0.7], [0, 0.5, 0.5]], [[-1, 2, 0.25], [0.6, -0.2, 0.1], [0.3, 0.3, -1.5]]];

/** The format, read straight from its specification: nothing of src/ is used. */
function specParse(bytes: Uint8Array) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  const dataStart = 8 + n;
  const tensors = new Map<string, { dtype: string; shape: number[]; values: number[] }>();
  for (const [k, e] of Object.entries<any>(header)) {
    if (k === "__metadata__") continue;
    const [b, f] = e.data_offsets, width = e.dtype === "F64" ? 8 : 4;
    const values: number[] = [];
    for (let p = dataStart + b; p < dataStart + f; p += width) values.push(width === 8 ? dv.getFloat64(p, true) : dv.getFloat32(p, true));
    tensors.set(k, { dtype: e.dtype, shape: e.shape, values });
  }
  return { n, header, dataStart, tensors };
}

describe("toSafetensors → fromSafetensors", () => {
  for (const dtype of ["float32", "float64"] as const) {
    it(`${dtype}: bit for bit, options and all, from the file alone; the same bytes again`, () => {
      const m = varied(dtype);
      const bytes = toSafetensors(m);
      const copy = fromSafetensors(bytes);
      expect(copy.dtype).toBe(dtype);
      expect(bits(copy.getWeights())).toEqual(bits(m.getWeights()));
      expect(copy.layers.map((l) => [l.kind, l.units, (l as LSTM).useBias, (l as LSTM).recurrentActivation, (l as LSTM).returnSequences, (l as Dense).activation]))
        .toEqual(m.layers.map((l) => [l.kind, l.units, (l as LSTM).useBias, (l as LSTM).recurrentActivation, (l as LSTM).returnSequences, (l as Dense).activation]));
      expect(Array.from(copy.predict(X).data)).toEqual(Array.from(m.predict(X).data));
      expect(Buffer.from(toSafetensors(copy)).equals(Buffer.from(bytes))).toBe(true);
      // And into a given model of the same shape.
      const other = varied(dtype, 99);
      expect(fromSafetensors(bytes.buffer.slice(0) as ArrayBuffer, other)).toBe(other);
      expect(bits(other.getWeights())).toEqual(bits(m.getWeights()));
    });
  }

  it("the bytes follow the specification: u64 header length, JSON header, 8-byte aligned data that the tensors tile exactly", () => {
    for (const dtype of ["float32", "float64"] as const) {
      const m = varied(dtype);
      const bytes = toSafetensors(m);
      const { n, header, dataStart, tensors } = specParse(bytes);
      expect(dataStart % 8).toBe(0);
      expect(bytes[8]).toBe("{".charCodeAt(0));
      // Tensors tile the data: sorted by offset, each starts where the last ended, the last ends at the file's end.
      const spans = Object.entries<any>(header).filter(([k]) => k !== "__metadata__").map(([, e]) => e.data_offsets as number[]).sort((a, b) => a[0]! - b[0]!);
      spans.reduce((at, [b, f]) => { expect(b).toBe(at); return f!; }, 0);
      expect(dataStart + spans[spans.length - 1]![1]!).toBe(bytes.length);
      expect(n).toBe(dataStart - 8);
      // The PyTorch keys and shapes; kernels transposed, bias_hh zeros.
      const want = dtype === "float32" ? "F32" : "F64";
      expect([...tensors.keys()].sort()).toEqual([
        "dense.0.weight", "dense.1.bias", "dense.1.weight",
        "lstm.0.weight_hh_l0", "lstm.0.weight_ih_l0",
        "lstm.1.bias_hh_l0", "lstm.1.bias_ih_l0", "lstm.1.weight_hh_l0", "lstm.1.weight_ih_l0",
      ]);
      for (const t of tensors.values()) expect(t.dtype).toBe(want);
      const [k0, r0, k1, r1, b1, d0, d1, db1] = m.getWeights();
      const transposed = (t: Tensor): number[] => {
        const [r, c] = t.shape as [number, number];
        return Array.from({ length: r * c }, (_, q) => t.data[(q % r) * c + Math.floor(q / r)]!);
      };
      expect(tensors.get("lstm.0.weight_ih_l0")).toEqual({ dtype: want, shape: [16, 3], values: transposed(k0!) });
      expect(tensors.get("lstm.0.weight_hh_l0")).toEqual({ dtype: want, shape: [16, 4], values: transposed(r0!) });
      expect(tensors.get("lstm.1.weight_ih_l0")).toEqual({ dtype: want, shape: [20, 4], values: transposed(k1!) });
      expect(tensors.get("lstm.1.weight_hh_l0")).toEqual({ dtype: want, shape: [20, 5], values: transposed(r1!) });
      expect(tensors.get("lstm.1.bias_ih_l0")).toEqual({ dtype: want, shape: [20], values: Array.from(b1!.data) });
      expect(tensors.get("lstm.1.bias_hh_l0")).toEqual({ dtype: want, shape: [20], values: new Array(20).fill(0) });
      expect(tensors.get("dense.0.weight")).toEqual({ dtype: want, shape: [3, 5], values: transposed(d0!) });
      expect(tensors.get("dense.1.weight")).toEqual({ dtype: want, shape: [2, 3], values: transposed(d1!) });
      expect(tensors.get("dense.1.bias")).toEqual({ dtype: want, shape: [2], values: Array.from(db1!.data) });
      // The metadata is strings only, and holds the configuration.
      const meta = header.__metadata__;
      expect(Object.values(meta).every((v) => typeof v === "string")).toBe(true);
      expect(JSON.parse(meta["longshort.config"]).layers[1]).toMatchObject({ kind: "lstm", units: 5, recurrentActivation: "hardSigmoid", useBias: true, unitForgetBias: false });
    }
  });

  it("refuses what it cannot write or read: an unbuilt model, a non-model, a model of another shape", () => {
    expect(() => toSafetensors(new Sequential([new LSTM({ units: 2 }), new Dense({ units: 1 })]))).toThrow(StateError);
    expect(() => toSafetensors({} as Sequential)).toThrow(/toSafetensors model: expected a Sequential, got an object/);
    expect(() => fromSafetensors("abc" as unknown as Uint8Array)).toThrow(/fromSafetensors bytes: expected a Uint8Array or an ArrayBuffer, got "abc"/);
    const bytes = toSafetensors(varied("float64"));
    expect(() => fromSafetensors(bytes, new Sequential([new LSTM({ units: 2 }), new Dense({ units: 1 })]))).toThrow(StateError);
    const wide = new Sequential([new LSTM({ units: 4, inputDim: 3, returnSequences: true, useBias: false }), new LSTM({ units: 6, returnSequences: true }), new Dense({ units: 3, useBias: false }), new Dense({ units: 2 })], { seed: 1 });
    const before = bits(wide.getWeights());
    expect(() => fromSafetensors(bytes, wide)).toThrow(/safetensors: lstm\.1\.weight_ih_l0: expected shape \[24, 4\], got \[20, 4\]/);
    expect(bits(wide.getWeights())).toEqual(before);
  });
});

describe("files written by PyTorch (nn.Module.state_dict(), bias_hh non-zero)", () => {
  for (const name of ["pytorch_stacked_f32", "pytorch_perstep_f64"]) {
    it(`${name}: loads into a model of the same shape and predicts what PyTorch predicted`, () => {
      const spec = JSON.parse(readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), "utf8"));
      const c = spec.config;
      const model = new Sequential([
        ...c.units.map((u: number, k: number) => new LSTM({ units: u, inputDim: k === 0 ? c.inputDim : undefined, returnSequences: k < c.units.length - 1 || c.perStep })),
        ...c.dense.map((d: { units: number; activation: "linear" }) => new Dense(d)),
      ], { dtype: c.dtype, seed: 1 });
      const bytes = fixture(`${name}.safetensors`);
      fromSafetensors(bytes, model);
      const got = model.predict(spec.x), want = spec.expected.flat(2) as number[];
      const tol = c.dtype === "float32" ? 1e-6 : 1e-13;
      expect(got.data.length).toBe(want.length);
      let worst = 0;
      want.forEach((w, i) => { worst = Math.max(worst, Math.abs(got.data[i]! - w)); });
      expect(worst).toBeLessThan(tol);
      // bias = bias_ih + bias_hh: leaving bias_hh out would not predict the same.
      const { tensors } = specParse(bytes);
      const ih = tensors.get("lstm.0.bias_ih_l0")!.values, hh = tensors.get("lstm.0.bias_hh_l0")!.values;
      const bias = model.getWeights()[2]!.data;
      ih.forEach((v, i) => expect(bias[i]).toBe(c.dtype === "float32" ? Math.fround(v + hh[i]!) : v + hh[i]!));
      expect(hh.some((v) => Math.abs(v) > 0.1)).toBe(true);
      // Without a model the file cannot say what to build.
      expect(() => fromSafetensors(bytes)).toThrow(/no longshort configuration in __metadata__ \(a file saved by PyTorch\?\): pass the model/);
    });
  }
});

/** A valid file to break: small, float32, with a bias on every layer. */
function small(): { model: () => Sequential; bytes: Uint8Array } {
  const model = () => new Sequential([new LSTM({ units: 2, inputDim: 1 }), new Dense({ units: 1 })], { dtype: "float32", seed: 5 });
  return { model, bytes: toSafetensors(model()) };
}

/** Rewrites a valid file's header (keeping its data) with `edit` applied to the parsed JSON. */
function withHeader(bytes: Uint8Array, edit: (h: any) => void, data?: Uint8Array): Uint8Array {
  const { n, header } = specParse(bytes);
  edit(header);
  const text = new TextEncoder().encode(JSON.stringify(header));
  const body = data ?? bytes.subarray(8 + n);
  const out = new Uint8Array(8 + text.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(body, 8 + text.length);
  return out;
}

describe("untrusted bytes: FormatError naming what is wrong, the target model unchanged", () => {
  const { model, bytes } = small();
  const cases: [string, () => Uint8Array, RegExp][] = [
    ["empty", () => new Uint8Array(0), /truncated: 0 bytes, fewer than the 8 of the header length/],
    ["truncated in the header", () => bytes.subarray(0, 20), /truncated: the header says it is \d+ bytes, the file has 12/],
    ["truncated in the data", () => bytes.subarray(0, bytes.length - 3), /runs past the \d+ bytes of data \(truncated\?\)/],
    ["a header length of 2^40", () => { const b = bytes.slice(); new DataView(b.buffer).setUint32(4, 256, true); return b; }, /header length \d+ is over the limit/],
    ["a header that is not JSON", () => { const b = bytes.slice(); b[9] = 0x7b; b[10] = 0x7b; return b; }, /the header is not JSON/],
    ["a header that is not UTF-8", () => { const b = bytes.slice(); b[10] = 0xff; return b; }, /the header is not valid UTF-8/],
    ["an unknown dtype", () => withHeader(bytes, (h) => { h["dense.0.bias"].dtype = "F128"; }), /dense\.0\.bias\.dtype: expected one of F64, F32, .* got "F128"/],
    ["F16, known but not read", () => withHeader(bytes, (h) => { h["dense.0.bias"].dtype = "F16"; h["dense.0.bias"].shape = [2]; }), /dense\.0\.bias: dtype F16 is not read; expected F32 or F64/],
    ["a shape that does not fill its bytes", () => withHeader(bytes, (h) => { h["dense.0.weight"].shape = [1, 3]; }), /dense\.0\.weight: shape \[1, 3\] of F32 needs 12 bytes, data_offsets give 8/],
    ["a shape of 2^60 elements", () => withHeader(bytes, (h) => { h["dense.0.weight"].shape = [2 ** 30, 2 ** 30]; }), /dense\.0\.weight: shape \[1073741824, 1073741824\] of F32 needs \d+ bytes, data_offsets give 8/],
    ["overlapping tensors", () => withHeader(bytes, (h) => { const [b] = h["dense.0.weight"].data_offsets; h["dense.0.bias"].data_offsets = [b + 4, b + 8]; }), /overlaps the tensor before it/],
    ["a gap", () => withHeader(bytes, (h) => { delete h["dense.0.bias"]; }), /a gap of 4 bytes before|bytes after the last tensor belong to none/],
    ["offsets reversed", () => withHeader(bytes, (h) => { h["dense.0.bias"].data_offsets.reverse(); }), /dense\.0\.bias\.data_offsets: expected \[begin, end\] with 0 ≤ begin ≤ end/],
    ["an unexpected key", () => withHeader(bytes, (h) => { h["lstm.1.weight_ih_l0"] = h["dense.0.bias"]; delete h["dense.0.bias"]; }), /missing dense\.0\.bias .*|unexpected lstm\.1\.weight_ih_l0/],
    ["metadata that is not strings", () => withHeader(bytes, (h) => { h.__metadata__ = { a: 1 }; }), /__metadata__\.a: expected a string, got 1/],
    ["a configuration asking for 10^9 inputs", () => withHeader(bytes, (h) => {
      const c = JSON.parse(h.__metadata__["longshort.config"]); c.layers[0].inputDim = 1e9; h.__metadata__["longshort.config"] = JSON.stringify(c);
    }), /lstm\.0\.weight_ih_l0: expected shape \[8, 1000000000\], got \[8, 1\]/],
    ["a configuration with an activation we do not compute", () => withHeader(bytes, (h) => {
      const c = JSON.parse(h.__metadata__["longshort.config"]); c.layers[1].activation = "softplus"; h.__metadata__["longshort.config"] = JSON.stringify(c);
    }), /__metadata__\.longshort\.config\.layers\[1\]\.activation: expected one of .* got "softplus"/],
    ["a NaN weight", () => { const b = bytes.slice(); new DataView(b.buffer).setFloat32(b.length - 4, NaN, true); return b; }, /dense\.0\.bias: non-finite value NaN at flat index 0/],
  ];
  for (const [name, make, pattern] of cases) {
    it(name, () => {
      const bad = make();
      let err: unknown;
      try { fromSafetensors(bad); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(pattern);
      expect((err as Error).message.startsWith("safetensors: ")).toBe(true);
      // Into a model: the same refusal, and the model keeps its weights (unless the file is fine for it).
      const target = model(), before = bits(target.getWeights());
      try { fromSafetensors(bad, target); } catch (e) { expect(e).toBeInstanceOf(LongshortError); }
      if (!/configuration/.test(name)) expect(bits(target.getWeights())).toEqual(before);
    });
  }

  it("fuzz: random bytes, truncations and byte flips of a valid file only ever throw library errors", () => {
    const throwsOnlyOurs = (b: Uint8Array, into: boolean): void => {
      const target = into ? model() : undefined;
      const before = process.memoryUsage().arrayBuffers;
      try { fromSafetensors(b, target); } catch (e) {
        if (!(e instanceof LongshortError)) throw e;
      }
      // Nothing sized by the header's claims: growth stays near the file's own size.
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(4 * 1024 * 1024);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (b, into) => throwsOnlyOurs(b, into)), { seed: 1, numRuns: 300 });
    fc.assert(fc.property(fc.nat(bytes.length), fc.boolean(), (n, into) => throwsOnlyOurs(bytes.subarray(0, n), into)), { seed: 2, numRuns: 200 });
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean(), (flips, into) => {
      const b = bytes.slice();
      for (const [i, v] of flips) b[i] = v;
      throwsOnlyOurs(b, into);
    }), { seed: 3, numRuns: 400 });
  });

  it("argument errors are ValueErrors naming the argument", () => {
    expect(() => fromSafetensors(bytes, {} as Sequential)).toThrow(ValueError);
    expect(() => fromSafetensors(bytes, {} as Sequential)).toThrow(/fromSafetensors model: expected a Sequential or nothing/);
  });
});
