import assert from "node:assert/strict";
import { runLedger } from "../../cli/ledger_command.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { frameOffsets } from "../proof/_ledger_fixtures.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  checkpointedLedger,
  flipSignatureBit,
  VOUCHED_DEPOSITS,
} from "../proof/_vouched_damage.ts";

/** A node with only its validator (and ledger): nothing to load, quick to start and stop. */
function ledgerOnly(dataDir: string) {
  return parseNodeConfig({
    dataDir,
    roles: { storage: false, inference: false, prover: false, validator: true },
    http: { port: 0 },
    network: { listening: false },
    heartbeatMs: 0,
  });
}

/** Start a node on `dataDir` with no model to load (its ledger is what these tests are about). */
function start(dataDir: string) {
  return startNode(ledgerOnly(dataDir), { models: new ModelRegistry() });
}

/** Run `ledger ARGS`, capturing what it prints. */
async function ledger(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runLedger(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("ledger verify works beside a running node; ledger repair is refused while it runs, naming its pid", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    const node = await start(dataDir);
    try {
      const verified = await ledger("verify", "--data", dataDir);
      assert.equal(verified.code, 0, verified.err);
      assert.match(verified.out, /ok: the ledger verifies/);
      const refused = await ledger("repair", "--data", dataDir);
      assert.equal(refused.code, 1);
      assert.match(refused.err, new RegExp(`data_dir_locked.*process ${Deno.pid} \\(node`));
    } finally {
      await node.shutdown();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a node refused on a damaged ledger names the commands that recover; after ledger repair it starts, keeping every entry that verifies", async () => {
  const dataDir = await Deno.makeTempDir();
  const log = `${dataDir}/ledger/ledger.log`;
  try {
    await (await start(dataDir)).shutdown(); // genesis and this node's stake
    const intact = await Deno.readFile(log);
    assert.equal(frameOffsets(intact).length, 2);
    // A second writer's entry appended behind the checkpoint: same position, another history.
    const [, stake] = frameOffsets(intact);
    const foreign = intact.slice(stake);
    foreign[foreign.length - 1] ^= 0xff;
    await Deno.writeFile(log, new Uint8Array([...intact, ...foreign]));

    const refused = await start(dataDir).then(() => null, (e) => e as Error);
    assert.ok(refused instanceof Error, "the node started on a damaged ledger");
    const chain = [];
    for (let e: unknown = refused; e instanceof Error; e = e.cause) chain.push(e.message);
    assert.match(chain.join(" | "), new RegExp(`ledger repair --data ${dataDir}`));

    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /damaged: entry 2 \(byte \d+\): sequence 1 out of order/);
    const repaired = await ledger("repair", "--data", dataDir);
    assert.equal(repaired.code, 0, repaired.err);
    assert.match(repaired.out, /set aside \d+ bytes after entry 1/);
    assert.deepEqual(await Deno.readFile(log), intact, "every entry that verified is kept");
    assert.equal((await ledger("verify", "--data", dataDir)).code, 0);
    const node = await start(dataDir);
    await node.shutdown();
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger verify|repair --data FILE (not a directory) exits 1 with one error line naming it, no stack trace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/README.md`;
    await Deno.writeTextFile(file, "not a data directory\n");
    const verified = await ledger("verify", "--data", file);
    assert.equal(verified.code, 1);
    assert.match(verified.err, new RegExp(`^error: --data ${file} is not a directory`));
    const repaired = await ledger("repair", "--data", file);
    assert.equal(repaired.code, 1);
    // repair takes the data-directory lock, which names a file given for the directory.
    assert.match(
      repaired.err,
      new RegExp(
        `^error \\[data_dir_not_directory\\]: --data names a file, not a directory: ${file};`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a node refused on a ledger.log of garbage does not promise that repair keeps entries that do not verify", async () => {
  const dataDir = await Deno.makeTempDir();
  const log = `${dataDir}/ledger/ledger.log`;
  try {
    await (await start(dataDir)).shutdown(); // genesis and this node's stake, checkpointed
    // The whole log overwritten (a bad copy): the checkpoint's entries are no longer there, and
    // none before the failing one verifies from genesis.
    await Deno.writeFile(log, new Uint8Array(300).map((_, i) => (i * 73 + 5) & 0xff));
    const refused = await start(dataDir).then(() => null, (e) => e as Error);
    assert.ok(refused instanceof Error, "the node started on a damaged ledger");
    const chain = [];
    for (let e: unknown = refused; e instanceof Error; e = e.cause) chain.push(e.message);
    const said = chain.join(" | ");
    const seq = Number(/ledger entry (\d+) fails verification/.exec(said)?.[1]);
    assert.ok(seq >= 1, said);
    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1);
    assert.match(verified.out, /damaged: entry 0 /);
    // What the refusal says repair keeps: those of the entries before the failing one that
    // verify from genesis (here none), not "the N entries before it" flat.
    assert.doesNotMatch(said, new RegExp(`keeps the ${seq} entries before it and`));
    assert.match(
      said,
      new RegExp(`keeps the ${seq} entries before it, or as many of them as verify from genesis `),
    );
    // The signed checkpoint proves acknowledged entries gone: cut only with --force (s75 F1).
    const refusedRepair = await ledger("repair", "--data", dataDir);
    assert.equal(refusedRepair.code, 1, refusedRepair.out);
    const repaired = await ledger("repair", "--force", "--data", dataDir);
    assert.equal(repaired.code, 0, repaired.err);
    assert.equal((await ledger("verify", "--data", dataDir)).code, 0);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("ledger verify on damage a signed checkpoint vouches past prints the vouched line (the damaged entry, the checkpoint's state intact, the node opens it, nothing to repair) and neither calls the entries after it unlinkable nor advises a repair", async () => {
  const dataDir = await Deno.makeTempDir();
  const ledgerDir = `${dataDir}/ledger`;
  try {
    await checkpointedLedger(ledgerDir, Identity.generate(), Identity.generate());
    await flipSignatureBit(ledgerDir, 5);

    const verified = await ledger("verify", "--data", dataDir);
    assert.equal(verified.code, 1, verified.err);
    // Repair refuses here: neither the entries after the damage lost, nor a repair advised.
    assert.doesNotMatch(verified.out, /cannot be linked/);
    assert.doesNotMatch(verified.out, /ledger repair --data/);
    assert.match(verified.out, /damaged: entry 5 \(bytes \d+ to \d+\): /);
    assert.match(
      verified.out,
      new RegExp(
        `vouched: the signed checkpoint at entry ${VOUCHED_DEPOSITS + 1} covers the ` +
          `${VOUCHED_DEPOSITS - 5} entries after the damage .*state \\(balances, stakes, open ` +
          `receipts\\) is intact and the node opens this ledger from it`,
      ),
    );
    assert.match(verified.out, /not ok, nothing to repair: .*ledger_damage_vouched/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
