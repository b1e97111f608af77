/**
 * `decodeEnvelope` checks a decoded envelope by hand before zod (every frame a node reads is
 * one). These tests pin that the hand check changes nothing: for every frame here, valid or
 * not, `decodeEnvelope` says what `envelopeSchema` alone says of the same decoded value — the
 * same refusal with the same message, an unknown version as such, and for an envelope taken the
 * same value, key order included.
 */
import assert from "node:assert/strict";
import {
  decodeEnvelope,
  envelopeSchema,
  MAX_TYPE_LENGTH,
  PROTOCOL_VERSION,
} from "../../protocols/envelope.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import { decodeCheckedCbor, DEFAULT_MAX_CBOR_DEPTH } from "../../protocols/cbor_guard.ts";
import { ProtocolError } from "../../protocols/protocol_errors.ts";

const show = (value: unknown) => Deno.inspect(value, { depth: 8, sorted: false });

/** What `decodeEnvelope` says of `bytes`. */
function decoded(bytes: Uint8Array): string {
  try {
    return `ok ${show(decodeEnvelope(bytes))}`;
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return `${error.code} ${error.message}`;
  }
}

/** What the schema alone says of the same decoded value, as `decodeEnvelope` would word it. */
function schemaAlone(bytes: Uint8Array): string {
  let raw: unknown;
  try {
    raw = decodeCheckedCbor(bytes, DEFAULT_MAX_CBOR_DEPTH);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return `${error.code} ${error.message}`; // not CBOR a node takes: no envelope to check
  }
  const parsed = envelopeSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `invalid_envelope not an envelope: ${
      issue.path.map(String).join(".") || "(root)"
    }: ${issue.message}`;
  }
  if (parsed.data.v !== PROTOCOL_VERSION) return "unknown_version";
  return `ok ${show(parsed.data)}`;
}

function assertSameAsSchema(value: unknown) {
  const bytes = encodeCbor(value);
  const said = decoded(bytes);
  const expected = schemaAlone(bytes);
  if (expected === "unknown_version") assert.match(said, /^unknown_version /, show(value));
  else assert.equal(said, expected, show(value));
}

const EDGE_VALUES: unknown[] = [
  0,
  -0,
  1,
  2,
  -1,
  1.5,
  2 ** 53 - 1,
  2 ** 53,
  2n ** 64n,
  NaN,
  Infinity,
  -Infinity,
  "",
  "a",
  "inference.event",
  "a".repeat(MAX_TYPE_LENGTH),
  "a".repeat(MAX_TYPE_LENGTH + 1),
  null,
  undefined,
  true,
  [],
  {},
  { kind: "tokens" },
  new Uint8Array(31),
  new Uint8Array(32),
  new Uint8Array(33),
  new Uint8Array(64),
  new Uint8Array(65),
];

const FIELDS = ["v", "type", "id", "from", "re", "body", "sig", "extra"];

Deno.test("decodeEnvelope says what envelopeSchema alone says, for every field set to every edge value or left out", () => {
  const signed = {
    v: PROTOCOL_VERSION,
    type: "inference.event",
    id: 7,
    from: new Uint8Array(32).fill(1),
    re: 3,
    body: { kind: "token", index: 0, tokenId: 1, text: "a" },
    sig: new Uint8Array(64).fill(2),
  };
  const plain = { v: PROTOCOL_VERSION, type: "inference.event", id: 8, body: null };
  for (const base of [signed, plain, { ...plain, re: 0 }, { ...plain, from: signed.from }]) {
    assertSameAsSchema(base);
    for (const field of FIELDS) {
      for (const value of EDGE_VALUES) assertSameAsSchema({ ...base, [field]: value });
      const { [field]: _removed, ...rest } = base as Record<string, unknown>;
      assertSameAsSchema(rest);
    }
    // Keys in another order on the wire: the envelope comes out in the schema's.
    assertSameAsSchema(Object.fromEntries(Object.entries(base).reverse()));
  }
  for (const value of [null, 7, "envelope", [], [1, 2], new Uint8Array(4)]) {
    assertSameAsSchema(value);
  }
});

Deno.test("an envelope decoded by hand round-trips: encoded again, it decodes to the same envelope", () => {
  const body = { nested: { bytes: new Uint8Array([1, 2, 3]) } };
  const envelope = decodeEnvelope(
    encodeCbor({ v: PROTOCOL_VERSION, type: "x.y", id: 1, body, sig: new Uint8Array(64) }),
  );
  const again = decodeCheckedCbor(encodeCbor(envelope), DEFAULT_MAX_CBOR_DEPTH);
  assert.deepEqual(envelope.body, body);
  assert.equal(show(again), show(envelope));
});
