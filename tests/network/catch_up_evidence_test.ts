/**
 * What a connecting peer's catch-up (`network/catch_up.ts`, `actors/_catch_up.ts`) sends ahead of
 * the evidence it carries: a conviction's accuser pledge, a "proof withheld" fault's receipt and job,
 * and a claim a node took over.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { Identity } from "../../protocols/identity.ts";
import { inputHashOf, type Receipt, receiptId, signReceipt } from "../../protocols/receipt.ts";
import { PLEDGES_PUSHED_ON_CONNECT, signStakePledge } from "../../protocols/stake_pledge.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  latePeerCatchesUp,
  type LedgerNode,
  type LedgerSetting,
  spawnLedgerNode,
  spawnValidatorAndLatePeer,
  withholds,
} from "./_ledger_node.ts";
import {
  CatchUp,
  MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES,
  MAX_CATCH_UP_VERDICTS,
} from "../../actors/_catch_up.ts";
import type { CatchUpItem, ChallengeSource } from "../../actors/validator_messages.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../../protocols/job.ts";
import { floodAssignedReceipts } from "../actors/_peer_verdict_fixture.ts";
import { toHex } from "../../protocols/hash.ts";

// ---- a conviction's accuser pledge ----------------------------------------------------------------
// A connecting peer's catch-up (`network/catch_up.ts`) sends the convictions this node confirmed, a
// peer's among them, but not their accusers' pledges. Gossip sends a proof's accuser pledge just
// ahead of it (`PledgeSync.sendAhead`); the catch-up relies on the pledges pushed on connect, which
// are at most `PLEDGES_PUSHED_ON_CONNECT` (47) of the keys active here, the newest first. A ledger
// that was offline while the accuser's pledge was gossiped, in a network with more active keys than
// that, holds the proof for a pledge that never comes (`_pledge_held_proofs.ts`), and pays the
// cheat every other ledger slashed.

const STAKE = 10_000;

Deno.test("a peer's conviction sent in the catch-up reaches a ledger that lacks its accuser's pledge: the cheat is slashed there too", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "s42-catch-up-pledge" });
  try {
    const [v, worker, requester] = Array.from({ length: 3 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const proved = await proveOn(job, worker, f.otherSeed); // a cheat: another model
    const id = receiptId(proved.receipt);
    // V catches the cheat on its own (connected to no one here): its fraud proof.
    const caught = Promise.withResolvers<FraudProof>();
    const vValidator = await spawnValidator(system, {
      identity: v,
      ledgerDir: `${dir}/v`,
      clock,
      models: HONEST_MODELS,
      challengeProbability: 1,
      source: { proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)) },
      onActivity: (a) => {
        if (a.kind === "verdict" && a.fraudProof) caught.resolve(a.fraudProof);
      },
    });
    await vValidator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
    (await announceAssigned(vValidator, proved.receipt, job, requester)).result?.catch(() => {});
    const proof = await caught.promise;

    const node = (name: string) =>
      spawnLedgerNode(system, dir, name, {
        identity: Identity.generate(),
        models: HONEST_MODELS,
        clock,
      });
    // A holds V's pledge (gossiped long ago), then more active keys than a connect pushes.
    const a = await node("a");
    assert.equal(
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(v, STAKE, START) }),
      true,
    );
    for (let i = 0; i < PLEDGES_PUSHED_ON_CONNECT + 2; i++) {
      const key = Identity.generate();
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, START) });
      await a.validator.ask({ type: "deposit", key: key.publicKey, amount: 1 }); // active
    }
    // C was offline when V's pledge was gossiped; both hold the cheat's receipt and its stake.
    const c = await node("c");
    for (const ledger of [a, c]) {
      await ledger.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      assert.equal(
        (await announceAssigned(ledger.validator, proved.receipt, job, requester)).recorded,
        true,
      );
    }
    // V's proof reaches A (gossip from V's side): A confirms it.
    await a.validator.ask({ type: "fraud_proof", proof, origin: "cd".repeat(32) });
    const aReads = ledgerReads(() => a.validator, clock);
    await eventually(
      async () => (await aReads.record(id))?.status === "fraud",
      "A to confirm V's proof",
    );

    await joinLedgerNodes(a, c);
    const cReads = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await cReads.record(id))?.status === "fraud",
      "the conviction to settle at C",
    ).catch(() => {}); // lost: the window closes below
    await cReads.closeWindow();
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal(
      (await cReads.record(id))?.status,
      "fraud",
      "the ledger that connected after the conviction settled the cheat's receipt otherwise",
    );
    assert.equal((await cReads.account(worker.publicKey)).stake, STAKE - slash);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- a withheld fault's receipt and job -----------------------------------------------------------
// A connecting peer's catch-up (`network/catch_up.ts`, `actors/_catch_up.ts`) sends the "proof
// withheld" faults this validator decided (a verdict `invalid / proof_unavailable`: a claim other
// ledgers take over on, asking the worker themselves) after their receipt and job
// (`ClaimEvidence`), as the NetworkActor sends a claim it passes on (review s57).
//
// A ledger takes a claim over only while it remembers the receipt and its job (bounded: 4096
// receipts, 64 MiB, one queue for every worker, `_validator_memory.ts`). The catch-up sent the
// claim alone: a peer that connected after the validator decided, and had forgotten the receipt
// (a worker with a colluding requester floods receipts until its withheld one is forgotten),
// held the claim for evidence that never came (review s58's late evidence), and paid the worker
// that withheld from it too, slashed in the validator's ledger. A peer that never had the
// receipt held the claim for a receipt that never came: the worker, slashed elsewhere, kept its
// stake there.
//
// The set-up: the validator V challenges the worker's receipt (it withholds from V: a fault),
// alone. The late peer L then connects to V. Every ledger runs on the test's clock; asserted on
// L's ledger after the window: statuses, balances and stake.

const STAKE_CATCH_UP_EVIDENCE = 1_000_000;

const withholdsCatchUpEvidence: ChallengeSource = { proof: () => Promise.resolve(undefined) };

/** The worker's work: its receipt, job, and a source that serves its proof data (counted). */
async function work() {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker);
  const id = receiptId(proved.receipt);
  const counted = { fetches: 0 };
  const serves: ChallengeSource = {
    proof: (r) => {
      counted.fetches++;
      return Promise.resolve(
        receiptId(r) === id ? signServedProof(id, proved.proof, worker) : undefined,
      );
    },
  };
  return { worker, requester, job, receipt: proved.receipt, id, serves, counted };
}

