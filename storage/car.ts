/**
 * CAR files (Content Addressable aRchives, v1): a file's whole DAG as one byte stream, the way
 * IPFS tools move DAGs (`ipfs dag export` / `import`, a trustless gateway's `?format=car`).
 * Written and read with the npm `@ipld/car`, streaming both ways: an export holds one block at
 * a time (the writer waits for its reader), an import verifies and stores each block as it
 * arrives, so a 10 GB CAR never needs 10 GB of memory.
 *
 * Export order is depth first from the root, each block once (`order=dfs; dups=n` in the
 * trustless gateway's terms). An import checks every block against its CID (sha2-256, and one
 * of the codecs a Veriflow CID may carry) before storing it: a block that does not verify is
 * `corrupt_chunk` and the import stops.
 *
 * @module
 */
import { CarWriter } from "@ipld/car";
import {
  asyncIterableReader,
  type BytesReader,
  limitReader,
  readBlockHead,
  readHeader,
} from "@ipld/car/decoder";
import { varint } from "multiformats";
import { CID } from "multiformats/cid";
import {
  cidCodec,
  cidDigest,
  DAG_CBOR_CODEC,
  identityBlock,
  InvalidCidError,
  storageKey,
} from "../protocols/cid.ts";
import type { BlockStore } from "./block_store.ts";
import { dagBlocks, MAX_DAG_DEPTH } from "./dag_links.ts";
import { fileRangeBlocks, type LeafChecker } from "./unixfs.ts";
import { LeafBatch, MAX_LEAVES_PER_CHECK, RAW_SHA256_PREFIX } from "./_leaf_batch.ts";
import { digestOf, equalBytes } from "./_hash.ts";
import { MAX_SHARE_MANIFEST_BYTES } from "./share_links.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  BlockTooLargeError,
  CorruptChunkError,
  MAX_CAR_BLOCK_BYTES,
  StorageError,
} from "./errors.ts";

/** Media type of a CAR response (trustless gateway spec). */
export const CAR_MEDIA_TYPE = "application/vnd.ipld.car";

/**
 * Largest CAR header an import reads: the header names the roots, ~40 bytes each, and a CAR that
 * IPFS tools write names one. 1 MiB (~25,000 roots) refuses only a header whose length announces
 * what no CAR carries, before the reader buffers it: it takes whatever length a CAR announces.
 */
export const MAX_CAR_HEADER_BYTES = 1024 * 1024;

/**
 * Longest CID a CAR section may start with, or its header name as a root: a sha2-256 CID is 36
 * bytes, and an identity CID inlines at most 128 bytes of block (boxo's `verifcid` refuses longer
 * digests). Like a header's, a CID's length is announced (its multihash's) and would be buffered
 * whatever it says; a root over it is a CID no reader takes (review s76 F4: a 700 KB identity root
 * was imported and printed as a 1.1 MB line no command line can pass back).
 */
export const MAX_CAR_CID_BYTES = 256;

/**
 * Largest dag-cbor block (a manifest) a CAR import takes: the share opener's bound on a manifest,
 * the largest any Veriflow reader takes (a flat private manifest written before manifest trees,
 * ~270,000 chunks). New manifests are trees of nodes of at most 512 KiB, so nothing Veriflow
 * writes now comes near it; uncapped, one 61 MB block made every later GC and `ls` of the store
 * take seconds and hundreds of MB (review s71, F3).
 */
export const MAX_CAR_MANIFEST_BYTES: number = MAX_SHARE_MANIFEST_BYTES;

/** How much of a DAG an export carries (the gateway's `dag-scope`). */
export type CarScope = "all" | "block";

/** Reads a verified block by any CID. */
export type ReadBlock = (cid: string, signal?: AbortSignal) => Promise<Uint8Array>;

