/**
 * Review (stop 46) of the wire between peers: each test failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { defineMessage } from "../../protocols/message_registry.ts";
import type { RemoteError } from "../../protocols/protocol_errors.ts";
import { connectedPair, Note, settle } from "./_helpers.ts";

Deno.test("a one-way message the peer refuses (no handler, bad body, busy) reaches the sender's onRemoteError: the refusal was addressed re = its id, which the sender drops as a late answer", async () => {
  const told: string[] = [];
  const Strict = defineMessage("test.strict_note", z.object({ n: z.number().int() }));
  const { client, server, close } = connectedPair(
    { onRemoteError: (e: RemoteError) => told.push(e.code) },
    { maxInboundRequests: 1 },
  );
  // Note is known to the server, but it has no handler for it.
  server.registry.register(Note);
  await client.notify(Note, { text: "nobody listens" });
  // A body the server's schema refuses (outbound bodies are not validated by the sender).
  let release!: () => void;
  server.handle(Strict, () => new Promise<void>((resolve) => (release = resolve)));
  await client.notify(Strict, { n: 1.5 });
  await settle();
  // The one inbound slot is taken by a running one-way handler: the next one is busy.
  await client.notify(Strict, { n: 1 });
  await settle();
  await client.notify(Strict, { n: 2 });
  await settle();
  assert.deepEqual(told, ["no_handler", "invalid_body", "busy"]);
  assert.equal(client.stats().pendingRequests, 0);
  release();
  await close();
});