/**
 * The validator V and the late peer L (`source` is how the worker answers L), both holding the
 * stake of the worker, of V and of `flooder`, not connected.
 */
function nodes(
  setting: LedgerSetting,
  keys: { v: Identity; worker: Identity; flooder: Identity },
  source: ChallengeSource,
): Promise<{ nodeV: LedgerNode; nodeL: LedgerNode }> {
  return spawnValidatorAndLatePeer(setting, keys.v, {
    staked: [keys.worker, keys.v, keys.flooder],
    stake: STAKE_CATCH_UP_EVIDENCE,
    source,
  });
}

/**
 * V challenges the worker's receipt alone (no peer connected): the worker withholds, a fault kept
 * for V's catch-up.
 */
async function vDecides(
  nodeV: LedgerNode,
  w: Awaited<ReturnType<typeof work>>,
  clock: LedgerClock,
): Promise<void> {
  const handled = await announceAssigned(nodeV.validator, w.receipt, w.job, w.requester);
  assert.equal(handled.challenged, true);
  await handled.result;
  const reads = ledgerReads(() => nodeV.validator, clock);
  assert.equal((await reads.record(w.id))?.status, "fraud", "V slashed the worker");
  const items = await nodeV.validator.ask<CatchUpItem[]>({ type: "catch_up" });
  assert.equal(items.length, 1, "V keeps its fault for the peers that connect");
}

