/**
 * Review s56: a staked peer's "proof withheld" claim (`invalid / proof_unavailable`) that reaches
 * this validator before the receipt it is about. Gossip order between nodes is not guaranteed:
 * the claimant's verdict comes on its own connection, the receipt on the requester's. The claim
 * was refused (no receipt held here), so when the receipt came a moment later this validator
 * neither asked the worker nor remembered the claim: the worker that withheld its proof data was
 * paid here while the ledgers that saw the receipt first took the claim over and slashed it.
 *
 * The same held for a claim that outran its author's pledge (passed on by a peer: gossip sends
 * no pledge ahead of a verdict, as it does ahead of a fraud proof): refused for want of stake,
 * and never heard again.
 *
 * Now the claim is held (bounded, per claimant, kept across a stop) until its receipt, or its
 * author's stake, comes in, and then taken as a claim that came after them is: within the same
 * takeover budget and caps. Asserted on the ledger: statuses, balances and stake after the window.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { signVerdict, type Verdict, verdictId } from "../../protocols/verdict.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  MAX_HELD_CLAIMS,
  MAX_HELD_CLAIMS_PER_CLAIMANT,
  ValidatorMemory,
} from "../../actors/_validator_memory.ts";
import { TAKEOVER_BURST } from "../../actors/_takeover_budget.ts";
import { type Proved, STAKE, startValidator } from "./_peer_verdict_fixture.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";

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
