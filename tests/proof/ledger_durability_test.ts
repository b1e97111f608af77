/**
 * The ledger on disk across crashes and power cuts: what it writes after a failure, torn appends,
 * synced directories, entries at the size bound, and a damaged history index.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { Ledger, LedgerRejectedError } from "../../proof/ledger.ts";
import { LedgerIndex } from "../../proof/ledger_index.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import {
  assigned,
  copyDir,
  frameOffsets,
  receipt,
  withLedgerDir,
  withoutFsync,
} from "./_ledger_fixtures.ts";
import { dirname, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { receiptId } from "../../protocols/receipt.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { MAX_ENTRY_BYTES } from "../../proof/ledger_entry.ts";
import { LedgerTamperedError } from "../../proof/ledger_errors.ts";

// What the ledger writes after a failure, and what a new ledger's files need to survive a power
// cut.

const owner = Identity.generate();
const staker = Identity.generate();

Deno.test("ledger: after a failed write, checkpoint() is refused (ledger_poisoned) and the ledger reopens", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 5);
    // The entry reaches the log, then the history index's commit fails (disk full, I/O error):
    // the state in memory holds an entry the ledger's position does not.
    const apply = LedgerIndex.prototype.apply;
    LedgerIndex.prototype.apply = () => {
      throw new Error("SQLITE_FULL (simulated)");
    };
    try {
      await assert.rejects(() => ledger.deposit(staker.publicKey, 7), /SQLITE_FULL/);
    } finally {
      LedgerIndex.prototype.apply = apply;
    }
    await assert.rejects(() => ledger.checkpoint(), { code: "ledger_poisoned" });
    await ledger.close();
    const report = await verifyLedger(dir, { owner: owner.publicKey });
    assert.equal(report.ok, true);
    const reopened = await Ledger.open(dir, owner, { now: () => clock.t });
    assert.equal(reopened.length, 3, "the log, the only truth, has the entry");
    assert.equal(reopened.account(staker.publicKey).stake, 12);
    await reopened.close();
  }));

Deno.test("ledger: a new ledger syncs its directory once ledger.log and index.sqlite are created", () =>
  withLedgerDir(async (parent, clock) => {
    const dir = `${parent}/ledger`;
    const opened: string[] = [];
    const open = Deno.open;
    // Every directory sync opens the directory: seen here, without a power cut.
    Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
      opened.push(String(path));
      return open(path, options);
    }) as typeof Deno.open;
    let ledger: Ledger;
    try {
      ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    } finally {
      Deno.open = open;
    }
    assert.ok(opened.includes(dir), `the ledger directory is synced (opened: ${opened})`);
    assert.ok(opened.includes(parent), "and its parent, which got the new directory");
    await ledger.close();
  }));

// The ledger on disk across crashes — a torn last append whose zeros reach only the signer's bytes,
// and the names of the ledger's files and directories, which a power cut loses unless their
// directory was synced.

Deno.test("a torn last append whose zeros cover only its signer is cut on open, at every byte of the signer", () =>
  withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 100);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 7); // acknowledged
    await ledger.deposit(staker.publicKey, 11); // its append torn below: never acknowledged
    const image = await copyDir(dir); // kill -9 here
    await ledger.close();
    try {
      const full = await Deno.readFile(`${image}/ledger.log`);
      const offsets = frameOffsets(full);
      const start = offsets[offsets.length - 1];
      // The file's size and the frame's first page reached the disk, its last page did not: the
      // entry's last field (the signer, 32 bytes) reads as zeros from byte `cut` on.
      for (let cut = full.length - 32; cut < full.length; cut++) {
        assert.ok(cut > start);
        const crashed = await copyDir(image);
        try {
          const bytes = full.slice();
          bytes.fill(0, cut);
          await Deno.writeFile(`${crashed}/ledger.log`, bytes);
          const report = await verifyLedger(crashed, { owner: owner.publicKey });
          assert.deepEqual(
            { ok: report.ok, entries: report.entries, torn: report.tornBytes },
            { ok: true, entries: 3, torn: full.length - start },
            `verify, zeros from byte ${cut - start} of the frame`,
          );
          const reopened = await Ledger.open(crashed, owner, { now: () => clock.t });
          assert.deepEqual(
            { length: reopened.length, stake: reopened.account(staker.publicKey).stake },
            { length: 3, stake: 107 },
            `zeros from byte ${cut - start} of the frame`,
          );
          await reopened.close();
        } finally {
          await Deno.remove(crashed, { recursive: true });
        }
      }
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

/**
 * A model of what a power cut keeps of directory entries: a file or directory created, or a
 * rename's target, is lost unless its directory was `fsync`'d after (file data is the tests'
 * concern elsewhere). Tracks `Deno.open` (a new file; a directory opened and synced), `mkdir`
 * and `rename` while `fn` runs.
 */
