/**
 * Files on top of a {@link BlockStore}: a streaming put that chunks, (for the private tier)
 * encrypts, and stores each chunk, then writes the manifest whose CID is the file id; and a
 * streaming, verified, optionally byte-ranged get.
 *
 * Memory is bounded by `concurrency` chunks in flight (plus one being assembled), whatever the
 * file size: the put reads its source only as fast as chunks are acknowledged, and the get reads
 * ahead only `concurrency` chunks. Works the same over the local {@link ChunkStore} and the
 * replicated store.
 *
 * @module
 */
import {
  decodeManifest,
  encodeManifest,
  looksLikeManifest,
  type Manifest,
  MANIFEST_TYPE,
  MANIFEST_VERSION,
  type SealedFileInfo,
  type StorageTier,
} from "../protocols/manifest.ts";
import { ChunkerStream, DEFAULT_CHUNK_SIZE } from "../streams/chunker_stream.ts";
import type { BlockStore } from "./block_store.ts";
import {
  FileTooLargeError,
  InvalidManifestError,
  KeyRequiredError,
  RangeNotSatisfiableError,
} from "./errors.ts";
import type { FileCipher, OwnerKey } from "./private_tier.ts";

/** Default of {@link FileStoreOptions.concurrency}. */
const DEFAULT_CONCURRENCY = 16;
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
}

/** Options of {@link FileStore.put}. */
export interface PutFileOptions {
  /** File name recorded in the manifest (sealed for private files). */
  name?: string;
  /** MIME type recorded in the manifest (sealed for private files). */
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
  /** The file id: CID of the manifest. */
  cid: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Number of chunks. */
  chunkCount: number;
  /** Tier. */
  tier: StorageTier;
}