/** Options of {@link exportCar} and {@link carLength}. */
export interface ExportCarOptions {
  /** `all` (default): the whole DAG; `block`: the root block only. */
  scope?: CarScope;
  /** Aborts the export; the stream errors with the reason. */
  signal?: AbortSignal;
  /** The store's record of raw manifests written before UnixFS (see `dag_links.ts`). */
  isLegacyManifest?: (cid: string) => Promise<boolean>;
  /**
   * The CAR header's roots. Default `[root]`; a gateway answering `/ipfs/{cid}/{path}` names the
   * requested `cid`, whose path blocks come first.
   */
  roots?: readonly string[];
  /**
   * Blocks written before `root`'s, in order: the directories of a content path, which a
   * trustless reader checks name by name on its way to `root` (`unixfs_path.ts`).
   */
  path?: readonly { cid: string; bytes: Uint8Array }[];
  /**
   * For a UnixFS file root: only the blocks that verify bytes `[start, end)` (the trustless
   * gateway's `entity-bytes`, `unixfs.ts` `fileRangeBlocks`) instead of `scope`'s.
   */
  range?: { start: number; end: number };
  /** Steps the walk of `range` may take (`unixfs.ts` `MAX_RANGE_STEPS` by default). */
  maxRangeSteps?: number;
  /**
   * Told each link the walk passes over because no store here can hold what it names (a valid
   * CID of another codec or hash in a peer's directory: `dag_links.ts` `storedLinks`). The CAR
   * goes on without it, as a whole CAR of what is stored, never a body broken off mid-stream.
   */
  onUnstorable?: (link: string) => void;
}

/**
 * A CAR of the DAG under `root` (or just the root block, `scope: "block"`; or the blocks of a
 * file's byte range, `range`), after the blocks of `path` if given, as a byte stream. Each block
 * appears once. Every block is read verified; a missing one errors the stream (`chunk_not_found`).
 * No block of an identity CID is written, not even a root's: its bytes are in the CID itself, and
 * the trustless gateway spec says a CAR MUST NOT carry such "virtual blocks" whether or not they
 * are in the DAG (for the probe `bafkqaaa`: a header naming it as root, the block MAY be skipped).
 * A CAR of an identity root alone is its header (review s78 F4: the node wrote the block).
 *
 * @example
 * ```ts
 * import { ChunkStore } from "./chunk_store.ts";
 * import { FileStore } from "./file_store.ts";
 * import { exportCar } from "./car.ts";
 * const store = await ChunkStore.open(await Deno.makeTempDir());
 * const { cid } = await new FileStore(store).put(ReadableStream.from([new Uint8Array([1])]));
 * const car = exportCar(cid, (c) => store.get(c));
 * ```
 */
export function exportCar(
  root: string,
  read: ReadBlock,
  options?: ExportCarOptions,
): ReadableStream<Uint8Array> {
  const cancelled = new AbortController();
  const signal = options?.signal
    ? AbortSignal.any([options.signal, cancelled.signal])
    : cancelled.signal;
  const { writer, out } = CarWriter.create(carRoots(root, options));
  let failure: unknown = undefined;
  const get = inlineAware(read, signal);
  const writing = (async () => {
    try {
      for await (const block of carBlocks(root, get, options)) {
        signal.throwIfAborted();
        await writer.put({ cid: CID.parse(block.cid), bytes: block.bytes ?? await get(block.cid) });
      }
      await writer.close();
    } catch (error) {
      failure = error;
      await writer.close().catch(() => {});
    }
  })();
  const iterator = out[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (!next.done) {
        controller.enqueue(next.value);
        return;
      }
      await writing;
      if (failure !== undefined) controller.error(failure);
      else controller.close();
    },
    async cancel(reason) {
      cancelled.abort(reason);
      // The writer waits for its output to be read: drain it so the export loop sees the abort.
      while (!(await iterator.next()).done) { /* discard */ }
      await writing;
    },
  }, { highWaterMark: 0 });
}

/** Options of {@link carLength}: {@link exportCar}'s, and how to tell a leaf no read can get. */
export interface CarLengthOptions extends ExportCarOptions {
  /**
   * The storage's check of leaves (`GatewayStorage.leavesReadable`), which are not read: a leaf no
   * read can get stops the walk with `chunk_not_found`, so a `HEAD` does not promise a CAR its
   * `GET` would cut (review s76 F3). Asked once per batch of leaves (`_leaf_batch.ts`, as the file
   * routes' range check asks), not once per leaf: a 4 GiB file's CAR `HEAD` made 16,384 asks.
   */
  leavesReadable?: LeafChecker;
}

