/**
 * A validator killed while a challenge it drew is open (`actors/_validator_restart.ts`,
 * `#reopenDrawn`): the start runs the challenge again, from the receipt and job kept at its draw,
 * with the same draw and a fresh proof deadline inside the receipt's window. Before (review s79
 * crash F3), every such challenge was left `unresolved / validator_restarted`: the honest worker
 * the router's ledger paid was unpaid in the validator's, and two honest ledgers settled the same
 * signed evidence two ways.
 *
 * The kill is taken as a copy of the ledger directory made when the challenge asks the worker for
 * its proof data (what a `kill -9` there leaves on disk: the `challenge` entry written, no
 * verdict); a validator with the same key starts on the copy. The ledger clock is injected and
 * moved by the test; no timer is raced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { MAX_OPEN_CHALLENGES_PER_WORKER } from "../../actors/validator_actor.ts";
import { DRAWN_CHALLENGES_DIR, ReceiptFiles } from "../../actors/_receipt_files.ts";
import { Identity } from "../../protocols/identity.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { PROOF_DEADLINE_MS } from "../../proof/challenge_timing.ts";
import { Ledger } from "../../proof/ledger.ts";
import { copyDirNow } from "../_helpers/copy_dir.ts";
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
} from "./_validator_fixture.ts";

const STAKE = 10_000;

/** One worker's proved jobs, each receipt with its proof data as the worker serves it. */
async function provedJobs(worker: Identity, requester: Identity, n: number, cheat: boolean) {
  const jobs = [];
  for (let i = 0; i < n; i++) {
    const job = textJob(requester, `reopen-${cheat}-${i}-${crypto.randomUUID()}`);
    const { receipt, proof } = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
    jobs.push({ job, receipt, served: signServedProof(receiptId(receipt), proof, worker) });
  }
  return jobs;
}

/**
 * Start a validator with key `me` on `ledgerDir` whose challenges find the worker silent: when
 * the last of `expected` challenges asks for its proof data, the ledger directory is copied to
 * `crashed` (the kill), and `run` is awaited before the system is shut down. If no challenge asks
 * (none is open), the copy is taken once every challenge has ended. Returns how many asked.
 */
async function incarnationKilledMidChallenge(
  name: string,
  setup: { me: Identity; ledgerDir: string; crashed: string; clock: LedgerClock },
  expected: number,
  run: (validator: ActorRef<ValidatorMessage>) => Promise<void>,
): Promise<number> {
  const { me, ledgerDir, crashed, clock } = setup;
  let asked = 0;
  const never = new Promise<ServedProof | undefined>(() => {});
  const system = new ActorSystem({ name });
  try {
    const validator = await spawnValidator(system, {
      identity: me,
      ledgerDir,
      clock,
      challengeProbability: 1,
      models: HONEST_MODELS,
      source: {
        proof: () => {
          if (++asked === expected) copyDirNow(ledgerDir, crashed);
          return never;
        },
      },
    });
    await run(validator);
    const reads = ledgerReads(() => validator, clock);
    await eventually(
      async () => asked >= expected || (await reads.stats()).openChallenges === 0,
      "the challenges to ask the worker, or to end",
    );
    if (asked < expected) copyDirNow(ledgerDir, crashed);
    return asked;
  } finally {
    await system.shutdown();
  }
}

/**
 * A validator that draws every receipt challenges `worker`'s receipt and is killed while it waits
 * for the proof data, `kills` times in all, each incarnation on what the last one's disk held; then
 * one whose worker serves at once starts. The clock is moved by `pausedMs` after the first kill
 * (the time the validator was down). Returns the receipt's status and the worker's account after the window,
 * and the receipt's entries in the ledger log.
 */
