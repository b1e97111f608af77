/**
 * Review s64 (red team of the wire): a peer replaying one envelope it signed.
 *
 * An envelope signed by the peer's own key for this session is verified on arrival (its
 * canonical CBOR re-encoded, an ed25519 check) and, if genuine, taken. Nothing remembers which
 * ones were seen, so the same signed frame sent again verifies again: a peer signs one `ping`
 * once and resends its bytes without end. Measured here (2-core machine, after warm-up): a
 * 144-byte signed ping costs its receiver ~110-120 µs, ~840 ns a byte, where an unsigned ping
 * costs ~13 ns a byte; each is answered, none refused or counted. No production path signs
 * envelopes on a connection (only tests and `bench/codec_bench.ts` call `signEnvelope`), yet
 * every connection verifies them. Ids grow per sender, so a signed envelope whose id is not
 * above the last signed one verified is a replay and can be refused before its check.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { signEnvelope } from "../../protocols/envelope_signing.ts";
import { openWithRawPeer } from "./_helpers.ts";

Deno.test({
  name:
    "review s64: the same signed ping sent three times is verified and answered once; its replays are refused",
  // Failed before the fix ("replays of one signed envelope were taken", 0 !== 2): all three
  // copies verified and got a `pong`; `refused` stayed 0.
  async fn() {
    const signer = Identity.generate();
    const { connection, peer, session } = await openWithRawPeer(
      { identity: Identity.generate() },
      { identity: signer },
    );
    const ping = signEnvelope(
      { v: 1, type: "ping", id: 1, body: { nonce: 7 } },
      signer,
      session.sessionId,
    );
    for (let i = 0; i < 3; i++) await peer.send(ping);
    // An unsigned ping after them: once its pong is back, the three were all handled.
    await peer.send({ v: 1, type: "ping", id: 2, body: { nonce: 8 } });
    const answers: string[] = [];
    for (;;) {
      const envelope = await peer.next();
      if (envelope.type === "pong" && envelope.re === 2) break;
      answers.push(envelope.type);
    }
    assert.equal(connection.stats().refused, 2, "replays of one signed envelope were taken");
    assert.deepEqual(answers, ["pong", "error", "error"]);
    await peer.close();
    await connection.close();
  },
});

Deno.test("review s64: only a verified signature moves the replay mark: a forged envelope with a higher id leaves later genuine ones answered", async () => {
  const signer = Identity.generate();
  const { connection, peer, session } = await openWithRawPeer(
    { identity: Identity.generate() },
    { identity: signer },
  );
  const ping = (id: number, by: Identity) =>
    signEnvelope({ v: 1, type: "ping", id, body: { nonce: id } }, by, session.sessionId);
  await peer.send(ping(3, signer));
  assert.deepEqual([(await peer.next()).type], ["pong"]);
  // Signed by the peer's key over other bytes: refused, and the mark stays at 3.
  const forged = { ...ping(10, signer), body: { nonce: 11 } };
  await peer.send(forged);
  const refusal = await peer.next();
  assert.deepEqual([refusal.type, (refusal.body as { code: string }).code], [
    "error",
    "bad_signature",
  ]);
  await peer.send(ping(5, signer));
  const pong = await peer.next();
  assert.deepEqual([pong.type, pong.re], ["pong", 5]);
  // Unsigned envelopes have no mark: an id below it is still answered.
  await peer.send({ v: 1, type: "ping", id: 4, body: { nonce: 4 } });
  assert.deepEqual((await peer.next()).re, 4);
  assert.equal(connection.stats().refused, 1);
  await peer.close();
  await connection.close();
});
