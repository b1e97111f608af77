/**
 * Review s76: `share open` took the link only as an argument (its keys then show in `ps` and the
 * shell history), and `share` / `share revoke` / `share --help` promised access "until revoked"
 * although revoking leaves the link's keys valid wherever the ciphertext can be had.
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
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, ShareStore } from "../../storage/share_links.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

async function cli(args: string[], stdin?: Uint8Array) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    out: new TextDecoder().decode(out.stdout),
    err: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("s76: cli share open - reads the link from stdin, so its keys are not on the command line", async () => {
  const dir = await Deno.makeTempDir();
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const system = new ActorSystem({ name: "share-open-stdin-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, ownerKey }) as never,
  });
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(() => storageGateway(storage)));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (r, i) => app.fetch(r, i),
  );
  try {
    const secret = new TextEncoder().encode("read through stdin");
    const { cid } = await (await storage.ask<PutHandle>({
      type: "put",
      source: ReadableStream.from([secret]),
      private: true,
    })).done;
    const { link } = await createShareLink({
      cid,
      owner: ownerKey,
      files: new FileStore(await ChunkStore.open(dir)),
      shares: new ShareStore(dir),
      baseUrl: `http://127.0.0.1:${server.addr.port}`,
      expiresAt: null,
      now: Date.now(),
    });
    const out = join(dir, "out.txt");
    const run = await cli(
      ["share", "open", "-", "-o", out],
      new TextEncoder().encode(`${link}\n`),
    );
    assert.equal(run.code, 0, run.err);
    assert.equal(await Deno.readTextFile(out), "read through stdin");
    const empty = await cli(["share", "open", "-"], new TextEncoder().encode("\n"));
    assert.equal(empty.code, 2, empty.err);
    assert.match(empty.err, /no link on stdin/);
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("s76: share, share revoke and share --help say the keys outlive a revoke, with the remedy; share list shows a share until it is revoked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    await Deno.writeTextFile(join(dir, "f.txt"), "a private file");
    const put = await cli(["put", "--init", "--private", "--data", data, join(dir, "f.txt")]);
    assert.equal(put.code, 0, put.err);
    const cid = put.out.trim();
    const shared = await cli(["share", cid, "--data", data, "--url", "http://127.0.0.1:9"]);
    assert.equal(shared.code, 0, shared.err);
    assert.doesNotMatch(shared.err, /opens \S+ until revoked/);
    assert.match(shared.err, /keys stay valid/);
    assert.match(shared.err, /put the file again and unpin the old copy/);
    const id = shared.out.split("/share/")[1].split("#")[0];
    const listed = await cli(["share", "list", cid, "--data", data]);
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, new RegExp(`^${id}  ${cid}  expires never  created `));
    const revoked = await cli(["share", "revoke", id, "--data", data]);
    assert.equal(revoked.code, 0, revoked.err);
    assert.match(revoked.err, /keys stay valid/);
    assert.equal((await cli(["share", "list", "--data", data])).out, "", "revoked: not listed");
    const help = await cli(["share", "--help"]);
    assert.match(help.out + help.err, /keys in the link stay valid/);
    assert.match(help.out + help.err, /share open - -o notes\.txt < link\.txt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
