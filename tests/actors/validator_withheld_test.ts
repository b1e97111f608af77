/**
 * A staked peer's "proof withheld" claim (`invalid / proof_unavailable`) is taken over (the
 * validator asks the worker itself): also by a validator that lacks the model, also when the claim
 * reaches it before the receipt or its author's pledge, and when the claim's evidence comes after
 * the claim. What each ledger books, asserted on balances, stake and status after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import { signVerdict, type Verdict, verdictId } from "../../protocols/verdict.ts";
import {
  MAX_HELD_CLAIMS,
  MAX_HELD_CLAIMS_PER_CLAIMANT,
  ValidatorMemory,
} from "../../actors/_validator_memory.ts";
import { TAKEOVER_BURST } from "../../actors/_takeover_budget.ts";
import { floodReceipts, type Proved, STAKE, startValidator } from "./_peer_verdict_fixture.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";

// -------------------------------------------------------------------------------------------------
// A staked peer's "proof withheld" verdict (`invalid / proof_unavailable`) about another
// worker's receipt: nobody can prove it to a third party, so the validator that hears it asks
// the worker itself (takes the challenge over). What each ledger books, asserted on balances,
// stake and status after the window:
//
// - a validator that lacks the model still asks: the claim is about availability, not about the
//   inference. Served (signed, opens the commitment): cleared (this ledger credits nothing on
//   a model it cannot get, claim or not; those that hold it pay); withheld here too: slashed;
//   served but not opening: a `commitment` fraud proof, slashed. It used to end `inconclusive`
//   and leave the honest job unpaid on one free, false peer verdict.
// - one takeover per receipt, and one verdict per accuser per receipt: the same claim re-signed
//   with a new timestamp is neither recorded nor passed on, and opens no second challenge. It
//   used to open a challenge (a proof fetch, a forward pass) and a gossip round each time, and
//   once the worker had let its proof data go, an honest, once-cleared receipt was slashed.
//
// The validator's own coin never fires here (p = 0): only the peer's verdict makes it ask.

const NETWORK = "test/network";
const WORKER_STAKE = 1_000_000;
const ACCUSER_STAKE = 1_000;

async function setup(options: { model: boolean }) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "withheld" });
  const told: NetworkMessage[] = [];
  /** What the worker serves per receipt id (absent: withheld). */
  const served = new Map<string, ServedProof>();
  let fetches = 0;
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const accuser = Identity.generate();
  await system.spawn<NetworkMessage>({ name: NETWORK, factory: () => new RecordingNetwork(told) });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    network: NETWORK,
    models: {
      get: (cid) =>
        Promise.resolve(options.model && cid === f.honest.info.cid ? f.honest : undefined),
    },
    source: {
      proof: (r) => {
        fetches++;
        return Promise.resolve(served.get(receiptId(r)));
      },
    },
  });
  await validator.ask({ type: "deposit", key: worker.publicKey, amount: WORKER_STAKE });
  await validator.ask({ type: "deposit", key: accuser.publicKey, amount: ACCUSER_STAKE });
  // Its own fraud proofs are settled only with stake of its own behind them.
  await validator.ask({ type: "deposit", key: me.publicKey, amount: ACCUSER_STAKE });
  const ledger = ledgerReads(() => validator, clock);
  const record = async (id: string) => (await ledger.record(id))!;
  return {
    validator,
    told,
    served,
    worker,
    accuser,
    fetches: () => fetches,
    stats: ledger.stats,
    /** The worker's honest, assigned receipt, announced by a peer; it serves its proof. */
    async prove(nonce: string) {
      const job = textJob(requester, nonce, { prompt: "The validator" });
      const proved = await proveOn(job, worker);
      const id = receiptId(proved.receipt);
      served.set(id, signServedProof(id, proved.proof, worker));
      const handled = await announceAssigned(validator, proved.receipt, job, requester, {
        origin: "ee".repeat(32),
      });
      assert.equal(handled.recorded, true);
      assert.equal(handled.challenged, false);
      return { id, proof: proved.proof };
    },
    /** `by`'s signed "proof withheld" claim about `id`, sent by `by` itself. */
    accuse(id: string, issuedAt: number, by = accuser) {
      const verdict = withheldVerdict(id, worker.publicKey, issuedAt, by, {});
      return validator.ask<string | undefined>({
        type: "verdict",
        verdict,
        origin: toHex(by.publicKey),
      });
    },
    /** Taken-over challenges (and their fraud proofs) run off the mailbox: wait for them. */
    drained: ledger.drained,
    status: async (id: string) => (await record(id)).status,
    record,
    account: ledger.account,
    closeWindow: ledger.closeWindow,
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("without the model, a peer's 'proof withheld' claim is still checked: served is cleared, withheld or not opening is slashed", async () => {
  const t = await setup({ model: false });
  try {
    const honest = await t.prove("honest");
    const withheld = await t.prove("withheld");
    const garbled = await t.prove("garbled");
    t.served.delete(withheld.id);
    // Data the worker signs as what it serves, but not what it committed to.
    const tokens = garbled.proof.tokens.slice();
    tokens[0] ^= 1;
    t.served.set(
      garbled.id,
      signServedProof(garbled.id, { ...garbled.proof, tokens }, t.worker),
    );
    const honestRecord = await t.record(honest.id);
    const withheldRecord = await t.record(withheld.id);
    const garbledRecord = await t.record(garbled.id);
    for (const { id } of [honest, withheld, garbled]) assert.ok(await t.accuse(id, START));
    await t.drained();
    assert.equal((await t.stats()).challenged, 3);
    await t.closeWindow();
    assert.equal(await t.status(honest.id), "final", "the honest job is cleared, not slashed");
    assert.equal(await t.status(withheld.id), "fraud");
    assert.equal(await t.status(garbled.id), "fraud");
    // Without the model this ledger credits none of them (it could check none).
    assert.equal(honestRecord.credit, 0);
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - withheldRecord.locked - garbledRecord.locked,
      locked: 0,
    });
    // The accuser's claim cost it nothing (it cannot be proven false either way).
    assert.equal((await t.account(t.accuser.publicKey)).stake, ACCUSER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("one takeover per receipt: the same claim re-signed with new timestamps is neither recorded nor passed on, and no claim asks the worker twice", async () => {
  const t = await setup({ model: true });
  try {
    const { id } = await t.prove("replayed");
    const record = await t.record(id);
    assert.ok(await t.accuse(id, START));
    await t.drained();
    assert.equal(await t.status(id), "pending", "served and valid: cleared");
    assert.equal(t.fetches(), 1);
    // The worker has since let its proof data go (served once; it keeps it only so long).
    t.served.delete(id);
    const answers = [];
    for (let i = 1; i <= 5; i++) answers.push(await t.accuse(id, START + i));
    // Another staked accuser's claim is news (recorded, passed on) but asks nobody again:
    // this validator has had its answer from the worker.
    const other = Identity.generate();
    await t.validator.ask({ type: "deposit", key: other.publicKey, amount: ACCUSER_STAKE });
    assert.ok(await t.accuse(id, START + 9, other));
    await t.drained();
    await t.closeWindow();
    assert.equal(await t.status(id), "final", "the honest, cleared job is paid");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: record.credit,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.deepEqual(answers, [undefined, undefined, undefined, undefined, undefined]);
    assert.equal((await t.stats()).challenged, 1);
    assert.equal(t.fetches(), 1);
    const passedOn = t.told.filter((m) =>
      m.type === "publish_verdict" && m.except === toHex(t.accuser.publicKey)
    );
    assert.equal(passedOn.length, 1, "the accuser's claim went on once");
    assert.ok(
      t.told.some((m) => m.type === "publish_verdict" && m.except === toHex(other.publicKey)),
    );
  } finally {
    await t.close();
  }
});

// -------------------------------------------------------------------------------------------------
// A staked peer's "proof withheld" claim (`invalid / proof_unavailable`) that reaches this
// validator before the receipt it is about. Gossip order between nodes is not guaranteed: the
// claimant's verdict comes on its own connection, the receipt on the requester's. The claim was
// refused (no receipt held here), so when the receipt came a moment later this validator neither
// asked the worker nor remembered the claim: the worker that withheld its proof data was paid here
// while the ledgers that saw the receipt first took the claim over and slashed it.
//
// The same held for a claim that outran its author's pledge (passed on by a peer: gossip sends
// no pledge ahead of a verdict, as it does ahead of a fraud proof): refused for want of stake,
// and never heard again.
//
// Now the claim is held (bounded, per claimant, kept across a stop) until its receipt, or its
// author's stake, comes in, and then taken as a claim that came after them is: within the same
// takeover budget and caps. Asserted on the ledger: statuses, balances and stake after the window.

/** A "proof withheld" claim by `by` about a receipt id that never comes. */
function claimAbout(subjectId: string, by: Identity, issuedAt = 1): Verdict {
  return signVerdict({
    v: 1,
    subject: "inference",
    subjectId,
    target: new Uint8Array(32),
    outcome: "invalid",
    reason: "proof_unavailable",
    issuedAt,
  }, by);
}

/** A random receipt id (hex). */
function randomId(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

Deno.test("a withheld claim that arrives before its receipt is taken over when the receipt comes: the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id); // it withholds its proof data from everyone
    // The claim outruns the receipt.
    await t.claimWithheld(withheld, claimant);
    const handled = await t.announce(withheld);
    assert.equal(handled.recorded, true);
    assert.equal(handled.challenged, false, "the coin never fires (p = 0)");
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "the early claim was taken over");
    assert.equal(t.fetches(), 1, "this validator asked the worker itself");
    // The claim is passed on once its receipt is held here (as a claim that came after).
    assert.ok(
      t.published().some((v) =>
        v.validator.length === 32 && toHex(v.validator) === toHex(claimant.publicKey)
      ),
      "the claim was passed on",
    );
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
    // A claim about availability costs its author nothing either way.
    assert.equal((await t.account(claimant.publicKey)).stake, STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("an early withheld claim about an honest worker's receipt is checked like a late one: served here, cleared and paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const honest = await t.prove(worker);
    await t.claimWithheld(honest, claimant);
    assert.equal((await t.announce(honest)).recorded, true);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1);
    assert.equal(t.fetches(), 1);
    const credit = (await t.record(honest.id))!.credit;
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a flood of early claims about receipts that never come spends no takeover budget and does not push out an honest claimant's early claim", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const flooders = [await t.staked(), await t.staked()];
    const honest = await t.staked();
    // The honest claimant's claim comes first, then the flood (more than the memory holds).
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id);
    await t.claimWithheld(withheld, honest);
    for (let i = 0; i < MAX_HELD_CLAIMS + 50; i++) {
      await t.tell(claimAbout(randomId(), flooders[i % flooders.length], i));
    }
    assert.equal((await t.stats()).challenged, 0, "nothing to take over yet");
    // The receipt comes: the honest claim was kept and is taken over; the worker is slashed.
    await t.announce(withheld);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1);
    // The flood spent nothing: the whole burst (less the one just taken) is left for claims
    // about receipts that do come, each from another claimant (one claimant holds at most 4).
    const later: Proved[] = [];
    for (let i = 0; i < TAKEOVER_BURST - 1; i++) {
      const proved = await t.prove(worker);
      t.served.delete(proved.id);
      await t.announce(proved);
      await t.claimWithheld(proved, await t.staked());
      later.push(proved);
    }
    await t.drained();
    assert.equal((await t.stats()).challenged, TAKEOVER_BURST);
    await t.closeWindow();
    for (const { id } of [withheld, ...later]) {
      assert.equal((await t.record(id))!.status, "fraud", `receipt ${id.slice(0, 8)} slashed`);
    }
    assert.equal((await t.account(worker.publicKey)).balance, 0);
  } finally {
    await t.close();
  }
});

