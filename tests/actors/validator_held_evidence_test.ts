/**
 * What a validator holds waiting for something else survives its restart
 * (`actors/_held_evidence.ts`): a peer's receipt refused for want of its worker's pledge is
 * recorded when the pledge comes after the restart, and a peer's fraud proof that outran its
 * receipt settles when the receipt comes after the restart. Before, both were in memory only: the
 * honest work went unpaid here for good, and the cheat the proof caught was paid here.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { HELD_EVIDENCE_FILE } from "../../actors/_held_evidence.ts";
import type { FraudProofHandled, ValidatorMessage } from "../../actors/validator_messages.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { Identity } from "../../protocols/identity.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { pathExists } from "../../storage/path_exists.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";

const STAKE = 100_000;

/**
 * A cheat's work (another model under the honest CID), and `accuser`'s proof of it sent to
 * `validator` before the receipt: held for the receipt.
 */
async function caughtBeforeItsReceipt(
  validator: ActorRef<ValidatorMessage>,
  nonce: string,
  who: { requester: Identity; cheat: Identity; accuser: Identity; peer: string },
) {
  const cheatJob = textJob(who.requester, nonce);
  const cheatWork = await proveOn(cheatJob, who.cheat, f.otherSeed);
  const { fraudProof } = await validateReceipt(
    { job: cheatJob, receipt: cheatWork.receipt, proof: cheatWork.proof },
    f.honest,
    who.accuser,
    { now: () => START },
  );
  assert.ok(fraudProof);
  const held = await validator.ask<FraudProofHandled>({
    type: "fraud_proof",
    proof: fraudProof,
    origin: who.peer,
  });
  assert.equal(held.awaitingReceipt, true);
  return { cheatJob, cheatWork };
}

Deno.test("a receipt waiting for its worker's pledge and a fraud proof waiting for its receipt are taken up after a restart: the work is recorded, the cheat slashed", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, honest, cheat, accuser, requester] = Array.from({ length: 5 }, Identity.generate);
  const peer = "ab".repeat(32);
  const system = new ActorSystem({ name: "held-evidence" });
  try {
    const ledgerDir = join(dir, "ledger");
    const spawn = () =>
      spawnValidator(system, {
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    let validator: ActorRef<ValidatorMessage> = await spawn();
    const ledger = ledgerReads(() => validator, clock);
    const pledge = (key: Identity) =>
      validator.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, 1), origin: peer });
    await pledge(cheat);
    await pledge(accuser);

    // Honest work whose worker's pledge has not come yet: refused, kept until it does.
    const honestJob = textJob(requester, "held-honest");
    const honestWork = await proveOn(honestJob, honest);
    const refused = await announceAssigned(validator, honestWork.receipt, honestJob, requester);
    assert.equal(refused.refusal, "insufficient_stake");

    // A cheat caught elsewhere: the accuser's proof comes before the receipt.
    const { cheatJob, cheatWork } = await caughtBeforeItsReceipt(validator, "held-cheat", {
      requester,
      cheat,
      accuser,
      peer,
    });

    await system.stop("node/validator");
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the stop");
    validator = await spawn();
    // Taken in at the start, and kept on disk until a keep replaces it (a process killed now
    // still has it).
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept past the start");

    await pledge(honest);
    assert.equal((await ledger.record(receiptId(honestWork.receipt)))?.status, "pending");
    const announced = await announceAssigned(validator, cheatWork.receipt, cheatJob, requester);
    assert.equal(announced.recorded, true);
    const cheatId = receiptId(cheatWork.receipt);
    // The held proof's check runs off the mailbox; its settlement comes back through it.
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the held proof to be checked",
    );
    assert.equal((await ledger.record(cheatId))?.status, "fraud");
    assert.ok((await ledger.account(cheat.publicKey)).stake < STAKE);

    await ledger.closeWindow();
    assert.ok((await ledger.account(honest.publicKey)).balance > 0, "the honest work is paid");
    assert.equal((await ledger.account(cheat.publicKey)).balance, 0, "the cheat is not");
    // Nothing waits any more: the tick removed the file.
    assert.equal(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), false, "removed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("what a validator holds is kept at each finalize tick, not only at its stop: a ledger directory as a kill -9 leaves it still takes up the held proof, and the cheat is slashed", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const [me, cheat, accuser, requester] = Array.from({ length: 4 }, Identity.generate);
  const peer = "ab".repeat(32);
  const system = new ActorSystem({ name: "held-evidence-kill" });
  try {
    const ledgerDir = join(dir, "ledger");
    const spawnIn = (name: string, ledgerDir: string) =>
      spawnValidator(system, {
        name,
        identity: me,
        ledgerDir,
        clock,
        challengeProbability: 0,
        models: HONEST_MODELS,
      });
    const validator = await spawnIn("validator", ledgerDir);
    for (const key of [cheat, accuser]) {
      await validator.ask({ type: "pledge", pledge: signStakePledge(key, STAKE, 1), origin: peer });
    }
    const { cheatJob, cheatWork } = await caughtBeforeItsReceipt(validator, "held-kill", {
      requester,
      cheat,
      accuser,
      peer,
    });
    assert.equal(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), false, "not yet kept");
    await validator.ask({ type: "finalize" });
    assert.ok(await pathExists(join(ledgerDir, HELD_EVIDENCE_FILE)), "kept at the tick");
    // The directory as a process killed outright now leaves it: copied while the validator runs
    // (its ledger's entries are fsync'd as they are appended), never stopped.
    const killed = join(dir, "killed");
    await Deno.mkdir(killed);
    for await (const entry of Deno.readDir(ledgerDir)) {
      if (entry.isFile) await Deno.copyFile(join(ledgerDir, entry.name), join(killed, entry.name));
    }
    const restarted = await spawnIn("validator-after-kill", killed);
    const ledger = ledgerReads(() => restarted, clock);
    const announced = await announceAssigned(restarted, cheatWork.receipt, cheatJob, requester);
    assert.equal(announced.recorded, true);
    await eventually(
      async () => (await ledger.stats()).fraudProofsChecked === 1,
      "the kept proof to be checked",
    );
    assert.equal((await ledger.record(receiptId(cheatWork.receipt)))?.status, "fraud");
    await ledger.closeWindow();
    assert.equal((await ledger.account(cheat.publicKey)).balance, 0, "the cheat is not paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a held-evidence file that is not CBOR is removed at the start, which goes on", async () => {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name: "held-evidence-garbage" });
  try {
    await Deno.writeFile(join(dir, HELD_EVIDENCE_FILE), new Uint8Array([0xff, 0x00, 0x13]));
    const validator = await spawnValidator(system, {
      identity: Identity.generate(),
      ledgerDir: dir,
      clock,
      challengeProbability: 0,
      models: HONEST_MODELS,
    });
    assert.equal((await ledgerReads(() => validator, clock).stats()).received, 0);
    assert.equal(await pathExists(join(dir, HELD_EVIDENCE_FILE)), false);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
