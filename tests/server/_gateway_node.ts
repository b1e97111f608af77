/**
 * Test fixture of the gateway tests: a node's StorageActor and HTTP edge on 127.0.0.1 over a store
 * the test filled first (as `cli.ts put DIR` does), with every block and CAR the gateway asks of
 * its storage port counted, a `fetch` that does not follow redirects, a raw HTTP/1.1 request (a
 * request target no client normalized), and hand-made UnixFS nodes of any shape (HAMT shards,
 * symlinks, repeated children), which Veriflow itself never writes.
 */
import assert from "node:assert/strict";
import { CarBlockIterator } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { cidDigest, cidFromDigest, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes, type GatewayRoutesOptions } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore, type FileStoreOptions } from "../../storage/file_store.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import type { OwnerKey } from "../../storage/private_tier.ts";
import { digestOf, equalBytes } from "../../storage/_hash.ts";

/** Options of {@link startGatewayNode}. */
export interface GatewayNodeOptions {
  /** The node's owner key (its private files; another owner's it cannot open). */
  ownerKey?: OwnerKey;
  /** Options of the gateway's routes. */
  routes?: GatewayRoutesOptions;
}

/** A raw HTTP answer: status, headers, body bytes as received (chunked framing left in). */
export interface RawAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * A node's StorageActor over the store in `dir` (in an actor system named `name`), and the
 * gateway's port to it with every block and CAR it reads counted in `reads`.
 */
export async function countedStorage(dir: string, name: string, ownerKey?: OwnerKey) {
  const system = new ActorSystem({ name });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, ownerKey }) as never,
  });
  /** CIDs the gateway read through its port: single blocks, and whole CARs. */
  const reads = { blocks: [] as string[], cars: [] as string[] };
  const port = storageGateway(storage);
  const gateway = (): GatewayStorage => ({
    ...port,
    block: (cid, signal, options) => {
      reads.blocks.push(cid);
      return port.block(cid, signal, options);
    },
    car: (cid, scope, signal, options) => {
      reads.cars.push(cid);
      return port.car(cid, scope, signal, options);
    },
  });
  return { system, reads, gateway };
}

/** Start a node over the store in `dir`; `close` also removes `dir`. */
export async function startGatewayNode(dir: string, options?: GatewayNodeOptions) {
  const { system, reads, gateway } = await countedStorage(dir, "gateway-test", options?.ownerKey);
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(gateway, options?.routes));
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req, info) => {
    const url = new URL(req.url);
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    return app.fetch(req, info);
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    requests,
    reads,
    /** Fetch `path` (redirects not followed); the response and its whole body. */
    get: async (path: string, init?: RequestInit) => {
      const response = await fetch(`${url}${path}`, { redirect: "manual", ...init });
      return { response, body: new Uint8Array(await response.arrayBuffer()) };
    },
    /** `GET target` as written, over a connection of its own (no URL normalization). */
    raw: async (target: string): Promise<RawAnswer> => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      const request = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`;
      await conn.write(new TextEncoder().encode(request));
      const text = new TextDecoder().decode(
        await new Response(conn.readable).arrayBuffer(),
      );
      const [head, ...body] = text.split("\r\n\r\n");
      const [statusLine, ...lines] = head.split("\r\n");
      const headers = new Headers();
      for (const line of lines) {
        const at = line.indexOf(":");
        headers.append(line.slice(0, at), line.slice(at + 1).trim());
      }
      return { status: Number(statusLine.split(" ")[1]), headers, body: body.join("\r\n\r\n") };
    },
    close: async () => {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * An empty store in a new temporary directory (the one {@link startGatewayNode} serves), and ways
 * to fill it: `put` stores a file (text or bytes) and gives its CID, `make` hand-makes blocks.
 */
export async function newGatewayStore(options?: FileStoreOptions) {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, options);
  const put = async (content: string | Uint8Array) =>
    (await files.put(
      ReadableStream.from([
        typeof content === "string" ? new TextEncoder().encode(content) : content,
      ]),
    )).cid;
  return { dir, store, files, put, make: blockMaker(store) };
}

/** Hand-made blocks in `store`: raw leaves, dag-pb nodes, UnixFS directories and file nodes. */
export function blockMaker(store: ChunkStore) {
  const putPb = async (node: dagPb.PBNode) =>
    cidFromDigest(cidDigest(await store.put(dagPb.encode(dagPb.prepare(node)))), DAG_PB_CODEC);
  return {
    /** A raw leaf. */
    putRaw: async (bytes: Uint8Array) =>
      cidFromDigest(cidDigest(await store.put(bytes)), RAW_CODEC),
    putPb,
    /** A UnixFS node of `type` with no links (a symlink to `data`, an empty HAMT…). */
    unixfsNode: (type: "symlink" | "hamt-sharded-directory", data?: Uint8Array) =>
      putPb({
        Data: (type === "symlink"
          ? new UnixFS({ type, data })
          : new UnixFS({ type, fanout: 256n, hashType: 0x22n })).marshal(),
        Links: [],
      }),
    /** A flat UnixFS directory over `links`, in the order given. */
    directory: (links: { name: string; cid: string; tsize?: number }[]) =>
      putPb({
        Data: new UnixFS({ type: "directory" }).marshal(),
        Links: links.map((l) => ({ Name: l.name, Hash: CID.parse(l.cid), Tsize: l.tsize ?? 1 })),
      }),
    /** A UnixFS file node over `children`, each `size` file bytes (repeats allowed). */
    fileNode: (children: { cid: string; size: number }[]) => {
      const unixfs = new UnixFS({ type: "file" });
      for (const child of children) unixfs.addBlockSize(BigInt(child.size));
      return putPb({
        Data: unixfs.marshal(),
        Links: children.map((c) => ({ Name: "", Hash: CID.parse(c.cid), Tsize: c.size })),
      });
    },
  };
}

/** A block of a CAR, as read back. */
export interface CarBlock {
  cid: string;
  bytes: Uint8Array;
}

/** A CAR's roots and blocks, each block checked against its CID (a cut CAR throws). */
export async function readCar(body: Uint8Array): Promise<{ roots: string[]; blocks: CarBlock[] }> {
  const car = await CarBlockIterator.fromIterable(ReadableStream.from([body]));
  const roots = (await car.getRoots()).map(String);
  const blocks: CarBlock[] = [];
  for await (const block of car) {
    const cid = block.cid.toString();
    const expected = CID.parse(cid).multihash;
    const verified = expected.code === 0x00
      ? equalBytes(expected.digest, block.bytes) // identity: the CID carries the bytes
      : equalBytes(cidDigest(cid), await digestOf(block.bytes));
    assert.ok(verified, `${cid} verifies`);
    blocks.push({ cid, bytes: block.bytes });
  }
  return { roots, blocks };
}

/** Where in-process requests come from: this machine. */
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };

/**
 * A node's StorageActor over the store in `dir` (chunks of 1 KiB) behind the file routes and the
 * gateway, asked in-process as from 127.0.0.1: `request` answers a path with its response and
 * body; `close` stops the actor and removes `dir`.
 */
export async function storageEdge(dir: string, name: string) {
  const system = new ActorSystem({ name });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir, chunkSize: 1024 }) as never,
  });
  const port = () => storageGateway(storage);
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", fileRoutes(port));
  app.route("/", gatewayRoutes(port));
  const request = async (path: string, init?: RequestInit) => {
    const response = await app.request(path, init, LOOPBACK as never);
    return { response, body: new Uint8Array(await response.arrayBuffer()) };
  };
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { request, close };
}
