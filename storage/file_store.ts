/**
 * Files on top of a {@link BlockStore}: a streaming put that chunks and stores each chunk, then
 * links them — a public file as a UnixFS DAG (`unixfs.ts`: its id is the CID `ipfs add
 * --cid-version 1 --raw-leaves` gives), a private file, whose chunks are encrypted first, as a
 * manifest (dag-cbor) — and a streaming, verified, optionally byte-ranged get of either, and of
 * the files written before UnixFS (manifests, raw-labelled), which only the block store's record
 * tells from a raw leaf (`legacy_manifests.ts`).
 *
 * Memory is bounded by `concurrency` chunks in flight (plus one being assembled), whatever the
 * file size: the put reads its source only as fast as chunks are acknowledged, and the get reads
 * ahead only `concurrency` chunks. Works the same over the local {@link ChunkStore} and the
 * replicated store.
 *
 * @module
 */
import {
  chunkCountOf,
  decodeManifest,
  encodeManifest,
  looksLikeManifestNode,
  type Manifest,
  type ManifestBranch,
  manifestLinks,
  type SealedFileInfo,
  type StorageTier,
} from "../protocols/manifest.ts";
import {
  cidCodec,
  cidDigest,
  cidFromDigest,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  RAW_CODEC,
  storageKey,
} from "../protocols/cid.ts";
import { dagBlocks } from "./dag_links.ts";
import {
  buildPrivateManifest,
  DEFAULT_MAX_MANIFEST_BYTES,
  manifestChunks,
} from "./manifest_tree.ts";
import {
  buildDirectory,
  buildFile,
  type DagEntry,
  decodeUnixfs,
  type DirectoryEntry,
  type FilePiece,
  filePieces,
  leafEntry,
  type UnixfsNode,
} from "./unixfs.ts";
import { ChunkerStream, DEFAULT_CHUNK_SIZE } from "../streams/chunker_stream.ts";
import type { BlockStore } from "./block_store.ts";
import { freedMemory } from "./freed_memory.ts";
import {
  FileTooLargeError,
  InvalidManifestError,
  KeyRequiredError,
  RangeNotSatisfiableError,
  StorageError,
} from "./errors.ts";
import type { FileCipher, OwnerKey } from "./private_tier.ts";

/** Default of {@link FileStoreOptions.concurrency}: chunks in flight per put or get. */
export const DEFAULT_FILE_CONCURRENCY: number = 16;
/**
 * Default of {@link FileStoreOptions.maxInMemoryBytes}: 64 MiB holds any prompt, output or small
 * model with room to spare, while a manifest that lists one stored chunk hundreds of times (a
 * few hundred KB stored, 100 MiB claimed) cannot make a node build it in memory.
 */
export const DEFAULT_MAX_IN_MEMORY_BYTES = 64 * 1024 * 1024;

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** Chunk size of new files. Default {@link DEFAULT_CHUNK_SIZE} (256 KiB). */
  chunkSize?: number;
  /**
   * Chunks in flight per put or get. Default 16 (4 MiB at the default chunk size): the local
   * store's group commit puts every chunk waiting at once into one pack, so this sets the pack
   * size during a put — measured on a 256 MiB put here: 4 → ~2 chunks per pack, ~210 MB/s;
   * 8 → 265 MB/s; 16 → ~7 chunks per pack, 300–375 MB/s; 32 → 340–370 MB/s. It also overlaps
   * peer round trips for a replicated store, and keeps memory at a few MiB per transfer.
   */
  concurrency?: number;
  /**
   * Largest file {@link FileStore.bytes} and {@link FileStore.content} assemble in memory; a
   * larger one fails with `file_too_large` before any chunk is read (stream it with
   * {@link FileStore.get}, which holds `concurrency` chunks at most). Default
   * {@link DEFAULT_MAX_IN_MEMORY_BYTES} (64 MiB).
   */
  maxInMemoryBytes?: number;
  /**
   * Largest manifest block a private put writes: past it, the chunk list is split into a
   * manifest tree (`manifest_tree.ts`) whose every node fits. Default
   * {@link DEFAULT_MAX_MANIFEST_BYTES} (512 KiB, one wire block); smaller only in tests, to
   * build trees from small files. Reading takes any tree, whatever limit wrote it.
   */
  maxManifestBytes?: number;
}

