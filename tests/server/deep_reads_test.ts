/**
 * The gateway's deep-walk budget (`server/deep_reads.ts`): a bucket per client refilled with the
 * clock, a node-wide cap of walks in flight, this machine's tools not counted.
 */
import assert from "node:assert/strict";
import { anonymousClient, LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import { DeepReads } from "../../server/deep_reads.ts";
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
  gate()();
  gate()();
  assert.equal(refused(gate).retryAfterS, 2);
  // Another client has its own bucket.
  reads.gate(anonymousClient("198.51.100.2"))()();
  now += 2_000; // one token back
  gate()();
  refused(gate);
});

Deno.test("the node's deep walks in flight are capped, and given back as each ends", () => {
  const reads = new DeepReads({ burst: 100, maxInFlight: 2, now: () => 0 });
  const gate = reads.gate(anonymousClient("198.51.100.3"));
  const first = gate();
  const second = gate();
  assert.equal(refused(gate).retryAfterS, 1);
  assert.equal(reads.inFlight, 2);
  first();
  first(); // a second end gives back nothing more
  assert.equal(reads.inFlight, 1);
  gate();
  second();
  assert.equal(reads.inFlight, 1);
});

Deno.test("this machine's tools spend no client budget", () => {
  const reads = new DeepReads({ burst: 1, maxInFlight: 10, now: () => 0 });
  const gate = reads.gate(LOOPBACK_CLIENT);
  for (let i = 0; i < 5; i++) gate()();
  assert.equal(reads.inFlight, 0);
});