class PowerCut {
  /** Paths whose directory entry no sync has made durable yet. */
  readonly unsynced = new Set<string>();
  #restore: (() => void) | undefined;

  /** Start watching. */
  watch(): void {
    const open = Deno.open;
    const mkdir = Deno.mkdir;
    const rename = Deno.rename;
    const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
    Deno.open = (async (path: string | URL, options?: Deno.OpenOptions) => {
      const p = resolve(String(path));
      const creates = options?.create === true || options?.createNew === true;
      const isNew = creates && !await exists(p);
      const file = await open(path, options);
      if (isNew) this.unsynced.add(p);
      const sync = file.sync.bind(file);
      file.sync = async () => {
        await sync();
        if ((await file.stat()).isDirectory) {
          for (const u of this.unsynced) if (dirname(u) === p) this.unsynced.delete(u);
        }
      };
      return file;
    }) as typeof Deno.open;
    Deno.mkdir = (async (path: string | URL, options?: Deno.MkdirOptions) => {
      const made: string[] = [];
      for (let p = resolve(String(path)); !await exists(p); p = dirname(p)) made.push(p);
      await mkdir(path, options);
      for (const p of made) this.unsynced.add(p);
    }) as typeof Deno.mkdir;
    Deno.rename = (async (from: string | URL, to: string | URL) => {
      await rename(from, to);
      this.unsynced.delete(resolve(String(from)));
      this.unsynced.add(resolve(String(to)));
    }) as typeof Deno.rename;
    this.#restore = () => {
      Deno.open = open;
      Deno.mkdir = mkdir;
      Deno.rename = rename;
    };
  }

  /** Stop watching. */
  stop(): void {
    this.#restore?.();
    this.#restore = undefined;
  }

  /** The power goes: every entry not made durable is gone. */
  async cut(): Promise<void> {
    this.stop();
    // Outermost first: a lost directory takes what is in it.
    for (const p of [...this.unsynced].sort((a, b) => a.length - b.length)) {
      await Deno.remove(p, { recursive: true }).catch(() => {});
    }
    this.unsynced.clear();
  }
}

Deno.test("a ledger first opened by a process killed before its directory sync keeps acknowledged entries through a power cut", () =>
  withLedgerDir(async (parent, clock) => {
    const dir = `${parent}/ledger`;
    const power = new PowerCut();
    power.watch();
    try {
      // The first open creates the files and appends genesis; the process dies before the
      // directory sync that makes their names durable.
      const open = Deno.open;
      Deno.open = ((path: string | URL, options?: Deno.OpenOptions) => {
        if (resolve(String(path)) === resolve(dir) && options?.write !== true) {
          throw new Error("killed (simulated) before the directory sync");
        }
        return open(path, options);
      }) as typeof Deno.open;
      try {
        await assert.rejects(() => Ledger.open(dir, owner, { now: () => clock.t }), /killed/);
      } finally {
        Deno.open = open;
      }
      assert.ok(power.unsynced.has(resolve(dir, "ledger.log")));
      // The node restarts: the files are there (the page cache has them), and it acknowledges
      // a deposit. Then the power goes, before any checkpoint.
      // (No checkpoint, which would sync the directory: the power goes before one.)
      const ledger = await Ledger.open(dir, owner, { now: () => clock.t, checkpointEvery: 0 });
      await ledger.deposit(staker.publicKey, 5);
      await power.cut();
      await ledger.close(); // the process is gone with the power: only its files are closed
    } finally {
      power.stop();
    }
    const reopened = await Ledger.open(dir, owner, { now: () => clock.t });
    try {
      assert.equal(reopened.account(staker.publicKey).stake, 5, "the acknowledged deposit");
      assert.equal(reopened.length, 2);
    } finally {
      await reopened.close();
    }
  }));

