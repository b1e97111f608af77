import assert from "node:assert/strict";
import * as dagCbor from "@ipld/dag-cbor";
import { decodeCbor, encodeCanonical, IllFormedStringError } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";

const utf8 = new TextEncoder();

/** RFC 8949 §4.2.3 length-first order, written from the rule: UTF-8 length, then bytes. */
function lengthFirst(keys: readonly string[]): string[] {
  return [...keys].sort((a, b) => {
    const x = utf8.encode(a);
    const y = utf8.encode(b);
    if (x.length !== y.length) return x.length - y.length;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return 0;
  });
}

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

Deno.test("encodeCanonical orders map keys length-first by their UTF-8 bytes (RFC 8949 §4.2.3)", () => {
  for (
    const keys of [
      ["ab", "é"], // UTF-16 says 1 unit before 2; UTF-8 says 2 bytes each, then 0x61 < 0xc3
      ["ab", "\uE000"], // 2 bytes vs 3: "ab" first, though "\uE000" is one UTF-16 unit
      ["\uFFFF", "😀"], // 3 bytes vs 4, though UTF-16 units say 1 vs 2 and 0xFFFF > 0xD83D
      ["\uE000x", "😀"], // both 4 bytes: U+1F600 (f0 ..) after U+E000 (ee ..), UTF-16 says before
      ["b", "a", "aa", "é", "ü", "z"],
    ]
  ) {
    const value = Object.fromEntries(keys.map((key, i) => [key, i]));
    assert.deepEqual(wireKeyOrder(encodeCanonical(value)), lengthFirst(keys), keys.join(","));
  }
});

Deno.test('encodeCanonical puts a short key before an index-like key ("a" before "10")', () => {
  // A plain object lists "10" first whatever the order it was built in.
  const value = { a: 1, "10": 2, "9": 3, bb: 4 };
  assert.deepEqual(wireKeyOrder(encodeCanonical(value)), ["9", "a", "10", "bb"]);
});

Deno.test("encodeCanonical writes the same bytes as @ipld/dag-cbor for maps with non-ASCII keys", () => {
  const tensor = { type: "float32", dims: [1, 2], data: new Uint8Array([1, 2, 3, 4]) };
  for (
    const value of [
      { inputs: { "\uE000": tensor, ab: tensor, "é": tensor, "😀": tensor, "0": tensor } },
      { details: { "résumé": "oui", reason: "ok", "ключ": 3, "12": true, "2": false } },
      { nested: [{ "ü": 1, u: 2 }, { "\uFFFF": 1, "😀": 2, "\uE000\uE000": 3 }] },
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
