/**
 * An open that cuts a torn tail says so in its log (review s75): how many bytes, after which
 * entry, and the file that keeps them. Before, the node started, the file appeared beside the log
 * and nothing said where it came from.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

/** A frame header announcing more bytes than follow, and the part that was written. */
const TORN = new Uint8Array([0, 0, 1, 0, ...new Array(20).fill(0xa5)]);

Deno.test("an open that cuts a torn tail logs its size, where it was and the file that keeps its bytes", () =>
  withLedgerDir(async (dir) => {
    const owner = Identity.generate();
    const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
    await ledger.deposit(owner.publicKey, 5);
    await ledger.close();
    await Deno.writeFile(join(dir, LOG_FILE), TORN, { append: true });

    const lines: string[] = [];
    const reopened = await Ledger.open(dir, owner, { log: (line) => lines.push(line) });
    await reopened.close();
    const said = lines.find((l) => l.includes("torn tail"));
    assert.ok(said, `the open said: ${JSON.stringify(lines)}`);
    const match = /cut a torn tail of (\d+) bytes after entry 1 .* kept in (\S+)$/.exec(said);
    assert.ok(match, said);
    assert.equal(Number(match[1]), TORN.length);
    assert.deepEqual(await Deno.readFile(match[2]), TORN);
  }));