Deno.test("a ledger whose directory's parent is new too keeps acknowledged entries through a power cut", () =>
  withLedgerDir(async (root, clock) => {
    const dir = `${root}/data/ledger`;
    const power = new PowerCut();
    power.watch();
    try {
      // (No checkpoint, which would sync the directory: the power goes before one.)
      const ledger = await Ledger.open(dir, owner, { now: () => clock.t, checkpointEvery: 0 });
      await ledger.deposit(staker.publicKey, 5);
      await power.cut();
      await ledger.close(); // the process is gone with the power: only its files are closed
    } finally {
      power.stop();
    }
    const reopened = await Ledger.open(dir, owner, { now: () => clock.t });
    try {
      assert.equal(reopened.account(staker.publicKey).stake, 5, "the acknowledged deposit");
    } finally {
      await reopened.close();
    }
  }));

Deno.test("an entry a killed process wrote but never fsync'd, kept by the next open and covered by its checkpoint, survives a power cut", () =>
  withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 100);
    await ledger.close();
    ledger = await Ledger.open(dir, owner, { now: () => clock.t });
    await ledger.deposit(staker.publicKey, 7);
    await ledger.deposit(staker.publicKey, 11); // written whole; killed before its fsync returned
    const image = await copyDir(dir); // kill -9 here: the page cache holds the whole log
    await ledger.close();
    try {
      const log = `${image}/ledger.log`;
      const bytes = await Deno.readFile(log);
      const offsets = frameOffsets(bytes);
      const durable = offsets[offsets.length - 1]; // what the disk holds of the log
      // The node restarts on the image: the open reads the whole last entry from the page cache
      // and keeps it (it verifies), and close signs a checkpoint covering it. Whether anything
      // made the log's bytes durable is watched.
      let logSynced = false;
      const open = Deno.open;
      Deno.open = (async (path: string | URL, options?: Deno.OpenOptions) => {
        const file = await open(path, options);
        if (resolve(String(path)) === resolve(log)) {
          for (const name of ["sync", "syncData"] as const) {
            const f = file[name].bind(file);
            file[name] = async () => {
              await f();
              logSynced = true;
            };
          }
        }
        return file;
      }) as typeof Deno.open;
      let stake: number;
      try {
        const restarted = await Ledger.open(image, owner, { now: () => clock.t });
        stake = restarted.account(staker.publicKey).stake;
        assert.equal(stake, 118, "the open kept the whole last entry");
        await restarted.close(); // a durable checkpoint of 4 entries
      } finally {
        Deno.open = open;
      }
      // The power goes: of the log, the disk has only what was fsync'd.
      if (!logSynced) await Deno.truncate(log, durable);
      const reopened = await Ledger.open(image, owner, { now: () => clock.t });
      try {
        assert.deepEqual(
          { length: reopened.length, stake: reopened.account(staker.publicKey).stake },
          { length: 4, stake },
          "the balance the restarted node reported and signed a checkpoint of",
        );
      } finally {
        await reopened.close();
      }
    } finally {
      await Deno.remove(image, { recursive: true });
    }
  }));

// An entry the ledger acknowledges must be one its own reader takes back at the next open:
// `ledger.log` frames longer than `MAX_ENTRY_BYTES` read as damage (an impossible length), so an
// acknowledged entry that large left a ledger that refused to open, and `ledger repair` set it
// aside with every entry after it. And the history index is derived data: a position it keeps that
// does not parse is a damaged index, rebuilt from the log, not a reason to refuse to start.

const M = DEFAULT_ECONOMICS.slashMultiplier;

