/**
 * Stream proofs between ledgers (`protocols/stream_proof.ts`, `actors/_stream_claims.ts`): a
 * stream claim this validator confirmed is signed and passed on; a peer's stream proof is taken
 * only from an accuser whose free stake covers the false-accusation penalty, replayed here, and
 * settled here — confirmed, the worker cut and the accuser paid its share; refuted, the accuser
 * charged; undecided, nobody — and passed on whatever the outcome, once per accuser and stream.
 */
import assert from "node:assert/strict";
import type { StreamProofHandled } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  signStreamProof,
  type StreamProof,
  verifyStreamProofSignature,
} from "../../protocols/stream_proof.ts";
import type { StreamCheckResult } from "../../proof/stream_check.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { f, HONEST_MODELS, START } from "./_validator_fixture.ts";
import { cidOf } from "../../protocols/cid.ts";
import { jobPromptText } from "../../protocols/job_input.ts";
import { honestTokens, leastLikely } from "../proof/_stream_fixtures.ts";
import {
  claimed,
  claimOf,
  honestIds,
  job,
  lyingStream,
  me,
  setUp,
  STAKE,
  startValidator,
  streamCut,
  TOKENS,
  WRONG_AT,
} from "./_stream_claim_fixture.ts";
import type { ValidatorModelSource } from "../../actors/validator_messages.ts";
import { MAX_PLEDGE_HELD_STREAM_PROOFS } from "../../actors/_stream_pledge_hold.ts";

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** The lock of the receipt each liar's stream would have been, its prompt included. */
const SLASHED = streamCut(TOKENS);
/** The peer the proofs come from. */
const PEER = "ab".repeat(32);

type Validator = Awaited<ReturnType<typeof setUp>>;

/** Hand `proof` to the validator as from {@link PEER}, and wait for its check. */
async function proved(
  { validator }: Validator,
  proof: unknown,
): Promise<{ handled: StreamProofHandled; check?: StreamCheckResult }> {
  const handled = await validator.ask<StreamProofHandled>({
    type: "stream_proof",
    proof,
    origin: PEER,
  });
  return { handled, check: await handled.result };
}

/** The stream proofs the validator told its network to pass on. */
function published(v: Validator) {
  return v.told.flatMap((m) => m.type === "publish_stream_proof" ? [m] : []);
}

Deno.test("a stream claim this validator confirms is signed by it and passed on to the network as a stream proof; a refuted one is passed on to nobody", async () => {
  const v = await setUp();
  try {
    const [liar, honest] = [Identity.generate(), Identity.generate()];
    await v.deposit(liar.publicKey);
    const { j, ids } = await lyingStream("own-confirmed", me);
    const claim = claimOf(j, liar, ids, WRONG_AT);
    assert.equal((await claimed(v.validator, claim)).check?.reason, "confirmed");
    const [sent] = published(v);
    assert.ok(sent, "published");
    assert.equal(sent.except, undefined);
    assert.deepEqual(sent.proof.claim, claim);
    assert.deepEqual(sent.proof.accuser, me.publicKey);
    assert.equal(verifyStreamProofSignature(sent.proof), true);
    // An honest stream's claim, refuted: nothing goes out.
    const h = job("own-refuted");
    const refuted = await claimed(v.validator, claimOf(h, honest, await honestIds(h), 3));
    assert.equal(refuted.check?.confirmed, false);
    assert.equal(published(v).length, 1);
    // A job that does not name this node as its requester: every ledger would refuse this node's
    // proof of it (review s69, second round): convicted here, passed on to nobody.
    const other = await lyingStream("own-not-requester");
    const stranger = Identity.generate();
    await v.deposit(stranger.publicKey);
    const local = await claimed(v.validator, claimOf(other.j, stranger, other.ids, WRONG_AT));
    assert.equal(local.check?.reason, "confirmed");
    assert.ok((await v.ledger.account(stranger.publicKey)).stake < STAKE, "convicted here");
    assert.equal(published(v).length, 1, "and passed on to nobody");
  } finally {
    await v.close();
  }
});