Deno.test("claims held for their receipt are bounded: per claimant (its newest push out its oldest) and in all (the claimant holding the most loses its oldest)", () => {
  const memory = new ValidatorMemory();
  const flooder = Identity.generate();
  const first = claimAbout(randomId(), flooder, 0);
  memory.holdClaim(first, "aa", true);
  for (let i = 1; i <= 3 * MAX_HELD_CLAIMS_PER_CLAIMANT; i++) {
    memory.holdClaim(claimAbout(randomId(), flooder, i), "aa", true);
  }
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS_PER_CLAIMANT);
  assert.equal(memory.takeHeldClaims(first.subjectId).length, 0, "its oldest was pushed out");
  // Many claimants, one claim each, past the bound in all: the flooder loses its own first.
  const honest = Identity.generate();
  const kept = claimAbout(randomId(), honest);
  memory.holdClaim(kept, "bb", true);
  // Fewer claimants than the space: each pushes out one of the flooder's (it holds the most).
  for (let i = 0; i < MAX_HELD_CLAIMS - 3; i++) {
    memory.holdClaim(claimAbout(randomId(), Identity.generate()), "cc", true);
  }
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
  // One claim per claimant and receipt: a re-signed copy holds nothing more.
  const again = claimAbout(kept.subjectId, honest, 99);
  memory.holdClaim(again, "bb", true);
  const taken = memory.takeHeldClaims(kept.subjectId);
  assert.deepEqual(taken.map(({ verdict }) => verdictId(verdict)), [verdictId(kept)]);
  assert.equal(memory.takeHeldClaims(kept.subjectId).length, 0, "taken once");
  // Claims from keys with no stake here go first: a flood of them from fresh keys (free) does
  // not push out a staked claimant's.
  const staked = claimAbout(randomId(), honest);
  memory.holdClaim(staked, "bb", true);
  for (let i = 0; i < 2 * MAX_HELD_CLAIMS; i++) {
    memory.holdClaim(claimAbout(randomId(), Identity.generate()), "dd", false);
  }
  assert.equal(memory.heldClaims().length, MAX_HELD_CLAIMS);
  assert.equal(memory.takeHeldClaims(staked.subjectId).length, 1, "the staked claim is kept");
});