Deno.test("a steering conviction over more paid receipts than one entry can list is settled, and the ledger still opens with the cut", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const steerer = Identity.generate();
    const options = { now: () => clock.t };
    // Paid receipts whose verdicts passed over an end: one id is 66 bytes of CBOR, so this many
    // take more than MAX_ENTRY_BYTES in the `steering` entry's list.
    const count = Math.ceil(MAX_ENTRY_BYTES / 66) + 100;
    let ledger = await Ledger.open(dir, me, options);
    const ids: string[] = [];
    let credit = 0;
    await withoutFsync(async () => {
      await ledger.deposit(steerer.publicKey, 1e12);
      for (let n = 0; n < count; n++) {
        const r = receipt(10_000 + n, 1, steerer);
        ids.push((await ledger.recordReceipt(r, assigned(r))).receiptId);
      }
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      assert.equal((await ledger.finalizeDue()).length, count);
    });
    for (const id of ids) credit += ledger.receipt(id)!.credit;
    const before = ledger.account(steerer.publicKey);
    assert.equal(before.balance, credit);
    const cut = await ledger.settleSteering(steerer.publicKey, ids);
    assert.equal(cut, (1 + M) * credit);
    await ledger.close();

    // The next start: the conviction and its cut are there, and nothing was refused as damage.
    ledger = await Ledger.open(dir, me, options);
    try {
      assert.deepEqual(ledger.account(steerer.publicKey), {
        balance: credit,
        stake: before.stake - cut,
        locked: 0,
      });
      assert.equal(ledger.steeringSettled(steerer.publicKey), true);
      assert.equal(ledger.receipt(ids[0])!.status, "final");
      // Settled once: the same conviction again is refused, the stake cut once.
      await assert.rejects(() => ledger.settleSteering(steerer.publicKey, ids), {
        code: "already_settled",
      });
    } finally {
      await ledger.close();
    }
    const report = await verifyLedger(dir, { owner: me.publicKey });
    assert.equal(report.ok, true, JSON.stringify(report.damage));
    assert.equal(report.entries, 2 * count + 3); // genesis, deposit, receipts, finals, steering
  }));

Deno.test("an entry too large to read back is refused before it is written, never acknowledged; the ledger opens with everything it acknowledged", () =>
  withLedgerDir(async (dir, clock) => {
    const me = Identity.generate();
    const worker = Identity.generate();
    const second = Identity.generate();
    const options = { now: () => clock.t };
    let ledger = await Ledger.open(dir, me, options);
    await ledger.deposit(worker.publicKey, 1_000_000);
    await ledger.deposit(second.publicKey, 1_000_000);
    const first = receipt(1, 10, worker);
    await ledger.recordReceipt(first, assigned(first));
    const length = ledger.length;
    // The job's requester assigns it again, to another worker; its assignment carries a field
    // no schema knows (a caller that passes on what it was given whole): the
    // `double_assignment` entry, which keeps the assignment as given, is over MAX_ENTRY_BYTES.
    const again = receipt(1, 10, second);
    const padded = {
      assignment: {
        ...(assigned(again).assignment as Record<string, unknown>),
        padding: "x".repeat(MAX_ENTRY_BYTES),
      },
    };
    await assert.rejects(
      () => ledger.recordReceipt(again, padded),
      (error) => error instanceof LedgerRejectedError && error.code === "entry_too_large",
    );
    // Nothing happened: no entry, the first receipt still credited, the ledger still writable.
    assert.equal(ledger.length, length);
    assert.equal(
      ledger.receipt(receiptId(first))!.credit,
      10 * DEFAULT_ECONOMICS.defaultTokenPrice,
    );
    await ledger.deposit(worker.publicKey, 5);
    await ledger.close();

    ledger = await Ledger.open(dir, me, options);
    try {
      assert.equal(ledger.length, length + 1);
      assert.deepEqual(ledger.account(worker.publicKey), {
        balance: 0,
        stake: 1_000_005,
        locked: 10 * DEFAULT_ECONOMICS.defaultTokenPrice * M,
      });
      assert.equal(ledger.receipt(receiptId(again)), undefined);
    } finally {
      await ledger.close();
    }
  }));

