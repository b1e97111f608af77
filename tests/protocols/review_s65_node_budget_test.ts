/**
 * Review s65 (wire): a node's limits hold for the node, not per connection. Each connection
 * bounds its own handlers (`maxInboundRequests`) and queued bytes (`maxQueuedBytes`); N peers,
 * each within those, made the node hold N times them. Every connection given one `WireBudget`
 * (`protocols/wire_budget.ts`) asks it too, and a request past it is answered `busy`.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import {
  type Connection,
  type ConnectionOptions,
  defineProtocol,
} from "../../protocols/connection.ts";
import { defineMessage } from "../../protocols/message_registry.ts";
import { Identity } from "../../protocols/identity.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { WireBudget } from "../../protocols/wire_budget.ts";
import {
  connectedPair,
  connectionWithRawPeer,
  CountTo,
  Echo,
  ManualTimers,
  openPair,
  refusedBusy,
  settle,
} from "./_helpers.ts";

const Big = defineMessage("test.s65_big", z.object({ data: z.instanceof(Uint8Array) }));
const GetBig = defineMessage("test.s65_get_big", z.object({ bytes: z.number().int() }), {
  reply: Big,
});

const ECHO = defineProtocol("test.s65_echo", 1, [Echo]);

/** Liveness off: these tests are about what the node holds, not about time. */
const QUIET: ConnectionOptions = { keepaliveMs: 0, idleTimeoutMs: 0 };

/** A handler that holds its request until `release` resolves. */
function heldEcho(release: Promise<void>) {
  return async ({ text, n }: { text: string; n: number }) => {
    await release;
    return { text, n };
  };
}

Deno.test("N connections each within their own maxInboundRequests run at most the node's maxHandlers together; the rest are answered busy", async () => {
  const budget = new WireBudget({ maxHandlers: 8, maxHandlersPerPeer: 8 });
  const release = Promise.withResolvers<void>();
  const pairs = Array.from({ length: 4 }, () => {
    const pair = connectedPair(QUIET, { ...QUIET, maxInboundRequests: 4, budget });
    pair.server.handle(Echo, heldEcho(release.promise));
    return pair;
  });
  // 16 requests, 4 per connection: each connection is within its own bound of 4.
  const asked = pairs.flatMap(({ client }) =>
    Array.from({ length: 4 }, (_, n) => client.request(Echo, { text: "x", n }))
  );
  const outcomes = asked.map((p) => refusedBusy(p));
  await settle();
  const running = pairs.reduce((n, { server }) => n + server.stats().inboundRequests, 0);
  assert.equal(running, 8, "the node runs maxHandlers handlers, not 4 connections × 4");
  assert.equal(budget.stats().handlers, 8);
  release.resolve();
  const busy = (await Promise.all(outcomes)).filter(Boolean).length;
  assert.equal(busy, 8, "the 8 past the node's bound are answered busy");
  await settle();
  assert.equal(budget.stats().handlers, 0, "every slot is given back when its handler ends");
  assert.equal(budget.stats().refused, 8);
  await Promise.all(pairs.map((p) => p.close()));
});

Deno.test("an honest peer is served while a flooding peer holds its whole share, on any number of its connections", async () => {
  const budget = new WireBudget({ maxHandlers: 8, maxHandlersPerPeer: 4 });
  const release = Promise.withResolvers<void>();
  const serverIdentity = Identity.generate();
  const flooder = Identity.generate();
  const server = { identity: serverIdentity, protocols: [ECHO], ...QUIET, budget };
  const serve = (c: Connection) => c.handle(Echo, heldEcho(release.promise));
  // The flooder opens two connections under one key, 4 requests on each (its own bound is 1024).
  const floods = await Promise.all(
    [0, 1].map(() => openPair({ identity: flooder, protocols: [ECHO], ...QUIET }, server)),
  );
  floods.forEach((p) => serve(p.server));
  const flooded = floods.flatMap(({ client }) =>
    Array.from({ length: 4 }, (_, n) => refusedBusy(client.request(Echo, { text: "f", n })))
  );
  await settle();
  assert.equal(budget.stats().handlers, 4, "one key holds its share on all its connections");
  const honest = await openPair({ protocols: [ECHO], ...QUIET }, server);
  honest.server.handle(Echo, ({ text, n }) => ({ text, n })); // answers at once
  assert.deepEqual(await honest.client.request(Echo, { text: "h", n: 1 }), { text: "h", n: 1 });
  release.resolve();
  assert.equal((await Promise.all(flooded)).filter(Boolean).length, 4, "the flood's rest: busy");
  await Promise.all([...floods, honest].map((p) => p.close()));
  assert.equal(budget.stats().handlers, 0);
});

Deno.test("streams served on all connections stay within the node's maxStreams; one past it is answered busy, and the slot comes back when a stream ends", async () => {
  const budget = new WireBudget({ maxStreams: 2 });
  const pairs = Array.from({ length: 3 }, () => {
    const pair = connectedPair(QUIET, { ...QUIET, budget });
    // A stream that never ends on its own: it ends when its reader cancels it.
    pair.server.handle(CountTo, () => new ReadableStream({ pull: () => new Promise(() => {}) }));
    return pair;
  });
  const readers = pairs.map(({ client }) => client.openStream(CountTo, { to: 1 }).getReader());
  const third = readers[2].read();
  third.catch(() => {}); // checked below
  await settle();
  assert.equal(budget.stats().streams, 2);
  await assert.rejects(third, (e: unknown) => e instanceof RemoteError && e.code === "busy");
  await readers[0].cancel();
  await settle();
  assert.equal(budget.stats().streams, 1, "a cancelled stream gives its slot back");
  const again = pairs[2].client.openStream(CountTo, { to: 1 }).getReader();
  await settle();
  assert.equal(budget.stats().streams, 2, "and another peer's stream takes it");
  await again.cancel();
  await readers[1].cancel();
  await Promise.all(pairs.map((p) => p.close()));
  assert.equal(budget.stats().streams, 0);
  assert.equal(budget.stats().handlers, 0);
});

Deno.test("bytes queued to a peer that does not read count for the whole node: another peer's requests are answered busy until that connection closes", async () => {
  const budget = new WireBudget({ maxQueuedBytes: 64 * 1024 });
  const timers = new ManualTimers();
  // A peer that asks for 10 × 32 KiB and never reads: the transport takes the first replies
  // (to its 16 KiB), the rest stay queued.
  const { connection, peer } = connectionWithRawPeer(
    { timers, budget },
    { highWaterMarkBytes: 16 * 1024 },
  );
  connection.handle(GetBig, ({ bytes }) => ({ data: new Uint8Array(bytes) }));
  for (let id = 1; id <= 10; id++) {
    await peer.send({ v: 1, type: GetBig.type, id, body: { bytes: 32 * 1024 } });
  }
  await settle();
  assert.ok(connection.stats().queuedBytes > budget.maxQueuedBytes);
  assert.equal(budget.stats().queuedBytes, connection.stats().queuedBytes);
  const other = connectedPair(QUIET, { ...QUIET, budget });
  other.server.handle(Echo, ({ text, n }) => ({ text, n }));
  assert.ok(
    await refusedBusy(other.client.request(Echo, { text: "o", n: 1 })),
    "another peer is told busy while the node holds its bytes",
  );
  const closed = connection.close();
  await timers.advance(5_000); // past the close grace: the stuck write is abandoned
  await closed;
  assert.equal(budget.stats().queuedBytes, 0, "a closed connection's bytes leave the node's count");
  assert.deepEqual(await other.client.request(Echo, { text: "o", n: 2 }), { text: "o", n: 2 });
  await other.close();
});
