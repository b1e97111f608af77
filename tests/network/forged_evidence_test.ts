/**
 * A peer sending evidence that fails a check it could have made itself — a verdict or a fraud
 * proof whose signature does not verify — is charged a refusal for each on its connection, and
 * cut off at the refusal limit (review s80, F2: 2,000 forged "proof withheld" claims cost the
 * ledger 2,000 signature checks and the connection nothing). Evidence an honest relay can send —
 * genuine, about a receipt not recorded here, again and again — is never charged.
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { FraudProofHandled } from "../../actors/validator_messages.ts";
import { Connection, DEFAULT_MAX_REFUSALS } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import {
  FraudProofAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VALIDATION_PROTOCOL,
  VerdictAnnouncementMessage,
} from "../../protocols/inference_messages.ts";
import { signStreamProof } from "../../protocols/stream_proof.ts";
import { claimOf, job as streamJob } from "../actors/_stream_claim_fixture.ts";
import { type FraudProof, signFraudProof } from "../../protocols/fraud_proof.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signVerdict, type Verdict } from "../../protocols/verdict.ts";
import { job } from "../proof/_ledger_fixtures.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  handReceipt,
  honestReceipt,
  inLedgerSetting,
  type LedgerNode,
  spawnFreshPledgedNode,
} from "./_ledger_node.ts";

/** Past the refusal limit, with room for the frames in flight when the peer is cut off. */
const SENT = DEFAULT_MAX_REFUSALS + 50;

/** A ledger node holding an honest worker's pending receipt, and an honest staked validator. */
async function ledgerWithPendingReceipt(system: ActorSystem, dir: string) {
  const node = await spawnFreshPledgedNode(system, dir, "b");
  const worker = Identity.generate();
  const honestValidator = Identity.generate();
  for (const who of [worker, honestValidator]) {
    await node.validator.ask({
      type: "pledge",
      pledge: signStakePledge(who, 1_000_000, 1),
      origin: "local",
    });
  }
  const r = honestReceipt(2, worker);
  const handled = await handReceipt(node, r, 2);
  assert.equal(handled.recorded, true);
  return { node, worker, honestValidator, receipt: r };
}

/** A fresh key's connection to `node`: our end and the node's. */
async function connect(node: LedgerNode): Promise<{ far: Connection; near: Connection }> {
  const [dx, dy] = memoryDuplexPair();
  const open = Connection.open(dx, {
    identity: Identity.generate(),
    protocols: [VALIDATION_PROTOCOL],
  });
  const near = await node.network.ask<Connection>({
    type: "attach",
    duplex: dy,
    address: "mem",
    outbound: false,
  });
  return { far: await open, near };
}

/**
 * `send` (one forged frame on `far`) again and again, until the node cut `far` off or {@link SENT}
 * were sent; then waits for the node's end, `near`, to close.
 */
async function forgeUntilCutOff(
  far: Connection,
  near: Connection,
  send: () => Promise<void>,
): Promise<void> {
  for (let i = 0; i < SENT && !far.isClosed; i++) await send().catch(() => {});
  await eventually(() => near.isClosed || undefined, "the forger cut off", { timeoutMs: 30_000 });
}

/** `verdict` with its signature broken. */
function forgedVerdict(verdict: Verdict): Verdict {
  return { ...verdict, sig: verdict.sig.map((x, i) => (i === 0 ? x ^ 1 : x)) };
}

function withheldClaim(subjectId: string, worker: Identity, by: Identity): Verdict {
  return signVerdict({
    v: 1,
    subject: "inference",
    subjectId,
    target: worker.publicKey,
    outcome: "invalid",
    reason: "proof_unavailable",
    issuedAt: Date.now(),
  }, by);
}

async function receiptStatus(node: LedgerNode, r: Receipt): Promise<string> {
  return (await node.validator.ask<{ status: string }>({
    type: "receipt_status",
    receiptId: receiptId(r),
  })).status;
}