Deno.test("an index whose kept position does not parse (a damaged row SQLite reads without complaint) is rebuilt from the log on open", async () => {
  for (const damaged of ['{"seq":12,"he', "null", "7"]) {
    await withLedgerDir(async (dir, clock) => {
      const me = Identity.generate();
      const worker = Identity.generate();
      const options = { now: () => clock.t };
      let ledger = await Ledger.open(dir, me, options);
      await ledger.deposit(worker.publicKey, 1_000_000);
      const paid = receipt(1, 10, worker);
      const open = receipt(2, 4, worker);
      await ledger.recordReceipt(paid, assigned(paid));
      clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ledger.finalizeDue();
      await ledger.recordReceipt(open, assigned(open));
      const expected = ledger.account(worker.publicKey);
      await ledger.close();
      const db = new DatabaseSync(`${dir}/index.sqlite`);
      db.prepare("UPDATE meta SET v = ? WHERE k = 'position'").run(damaged);
      db.close();

      ledger = await Ledger.open(dir, me, options);
      try {
        assert.deepEqual(ledger.account(worker.publicKey), expected, damaged);
        // The closed receipt is answered from the rebuilt index: not recorded, nor paid, again.
        assert.equal(ledger.receipt(receiptId(paid))!.status, "final");
        await assert.rejects(() => ledger.recordReceipt(paid, assigned(paid)), {
          code: "duplicate_receipt",
        });
        assert.equal(ledger.receiptOfJob(open.jobId), receiptId(open));
      } finally {
        await ledger.close();
      }
    });
  }
});

/** A page of the page cache (as `judgeTail` assumes): what a power cut loses of a write at once. */
const PAGE = 4096;

/**
 * A ledger whose last entry is a steering conviction over 300 paid receipts (some 20 KB, so its
 * frame spans several pages), imaged as a kill left it (before the close's checkpoint), and again
 * once an acknowledged deposit follows the conviction. `length` counts the conviction.
 */
async function steeringImages(dir: string, clock: { t: number }) {
  const steerer = Identity.generate();
  const ledger = await Ledger.open(dir, owner, { now: () => clock.t });
  const ids: string[] = [];
  await withoutFsync(async () => {
    await ledger.deposit(steerer.publicKey, 1e12);
    for (let n = 0; n < 300; n++) {
      const r = receipt(20_000 + n, 1, steerer);
      ids.push((await ledger.recordReceipt(r, assigned(r))).receiptId);
    }
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.finalizeDue();
  });
  const before = ledger.account(steerer.publicKey);
  assert.ok((await ledger.settleSteering(steerer.publicKey, ids)) > 0);
  const length = ledger.length;
  const last = await copyDir(dir);
  await ledger.deposit(steerer.publicKey, 5);
  const followed = await copyDir(dir);
  await ledger.close();
  return { steerer, before, length, last, followed };
}

/** Run `fn` on a copy of the ledger directory `image` whose log is `bytes`; removed after. */
async function withLog(
  image: string,
  bytes: Uint8Array,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const crashed = await copyDir(image);
  try {
    await Deno.writeFile(`${crashed}/ledger.log`, bytes);
    await fn(crashed);
  } finally {
    await Deno.remove(crashed, { recursive: true });
  }
}

/** The names of the files a torn tail was set aside to in `dir`. */
async function tornFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("ledger.log.torn-")) names.push(e.name);
  }
  return names;
}

