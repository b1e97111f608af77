/**
 * The gateway's deep-walk budget (`server/deep_reads.ts`): a bucket per client refilled with the
 * clock and by the walks that found their block, a node-wide cap of requests walking (one place per
 * request, a quarter kept from keyless clients), this machine's tools not counted.
 */
import assert from "node:assert/strict";
import { anonymousClient, LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import { DeepReads, MAX_DEEP_WALK_PLACES_PER_CLIENT } from "../../server/deep_reads.ts";
import { EdgeError } from "../../server/http_errors.ts";

function refused(start: () => unknown): EdgeError {
  try {
    start();
  } catch (error) {
    assert.ok(error instanceof EdgeError);
    assert.equal(error.code, "too_many_deep_reads");
    return error;
  }
  assert.fail("not refused");
}

Deno.test("a client's deep walks are its bucket's tokens, refilled with the clock", () => {
  let now = 0;
  const reads = new DeepReads({ burst: 2, perSecond: 0.5, maxInFlight: 10, now: () => now });
  const gate = reads.gate(anonymousClient("198.51.100.1"));
  gate()(false);
  gate()(false);
  assert.equal(refused(gate).retryAfterS, 2);
  // Another client has its own bucket.
  reads.gate(anonymousClient("198.51.100.2"))()(false);
  now += 2_000; // one token back
  gate()(false);
  refused(gate);
});

Deno.test("a deep walk that found its block gives its client's token back; one that missed spends it", () => {
  const reads = new DeepReads({ burst: 2, perSecond: 0.5, maxInFlight: 10, now: () => 0 });
  const gate = reads.gate(anonymousClient("198.51.100.4"));
  for (let i = 0; i < 100; i++) gate()(true); // a file's 100 deep blocks, each found
  const running = [gate(), gate()]; // both tokens out while their walks run
  refused(gate);
  running[0](true);
  running[1](false);
  running[1](true); // a second end gives back nothing more
  gate()(false); // the found walk's token, spent by a miss
  assert.equal(refused(gate).retryAfterS, 2);
});

Deno.test("the node's places are capped per request: one request's walks in flight hold one, given back when the last ends", () => {
  const reads = new DeepReads({ burst: 100, maxInFlight: 2, now: () => 0 });
  const client = { label: "key", keyId: "k3" }; // keyless clients hold only a share
  const one = reads.gate(client); // one request: a file read's read-ahead of 16 blocks
  const ends = Array.from({ length: 16 }, () => one());
  assert.equal(reads.inFlight, 1);
  const other = reads.gate(client);
  const second = other();
  assert.equal(reads.inFlight, 2);
  assert.equal(refused(reads.gate(client)).retryAfterS, 1);
  one(); // a request that holds a place walks on
  for (const end of ends) end(true);
  assert.equal(reads.inFlight, 2);
  second(true);
  second(true); // a second end gives back nothing more
  assert.equal(reads.inFlight, 1);
  reads.gate(client)();
  assert.equal(reads.inFlight, 2);
});

Deno.test("clients without a key hold at most 12 of the node's 16 places; the rest are kept for API keys and this machine", () => {
  const reads = new DeepReads({ now: () => 0 });
  for (let i = 0; i < 12; i++) reads.gate(anonymousClient(`198.51.100.${i}`))();
  const error = refused(reads.gate(anonymousClient("198.51.100.99")));
  assert.match(error.message, /without an API key/);
  reads.gate({ label: "key", keyId: "k1" })();
  for (let i = 0; i < 3; i++) reads.gate(LOOPBACK_CLIENT)();
  assert.equal(reads.inFlight, 16);
  refused(reads.gate(LOOPBACK_CLIENT));
});

Deno.test("one client's requests hold at most MAX_DEEP_WALK_PLACES_PER_CLIENT places; another address still walks", () => {
  const reads = new DeepReads({ now: () => 0 });
  const client = anonymousClient("198.51.100.5");
  // Misses that each wait out a peer that does not answer, within the client's burst.
  const held = Array.from({ length: MAX_DEEP_WALK_PLACES_PER_CLIENT }, () => reads.gate(client)());
  assert.match(refused(reads.gate(client)).message, /this client has 4 reads/);
  reads.gate(anonymousClient("198.51.100.6"))(); // review s80 vdeep F3: it was refused
  held[0](false);
  reads.gate(client)();
  for (let i = 0; i < 8; i++) reads.gate(LOOPBACK_CLIENT)(); // this machine: not capped
  assert.equal(reads.inFlight, 4 + 1 + 8);
});

Deno.test("this machine's tools spend no client budget", () => {
  const reads = new DeepReads({ burst: 1, maxInFlight: 10, now: () => 0 });
  const gate = reads.gate(LOOPBACK_CLIENT);
  for (let i = 0; i < 5; i++) gate()(false);
  assert.equal(reads.inFlight, 0);
});
