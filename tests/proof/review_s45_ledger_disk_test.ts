/**
 * Review s45: the ledger on disk across crashes — a torn last append whose zeros reach only the
 * signer's bytes, and the names of the ledger's files and directories, which a power cut loses
 * unless their directory was synced.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, resolve } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { copyDir, frameOffsets, withLedgerDir } from "./_ledger_fixtures.ts";

const owner = Identity.generate();
const staker = Identity.generate();

Deno.test("review s45: a torn last append whose zeros cover only its signer is cut on open, at every byte of the signer", () =>
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

Deno.test("review s45: a ledger first opened by a process killed before its directory sync keeps acknowledged entries through a power cut", () =>
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

Deno.test("review s45: a ledger whose directory's parent is new too keeps acknowledged entries through a power cut", () =>
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

Deno.test("review s45: an entry a killed process wrote but never fsync'd, kept by the next open and covered by its checkpoint, survives a power cut", () =>
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
