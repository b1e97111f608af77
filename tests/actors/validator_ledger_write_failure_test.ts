/**
 * A challenge's ending outlives a ledger write that fails with a disk error. The ValidatorActor
 * owns its ledger: a failed write poisons it, the actor crashes, and its supervisor restarts it
 * with the ledger reopened from disk. Before, the restart found the receipt still `challenged`
 * with nothing kept of how its challenge had ended, and left it unresolved: an honest worker
 * whose challenge passed was never paid there, a cheat the validator had caught (its own fraud
 * proof, or proof data withheld) kept its stake. The ending is now kept on disk before the ledger
 * is asked, and applied at the restart; an ending the ledger already has (the write reached the
 * log, the crash came after it) is applied once, not twice.
 *
 * The failing write is a fake (`_ledger_write_fault.ts`): the ledger log's append (nothing
 * written) or the history index's apply (the entry durable in the log) throws an I/O-like error
 * once, during one named ledger call. No clock is raced: the ledger's clock is the test's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { endingWriteFails, peerProofWriteFails, STAKE } from "./_ledger_write_fault.ts";

Deno.test("a valid challenge whose clearing write fails with a disk error is cleared after the restart: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a clearing whose write fails again at the restart is applied at the restart after it: the honest worker is paid", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "append", { times: 2 });
  assert.equal(out.crashes, 2, "the restart's write did not fail");
  assert.equal(out.status, "final", `the honest work ended ${out.status}`);
  assert.equal(out.worker.balance, out.reward, "the honest worker was not paid");
});

Deno.test("a caught cheat whose fraud settlement write fails with a disk error is slashed after the restart, and the validator earns its share", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "append");
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - out.slash, "the cheat kept its stake");
  assert.equal(out.worker.balance, 0, "the cheat was paid");
  assert.equal(out.validator.balance, out.slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a worker that withheld its proof data, whose fault write fails with a disk error, is slashed after the restart", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "append");
  assert.equal(out.status, "fraud", `the withheld receipt ended ${out.status}`);
  assert.equal(out.worker.stake, STAKE - out.slash, "the worker that withheld kept its stake");
  assert.equal(out.worker.balance, 0);
});

Deno.test("a clearing that reached the ledger before the crash is applied once after the restart: the worker is paid once", async () => {
  const out = await endingWriteFails("honest", "clearChallenge", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "final");
  assert.equal(out.worker.balance, out.reward, "paid other than once");
  assert.equal(out.worker.stake, STAKE);
});

Deno.test("a fraud settlement that reached the ledger before the crash is applied once after the restart: the cheat is slashed once", async () => {
  const out = await endingWriteFails("cheat", "settleFraud", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash, "slashed other than once");
  assert.equal(out.validator.balance, out.slash * DEFAULT_ECONOMICS.validatorRewardShare);
});

Deno.test("a fault that reached the ledger before the crash is applied once after the restart: slashed once", async () => {
  const out = await endingWriteFails("withheld", "settleFault", "index");
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud");
  assert.equal(out.worker.stake, STAKE - out.slash, "slashed other than once");
});

/** After one crash and the restart, the cheat a peer's proof caught is slashed here and not paid. */
function assertCheatSlashedAfterRestart(
  out: Awaited<ReturnType<typeof peerProofWriteFails>>,
): void {
  assert.equal(out.crashes, 1);
  assert.equal(out.status, "fraud", `the cheat's receipt ended ${out.status}`);
  assert.equal(out.cheat.stake, STAKE - out.slash, "the cheat kept its stake");
  assert.equal(out.cheat.balance, 0, "the cheat was paid");
}

Deno.test("a peer's fraud proof whose settlement write fails with a disk error is settled after the restart: the cheat it caught is slashed here", async () => {
  const out = await peerProofWriteFails("settlement");
  assertCheatSlashedAfterRestart(out);
  assert.ok(out.accuser.balance > 0, "the accuser was not rewarded");
});

Deno.test("a peer's fraud proof checked when another write fails (its settlement queued behind it) is settled after the restart: the cheat is slashed here", async () => {
  assertCheatSlashedAfterRestart(await peerProofWriteFails("checked"));
});
