/**
 * A newer peer's `session.hello` with a field this version does not know (review s81 wire, F3):
 * still refused (the handshake is strict: both sides sign over exactly what the session id
 * hashes), but the reason names the field and the peer's envelope version, on both sides. Before,
 * both read only `malformed session.hello`.
 */
import assert from "node:assert/strict";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { decodeEnvelope, encodeEnvelope } from "../../protocols/envelope.ts";
import { encodeFrame, FrameSplitter } from "../../streams/length_prefixed_stream.ts";

Deno.test("a session.hello with an unknown field is refused naming the field and the peer's version, on both sides", async () => {
  const [ours, theirs] = memoryDuplexPair();
  const opened = Connection.open(ours, { identity: Identity.generate() });
  opened.catch(() => {});
  const writer = theirs.writable.getWriter();
  const body = {
    key: Identity.generate().publicKey,
    nonce: crypto.getRandomValues(new Uint8Array(32)),
    protocols: [],
    features: ["resume"], // what a later version might add
  };
  await writer.write(
    encodeFrame(encodeEnvelope({ v: 1, type: "session.hello", id: 0, body }), 1 << 20),
  );
  // What the newer peer reads back: our hello, then the refusal.
  const reader = theirs.readable.getReader();
  const splitter = new FrameSplitter({ maxFrameBytes: 1 << 20 });
  const got: { type: string; body: unknown }[] = [];
  while (got.length < 2) {
    const { done, value } = await reader.read();
    if (done) break;
    splitter.push(value, (p) => got.push(decodeEnvelope(p)));
  }
  const refusal = got.find((e) => e.type === "error")?.body as { code: string; message: string };
  const expected =
    "the peer's session.hello (protocol version 1) is refused: features: unknown field (from a later version?)";
  assert.equal(refusal?.code, "handshake_failed");
  assert.equal(refusal.message, expected);
  // Still refused here (not loosened), with the same words.
  const local = await opened.then(() => "opened", (e) => `${e.code}: ${e.message}`);
  assert.equal(local, `handshake_failed: ${expected}`);
  await writer.close().catch(() => {});
});
