/**
 * What a kept encoding keeps alive (`protocols/cbor.ts`, review s81 vwire2 F1). cbor-x writes
 * every value into one buffer it shares between calls; `encodeCbor` and `encodeCanonical` gave
 * back views of it. One large value (a 900 KB prompt: `maxPromptChars` is 1 MiB) grew that buffer
 * to 10.8 MB, cbor-x kept that size for every later buffer, and a kept 73-byte result (a router's
 * assignment handoff) held a whole one. Now a result keeps at most four times its own size.
 */
import assert from "node:assert/strict";
import {
  decodeCbor,
  encodeCanonical,
  encodeCbor,
  encodeCborWithHeadroom,
} from "../../protocols/cbor.ts";

/** A result may keep alive at most this multiple of its own size (`MAX_PIN_RATIO`). */
const MAX_PIN_RATIO = 4;

const LARGE = { prompt: "x".repeat(900_000) };

Deno.test("a small encoding kept after a large one has a buffer of its own size, from encodeCbor and encodeCanonical alike", () => {
  for (const encode of [encodeCbor, encodeCanonical]) {
    encode(LARGE);
    const small = encode({ sig: new Uint8Array(64).fill(7) });
    assert.ok(small.byteLength < 100, String(small.byteLength));
    assert.ok(
      small.buffer.byteLength <= MAX_PIN_RATIO * small.byteLength,
      `${encode.name}: ${small.byteLength} bytes keep ${small.buffer.byteLength} alive`,
    );
    assert.deepEqual(decodeCbor(small), { sig: new Uint8Array(64).fill(7) });
  }
});

Deno.test("no encoding keeps more than four times its size alive, whatever its size and whatever was encoded before it", () => {
  const sizes = [0, 10, 100, 1_000, 3_000, 6_000, 20_000, 100_000, 900_000];
  for (const before of [{}, LARGE]) {
    encodeCbor(before);
    for (const size of sizes) {
      for (const encode of [encodeCbor, encodeCanonical]) {
        const value = { pad: "p".repeat(size), n: size };
        const bytes = encode(value);
        assert.ok(
          bytes.buffer.byteLength <= MAX_PIN_RATIO * bytes.byteLength,
          `${encode.name} of ${bytes.byteLength} bytes keeps ${bytes.buffer.byteLength} alive`,
        );
        assert.deepEqual(decodeCbor(bytes), value);
      }
    }
  }
});

Deno.test("an encoding kept across later ones, a large one and its own buffer's renewal among them, keeps its bytes", () => {
  const kept = encodeCbor({ key: new Uint8Array(32).fill(1), seq: 1 });
  const copy = kept.slice();
  encodeCborWithHeadroom(LARGE, 4, 0);
  for (let i = 0; i < 2_000; i++) encodeCbor({ i, pad: "q".repeat(90) });
  encodeCanonical(LARGE);
  assert.deepEqual(kept, copy);
});
