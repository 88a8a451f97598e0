/**
 * src/bytes.ts, the checkpoint format's own codecs (so the core needs no Node), against Node's: SHA-256
 * against node:crypto and base64 against Buffer, on every length around the block and padding boundaries
 * and on random data; and base64 decoding refuses what is not canonical padded base64.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { base64Decode, base64Encode, sha256Hex, utf8Decode, utf8Encode } from "../src/bytes.js";
import { Rng } from "../src/init.js";

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

describe("sha256Hex", () => {
  it("matches FIPS 180-4's examples", () => {
    expect(sha256Hex(utf8Encode(""))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(sha256Hex(utf8Encode("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex(utf8Encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
      .toBe("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  });

  it("equals node:crypto on every length 0 … 300 (the padding and block edges) and on 1 MB", () => {
    const rng = new Rng("sha");
    for (let n = 0; n <= 300; n++) {
      const b = randomBytes(rng, n);
      expect(sha256Hex(b), `length ${n}`).toBe(createHash("sha256").update(b).digest("hex"));
    }
    const big = randomBytes(rng, 1 << 20);
    expect(sha256Hex(big)).toBe(createHash("sha256").update(big).digest("hex"));
    // A view into a larger buffer hashes only its own bytes.
    expect(sha256Hex(big.subarray(5, 77))).toBe(createHash("sha256").update(big.subarray(5, 77)).digest("hex"));
  });
});

describe("base64", () => {
  it("encodes as Buffer does and decodes back, on every length 0 … 100 and on 100 KB", () => {
    const rng = new Rng("b64");
    for (const n of [...Array.from({ length: 101 }, (_, i) => i), 100_000]) {
      const b = randomBytes(rng, n);
      const text = base64Encode(b);
      expect(text, `length ${n}`).toBe(Buffer.from(b).toString("base64"));
      expect(base64Decode(text), `length ${n}`).toEqual(b);
    }
  });

  it("refuses what is not padded standard base64", () => {
    for (const bad of ["A", "AB", "ABC", "AB=C", "A===", "AB-_", "ABCD=", "AB\u00e9D", "====", "AB C"]) {
      expect(base64Decode(bad), JSON.stringify(bad)).toBeNull();
    }
    expect(base64Decode("")).toEqual(new Uint8Array(0));
    expect(base64Decode("AQIDBA==")).toEqual(new Uint8Array([1, 2, 3, 4]));
  });
});

describe("utf8", () => {
  it("round-trips text and refuses invalid bytes", () => {
    const text = "seed ü → 42 🙂";
    expect(utf8Decode(utf8Encode(text))).toBe(text);
    expect(utf8Encode(text)).toEqual(new Uint8Array(Buffer.from(text, "utf8")));
    expect(utf8Decode(new Uint8Array([0xff, 0xfe]))).toBeNull();
  });
});