Deno.test("a steering conviction whose append lost a page between its first and last (a power cut) is cut on open as a torn tail, and the steerer's stake stays whole", () =>
  withLedgerDir(async (dir, clock) => {
    const built = await steeringImages(dir, clock);
    try {
      const full = await Deno.readFile(`${built.last}/ledger.log`);
      const start = frameOffsets(full)[built.length - 1];
      // Each page wholly inside the frame, its last excepted (zeros to the end: torn already).
      const pages: number[] = [];
      for (let p = Math.ceil((start + 4) / PAGE) * PAGE; p + PAGE < full.length; p += PAGE) {
        pages.push(p);
      }
      assert.ok(pages.length >= 3, `frame ${start}..${full.length}`);
      for (const page of pages) {
        const bytes = full.slice();
        bytes.fill(0, page, page + PAGE);
        await withLog(built.last, bytes, async (crashed) => {
          const report = await verifyLedger(crashed, { owner: owner.publicKey });
          assert.deepEqual(
            { ok: report.ok, entries: report.entries, torn: report.tornBytes },
            { ok: true, entries: built.length - 1, torn: full.length - start },
            `verify, page at byte ${page - start} of the frame lost`,
          );
          const reopened = await Ledger.open(crashed, owner, { now: () => clock.t });
          try {
            assert.deepEqual(
              {
                length: reopened.length,
                account: reopened.account(built.steerer.publicKey),
                settled: reopened.steeringSettled(built.steerer.publicKey),
              },
              { length: built.length - 1, account: built.before, settled: false },
              `page at byte ${page - start} of the frame lost`,
            );
          } finally {
            await reopened.close();
          }
          // Cut from the log, and kept beside it.
          assert.equal((await Deno.stat(`${crashed}/ledger.log`)).size, start);
          const torn = await tornFiles(crashed);
          assert.equal(torn.length, 1);
          assert.deepEqual(await Deno.readFile(`${crashed}/${torn[0]}`), bytes.subarray(start));
        });
      }
    } finally {
      await Deno.remove(built.last, { recursive: true });
      await Deno.remove(built.followed, { recursive: true });
    }
  }));

Deno.test("zeros a lost page cannot explain are damage, and the open changes nothing: a page's worth off a page boundary, a zero page in a frame an acknowledged entry follows, or bytes after the frame", () =>
  withLedgerDir(async (dir, clock) => {
    const built = await steeringImages(dir, clock);
    try {
      const full = await Deno.readFile(`${built.last}/ledger.log`);
      const start = frameOffsets(full)[built.length - 1];
      const page = Math.ceil((start + 4) / PAGE) * PAGE; // the frame's first whole page
      assert.ok(page + 2 * PAGE < full.length);
      // A page's worth of zeros that starts just past a byte that is not zero: no whole page on
      // a boundary reads as zeros.
      let shift = 1;
      while (full[page + shift - 1] === 0) shift++;
      const offBoundary = full.slice();
      offBoundary.fill(0, page + shift, page + shift + PAGE);
      for (let p = page; p < full.length; p += PAGE) {
        assert.ok(offBoundary.subarray(p, p + PAGE).some((b) => b !== 0));
      }
      const zeroPage = full.slice();
      zeroPage.fill(0, page, page + PAGE);
      const followed = await Deno.readFile(`${built.followed}/ledger.log`);
      assert.deepEqual(frameOffsets(followed)[built.length - 1], start);
      const followedZeroPage = followed.slice();
      followedZeroPage.fill(0, page, page + PAGE);
      const cases: [string, string, Uint8Array][] = [
        ["off a page boundary", built.last, offBoundary],
        ["an acknowledged entry follows", built.followed, followedZeroPage],
        ["bytes after the frame", built.last, new Uint8Array([...zeroPage, 1, 2, 3, 4, 5, 6, 7])],
      ];
      for (const [name, image, bytes] of cases) {
        await withLog(image, bytes, async (crashed) => {
          const report = await verifyLedger(crashed, { owner: owner.publicKey });
          assert.deepEqual({ ok: report.ok, torn: report.tornBytes }, { ok: false, torn: 0 }, name);
          await assert.rejects(
            () => Ledger.open(crashed, owner, { now: () => clock.t }),
            (e: unknown) => e instanceof LedgerTamperedError && e.seq === built.length - 1,
            name,
          );
          // Nothing cut, nothing set aside: every byte is there for `ledger repair` to judge.
          assert.deepEqual(await Deno.readFile(`${crashed}/ledger.log`), bytes, name);
          assert.deepEqual(await tornFiles(crashed), [], name);
        });
      }
    } finally {
      await Deno.remove(built.last, { recursive: true });
      await Deno.remove(built.followed, { recursive: true });
    }
  }));
