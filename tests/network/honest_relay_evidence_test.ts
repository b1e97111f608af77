/**
 * An honest node passes on only evidence whose every signature it verified itself, so a peer's
 * charge for forged evidence (`network/peer_services.ts` `chargeForged`) never falls on it (review
 * s80 vgfx F3, F4). A forger M sends node A evidence that A's ledger could take without checking a
 * signature its peer B checks: B, lacking what A had, answered `bad_signature`, charged A's
 * connection, and cut the honest A off (`too_many_refusals`): a network split for the price of
 * pledges any key makes for free. A now refuses that evidence at its own intake, charging M, the
 * sender, and passes nothing on.
 *
 * - a fraud proof carrying a receipt A recorded, with its signature broken (`receiptId` leaves
 *   the signature out, so it found A's record; B never recorded the receipt);
 * - a stream proof whose worker claim signature is broken, and one whose position is past the
 *   stream (the position is not signed), while B lacks the worker's pledge (A's budget to B spent).
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { Account } from "../../proof/ledger.ts";
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  FraudProofAnnouncementMessage,
  StakeAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VALIDATION_PROTOCOL,
} from "../../protocols/inference_messages.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signStreamProof } from "../../protocols/stream_proof.ts";
import { job } from "../proof/_ledger_fixtures.ts";
import { claimOf, job as streamJob } from "../actors/_stream_claim_fixture.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  handReceipt,
  honestReceipt,
  inLedgerSetting,
  joinLedgerNodeEnds,
  spawnFreshPledgedNode,
} from "./_ledger_node.ts";
import { settle } from "../protocols/_helpers.ts";

/** Past the 100 refusals a connection tolerates: the forger's connection to A is cut. */
const PROOFS = 150;

/** Two ledger nodes A and B, connected, and a way for a fresh key to connect to one of them. */
async function pair(system: ActorSystem, dir: string) {
  const node = (name: string) => spawnFreshPledgedNode(system, dir, name);
  const a = await node("a");
  const b = await node("b");
  const [ab, ba] = await joinLedgerNodeEnds(a, b); // A's end, B's end
  const account = (n: typeof a, key: Uint8Array) =>
    n.validator.ask<Account>({ type: "account", key });
  const peer = async (identity = Identity.generate()) => {
    const [dx, dy] = memoryDuplexPair();
    const open = Connection.open(dx, { identity, protocols: [VALIDATION_PROTOCOL] });
    await a.network.ask<Connection>({
      type: "attach",
      duplex: dy,
      address: "mem",
      outbound: false,
    });
    return await open;
  };
  await eventually(async () => (await account(b, a.identity.publicKey)).stake > 0, "B has A");
  return { a, b, ab, ba, account, peer };
}

/** The forger's connection to A cut off, and B's end of A-B untouched: nothing charged to A. */
async function assertOnlyTheForgerCharged(
  forger: Connection,
  ab: Connection,
  ba: Connection,
  refusedBefore: number,
): Promise<void> {
  // (Or B cut A off: the failure this guards against.)
  await eventually(() => forger.isClosed || ab.isClosed || undefined, "A cuts the forger off", {
    timeoutMs: 30_000,
  });
  await settle();
  if (!ab.isClosed) await ab.ping();
  await settle();
  assert.equal(ba.stats().refused - refusedBefore, 0, "B never charges the honest relay A");
  assert.ok(!ab.isClosed && !ba.isClosed, "A and B stay connected");
  assert.ok(forger.isClosed, "the forger is cut off by A");
}

