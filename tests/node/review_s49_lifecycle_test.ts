/**
 * Review of the node's life cycle as an operator lives it (session 49): a setting left empty by
 * a script (`--model "$MODEL_DIR"` with the variable unset) is a configuration error, not a node
 * that binds, locks and writes its identity before failing; and what a crash during the
 * identity's creation leaves in the data directory is cleared by the next start; and a start
 * under the wrong identity key does not destroy the node's one stake pledge; a configuration
 * file with a byte-order mark, a mistyped `ledger` flag, and a keepalive that cannot keep a
 * connection alive.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configFromArgs, runStart } from "../../node/start_command.ts";
import { quietProcess } from "./_quiet_process.ts";
import { ConfigError, parseNodeConfig } from "../../node/config.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../../node/node_identity.ts";
import { runLedger } from "../../node/ledger_command.ts";
import { loadOrCreatePledge, PLEDGE_FILE } from "../../node/node_pledge.ts";
import { Identity } from "../../protocols/identity.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import { Connection } from "../../protocols/connection.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { PeerTimeoutError } from "../../protocols/protocol_errors.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

Deno.test("an empty --model or --swarm-bind (a script's unset variable) is refused naming its key, exit 2, before the data directory is made", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const dataDir = join(parent, "node");
    const cases: [string[], string, string][] = [
      [["--model", ""], "model.dir", "--model"],
      [["--swarm", "--swarm-bind", ""], "network.swarm.bind", "--swarm-bind"],
    ];
    for (const [more, key, flag] of cases) {
      const proc = quietProcess();
      const code = await runStart(
        ["--data", dataDir, "--port", "0", "--p2p-port", "0", "--heartbeat", "0", ...more],
        proc.io,
      );
      assert.equal(code, 2, `${more.join(" ")}: ${[...proc.out, ...proc.err].join("\n")}`);
      assert.match(
        proc.err.join("\n"),
        new RegExp(`${key.replace(".", "\\.")}: .*\\[from ${flag}\\]`),
      );
      assert.deepEqual(proc.out, [], "nothing started");
      assert.equal(await Deno.stat(dataDir).then(() => true, () => false), false, "no data dir");
    }
    // The file and the environment are read by the same schema.
    assert.throws(
      () => parseNodeConfig({ model: { dir: "" } }),
      (e) => e instanceof ConfigError && /model\.dir: /.test(e.message),
    );
    await assert.rejects(
      () => configFromArgs([], { VERIFLOW_MODEL_DIR: "" }),
      (e) =>
        e instanceof ConfigError && /model\.dir: .*\[from VERIFLOW_MODEL_DIR\]/.test(e.message),
    );
    // A directory that is given still starts as before.
    assert.equal((await configFromArgs(["--model", "/models/x"])).model.dir, "/models/x");
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("a temporary identity file a crash left (the key's own bytes, or a key never published) is removed once the identity is on disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // A first start killed between writing the new key and publishing it: an orphan key.
    const orphan = `${IDENTITY_FILE}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(join(dir, orphan), crypto.getRandomValues(new Uint8Array(32)), {
      mode: 0o600,
    });
    const first = await loadOrCreateIdentity(dir);
    // A start killed between publishing the key (a hard link) and removing the temporary name:
    // a second name for the node's secret, which moving identity.key aside would not move.
    const twin = `${IDENTITY_FILE}.${crypto.randomUUID()}.tmp`;
    await Deno.link(join(dir, IDENTITY_FILE), join(dir, twin));
    // Not the identity's: left alone.
    const foreign = `stake_pledge.cbor.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(join(dir, foreign), new Uint8Array([1]));
    const again = await loadOrCreateIdentity(dir);
    assert.equal(toHex(again.publicKey), toHex(first.publicKey));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [IDENTITY_FILE, foreign].sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a creator whose temporary file another creator swept before it could publish is handed the published key", async () => {
  const dir = await Deno.makeTempDir();
  const link = Deno.link;
  let other: string | undefined;
  try {
    // Just before this creator publishes, another process (a `cli.ts put` beside the node's
    // first start: it takes no lock) publishes its own key and sweeps this one's temporary file.
    Deno.link = async (from, to) => {
      Deno.link = link;
      other = toHex((await loadOrCreateIdentity(dir)).publicKey);
      return await link(from, to);
    };
    const mine = toHex((await loadOrCreateIdentity(dir)).publicKey);
    assert.ok(other !== undefined, "the other creator ran");
    assert.equal(mine, other, "the key on disk, not an error nor a key of its own");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [IDENTITY_FILE]);
  } finally {
    Deno.link = link;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a start under another identity.key (a wrong backup restored) does not cost the node its pledge: back on its own key, it sends the same pledge as before", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const node = Identity.generate();
    const lines: string[] = [];
    const log = (line: string) => void lines.push(line);
    const first = await loadOrCreatePledge(dir, node, 5_000, log, () => 42);
    // The operator restores the wrong identity.key: that start pledges for the other key (and
    // then stops, its ledger being this node's), writing over the node's pledge.
    const wrong = await loadOrCreatePledge(dir, Identity.generate(), 5_000, log, () => 43);
    assert.notDeepEqual(wrong.key, node.publicKey);
    assert.match(lines.join("\n"), /not a pledge by this node's key/);
    // The right key back, and selfStake raised meanwhile: peers already hold the first pledge,
    // so the node must send exactly it, not sign a second one with the new amount.
    const again = await loadOrCreatePledge(dir, node, 9_000, log, () => 99);
    assert.deepEqual(again, first, "the node's one pledge, not a second one");
    assert.deepEqual(
      decodeCbor(await Deno.readFile(join(dir, PLEDGE_FILE))),
      first,
      "and it is the one on disk again",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a configuration file saved with a byte-order mark (Notepad, PowerShell 5) is read as the JSON it is", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "veriflow.json");
    const json = JSON.stringify({ http: { port: 9123 } });
    await Deno.writeFile(path, new TextEncoder().encode(`\uFEFF${json}\n`));
    const config = await configFromArgs(["--config", path]);
    assert.equal(config.http.port, 9123);
    // Anything else that is not JSON is still refused, naming the file.
    await Deno.writeTextFile(path, `\uFEFF\uFEFF${json}`);
    await assert.rejects(
      () => configFromArgs(["--config", path]),
      (e) => e instanceof ConfigError && e.message.startsWith(`${path} is not valid JSON`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a mistyped ledger flag is named with the flag it is near, as start's are, exit 2", async () => {
  const err: string[] = [];
  const io = { out: () => {}, err: (line: string) => void err.push(line) };
  assert.equal(await runLedger(["verify", "--dat", "x"], io), 2);
  assert.match(err.join("\n"), /^error: unknown flag --dat \(did you mean --data\?\)\n\nUsage:/);
  err.length = 0;
  assert.equal(await runLedger(["repair", "--frobnicate"], io), 2);
  assert.match(err.join("\n"), /^error: unknown flag --frobnicate\n\nUsage:/);
});

Deno.test("a keepalive no shorter than the idle timeout is refused naming both keys: idle peers on that configuration drop each other", async () => {
  // What such a configuration does: two idle connections with it time each other out.
  const timers = new ManualTimers();
  const [a, b] = memoryDuplexPair();
  const options = { timers, keepaliveMs: 10_000, idleTimeoutMs: 5_000 };
  const client = new Connection(a, options);
  const server = new Connection(b, options);
  for (let t = 0; t < 30_000 && !client.isClosed; t += 500) await timers.advance(500);
  assert.ok(client.isClosed && client.closeReason instanceof PeerTimeoutError, "dropped");
  await server.close().catch(() => {});
  // So it is refused at start, naming the key and the one it must stay under.
  for (const network of [{ keepaliveMs: 10_000, idleTimeoutMs: 5_000 }, { keepaliveMs: 5_000 }]) {
    assert.throws(
      () => parseNodeConfig({ network }),
      (e) => e instanceof ConfigError && /network\.keepaliveMs: .*idleTimeoutMs/.test(e.message),
      JSON.stringify(network),
    );
  }
  await assert.rejects(
    () => configFromArgs([], { VERIFLOW_NETWORK_KEEPALIVE_MS: "6000" }),
    (e) =>
      e instanceof ConfigError &&
      /network\.keepaliveMs: .*\[from VERIFLOW_NETWORK_KEEPALIVE_MS\]/.test(e.message),
  );
  // The defaults, and a keepalive below the timeout, are as before.
  assert.equal(parseNodeConfig({}).network.keepaliveMs, 1_500);
  assert.equal(
    parseNodeConfig({ network: { keepaliveMs: 2_000, idleTimeoutMs: 6_000 } }).network
      .keepaliveMs,
    2_000,
  );
});