Deno.test("a peer's stream proof the replay confirms cuts the worker, pays its accuser (not this validator) its share, routes the worker around, and goes on to the other peers; a copy of it, or another accuser's, settles nothing more", async () => {
  const v = await setUp();
  try {
    const [liar, accuser, second] = Array.from({ length: 3 }, Identity.generate);
    for (const key of [liar, accuser, second, me]) await v.deposit(key.publicKey);
    const { j, ids } = await lyingStream("peer-confirmed", accuser);
    const claim = claimOf(j, liar, ids, WRONG_AT);
    const proof = signStreamProof(claim, accuser, START);
    const { handled, check } = await proved(v, proof);
    assert.equal(handled.queued, true, `skipped: ${handled.skipped}`);
    assert.equal(check?.reason, "confirmed");
    assert.equal((await v.ledger.account(liar.publicKey)).stake, STAKE - SLASHED);
    assert.equal(
      (await v.ledger.account(accuser.publicKey)).balance,
      SLASHED * DEFAULT_ECONOMICS.validatorRewardShare,
    );
    assert.equal((await v.ledger.account(me.publicKey)).balance, 0, "the checker earns nothing");
    assert.deepEqual(v.routedAround(), [toHex(liar.publicKey)]);
    // Passed on as it came, to every peer but the one it came from.
    assert.deepEqual(published(v), [{ type: "publish_stream_proof", proof, except: PEER }]);
    // Its copy: settled already. Another key's proof of the stream (a relay re-signing it, or the
    // liar's own second key racing the router): not the job's requester, not heard at all.
    assert.equal((await proved(v, proof)).handled.skipped, "already_settled");
    const other = signStreamProof(claim, second, START + 1);
    assert.equal((await proved(v, other)).handled.skipped, "not_requester");
    assert.equal((await v.ledger.account(liar.publicKey)).stake, STAKE - SLASHED);
    assert.equal((await v.ledger.account(second.publicKey)).balance, 0);
    assert.equal(published(v).length, 1);
    const stats = await v.ledger.stats();
    assert.deepEqual(stats.streamProofs, { confirmed: 1, refuted: 0, undecided: 0, skipped: 2 });
    assert.deepEqual(stats.streamClaims, { confirmed: 0, refuted: 0, undecided: 0 });
  } finally {
    await v.close();
  }
});

Deno.test("a peer's stream proof against an honest stream is refuted by the replay: its accuser is charged the false-accusation penalty, the worker keeps everything, the proof goes on (every ledger charges it), and the accuser is not heard again on that stream", async () => {
  const v = await setUp();
  try {
    const [honest, accuser] = [Identity.generate(), Identity.generate()];
    for (const key of [honest, accuser]) await v.deposit(key.publicKey);
    const j = job("peer-refuted", accuser);
    const ids = await honestIds(j);
    const proof = signStreamProof(claimOf(j, honest, ids, WRONG_AT), accuser, START);
    const { check } = await proved(v, proof);
    assert.equal(check?.reason, "not_reproduced");
    assert.deepEqual(await v.ledger.account(accuser.publicKey), {
      balance: 0,
      stake: STAKE - PENALTY,
      locked: 0,
    });
    assert.deepEqual(await v.ledger.account(honest.publicKey), {
      balance: 0,
      stake: STAKE,
      locked: 0,
    });
    assert.deepEqual(v.routedAround(), []);
    assert.equal(published(v).length, 1);
    // The same stream at another position, re-signed: refused before any replay.
    const again = signStreamProof(claimOf(j, honest, ids, 0), accuser, START + 5);
    assert.equal((await proved(v, again)).handled.skipped, "repeated_accusation");
    assert.equal((await v.ledger.account(accuser.publicKey)).stake, STAKE - PENALTY);
    const stats = await v.ledger.stats();
    assert.equal(stats.streamProofs.refuted, 1);
    assert.equal(stats.streamProofs.skipped, 1);
  } finally {
    await v.close();
  }
});

Deno.test("a peer's stream proof this validator cannot decide (no model here) charges nobody and convicts nobody, goes on to the peers that may hold the model, and its accuser's copy is not checked again", async () => {
  let loads = 0;
  const v = await setUp({ get: () => (loads++, Promise.resolve(undefined)) });
  try {
    const [liar, accuser] = [Identity.generate(), Identity.generate()];
    for (const key of [liar, accuser]) await v.deposit(key.publicKey);
    const { j, ids } = await lyingStream("peer-undecided", accuser);
    const proof = signStreamProof(claimOf(j, liar, ids, WRONG_AT), accuser, START);
    const { check } = await proved(v, proof);
    assert.equal(check?.inconclusive, true);
    for (const key of [liar, accuser]) {
      assert.deepEqual(await v.ledger.account(key.publicKey), {
        balance: 0,
        stake: STAKE,
        locked: 0,
      });
    }
    assert.equal(published(v).length, 1);
    const copy = signStreamProof(claimOf(j, liar, ids, WRONG_AT), accuser, START + 1);
    assert.equal((await proved(v, copy)).handled.skipped, "repeated_accusation");
    assert.equal(loads, 1, "checked once");
  } finally {
    await v.close();
  }
});

