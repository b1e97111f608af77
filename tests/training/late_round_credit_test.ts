/**
 * A round that outlasts its receipts' challenge window still pays the trainers whose deltas are
 * in its model (review s79 trainnet, F1). The coordinator records every report uncredited before
 * its challenge, then waits for every challenge before the outer step; one trainer's challenge
 * answer may take up to the longest opening window (10 min, as long as the challenge window), so
 * the other trainers' receipts closed unpaid meanwhile, and the round's credit after the outer
 * step found them closed: a trainer whose delta was published earned nothing. Driven through the
 * real coordinator, training validator and ledger; the round's answers are held on a gate, and
 * the ledger's clock is moved as its node's timer would see it. The balances are asserted live
 * and after the ledger is opened again from its directory.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { type Account, Ledger } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChallengeMessage } from "../../protocols/training_messages.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { oneRound, reportingTrainer } from "./_reporting_trainer.ts";
import { testModelCredit } from "./_fixtures.ts";

const STEPS = 3;
const STAKE = 10_000_000;
/** What each trainer's receipt earns (`trainingReward` of the test model). */
const CREDIT = testModelCredit(STEPS);

/** `connection`, its answer to a challenge held until `gate` resolves (`held` says it is). */
function heldAnswer(connection: Connection, gate: Promise<void>, held: () => void): Connection {
  const request = connection.request.bind(connection) as (...args: unknown[]) => Promise<unknown>;
  return {
    ...connection,
    peerKey: connection.peerKey,
    closed: connection.closed,
    request: (async (definition: unknown, body: unknown, options: unknown) => {
      if (definition === ChallengeMessage) {
        held();
        await gate;
      }
      return await request(definition, body, options);
    }) as Connection["request"],
  } as unknown as Connection;
}

interface Paid {
  fast: Account;
  slow: Account;
  accepted: string[];
  /** The same accounts in the ledger opened again from its directory after the system stopped. */
  reopened: { fast: Account; slow: Account };
}

/**
 * One round of two honest trainers, both challenged: the fast one answers at once, the slow one
 * `slowMs` of ledger time later (the ledger finalizing what closed meanwhile, as its timer does).
 */
async function round(slowMs: number): Promise<Paid> {
  const dir = await Deno.makeTempDir({ prefix: "late-round-credit-" });
  const system = new ActorSystem({ name: "late-round-credit" });
  try {
    const fast = Identity.generate();
    const slow = Identity.generate();
    const { me, clock, ledger, start, shard, join: joinRound, ended } = await oneRound(
      system,
      dir,
      {
        // Every receipt drawn; each answer's check passes: both trainers are honest.
        challenge: {
          challengeProbability: 1,
          openingDeadlineMs: 3_000,
          check: () => Promise.resolve({ ok: true }),
        },
        steps: STEPS,
        minTrainers: 2,
        stakes: [[fast, STAKE], [slow, STAKE]],
      },
    );
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    const answer = () => new Uint8Array([1, 2, 3]);
    const sent: TrainingReceipt[] = [];
    await joinRound(reportingTrainer(fast, start, shard, { answer, sent }));
    await joinRound(
      heldAnswer(reportingTrainer(slow, start, shard, { answer }), gate, () => (asked = true)),
    );
    await eventually(() => Promise.resolve(asked || undefined), "the slow trainer's challenge");
    // The fast trainer's challenge passed: its receipt is pending again, uncredited.
    const fastId = trainingReceiptId(sent[0]);
    await eventually(async () => {
      const r = await ledger.ask<ReceiptRecord | undefined>({
        type: "receipt_status",
        receiptId: fastId,
      });
      return r?.status === "pending" ? r : undefined;
    }, "the fast trainer's challenge to pass");
    clock.t += slowMs;
    await ledger.ask({ type: "finalize" });
    release();
    const done = await ended();
    clock.t += 24 * 60 * 60 * 1000; // past every window
    await ledger.ask({ type: "finalize" });
    const account = (key: Identity) => ledger.ask<Account>({ type: "account", key: key.publicKey });
    const live = { fast: await account(fast), slow: await account(slow) };
    await system.shutdown();
    const reopened = await Ledger.open(join(dir, "ledger"), me, { now: () => clock.t });
    try {
      return {
        ...live,
        accepted: done.accepted.map((k) => k === toHex(fast.publicKey) ? "fast" : "slow").sort(),
        reopened: {
          fast: { ...reopened.account(fast.publicKey) },
          slow: { ...reopened.account(slow.publicKey) },
        },
      };
    } finally {
      await reopened.close();
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const PAID: Account = { balance: CREDIT, stake: STAKE, locked: 0 };

Deno.test("a round whose other challenge is answered within the window pays both trainers in the model", async () => {
  const out = await round(60_000);
  assert.deepEqual(out.accepted, ["fast", "slow"]);
  assert.deepEqual({ fast: out.fast, slow: out.slow }, { fast: PAID, slow: PAID });
  assert.deepEqual(out.reopened, { fast: PAID, slow: PAID });
});

Deno.test("a round that outlasts the challenge window waiting for another trainer's answer still pays the trainer whose delta is in the model, also after a reopen", async () => {
  const out = await round(DEFAULT_ECONOMICS.challengeWindowMs + 60_000);
  assert.deepEqual(out.accepted, ["fast", "slow"]);
  assert.deepEqual(out.slow, PAID, "the slow trainer, held challenged");
  assert.deepEqual(out.fast, PAID, "the fast trainer, whose receipt closed before the credit");
  assert.deepEqual(out.reopened, { fast: PAID, slow: PAID }, "reopened from the log");
});
