/**
 * A ledger that never had a cheat's receipt — it joined after the conviction, restarted through
 * it, or sat in the other half of a partition — settles the conviction a peer's catch-up brings
 * the same way the convicting ledger did (review s73 F1): the receipt is not pending in any
 * ledger any more, so no catch-up or gossip carries it, and the fraud proof was held here for a
 * receipt that never came. The cheat kept its stake here, and this node's router went on sending
 * its clients' jobs to it. The proof carries the worker's signed receipt and its job: the intake
 * records the receipt from them (`actors/_fraud_proofs.ts`, `#recordCarriedReceipt`), and the
 * proof is checked and settled as any other. A forged proof records and slashes nothing.
 *
 * In memory, on the test's ledger clock (no real-time race: every wait is for a state).
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type {
  CatchUpItem,
  ChallengeSource,
  FraudProofHandled,
} from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import type { PeerInfo } from "../../network/network_actor.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { toHex } from "../../protocols/hash.ts";
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
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  inLedgerSetting,
  joinLedgerNodes,
  type LedgerNode,
  spawnLedgerNode,
  STAKE,
} from "./_ledger_node.ts";

/** A cheat's work: a receipt for a job the worker ran on another model, and its served proof. */
async function cheatsWork() {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const proved = await proveOn(job, worker, f.otherSeed);
  const id = receiptId(proved.receipt);
  const source: ChallengeSource = {
    proof: () => Promise.resolve(signServedProof(id, proved.proof, worker)),
  };
  return { worker, requester, job, receipt: proved.receipt, id, source };
}

type Cheat = Awaited<ReturnType<typeof cheatsWork>>;

/** What the cheat's slash is: its receipt's locked amount (as in every ledger that convicts it). */
const slashOf = (receipt: Receipt) =>
  receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice * DEFAULT_ECONOMICS.slashMultiplier;

/** Node `name` keeping a ledger, the model the cheat's job names at hand. */
function node(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: LedgerClock,
  validator?: Parameters<typeof spawnLedgerNode>[3]["validator"],
): Promise<LedgerNode> {
  return spawnLedgerNode(system, dir, name, { identity, models: HONEST_MODELS, clock, validator });
}

/** Node "v" (validator `v`) challenges every receipt: it convicts the cheat, alone. */
async function convicting(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  v: Identity,
  cheat: Cheat,
): Promise<LedgerNode> {
  const convictor = await node(system, dir, "v", v, clock, {
    challengeProbability: 1,
    source: cheat.source,
  });
  // The worker's signed pledge, as a network node holds a worker's stake (a late ledger that
  // lacks it is pushed it on connect).
  const pledge = signStakePledge(cheat.worker, STAKE, START);
  assert.equal(await convictor.validator.ask({ type: "pledge", pledge }), true);
  const handled = await announceAssigned(
    convictor.validator,
    cheat.receipt,
    cheat.job,
    cheat.requester,
  );
  handled.result?.catch(() => {});
  const reads = ledgerReads(() => convictor.validator, clock);
  await eventually(async () => (await reads.record(cheat.id))?.status === "fraud", "conviction");
  await reads.drained();
  return convictor;
}

/**
 * A ledger that never recorded the cheat's receipt, with `accusers`' stake and the worker's
 * (unless `workerStaked` is false: it comes only with the convicting node's pledges on connect).
 */
async function lateLedger(
  system: ActorSystem,
  dir: string,
  clock: LedgerClock,
  cheat: Cheat,
  accusers: Identity[],
  workerStaked = true,
): Promise<LedgerNode> {
  const late = await node(system, dir, "late", Identity.generate(), clock);
  const keys = accusers.map((a) => a.publicKey);
  if (workerStaked) keys.push(cheat.worker.publicKey);
  for (const key of keys) {
    await late.validator.ask({ type: "deposit", key, amount: STAKE });
  }
  const reads = ledgerReads(() => late.validator, clock);
  assert.equal(await reads.record(cheat.id), undefined, "the late ledger had the receipt");
  return late;
}

/** `node`'s NetworkActor's view of peer `key` (what its worker routing reads). */
async function peerView(at: LedgerNode, key: Uint8Array): Promise<PeerInfo | undefined> {
  const peers = await at.network.ask<PeerInfo[]>({ type: "peers" });
  return peers.find((peer) => peer.key === toHex(key));
}

/** The convicting validator's kept conviction of the cheat (what its catch-up sends). */
async function keptProof(convictor: LedgerNode): Promise<FraudProof> {
  const items = await convictor.validator.ask<CatchUpItem[]>({ type: "catch_up" });
  const kept = items.find((item) => item.kind === "fraud_proof");
  assert.ok(kept?.kind === "fraud_proof", "the convicting validator kept no conviction");
  return kept.proof;
}