Deno.test("a peer's stream proof is refused before any replay when it costs nothing to refuse: malformed or past a frame, badly signed, signed with this node's key, its accuser the worker or not the job's requester, a worker with no stake here, or its accuser's free stake short of the penalty of it and of those it has being checked", async () => {
  // The model loads only when the test lets it: the first proof stays being checked meanwhile.
  const gate = Promise.withResolvers<void>();
  let loads = 0;
  const models: ValidatorModelSource = {
    get: async (cid) => (loads++, await gate.promise, HONEST_MODELS.get(cid)),
  };
  const v = await setUp(models);
  try {
    const [liar, poor, thrifty, sybil] = Array.from({ length: 4 }, Identity.generate);
    await v.deposit(liar.publicKey);
    await v.validator.ask({ type: "deposit", key: poor.publicKey, amount: PENALTY - 1 });
    await v.validator.ask({ type: "deposit", key: thrifty.publicKey, amount: PENALTY });
    const { j, ids } = await lyingStream("intake", thrifty);
    const claim = claimOf(j, liar, ids, WRONG_AT);
    const skipped = async (proof: unknown) => (await proved(v, proof)).handled.skipped;
    assert.equal(await skipped({ ...signStreamProof(claim, thrifty, START), v: 2 }), "malformed");
    // A job no router forwards (past one frame): refused before it is hashed for the signature.
    const huge = job("huge", thrifty);
    huge.prompt = "x".repeat(460 * 1024);
    const hugeClaim = claimOf(huge, liar, ids, WRONG_AT);
    assert.equal(await skipped(signStreamProof(hugeClaim, thrifty, START)), "malformed");
    const tampered: StreamProof = {
      ...signStreamProof(claim, thrifty, START),
      issuedAt: START + 1,
    };
    assert.equal(await skipped(tampered), "bad_signature");
    assert.equal(await skipped(signStreamProof(claim, me, START)), "own_proof");
    assert.equal(await skipped(signStreamProof(claim, liar, START)), "self_accusation");
    assert.equal(await skipped(signStreamProof(claim, poor, START)), "not_requester");
    // The accuser's own fresh key, with no stake here, signing a wrong stream for it to accuse:
    // a conviction would cost it nothing (review s69: forward passes in every ledger for free).
    const free = claimOf(j, sybil, ids, WRONG_AT);
    assert.equal(await skipped(signStreamProof(free, thrifty, START)), "unstaked_worker");
    const poorJob = await lyingStream("intake-poor", poor);
    const poorClaim = claimOf(poorJob.j, liar, poorJob.ids, WRONG_AT);
    assert.equal(await skipped(signStreamProof(poorClaim, poor, START)), "unstaked_accuser");
    // Staked at one penalty: its first proof is taken; a second, about another stream, while the
    // first is being checked, is not.
    const first = await v.validator.ask<StreamProofHandled>({
      type: "stream_proof",
      proof: signStreamProof(claim, thrifty, START),
      origin: PEER,
    });
    assert.equal(first.queued, true);
    const other = await lyingStream("intake-2", thrifty);
    const second = signStreamProof(claimOf(other.j, liar, other.ids, WRONG_AT), thrifty, START);
    assert.equal(await skipped(second), "unstaked_accuser");
    gate.resolve();
    assert.equal((await first.result)?.reason, "confirmed");
    assert.equal(loads, 1, "only the first proof was replayed");
    assert.equal(
      (await v.ledger.account(thrifty.publicKey)).balance,
      SLASHED * DEFAULT_ECONOMICS.validatorRewardShare,
    );
    // Settled, its stake backs a next accusation again.
    const third = await proved(v, second);
    assert.equal(third.check?.reason, "confirmed", `skipped: ${third.handled.skipped}`);
  } finally {
    await v.close();
  }
});

