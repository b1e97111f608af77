/**
 * Review s55: `handshakeTimeoutMs` that cannot be a deadline (0, negative, not a number, past a
 * timer's bound) is refused by `Connection.open` before any I/O, with an error naming the option.
 * Accepted before, 0 armed a deadline already due: every handshake over TCP on 127.0.0.1 failed
 * with "no handshake from the peer within 0 ms", while 0 means "never" for `idleTimeoutMs` and
 * `keepaliveMs`.
 */
import assert from "node:assert/strict";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

for (const bad of [0, -1, Number.NaN, 2 ** 31]) {
  Deno.test(`review s55: handshakeTimeoutMs ${bad} is refused, naming the option, before any timer or byte`, async () => {
    const timers = new FakeTimers();
    const [a, b] = memoryDuplexPair();
    const reader = b.readable.getReader();
    const reading = reader.read();
    await assert.rejects(
      () => Connection.open(a, { identity: Identity.generate(), timers, handshakeTimeoutMs: bad }),
      (e: Error) => e instanceof RangeError && /handshakeTimeoutMs/.test(e.message),
    );
    assert.equal(timers.armed.size, 0, "no deadline armed");
    await reader.cancel();
    assert.deepEqual(await reading, { done: true, value: undefined }, "nothing was sent");
  });
}

Deno.test("review s55: a positive handshakeTimeoutMs still opens both sides", async () => {
  const [a, b] = memoryDuplexPair();
  const [left, right] = await Promise.all([
    Connection.open(a, { identity: Identity.generate(), handshakeTimeoutMs: 60_000 }),
    Connection.open(b, { identity: Identity.generate(), handshakeTimeoutMs: 2 ** 31 - 1 }),
  ]);
  assert.ok(left.peerKey && right.peerKey);
  await Promise.all([left.close(), right.close()]);
});