/**
 * The bytes {@link exportCar} with the same arguments would send, counted without writing the CAR,
 * or `undefined` when counting them would take reading a leaf: only the blocks its walk reads
 * anyway are read (the root, inner nodes, a manifest), and a leaf's length is known only from its
 * bytes. The `Tsize` a dag-pb link records is the writer's word for it, which nothing checks
 * (other tools write 0 or omit it, a hostile DAG says anything): a length taken from it could
 * contradict the CAR sent (review s71, F4). What a `HEAD` of a CAR answers with (no length when
 * `undefined`), and a check of a byte range's walk before a `GET` sends anything.
 *
 * @throws What the export's walk would: a missing node, a node that is not what its codec says,
 * a byte range whose walk is too long (`range_too_large`); with `options.leavesReadable`, a leaf
 * it says no read can get (`chunk_not_found`).
 */
export async function carLength(
  root: string,
  read: ReadBlock,
  options?: CarLengthOptions,
): Promise<number | undefined> {
  const get = inlineAware(read, options?.signal);
  let total: number | undefined = await headerLength(carRoots(root, options));
  // Walked to the end even once a leaf makes the length unknown: a byte range's walk, and a
  // HEAD's, checks every inner node (its length; that it is held, under `only-if-cached`) before
  // anything is sent.
  const batch = options?.leavesReadable && new LeafBatch(options.leavesReadable);
  /** False once nothing is checked: no check given, or the storage said it checks nothing. */
  let checks = batch !== undefined;
  /** Leaves met since the last block read, handed to `batch` when the next one comes. */
  let leaves: string[] = [];
  /** Hands `leaves` on; the first run is sent at once (a storage that checks nothing says so). */
  const checkLeaves = async () => {
    if (batch === undefined || leaves.length === 0) return;
    checks = await batch.add(leaves) && (batch.asked || await batch.flush());
    leaves = [];
  };
  for await (const block of carBlocks(root, get, options)) {
    if (block.bytes === undefined) {
      total = undefined;
      if (!checks) continue;
      leaves.push(block.cid);
      if (leaves.length >= MAX_LEAVES_PER_CHECK) await checkLeaves();
      continue;
    }
    await checkLeaves();
    if (total === undefined) continue;
    const framed = CID.parse(block.cid).bytes.length + block.bytes.length;
    total += varint.encodingLength(framed) + framed;
  }
  await checkLeaves();
  if (batch !== undefined && checks) await batch.flush();
  return total;
}

/** The CIDs of a CAR's header: `options.roots`, else `[root]`. */
function carRoots(root: string, options?: ExportCarOptions): CID[] {
  return (options?.roots ?? [root]).map((c) => CID.parse(c));
}

/** `read` by storage key, with an identity CID's block taken from the CID itself. */
function inlineAware(read: ReadBlock, signal?: AbortSignal) {
  return (cid: string): Promise<Uint8Array> => {
    const inline = identityBlock(cid);
    return inline ? Promise.resolve(inline.bytes) : read(storageKey(cid), signal);
  };
}

/**
 * The blocks of a CAR, in order, each once (by storage key; an identity block never, see
 * {@link exportCar}): the path's, then the root's per `range` or `scope`. Bytes come with the blocks
 * the walk read; a leaf comes without. A block deeper than `dag_links.ts` `MAX_DAG_DEPTH` (a
 * range's: `unixfs.ts` `MAX_UNIXFS_DEPTH`) ends the walk with `dag_too_deep`.
 */
