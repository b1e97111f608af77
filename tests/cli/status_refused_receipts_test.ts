/**
 * `cli.ts status` counts as receipts only those the ledger recorded, and names a ledger that
 * cannot write (review s71, finding 1: an immutable `ledger.log` showed `this run: receipts 3` with
 * none recorded, and nothing said why). The state is the node's own dashboard source over a
 * stand-in validator (`tests/node/_refusing_validator.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { describe } from "../../cli/status_command.ts";
import { emptyValidatorStats } from "../../actors/validator_messages.ts";
import { REFUSING_STATS, validatorSource } from "../node/_refusing_validator.ts";

/** The lines `status` prints for a node whose validator source is `source`. */
async function statusOf(source: ReturnType<typeof validatorSource>): Promise<string[]> {
  try {
    return describe({
      node: { key: "ab", version: "0.1.0" },
      tree: { status: "running", children: [] },
      validator: await source.validator(),
    });
  } finally {
    await source.close();
  }
}

Deno.test("status does not count receipts the ledger refused as recorded, and names the ledger that cannot write", async () => {
  const lines = await statusOf(validatorSource());
  const ledger = lines.find((l) => l.startsWith("ledger"));
  // Failed before the fix: `this run: receipts 3, challenged 0, …`, and no word of the fault.
  assert.equal(
    ledger,
    "ledger   credit 0, stake 1000000 (locked 0); this run: receipts 0, refused 3, " +
      "challenged 0, fraud 0, slashes 0",
  );
  assert.ok(
    lines.includes("         ledger writes failing (EPERM, 3 failed): see /healthz"),
    lines.join("\n"),
  );
});

Deno.test("status counts one receipt per job (copies apart) and says nothing of refusals or faults while there are none", async () => {
  const lines = await statusOf(validatorSource({
    ...emptyValidatorStats(),
    received: 4,
    fromPeers: 2,
    copies: 1,
    copiesFromPeers: 1,
    own: 2,
  }));
  const ledger = lines.filter((l) => l.startsWith("ledger") || l.startsWith("   "));
  assert.deepEqual(ledger, [
    "ledger   credit 0, stake 1000000 (locked 0); this run: receipts 3, challenged 0, " +
    "fraud 0, slashes 0",
  ]);
});

Deno.test("status says nothing of a ledger fault once a reopen from disk succeeded (as /healthz)", async () => {
  const fault = { ...REFUSING_STATS.ledgerWriteFault!, reopens: 1, reopenedAt: 5 };
  const lines = await statusOf(validatorSource({ ...REFUSING_STATS, ledgerWriteFault: fault }));
  assert.ok(!lines.some((l) => l.includes("writes failing")), lines.join("\n"));
});