async function afterKillMidChallenge(
  { cheat = false, kills = 1, pausedMs = 0 }: {
    cheat?: boolean;
    kills?: number;
    pausedMs?: number;
  },
) {
  const clock = { t: START };
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s79-reopen-" });
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const [{ job, receipt, served }] = await provedJobs(worker, requester, 1, cheat);
  const id = receiptId(receipt);
  try {
    let ledgerDir = join(dir, "ledger-0");
    let pendingUntil = 0;
    const asks: number[] = [];
    for (let kill = 0; kill < kills; kill++) {
      const crashed = join(dir, `ledger-${kill + 1}`);
      const asked = await incarnationKilledMidChallenge(
        `s79-reopen-${kill}`,
        { me, ledgerDir, crashed, clock },
        1,
        async (validator) => {
          if (kill > 0) return; // the restarted one runs its challenge again, or not
          await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
          const handled = await announceAssigned(validator, receipt, job, requester);
          assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
          const record = await ledgerReads(() => validator, clock).record(id);
          pendingUntil = record!.pendingUntil;
        },
      );
      asks.push(asked);
      ledgerDir = crashed;
      if (kill === 0) clock.t += pausedMs;
    }
    const system = new ActorSystem({ name: "s79-reopen-served" });
    let result;
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve(served) },
      });
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      const drawnLeft = (await ReceiptFiles.in(ledgerDir, DRAWN_CHALLENGES_DIR).all()).size;
      await reads.closeWindow();
      result = {
        status: (await reads.record(id))?.status,
        account: await reads.account(worker.publicKey),
        credit: receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
        drawnLeft,
        pendingUntil,
        asks,
      };
    } finally {
      await system.shutdown();
    }
    const ledger = await Ledger.open(ledgerDir, me, { now: () => clock.t });
    try {
      const kinds = ledger.entries().filter((e) => JSON.stringify(e.body).includes(id)).map((
        e,
      ) => e.kind);
      return { ...result, kinds };
    } finally {
      await ledger.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an honest receipt whose challenge was open when the validator was killed is checked again after the restart and paid", async () => {
  const { status, account, credit, drawnLeft } = await afterKillMidChallenge({});
  assert.equal(status, "final", "the restart runs the challenge again; before: unpaid");
  assert.deepEqual(account, { balance: credit, stake: STAKE, locked: 0 });
  assert.equal(drawnLeft, 0, "the draw's record is removed once its challenge ended");
});

Deno.test("a cheat whose challenge was open when the validator was killed is slashed after the restart", async () => {
  const { status, account } = await afterKillMidChallenge({ cheat: true });
  assert.equal(status, "fraud", "the re-run challenge finds the fraud; before: unpaid");
  assert.equal(account.balance, 0, "the cheat keeps no pay");
  assert.ok(account.stake < STAKE, "its stake is slashed");
});

Deno.test("a challenge re-opened at a restart and killed again replays the same: one challenge entry, paid once", async () => {
  const { status, account, credit, kinds, asks } = await afterKillMidChallenge({ kills: 2 });
  assert.deepEqual(asks, [1, 1], "the worker was asked before each kill: by the run again too");
  assert.equal(status, "final");
  assert.deepEqual(account, { balance: credit, stake: STAKE, locked: 0 });
  assert.equal(kinds.filter((k) => k === "challenge").length, 1, `entries: ${kinds}`);
  assert.ok(!kinds.includes("unresolved"), `entries: ${kinds}`);
});

Deno.test("a challenge open at the kill is run again when its fresh deadline ends inside the window, and left unpaid when it would end after it", async () => {
  // The window opened when the receipt was recorded at START; the restart comes when the fresh
  // deadline just fits in it, then one millisecond later.
  const window = DEFAULT_ECONOMICS.challengeWindowMs;
  const fits = await afterKillMidChallenge({ pausedMs: window - PROOF_DEADLINE_MS });
  assert.equal(fits.pendingUntil, START + window, "the window the test assumes");
  assert.equal(fits.status, "final");
  assert.equal(fits.account.balance, fits.credit);
  const late = await afterKillMidChallenge({ pausedMs: window - PROOF_DEADLINE_MS + 1 });
  assert.equal(late.status, "unpaid", "no deadline fits: this validator's gap, unpaid");
  assert.deepEqual(late.account, { balance: 0, stake: STAKE, locked: 0 }, "nobody slashed");
  assert.equal(late.drawnLeft, 0, "its draw's record is removed with it");
  assert.ok(late.kinds.includes("unresolved"), `entries: ${late.kinds}`);
});