Deno.test("a fraud proof carrying A's recorded receipt with a broken signature is refused at A's intake, never passed on to B", async () => {
  await inLedgerSetting("honest-relay-fraud", async ({ system, dir }) => {
    const { a, b, ab, ba, account, peer } = await pair(system, dir);
    // A worker's pending receipt recorded in A only (unassigned: never announced on).
    const worker = Identity.generate();
    await a.validator.ask({
      type: "pledge",
      pledge: signStakePledge(worker, 1_000_000, 1),
      origin: "local",
    });
    const r = honestReceipt(2, worker);
    const handled = await handReceipt(a, r, 2, false);
    assert.equal(handled.recorded, true);
    await settle();
    const status = (n: typeof a) =>
      n.validator.ask<{ status: string } | undefined>({
        type: "receipt_status",
        receiptId: receiptId(r),
      });
    assert.equal(await status(b), undefined, "B never recorded the receipt");

    const forger = await peer();
    const refusedBefore = ba.stats().refused;
    const broken = { ...r, sig: r.sig.map((x, i) => (i === 0 ? x ^ 1 : x)) };
    assert.equal(receiptId(broken), receiptId(r), "the same receipt id, signature aside");
    const accusers: Identity[] = [];
    for (let i = 0; i < PROOFS && !forger.isClosed; i++) {
      // Each proof from a fresh accuser pledged to A: no accusation repeats.
      const accuser = Identity.generate();
      accusers.push(accuser);
      await a.validator.ask({
        type: "pledge",
        pledge: signStakePledge(accuser, 1_000, 1),
        origin: "local",
      });
      const proof = signFraudProof(
        {
          v: 1,
          job: job(2),
          receipt: broken,
          kind: "commitment",
          chunks: [],
          cited: [],
          issuedAt: Date.now(),
        } as unknown as Parameters<typeof signFraudProof>[0],
        accuser,
      );
      await forger.notify(FraudProofAnnouncementMessage, { proof }).catch(() => {});
    }
    await assertOnlyTheForgerCharged(forger, ab, ba, refusedBefore);
    // The ledgers: nothing settled on a receipt its worker never signed so.
    assert.equal((await status(a))?.status, "pending", "the receipt still pending in A");
    assert.equal(await status(b), undefined, "nothing recorded in B");
    assert.equal((await account(a, worker.publicKey)).stake, 1_000_000, "worker keeps its stake");
    for (const accuser of [accusers[0], accusers.at(-1)!]) {
      assert.equal((await account(a, accuser.publicKey)).stake, 1_000, "no accuser charged in A");
      // Its pledge reached B or not (gossip within A's budget), but no penalty there.
      assert.ok([0, 1_000].includes((await account(b, accuser.publicKey)).stake), "not in B");
    }
  });
});

/**
 * Stream proofs from M (the jobs' requester) against W, both staked in A, while B lacks W's
 * pledge: A's budget to B is spent by a flood of fresh keys' pledges and its reserve by throw-away
 * convictions, so neither gossip nor `sendAhead` carries W's pledge. `spoil` breaks each claim.
 */
async function streamProofsThroughA(
  spoil: (claim: ReturnType<typeof claimOf>) => ReturnType<typeof claimOf>,
): Promise<void> {
  await inLedgerSetting("honest-relay-stream", async ({ system, dir }) => {
    const { a, b, ab, ba, account, peer } = await pair(system, dir);
    const flooder = await peer();
    for (let i = 0; i < 400 && !flooder.isClosed; i++) {
      await flooder.notify(StakeAnnouncementMessage, {
        pledge: signStakePledge(Identity.generate(), 1_000, 2),
      }).catch(() => {});
    }
    await eventually(() => flooder.isClosed || undefined, "flooder cut off");
    const junk = await peer();
    for (let i = 0; i < 8; i++) {
      const j = Identity.generate();
      await junk.notify(StakeAnnouncementMessage, { pledge: signStakePledge(j, 1, 1) });
      await junk.notify(StakeAnnouncementMessage, { pledge: signStakePledge(j, 2, 2) });
    }
    await a.network.ask({ type: "peers" });
    await settle();

    const m = Identity.generate();
    const w = Identity.generate();
    const forger = await peer(m);
    await forger.notify(StakeAnnouncementMessage, { pledge: signStakePledge(m, 1_000_000, 1) });
    await forger.notify(StakeAnnouncementMessage, { pledge: signStakePledge(w, 1_000_000, 1) });
    for (const key of [w, m]) {
      await eventually(
        async () => (await account(a, key.publicKey)).stake === 1_000_000 || undefined,
        "A has the pledge",
      );
    }
    await a.network.ask({ type: "peers" });
    await settle();
    assert.equal((await account(b, w.publicKey)).stake, 0, "B lacks W's pledge");
    const refusedBefore = ba.stats().refused;
    for (let i = 0; i < PROOFS && !forger.isClosed; i++) {
      const claim = spoil(claimOf(streamJob(`relay-${i}`, m), w, [1, 2, 3, 4, 5, 6, 7, 8], 3));
      const proof = signStreamProof(claim, m, Date.now());
      await forger.notify(StreamProofAnnouncementMessage, { proof }).catch(() => {});
    }
    await assertOnlyTheForgerCharged(forger, ab, ba, refusedBefore);
    // The ledgers: nothing to settle on a claim its worker never signed (or at no position).
    assert.equal((await account(a, w.publicKey)).stake, 1_000_000, "W keeps its stake in A");
    assert.equal((await account(a, m.publicKey)).stake, 1_000_000, "M not charged in A");
  });
}

Deno.test("a stream proof whose worker claim signature is broken is refused at A's intake, never passed on to B", () =>
  streamProofsThroughA((claim) => ({
    ...claim,
    sig: claim.sig.map((x, n) => (n === 0 ? x ^ 1 : x)),
  })));

Deno.test("a stream proof at a position past its stream (not signed) is refused at A's intake, never passed on to B", () =>
  streamProofsThroughA((claim) => ({ ...claim, at: claim.tokenIds.length })));
