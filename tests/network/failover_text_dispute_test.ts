/**
 * Whose word a failover's relayed-text check acts on (`network/failover.ts`, review s81 vfotext
 * F1–F5): only the worker that finishes the job answers for the `resumedText` its start said, and
 * only with its own receipt; the worker that relayed the prefix is kept off the model only once
 * the router's validator, asked to challenge that receipt whatever its coin, finds it valid; a
 * taker that says no text is not blamed for the relayer's; a forwarding router passes its
 * worker's `resumedText` on; a job every worker was lost on tells the first start's prompt count.
 *
 * Workers are in-memory connections that write scripted `inference.event`s
 * (`_scripted_worker_fixture.ts`). The router's validator is a {@link Challenger}: it records
 * what it is told (a receipt handed with the router's assignment credits its worker; a stream
 * claim asks a replay of a worker's signed stream) and answers a receipt it is asked to challenge
 * with a set verdict, as the ValidatorActor answers in-process.
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ReceiptHandled } from "../../actors/validator_messages.ts";
import { BusyRefusals } from "../../network/busy_refusals.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { NetworkInferencePort } from "../../network/network_inference_port.ts";
import type { JobAssignment } from "../../protocols/assignment.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { StreamClaim } from "../../protocols/stream_commitment.ts";
import type { ValidationResult } from "../../proof/validation.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { jobFor, type TestWorker, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { Workers } from "./_router_doubles.ts";
import {
  crashingWith,
  crashingWorker,
  endEvent,
  events,
  receiptFor,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";

/**
 * Stands in for the router's ValidatorActor: keeps every message but `stats`, and answers a
 * receipt handed with `challenge` as challenged, its `result` a verdict of `outcome` (none: it
 * answers nothing, as a `tell` gets).
 */
class Challenger implements Actor<ValidatorMessage> {
  readonly told: ValidatorMessage[] = [];
  /** The verdicts it answered with, once each settled. */
  readonly results: Promise<ValidationResult>[] = [];
  constructor(readonly outcome?: "valid" | "fraud") {}
  receive(message: ValidatorMessage): ReceiptHandled | undefined {
    if (message.type === "stats") return undefined;
    this.told.push(message);
    if (message.type !== "receipt" || message.challenge !== true) return undefined;
    if (this.outcome === undefined) return undefined;
    const result = Promise.resolve({ verdict: { outcome: this.outcome } } as ValidationResult);
    this.results.push(result);
    return { receiptId: "r", recorded: true, challenged: true, draw: 1, result };
  }
}

/** A router over `connections` whose validator is a {@link Challenger} of `outcome`. */
async function router(
  connections: Connection[],
  outcome?: "valid" | "fraud",
  queueHoldMs = Infinity,
) {
  const timers = new ManualTimers();
  const system = new ActorSystem({ name: "dispute-router" });
  const workers = new Workers(connections);
  const unresumable = new BusyRefusals({ now: () => timers.now() });
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const validator = new Challenger(outcome);
  const ref = await system.spawn<ValidatorMessage>({
    name: "router/validator",
    factory: () => validator,
  });
  const port = new NetworkInferencePort(
    network,
    ref,
    Identity.generate(),
    { tokensPerEvent: 1, timers, queueHoldMs },
    new BusyRefusals({ now: () => timers.now() }),
    unresumable,
  );
  /**
   * Every receipt handed on, and every verdict answered, has been acted on: the validator's and
   * the network's mailboxes are FIFO, so an answered ask follows every earlier message.
   */
  const settled = async () => {
    await ref.ask({ type: "stats" });
    await Promise.all(validator.results);
    await new Promise((resolve) => setTimeout(resolve, 0));
    await network.ask({ type: "worker_models" });
  };
  return { system, workers, validator, port, unresumable, timers, settled };
}

/** Who the router's validator is told to credit (checked against the assignment), and claims. */
function ledgerInput(told: ValidatorMessage[]) {
  const credited = told.flatMap((m) => {
    if (m.type !== "receipt") return [];
    assert.equal(toHex((m.assignment as JobAssignment).worker), m.origin, "assigned elsewhere");
    return [m.origin];
  });
  const claimed = told.flatMap((m) =>
    m.type === "stream_claim" ? [toHex((m.claim as StreamClaim).worker)] : []
  );
  const challenged = told.flatMap((m) =>
    m.type === "receipt" && m.challenge === true ? [m.origin] : []
  );
  return { credited, claimed, challenged };
}

/**
 * A worker that runs each job from where it is asked to resume, its start saying `said` for the
 * prefix (default: the ids' true text; null: nothing, a worker from before `resumedText`), its
 * receipt signed over the prefix's text it said and the rest of the job's.
 */