async function* carBlocks(
  root: string,
  get: (cid: string) => Promise<Uint8Array>,
  options?: ExportCarOptions,
): AsyncGenerator<{ cid: string; bytes?: Uint8Array }> {
  const seen = new Set<string>();
  const first = (cid: string) => {
    // A raw leaf (each leaf of a file, a CID the walk has checked) is its own storage key and no
    // identity CID: told without parsing it twice per leaf.
    const raw = cid.startsWith(RAW_SHA256_PREFIX);
    if (!raw && identityBlock(cid) !== undefined) return false;
    const key = raw ? cid : storageKey(cid);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  };
  for (const block of options?.path ?? []) {
    if (first(block.cid)) yield block;
  }
  const blocks = options?.range
    ? fileRangeBlocks(root, options.range.start, options.range.end, get, {
      maxSteps: options.maxRangeSteps,
    })
    : options?.scope === "block"
    ? [{ cid: root, bytes: await get(root) }]
    : dagBlocks(root, get, {
      isLegacyManifest: options?.isLegacyManifest,
      onUnstorable: options?.onUnstorable,
      // A CAR is walked per request by anyone: no deeper than any real DAG goes.
      maxDepth: MAX_DAG_DEPTH,
    });
  for await (const block of blocks) {
    if (first(block.cid)) yield block;
  }
}

/** Bytes of a CAR v1 header naming `roots`: the header a writer of no blocks writes. */
async function headerLength(roots: CID[]): Promise<number> {
  const { writer, out } = CarWriter.create(roots);
  const counting = (async () => {
    let total = 0;
    for await (const piece of out) total += piece.length;
    return total;
  })();
  await writer.close();
  return await counting;
}

/** What an import stored. */
export interface CarImportResult {
  /** The CAR's roots, as CID strings. */
  roots: string[];
  /** Distinct blocks read (and verified, and stored): a section repeating one is not counted. */
  blocks: number;
  /** Bytes of block data stored, each distinct block once. */
  bytes: number;
}

/**
 * Read a CAR from `source`, verify every block against its CID and store it in `blocks`. Each
 * section is judged by the length it announces before its bytes are read, so a CAR cannot make the
 * import buffer more than one block of the size it takes (`@ipld/car`'s reader buffers whatever
 * length a section announces, up to the end of the input).
 *
 * @throws {CorruptChunkError} a block whose bytes do not hash to its CID.
 * @throws {BlockTooLargeError} a block over `MAX_CAR_BLOCK_BYTES` (2 MiB), a dag-cbor one (a
 * manifest) over {@link MAX_CAR_MANIFEST_BYTES} (16 MiB), refused from the length announced.
 * @throws {StorageError} `car_without_roots`: the header names no root; refused before any block
 * is stored.
 * @throws {InvalidCidError} a root over {@link MAX_CAR_CID_BYTES}, refused before any block is
 * stored; a block named by a CID Veriflow does not store (not sha2-256 with the
 * raw, dag-pb or dag-cbor codec). CIDv0 roots and blocks are taken as the CIDv1 of the same
 * digest (dag-pb), and their roots returned so. An identity block (sha2-256 aside, the one
 * multihash taken) is checked against the bytes its CID carries and not stored.
 * @throws {StorageError} `invalid_car`: not a CAR, a header over {@link MAX_CAR_HEADER_BYTES}, a
 * section that does not parse, or a CAR cut short (the blocks before it are stored).
 */
