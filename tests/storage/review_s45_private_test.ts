/**
 * Review s45 of the private tier and share links: what a private file's plaintext, once
 * decrypted by `get -o` or `share open -o`, is exposed to on the reader's own machine.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { runShare } from "../../storage/exchange_commands.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, ShareStore } from "../../storage/share_links.ts";
import { runGet } from "../../storage/storage_commands.ts";

const text = (s: string) => new TextEncoder().encode(s);
const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

/** Run a command in this process with its console output dropped; its exit code and stderr. */
async function quietly(fn: () => Promise<number>): Promise<{ code: number; err: string }> {
  const err: string[] = [];
  const { log, error } = console;
  console.log = () => {};
  console.error = (...a: unknown[]) => void err.push(a.join(" "));
  try {
    return { code: await fn(), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test({
  name:
    "a private file's plaintext from get -o or share open -o is its owner's only: a new file is 0600, an existing one keeps its mode (it became 0644)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const keyFile = join(dir, "owner.key");
    await Deno.writeFile(keyFile, secret, { mode: 0o600 });
    const ownerKey = await OwnerKey.fromSecret(secret);
    const store = join(dir, "store");
    const system = new ActorSystem({ name: "review-s45-private" });
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: store, ownerKey }) as never,
    });
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(() => storageGateway(storage)));
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (r, i) => app.fetch(r, i),
    );
    try {
      const plaintext = text("the salary list");
      const { cid } = await (await storage.ask<PutHandle>({
        type: "put",
        source: ReadableStream.from([plaintext]),
        private: true,
      })).done;
      const { link } = await createShareLink({
        cid,
        owner: ownerKey,
        files: new FileStore(await ChunkStore.open(store)),
        shares: new ShareStore(store),
        baseUrl: `http://127.0.0.1:${server.addr.port}`,
        expiresAt: null,
        now: 0,
      });
      const reads: [string, (out: string) => Promise<number>][] = [
        ["get", (out) => runGet([cid, "-o", out, "--data", dir, "--key-file", keyFile])],
        ["share open", (out) => runShare(["open", link, "-o", out])],
      ];
      for (const [command, read] of reads) {
        // A file the user made owner-only before writing the plaintext into it.
        const kept = join(dir, `${command.replace(" ", "-")}-kept.txt`);
        await Deno.writeTextFile(kept, "placeholder", { mode: 0o600 });
        await Deno.chmod(kept, 0o600);
        const first = await quietly(() => read(kept));
        assert.equal(first.code, 0, first.err);
        assert.deepEqual(await Deno.readFile(kept), plaintext);
        assert.equal(
          (await modeOf(kept)).toString(8),
          "600",
          `${command} -o made an owner-only file readable by others`,
        );
        // A new file: the plaintext of a private file is not written for everyone to read.
        const fresh = join(dir, `${command.replace(" ", "-")}-new.txt`);
        const second = await quietly(() => read(fresh));
        assert.equal(second.code, 0, second.err);
        assert.deepEqual(await Deno.readFile(fresh), plaintext);
        assert.equal(
          ((await modeOf(fresh)) & 0o077).toString(8),
          "0",
          `${command} -o wrote a private file's plaintext readable by others`,
        );
      }
    } finally {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("share revoke is durable before it says so: the shares directory is fsynced after the record goes (a power cut could bring a revoked link back)", async () => {
  const dir = await Deno.makeTempDir();
  const shares = new ShareStore(dir);
  const record = await shares.create(
    "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    { expiresAt: null, now: 0 },
  );
  const sharesDir = join(dir, "shares");
  // What the file system is asked, in order: removals, and fsyncs of what was opened.
  const events: string[] = [];
  const { open, remove } = Deno;
  Deno.open = async (path, options) => {
    const file = await open(path, options);
    const sync = file.sync.bind(file);
    file.sync = async () => {
      events.push(`sync ${path}`);
      await sync();
    };
    return file;
  };
  Deno.remove = async (path, options) => {
    await remove(path, options);
    events.push(`remove ${path}`);
  };
  try {
    assert.equal(await shares.revoke(record.id), true);
  } finally {
    Deno.open = open;
    Deno.remove = remove;
  }
  const removed = events.indexOf(`remove ${join(sharesDir, record.id)}`);
  assert.ok(removed >= 0, events.join("; "));
  assert.ok(
    events.slice(removed + 1).includes(`sync ${sharesDir}`),
    `the removal was never made durable: ${events.join("; ")}`,
  );
  await assert.rejects(shares.valid(record.id, 0), { code: "share_not_found" });
  await Deno.remove(dir, { recursive: true });
});

/** `script` runs a command on a pseudo-terminal and copies what the terminal shows to stdout. */
async function hasScript(): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  try {
    const out = await new Deno.Command("script", { args: ["--version"], stdout: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * `share open LINK --password` on a pseudo-terminal, `typed` entered once the prompt shows:
 * everything the terminal showed, and the exit code.
 */
async function openOnTerminal(
  link: string,
  typed: string,
): Promise<{ screen: string; code: number }> {
  const cli = new URL("../../cli.ts", import.meta.url).pathname;
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [Deno.execPath(), "run", "-A", cli, "share", "open", link, "--password"]
    .map(quote).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const shown: Uint8Array[] = [];
  const reader = child.stdout.getReader();
  const seen = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      shown.push(value);
    }
  })();
  const screen = () => new TextDecoder().decode(concat(shown));
  // Typed once the prompt is up (typed before, the terminal would echo it whatever the command
  // does); a guard, not a deadline the test races: the prompt comes in well under a second.
  const started = Date.now();
  while (!screen().includes("password:")) {
    if (Date.now() - started > 30_000) throw new Error(`no password prompt: ${screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const writer = child.stdin.getWriter();
  await writer.write(text(`${typed}\r`));
  await writer.close();
  const { code } = await child.status;
  await seen;
  return { screen: screen(), code };
}

Deno.test({
  name:
    "share open --password on a terminal does not echo the password: it showed in the terminal, its scrollback and any recording of it",
  ignore: !await hasScript(),
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(5));
      const files = new FileStore(await ChunkStore.open(dir));
      const { cid } = await files.put(ReadableStream.from([text("secret")]), { key: owner });
      const password = "hunter2-corr\u00e9ct-horse";
      // Nothing listens on port 9 of 127.0.0.1: the right password unwraps the keys, then the
      // node cannot be reached; a wrong one fails before any request.
      const { link } = await createShareLink({
        cid,
        owner,
        files,
        shares: new ShareStore(dir),
        baseUrl: "http://127.0.0.1:9",
        expiresAt: null,
        now: 0,
        password,
      });
      const wrong = await openOnTerminal(link, "not-the-password");
      assert.equal(wrong.code, 1, wrong.screen);
      assert.match(wrong.screen, /wrong password for this share link/);
      assert.ok(!wrong.screen.includes("not-the-password"), JSON.stringify(wrong.screen));
      // Typed with a slip mended by backspace (DEL), as a person types it.
      const right = await openOnTerminal(link, `${password}x\x7f`);
      assert.equal(right.code, 1, right.screen);
      assert.match(right.screen, /node_unreachable/, "the typed password opened the keys");
      assert.ok(!right.screen.includes(password), `echoed: ${JSON.stringify(right.screen)}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