function taker(said?: string | null): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity) => {
    const k = body.resume?.length ?? 0;
    const text = said ?? TEXT.slice(0, k);
    const resumed = k === 0 ? {} : said === null ? { resumedFrom: k } : {
      resumedFrom: k,
      resumedText: text,
    };
    const list: InferenceEvent[] = [start(body.job, resumed)];
    for (let i = k; i < TOKENS; i++) list.push(wireToken(i));
    const signed = said === null ? TEXT : text + TEXT.slice(k);
    list.push(endEvent(body.job, TOKENS - k, receiptFor(body.job, identity, signed)));
    return events(list);
  });
}

// Failed before the fix: B's word, set at its start, stayed after B was lost; C's receipt was
// taken as backing it: A kept off, the client denied C's receipt and told its true text diverged.
Deno.test("failover text dispute: a taker that says made-up prefix text and is lost before its receipt leaves no word behind: the next taker's receipt is the client's, and the honest first worker is not kept off", async () => {
  const a = await crashingWorker([wireToken(0), wireToken(1)]);
  const b = await crashingWith({ resumedFrom: 2, resumedText: "XY" }, [
    wireToken(2),
    wireToken(3),
  ]);
  const c = await taker();
  const r = await router([a.toWorker, b.toWorker, c.toWorker], "valid");
  try {
    const handle = await r.port.submit(jobFor("dispute-lost-taker"));
    let text = "";
    let n = 0;
    for await (const t of handle.tokens) {
      text += t.text;
      a.read(++n);
      b.read(n - 2);
    }
    const summary = await handle.done;
    await r.settled();
    assert.deepEqual(c.submissions[0].resume, [97, 98, 99, 100]);
    assert.equal(text, TEXT);
    assert.equal(summary.finishReason, "length");
    assert.equal(summary.error, undefined);
    assert.ok(summary.receipt !== undefined, "the client did not get C's receipt");
    assert.deepEqual(ledgerInput(r.validator.told), {
      credited: [c.key],
      claimed: [],
      challenged: [],
    });
    assert.equal(r.workers.avoided.has(a.key), false, "the honest first worker was kept off");
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: as above, with B hedged away after its start alone.
Deno.test("failover text dispute: a taker that only says made-up prefix text and holds the job until a hedge takes it over leaves no word behind", async () => {
  const a = await crashingWorker([wireToken(0), wireToken(1)]);
  const b = await scriptedWorker((body) => {
    const k = body.resume?.length ?? 0;
    return events([start(body.job, k > 0 ? { resumedFrom: k, resumedText: "XY" } : {})]);
  });
  const c = await taker();
  const r = await router([a.toWorker, b.toWorker, c.toWorker], "valid", 1_000);
  try {
    const handle = await r.port.submit(jobFor("dispute-hedged-taker"));
    let text = "";
    let n = 0;
    let finished = false;
    const reading = (async () => {
      for await (const t of handle.tokens) {
        text += t.text;
        a.read(++n);
      }
    })().finally(() => finished = true);
    for (let i = 0; i < 50 && !finished; i++) await r.timers.advance(1_000);
    await reading;
    const summary = await handle.done;
    await r.settled();
    assert.equal(b.submissions.length, 1, "B took the job over");
    assert.deepEqual(c.submissions[0].resume, [97, 98], "C was the hedge");
    assert.equal(text, TEXT);
    assert.equal(summary.error, undefined);
    assert.ok(summary.receipt !== undefined, "the client did not get C's receipt");
    assert.deepEqual(ledgerInput(r.validator.told).credited, [c.key]);
    assert.equal(r.workers.avoided.has(a.key), false, "the honest first worker was kept off");
  } finally {
    await a.close();
    await b.close();
    await c.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: A was kept off as B's receipt checked, on B's word, unchallenged.
Deno.test("failover text dispute: a taker that makes up the prefix's text and signs it has its receipt challenged for sure; found fraud, the honest first worker is not kept off, and the client is told its text is disputed", async () => {
  const a = await crashingWorker([wireToken(0), wireToken(1)]);
  const liar = await taker("XY");
  const r = await router([a.toWorker, liar.toWorker], "fraud");
  try {
    const got = await run(r.port, jobFor("dispute-lying-taker"), a);
    await r.settled();
    assert.equal(got.text, TEXT);
    // Told, without the receipt (it signs "XYcdef", not the client's text), whose word it is.
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "delivered_tokens_diverged");
    assert.match(got.summary.error?.message ?? "", /from token 0 on/);
    assert.match(got.summary.error?.message ?? "", new RegExp(liar.key.slice(0, 16)));
    assert.match(got.summary.error?.message ?? "", /challenged/);
    // The ledger: its receipt is handed on assigned as any (the challenge's fraud verdict
    // slashes it there, unpaid), and challenged whatever the coin; no claim against anyone.
    assert.deepEqual(ledgerInput(r.validator.told), {
      credited: [liar.key],
      claimed: [],
      challenged: [liar.key],
    });
    assert.equal(r.validator.results.length, 1, "the receipt was not challenged");
    assert.equal(r.workers.avoided.has(a.key), false, "honest A kept off on the liar's word");
  } finally {
    await a.close();
    await liar.close();
    await r.system.shutdown();
  }
});

Deno.test("failover text dispute: after a relayer that sent made-up text for the right ids, the honest taker's receipt is challenged for sure; found valid, the relayer is kept off the model and paid nothing, the taker credited", async () => {
  const relayer = await crashingWorker([wireToken(0, "X"), wireToken(1, "Y")]);
  const good = await taker();
  const r = await router([relayer.toWorker, good.toWorker], "valid");
  try {
    const got = await run(r.port, jobFor("dispute-valid"), relayer);
    await r.settled();
    assert.equal(got.text, "XYcdef");
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "delivered_tokens_diverged");
    assert.match(got.summary.error?.message ?? "", new RegExp(relayer.key.slice(0, 16)));
    assert.deepEqual(ledgerInput(r.validator.told), {
      credited: [good.key],
      claimed: [],
      challenged: [good.key],
    });
    assert.ok(r.workers.avoided.has(relayer.key), "the relayer was not kept off once confirmed");
    assert.equal(r.workers.avoided.has(good.key), false, "the taker was kept off");
    assert.equal(r.unresumable.askedLast().includes(good.key), false, "the taker asked last");
  } finally {
    await relayer.close();
    await good.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: a stream claim was filed against the older taker and it was asked last.
Deno.test("failover text dispute: a taker that says no prefix text, whose receipt fails over the relayer's made-up text alone, is withheld but neither claimed against nor asked last", async () => {
  const relayer = await crashingWorker([wireToken(0, "X"), wireToken(1, "Y")]);
  const older = await taker(null);
  const r = await router([relayer.toWorker, older.toWorker], "valid");
  try {
    const got = await run(r.port, jobFor("dispute-older-taker"), relayer);
    await r.settled();
    assert.deepEqual(older.submissions[0].resume, [97, 98]);
    assert.equal(got.text, "XYcdef");
    // Its receipt (over "abcdef") is not over the client's text: nobody is paid.
    assert.equal(got.summary.receipt, undefined);
    assert.equal(got.summary.error?.code, "receipt_rejected");
    assert.deepEqual(ledgerInput(r.validator.told), { credited: [], claimed: [], challenged: [] });
    assert.equal(r.unresumable.askedLast().includes(older.key), false, "the taker asked last");
    assert.equal(r.workers.avoided.has(older.key), false, "the taker was kept off");
  } finally {
    await relayer.close();
    await older.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: the router's handle had no `resumedText`.
Deno.test("failover text dispute: a router resuming a job after its requester's prefix passes its worker's resumedText on", async () => {
  const w = await taker();
  const r = await router([w.toWorker]);
  try {
    const handle = await r.port.submit(jobFor("dispute-forwarded"), { resume: [97, 98] });
    let text = "";
    for await (const t of handle.tokens) text += t.text;
    await handle.done;
    assert.deepEqual(w.submissions[0].resume, [97, 98]);
    assert.equal(text, "cdef");
    assert.equal(handle.resumedText, "ab");
  } finally {
    await w.close();
    await r.system.shutdown();
  }
});

// Failed before the fix: the client was told the lost taker's unsigned 5,000 (held to the
// prompt's bound: 481).
Deno.test("failover text dispute: a job that lost every worker it ran on tells its client the first start's prompt count, as its handle does, not the last lost worker's", async () => {
  const a = await crashingWorker([wireToken(0), wireToken(1)]);
  const b = await crashingWith({ resumedFrom: 2, resumedText: "ab", promptTokens: 5_000 }, [
    wireToken(2),
    wireToken(3),
  ]);
  const r = await router([a.toWorker, b.toWorker]);
  try {
    const handle = await r.port.submit({
      ...jobFor("dispute-two-losses"),
      prompt: "hello world ".repeat(40),
    });
    let n = 0;
    try {
      for await (const _ of handle.tokens) {
        a.read(++n);
        b.read(n - 2);
      }
    } catch { /* no worker left to resume it */ }
    const summary = await handle.done;
    assert.equal(n, 4);
    assert.equal(summary.finishReason, "error");
    assert.equal(ledgerInput(r.validator.told).credited.length, 0);
    assert.equal(handle.promptTokens, 1);
    assert.equal(summary.usage.promptTokens, handle.promptTokens);
  } finally {
    await a.close();
    await b.close();
    await r.system.shutdown();
  }
});
