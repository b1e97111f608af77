/**
 * Review s59: a validator's "proof withheld" fault is written to its catch-up's folder
 * (`<ledger dir>/catch-up-verdicts/`, `actors/_catch_up.ts`) ahead of its settlement, as a
 * conviction is, not after it. Validator V decides that worker W withheld its proof data, alone
 * (its gossip reaches nobody), and its ledger settles the fault (W slashed there); its process
 * ends before the catch-up keeps the verdict (stood in for by the catch-up's `add` of a verdict
 * doing nothing in V's first life: killed, or a catch-up write that failed). Before, the verdict's
 * file was written by that `add`, after the settlement, so nothing of it was on disk: V's next
 * process found the receipt settled and nothing to send, and ledger L, away meanwhile, that
 * connected to it later never heard the claim and paid W — slashed in V's ledger. Who pays now:
 * W, slashed in L as in V.
 *
 * The same for a fault a start applied from its kept ending (the ending is removed once applied,
 * so the next start had nothing to send either), and for a fault whose settlement reached the log
 * and whose history-index write failed: the actor crashed before the catch-up kept the verdict,
 * and its restart found the receipt settled. Read back only where the ledger settled it: a fault
 * recorded whose settlement a stop cut off (its ending lost too, so the start leaves the receipt
 * unpaid, nobody slashed) is not sent — peers are never claimed at for a fault that moved nothing
 * here.
 *
 * A new process is stood in for by V's ledger directory copied under another name while V is
 * down (the catch-up is one per ledger directory in a process, `CatchUp.of`). Every ledger runs
 * on the test's clock; asserted on L's ledger after the window.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { CATCH_UP_VERDICTS_DIR, CatchUp } from "../../actors/_catch_up.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import type { CatchUpItem } from "../../actors/validator_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { verdictId } from "../../protocols/verdict.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Ledger } from "../../proof/ledger.ts";
import {
  announceAssigned,
  catchUpAtStart,
  HONEST_MODELS,
  inLedgerDir,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "./_validator_fixture.ts";
import {
  inLedgerSetting,
  keptFault,
  latePeerCatchesUp,
  type LedgerSetting,
  spawnLedgerNode,
  STAKE as KEPT_STAKE,
  withholds,
} from "../network/_ledger_node.ts";
import { endingWriteFails, STAKE as WRITE_FAULT_STAKE } from "./_ledger_write_fault.ts";

const STAKE = 1_000_000;

/** Copy directory `from` to `to`, files and folders (a ledger directory at rest). */
async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [`${from}/${entry.name}`, `${to}/${entry.name}`];
    if (entry.isDirectory) await copyDir(src, dst);
    else if (entry.isFile) await Deno.copyFile(src, dst);
  }
}

/**
 * Run `life` with the catch-up's `add` of a verdict doing nothing (what a process killed right
 * after the fault's settlement leaves on disk); restored after it.
 */
async function withVerdictsNotAdded(life: () => Promise<void>): Promise<number> {
  const add = CatchUp.prototype.add;
  let skipped = 0;
  CatchUp.prototype.add = function (this: CatchUp, ...args: Parameters<CatchUp["add"]>) {
    if (args[0].kind !== "verdict") return add.apply(this, args);
    skipped++;
    return Promise.resolve();
  };
  try {
    await life();
  } finally {
    CatchUp.prototype.add = add;
  }
  return skipped;
}

