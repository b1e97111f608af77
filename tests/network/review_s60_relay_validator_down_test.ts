/**
 * Review s60: a proof request relayed through a node whose own validator is down.
 *
 * A validator V not connected to the worker W asks the job's requester R to relay
 * `inference.get_proof { receiptId, worker }`; R relays only for a receipt its own ledger holds,
 * and asked its ValidatorActor at once: with none registered (stopped, not started again yet)
 * it answered `service_unavailable` at once. To V that is a relay's failure, not the worker's
 * answer: it asks again in its next round. But its rounds pause between them (0.5 s doubling to
 * 8 s), so a refusal in V's last round, from a validator back a moment later, was never asked
 * again, and with a route up (R) the missing proof was W's "withholding": the honest worker was
 * slashed in V's ledger for R's validator restart. The fix holds R's relay at R while its
 * validator is down (`ValidatorInbox.ask`, as a receipt announcement is held, review s59), so
 * the request in V's round is relayed the moment R's validator is back.
 *
 * The set-up is `proof_relay_test.ts`'s V — R — W line (V and W never meet, R holds the receipt).
 * R's validator is stopped before V's challenge, and started again only once V's relay request is
 * held at R (R's side of the V — R connection has a request in flight: the receipt came to V from
 * R, so V announces nothing to R that could be taken for it). On the code before the fix R never
 * holds it, R's validator stays down for V's whole deadline, and the ledger tells. R's wait runs
 * on R's `PeerServices.timers`, a clock the first test never moves: nothing races a deadline.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { Actor } from "../../actors/actor.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../../actors/validator_actor.ts";
import type { ProverMessage } from "../../actors/prover_actor.ts";
import type { Account } from "../../proof/ledger_state.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { MAX_WAIT_MS } from "../../network/_validator_inbox.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import type { TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { inLedgerSetting } from "./_ledger_node.ts";
import { stoppedValidator } from "./_validator_down.ts";

/** V's proof deadline: rounds of at most a quarter of it, so the fix has several to spare. */
const DEADLINE_MS = 6_000;
const STAKE = 10_000;

/** The worker's prover, reduced to the one question a challenge asks. */
class ServesProofs implements Actor<ProverMessage> {
  constructor(readonly proofs: Map<string, ServedProof>) {}
  receive(message: ProverMessage): ServedProof | undefined {
    return message.type === "get_proof" ? this.proofs.get(message.receiptId) : undefined;
  }
}

/** The line V — R — W, R's ledger holding W's honest receipt, not yet given to V. */
async function line(system: ActorSystem, dir: string, timersR: ManualTimers) {
  const f = await loadFixture();
  const [v, r, w] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const proofs = new Map<string, ServedProof>();
  const models = {
    get: (cid: string) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
  };
  const validatorOf = (name: string, identity: Identity, challenge: boolean) => () =>
    new ValidatorActor({
      identity,
      ledgerDir: `${dir}/${name}`,
      models,
      challengeProbability: challenge ? 1 : 0,
      finalizeIntervalMs: 0,
      proofDeadlineMs: DEADLINE_MS,
      network: `${name}/network`,
    });
  const vValidator = await system.spawn<ValidatorMessage>({
    name: "v/validator",
    factory: validatorOf("v", v, true),
  });
  const rValidator = await system.spawn<ValidatorMessage>({
    name: "r/validator",
    factory: validatorOf("r", r, false),
  });
  await system.spawn<ProverMessage>({ name: "w/prover", factory: () => new ServesProofs(proofs) });
  const net = (name: string, identity: Identity, services: Record<string, unknown>) =>
    system.spawn<NetworkMessage>({
      name: `${name}/network`,
      factory: () => new NetworkActor({ identity, services }),
    });
  const [vNet, rNet, wNet] = await Promise.all([
    net("v", v, { validator: "v/validator" }),
    net("r", r, { validator: "r/validator", timers: timersR }),
    net("w", w, { prover: "w/prover" }),
  ]);
  /** Join `a` (dialling) and `b`; resolves with b's side of the connection. */
  const join = async (a: typeof vNet, b: typeof vNet): Promise<Connection> => {
    const [da, db] = memoryDuplexPair();
    const [, atB] = await Promise.all([
      a.ask({ type: "attach", duplex: da, address: "mem", outbound: true }),
      b.ask<Connection>({ type: "attach", duplex: db, address: "mem", outbound: false }),
    ]);
    return atB;
  };
  const atR = await join(vNet, rNet);
  await join(rNet, wNet);
  await eventually(async () => {
    const peers = await vNet.ask<PeerInfo[]>({ type: "peers" });
    return peers.length === 1 ? true : undefined;
  }, "V to see only R");
  const job: TextJob = {
    kind: "text",
    model: f.honest.info.cid,
    prompt: "Through a requester whose validator restarts",
    params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 5, stop: [] },
    nonce: "relay-down",
    requester: toHex(r.publicKey),
  };
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), w);
  const id = receiptId(proved.receipt);
  proofs.set(id, signServedProof(id, proved.proof, w));
  const assignment = signAssignment({ job, worker: w.publicKey, issuedAt: 1 }, r);
  for (const validator of [vValidator, rValidator]) {
    await validator.ask({ type: "pledge", pledge: signStakePledge(w, STAKE, 1) });
  }
  const inR = await rValidator.ask<ReceiptHandled>({
    type: "receipt",
    receipt: proved.receipt,
    job,
    assignment,
    origin: "local",
  });
  assert.equal(inR.recorded, true);
  return {
    vValidator,
    atR,
    r,
    w,
    id,
    /** Hand the receipt to V as R passed it on: V challenges it (and announces nothing to R). */
    toV: () =>
      vValidator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: proved.receipt,
        job,
        assignment,
        origin: toHex(r.publicKey),
      }),
    /** R's validator as it was spawned (its ledger reopened from disk). */
    restartR: validatorOf("r", r, false),
  };
}

