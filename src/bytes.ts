/**
 * Byte codecs the file formats need, in plain TypeScript so that they run wherever the core runs (no
 * Node `Buffer`, no `crypto` module): SHA-256 (FIPS 180-4), base64 (RFC 4648, standard alphabet, padded)
 * and UTF-8 through the `TextEncoder` / `TextDecoder` globals that browsers and Node both have.
 */

// ---------------------------------------------------------------------------------------------------
// SHA-256

/** The round constants of FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** The initial hash value of FIPS 180-4 §5.3.3. */
const H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/**
 * The SHA-256 digest of `bytes`, as 64 lowercase hex digits.
 *
 * @example
 * sha256Hex(new TextEncoder().encode("abc"));  // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 */
export function sha256Hex(bytes: Uint8Array): string {
  const n = bytes.length;
  // The message, a 1 bit, zeros, and the bit length in 64 bits: a whole number of 64-byte blocks.
  const blocks = Math.ceil((n + 9) / 64);
  const m = new Uint8Array(blocks * 64);
  m.set(bytes);
  m[n] = 0x80;
  const view = new DataView(m.buffer);
  view.setUint32(m.length - 8, Math.floor(n / 0x20000000), false); // high word of 8·n
  view.setUint32(m.length - 4, (n * 8) >>> 0, false);
  const h = Int32Array.from(H0);
  const w = new Int32Array(64);
  for (let b = 0; b < blocks; b++) {
    for (let t = 0; t < 16; t++) w[t] = view.getInt32(b * 64 + 4 * t, false);
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15]!, y = w[t - 2]!;
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
    }
    let a = h[0]!, bb = h[1]!, c = h[2]!, d = h[3]!, e = h[4]!, f = h[5]!, g = h[6]!, hh = h[7]!;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[t]! + w[t]!) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0]! + a) | 0; h[1] = (h[1]! + bb) | 0; h[2] = (h[2]! + c) | 0; h[3] = (h[3]! + d) | 0;
    h[4] = (h[4]! + e) | 0; h[5] = (h[5]! + f) | 0; h[6] = (h[6]! + g) | 0; h[7] = (h[7]! + hh) | 0;
  }
  let hex = "";
  for (let i = 0; i < 8; i++) hex += (h[i]! >>> 0).toString(16).padStart(8, "0");
  return hex;
}

// ---------------------------------------------------------------------------------------------------
// base64

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const CODES = new Int16Array(128).fill(-1); // character code → 6-bit value, -1 if not in the alphabet
for (let i = 0; i < 64; i++) CODES[ALPHABET.charCodeAt(i)] = i;

/**
 * Standard base64 with padding (RFC 4648 §4), as Node's `buffer.toString("base64")` writes it.
 *
 * @example
 * base64Encode(new Uint8Array([1, 2, 3, 4]));  // "AQIDBA=="
 */
export function base64Encode(bytes: Uint8Array): string {
  const n = bytes.length, parts: string[] = [];
  let chunk = "";
  for (let i = 0; i < n; i += 3) {
    const b0 = bytes[i]!, b1 = i + 1 < n ? bytes[i + 1]! : 0, b2 = i + 2 < n ? bytes[i + 2]! : 0;
    chunk += ALPHABET[b0 >> 2]! + ALPHABET[((b0 & 3) << 4) | (b1 >> 4)]! +
      (i + 1 < n ? ALPHABET[((b1 & 15) << 2) | (b2 >> 6)]! : "=") + (i + 2 < n ? ALPHABET[b2 & 63]! : "=");
    if (chunk.length >= 8192) { parts.push(chunk); chunk = ""; } // bounded string ropes for large arrays
  }
  parts.push(chunk);
  return parts.join("");
}

/**
 * Decodes standard padded base64; null when `text` is not exactly that (a length that is not a multiple
 * of 4, a character outside the alphabet, misplaced padding).
 *
 * @example
 * base64Decode("AQIDBA==");  // Uint8Array [1, 2, 3, 4]
 */
export function base64Decode(text: string): Uint8Array | null {
  const len = text.length;
  if (len % 4 !== 0) return null;
  const pad = len === 0 ? 0 : text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((len / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < len; i += 4) {
    const last = i + 4 === len;
    const c0 = code(text, i), c1 = code(text, i + 1);
    const c2 = last && pad === 2 ? 0 : code(text, i + 2);
    const c3 = last && pad >= 1 ? 0 : code(text, i + 3);
    if ((c0 | c1 | c2 | c3) < 0) return null;
    out[o++] = (c0 << 2) | (c1 >> 4);
    if (o < out.length) out[o++] = ((c1 & 15) << 4) | (c2 >> 2);
    if (o < out.length) out[o++] = ((c2 & 3) << 6) | c3;
  }
  return out;
}

function code(text: string, i: number): number {
  const c = text.charCodeAt(i);
  return c < 128 ? CODES[c]! : -1;
}

// ---------------------------------------------------------------------------------------------------
// UTF-8

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The UTF-8 bytes of a string. */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The string of UTF-8 bytes; null when they are not valid UTF-8. */
export function utf8Decode(bytes: Uint8Array): string | null {
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}
