/**
 * Review s58: one-way evidence (a fraud proof, a verdict, a pledge) that reaches a node while its
 * validator is down.
 *
 * A peer's `validation.fraud_proof` is a one-way notify, passed on once per connection: the
 * sender does not send it again on that connection (the catch-up runs only on a new one). On
 * this side `servePeer` handed it to the ValidatorActor with `tell`: dropped at once when no
 * validator was registered (`service_unavailable`, an error frame nothing acts on), and lost with
 * the mailbox when the validator crashed with it queued (`tell` resolves once it is queued). The
 * receipt's window then closed with the proof never seen there: the cheat every other ledger
 * slashed was paid in this one.
 *
 * The set-up: B — C on the test's clock, the cheat's receipt in both ledgers, the accuser's
 * stake in both. C's validator is down (stopped; or crashing with the proof queued) when B
 * confirms the accuser's proof and passes it on; it starts again on the same ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorActor } from "../../actors/validator_actor.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { eventually } from "../_helpers/wait.ts";
import { HONEST_MODELS, ledgerReads, START } from "../actors/_validator_fixture.ts";
import {
  MAX_HANDOVERS,
  MAX_HELD_PER_PEER,
  ValidatorInbox,
} from "../../network/_validator_inbox.ts";
import {
  caughtCheat,
  joinLedgerNodes,
  ledgerNodeValidator,
  spawnPledgedNode,
  stakeIn,
} from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator } from "./_validator_down.ts";

const STAKE = 1_000_000;

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
      STAKE,
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
    assert.ok(account.stake < STAKE, "the cheat was not slashed in C");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s58: a fraud proof passed on while the peer's validator is stopped is handed to it when it starts again: the cheat is slashed there too, not paid", async () => {
  await caughtCheatWhileDown(
    "stopped",
    (system, restart) => stoppedValidator(system, "c/validator", restart),
  );
});

Deno.test("review s58: a fraud proof queued at a validator that crashes is handed to its next incarnation: the cheat is slashed there too, not paid", async () => {
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

Deno.test("review s58: the inbox holds a peer's evidence only up to the peer's share while no validator runs, and hands over what it held when one starts", async () => {
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

Deno.test("review s58: evidence that crashes the validator by itself is handed to MAX_HANDOVERS incarnations, then dropped", async () => {
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
