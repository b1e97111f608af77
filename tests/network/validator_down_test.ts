/**
 * One-way evidence that reaches a node while its validator (inference or training) is down, a proof
 * request relayed through a node whose validator is down, and a receipt announcement handed to a
 * NetworkActor that is down.
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActor } from "../../actors/validator_actor.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  START,
  textJob,
} from "../actors/_validator_fixture.ts";
import {
  MAX_HANDOVERS,
  MAX_HELD_PER_PEER,
  MAX_WAIT_MS,
  ValidatorInbox,
} from "../../network/_validator_inbox.ts";
import {
  caughtCheat,
  inLedgerSetting,
  joinLedgerNodes,
  type LedgerNode,
  ledgerNodeValidator,
  spawnLedgerNode,
  spawnNodesStakingWorker,
  spawnPledgedNode,
  STAKE,
  stakeIn,
} from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator, type TakenDown } from "./_validator_down.ts";
import { join } from "node:path";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../../training/training_validator.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "../training/_loss_fraud.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger_state.ts";
import { type OutcomeBody, OutcomeMessage } from "../../protocols/training_messages.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { honestRound } from "../training/_honest_round.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../../protocols/inference_messages.ts";
import { RemoteError } from "../../protocols/protocol_errors.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { RELAY_STAKE, relayLine } from "./_relay_line.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import { paidInCAsInA, recordAssigned } from "./_assigned_receipt.ts";

// ---- validator down -------------------------------------------------------------------------------
// One-way evidence (a fraud proof, a verdict, a pledge) that reaches a node while its validator is
// down.
//
// A peer's `validation.fraud_proof` is a one-way notify, passed on once per connection: the
// sender does not send it again on that connection (the catch-up runs only on a new one). On
// this side `servePeer` handed it to the ValidatorActor with `tell`: dropped at once when no
// validator was registered (`service_unavailable`, an error frame nothing acts on), and lost with
// the mailbox when the validator crashed with it queued (`tell` resolves once it is queued). The
// receipt's window then closed with the proof never seen there: the cheat every other ledger
// slashed was paid in this one.
//
// The set-up: B — C on the test's clock, the cheat's receipt in both ledgers, the accuser's
// stake in both. C's validator is down (stopped; or crashing with the proof queued) when B
// confirms the accuser's proof and passes it on; it starts again on the same ledger.

const STAKE_VALIDATOR_DOWN = 1_000_000;

/**
 * B — C with the cheat's receipt in both ledgers; `down` takes C's validator down and returns
 * once B may pass the proof on, and a function that brings it back; the ledger outcome in C when
 * the receipt's window closes is checked against B's.
 */
async function caughtCheatWhileDown(
  label: string,
  down: (
    system: ActorSystem,
    restart: () => ValidatorActor,
  ) => Promise<{ passedOn: () => Promise<void>; back: () => Promise<void> }>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: `s58-validator-down-${label}` });
  try {
    const [b, c, accuser, worker, requester] = Array.from({ length: 5 }, Identity.generate);
    const node = (name: string, identity: Identity) =>
      spawnPledgedNode(system, dir, name, identity, clock);
    const [nodeB, nodeC] = [await node("b", b), await node("c", c)];
    const { id, fraudProof } = await caughtCheat(
      [nodeB, nodeC],
      { worker, requester, accuser, tag: `s58-validator-down-${label}` },
      [worker, accuser],
      STAKE_VALIDATOR_DOWN,
    );
    await joinLedgerNodes(nodeB, nodeC);
    await eventually(async () => (await stakeIn(nodeC, b)) === 10_000, "C to record B's pledge");

    const { passedOn, back } = await down(
      system,
      () => ledgerNodeValidator(dir, "c", { identity: c, models: HONEST_MODELS, clock }),
    );
    // Inside the receipt's window, A's proof reaches B, which confirms it and passes it on.
    clock.t += 60_000;
    assert.ok(clock.t < START + DEFAULT_ECONOMICS.challengeWindowMs / 2);
    const handled = await nodeB.validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "dd".repeat(32),
    });
    assert.equal(handled.queued, true);
    await handled.result;
    const readsB = ledgerReads(() => nodeB.validator, clock);
    assert.equal((await readsB.record(id))?.status, "fraud");
    await passedOn();
    await back();
    // Looked up by name: the validator that runs now is a new incarnation (or a new ref).
    const readsC = ledgerReads(() => system.lookup<ValidatorMessage>("c/validator")!, clock);
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
    ).catch(() => {}); // lost: the window closes below

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the cheat B slashed");
    const account = await readsC.account(worker.publicKey);
    assert.equal(account.balance, 0, "the cheat was paid in C");
    assert.equal(account.stake, (await readsB.account(worker.publicKey)).stake);
    assert.ok(account.stake < STAKE_VALIDATOR_DOWN, "the cheat was not slashed in C");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a fraud proof passed on while the peer's validator is stopped is handed to it when it starts again: the cheat is slashed there too, not paid", async () => {
  await caughtCheatWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "c/validator", restart),
  );
});