Deno.test("a withheld fault whose process ended between its settlement and the catch-up's keeping it still reaches, after the restart, a ledger that was away: the worker is slashed there, not paid", () =>
  inLedgerSetting("s59-verdict-ahead", async (setting: LedgerSetting) => {
    const { dir, clock, system } = setting;
    const v = Identity.generate();
    const [worker, requester] = [Identity.generate(), Identity.generate()];
    const job = textJob(requester, crypto.randomUUID());
    const { receipt } = await proveOn(job, worker);
    const id = receiptId(receipt);
    // L: away while V decides; it has the receipt through its requester.
    const nodeL = await spawnLedgerNode(system, dir, "l", {
      identity: Identity.generate(),
      models: HONEST_MODELS,
      clock,
      validator: { challengeProbability: 0, source: withholds },
    });
    for (const key of [worker, v]) {
      await nodeL.validator.ask({ type: "deposit", key: key.publicKey, amount: STAKE });
    }
    assert.equal((await announceAssigned(nodeL.validator, receipt, job, requester)).recorded, true);

    const spawnV = (on: ActorSystem, name: string) =>
      spawnLedgerNode(on, dir, name, {
        identity: v,
        models: HONEST_MODELS,
        clock,
        validator: { challengeProbability: 1, source: withholds },
      });
    // V's first life: it decides alone, its ledger settles the fault, and the process ends
    // before the catch-up keeps the verdict.
    const skipped = await withVerdictsNotAdded(async () => {
      const first = new ActorSystem({ name: "s59-verdict-ahead-first-life" });
      try {
        const nodeV = await spawnV(first, "v");
        await nodeV.validator.ask({ type: "deposit", key: worker.publicKey, amount: STAKE });
        const handled = await announceAssigned(nodeV.validator, receipt, job, requester);
        assert.equal(handled.challenged, true);
        await handled.result;
        const readsV = ledgerReads(() => nodeV.validator, clock);
        assert.equal((await readsV.record(id))?.status, "fraud", "V slashed the worker");
      } finally {
        await first.shutdown();
      }
    });
    assert.equal(skipped, 1, "the fault's verdict was the one not added");
    await copyDir(`${dir}/v`, `${dir}/v2`);
    const nodeV2 = await spawnV(system, "v2");

    const { readsL, record, before } = await latePeerCatchesUp(nodeL, nodeV2, clock, id, worker);
    assert.ok(record !== undefined && record.credit > 0, "L would pay the work");
    assert.equal(
      (await readsL.record(id))?.status,
      "fraud",
      `L paid the worker that withheld (its stake there: ${before.stake} of ${STAKE})`,
    );
    assert.deepEqual(
      await readsL.account(worker.publicKey),
      { balance: 0, stake: STAKE - record.locked, locked: 0 },
      "slashed in L as in V, not paid",
    );
    const files = await Array.fromAsync(Deno.readDir(`${dir}/v2/${CATCH_UP_VERDICTS_DIR}`));
    assert.equal(files.length, 1, "V's fault on disk, one file");
  }));

/** The verdict ids among `items`. */
const verdictIds = (items: CatchUpItem[]) =>
  items.flatMap((item) => item.kind === "verdict" ? [verdictId(item.verdict)] : []);
/** The verdict ids with a file in the catch-up's verdict folder of `ledgerDir`. */
const filesIn = async (ledgerDir: string) =>
  (await Array.fromAsync(Deno.readDir(join(ledgerDir, CATCH_UP_VERDICTS_DIR))))
    .map((entry) => entry.name.replace(/\.cbor$/, "")).sort();