/** Options of {@link FileStore.put}. */
export interface PutFileOptions {
  /**
   * File name, sealed in a private file's manifest. A public file's id is its UnixFS DAG,
   * which has no name: name it by putting it in a directory ({@link FileStore.putDirectory}).
   */
  name?: string;
  /** MIME type, sealed in a private file's manifest (public files: not recorded, as name). */
  mime?: string;
  /** Store in the private tier, encrypted under this owner key. Default: public. */
  key?: OwnerKey;
  /** Aborts the put (chunks already written stay until GC). */
  signal?: AbortSignal;
  /** Called with the number of source bytes stored so far. */
  onProgress?(bytes: number): void;
}

/** What a put stored. */
export interface PutFileResult {
  /** The file id: the UnixFS root (public) or the manifest's CID (private). */
  cid: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Number of chunks. */
  chunkCount: number;
  /** Tier. */
  tier: StorageTier;
  /** Bytes of every block of the file (its UnixFS `Tsize`, what a directory link records). */
  tsize: number;
}

/** Metadata of a stored file. */
export interface FileInfo {
  /** The file id. */
  cid: string;
  /** Tier. */
  tier: StorageTier;
  /** Plaintext size; `null` for a directory, and for a private file stated without its key. */
  size: number | null;
  /**
   * Chunk size where the file records one: a private file stated with its key, a public file
   * written before UnixFS. `null` for a UnixFS file (its leaves carry their own sizes) and for a
   * private file stated without its key.
   */
  chunkSize: number | null;
  /**
   * Chunk CIDs as stored: a manifest's chunks (ciphertext CIDs for private files), a UnixFS
   * node's direct links (a file over 174 chunks links inner nodes: {@link FileStore.blocks}
   * lists every block).
   */
  chunks: string[];
  /** `directory` for a UnixFS directory, else `file`. */
  type?: "file" | "directory";
  /** Name, when recorded and readable. */
  name?: string;
  /** MIME type, when recorded and readable. */
  mime?: string;
}

/** Options of {@link FileStore.get}. */
export interface GetFileOptions {
  /** Owner key; required for private files. */
  key?: OwnerKey;
  /** First byte to return. Default 0. */
  start?: number;
  /** One past the last byte to return. Default: the file size. */
  end?: number;
  /** Aborts the transfer; the stream errors with the abort reason. */
  signal?: AbortSignal;
}

/** Files as manifests of chunks in a {@link BlockStore}. */
export class FileStore {
  readonly #blocks: BlockStore;
  readonly #chunkSize: number;
  readonly #concurrency: number;
  readonly #maxInMemoryBytes: number;
  readonly #maxManifestBytes: number;