Deno.test("a fraud proof queued at a validator that crashes is handed to its next incarnation: the cheat is slashed there too, not paid", async () => {
  await caughtCheatWhileDown("crashed", (system, restart) =>
    crashingValidator<ValidatorMessage>(
      system,
      "c/validator",
      restart,
      "validator",
      "B's proof to be queued at C's validator",
    ));
});

/** A validator stand-in that notes what it takes, or crashes on every `pledge` when `poisoned`. */
class Taking implements Actor<ValidatorMessage> {
  constructor(readonly taken: string[], readonly poisoned = false) {}

  receive(message: ValidatorMessage): unknown {
    if (this.poisoned && message.type === "pledge") throw new Error("poison (test)");
    this.taken.push(`${message.type} ${(message as { origin?: string }).origin}`);
    return undefined;
  }
}

/** A one-way message from `peer` (its body does not matter to the inbox). */
const verdictFrom = (peer: string, n: number) =>
  ({ type: "verdict", verdict: { n } as never, origin: peer }) as const;

Deno.test("the inbox holds a peer's evidence only up to the peer's share while no validator runs, and hands over what it held when one starts", async () => {
  const system = new ActorSystem({ name: "s58-inbox-share" });
  try {
    const inbox = new ValidatorInbox(system, "v");
    for (let n = 0; n < MAX_HELD_PER_PEER + 5; n++) await inbox.deliver("p1", verdictFrom("p1", n));
    await inbox.deliver("p2", verdictFrom("p2", 0));
    assert.equal(inbox.held, MAX_HELD_PER_PEER + 1, "p1 past its share is dropped, p2 is not");
    const taken: string[] = [];
    await system.spawn<ValidatorMessage>({ name: "v", factory: () => new Taking(taken) });
    await eventually(() => Promise.resolve(inbox.held === 0), "the inbox to hand over");
    await eventually(
      () => Promise.resolve(taken.length === MAX_HELD_PER_PEER + 1),
      "the validator to take them",
    );
    assert.equal(taken.filter((t) => t === "verdict p2").length, 1);
  } finally {
    await system.shutdown();
  }
});

Deno.test("evidence that crashes the validator by itself is handed to MAX_HANDOVERS incarnations, then dropped", async () => {
  const system = new ActorSystem({ name: "s58-inbox-poison" });
  try {
    const crashes: string[] = [];
    system.events.subscribe((e) => e.type === "crashed" && e.name === "v" && crashes.push(e.name));
    const taken: string[] = [];
    await system.spawn<ValidatorMessage>({ name: "v", factory: () => new Taking(taken, true) });
    const inbox = new ValidatorInbox(system, "v");
    await inbox.deliver("p1", {
      type: "pledge",
      pledge: {} as never,
      origin: "p1",
    });
    await inbox.deliver("p1", verdictFrom("p1", 0));
    await eventually(() => Promise.resolve(taken.length === 1), "the verdict to be taken");
    assert.equal(crashes.length, MAX_HANDOVERS);
    assert.equal(inbox.held, 0);
  } finally {
    await system.shutdown();
  }
});

// ---- training validator down ----------------------------------------------------------------------
// A training fraud proof that reaches a node while its training validator is down.
//
// A peer's `training.fraud_proof` (and `training.receipt`) is a one-way notify, passed on once
// per connection: the sender does not send it again on that connection (the training catch-up
// runs only on a new one). On this side `servePeer` handed it to the TrainingValidator with
// `tell`: dropped at once when none was registered (`service_unavailable`, an error frame nothing
// acts on), and lost with the mailbox when it crashed with it queued. The lazy trainer's receipt
// then stayed pending and was paid here when its window closed, while the accuser's ledger
// slashed it — as for the inference evidence (above).
//
// The set-up: A — C on the test's clock, the lazy trainer's receipt and stake in both ledgers,
// A's pledge in both. C's training validator is down (stopped; or crashing with the proof
// queued) when A convicts the trainer and passes its proof on; it starts again.

