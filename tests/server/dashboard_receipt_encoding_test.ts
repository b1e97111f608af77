/**
 * The dashboard checks receipts in the browser with its own canonical CBOR encoder
 * (`server/dashboard/receipt_check.js`): it must write the node's bytes (`protocols/cbor.ts`),
 * or a receipt over a job with non-ASCII map keys would not verify in the page.
 */
import { assertEquals } from "./_assert.ts";
import { encodeCanonical as inBrowser } from "../../server/dashboard/receipt_check.js";
import { encodeCanonical as onNode } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";

Deno.test("the dashboard's receipt check encodes canonical CBOR byte for byte as the node does, non-ASCII and index-like keys included", () => {
  const values = [
    { "é": 1, ab: 2, c: 3 }, // "é" is one UTF-16 unit, shorter than "ab"
    { a: 1, "10": 2, bb: [1, "x"] },
    { z: { "\uE000": 1, "𝄞": 2, "ß": null } },
    {
      kind: "text",
      model: "bafk",
      prompt: "hé",
      nonce: "n",
      params: { temperature: 0.5, topK: 0, topP: 1, seed: 7, maxTokens: 5 },
    },
  ];
  for (const value of values) assertEquals(toHex(inBrowser(value)), toHex(onNode(value)));
});