/** L received V's claim (its catch-up) and ended what it opened on it. */
async function lCaughtUp(nodeL: LedgerNode, clock: LedgerClock): Promise<void> {
  const reads = ledgerReads(() => nodeL.validator, clock);
  await eventually(
    async () => (await reads.stats()).peerVerdicts >= 1,
    "L to record V's claim from its catch-up",
  );
  await reads.drained();
}

Deno.test("a withheld fault sent in a catch-up goes after its receipt: a late peer that forgot the receipt takes the claim over, and the worker that withholds there too is slashed there, not paid", () =>
  inLedgerSetting("s58-catch-up-forgotten", async (setting) => {
    const { clock } = setting;
    const [v, flooder] = [Identity.generate(), Identity.generate()];
    const w = await work();
    const { nodeV, nodeL } = await nodes(
      setting,
      { v, worker: w.worker, flooder },
      withholdsCatchUpEvidence,
    );
    // L records the worker's receipt (through the requester), then forgets it under a flood.
    assert.equal(
      (await announceAssigned(nodeL.validator, w.receipt, w.job, w.requester)).recorded,
      true,
    );
    await floodAssignedReceipts(nodeL.validator, flooder, Identity.generate(), "s58");
    // V decides meanwhile, with no peer connected: gossip reaches nobody.
    await vDecides(nodeV, w, clock);

    await joinLedgerNodes(nodeL, nodeV);
    await lCaughtUp(nodeL, clock);
    const readsL = ledgerReads(() => nodeL.validator, clock);
    const { challenged } = await readsL.stats();
    const record = (await readsL.record(w.id))!;
    await readsL.closeWindow();
    // The ledger first: who is paid in L.
    assert.equal((await readsL.record(w.id))?.status, "fraud", "L paid the worker that withheld");
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE_CATCH_UP_EVIDENCE - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
    assert.equal(challenged, 1, "L took V's claim over");
  }));

Deno.test("an honest worker's receipt forgotten by a late peer, claimed in a catch-up: taken over, served, cleared and paid once, also when the catch-up comes again on a reconnect", () =>
  inLedgerSetting("s58-catch-up-honest", async (setting) => {
    const { clock } = setting;
    const [v, flooder] = [Identity.generate(), Identity.generate()];
    const w = await work();
    // The worker serves L (V's claim is false, or V could not reach it).
    const { nodeV, nodeL } = await nodes(setting, { v, worker: w.worker, flooder }, w.serves);
    assert.equal(
      (await announceAssigned(nodeL.validator, w.receipt, w.job, w.requester)).recorded,
      true,
    );
    const readsL = ledgerReads(() => nodeL.validator, clock);
    const credit = (await readsL.record(w.id))!.credit;
    assert.ok(credit > 0);
    await floodAssignedReceipts(nodeL.validator, flooder, Identity.generate(), "s58");
    await vDecides(nodeV, w, clock);

    const first = await joinLedgerNodes(nodeL, nodeV);
    await lCaughtUp(nodeL, clock);
    assert.equal((await readsL.stats()).challenged, 1, "L took V's claim over");
    assert.equal(w.counted.fetches, 1, "L asked the worker itself");
    // A reconnect: the same catch-up (receipt, then claim) again, taken once.
    await first.close();
    const received = (await readsL.stats()).received;
    await joinLedgerNodes(nodeL, nodeV);
    await eventually(
      async () => (await readsL.stats()).received > received,
      "L to be sent the receipt again on the reconnect",
    );
    await readsL.drained();
    assert.equal((await readsL.stats()).challenged, 1, "not taken over again");
    assert.equal(w.counted.fetches, 1);
    await readsL.closeWindow();
    assert.equal((await readsL.record(w.id))?.status, "final");
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: credit, stake: STAKE_CATCH_UP_EVIDENCE, locked: 0 },
      "cleared and paid once",
    );
  }));