Deno.test("a claim held for its receipt is kept across a restart: the receipt that comes after the restart is taken over, the withholding worker slashed", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const worker = Identity.generate();
    const claimant = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, "early-claim-restart");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    let fetches = 0;
    const start = async (system: ActorSystem) =>
      await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        // The worker withholds its proof data from everyone.
        source: { proof: () => (fetches++, Promise.resolve(undefined)) },
      });
    const before = new ActorSystem({ name: "s56-early-claim-before" });
    try {
      const validator = await start(before);
      for (const key of [worker, claimant]) {
        await validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      // The claim outruns the receipt; the validator stops before the receipt comes.
      const claim = withheldVerdict(id, worker.publicKey, START, claimant);
      await validator.ask({ type: "verdict", verdict: claim, origin: toHex(claimant.publicKey) });
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s56-early-claim-after" });
    try {
      const validator = await start(after);
      const ledger = ledgerReads(() => validator, clock);
      const handled = await announceAssigned(validator, receipt, job, requester);
      assert.equal(handled.recorded, true);
      assert.equal(handled.challenged, false);
      await ledger.drained();
      assert.equal((await ledger.stats()).challenged, 1, "the kept claim was taken over");
      assert.equal(fetches, 1);
      const locked = (await ledger.record(id))!.locked;
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "fraud");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: 0,
        stake: STAKE - locked,
        locked: 0,
      });
    } finally {
      await after.shutdown();
    }
  });
});