Deno.test("a peer's stream proof left undecided here still counts against its accuser's stake: an accuser staked at one penalty gets one undecided proof checked and passed on, not a stream of them", async () => {
  let loads = 0;
  const v = await setUp({ get: () => (loads++, Promise.resolve(undefined)) });
  try {
    const [liar, accuser] = [Identity.generate(), Identity.generate()];
    await v.deposit(liar.publicKey);
    await v.validator.ask({ type: "deposit", key: accuser.publicKey, amount: PENALTY });
    const first = await lyingStream("undecided-1", accuser);
    const one = await proved(v, signStreamProof(claimOf(first.j, liar, first.ids, 1), accuser, 0));
    assert.equal(one.check?.inconclusive, true);
    // Failed before review s69: each undecided proof released its backing, and an accuser at one
    // penalty had any number checked and passed on to every peer, free.
    const next = await lyingStream("undecided-2", accuser);
    const two = signStreamProof(claimOf(next.j, liar, next.ids, 1), accuser, 0);
    assert.equal((await proved(v, two)).handled.skipped, "unstaked_accuser");
    assert.equal(loads, 1);
    assert.equal(published(v).length, 1);
    assert.equal((await v.ledger.account(accuser.publicKey)).stake, PENALTY, "nobody charged");
  } finally {
    await v.close();
  }
});

Deno.test("a stream claim of a job that reads a stored input is replayed on the input's bytes, read by the validator, and passed on with them: the liar is convicted, not left undecided", async () => {
  const bytes = new TextEncoder().encode("A stored note about the river.\n");
  let reads = 0;
  const v = await setUp(
    undefined,
    (cid) => (reads++, Promise.resolve(cid === cidOf(bytes) ? bytes : new Uint8Array())),
  );
  try {
    const liar = Identity.generate();
    await v.deposit(liar.publicKey);
    const j = { ...job("stored-input", me), input: cidOf(bytes) };
    const text = jobPromptText(j, bytes);
    const ids = await honestTokens(f.honest, { ...j, prompt: text, input: undefined }, TOKENS);
    ids[WRONG_AT] = (await leastLikely(
      f.honest,
      { ...j, prompt: text, input: undefined },
      ids.slice(0, WRONG_AT),
    )).token;
    const { check } = await claimed(v.validator, claimOf(j, liar, ids, WRONG_AT));
    // Failed before: input_required, undecided, and the liar kept its stake.
    assert.equal(check?.reason, "confirmed");
    assert.equal(reads, 1);
    assert.equal((await v.ledger.account(liar.publicKey)).stake, STAKE - streamCut(TOKENS, text));
    const [sent] = published(v);
    assert.deepEqual(sent.proof.claim.input, bytes, "passed on with the bytes");
  } finally {
    await v.close();
  }
});

