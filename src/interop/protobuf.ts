/**
 * A minimal Protocol Buffers *writer*: just what an ONNX ModelProto needs (onnx.ts), no reader, no schema.
 *
 * Wire format facts used here (protobuf encoding spec): a field is a key varint (field number << 3 | wire
 * type) followed by its payload. Wire types used: 0 varint (int32, int64, enum, bool) and 2 length-delimited
 * (string, bytes, sub-message, packed repeated scalars); float tensors travel as raw little-endian bytes.
 * Negative int32/int64 values are varints of their 64-bit two's complement (ten bytes).
 * A repeated scalar is written one key per element ("unpacked", proto2's default, which parsers always accept).
 */
import { utf8Encode } from "../bytes.js";

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** Appends fields to a growing byte buffer. Build a sub-message with `message(field, w => …)`. */
export class ProtoWriter {
  private buf = new Uint8Array(64);
  private len = 0;

  /** A varint field (int32, int64, enum, bool): `value` must be an integer within ±2^63. */
  int(field: number, value: number | bigint): this {
    this.key(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  /** A bytes field. */
  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LEN);
    this.varint(value.length);
    this.raw(value);
    return this;
  }

  /** A string field, UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, utf8Encode(value));
  }

  /** A sub-message field, written by `build` into a writer of its own. */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const w = new ProtoWriter();
    build(w);
    return this.bytes(field, w.finish());
  }

  /** A repeated varint field, one key per element (proto2's default for `repeated int64`). */
  ints(field: number, values: readonly (number | bigint)[]): this {
    for (const v of values) this.int(field, v);
    return this;
  }

  /** A repeated string field, one key per element. */
  strings(field: number, values: readonly string[]): this {
    for (const v of values) this.string(field, v);
    return this;
  }

  /** The bytes written so far (a copy the writer no longer touches). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }

  private key(field: number, wire: number): void {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) throw new RangeError(`protobuf: bad field number ${field}`);
    this.varint(field * 8 + wire);
  }

  /** Base-128 varint, least significant group first; negatives as 64-bit two's complement. */
  private varint(value: number | bigint): void {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) throw new RangeError(`protobuf: varint needs a safe integer, got ${value}`);
      if (value >= 0) {
        this.ensure(8);
        while (value >= 0x80) {
          this.buf[this.len++] = (value % 0x80) | 0x80;
          value = Math.floor(value / 0x80);
        }
        this.buf[this.len++] = value;
        return;
      }
      value = BigInt(value);
    }
    if (value < -(1n << 63n) || value >= 1n << 64n) throw new RangeError(`protobuf: varint out of 64-bit range: ${value}`);
    let u = BigInt.asUintN(64, value);
    this.ensure(10);
    while (u >= 0x80n) {
      this.buf[this.len++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.len++] = Number(u);
  }

  private raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

/** Values as consecutive IEEE 754 singles, little-endian (each rounded to the nearest float32). */
export function float32LE(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let k = 0; k < values.length; k++) view.setFloat32(k * 4, values[k]!, true);
  return out;
}

/** Integers as consecutive 32-bit two's-complement little-endian words. */
export function int32LE(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  for (let k = 0; k < values.length; k++) view.setInt32(k * 4, values[k]!, true);
  return out;
}

/** Integers as consecutive 64-bit two's-complement little-endian words. */
export function int64LE(values: readonly (number | bigint)[]): Uint8Array {
  const out = new Uint8Array(values.length * 8);
  const view = new DataView(out.buffer);
  values.forEach((v, k) => view.setBigInt64(k * 8, BigInt(v), true));
  return out;
}
