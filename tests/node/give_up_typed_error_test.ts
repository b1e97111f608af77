/**
 * A node whose supervisor gives up on its ledger for a full disk (review s72, "Ledger edges": a
 * node on a nearly full disk ended as a supervisor give-up naming `LedgerDiskFullError`, only in
 * the log's `fatal:` line) now says it as a start that fails says it: one line with the typed
 * reason's code, `error [disk_full]: …`, and a non-zero exit. The full disk is SQLite's, injected
 * into the ledger's open (`_sqlite_faults.ts`), so the reason is the one the ledger's open gives;
 * the give-up around it is the supervisors' (`EscalatedError`, twice: the node's tree). The node
 * is a stand-in whose `finished` reports that give-up: what is tested is `runUntilStopped`'s
 * report of it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EscalatedError } from "../../actors/errors.ts";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { VeriflowNode } from "../../node/node.ts";
import { runUntilStopped, type StartCommandIo } from "../../cli/start_command.ts";
import { failIndexOpen } from "../proof/_sqlite_faults.ts";
import { withLedgerDir } from "../proof/_ledger_fixtures.ts";

/** The start command's output, kept. */
function recordingIo(): StartCommandIo & { errors: string[]; lines: string[] } {
  const errors: string[] = [];
  const lines: string[] = [];
  return {
    errors,
    lines,
    onStopSignal: () => () => {},
    out: (line) => void lines.push(line),
    err: (line) => void errors.push(line),
    now: () => 0,
  };
}

/** A started node that stops by itself with `finished`'s answer. */
function nodeFinishing(finished: { fatal?: string; reason?: unknown }): VeriflowNode {
  return {
    finished: Promise.resolve(finished),
    shutdown: () => Promise.resolve(),
  } as unknown as VeriflowNode;
}

Deno.test("a node whose supervisor gives up on a ledger on a full disk prints one typed line, error [disk_full]: naming the ledger directory and what to do, and exits non-zero", () =>
  withLedgerDir(async (dir) => {
    // The reason the ledger's open gives on a full disk, as a validator's restart meets it.
    const { undo } = failIndexOpen("database or disk is full");
    let full: unknown;
    try {
      full = await Ledger.open(dir, Identity.generate()).then(() => undefined, (e) => e);
    } finally {
      undo();
    }
    assert.ok(full instanceof Error, "the open did not fail");
    const reason = new EscalatedError("node", new EscalatedError("node/sup", full));
    const io = recordingIo();
    const code = await runUntilStopped(
      () =>
        Promise.resolve(nodeFinishing({ fatal: `the node supervisor gave up: ${reason}`, reason })),
      io,
    );
    assert.equal(code, 1);
    // Failed before the fix: no line at all on stderr (only `stopped.`), the reason's class in
    // the log's `fatal:` line.
    assert.equal(io.errors.length, 1, io.errors.join("\n"));
    const [line] = io.errors;
    assert.match(
      line,
      /^error \[disk_full\]: the node stopped: its supervisor gave up: no space left on the device/,
    );
    assert.ok(line.includes(dir), line);
    assert.match(line, /free space there, then start again/);
    assert.ok(!line.includes("\n"), "more than one line");
    assert.ok(!line.includes("EscalatedError"), line);
  }));

Deno.test("a node stopped by shutdown prints no error line and exits 0", async () => {
  const io = recordingIo();
  assert.equal(await runUntilStopped(() => Promise.resolve(nodeFinishing({})), io), 0);
  assert.deepEqual(io.errors, []);
  assert.deepEqual(io.lines, ["stopped."]);
});