Deno.test("a late peer that never had the receipt records it from a catch-up's withheld fault (uncredited: no assignment came with it), takes the claim over, and slashes the worker that withholds there too", () =>
  inLedgerSetting("s58-catch-up-unknown", async (setting) => {
    const { clock } = setting;
    const [v, flooder] = [Identity.generate(), Identity.generate()];
    const w = await work();
    const { nodeV, nodeL } = await nodes(
      setting,
      { v, worker: w.worker, flooder },
      withholdsCatchUpEvidence,
    );
    await vDecides(nodeV, w, clock);

    // Before review s58 nothing came that L could record: the claim was held for a receipt that
    // never came (no counter shows it), so the wait for it gave up and the ledger tells the rest.
    const { readsL, record, before } = await latePeerCatchesUp(nodeL, nodeV, clock, w.id, w.worker);
    assert.equal(
      (await readsL.record(w.id))?.status,
      "fraud",
      `L ${record === undefined ? "never recorded the receipt" : "did not slash the worker"}` +
        ` (its stake there: ${before.stake} of ${STAKE_CATCH_UP_EVIDENCE})`,
    );
    assert.equal(record!.credit, 0, "no assignment came: nothing is paid for it here");
    assert.deepEqual(
      await readsL.account(w.worker.publicKey),
      { balance: 0, stake: STAKE_CATCH_UP_EVIDENCE - record!.locked, locked: 0 },
      "slashed in L as in V",
    );
  }));

/** A fault's verdict by `by` about a fresh receipt of `worker` for a job of `promptBytes`. */
async function faultOf(worker: Identity, by: Identity, promptBytes: number) {
  const requester = Identity.generate();
  const job: TextJob = {
    ...textJob(requester, crypto.randomUUID()),
    prompt: "y".repeat(promptBytes),
  };
  const { receipt: shape } = await proveOn(textJob(requester, "s58-shape"), worker);
  const { sig: _sig, worker: _worker, ...unsigned } = shape;
  const receipt: Receipt = signReceipt(
    { ...unsigned, jobId: jobId(job), inputHash: inputHashOf(job) },
    worker,
  );
  const verdict = withheldVerdict(receiptId(receipt), worker.publicKey, START, by);
  return { kind: "verdict" as const, verdict, evidence: { receipt, job } };
}

Deno.test("a catch-up keeps its faults' receipts and jobs within a byte bound: past it the worker holding the most bytes gives its oldest up first, and every verdict is still sent", async () => {
  const catchUp = new CatchUp();
  const by = Identity.generate();
  const [flooder, cheat] = [Identity.generate(), Identity.generate()];
  const until = START + 1;
  await catchUp.add(await faultOf(cheat, by, 1024), until);
  // Near-maximal jobs: more than the bound holds.
  const count = Math.ceil(MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES / MAX_NETWORK_JOB_BYTES) + 2;
  assert.ok(count + 1 <= MAX_CATCH_UP_VERDICTS);
  for (let n = 0; n < count; n++) {
    await catchUp.add(await faultOf(flooder, by, MAX_NETWORK_JOB_BYTES - 1024), until);
  }
  const items = catchUp.current(START).flatMap((item) => item.kind === "verdict" ? [item] : []);
  assert.equal(items.length, count + 1, "every verdict is kept");
  assert.ok(items[0].evidence !== undefined, "the other worker's evidence is kept");
  const carried = items.slice(1).map((item) => item.evidence !== undefined);
  const dropped = carried.indexOf(true);
  assert.ok(dropped > 0, "the flooder's oldest gave theirs up");
  assert.deepEqual(carried, carried.map((_, n) => n >= dropped), "its oldest, and only those");
  const bytes = items.reduce(
    (sum, item) => sum + (item.evidence === undefined ? 0 : encodeCanonical(item.evidence).length),
    0,
  );
  assert.ok(bytes <= MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES);
});