Deno.test("across a restart: an accusation left undecided is still remembered (its accuser's copy not checked or passed on again), and a proof taken and not checked is checked after it and passed on to every peer but the one it came from", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  try {
    const [liar, accuser, other] = Array.from({ length: 3 }, Identity.generate);
    const undecided = await lyingStream("restart-undecided", accuser);
    const pending = await lyingStream("restart-pending", other);
    // No model before the stop: the first proof is undecided; the second's check throws (its
    // model fails to load), and it waits for the next finalize tick, which the stop comes before.
    let loads = 0;
    const before = await startValidator(dir, clock, {
      get: () =>
        loads++ === 0 ? Promise.resolve(undefined) : Promise.reject(new Error("not loaded yet")),
    });
    for (const key of [liar, accuser, other]) await before.deposit(key.publicKey);
    const ask = (v: { validator: Validator["validator"] }, proof: StreamProof) =>
      v.validator.ask<StreamProofHandled>({ type: "stream_proof", proof, origin: PEER });
    const first = await ask(
      before,
      signStreamProof(claimOf(undecided.j, liar, undecided.ids, 1), accuser, 0),
    );
    assert.equal((await first.result)?.inconclusive, true);
    const second = await ask(
      before,
      signStreamProof(claimOf(pending.j, liar, pending.ids, WRONG_AT), other, 0),
    );
    assert.equal(second.queued, true);
    second.result?.catch(() => {});
    await eventually(() => loads === 2, "the second proof's check to fail once");
    await before.system.shutdown();
    const after = await startValidator(dir, clock);
    try {
      // Failed before: the restart forgot the undecided accusation, and took the copy again.
      const copy = signStreamProof(claimOf(undecided.j, liar, undecided.ids, 2), accuser, 5);
      assert.equal((await ask(after, copy)).skipped, "repeated_accusation");
      await eventually(
        async () => (await after.ledger.account(other.publicKey)).balance > 0,
        "the pending proof settled after the restart",
      );
      const sent = after.told.flatMap((m) => m.type === "publish_stream_proof" ? [m] : []);
      assert.equal(sent.length, 1);
      assert.equal(sent[0].except, PEER, "not passed back to the peer it came from");
    } finally {
      await after.system.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's stream proof that outran the worker's pledge, or its accuser's, is held for it and taken when it is recorded: the liar is cut and the accuser paid as where the pledges came first", async () => {
  const v = await setUp();
  try {
    const [liar, accuser] = [Identity.generate(), Identity.generate()];
    const { j, ids } = await lyingStream("pledge-held", accuser);
    const proof = signStreamProof(claimOf(j, liar, ids, WRONG_AT), accuser, START);
    // Neither has pledged here yet: held for the worker's pledge first.
    const first = await proved(v, proof);
    assert.deepEqual(
      { skipped: first.handled.skipped, awaiting: first.handled.awaitingPledge },
      { skipped: "unstaked_worker", awaiting: true },
    );
    // A copy while it is held: a duplicate, not a second hold.
    assert.equal((await proved(v, proof)).handled.skipped, "duplicate");
    // Failed before review s69's second round: refused for good, and the liar kept its stake.
    await v.deposit(liar.publicKey);
    const stats = () => v.ledger.stats();
    await eventually(async () => (await stats()).streamProofs.skipped === 3, "held again");
    await v.deposit(accuser.publicKey);
    await eventually(
      async () => (await v.ledger.account(liar.publicKey)).stake === STAKE - SLASHED,
      "the liar cut once both pledges came",
    );
    assert.equal(
      (await v.ledger.account(accuser.publicKey)).balance,
      SLASHED * DEFAULT_ECONOMICS.validatorRewardShare,
    );
    assert.deepEqual(published(v), [{ type: "publish_stream_proof", proof, except: PEER }]);
  } finally {
    await v.close();
  }
});

Deno.test("junk proofs naming the liar, from free keys, do not push a true proof out of the pledge hold: one not signed by the worker is refused, the hold is bounded per accuser, not per worker, and past its bound an unstaked accuser's proof goes first", async () => {
  const v = await setUp();
  try {
    const [liar, router, stranger] = Array.from({ length: 3 }, Identity.generate);
    await v.deposit(router.publicKey);
    const { j, ids } = await lyingStream("hold-flood", router);
    const proof = signStreamProof(claimOf(j, liar, ids, WRONG_AT), router, START);
    assert.equal((await proved(v, proof)).handled.awaitingPledge, true);
    // A stream the liar never signed: refused before it takes a place.
    const forged = await lyingStream("hold-forged", stranger);
    const unsigned = claimOf(forged.j, stranger, forged.ids, WRONG_AT);
    assert.equal(
      (await proved(v, signStreamProof({ ...unsigned, worker: liar.publicKey }, stranger, 0)))
        .handled.skipped,
      "bad_signature",
    );
    // As many free keys as the hold keeps in all, each the requester of a job whose (liar-signed)
    // stream it accuses.
    for (let i = 0; i < MAX_PLEDGE_HELD_STREAM_PROOFS; i++) {
      const junkKey = Identity.generate();
      const junk = await lyingStream(`hold-junk-${i}`, junkKey);
      const held = await proved(v, signStreamProof(claimOf(junk.j, liar, junk.ids, 1), junkKey, 0));
      assert.equal(held.handled.awaitingPledge, true, `junk ${i}`);
    }
    // Failed before review s69's third round (8 junk proofs: the hold kept eight per worker) and
    // fourth (64: the oldest of all went first): the true proof was pushed out, and the liar kept
    // its stake here. Now a proof whose accuser has no stake here goes first.
    await v.deposit(liar.publicKey);
    await eventually(
      async () => (await v.ledger.account(liar.publicKey)).stake === STAKE - SLASHED,
      "the liar cut by the router's proof",
    );
  } finally {
    await v.close();
  }
});
