/**
 * model.summary(): Keras 2's / TensorFlow.js's table of layers, output shapes and parameter counts. The counts are
 * held to countParams() and to TensorFlow.js's own countParams() of the same model exported with toTfjs (real
 * tfjs-layers); the layout to the exact text below.
 */
import { describe, expect, it, vi } from "vitest";
import { Sequential, LSTM, GRU, Dense, Bidirectional, Embedding, Masking, toTfjs, ValueError } from "../src/index.js";
import { tfLoad } from "./helpers/interop.js";

const tutorial = () => new Sequential([new LSTM({ units: 10, inputDim: 1 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 1 });
const stack = () => new Sequential([
  new Masking({ maskValue: 0 }),
  new LSTM({ units: 32, inputDim: 8, returnSequences: true, stateful: true, batchSize: 4 }),
  new Bidirectional(new GRU({ units: 16, resetAfter: false })),
  new Dense({ units: 3, activation: "softmax" }),
], { seed: 1 });

describe("summary()", () => {
  it("the tutorial's model: Keras 2's table, printed line by line and returned", () => {
    const printed: string[] = [];
    const text = tutorial().summary({ printFn: (l) => printed.push(l) });
    expect(text).toBe([
      "_________________________________________________________________",
      "Layer (type)                 Output Shape              Param #",
      "=================================================================",
      "lstm_0 (LSTM)                (None, 10)                480",
      "_________________________________________________________________",
      "dense_0 (Dense)              (None, 1)                 11",
      "=================================================================",
      "Total params: 491",
      "Trainable params: 491",
      "Non-trainable params: 0",
      "_________________________________________________________________",
    ].join("\n"));
    expect(printed.join("\n")).toBe(text);
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      tutorial().summary();
      expect(log.mock.calls.map((c) => c[0])).toEqual(text.split("\n"));
    } finally {
      log.mockRestore();
    }
  });

  it("sequences, a fixed stateful batch, Masking, a Bidirectional and an Embedding; columns widen to what they hold", () => {
    const text = stack().summary({ printFn: () => undefined });
    const lines = text.split("\n");
    expect(lines.filter((l) => /^\w+_\d+ \(/.test(l))).toEqual([
      "masking_0 (Masking)                  (4, None, 8)              0",
      "lstm_0 (LSTM)                        (4, None, 32)             5,248",
      "bidirectional_0 (Bidirectional(GRU)) (4, 32)                   4,704",
      "dense_0 (Dense)                      (4, 3)                    99",
    ]);
    expect(new Set(lines.filter((l) => /^[_=]+$/.test(l)).map((l) => l.length))).toEqual(new Set([lines[1]!.length])); // the rules span the widened columns
    const emb = new Sequential([new Embedding({ inputDim: 10000, outputDim: 64, maskZero: true }), new LSTM({ units: 32 }), new Dense({ units: 1 })]);
    expect(emb.summary({ printFn: () => undefined })).toContain("embedding_0 (Embedding)      (None, None, 64)          640,000");
  });

  it("counts agree with countParams() and with TensorFlow.js's countParams() of the exported model", async () => {
    for (const m of [tutorial(), stack(), new Sequential([new LSTM({ units: 6, inputDim: 3, returnSequences: true }), new LSTM({ units: 4 }), new Dense({ units: 2 })])]) {
      const total = Number(/Total params: ([\d,]+)/.exec(m.summary({ printFn: () => undefined }))![1]!.replace(/,/g, ""));
      expect(total).toBe(m.countParams());
      const tfm = await tfLoad(toTfjs(m));
      expect(total).toBe(tfm.countParams());
      tfm.dispose();
    }
  });

  it("an unbuilt model: the first layer's count is unknown until its inputDim is, the others counted", () => {
    const m = new Sequential([new LSTM({ units: 4 }), new Dense({ units: 1 })]);
    const text = m.summary({ printFn: () => undefined });
    expect(text).toContain("lstm_0 (LSTM)                (None, 4)                 ? (unbuilt)");
    expect(text).toContain("dense_0 (Dense)              (None, 1)                 5");
    expect(text).toContain("Total params: 5 + the first layer's, unbuilt (its inputDim comes with the first call");
    m.predict([[[1, 2, 3]]]);
    expect(m.summary({ printFn: () => undefined })).toContain(`Total params: ${m.countParams()}`);
  });

  it("checks its options", () => {
    const m = tutorial();
    expect(() => m.summary({ printFn: 5 } as never)).toThrow(/summary printFn: expected a function, got 5/);
    expect(() => m.summary({ lineLength: 10 })).toThrow(/summary lineLength: expected an integer in \[40, 400\], got 10/);
    expect(() => m.summary({ print_fn: () => undefined } as never)).toThrow(ValueError);
    expect(() => m.summary(null as never)).toThrow(/summary options: expected an object/);
    expect(m.summary({ lineLength: 100, printFn: () => undefined }).split("\n")[0]).toHaveLength(100);
  });
});