Deno.test("challenges re-opened at a restart count toward their worker's cap of open challenges: more of its receipts are refused until they end", async () => {
  const clock = { t: START };
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s79-reopen-cap-" });
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const n = MAX_OPEN_CHALLENGES_PER_WORKER;
  const jobs = await provedJobs(worker, requester, n + 1, false);
  const [extra] = jobs.splice(n, 1);
  const ledgerDir = join(dir, "ledger");
  const crashed = join(dir, "crashed");
  try {
    await incarnationKilledMidChallenge(
      "s79-reopen-cap-killed",
      { me, ledgerDir, crashed, clock },
      n,
      async (validator) => {
        await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
        for (const { job, receipt } of jobs) {
          const handled = await announceAssigned(validator, receipt, job, requester);
          assert.deepEqual([handled.recorded, handled.challenged], [true, true]);
        }
      },
    );
    const served = new Map<string, ServedProof>(
      jobs.map(({ receipt, served }) => [receiptId(receipt), served]),
    );
    // The worker answers only once the test let it: until then every re-run challenge is open.
    const gate = Promise.withResolvers<void>();
    const system = new ActorSystem({ name: "s79-reopen-cap-after" });
    try {
      const validator = await spawnValidator(system, {
        identity: me,
        ledgerDir: crashed,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: {
          proof: (receipt: Receipt) => gate.promise.then(() => served.get(receiptId(receipt))),
        },
      });
      const reads = ledgerReads(() => validator, clock);
      assert.equal((await reads.stats()).openChallenges, n, "every one run again");
      const refused = await announceAssigned(validator, extra.receipt, extra.job, requester);
      assert.equal(refused.refusal, "validator_busy", "the worker's cap is full");
      gate.resolve();
      await reads.drained();
      await reads.closeWindow();
      const credit = jobs.reduce(
        (sum, { receipt }) => sum + receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
        0,
      );
      for (const { receipt } of jobs) {
        assert.equal((await reads.record(receiptId(receipt)))?.status, "final");
      }
      assert.deepEqual(await reads.account(worker.publicKey), {
        balance: credit,
        stake: STAKE,
        locked: 0,
      });
    } finally {
      await system.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a challenge killed after its ending was kept is settled from that ending at the restart, not run again from its draw's record", async () => {
  const clock = { t: START };
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s79-reopen-kept-" });
  const me = Identity.generate();
  const worker = Identity.generate();
  const requester = Identity.generate();
  const [{ job, receipt, served }] = await provedJobs(worker, requester, 1, false);
  const id = receiptId(receipt);
  const ledgerDir = join(dir, "ledger");
  const crashed = join(dir, "crashed");
  try {
    const before = new ActorSystem({ name: "s79-reopen-kept-before" });
    try {
      const validator = await spawnValidator(before, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => Promise.resolve(served) },
        // Told once the verdict is recorded, before the challenge is cleared: the kill. Its ending
        // is kept on disk, and so is the record of its draw.
        onActivity: (a) => {
          if (a.kind === "verdict") copyDirNow(ledgerDir, crashed);
        },
      });
      await validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
      await announceAssigned(validator, receipt, job, requester);
      await ledgerReads(() => validator, clock).drained();
    } finally {
      await before.shutdown();
    }
    let asked = 0;
    const after = new ActorSystem({ name: "s79-reopen-kept-after" });
    try {
      const validator = await spawnValidator(after, {
        identity: me,
        ledgerDir: crashed,
        clock,
        challengeProbability: 1,
        models: HONEST_MODELS,
        source: { proof: () => (asked++, Promise.resolve(served)) },
      });
      const reads = ledgerReads(() => validator, clock);
      await reads.drained();
      await reads.closeWindow();
      assert.equal((await reads.record(id))?.status, "final");
      assert.deepEqual(await reads.account(worker.publicKey), {
        balance: receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
        stake: STAKE,
        locked: 0,
      });
      assert.equal(asked, 0, "decided before the kill: the worker is not asked again");
    } finally {
      await after.shutdown();
    }
    const ledger = await Ledger.open(crashed, me, { now: () => clock.t });
    try {
      const kinds = ledger.entries().filter((e) => JSON.stringify(e.body).includes(id)).map((e) =>
        e.kind
      );
      assert.equal(kinds.filter((k) => k === "challenge").length, 1, `entries: ${kinds}`);
    } finally {
      await ledger.close();
    }
    assert.equal((await ReceiptFiles.in(crashed, DRAWN_CHALLENGES_DIR).all()).size, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