// ---- a claim taken over ---------------------------------------------------------------------------
// A "proof withheld" claim a node took over reaches, through that node's catch-up, a ledger that
// connects only to it after the claim's author went away.
//
// The set-up: validator V decides a fault about worker W (W withheld from it) and gossips the
// claim to node N, which takes it over (W withholds from N too: slashed in N's ledger). V then
// goes away for good. Ledger L had W's receipt through others and was away at the gossip; it
// connects only to N. Every ledger runs on the test's clock; asserted on L's ledger after the
// window: the receipt's status and W's account.

const STAKE_CATCHUP_TAKEOVER = 1_000_000;

Deno.test("a claim a node took over (the worker withheld from it too) reaches a ledger that connects only to it after the claim's author left: the worker is slashed there, not paid", () =>
  inLedgerSetting("s59-catch-up-takeover", async ({ dir, clock, system }) => {
    const [v, n, l, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    const spawn = (name: string, identity: Identity, p: number) =>
      spawnLedgerNode(system, dir, name, {
        identity,
        models: HONEST_MODELS,
        clock,
        validator: { challengeProbability: p, source: withholds },
      });
    const nodeV = await spawn("v", v, 1);
    const nodeN = await spawn("n", n, 0);
    const nodeL = await spawn("l", l, 0);
    for (const node of [nodeV, nodeN, nodeL]) {
      for (const key of [worker, v, n]) {
        await node.validator.ask({
          type: "deposit",
          key: key.publicKey,
          amount: STAKE_CATCHUP_TAKEOVER,
        });
      }
    }
    // N and L recorded W's receipt through its requester.
    for (const node of [nodeN, nodeL]) {
      assert.equal(
        (await announceAssigned(node.validator, receipt, job, requester)).recorded,
        true,
      );
    }
    const readsN = ledgerReads(() => nodeN.validator, clock);
    const readsL = ledgerReads(() => nodeL.validator, clock);

    // V decides with N connected: its claim reaches N, which takes it over and slashes W.
    const vn = await joinLedgerNodes(nodeN, nodeV);
    const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
    assert.equal(handled.challenged, true);
    await handled.result;
    await eventually(
      async () => (await readsN.stats()).peerVerdicts >= 1,
      "N to record V's claim",
    );
    await readsN.drained();
    assert.equal((await readsN.record(id))?.status, "fraud", "N slashed W on V's claim");
    assert.equal((await readsN.stats()).challenged, 1, "N took V's claim over");
    // V goes away for good.
    await vn.close();

    // L, away until now, connects only to N.
    const kept = await nodeN.validator.ask<CatchUpItem[]>({ type: "catch_up" });
    // What N keeps is its own takeover's fault (`_challenges.ts`), not V's claim, which it only
    // recorded: the claim a ledger that meets only N takes over.
    assert.deepEqual(
      kept.map((item) =>
        item.kind === "verdict" &&
        [item.verdict.subjectId, item.verdict.reason, toHex(item.verdict.validator)]
      ),
      [[id, "proof_unavailable", toHex(n.publicKey)]],
      "N keeps its own claim about W for the peers that connect",
    );
    await joinLedgerNodes(nodeL, nodeN);
    await eventually(
      async () => (await readsL.stats()).peerVerdicts >= 1,
      "L to record a claim from N's catch-up",
      { timeoutMs: 5_000 },
    ).catch(() => {});
    await readsL.drained();
    const record = (await readsL.record(id))!;
    assert.equal((await readsL.stats()).challenged, 1, "L took N's claim over");
    await readsL.closeWindow();
    assert.equal((await readsL.record(id))?.status, "fraud", "L paid the worker that withheld");
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: STAKE_CATCHUP_TAKEOVER - record.locked, locked: 0 },
      "slashed in L as in V and N, not paid",
    );
  }));
