/**
 * `inference.event` bodies of kind `token` and `tokens` are checked by hand before zod (the
 * router parses every event it relays). These tests pin that the hand check changes nothing:
 * for every body here, valid or not, the parse says what zod alone says — the same refusals
 * with the same issues, and for a body taken the same value, key order and `-0` included.
 *
 * Zod alone is reached by handing it a copy of the body without `Object.prototype` (a plain
 * object, to zod, but one the hand check never takes).
 */
import assert from "node:assert/strict";
import { InferenceEventMessage } from "../../protocols/inference_messages.ts";

const parse = (body: unknown) => InferenceEventMessage.schema.safeParse(body);

/** The same body, its outer object without a prototype: only zod parses it. */
function zodOnly(body: unknown) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return parse(body);
  return parse(Object.assign(Object.create(null), body));
}

/** What a parse said, in a form that tells key order, `-0` and `undefined` apart. */
function said(result: ReturnType<typeof parse>): string {
  return result.success
    ? `ok ${Deno.inspect(result.data, { depth: 8, sorted: false })}`
    : `refused ${JSON.stringify(result.error.issues)}`;
}

function assertSameAsZod(body: unknown, label: string) {
  assert.equal(said(parse(body)), said(zodOnly(body)), label);
}

/** Values a token's field is tried with, the valid and the wrong. */
const EDGE_VALUES: unknown[] = [
  0,
  -0,
  1,
  -1,
  1.5,
  2 ** 53 - 1,
  2 ** 53,
  -(2 ** 53),
  NaN,
  Infinity,
  -Infinity,
  -2.25,
  "1",
  "",
  "a".repeat(1024),
  "a".repeat(1025),
  "stop",
  "length",
  "other",
  null,
  undefined,
  true,
  1n,
  [],
  {},
  [{ tokenId: 1, text: "b", logprob: -1 }],
  [{ tokenId: 1, text: "b" }],
  // A stream signature (`stream_commitment.ts`): 64 bytes, and what is not one.
  new Uint8Array(64).fill(7),
  new Uint8Array(63),
  new Uint8Array(65),
  new Uint16Array(32),
  new Uint8Array(64).buffer,
];

const FIELDS = [
  "index",
  "tokenId",
  "text",
  "logprob",
  "top",
  "finishReason",
  "sig",
  "extra",
  "kind",
];

function token(index: number): Record<string, unknown> {
  return { index, tokenId: 97 + index, text: String.fromCharCode(97 + index) };
}

/** Every token shape tried: the base, each field set to each edge value, each field removed. */
function tokenVariants(): Record<string, unknown>[] {
  const base = { ...token(3), logprob: -0.5, finishReason: "stop" };
  const variants: Record<string, unknown>[] = [base, token(0), { ...token(1), logprob: -0 }];
  for (const field of FIELDS) {
    for (const value of EDGE_VALUES) variants.push({ ...base, [field]: value });
    const { [field]: _removed, ...rest } = base as Record<string, unknown>;
    variants.push(rest);
  }
  // The same fields in another order: zod's output follows its schema, not the input.
  variants.push({ finishReason: "length", text: "z", logprob: -3, tokenId: 5, index: 9 });
  return variants;
}

Deno.test("a token event parses as zod alone parses it, for every field set to every edge value", () => {
  for (const variant of tokenVariants()) {
    const { kind: _kind, ...fields } = variant;
    assertSameAsZod({ kind: "token", ...fields }, Deno.inspect(variant));
    assertSameAsZod({ ...fields, kind: "token" }, `kind last: ${Deno.inspect(variant)}`);
    if ("kind" in variant) assertSameAsZod({ ...variant }, `kind ${Deno.inspect(variant.kind)}`);
  }
});

Deno.test("a tokens event parses as zod alone parses it: each token's variants, 0 to 17 tokens, wrong items and extra keys", () => {
  for (const variant of tokenVariants()) {
    assertSameAsZod({ kind: "tokens", tokens: [token(0), variant] }, Deno.inspect(variant));
    assertSameAsZod({ tokens: [variant, token(1), token(2)], kind: "tokens" }, "first");
  }
  for (let n = 0; n <= 17; n++) {
    assertSameAsZod(
      { kind: "tokens", tokens: Array.from({ length: n }, (_, i) => token(i)) },
      `${n}`,
    );
  }
  const sparse = [token(0), token(1), token(2)];
  delete (sparse as unknown[])[1];
  const wrongItems: unknown[] = [
    null,
    undefined,
    7,
    "a",
    [],
    [token(0)],
    new Map(Object.entries(token(0))),
    Object.assign(Object.create(null), token(0)),
    Object.assign(Object.create({ inherited: 1 }), token(0)),
  ];
  for (const item of wrongItems) {
    assertSameAsZod({ kind: "tokens", tokens: [token(0), item] }, Deno.inspect(item));
  }
  const bodies: unknown[] = [
    { kind: "tokens", tokens: sparse },
    { kind: "tokens", tokens: { 0: token(0), 1: token(1), length: 2 } },
    { kind: "tokens", tokens: "ab" },
    { kind: "tokens" },
    { kind: "tokens", tokens: [token(0), token(1)], extra: 1 },
    { kind: "tokens", tokens: [token(0), token(1)], extra: undefined },
    { kind: "tokens", tokens: [token(0), token(1)], index: 0 },
    { kind: "tokens", tokens: [token(0), token(1)], sig: new Uint8Array(64).fill(1) },
    { sig: new Uint8Array(64), kind: "tokens", tokens: [token(0), token(1)] },
    { kind: "tokens", tokens: [token(0), token(1)], sig: new Uint8Array(32) },
    { kind: "tokens", tokens: [token(0), token(1)], sig: undefined },
    { kind: "tokens", tokens: [token(0), token(1)], sig: null },
    { kind: "tokens", tokens: [token(0), token(1)], sig: [...new Uint8Array(64)] },
    { kind: "token", tokens: [token(0), token(1)] },
    { kind: "Tokens", tokens: [token(0), token(1)] },
    {
      kind: "start",
      jobId: "a".repeat(64),
      model: { cid: "m", name: "m", kind: "text" },
      promptTokens: 1,
    },
    { kind: "queued", position: 1 },
    { kind: "end" },
    null,
    undefined,
    [],
    "tokens",
    7,
  ];
  for (const body of bodies) assertSameAsZod(body, Deno.inspect(body));
});

Deno.test("a parsed token event is a fresh object: changing the body afterwards does not change it", () => {
  const tokens = [token(0), token(1)];
  const body = { kind: "tokens", tokens };
  const result = parse(body);
  if (!result.success) throw new Error("refused");
  tokens[0].text = "changed";
  tokens.push(token(2));
  assert.deepEqual(result.data, { kind: "tokens", tokens: [token(0), token(1)] });
});
