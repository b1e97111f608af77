/**
 * An open that rebuilds the history index from the log (an upgrade emptied it, or it was lost)
 * or replays the whole log says so (review s72): a line when it starts (why, how many entries),
 * progress at most every `REBUILD_PROGRESS_EVERY_MS` of the ledger's clock, a line when it ends
 * with the time it took; its signal stops it, and the next open goes on from where it stopped.
 * Lines are counted through an injected log, time through an injected clock.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { REBUILD_PROGRESS_EVERY_MS } from "../../proof/_ledger_rebuild_log.ts";
import { withLedgerDir, withoutFsync } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const worker = Identity.generate();
/** Deposits written: enough entries for several progress lines at one clock step each. */
const DEPOSITS = 120;
/** What the test clock moves at each reading: a progress line every few entries. */
const STEP_MS = 1_000;

/** A ledger of genesis and {@link DEPOSITS} deposits, closed (a checkpoint at its end). */
async function buildLedger(dir: string, options: { checkpointEvery?: number } = {}) {
  await withoutFsync(async () => {
    const ledger = await Ledger.open(dir, owner, { now: () => 1_000, ...options });
    for (let i = 1; i <= DEPOSITS; i++) await ledger.deposit(worker.publicKey, i);
    await ledger.close();
  });
}

async function removeIndex(dir: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) {
    await Deno.remove(join(dir, `${INDEX_FILE}${suffix}`)).catch(() => {});
  }
}

/** The lines an open logs, each with the test clock's time when it was logged. */
interface Logged {
  lines: { at: number; line: string }[];
  clock: { t: number };
  log: (line: string) => void;
  now: () => number;
}

/** A log and a clock that moves {@link STEP_MS} at each reading. */
function logged(): Logged {
  const clock = { t: 1_000_000 };
  const lines: { at: number; line: string }[] = [];
  return {
    lines,
    clock,
    log: (line) => lines.push({ at: clock.t, line }),
    now: () => (clock.t += STEP_MS),
  };
}

const STARTS = /^ledger: rebuilding from the log \((.*)\): /;
const PROGRESS = /^ledger: rebuilding: (\d+) entries read, (\d+)% of/;
const ENDS = /^ledger: rebuilt from the log: (\d+) entries in ([\d.]+) s$/;

Deno.test("an open that rebuilds a lost history index logs its start (why, how many entries), progress at a bounded rate and its end with the time taken", () =>
  withLedgerDir(async (dir) => {
    await buildLedger(dir);
    const quiet = logged();
    await (await Ledger.open(dir, owner, { log: quiet.log, now: quiet.now })).close();
    assert.deepEqual(quiet.lines, [], "an open with its index says nothing");

    await removeIndex(dir);
    const out = logged();
    const ledger = await Ledger.open(dir, owner, { log: out.log, now: out.now });
    const length = ledger.length;
    assert.equal(ledger.account(worker.publicKey).stake, DEPOSITS * (DEPOSITS + 1) / 2);
    await ledger.close();
    const lines = out.lines.map((l) => l.line);
    assert.match(lines[0], STARTS);
    assert.match(lines[0], /the history index is missing or empty/);
    assert.match(lines[0], new RegExp(`: ${length} entries up to the checkpoint`));
    assert.match(lines[0], /Ctrl-C waits|cannot be interrupted/);
    const progress = out.lines.filter((l) => PROGRESS.test(l.line));
    assert.ok(progress.length >= 3, `progress lines: ${progress.length}`);
    // Bounded rate: lines at least the interval apart on the ledger's clock, never per entry.
    for (let i = 1; i < progress.length; i++) {
      assert.ok(progress[i].at - progress[i - 1].at >= REBUILD_PROGRESS_EVERY_MS);
    }
    assert.ok(progress.length <= length * STEP_MS / REBUILD_PROGRESS_EVERY_MS);
    const read = progress.map((l) => Number(PROGRESS.exec(l.line)![1]));
    assert.deepEqual(read, [...read].sort((a, b) => a - b), "entries read only grow");
    const end = ENDS.exec(lines.at(-1)!);
    assert.ok(end, lines.at(-1) ?? "no lines");
    assert.equal(Number(end[1]), length);
    const started = out.lines[0].at;
    assert.equal(Number(end[2]) * 1000, out.lines.at(-1)!.at - started, "the clock's time taken");
    assert.equal(lines.filter((l) => STARTS.test(l) || ENDS.test(l)).length, 2);
  }));

Deno.test("a history index of another format, emptied at open, is rebuilt with a line that names both formats", () =>
  withLedgerDir(async (dir) => {
    await buildLedger(dir);
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    const format = (db.prepare("SELECT v FROM meta WHERE k = 'format'").get() as { v: number }).v;
    db.exec(`UPDATE meta SET v = ${format - 1} WHERE k = 'format'`);
    db.close();
    const out = logged();
    await (await Ledger.open(dir, owner, { log: out.log, now: out.now })).close();
    assert.match(
      out.lines[0].line,
      new RegExp(`another version's \\(format ${format - 1} → ${format}\\)`),
    );
    assert.match(out.lines.at(-1)!.line, ENDS);
  }));

Deno.test("the open's signal stops a rebuild before its next entry; the next open goes on from where it stopped", () =>
  withLedgerDir(async (dir) => {
    await buildLedger(dir);
    await removeIndex(dir);
    const controller = new AbortController();
    const out = logged();
    // Ctrl-C as the first progress line is written: stopped mid-rebuild, without a timer.
    const log = (line: string) => {
      out.log(line);
      if (PROGRESS.test(line)) controller.abort(new Error("interrupted by the test"));
    };
    const refused = await Ledger.open(dir, owner, { log, now: out.now, signal: controller.signal })
      .then(() => null, (e) => e);
    assert.equal(refused?.message, "interrupted by the test");
    assert.match(out.lines[0].line, /Ctrl-C stops it/);
    const stopped = out.lines.at(-1)!.line;
    assert.match(stopped, /^ledger: rebuild stopped \(interrupted\) after (\d+) entries/);
    const readFirst = Number(/after (\d+) entries/.exec(stopped)![1]);
    const readBefore = Number(PROGRESS.exec(out.lines[1].line)![1]);
    assert.equal(readFirst, readBefore, "stopped at the entry after the abort");

    const again = logged();
    const ledger = await Ledger.open(dir, owner, { log: again.log, now: again.now });
    const length = ledger.length;
    assert.equal(ledger.account(worker.publicKey).stake, DEPOSITS * (DEPOSITS + 1) / 2);
    await ledger.close();
    assert.match(again.lines[0].line, STARTS);
    const end = ENDS.exec(again.lines.at(-1)!.line);
    assert.ok(end);
    // Only what the stopped open had not taken is read again.
    assert.equal(Number(end[1]), length - readFirst);
  }));

Deno.test("an open without a checkpoint to start from says it replays the whole log", () =>
  withLedgerDir(async (dir) => {
    await buildLedger(dir, { checkpointEvery: 0 });
    const out = logged();
    const ledger = await Ledger.open(dir, owner, {
      log: out.log,
      now: out.now,
      checkpointEvery: 0,
    });
    const length = ledger.length;
    await ledger.close();
    assert.match(out.lines[0].line, /no checkpoint to start from/);
    assert.equal(Number(ENDS.exec(out.lines.at(-1)!.line)![1]), length);
  }));