  /**
   * Files over `blocks`.
   *
   * @param blocks Where chunks and manifests are stored.
   * @param options Chunk size and concurrency.
   *
   * @example
   * ```ts
   * import { ChunkStore } from "./chunk_store.ts";
   * import { FileStore } from "./file_store.ts";
   * const files = new FileStore(await ChunkStore.open(await Deno.makeTempDir()));
   * const { cid } = await files.put(ReadableStream.from([new TextEncoder().encode("hi")]));
   * const text = new TextDecoder().decode(await files.bytes(cid));
   * ```
   */
  constructor(blocks: BlockStore, options?: FileStoreOptions) {
    this.#blocks = blocks;
    this.#chunkSize = options?.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.#concurrency = Math.max(1, options?.concurrency ?? DEFAULT_FILE_CONCURRENCY);
    this.#maxInMemoryBytes = options?.maxInMemoryBytes ?? DEFAULT_MAX_IN_MEMORY_BYTES;
    this.#maxManifestBytes = options?.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  }

  /** Store a stream as a file; resolves once every chunk and the manifest are acknowledged. */
  async put(source: ReadableStream<Uint8Array>, options?: PutFileOptions): Promise<PutFileResult> {
    const signal = options?.signal;
    const cipher = options?.key ? await options.key.newFile() : undefined;
    const chunks: string[] = [];
    const sizes: number[] = [];
    const inflight = new Set<Promise<void>>();
    let failure: unknown = undefined;
    let size = 0;
    let stored = 0; // acknowledged bytes; chunks finish out of order, so count, don't index
    let index = 0;
    const reader = source.pipeThrough(new ChunkerStream({ chunkSize: this.#chunkSize }))
      .getReader();
    try {
      while (true) {
        if (failure !== undefined) throw failure;
        signal?.throwIfAborted();
        const { done, value } = await reader.read();
        if (done) break;
        const i = index++;
        size += value.length;
        const task = (async () => {
          const bytes = cipher ? await cipher.encryptChunk(i, value) : value;
          chunks[i] = await this.#blocks.put(bytes, { signal });
          sizes[i] = value.length;
          stored += value.length;
          freedMemory.moved(value.length);
          options?.onProgress?.(stored);
        })().catch((error) => {
          failure ??= error;
        });
        inflight.add(task);
        task.finally(() => inflight.delete(task));
        // Backpressure: read the next chunk only when a slot is free.
        if (inflight.size >= this.#concurrency) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      if (failure !== undefined) throw failure;
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      await Promise.all(inflight);
      throw error;
    }
    freedMemory.ended();
    const chunkCount = chunks.length;
    if (!cipher) {
      if (chunks.length === 0) {
        chunks.push(await this.#blocks.put(new Uint8Array(0), { signal })); // the empty leaf
        sizes.push(0);
      }
      const leaves = chunks.map((cid, i) => leafEntry(cid, sizes[i]));
      const root = await buildFile(leaves, (bytes) => this.#blocks.put(bytes, { signal }));
      return { cid: root.cid, size, chunkCount, tier: "public", tsize: root.tsize };
    }
    const manifest = await this.#manifest(chunks, size, options, cipher, signal);
    const bytes = encodeManifest(manifest);
    const key = await this.#blocks.put(bytes, { signal });
    const cid = cidFromDigest(cidDigest(key), DAG_CBOR_CODEC);
    return { cid, size, chunkCount, tier: manifest.tier, tsize: bytes.length };
  }

  /**
   * A UnixFS directory of files and directories already stored (each entry: its `name`, and the
   * `cid` and `tsize` its put returned with the put's `size` as `fileSize` —
   * `{ name, fileSize: file.size, ...file }` — or, for a subdirectory, `{ name, ...dir }` with
   * the entry its `putDirectory` resolved with); resolves with its entry. Entries are sorted by
   * name, as dag-pb requires.
   *
   * @throws {DirectoryTooLargeError} so many entries that IPFS would shard the directory.
   */
  async putDirectory(
    entries: readonly DirectoryEntry[],
    options?: { signal?: AbortSignal },
  ): Promise<DagEntry> {
    return await buildDirectory(entries, (bytes) => this.#blocks.put(bytes, options));
  }

  async #manifest(
    chunks: string[],
    size: number,
    options: PutFileOptions | undefined,
    cipher: FileCipher,
    signal: AbortSignal | undefined,
  ): Promise<Manifest> {
    const info: SealedFileInfo = {
      size,
      chunkSize: this.#chunkSize,
      name: options?.name,
      mime: options?.mime,
    };
    const root = { salt: cipher.salt, sealed: await cipher.sealInfo(info) };
    return await buildPrivateManifest(
      chunks,
      root,
      this.#maxManifestBytes,
      (bytes) => this.#blocks.put(bytes, { signal }),
    );
  }

  /**
   * The parsed manifest of file `cid` (verified against the CID by the block store).
   *
   * @throws {InvalidManifestError} `cid` is a UnixFS file or any other object, not a manifest.
   */
  async manifest(cid: string, options?: { signal?: AbortSignal }): Promise<Manifest> {
    if (cidCodec(cid) === DAG_PB_CODEC) {
      throw new InvalidManifestError(`${cid} is a UnixFS node, not a manifest`);
    }
    return decodeManifest(await this.#get(cid, options?.signal));
  }

  /** A verified block, asked for by its storage key (the store holds bytes by digest). */
  #get(cid: string, signal?: AbortSignal): Promise<Uint8Array> {
    return this.#blocks.get(storageKey(cid), { signal });
  }

  /** True when raw `cid` is a manifest written before UnixFS, by the block store's record. */
  async #isLegacyManifest(cid: string): Promise<boolean> {
    return cidCodec(cid) === RAW_CODEC && (await this.#blocks.isLegacyManifest?.(cid) ?? false);
  }

  /**
   * What `cid` is: a UnixFS node (a raw leaf counts as a one-chunk file) or a manifest. The
   * codec and the store's record decide, never the bytes: a raw CID names exactly its bytes (a
   * one-chunk public file shaped like a manifest is that file), unless the store records it as
   * a manifest written before UnixFS; a dag-cbor manifest is private (public ones were only
   * ever raw-labelled, so a public one under a dag-cbor label is someone's file relabelled).
   */
  async #resolve(cid: string, signal?: AbortSignal): Promise<Resolved> {
    const codec = cidCodec(cid);
    const bytes = await this.#get(cid, signal);
    if (codec === DAG_CBOR_CODEC) {
      if (looksLikeManifestNode(bytes)) {
        throw new InvalidManifestError(
          `${cid} is a node of a private file's manifest tree, not a file: ask for the file's id`,
        );
      }
      const manifest = decodeManifest(bytes);
      if (manifest.tier !== "private") {
        throw new InvalidManifestError(
          `${cid} is a public manifest under a dag-cbor label: only private manifests are dag-cbor`,
        );
      }
      return { manifest };
    }
    if (await this.#isLegacyManifest(cid)) return { manifest: decodeManifest(bytes) };
    return { unixfs: { ...decodeUnixfs(cid, bytes), cid } };
  }

  /**
   * Metadata of file `cid`. For a private file, size/name/mime need the key; without one they
   * are `null`/absent. @throws {AuthenticationError} a key was given and it is the wrong one.
   */
  async stat(cid: string, options?: { key?: OwnerKey; signal?: AbortSignal }): Promise<FileInfo> {
    const resolved = await this.#resolve(cid, options?.signal);
    return (await this.#open(cid, resolved, options?.key, false)).info;
  }

  /**
   * Every block file `cid` is made of, the root first (a UnixFS DAG's inner nodes are read to
   * find them; leaves are listed, not read). What repair, `ls` and a CAR export walk.
   */
  async blocks(cid: string, options?: { signal?: AbortSignal }): Promise<string[]> {
    const out: string[] = [];
    const walk = dagBlocks(cid, (c) => this.#get(c, options?.signal), {
      isLegacyManifest: (c) => this.#isLegacyManifest(c),
    });
    for await (const block of walk) {
      out.push(block.cid);
    }
    return out;
  }

  async #open(
    cid: string,
    resolved: Resolved,
    key: OwnerKey | undefined,
    needKey: boolean,
  ): Promise<Opened> {
    if (resolved.unixfs) {
      const node = resolved.unixfs;
      const type = node.type === "directory" ? "directory" : "file";
      if (type === "directory" && needKey) {
        throw new StorageError(
          "not_a_file",
          `${cid} is a directory, not a file: its listing and its files are served by path ` +
            `through a node's gateway (/ipfs/${cid}/ and /ipfs/${cid}/NAME)`,
        );
      }
      const chunks = node.links.length === 0 && cidCodec(cid) === RAW_CODEC
        ? [cid]
        : node.links.map((link) => link.cid);
      const info: FileInfo = {
        cid,
        tier: "public",
        type,
        size: type === "directory" ? null : node.fileSize,
        chunkSize: null,
        chunks,
      };
      return { info, unixfs: node };
    }
    const manifest = resolved.manifest!;
    if (manifest.tier === "public") {
      const { size, chunkSize, chunks, name, mime } = manifest;
      return { info: { cid, tier: "public", size, chunkSize, chunks, name, mime } };
    }
    if (!key) {
      if (needKey) throw new KeyRequiredError(cid);
      const info: FileInfo = {
        cid,
        tier: "private",
        size: null,
        chunkSize: null,
        chunks: manifestLinks(manifest),
      };
      return { info };
    }
    const cipher = await key.file(manifest.salt);
    return { info: await privateInfo(cid, manifest, cipher), cipher, manifest };
  }

  /**
   * A stream of the file's bytes (or of `[start, end)`), every chunk verified (and decrypted)
   * before it is emitted. Resolves once the root is read, so an unknown CID, a wrong key or
   * a bad range rejects here rather than mid-stream.
   */
  async get(cid: string, options?: GetFileOptions): Promise<ReadableStream<Uint8Array>> {
    const resolved = await this.#resolve(cid, options?.signal);
    return this.#stream(await this.#open(cid, resolved, options?.key, true), options);
  }

  /**
   * Stream a private file with its file cipher rather than the owner key: how a share link's
   * holder (who has the file's keys, never the owner's) reads it. See `share_link.ts`.
   */
  async getWithCipher(
    cid: string,
    cipher: FileCipher,
    options?: Omit<GetFileOptions, "key">,
  ): Promise<{ info: FileInfo; stream: ReadableStream<Uint8Array> }> {
    const manifest = await this.manifest(cid, options);
    if (manifest.tier !== "private") throw new InvalidManifestError(`${cid} is not private`);
    const info = await privateInfo(cid, manifest, cipher);
    return { info, stream: this.#stream({ info, cipher, manifest }, options) };
  }

  #stream(opened: Opened, options: Omit<GetFileOptions, "key"> | undefined) {
    const { info, cipher, unixfs, manifest } = opened;
    const size = info.size!;
    const start = options?.start ?? 0;
    const end = options?.end ?? size;
    if (
      !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > size ||
      start > end
    ) {
      throw new RangeNotSatisfiableError(start, end, size);
    }
    const abort = new AbortController();
    const signal = options?.signal ? AbortSignal.any([abort.signal, options.signal]) : abort.signal;
    const pieces = unixfs
      ? filePieces(unixfs, start, end, (c) => this.#get(c, signal))
      : manifestPieces(
        manifest ?? { chunks: info.chunks },
        size,
        info.chunkSize!,
        start,
        end,
        (c) => this.#get(c, signal),
      );
    const fetchPiece = async (piece: FilePiece & { index?: number }): Promise<Uint8Array> => {
      const stored = piece.data ?? await this.#get(piece.cid, signal);
      // A private chunk's nonce and associated data are its index in the file.
      const plain = cipher ? await cipher.decryptChunk(piece.index!, stored) : stored;
      if (plain.length !== piece.size) {
        throw new InvalidManifestError(
          `chunk ${piece.cid} has ${plain.length} bytes, not ${piece.size}`,
        );
      }
      return piece.from === 0 && piece.to === plain.length
        ? plain
        : plain.subarray(piece.from, piece.to);
    };
    const queue: Promise<Uint8Array>[] = [];
    let exhausted = false;
    const refill = async () => {
      while (queue.length < this.#concurrency && !exhausted) {
        const next = await pieces.next();
        if (next.done) {
          exhausted = true;
          return;
        }
        const p = fetchPiece(next.value);
        p.catch(() => {}); // observed when dequeued; this only prevents an unhandled rejection
        queue.push(p);
      }
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          await refill();
          const head = queue.shift();
          if (!head) {
            controller.close();
            freedMemory.ended();
            return;
          }
          const piece = await head;
          controller.enqueue(piece);
          freedMemory.moved(piece.length);
          await refill();
        } catch (error) {
          abort.abort(error);
          controller.error(error);
        }
      },
      cancel: async (reason) => {
        abort.abort(reason);
        await pieces.return(undefined).catch(() => {});
      },
    }, { highWaterMark: 0 });
  }

  /**
   * The content named by `cid`, whole, in memory: a file is assembled; a raw object (a raw leaf:
   * a one-chunk file, a model, a prompt) is returned as is, unless the store records it as a
   * manifest written before UnixFS. This is how inference resolves `promptCid`/model CIDs. For
   * small and medium files only.
   */
  async content(
    cid: string,
    options?: { key?: OwnerKey; signal?: AbortSignal },
  ): Promise<Uint8Array> {
    if (cidCodec(cid) === RAW_CODEC && !await this.#isLegacyManifest(cid)) {
      return await this.#get(cid, options?.signal);
    }
    return await this.bytes(cid, options);
  }

  /**
   * The whole file (or a range) in memory. For small files: models, prompts, outputs.
   *
   * @throws {FileTooLargeError} the file (or range) is larger than `maxInMemoryBytes`.
   */
  async bytes(cid: string, options?: GetFileOptions): Promise<Uint8Array> {
    const resolved = await this.#resolve(cid, options?.signal);
    const opened = await this.#open(cid, resolved, options?.key, true);
    const wanted = (options?.end ?? opened.info.size!) - (options?.start ?? 0);
    if (wanted > this.#maxInMemoryBytes) {
      throw new FileTooLargeError(cid, wanted, this.#maxInMemoryBytes);
    }
    const stream = this.#stream(opened, options);
    const parts: Uint8Array[] = [];
    let total = 0;
    for await (const part of stream) {
      parts.push(part);
      total += part.length;
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
}

/** A root read: a UnixFS node, or a manifest. */
interface Resolved {
  unixfs?: UnixfsNode & { cid: string };
  manifest?: Manifest;
}

/** A file opened for reading. */
interface Opened {
  info: FileInfo;
  cipher?: FileCipher;
  unixfs?: UnixfsNode & { cid: string };
  /** A private file's root manifest: its chunks, or the tree that lists them. */
  manifest?: Manifest & { tier: "private" };
}

async function privateInfo(
  cid: string,
  manifest: Manifest & { tier: "private" },
  cipher: FileCipher,
): Promise<FileInfo> {
  const sealed = await cipher.openInfo(manifest.sealed);
  const expected = sealed.size === 0 ? 0 : Math.ceil(sealed.size / sealed.chunkSize);
  if (expected !== chunkCountOf(manifest)) {
    throw new InvalidManifestError("sealed size does not match the chunk count");
  }
  return { cid, tier: "private", chunks: manifestLinks(manifest), ...sealed };
}

/**
 * The chunks of a manifest file overlapping `[start, end)`: a flat manifest's from its list, a
 * manifest tree's through the nodes on their path only (`manifest_tree.ts`).
 */
async function* manifestPieces(
  manifest: { chunks: string[]; branches?: ManifestBranch[] },
  size: number,
  chunkSize: number,
  start: number,
  end: number,
  get: (cid: string) => Promise<Uint8Array>,
): AsyncGenerator<FilePiece & { index: number }> {
  if (start === end) return;
  const first = Math.floor(start / chunkSize);
  const last = Math.ceil(end / chunkSize) - 1;
  const lastIndex = Math.ceil(size / chunkSize) - 1;
  for await (const { cid, index: i } of manifestChunks(manifest, first, last, get)) {
    const length = i === lastIndex ? size - i * chunkSize : chunkSize;
    const from = i === first ? start - i * chunkSize : 0;
    const to = i === last ? end - i * chunkSize : length;
    yield { cid, size: length, from, to, index: i };
  }
}