Deno.test("a peer sending forged verdicts (a staked validator's key, a broken signature) is cut off at the refusal limit; the receipt stays pending", async () => {
  await inLedgerSetting("forged-verdicts", async ({ system, dir }) => {
    const { node, worker, honestValidator, receipt: r } = await ledgerWithPendingReceipt(
      system,
      dir,
    );
    const { far, near } = await connect(node);
    const forged = forgedVerdict(withheldClaim(receiptId(r), worker, honestValidator));
    await forgeUntilCutOff(
      far,
      near,
      () => far.notify(VerdictAnnouncementMessage, { verdict: forged }),
    );
    assert.equal((near.closeReason as { code?: string } | undefined)?.code, "too_many_refusals");
    // Nothing moved: the worker's receipt is pending, its stake whole, nobody's locked.
    assert.equal(await receiptStatus(node, r), "pending");
    const account = await node.validator.ask<{ stake: number }>({
      type: "account",
      key: worker.publicKey,
    });
    assert.equal(account.stake, 1_000_000);
  });
});

Deno.test("a peer sending forged fraud proofs (a staked accuser's key, a broken signature) is cut off at the refusal limit; the receipt stays pending", async () => {
  await inLedgerSetting("forged-fraud-proofs", async ({ system, dir }) => {
    const { node, honestValidator, receipt: r } = await ledgerWithPendingReceipt(system, dir);
    const genuine = signFraudProof(
      {
        v: 1,
        job: job(2),
        receipt: r,
        kind: "commitment",
        chunks: [],
        cited: [],
        issuedAt: Date.now(),
      } as unknown as Parameters<typeof signFraudProof>[0],
      honestValidator,
    );
    const forged: FraudProof = {
      ...genuine,
      sig: genuine.sig.map((x, i) => (i === 0 ? x ^ 1 : x)),
    };
    // What the validator answers it: a check its sender could have made.
    const answer = await node.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: forged,
      origin: toHex(Identity.generate().publicKey),
    });
    assert.equal(answer.skipped, "bad_signature");
    const { far, near } = await connect(node);
    await forgeUntilCutOff(
      far,
      near,
      () => far.notify(FraudProofAnnouncementMessage, { proof: forged }),
    );
    assert.equal((near.closeReason as { code?: string } | undefined)?.code, "too_many_refusals");
    assert.equal(await receiptStatus(node, r), "pending");
    const accuser = await node.validator.ask<{ stake: number; locked: number }>({
      type: "account",
      key: honestValidator.publicKey,
    });
    assert.deepEqual(
      [accuser.stake, accuser.locked],
      [1_000_000, 0],
      "the named accuser untouched",
    );
  });
});

Deno.test("a peer sending forged stream proofs (the job's requester as accuser, a broken signature) is cut off at the refusal limit; the worker keeps its stake", async () => {
  await inLedgerSetting("forged-stream-proofs", async ({ system, dir }) => {
    const { node, worker, honestValidator } = await ledgerWithPendingReceipt(system, dir);
    const j = streamJob("forged", honestValidator);
    const genuine = signStreamProof(
      claimOf(j, worker, [1, 2, 3, 4, 5, 6, 7, 8], 3),
      honestValidator,
      Date.now(),
    );
    const forged = { ...genuine, sig: genuine.sig.map((x, i) => (i === 0 ? x ^ 1 : x)) };
    const { far, near } = await connect(node);
    await forgeUntilCutOff(
      far,
      near,
      () => far.notify(StreamProofAnnouncementMessage, { proof: forged }),
    );
    assert.equal((near.closeReason as { code?: string } | undefined)?.code, "too_many_refusals");
    const account = await node.validator.ask<{ stake: number }>({
      type: "account",
      key: worker.publicKey,
    });
    assert.equal(account.stake, 1_000_000);
  });
});

Deno.test("a peer relaying a genuine claim about a receipt not recorded here, over and over, is not charged", async () => {
  await inLedgerSetting("genuine-relays", async ({ system, dir }) => {
    const { node, worker, honestValidator } = await ledgerWithPendingReceipt(system, dir);
    const { far, near } = await connect(node);
    const unknown = withheldClaim("ab".repeat(32), worker, honestValidator);
    for (let i = 0; i < SENT; i++) {
      await far.notify(VerdictAnnouncementMessage, { verdict: unknown }).catch(() => {});
    }
    await far.ping();
    await eventually(() => near.stats().framesReceived >= SENT || undefined, "all read");
    await far.ping();
    assert.equal(near.stats().refused, 0);
    assert.ok(!near.isClosed && !far.isClosed, "the relay stays connected");
  });
});