/**
 * A — C holding the lazy receipt; `down` takes C's training validator down (given a factory of
 * the real one) and returns once A may convict, with a wait for the proof to have reached C and
 * a function that brings C's training validator back; then C's ledger outcome when the receipt's
 * window closes is checked.
 */
async function convictedWhileDown(
  label: string,
  down: (
    system: ActorSystem,
    name: string,
    restart: () => TrainingValidator,
  ) => Promise<{ passedOn: () => Promise<void>; back: () => Promise<void> }>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s58-training-down-${label}-` });
  const system = new ActorSystem({ name: `s58-training-down-${label}` });
  const clock: LedgerClock = { t: START };
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const node = async (name: string, identity: Identity) => {
      const trainingName = `${name}/training-validator`;
      const ledger = await spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, STAKE, 1),
        models: HONEST_MODELS,
        clock,
        trainingValidator: trainingName,
      });
      const make = () =>
        new TrainingValidator({
          identity,
          models,
          ledger: `${name}/validator`,
          network: `${name}/network`,
          challengeProbability: 0,
          now: () => clock.t,
        });
      const training = await system.spawn<TrainingValidatorMessage>({
        name: trainingName,
        factory: make,
      });
      return { ...ledger, training, trainingName, make };
    };
    const [aKey, cKey] = [Identity.generate(), Identity.generate()];
    const [a, c] = [await node("a", aKey), await node("c", cKey)];
    assert.equal(
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(aKey, STAKE, 1) }),
      true,
    );
    const proof = lossFraud(start.cid, aKey);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(a.validator, a.training, proof, start.cid);
    await recordLazyReceipt(c.validator, c.training, proof, start.cid);
    await joinLedgerNodes(a, c);
    const readsC = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await readsC.account(aKey.publicKey)).stake === STAKE,
      "C to record A's pledge",
    );

    const { passedOn, back } = await down(system, c.trainingName, c.make);
    // A's challenge caught the trainer: its proof checked, settled in A's ledger, passed on to C.
    await a.training.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "local",
    });
    const readsA = ledgerReads(() => a.validator, clock);
    await eventually(async () => (await readsA.record(id))?.status === "fraud", "A's conviction");
    await passedOn();
    await back();
    // A wait for C's re-run of the step (the shared give-up time: a re-run beside other test
    // files can take seconds); then the window closes on whatever C has.
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
    ).catch(() => {});

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the trainer A slashed");
    const trainer = await readsC.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer was paid in C");
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer was not slashed in C");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a training fraud proof passed on while the peer's training validator is stopped is handed to it when it starts again: the lazy trainer is slashed there too, not paid", async () => {
  await convictedWhileDown("stopped", stoppedValidator);
});

Deno.test("a training fraud proof queued at a training validator that crashes is handed to its next incarnation: the lazy trainer is slashed there too, not paid", async () => {
  await convictedWhileDown(
    "crashed",
    (system, name, restart) =>
      crashingValidator<TrainingValidatorMessage>(
        system,
        name,
        restart,
        "training validator",
        "A's proof to be queued at C's training validator",
      ),
  );
});

// ---- outcome validator down -----------------------------------------------------------------------
// A round's outcome that reaches a node while its training validator is down.
//
// A peer's `training.outcome` is a one-way notify, passed on once per connection, like the
// training receipts and fraud proofs (above). Handed to
// the TrainingValidator with `tell`, it was dropped at once when none was registered (an error
// frame nothing acts on) and lost with the mailbox when it crashed with it queued: this node then
// never audited the round, and its honest trainers went uncredited in this ledger while every
// other ledger credited them.
//
// The set-up: A — C on the test's clock; the round's coordinator and trainers staked in C's
// ledger. C's training validator is down (stopped; or crashing with the outcome queued) when A
// passes the round's signed outcome on; it starts again.

/** Stake of the round's coordinator and trainers in C's ledger: above any bar to be audited. */
const ROUND_STAKE = 1_000_000;

/**
 * A — C, the round's keys staked in C; `down` takes C's training validator down (given a factory
 * of the real one) and returns once A may pass the outcome on, with a wait for it to have reached
 * C and a function that brings C's training validator back; then C's ledger is checked: the
 * round's receipts recorded there with their credit.
 */
async function outcomeWhileDown(
  label: string,
  down: (
    system: ActorSystem,
    name: string,
    restart: () => TrainingValidator,
  ) => Promise<{ passedOn: () => Promise<void>; back: () => Promise<void> }>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s58-outcome-down-${label}-` });
  const system = new ActorSystem({ name: `s58-outcome-down-${label}` });
  const clock: LedgerClock = { t: START };
  try {
    // The round's files are where C's training validator looks for them: no fetch needed.
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storageRef });
    const round = await honestRound(models, 3);
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    const [aKey, cKey] = [Identity.generate(), Identity.generate()];
    const a = await spawnLedgerNode(system, dir, "a", {
      identity: aKey,
      pledge: signStakePledge(aKey, STAKE, 1),
      models: HONEST_MODELS,
      clock,
      // Offers the training protocol (to pass the outcome on); A's own validator is not needed.
      trainingValidator: "a/training-validator",
    });
    const trainingName = "c/training-validator";
    const c = await spawnLedgerNode(system, dir, "c", {
      identity: cKey,
      pledge: signStakePledge(cKey, STAKE, 1),
      models: HONEST_MODELS,
      clock,
      trainingValidator: trainingName,
    });
    const make = () =>
      new TrainingValidator({
        identity: cKey,
        models,
        ledger: "c/validator",
        network: "c/network",
        challengeProbability: 0,
        now: () => clock.t,
        serve: () => Promise.resolve(),
      });
    await system.spawn<TrainingValidatorMessage>({ name: trainingName, factory: make });
    for (const key of [coordinator, ...round.trainers]) {
      await c.validator.ask({ type: "deposit", key: key.publicKey, amount: ROUND_STAKE });
    }
    const connection = await joinLedgerNodes(a, c);
    const readsC = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await readsC.account(aKey.publicKey)).stake === STAKE,
      "C to record A's pledge",
    );
    const recorded = (receipt: OutcomeBody["reports"][number]["receipt"]) =>
      c.validator.ask<ReceiptRecord | undefined>({
        type: "receipt_status",
        receiptId: trainingReceiptId(receipt),
      });

    const { passedOn, back } = await down(system, trainingName, make);
    // A passes the round's signed outcome on to C, once on this connection.
    await connection.notify(OutcomeMessage, signed);
    await passedOn();
    await back();
    // A wait for C's audit (it redoes the outer step: the shared give-up time, as a re-run
    // beside other test files can take seconds); then C's ledger is read.
    await eventually(
      async () => {
        for (const { receipt } of round.outcome.reports) {
          if (((await recorded(receipt))?.credit ?? 0) <= 0) return false;
        }
        return true;
      },
      "C to credit the round's trainers",
    ).catch(() => {});

    for (const { receipt } of round.outcome.reports) {
      const record = await recorded(receipt);
      assert.ok(record !== undefined, "the round's receipt was never recorded in C's ledger");
      assert.ok(record.credit > 0, "the honest trainer went uncredited in C's ledger");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a round's outcome passed on while the peer's training validator is stopped is handed to it when it starts again: the round's trainers are credited there too", async () => {
  await outcomeWhileDown("stopped", stoppedValidator);
});

