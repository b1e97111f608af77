/**
 * Review s59: how a request for a validator that is down waits for it (`ValidatorInbox.ask`, what
 * a peer's `validation.receipt` announcement goes through): until an actor of the validator's name
 * starts, at most `MAX_WAIT_MS` on an injected clock, within bounds per node and per peer key of
 * its own, never past the requester giving up; after a crash, asked again `MAX_HANDOVERS` times
 * in all. The ledger outcome is `review_s59_receipt_down_ledger_test.ts`'s.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ActorCrashedError } from "../../actors/errors.ts";
import {
  MAX_HANDOVERS,
  MAX_HELD,
  MAX_HELD_PER_PEER,
  MAX_WAIT_MS,
  ValidatorInbox,
} from "../../network/_validator_inbox.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

interface Ask {
  type: "ask";
  n: number;
  pad?: Uint8Array;
}

/** A validator stand-in: answers each ask with its number (or crashes on each when `crashing`). */
class Answering implements Actor<Ask> {
  constructor(readonly taken: number[], readonly crashing = false) {}

  receive(message: Ask): unknown {
    this.taken.push(message.n);
    if (this.crashing) throw new Error("crash (test)");
    return message.n;
  }
}

class Unavailable extends Error {}

const ask = (n: number, pad?: Uint8Array): Ask => ({ type: "ask", n, ...(pad ? { pad } : {}) });

/** Run `test` on a fresh system, its inbox for "v", and a manual clock. */
async function withInbox(
  name: string,
  test: (system: ActorSystem, inbox: ValidatorInbox<Ask>, timers: ManualTimers) => Promise<void>,
): Promise<void> {
  const system = new ActorSystem({ name });
  try {
    await test(system, new ValidatorInbox<Ask>(system, "v"), new ManualTimers());
  } finally {
    await system.shutdown();
  }
}

/** Whether `promise` has settled (after the microtasks now queued). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  return done;
}

Deno.test("review s59: a request that finds no validator waits for one to start and is answered by it", async () => {
  await withInbox("s59-wait-start", async (system, inbox, timers) => {
    const answer = inbox.ask<number>("p1", ask(7), {
      timers,
      unavailable: () => new Unavailable(),
    });
    assert.equal(await settled(answer), false, "answered before any validator ran");
    assert.equal(timers.pending, 1);
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal(await answer, 7);
    assert.deepEqual(taken, [7]);
    assert.equal(timers.pending, 0, "the wait's timer was left armed");
  });
});

Deno.test("review s59: a request waits MAX_WAIT_MS on its clock at most, then is answered unavailable and never asked", async () => {
  await withInbox("s59-wait-bound", async (system, inbox, timers) => {
    const answer = inbox.ask<number>("p1", ask(1), {
      timers,
      unavailable: () => new Unavailable(),
    });
    await timers.advance(MAX_WAIT_MS - 1);
    assert.equal(await settled(answer), false, "gave up before MAX_WAIT_MS");
    await timers.advance(1);
    await assert.rejects(answer, Unavailable);
    assert.equal(timers.pending, 0);
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal(
      await inbox.ask<number>("p1", ask(2), { unavailable: () => new Unavailable() }),
      2,
    );
    assert.deepEqual(taken, [2], "the request that gave up was asked all the same");
  });
});

Deno.test("review s59: a request stops waiting once its requester gives up (the signal)", async () => {
  await withInbox("s59-wait-signal", async (_system, inbox, timers) => {
    const gone = new AbortController();
    const answer = inbox.ask<number>("p1", ask(1), {
      timers,
      signal: gone.signal,
      unavailable: () => new Unavailable(),
    });
    assert.equal(await settled(answer), false);
    gone.abort();
    await assert.rejects(answer, Unavailable);
    assert.equal(timers.pending, 0);
  });
});

Deno.test("review s59: requests wait only up to a peer's share and the node's bound; past them they are answered unavailable at once, and a share frees as its waits end", async () => {
  await withInbox("s59-wait-shares", async (system, inbox, timers) => {
    const options = { timers, unavailable: () => new Unavailable() };
    const waiting: Promise<number>[] = [];
    // A peer's share in count.
    for (let n = 0; n < MAX_HELD_PER_PEER; n++) waiting.push(inbox.ask("p1", ask(n), options));
    await assert.rejects(inbox.ask("p1", ask(-1), options), Unavailable);
    // The node's bound in count: every other peer at its share fills it.
    for (let p = 2; p <= MAX_HELD / MAX_HELD_PER_PEER; p++) {
      for (let n = 0; n < MAX_HELD_PER_PEER; n++) {
        waiting.push(inbox.ask(`p${p}`, ask(p * 1000 + n), options));
      }
    }
    await assert.rejects(inbox.ask("p99", ask(-2), options), Unavailable);
    assert.equal(timers.pending, MAX_HELD);
    // A peer's share in bytes: an eighth of 4 MiB holds one 400 KiB request, not two.
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.equal((await Promise.all(waiting)).length, MAX_HELD);
    assert.equal(timers.pending, 0);
    await system.stop("v");
    const big = new Uint8Array(400 * 1024);
    const first = inbox.ask<number>("p1", ask(1, big), options);
    await assert.rejects(inbox.ask("p1", ask(2, big), options), Unavailable);
    const other = inbox.ask<number>("p2", ask(3, big), options);
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken) });
    assert.deepEqual([await first, await other], [1, 3]);
  });
});

Deno.test("review s59: a request queued at a validator that crashes is asked of its next incarnation, MAX_HANDOVERS times in all", async () => {
  await withInbox("s59-wait-crash", async (system, inbox, timers) => {
    const taken: number[] = [];
    await system.spawn<Ask>({ name: "v", factory: () => new Answering(taken, true) });
    await assert.rejects(
      inbox.ask("p1", ask(5), { timers, unavailable: () => new Unavailable() }),
      ActorCrashedError,
    );
    assert.deepEqual(taken, Array(MAX_HANDOVERS).fill(5));
    assert.equal(timers.pending, 0);
  });
});
