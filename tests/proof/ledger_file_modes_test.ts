/**
 * A ledger's files are its owner's only, whatever the umask (review s72 follow-up, docs F1): the
 * log, the history index (`index.sqlite` with its `-wal` and `-shm`) and the checkpoint hold every
 * receipt, verdict and balance this node recorded, and README says the files the node writes
 * durably are 0600; the log and the index were created with the umask (0644). Files an earlier
 * version left readable by others are made 0600 when the ledger opens, as the identity key is.
 * Modes do not exist on Windows: skipped there.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Identity } from "../../protocols/identity.ts";
import { Ledger } from "../../proof/ledger.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";

const ignore = Deno.build.os === "windows";
const owner = Identity.generate();
const staker = Identity.generate();

/** `mode name` of each file in `dir` that lets others in, and the names of all its files. */
async function modes(dir: string): Promise<{ open: string[]; names: string[] }> {
  const open: string[] = [];
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    names.push(entry.name);
    const mode = (await Deno.stat(join(dir, entry.name))).mode! & 0o777;
    if (mode & 0o077) open.push(`${mode.toString(8)} ${entry.name}`);
  }
  return { open: open.sort(), names: names.sort() };
}

/** Run `fn` under umask 022 (a usual login's), restored after. */
async function underUmask022(fn: () => Promise<void>): Promise<void> {
  const before = Deno.umask(0o022);
  try {
    await fn();
  } finally {
    Deno.umask(before);
  }
}

Deno.test({
  name:
    "a new ledger's log, history index (with its -wal and -shm) and checkpoint are 0600 and its directory 0700 under umask 022",
  ignore,
  fn: () =>
    withLedgerDir((parent) =>
      underUmask022(async () => {
        const dir = join(parent, "ledger"); // made by the open
        const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
        try {
          await ledger.deposit(staker.publicKey, 3);
          await ledger.checkpoint();
          // Open: SQLite's -wal and -shm are there while the index is.
          const { open, names } = await modes(dir);
          for (
            const name of ["ledger.log", "index.sqlite", "index.sqlite-wal", "checkpoint.cbor"]
          ) {
            assert.ok(names.includes(name), `no ${name} in ${names}`);
          }
          assert.deepEqual(open, []);
          assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
        } finally {
          await ledger.close();
        }
      })
    ),
});

Deno.test({
  name:
    "a ledger whose files an earlier version left 0644 is made 0600 when it opens (log, index, -wal, -shm, checkpoint)",
  ignore,
  fn: () =>
    withLedgerDir(async (dir) => {
      const first = await Ledger.open(dir, owner, { checkpointEvery: 0 });
      await first.deposit(staker.publicKey, 3);
      await first.checkpoint();
      // Left open while the modes are loosened: its -wal and -shm are there to loosen.
      const { names } = await modes(dir);
      for (const name of names) await Deno.chmod(join(dir, name), 0o644);
      assert.ok(names.includes("index.sqlite-shm"), `no -shm in ${names}`);
      await first.close();

      const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
      try {
        assert.deepEqual((await modes(dir)).open, []);
        assert.equal(ledger.account(staker.publicKey).stake, 3);
      } finally {
        await ledger.close();
      }
    }),
});