Deno.test("a fault a start applied from its kept ending, whose process ended before the catch-up kept its verdict, is in the catch-up of the next process", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const me = Identity.generate();
    const work = await keptFault(join(dir, "a"), me, { t: START });
    // The first start applies the ending (the worker slashed) and removes it; its process ends
    // before the catch-up keeps the verdict.
    const skipped = await withVerdictsNotAdded(async () => {
      await catchUpAtStart(join(dir, "a"), me);
    });
    assert.equal(skipped, 1);
    await copyDir(join(dir, "a"), join(dir, "b"));
    const { items } = await catchUpAtStart(join(dir, "b"), me);
    assert.deepEqual(
      items.map((item) => item.kind === "verdict" && item.verdict.subjectId),
      [work.id],
      "the fault lost between its settlement and the catch-up: a late ledger pays the worker",
    );
    const ledger = await Ledger.open(join(dir, "b"), me, { now: () => START });
    try {
      assert.equal(ledger.receipt(work.id)?.status, "fraud", "slashed here");
    } finally {
      await ledger.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a fault's verdict the ledger recorded but whose settlement a stop cut off (its ending lost) is not sent from the catch-up: the receipt is left unpaid here, nobody slashed, and its file removed", () =>
  inLedgerDir(async (ledgerDir) => {
    const me = Identity.generate();
    const work = await keptFault(ledgerDir, me, { t: START });
    // The ending's keep failed; the verdict was recorded, its file written ahead; the stop came
    // before the settlement.
    await ChallengeEndings.in(ledgerDir).remove(work.id);
    const verdict = withheldVerdict(work.id, work.worker.publicKey, START, me);
    const ledger = await Ledger.open(ledgerDir, me, { now: () => START });
    await ledger.recordVerdict(verdict);
    await ledger.close();
    const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
    const item = {
      kind: "verdict" as const,
      verdict,
      evidence: { receipt: work.receipt, job: work.job },
    };
    await new CatchUp(ledgerDir).add(item, until); // a verdict's file, as written ahead
    assert.deepEqual(await filesIn(ledgerDir), [verdictId(verdict)]);

    const { items } = await catchUpAtStart(ledgerDir, me);
    assert.deepEqual(verdictIds(items), [], "a fault this ledger never settled was sent");
    assert.deepEqual(await filesIn(ledgerDir), []);
    const after = await Ledger.open(ledgerDir, me, { now: () => START });
    try {
      assert.equal(after.receipt(work.id)?.status, "unpaid", "left undecided at the start");
      assert.equal(after.account(work.worker.publicKey).stake, KEPT_STAKE, "nobody slashed");
    } finally {
      await after.close();
    }
  }));

Deno.test("a verdict written ahead of its settlement is not sent before it: kept by add, its file removed by discard, read back by a new process only if the ledger recorded it", () =>
  inLedgerDir(async (ledgerDir) => {
    const by = Identity.generate();
    const until = START + DEFAULT_ECONOMICS.challengeWindowMs;
    const faultOn = async (worker: Identity) => {
      const { receipt } = await proveOn(textJob(Identity.generate(), crypto.randomUUID()), worker);
      const verdict = withheldVerdict(receiptId(receipt), worker.publicKey, START, by);
      return { kind: "verdict" as const, verdict };
    };
    const [a, b, c] = [
      await faultOn(Identity.generate()),
      await faultOn(Identity.generate()),
      await faultOn(Identity.generate()),
    ];
    const catchUp = new CatchUp(ledgerDir);
    await catchUp.write(a, until);
    assert.deepEqual(catchUp.current(START), [], "not sent before its settlement");
    assert.deepEqual(await filesIn(ledgerDir), [verdictId(a.verdict)], "on disk before it");
    await catchUp.add(a, until);
    assert.deepEqual(verdictIds(catchUp.current(START)), [verdictId(a.verdict)]);
    // Refused by the ledger (settled otherwise): its file removed, never sent.
    await catchUp.write(b, until);
    catchUp.discard(verdictId(b.verdict));
    // Written ahead, and the process ended before its settlement or its add.
    await catchUp.write(c, until);
    assert.deepEqual(verdictIds(catchUp.current(START)), [verdictId(a.verdict)]);
    assert.deepEqual(
      await filesIn(ledgerDir),
      [verdictId(a.verdict), verdictId(c.verdict)].sort(),
    );
    const recordedC = await CatchUp.read(ledgerDir, {
      now: () => START,
      recorded: (verdict) => verdictId(verdict) === verdictId(c.verdict) ? until : undefined,
    });
    assert.deepEqual(verdictIds(recordedC.current(START)), [verdictId(c.verdict)]);
    assert.deepEqual(await filesIn(ledgerDir), [verdictId(c.verdict)]);
  }));

for (const fault of ["append", "index"] as const) {
  Deno.test(`a fault whose settlement write fails with a disk error (${fault}) is in the catch-up once the restart has it settled, once`, async () => {
    let items: CatchUpItem[] = [];
    const out = await endingWriteFails("withheld", "settleFault", fault, {
      beforeClose: async (validator) => {
        items = await validator.ask<CatchUpItem[]>({ type: "catch_up" });
      },
    });
    assert.equal(out.crashes, 1);
    assert.equal(out.status, "fraud");
    assert.equal(out.worker.stake, WRITE_FAULT_STAKE - out.slash, "slashed other than once");
    assert.equal(
      items.filter((item) => item.kind === "verdict").length,
      1,
      "the fault settled here is not in the catch-up: a ledger that connects later pays the worker",
    );
  });
}