export async function importCar(
  source: ReadableStream<Uint8Array>,
  blocks: BlockStore,
  options?: { signal?: AbortSignal },
): Promise<CarImportResult> {
  // An error of the source itself (a failed read) is passed on as it is, not as a bad CAR.
  let sourceFailed = false;
  const input = (async function* () {
    try {
      yield* source;
    } catch (error) {
      sourceFailed = true;
      throw error;
    }
  })();
  const malformed = (what: string) => (cause: unknown): never => {
    if (sourceFailed || cause instanceof VeriflowError) throw cause;
    throw new StorageError("invalid_car", `${what}: ${(cause as Error).message}`);
  };
  let reader = asyncIterableReader(input);
  const header = await readHeader(boundedReader(reader, MAX_CAR_HEADER_BYTES, "header"))
    .catch(malformed("not a CAR file"));
  if (header.version === 2) {
    // A CARv2 wraps a CARv1: read only its data, as `@ipld/car`'s own decoder does.
    reader = limitReader(reader, header.dataSize - (reader.pos - header.dataOffset));
  }
  for (const root of header.roots) {
    if (root.bytes.length > MAX_CAR_CID_BYTES) {
      throw new InvalidCidError(
        root.toString().slice(0, 80),
        `a CAR root of ${root.bytes.length} bytes (limit ${MAX_CAR_CID_BYTES})`,
      );
    }
  }
  // CIDv0 (`Qm…`, what `ipfs add` writes by default) names a dag-pb block by the same digest as
  // its CIDv1: taken as that, the only CID form Veriflow stores and serves.
  const roots = header.roots.map((cid) => cid.toV1().toString());
  if (roots.length === 0) {
    // Refused before a block is stored: nothing would pin them, so the next GC would remove what
    // the import reported as imported (sharded uploads and some tools write such CARs).
    throw new StorageError(
      "car_without_roots",
      "the CAR names no root: nothing would keep its blocks (a CAR shard without its root?)",
    );
  }
  let count = 0;
  let bytes = 0;
  // Storage keys put by this import: a section repeating a block is verified but neither put again
  // (each put re-verifies the stored copy) nor counted (review s76 F5). One key per distinct block,
  // as the walk of the DAG after an import holds anyway.
  const stored = new Set<string>();
  const cut = () => malformed(`the CAR file is cut short or malformed after ${count} blocks`);
  while ((await reader.upTo(1).catch(cut())).length > 0) {
    options?.signal?.throwIfAborted();
    const head = await readBlockHead(boundedReader(reader, MAX_CAR_CID_BYTES, "CID"))
      .catch(cut());
    const cid = head.cid.toV1().toString();
    const inline = identityBlock(cid);
    if (inline !== undefined) {
      // An identity block is the bytes its CID carries. Gateways must not send one (trustless
      // gateway spec), but other writers may (this node did before stop 79; go-car's blockstore
      // skips them on put rather than refusing): taken and ignored, as they do, after a check
      // against the CID's bytes, since a section that contradicts its own CID is a corrupt CAR.
      // Stored nowhere: nothing reads it from a store. Its length is known from the CID: a
      // section announcing another one is refused before its bytes are read (the reader would
      // buffer whatever it announces).
      if (head.blockLength !== inline.bytes.length) {
        throw new CorruptChunkError(cid, "the CAR file");
      }
      const block = await reader.exactly(head.blockLength, true).catch(cut());
      if (!equalBytes(inline.bytes, block)) throw new CorruptChunkError(cid, "the CAR file");
      continue;
    }
    const expected = cidDigest(cid); // throws invalid_cid for codecs and hashes we do not take
    const limit = cidCodec(cid) === DAG_CBOR_CODEC ? MAX_CAR_MANIFEST_BYTES : MAX_CAR_BLOCK_BYTES;
    if (head.blockLength > limit) {
      throw new BlockTooLargeError(cid, `${head.blockLength} bytes (limit ${limit})`);
    }
    const block = await reader.exactly(head.blockLength, true).catch(cut());
    if (!equalBytes(expected, await digestOf(block))) {
      throw new CorruptChunkError(cid, "the CAR file");
    }
    const key = storageKey(cid);
    if (stored.has(key)) continue;
    await blocks.put(block, options);
    stored.add(key);
    count++;
    bytes += block.length;
  }
  return { roots, blocks: count, bytes };
}

/**
 * `reader`, refusing a read of more than `limit` bytes before it buffers anything: a CAR announces
 * the length of its header and of each CID before them, and `@ipld/car` reads whatever it says.
 *
 * @param what What is read through it, for the error.
 */
function boundedReader(reader: BytesReader, limit: number, what: string): BytesReader {
  return {
    upTo: (length) => reader.upTo(length),
    exactly: (length, seek) => {
      if (length > limit) throw new Error(`a ${what} of ${length} bytes (limit ${limit})`);
      return reader.exactly(length, seek);
    },
    seek: (length) => reader.seek(length),
    get pos() {
      return reader.pos;
    },
  };
}