Deno.test("review s60: a relay whose validator is down when the validator asks it holds the proof request until its validator is back: the honest worker is cleared, not slashed, in the asking validator's ledger", async () => {
  await inLedgerSetting("s60-relay-down", async ({ system, dir }) => {
    const timersR = new ManualTimers();
    const { vValidator, atR, w, id, toV, restartR } = await line(system, dir, timersR);
    const { back } = await stoppedValidator<ValidatorMessage>(system, "r/validator", restartR);

    const handled = await toV();
    assert.equal(handled.challenged, true);
    const ended = handled.result!.then(() => "ended" as const);
    // R's validator comes back once V's relay request waits at R for it, not before: on the code
    // before the fix R refused it at once, V's challenge ran into its deadline, and it is back
    // only after that.
    const held = eventually(() => atR.stats().inboundRequests >= 1, "V's request held at R", {
      timeoutMs: DEADLINE_MS * 4,
    }).then(() => "held" as const);
    const first = await Promise.race([held, ended]);
    await back();
    const result = await handled.result!;

    const record = await vValidator.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
    const account = await vValidator.ask<Account>({ type: "account", key: w.publicKey });
    const convicted = await vValidator.ask<boolean>({ type: "convicted", key: w.publicKey });
    // The ledger first: what the worker lost in V's.
    assert.deepEqual(
      { convicted, stake: account.stake, status: record.status },
      { convicted: false, stake: STAKE, status: "pending" },
      `the honest worker was slashed in V's ledger (${result.verdict.outcome} / ` +
        `${result.verdict.reason}): R's validator restart counted as its withholding`,
    );
    assert.equal(result.verdict.outcome, "valid");
    assert.equal(first, "held", "R answered V's relay request before its validator was back");
  });
});

Deno.test("review s60: a relay holds a proof request for its validator MAX_WAIT_MS on its connections' clock at most, then answers service_unavailable as before", async () => {
  await inLedgerSetting("s60-relay-down-bound", async ({ system, dir }) => {
    const timersR = new ManualTimers();
    const { atR, r, w, id, restartR } = await line(system, dir, timersR);
    const { back } = await stoppedValidator<ValidatorMessage>(system, "r/validator", restartR);
    // V's side, asking R directly (no challenge: only the relay's answer is looked at here).
    const vNet = system.lookup<NetworkMessage>("v/network")!;
    const atV = await vNet.ask<Connection | undefined>({
      type: "connection_to",
      key: r.publicKey,
      protocol: INFERENCE_PROTOCOL.name,
    });
    assert.ok(atV !== undefined, "V's connection to R");
    const answer = atV.request(ProofRequestMessage, { receiptId: id, worker: w.publicKey }, {
      timeoutMs: MAX_WAIT_MS * 10,
    }).then(() => undefined, (e: unknown) => e);
    await eventually(() => atR.stats().inboundRequests === 1, "the request held at R");
    await timersR.advance(MAX_WAIT_MS - 1);
    assert.equal(atR.stats().inboundRequests, 1, "R gave up before MAX_WAIT_MS");
    await timersR.advance(1);
    const error = await answer;
    assert.ok(error instanceof RemoteError, `not a refusal: ${error}`);
    assert.equal(error.code, "service_unavailable");
    assert.equal(timersR.pending, 0, "the wait's timer was left armed");
    await back();
  });
});
