import assert from "node:assert/strict";
import * as dagCbor from "@ipld/dag-cbor";
import { decodeCbor, encodeCanonical, IllFormedStringError } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";

const utf8 = new TextEncoder();

/** The keys of the top-level map of `bytes`, in the order they were written. */
function wireKeyOrder(bytes: Uint8Array): string[] {
  const decoded = decodeCbor(bytes) as Record<string, unknown>;
  // The decoder builds a plain object, which reorders index-like keys: read them off the bytes
  // instead, by decoding each key from its offset (keys here are short text, values small ints).
  const keys: string[] = [];
  const count = bytes[0] & 0x1f;
  let at = 1;
  for (let i = 0; i < count; i++) {
    const length = bytes[at] & 0x1f;
    keys.push(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(at + 1, at + 1 + length)),
    );
    at += 1 + length + 1;
  }
  assert.deepEqual(new Set(keys), new Set(Object.keys(decoded)));
  return keys;
}

Deno.test("encodeCanonical refuses a lone surrogate in a string or a map key with ill_formed_string", () => {
  for (
    const value of [
      "\uD800",
      "a\uDC00b",
      "tail \uD83D", // a high surrogate with no low one after it
      { prompt: "hello \uD800" },
      { params: { stop: ["ok", "\uDFFF"] } },
      { inputs: { "\uD800": 1 } },
      ["x".repeat(100) + "\uD800"], // long strings take cbor-x's other UTF-8 path
    ]
  ) {
    assert.throws(
      () => encodeCanonical(value),
      (error: unknown) =>
        error instanceof IllFormedStringError && error.code === "ill_formed_string",
      JSON.stringify(value),
    );
  }
});

Deno.test("canonical text strings are valid UTF-8 that decodes to the same string", () => {
  for (const text of ["é", "\uE000", "\uFFFF", "😀", "a😀b", "x".repeat(100) + "😀", "日本語"]) {
    const bytes = encodeCanonical(text);
    const decoded = decodeCbor(bytes);
    assert.equal(decoded, text, toHex(bytes));
    assert.equal(
      toHex(bytes.subarray(bytes.length - utf8.encode(text).length)),
      toHex(utf8.encode(text)),
    );
  }
});

Deno.test("encodeCanonical writes the bytes every stored signature was made over: non-ASCII and index-like keys in their established order", () => {
  // Ledger entries and signatures are verified by encoding again: an order other than the one
  // they were signed in (the RFC's UTF-8 order, or "ok" before "100") made ledgers holding such a
  // verdict fail to open after an upgrade. These bytes are what the previous version wrote.
  assert.equal(toHex(encodeCanonical({ ok: true, "100": 2 })), "a26331303002626f6bf5");
  assert.equal(toHex(encodeCanonical({ "é": 1, ab: 2, c: 3 })), "a361630362c3a90162616202");
});

Deno.test("encodeCanonical agrees with @ipld/dag-cbor on ASCII keys that are not all digits (every key the protocol defines)", () => {
  const tensor = { type: "float32", dims: [1, 2], data: new Uint8Array([1, 2, 3, 4]) };
  for (
    const value of [
      { inputs: { x: tensor, ab: tensor, input_ids: tensor } },
      { details: { reason: "ok", position: 3, kind: "k" }, v: 1, sig: new Uint8Array(2) },
    ]
  ) {
    assert.equal(
      toHex(encodeCanonical(value)),
      toHex(dagCbor.encode(value)),
      JSON.stringify(value),
    );
  }
});

Deno.test("encodeCanonical drops undefined fields and keeps ASCII length-first order", () => {
  const bytes = encodeCanonical({ zz: 1, a: undefined, b: 2, aaa: 3, c: { y: 1, x: undefined } });
  assert.deepEqual(decodeCbor(bytes), { b: 2, zz: 1, aaa: 3, c: { y: 1 } });
  assert.deepEqual(wireKeyOrder(encodeCanonical({ zz: 1, b: 2, aaa: 3, c: 4 })), [
    "b",
    "c",
    "zz",
    "aaa",
  ]);
});
