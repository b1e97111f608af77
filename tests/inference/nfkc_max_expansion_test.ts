/**
 * `NFKC_MAX_EXPANSION` (`inference/remote_port.ts`), the bound on how many UTF-8 bytes a Unicode
 * normalizer makes of one byte of text, is computed here from the Unicode data this runtime
 * carries (`String.prototype.normalize`), over every code point: not guessed (review s79 vlate
 * F4). NFKC is the worst of the four forms; canonical composition never lengthens what
 * decomposition made, so a string grows no more than its worst character.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NFKC_MAX_EXPANSION } from "../../inference/remote_port.ts";

const UTF8 = new TextEncoder();
/** The last Unicode code point. */
const MAX_CODE_POINT = 0x10ffff;
/** The UTF-16 surrogates: no characters of their own. */
const SURROGATES = { from: 0xd800, to: 0xdfff };

/** The normalization forms a tokenizer's normalizer may apply. */
const FORMS = ["NFC", "NFD", "NFKC", "NFKD"] as const;

/**
 * For each form, the most UTF-8 bytes it makes of one byte of a single character, and where (one
 * pass over every code point).
 */
function worstGrowth(): Record<(typeof FORMS)[number], { ratio: number; at: number }> {
  const worst = Object.fromEntries(FORMS.map((f) => [f, { ratio: 0, at: 0 }])) as ReturnType<
    typeof worstGrowth
  >;
  for (let cp = 0; cp <= MAX_CODE_POINT; cp++) {
    if (cp >= SURROGATES.from && cp <= SURROGATES.to) continue;
    const text = String.fromCodePoint(cp);
    const bytes = UTF8.encode(text).length;
    for (const form of FORMS) {
      const ratio = UTF8.encode(text.normalize(form)).length / bytes;
      if (ratio > worst[form].ratio) worst[form] = { ratio, at: cp };
    }
  }
  return worst;
}

Deno.test("NFKC_MAX_EXPANSION is NFKC's largest growth of one UTF-8 byte over every code point (U+FDFA: 3 bytes to 33), and no other normalization form grows more", () => {
  const worst = worstGrowth();
  assert.deepEqual(worst.NFKC, { ratio: NFKC_MAX_EXPANSION, at: 0xfdfa });
  for (const form of FORMS) assert.ok(worst[form].ratio <= NFKC_MAX_EXPANSION, form);
});

Deno.test("canonical composition never makes a character longer in UTF-8 than the pair it joins: a string's NFKC form is at most NFKC_MAX_EXPANSION times its bytes", () => {
  for (let cp = 0; cp <= MAX_CODE_POINT; cp++) {
    if (cp >= SURROGATES.from && cp <= SURROGATES.to) continue;
    const composite = String.fromCodePoint(cp);
    const parts = [...composite.normalize("NFD")];
    if (parts.length < 2 || parts.join("").normalize("NFC") !== composite) continue;
    const last = parts.pop()!;
    const first = parts.join("").normalize("NFC");
    const joined = UTF8.encode(first).length + UTF8.encode(last).length;
    assert.ok(UTF8.encode(composite).length <= joined, `U+${cp.toString(16)}`);
  }
  // A long mixed text, composing across character boundaries, stays inside the bound.
  const text = "e\u0301\uFDFA\u3300A\u030A\u1100\u1161\uFB03".repeat(50);
  const grown = UTF8.encode(text.normalize("NFKC")).length;
  assert.ok(grown <= NFKC_MAX_EXPANSION * UTF8.encode(text).length, `${grown}`);
});