Deno.test("a withheld claim that arrives before its author's pledge is taken over when the pledge comes: the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = Identity.generate(); // its pledge has not reached this ledger yet
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id);
    assert.equal((await t.announce(withheld)).recorded, true);
    // The claim, passed on by a peer, outruns its author's pledge.
    await t.claimWithheld(withheld, claimant);
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(claimant, STAKE, 1) });
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "taken over once its author's stake is here");
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a withheld claim about a receipt waiting here for its worker's pledge is taken over once the pledge lets the receipt in", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = Identity.generate(); // its pledge comes last
    const claimant = await t.staked();
    const withheld = await t.prove(worker);
    t.served.delete(withheld.id);
    const handled = await t.announce(withheld);
    assert.equal(handled.refusal, "insufficient_stake", "waits for the worker's pledge");
    await t.claimWithheld(withheld, claimant);
    await t.validator.ask({ type: "pledge", pledge: signStakePledge(worker, STAKE, 1) });
    // The receipt, then the claim, go through the intake again after the pledge.
    await eventually(async () => (await t.stats()).challenged === 1, "the claim to be taken over");
    await t.drained();
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

// -------------------------------------------------------------------------------------------------
// A staked peer's "proof withheld" claim (`invalid / proof_unavailable`) is taken over here only
// while this validator remembers the receipt and its job (`_validator_memory.ts`), so a claim
// travels after its evidence (`ClaimEvidence`, review s57), and a copy of a receipt recorded here,
// pending and forgotten, is remembered again. But a claim can reach a ledger first without its
// evidence: passed on by a node where the receipt is settled or forgotten (it has nothing to send
// ahead of it), or a fault a peer's start applied, sent in its catch-up (`_catch_up.ts`). Recorded
// here without a takeover, a later copy of it with the evidence (or the evidence alone) was the
// same verdict: not taken over again. The worker that withheld from everyone was paid in that
// ledger, slashed in the claimant's.
//
// Now a claim recorded here while its receipt is forgotten (pending here, inside its window, never
// challenged here) is held for its evidence with the other held claims (bounded, kept across a
// stop), and taken over when a copy of the receipt is remembered again: within the same budget
// and caps, once per receipt.
//
// Asserted on the ledger: statuses, balances and stake after the window.