Deno.test("a ledger that never saw a cheat's receipt slashes it as the convicting ledger did once it gets that ledger's catch-up, and its router stops routing to the cheat", () =>
  inLedgerSetting("late-ledger-catch-up", async ({ dir, clock, system }) => {
    const v = Identity.generate();
    const cheat = await cheatsWork();
    const convictor = await convicting(system, dir, clock, v, cheat);
    const vReads = ledgerReads(() => convictor.validator, clock);
    const slashedThere = (await vReads.account(cheat.worker.publicKey)).stake;
    assert.equal(slashedThere, STAKE - slashOf(cheat.receipt));

    const late = await lateLedger(system, dir, clock, cheat, [v]);
    // The cheat is connected to the late node first, as after a partition heals: its router
    // sees a worker in good standing.
    const worker = await node(system, dir, "x", cheat.worker, clock);
    await joinLedgerNodes(worker, late);
    await eventually(
      async () => (await peerView(late, cheat.worker.publicKey)) !== undefined,
      "the cheat to be a peer of the late node",
    );
    assert.equal((await peerView(late, cheat.worker.publicKey))?.convicted, false);

    await joinLedgerNodes(convictor, late);
    const reads = ledgerReads(() => late.validator, clock);
    await eventually(
      async () => (await reads.record(cheat.id))?.status === "fraud",
      "the conviction to settle in the late ledger",
    );
    await eventually(
      async () => (await peerView(late, cheat.worker.publicKey))?.convicted === true,
      "the late node's router to see the conviction",
    );
    await reads.closeWindow();
    await vReads.closeWindow();
    const account = await reads.account(cheat.worker.publicKey);
    assert.equal(account.stake, slashedThere, "slashed otherwise than in the convicting ledger");
    assert.equal(account.stake, STAKE - slashOf(cheat.receipt));
    assert.equal(account.balance, 0, "the cheat was paid");
    assert.equal(account.balance, (await vReads.account(cheat.worker.publicKey)).balance);
    // The accuser's proof held up: it pays no false-accusation penalty here.
    assert.equal((await reads.account(v.publicKey)).stake, STAKE);
  }));

Deno.test("a forged fraud proof about a receipt a ledger never saw records nothing and slashes nothing; the genuine one still settles", () =>
  inLedgerSetting("late-ledger-forged", async ({ dir, clock, system }) => {
    const v = Identity.generate();
    const hostile = Identity.generate();
    const cheat = await cheatsWork();
    const convictor = await convicting(system, dir, clock, v, cheat);
    const genuine = await keptProof(convictor);
    const late = await lateLedger(system, dir, clock, cheat, [v, hostile]);
    const reads = ledgerReads(() => late.validator, clock);
    const origin = toHex(hostile.publicKey);
    const send = (proof: FraudProof) =>
      late.validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin });

    // A broken signature: refused before it is held.
    const badSig = { ...genuine, sig: genuine.sig.map((b, i) => i === 0 ? b ^ 1 : b) };
    assert.equal((await send(badSig)).skipped, "bad_signature");
    // A receipt the worker did not sign (its token count changed), re-signed by the accuser.
    const { sig: _sig, ...unsigned } = genuine;
    const altered = { ...cheat.receipt, tokenCount: cheat.receipt.tokenCount + 1 };
    const unsignedReceipt = signFraudProof({ ...unsigned, receipt: altered } as never, hostile);
    assert.equal((await send(unsignedReceipt)).skipped, "bad_signature");
    // The worker's signed receipt with a job it is not for, validly signed by a staked accuser:
    // held, but the intake refuses to bind the receipt to that job.
    const otherJob = textJob(cheat.requester, crypto.randomUUID());
    const wrongJob = signFraudProof({ ...unsigned, job: otherJob } as never, hostile);
    const held = await send(wrongJob);
    held.result?.catch(() => {});
    assert.equal(held.awaitingReceipt, true);
    await eventually(
      async () => (await reads.stats()).refused >= 1,
      "the intake to refuse the receipt bound to another job",
    );

    assert.equal(await reads.record(cheat.id), undefined, "a forged proof recorded the receipt");
    assert.equal((await reads.account(cheat.worker.publicKey)).stake, STAKE, "slashed on forgery");
    assert.equal((await reads.stats()).slashes, 0);

    // The genuine conviction still settles, as in the convicting ledger.
    const settled = await late.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: genuine,
      origin: toHex(v.publicKey),
    });
    assert.equal(settled.awaitingReceipt, true);
    const check = await settled.result;
    assert.equal(check?.confirmed, true);
    await reads.closeWindow();
    assert.equal((await reads.record(cheat.id))?.status, "fraud");
    assert.equal(
      (await reads.account(cheat.worker.publicKey)).stake,
      STAKE - slashOf(cheat.receipt),
    );
    assert.equal((await reads.account(cheat.worker.publicKey)).balance, 0);
  }));

Deno.test("a late ledger that lacks the cheat's stake, the cheat gone, slashes it once the convicting node's catch-up and pledges reach it", () =>
  inLedgerSetting("late-ledger-no-stake", async ({ dir, clock, system }) => {
    const v = Identity.generate();
    const cheat = await cheatsWork();
    const convictor = await convicting(system, dir, clock, v, cheat);
    const late = await lateLedger(system, dir, clock, cheat, [v], false);
    const reads = ledgerReads(() => late.validator, clock);
    assert.equal((await reads.account(cheat.worker.publicKey)).stake, 0);

    await joinLedgerNodes(convictor, late);
    await eventually(
      async () => (await reads.record(cheat.id))?.status === "fraud",
      "the conviction to settle in the late ledger",
    );
    await reads.closeWindow();
    const account = await reads.account(cheat.worker.publicKey);
    assert.equal(account.stake, STAKE - slashOf(cheat.receipt));
    assert.equal(account.balance, 0, "the cheat was paid");
    assert.equal((await reads.account(v.publicKey)).stake, STAKE);
  }));
