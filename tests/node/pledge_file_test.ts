/**
 * The node's stake pledge file at start (`node/node_pledge.ts`): a damaged one, or one gone
 * after the key staked, refuses the start (a second pledge would convict the key of pledge
 * equivocation in every peer's ledger holding the first); a new data directory pledges.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { loadOrCreatePledge, PLEDGE_FILE } from "../../node/node_pledge.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { verifyStakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger } from "../../proof/ledger.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor, type ValidatorMessage } from "../../actors/validator_actor.ts";
import type { ValidatorStats } from "../../actors/validator_messages.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { toHex } from "../../protocols/hash.ts";

/** A node that runs only its validator (the ledger) and stakes `selfStake`. */
function validatorOnly(dataDir: string, selfStake = 5_000) {
  return parseNodeConfig({
    dataDir,
    selfStake,
    http: { port: 0 },
    network: { listening: false },
    heartbeatMs: 0,
    dashboard: { enabled: false },
    roles: { storage: false, inference: false, prover: false, validator: true },
  });
}

/** Start a node on `dataDir`, then stop it. */
async function startAndStop(dataDir: string, selfStake?: number): Promise<void> {
  const node = await startNode(validatorOnly(dataDir, selfStake), {
    models: new ModelRegistry(),
  });
  await node.shutdown();
}

/** The files of `dir` whose name starts with `stake_pledge`. */
function pledgeFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("stake_pledge"))
    .sort();
}

/** The stake the node's own ledger records for its key. */
async function ownStake(dataDir: string): Promise<number> {
  const identity = Identity.fromSecretKey(await Deno.readFile(join(dataDir, "identity.key")));
  const ledger = await Ledger.open(join(dataDir, "ledger"), identity);
  try {
    return ledger.account(identity.publicKey).stake;
  } finally {
    await ledger.close();
  }
}

/** Whether `error` is a VeriflowError of `code` whose message matches `message`. */
function refused(code: string, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof VeriflowError, `a typed error, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

Deno.test("a restart with a damaged stake_pledge.cbor is refused (pledge_unreadable) and signs nothing new", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await startAndStop(dataDir);
    const path = join(dataDir, PLEDGE_FILE);
    const garbage = new Uint8Array(40).map((_, i) => (i * 37 + 11) & 0xff);
    await Deno.writeFile(path, garbage);
    await assert.rejects(
      () => startAndStop(dataDir),
      refused("pledge_unreadable", new RegExp(`${PLEDGE_FILE}.*restore it from a backup`)),
    );
    assert.deepEqual(await Deno.readFile(path), garbage, "the damaged file is left as it was");
    assert.deepEqual(pledgeFiles(dataDir), [PLEDGE_FILE], "no other pledge written beside it");
    assert.equal(await ownStake(dataDir), 5_000, "the ledger's stake of the key is untouched");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a valid CBOR value that is not a valid pledge is refused as unreadable too", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await startAndStop(dataDir);
    const path = join(dataDir, PLEDGE_FILE);
    // A pledge whose signature no longer verifies (a flipped bit in the file).
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(path, bytes);
    await assert.rejects(() => startAndStop(dataDir), refused("pledge_unreadable", /not a valid/));
    assert.deepEqual(await Deno.readFile(path), bytes);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a restart with stake_pledge.cbor deleted after the key staked is refused (pledge_missing) and signs nothing", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await startAndStop(dataDir);
    await Deno.remove(join(dataDir, PLEDGE_FILE));
    await assert.rejects(
      () => startAndStop(dataDir),
      refused("pledge_missing", new RegExp(`${PLEDGE_FILE}.*restore it from a backup`)),
    );
    assert.deepEqual(pledgeFiles(dataDir), [], "no new pledge written");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a new data directory pledges, as does a key whose ledger never recorded its stake (selfStake was 0)", async () => {
  const fresh = await Deno.makeTempDir();
  const unstaked = await Deno.makeTempDir();
  try {
    await startAndStop(fresh);
    const identity = Identity.fromSecretKey(await Deno.readFile(join(fresh, "identity.key")));
    const pledge = decodeCbor(await Deno.readFile(join(fresh, PLEDGE_FILE)));
    assert.ok(verifyStakePledge(pledge));
    assert.deepEqual(pledge.key, identity.publicKey);
    assert.equal(pledge.amount, 5_000);
    assert.equal(await ownStake(fresh), 5_000);
    // A node that ran without stake (its ledger there, no stake of its key in it) pledges when
    // it first stakes: nothing of its key was ever signed.
    await startAndStop(unstaked, 0);
    assert.deepEqual(pledgeFiles(unstaked), []);
    await startAndStop(unstaked, 7_000);
    const staked = decodeCbor(await Deno.readFile(join(unstaked, PLEDGE_FILE)));
    assert.ok(verifyStakePledge(staked));
    assert.equal(staked.amount, 7_000);
    assert.equal(await ownStake(unstaked), 7_000);
  } finally {
    await Deno.remove(fresh, { recursive: true });
    await Deno.remove(unstaked, { recursive: true });
  }
});

Deno.test("a damaged pledge file is refused by loadOrCreatePledge itself, the file left as it was", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, PLEDGE_FILE);
    await Deno.writeFile(path, new Uint8Array([0xff, 0x00, 0x13]));
    await assert.rejects(
      () => loadOrCreatePledge(dir, Identity.generate(), 5_000),
      refused("pledge_unreadable", new RegExp(path)),
    );
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([0xff, 0x00, 0x13]));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a validator that convicts a key of pledge equivocation says so, naming the key, and counts it as a slash", async () => {
  const ledgerDir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "test" });
  const lines: string[] = [];
  try {
    const validator = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: Identity.generate(),
          ledgerDir,
          models: { get: () => Promise.resolve(undefined) },
          finalizeIntervalMs: 0,
          log: (line) => lines.push(line),
        }),
    });
    // A node that lost its pledge file and signed another: a peer holding both convicts it.
    const node = Identity.generate();
    const key = toHex(node.publicKey);
    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(node, 5_000, 1) }),
      true,
    );
    assert.deepEqual(lines.filter((l) => l.includes(key)), [], "a first pledge is no news");
    assert.equal(
      await validator.ask({ type: "pledge", pledge: signStakePledge(node, 5_000, 2) }),
      true,
    );
    const said = lines.filter((l) => /pledge equivocation/.test(l));
    assert.equal(said.length, 1, lines.join("\n"));
    assert.match(said[0], new RegExp(key));
    assert.match(said[0], /stake .*forfeited/);
    const stats = await validator.ask<ValidatorStats>({ type: "stats" });
    assert.equal(stats.slashes, 1);
    const account = await validator.ask<{ stake: number; balance: number }>({
      type: "account",
      key: node.publicKey,
    });
    assert.equal(account.stake, 0, "the ledger forfeited its stake");
  } finally {
    await system.shutdown();
    await Deno.remove(ledgerDir, { recursive: true });
  }
});
