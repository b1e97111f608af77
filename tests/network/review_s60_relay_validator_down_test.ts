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
 * The set-up is `proof_relay_test.ts`'s V — R — W line (`_relay_line.ts`: V and W never meet, R
 * holds the receipt). R's validator is stopped before V's challenge, and started again only once
 * V's relay request is held at R (R's side of the V — R connection has a request in flight: the
 * receipt came to V from R, so V announces nothing to R that could be taken for it). On the code
 * before the fix R never holds it, R's validator stays down for V's whole deadline, and the ledger
 * tells. R's wait runs on R's `PeerServices.timers`, a clock the first test never moves: nothing
 * races a deadline.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { Account } from "../../proof/ledger_state.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { MAX_WAIT_MS } from "../../network/_validator_inbox.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { inLedgerSetting } from "./_ledger_node.ts";
import { RELAY_STAKE, relayLine } from "./_relay_line.ts";
import { stoppedValidator } from "./_validator_down.ts";

/** V's proof deadline: rounds of at most a quarter of it, so the fix has several to spare. */
const DEADLINE_MS = 6_000;

/**
 * The line V — R — W ({@link relayLine}), R's ledger holding W's honest receipt, not yet given
 * to V; R's connections wait on `timersR`.
 */
async function line(system: ActorSystem, dir: string, timersR: ManualTimers) {
  const built = await relayLine(system, dir, {
    deadlineMs: DEADLINE_MS,
    relayHoldsReceipt: true,
    timersR,
    prompt: "Through a requester whose validator restarts",
    nonce: "relay-down",
  });
  assert.equal(built.inR?.recorded, true);
  return {
    ...built,
    /** Hand the receipt to V as R passed it on: V challenges it (and announces nothing to R). */
    toV: () => built.toV(toHex(built.r.publicKey)),
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
      { convicted: false, stake: RELAY_STAKE, status: "pending" },
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