Deno.test("a round's outcome queued at a training validator that crashes is handed to its next incarnation: the round's trainers are credited there too", async () => {
  await outcomeWhileDown(
    "crashed",
    (system, name, restart) =>
      crashingValidator<TrainingValidatorMessage>(
        system,
        name,
        restart,
        "training validator",
        "A's outcome to be queued at C's training validator",
      ),
  );
});

// ---- relay validator down -------------------------------------------------------------------------
// A proof request relayed through a node whose own validator is down.
//
// A validator V not connected to the worker W asks the job's requester R to relay
// `inference.get_proof { receiptId, worker }`; R relays only for a receipt its own ledger holds,
// and asked its ValidatorActor at once: with none registered (stopped, not started again yet)
// it answered `service_unavailable` at once. To V that is a relay's failure, not the worker's
// answer: it asks again in its next round. But its rounds pause between them (0.5 s doubling to
// 8 s), so a refusal in V's last round, from a validator back a moment later, was never asked
// again, and with a route up (R) the missing proof was W's "withholding": the honest worker was
// slashed in V's ledger for R's validator restart. The fix holds R's relay at R while its
// validator is down (`ValidatorInbox.ask`, as a receipt announcement is held, review s59), so
// the request in V's round is relayed the moment R's validator is back.
//
// The set-up is `dial_by_key_test.ts`'s V — R — W line (`_relay_line.ts`: V and W never meet, R
// holds the receipt). R's validator is stopped before V's challenge, and started again only once
// V's relay request is held at R (R's side of the V — R connection has a request in flight: the
// receipt came to V from R, so V announces nothing to R that could be taken for it). On the code
// before the fix R never holds it, R's validator stays down for V's whole deadline, and the ledger
// tells. R's wait runs on R's `PeerServices.timers`, a clock the first test never moves: nothing
// races a deadline.

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

