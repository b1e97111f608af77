/**
 * `ledger verify|repair --json` answer every exit-1 outcome with one JSON object on stdout
 * (review s75 G4): a missing identity.key and a `ledger` that is a file printed text on stderr
 * and nothing on stdout, and verify answered every error in text.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ledger, type LedgerRun } from "./_ledger_cli.ts";

/** The one JSON object `run` printed, with exit code 1 and nothing on stderr. */
function jsonError(run: LedgerRun): { code: string; message: string } {
  assert.equal(run.code, 1, run.err);
  assert.equal(run.err, "", "nothing on stderr");
  const answer = JSON.parse(run.out);
  assert.equal(answer.ok, false);
  return answer.error;
}

Deno.test("ledger repair|verify --json print {ok: false, error} on stdout for a missing identity.key, a ledger that is a file and a missing data directory", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-json-" });
  try {
    // A directory without identity.key: repair needs the key.
    const noKey = jsonError(await ledger("repair", "--json", "--data", dataDir));
    assert.equal(noKey.code, "identity_missing");
    assert.match(noKey.message, /identity\.key not found/);

    // `ledger` is a file where the node keeps its ledger.
    await Deno.writeTextFile(join(dataDir, "ledger"), "not a directory\n");
    const verified = jsonError(await ledger("verify", "--json", "--data", dataDir));
    assert.equal(verified.code, "not_a_directory");
    assert.match(verified.message, /ledger is not a directory/);

    const missing = join(dataDir, "nowhere");
    const verifiedMissing = jsonError(await ledger("verify", "--json", "--data", missing));
    assert.equal(verifiedMissing.code, "ledger_missing");
    const repairedMissing = jsonError(await ledger("repair", "--json", "--data", missing));
    assert.equal(repairedMissing.code, "ledger_missing");

    // Without --json the same errors stay one text line on stderr.
    const text = await ledger("verify", "--data", dataDir);
    assert.equal(text.code, 1);
    assert.equal(text.out, "");
    assert.match(text.err, /^error: .*ledger is not a directory/);

    // Usage errors stay text, exit 2, as the help says.
    const usage = await ledger("repair", "--json", "--forse", "--data", dataDir);
    assert.equal(usage.code, 2);
    assert.equal(usage.out, "");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
