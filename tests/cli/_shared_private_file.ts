/**
 * Test fixture: a node's storage actor behind the HTTP gateway on 127.0.0.1, one private file put
 * into it and a share link to that file, as `share open` meets them. What the share CLI tests
 * (`share_stdin_and_revoke_text_test.ts`, `exchange_commands_test.ts`,
 * `../storage/private_tier_test.ts`) start before they open the link.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import type { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, ShareStore } from "../../storage/share_links.ts";

/** What {@link sharedPrivateFile} starts. */
export interface SharedPrivateFileOptions {
  /** The storage actor's directory (its chunks and its shares). */
  dir: string;
  /** The owner's key: the file is encrypted to it. */
  ownerKey: OwnerKey;
  /** The file's plaintext. */
  contents: Uint8Array;
  /** The actor system's name. */
  name: string;
  /** When the link is made (default now). */
  now?: number;
}

/** The file shared: its cid, its link, and how to stop the gateway and the node. */
export interface SharedPrivateFile {
  cid: string;
  link: string;
  /** Stops the server, then the actor system; the directory stays the caller's. */
  close(): Promise<void>;
}

/** Start the gateway, put `contents` as a private file and make a never-expiring link to it. */
export async function sharedPrivateFile(
  options: SharedPrivateFileOptions,
): Promise<SharedPrivateFile> {
  const { dir, ownerKey } = options;
  const system = new ActorSystem({ name: options.name });
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
  const close = async () => {
    await server.shutdown();
    await system.shutdown();
  };
  try {
    const { cid } = await (await storage.ask<PutHandle>({
      type: "put",
      source: ReadableStream.from([options.contents]),
      private: true,
    })).done;
    const { link } = await createShareLink({
      cid,
      owner: ownerKey,
      files: new FileStore(await ChunkStore.open(dir)),
      shares: new ShareStore(dir),
      baseUrl: `http://127.0.0.1:${server.addr.port}`,
      expiresAt: null,
      now: options.now ?? Date.now(),
    });
    return { cid, link, close };
  } catch (error) {
    await close();
    throw error;
  }
}