/** Metadata of a stored file. */
export interface FileInfo {
  /** The file id. */
  cid: string;
  /** Tier. */
  tier: StorageTier;
  /** Plaintext size (private files: only known with the key, else `null`). */
  size: number | null;
  /** Chunk size (private files: only known with the key, else `null`). */
  chunkSize: number | null;
  /** Chunk CIDs as stored (ciphertext CIDs for private files). */
  chunks: string[];
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
    this.#concurrency = Math.max(1, options?.concurrency ?? DEFAULT_CONCURRENCY);
    this.#maxInMemoryBytes = options?.maxInMemoryBytes ?? DEFAULT_MAX_IN_MEMORY_BYTES;
  }

  /** Store a stream as a file; resolves once every chunk and the manifest are acknowledged. */
  async put(source: ReadableStream<Uint8Array>, options?: PutFileOptions): Promise<PutFileResult> {
    const signal = options?.signal;
    const cipher = options?.key ? await options.key.newFile() : undefined;
    const chunks: string[] = [];
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
          stored += value.length;
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
    const manifest = await this.#manifest(chunks, size, options, cipher);
    const cid = await this.#blocks.put(encodeManifest(manifest), { signal });
    return { cid, size, chunkCount: chunks.length, tier: manifest.tier };
  }

  async #manifest(
    chunks: string[],
    size: number,
    options: PutFileOptions | undefined,
    cipher: FileCipher | undefined,
  ): Promise<Manifest> {
    const base = { type: MANIFEST_TYPE, v: MANIFEST_VERSION, chunks } as const;
    if (!cipher) {
      return {
        ...base,
        tier: "public",
        size,
        chunkSize: this.#chunkSize,
        name: options?.name,
        mime: options?.mime,
      };
    }
    const info: SealedFileInfo = {
      size,
      chunkSize: this.#chunkSize,
      name: options?.name,
      mime: options?.mime,
    };
    return { ...base, tier: "private", salt: cipher.salt, sealed: await cipher.sealInfo(info) };
  }

  /** The parsed manifest of file `cid` (verified against the CID by the block store). */
  async manifest(cid: string, options?: { signal?: AbortSignal }): Promise<Manifest> {
    return decodeManifest(await this.#blocks.get(cid, options));
  }

  /**
   * Metadata of file `cid`. For a private file, size/name/mime need the key; without one they
   * are `null`/absent. @throws {AuthenticationError} a key was given and it is the wrong one.
   */
  async stat(cid: string, options?: { key?: OwnerKey; signal?: AbortSignal }): Promise<FileInfo> {
    const manifest = await this.manifest(cid, options);
    return (await this.#open(cid, manifest, options?.key, false)).info;
  }

  async #open(
    cid: string,
    manifest: Manifest,
    key: OwnerKey | undefined,
    needKey: boolean,
  ): Promise<{ info: FileInfo; cipher?: FileCipher }> {
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
        chunks: manifest.chunks,
      };
      return { info };
    }
    const cipher = await key.file(manifest.salt);
    const sealed = await cipher.openInfo(manifest.sealed);
    const expected = sealed.size === 0 ? 0 : Math.ceil(sealed.size / sealed.chunkSize);
    if (expected !== manifest.chunks.length) {
      throw new InvalidManifestError("sealed size does not match the chunk count");
    }
    const info: FileInfo = { cid, tier: "private", chunks: manifest.chunks, ...sealed };
    return { info, cipher };
  }

  /**
   * A stream of the file's bytes (or of `[start, end)`), every chunk verified (and decrypted)
   * before it is emitted. Resolves once the manifest is read, so an unknown CID, a wrong key or
   * a bad range rejects here rather than mid-stream.
   */
  async get(cid: string, options?: GetFileOptions): Promise<ReadableStream<Uint8Array>> {
    const manifest = await this.manifest(cid, options);
    const { info, cipher } = await this.#open(cid, manifest, options?.key, true);
    return this.#stream(info, cipher, options);
  }

  #stream(
    info: FileInfo,
    cipher: FileCipher | undefined,
    options: GetFileOptions | undefined,
  ): ReadableStream<Uint8Array> {
    const size = info.size!;
    const chunkSize = info.chunkSize!;
    const start = options?.start ?? 0;
    const end = options?.end ?? size;
    if (
      !Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > size ||
      start > end
    ) {
      throw new RangeNotSatisfiableError(start, end, size);
    }
    const first = Math.floor(start / chunkSize);
    const last = end === start ? first - 1 : Math.ceil(end / chunkSize) - 1;
    const abort = new AbortController();
    const signal = options?.signal ? AbortSignal.any([abort.signal, options.signal]) : abort.signal;
    const queue: Promise<Uint8Array>[] = [];
    let next = first;
    const fetchChunk = async (i: number): Promise<Uint8Array> => {
      const stored = await this.#blocks.get(info.chunks[i], { signal });
      const plain = cipher ? await cipher.decryptChunk(i, stored) : stored;
      const expectedLength = i === info.chunks.length - 1 ? size - i * chunkSize : chunkSize;
      if (plain.length !== expectedLength) {
        throw new InvalidManifestError(
          `chunk ${i} has ${plain.length} bytes, not ${expectedLength}`,
        );
      }
      const from = i === first ? start - i * chunkSize : 0;
      const to = i === last ? end - i * chunkSize : plain.length;
      return from === 0 && to === plain.length ? plain : plain.subarray(from, to);
    };
    const refill = () => {
      while (queue.length < this.#concurrency && next <= last) {
        const p = fetchChunk(next++);
        p.catch(() => {}); // observed when dequeued; this only prevents an unhandled rejection
        queue.push(p);
      }
    };
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        refill();
        const head = queue.shift();
        if (!head) {
          controller.close();
          return;
        }
        try {
          controller.enqueue(await head);
        } catch (error) {
          abort.abort(error);
          controller.error(error);
          return;
        }
        refill();
      },
      cancel: (reason) => {
        abort.abort(reason);
      },
    }, { highWaterMark: 0 });
  }

  /**
   * The content named by `cid`, whole, in memory: a file (manifest CID) is assembled; any other
   * stored object (a raw blob whose CID is simply the hash of its bytes) is returned as is.
   * This is how inference resolves `promptCid`/model CIDs. For small and medium files only.
   */
  async content(
    cid: string,
    options?: { key?: OwnerKey; signal?: AbortSignal },
  ): Promise<Uint8Array> {
    const object = await this.#blocks.get(cid, options);
    if (!looksLikeManifest(object)) return object;
    return await this.bytes(cid, options);
  }

  /**
   * The whole file (or a range) in memory. For small files: models, prompts, outputs.
   *
   * @throws {FileTooLargeError} the file (or range) is larger than `maxInMemoryBytes`.
   */
  async bytes(cid: string, options?: GetFileOptions): Promise<Uint8Array> {
    const manifest = await this.manifest(cid, options);
    const { info, cipher } = await this.#open(cid, manifest, options?.key, true);
    const wanted = (options?.end ?? info.size!) - (options?.start ?? 0);
    if (wanted > this.#maxInMemoryBytes) {
      throw new FileTooLargeError(cid, wanted, this.#maxInMemoryBytes);
    }
    const stream = this.#stream(info, cipher, options);
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