Deno.test("a relay whose validator is down when the validator asks it holds the proof request until its validator is back: the honest worker is cleared, not slashed, in the asking validator's ledger", async () => {
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

Deno.test("a relay holds a proof request for its validator MAX_WAIT_MS on its connections' clock at most, then answers service_unavailable as before", async () => {
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

// ---- wire announce network down -------------------------------------------------------------------
// The ValidatorActor hands the announcement of a receipt it recorded with this node's assignment
// (`announce_receipt`) to its own NetworkActor, which sends it to the ledgers connected at that
// moment. A connection's catch-up carried no receipts, so an announcement the NetworkActor never
// sent — it was stopped (not started again yet) or crashed with it queued — was the assignment lost
// for every other ledger: the honest worker that delivered every token was paid in the forwarding
// node's ledger and in no other. Now the catch-up carries this node's assigned receipts while they
// are pending (`actors/_catch_up_receipts.ts`), sent when a ledger-keeping peer connects.
//
// The set-up: A (the forwarding node: its validator records the worker's receipt with A's
// assignment, `announce: true`, as `NetworkInferencePort` hands it over) and C, joined, on the
// test's clock, the worker staked in both. A's NetworkActor is down when A's validator records the
// receipt; it comes back, A and C connect again, and both windows close.

const WORKER_STAKE = 1_000_000;

/**
 * A's NetworkActor is taken down by `down` while A's validator records (and announces) the
 * worker's assigned receipt; once the announcement can have reached it, it comes back and A
 * dials C again (`joinedBefore` false: A and C meet only then, A's NetworkActor up all along). The
 * ledger outcome in C when the window closes: the worker is paid, as in A.
 */
async function announcedWhileNetworkDown(
  label: string,
  down: (system: ActorSystem, restart: () => Actor<NetworkMessage>) => Promise<TakenDown>,
  joinedBefore = true,
): Promise<void> {
  await inLedgerSetting(`s60-wire-${label}`, async (setting) => {
    const { clock, system } = setting;
    const [a, c, worker] = [Identity.generate(), Identity.generate(), Identity.generate()];
    const { nodeA, nodeC } = await spawnNodesStakingWorker(setting, { a, c }, worker, WORKER_STAKE);
    if (joinedBefore) await joinLedgerNodes(nodeA, nodeC);

    const { passedOn, back } = await down(
      system,
      () => new NetworkActor({ identity: a, services: { validator: "a/validator" } }),
    );
    const job = textJob(a, `s60-wire-${label}`);
    // As the forwarding port hands it over (`NetworkInferencePort`, `#checked`).
    const recorded = await recordAssigned(nodeA, a, worker, job);
    await passedOn();
    await back();
    const aAgain: LedgerNode = {
      validator: nodeA.validator,
      network: system.lookup<NetworkMessage>("a/network")!,
    };
    await joinLedgerNodes(aAgain, nodeC);

    await paidInCAsInA(
      clock,
      { nodeA, nodeC },
      a,
      worker,
      recorded,
      "C to record the receipt A announced",
    );
  });
}

Deno.test("a receipt A's validator announces while A's NetworkActor is stopped reaches C once it starts again and connects: the honest worker is paid tokens × price in C as in A", async () => {
  await announcedWhileNetworkDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "a/network", restart),
  );
});

Deno.test("a receipt announcement queued at A's NetworkActor when it crashes reaches C through its next incarnation: the honest worker is paid tokens × price in C as in A", async () => {
  await announcedWhileNetworkDown(
    "crashed",
    (system, restart) =>
      crashingValidator<NetworkMessage>(
        system,
        "a/network",
        restart,
        "network",
        "the announcement to be queued at A's network",
      ),
  );
});

Deno.test("a receipt A's validator announces while A has no ledger-keeping peer reaches C when C connects: the honest worker is paid tokens × price in C as in A", async () => {
  const up = () => Promise.resolve();
  await announcedWhileNetworkDown(
    "unconnected",
    () => Promise.resolve({ passedOn: up, back: up }),
    false,
  );
});