type Fixture = Awaited<ReturnType<typeof startValidator>>;

/** `claim` arrives from `via` (a node that passed it on), with nothing ahead of it. */
function relayed(t: Fixture, claim: Verdict, via: string = "cd".repeat(32)) {
  return t.validator.ask<string | undefined>({ type: "verdict", verdict: claim, origin: via });
}

Deno.test("a withheld claim that came first without its receipt (forgotten here), then the receipt: taken over, and the worker that withholds here too is slashed, not paid", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const withheld = await t.recordForgotten(worker, false, "s58");
    const claim = t.verdict(withheld, claimant, "invalid", "proof_unavailable");
    // First without its evidence (passed on by a node that had settled or forgotten it).
    assert.notEqual(await relayed(t, claim), undefined, "recorded");
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "forgotten here: nothing to take it over on");
    // More stake for the claimant meanwhile: the claims held for their author's stake are taken
    // again, not this one (recorded already: the verdict intake would drop it as known).
    await t.validator.ask({ type: "deposit", key: claimant.publicKey, amount: 1 });
    // Then the receipt and its job, and the same claim behind them (from its author).
    assert.equal((await t.resend(withheld, claimant)).recorded, true);
    await t.tell(claim);
    await t.drained();
    const { challenged } = await t.stats();
    const record = (await t.record(withheld.id))!;
    await t.closeWindow();
    // The ledger first: who is paid.
    assert.equal((await t.record(withheld.id))!.status, "fraud", "slashed, not paid");
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: 0,
      stake: STAKE - record.locked,
      locked: 0,
    });
    assert.equal(challenged, 1, "the claim was taken over once its receipt came");
    assert.equal(t.fetches(), 1, "this validator asked the worker itself, once");
    assert.equal((await t.account(claimant.publicKey)).stake, STAKE + 1, "the claim cost nothing");
  } finally {
    await t.close();
  }
});

Deno.test("an honest worker's forgotten receipt, claimed by two before it came back twice: taken over once, served, cleared and paid once", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const [first, second] = [await t.staked(), await t.staked()];
    const honest = await t.recordForgotten(worker, true, "s58");
    const credit = (await t.record(honest.id))!.credit;
    assert.ok(credit > 0);
    const claims = [first, second].map((by) =>
      t.verdict(honest, by, "invalid", "proof_unavailable")
    );
    for (const claim of claims) await relayed(t, claim);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0);
    await t.resend(honest, first);
    await t.resend(honest, second);
    for (const claim of claims) await t.tell(claim);
    await t.drained();
    assert.equal((await t.stats()).challenged, 1, "taken over once");
    assert.equal(t.fetches(), 1);
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    assert.deepEqual(
      await t.account(worker.publicKey),
      { balance: credit, stake: STAKE, locked: 0 },
      "paid once, however many claims came first",
    );
  } finally {
    await t.close();
  }
});

Deno.test("a claim recorded before its receipt was no longer pending is not taken over when a copy comes", async () => {
  const t = await startValidator({ p: 0, model: true });
  try {
    const worker = await t.staked();
    const claimant = await t.staked();
    const honest = await t.recordForgotten(worker, false, "s58");
    const credit = (await t.record(honest.id))!.credit;
    await relayed(t, t.verdict(honest, claimant, "invalid", "proof_unavailable"));
    await t.closeWindow();
    assert.equal((await t.record(honest.id))!.status, "final");
    await t.resend(honest, claimant);
    await t.drained();
    assert.equal((await t.stats()).challenged, 0, "past its window: nothing to take over");
    assert.equal(t.fetches(), 0);
    assert.deepEqual(await t.account(worker.publicKey), {
      balance: credit,
      stake: STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("a claim recorded without its evidence is kept across a restart: the receipt that comes after it is taken over, and the worker that withholds is slashed", async () => {
  await inLedgerDir(async (ledgerDir) => {
    const clock = { t: START };
    const me = Identity.generate();
    const [worker, requester, claimant, flooder] = [
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
      Identity.generate(),
    ];
    const job = textJob(requester, "s58-restart");
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    let fetches = 0;
    const start = (system: ActorSystem) =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
        // The worker withholds its proof data.
        source: { proof: () => (fetches++, Promise.resolve(undefined)) },
      });
    const claim = withheldVerdict(id, worker.publicKey, clock.t, claimant);
    const before = new ActorSystem({ name: "s58-restart-before" });
    try {
      const v = await start(before);
      for (const key of [me, worker, claimant, flooder]) {
        await v.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
      }
      assert.equal((await announceAssigned(v, receipt, job, requester)).recorded, true);
      await floodReceipts(
        v,
        flooder,
        (await proveOn(textJob(flooder, "s58-shape"), flooder)).receipt,
        "s58",
      );
      await v.ask({ type: "verdict", verdict: claim, origin: "cd".repeat(32) });
      await ledgerReads(() => v, clock).drained();
      assert.equal(fetches, 0, "forgotten here: not taken over");
    } finally {
      await before.shutdown();
    }
    const after = new ActorSystem({ name: "s58-restart-after" });
    try {
      const v = await start(after);
      const ledger = ledgerReads(() => v, clock);
      const record = (await ledger.record(id))!;
      assert.equal(record.status, "pending");
      await v.ask({ type: "receipt", receipt, job, origin: toHex(claimant.publicKey) });
      await v.ask({ type: "verdict", verdict: claim, origin: toHex(claimant.publicKey) });
      await ledger.drained();
      assert.equal(fetches, 1, "taken over after the restart, once");
      await ledger.closeWindow();
      assert.equal((await ledger.record(id))!.status, "fraud", "slashed, not paid");
      assert.deepEqual(await ledger.account(worker.publicKey), {
        balance: 0,
        stake: STAKE - record.locked,
        locked: 0,
      });
    } finally {
      await after.shutdown();
    }
  });
});
