/**
 * Share links: a capability to read one private file without the owner's key, until it expires
 * or is revoked.
 *
 * ```
 * http://node:8080/share/<id>#c=<file cid>&k=<the file's keys>     (plain)
 * http://node:8080/share/<id>#c=<file cid>&p=<keys wrapped under a password>
 * ```
 *
 * - **The key is in the fragment**, which browsers and HTTP clients never send: the node
 *   serving the link sees the share id only, and serves ciphertext. The keys are that one
 *   file's (HKDF outputs for its salt, `exportFileKeys`): they open nothing else, and the owner's
 *   secret cannot be derived from them.
 * - **With a password** the keys are wrapped with AES-256-GCM under PBKDF2-SHA-256(password,
 *   random salt, {@link PBKDF2_ITERATIONS}); the link alone then opens nothing.
 * - **Expiry and revocation are the node's, and only gate its `/share` route**: the share record
 *   (`<store>/shares/<id>`: the file id and when it expires) is what lets
 *   `GET /share/<id>/<cid>` serve the file's manifest and chunks — only those. Past
 *   `expiresAt`, or once the record is deleted (`revoke`), that route answers 410/404. The keys
 *   are not revoked: they open the file wherever its ciphertext can be had — the same node's
 *   `/ipfs/<cid>?format=car` serves any stored block to whoever names the CID (the link carries
 *   it), and so does every storage peer holding a replica. To take access back, put the file
 *   again (fresh salt, fresh keys) and unpin the old copy. The keys also encrypt: a holder can
 *   make new files under this salt that open with the owner's key (the file id, not the key,
 *   says which file is the owner's).
 * - The file's CID is in the fragment too, so the holder verifies the manifest the node serves,
 *   and through it every chunk: a node cannot substitute content.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { isCid, storageKey } from "../protocols/cid.ts";
import {
  decodeManifest,
  decodeManifestNode,
  type ManifestBranch,
  MAX_MANIFEST_NODE_BYTES,
} from "../protocols/manifest.ts";
import type { BlockStore } from "./block_store.ts";
import { verifyCid } from "./_hash.ts";
import {
  AuthenticationError,
  BlockTooLargeError,
  ChunkNotFoundError,
  CorruptChunkError,
  StorageError,
} from "./errors.ts";
import { type FileInfo, FileStore } from "./file_store.ts";
import { syncDir } from "./pack_writer.ts";
import { pathExists } from "./path_exists.ts";
import { readBoundedBody } from "../streams/bounded_body.ts";
import { FILE_KEYS_BYTES, FileCipher, GCM_TAG_BYTES, type OwnerKey } from "./private_tier.ts";
import { OWNER_DIR_MODE } from "../protocols/owner_only.ts";

/** Directory (under the store) of share records. */
export const SHARES_DIR = "shares";
/**
 * PBKDF2 rounds for a password-wrapped link: OWASP's 2023 figure for PBKDF2-HMAC-SHA-256
 * (~0.3 s here), paid once per open.
 */
export const PBKDF2_ITERATIONS = 600_000;
/**
 * Age past which a share record's temporary file (`shares/<id>.<uuid>.tmp`, written by
 * `writeFileDurably` and renamed to `<id>` a moment later) is a create that died, and
 * {@link ShareStore.open} removes it: 5 minutes. No lock covers share writes (`cli.ts share create`
 * writes while the node runs), so age is what tells a crash's leftover from a write in progress,
 * which takes milliseconds (a record is ~150 bytes and one fsync). A write stalled past this
 * loses its temporary, and its create fails before any link is handed out.
 */
export const SHARE_TEMPORARY_MAX_AGE_MS: number = 5 * 60 * 1000;
const SHARE_ID_BYTES = 16;
const WRAP_SALT_BYTES = 16;
const WRAP_NONCE_BYTES = 12;

/** What the node keeps of a share. */
export interface ShareRecord {
  /** Format version. */
  v: 1;
  /** The share id (in the link's path). */
  id: string;
  /** The shared file's id. */
  cid: string;
  /** When it stops opening (ms since the epoch); `null`: until revoked. */
  expiresAt: number | null;
  /** When it was made. */
  createdAt: number;
}

/** A share link that no longer opens: expired, revoked, or never made. */
export class ShareUnavailableError extends StorageError {
  /**
   * Build the error.
   *
   * @param code `share_expired` or `share_not_found`.
   * @param id The share id.
   */
  constructor(code: "share_expired" | "share_not_found", id: string) {
    super(code, code === "share_expired" ? `share ${id} has expired` : `no share ${id}`);
  }
}

/** The share records of a store directory (`<store>/shares/<id>`, one JSON file each). */
export class ShareStore {
  readonly #dir: string;

  /**
   * Shares of the store at `storeDir`.
   *
   * @param storeDir The chunk store's directory (`<data>/store`).
   */
  constructor(storeDir: string) {
    this.#dir = join(storeDir, SHARES_DIR);
  }

  /**
   * Shares of the store at `storeDir`, after removing the temporary files that creates killed
   * mid-write left in `shares/` (older than {@link SHARE_TEMPORARY_MAX_AGE_MS}, by mtime; younger
   * ones may be a create in progress in another process). Before, nothing removed them: one file
   * for good per crash (a review found it at stop 56). The node opens its shares so at start.
   *
   * @param storeDir The chunk store's directory (`<data>/store`).
   */
  static async open(storeDir: string): Promise<ShareStore> {
    const store = new ShareStore(storeDir);
    await removeTemporaries(store.#dir, (name) => SHARE_ID_PATTERN.test(name), {
      olderThanMs: SHARE_TEMPORARY_MAX_AGE_MS,
    });
    return store;
  }

  /**
   * Record a new share of `cid`; written atomically and durably (temp file, fsync, rename, fsync
   * of `shares/`, and of the store directory when `shares/` is new) before the link is handed
   * out: a power cut after `share create` printed it must not leave a link that answers 404.
   *
   * @throws {RangeError} `expiresAt` is neither `null` nor a finite time: JSON writes NaN and
   *   Infinity as `null`, which the record reads as "until revoked".
   */
  async create(
    cid: string,
    options: { expiresAt: number | null; now: number },
  ): Promise<ShareRecord> {
    if (options.expiresAt !== null && !Number.isFinite(options.expiresAt)) {
      throw new RangeError(
        `a share expires at a finite time or never (null), not ${options.expiresAt}`,
      );
    }
    const id = newShareId();
    const record: ShareRecord = {
      v: 1,
      id,
      cid,
      expiresAt: options.expiresAt,
      createdAt: options.now,
    };
    if (!await pathExists(this.#dir)) {
      await Deno.mkdir(this.#dir, { recursive: true, mode: OWNER_DIR_MODE });
      await syncDir(dirname(this.#dir));
    }
    await writeFileDurably(join(this.#dir, id), new TextEncoder().encode(JSON.stringify(record)));
    return record;
  }

  /** The record of share `id`, or `undefined` (never made, revoked, or not a share id). */
  async get(id: string): Promise<ShareRecord | undefined> {
    if (!SHARE_ID_PATTERN.test(id)) return undefined;
    let text: string;
    try {
      text = await Deno.readTextFile(join(this.#dir, id));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    try {
      const raw = JSON.parse(text) as ShareRecord;
      if (raw.v !== 1 || raw.id !== id || !isCid(raw.cid)) return undefined;
      if (raw.expiresAt !== null && typeof raw.expiresAt !== "number") return undefined;
      return raw;
    } catch {
      return undefined;
    }
  }

  /**
   * Every share record (of file `cid` only, when given), oldest first: what `share list` shows, so
   * an owner can find and revoke the links to a file. Expired records are listed too (their
   * link no longer opens, but the record stays until revoked). Temporaries and unreadable records
   * are skipped.
   */
  async list(cid?: string): Promise<ShareRecord[]> {
    const records: ShareRecord[] = [];
    try {
      for await (const entry of Deno.readDir(this.#dir)) {
        if (!entry.isFile || !SHARE_ID_PATTERN.test(entry.name)) continue;
        const record = await this.get(entry.name);
        if (record && (cid === undefined || record.cid === cid)) records.push(record);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    return records.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /**
   * The record of share `id` if it opens at time `now`.
   *
   * @throws {ShareUnavailableError} it does not (expired, revoked, never made).
   */
  async valid(id: string, now: number): Promise<ShareRecord> {
    const record = await this.get(id);
    if (!record) throw new ShareUnavailableError("share_not_found", id);
    if (record.expiresAt !== null && now >= record.expiresAt) {
      throw new ShareUnavailableError("share_expired", id);
    }
    return record;
  }

  /**
   * Revoke share `id`; true when it existed. Durable before it resolves: the directory is
   * fsynced after the record is removed, so a power cut right after `share revoke` said so
   * cannot bring the record, and the link, back.
   */
  async revoke(id: string): Promise<boolean> {
    if (!SHARE_ID_PATTERN.test(id)) return false;
    try {
      await Deno.remove(join(this.#dir, id));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
    await syncDir(this.#dir);
    return true;
  }
}

const SHARE_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/**
 * A fresh random share id (16 bytes, base64url). Never one that starts with `-`: one id in 64
 * did, and `cli.ts share revoke -x…` then read it as an option and refused it (exit 2). Drawn
 * again instead, which leaves 127.9 random bits.
 */
export function newShareId(): string {
  for (;;) {
    const id = encodeBase64Url(crypto.getRandomValues(new Uint8Array(SHARE_ID_BYTES)));
    if (!id.startsWith("-")) return id;
  }
}

/**
 * Make a link to private file `cid` (its manifest read from `files`), recorded in `shares`.
 *
 * @param options.baseUrl The node's HTTP address the link points at.
 * @param options.password Wrap the keys under this password instead of putting them in the link.
 * @param options.onProgress Told the bytes checked so far, and the file's size, while every
 *   chunk is decrypted before the keys are handed out.
 * @throws {ShareManifestMismatchError} a chunk of the file does not open with the keys the link
 *   would carry: nothing is recorded or exported.
 */
export async function createShareLink(options: {
  cid: string;
  owner: OwnerKey;
  files: FileStore;
  shares: ShareStore;
  baseUrl: string;
  expiresAt: number | null;
  now: number;
  password?: string;
  onProgress?: (done: number, total: number) => void;
}): Promise<{ link: string; record: ShareRecord }> {
  // The tier by the CID and the store's record (`stat`) before the manifest: a public file is a
  // UnixFS node, and reading its bytes as a manifest would fail as "not CBOR", not as public.
  const { tier } = await options.files.stat(options.cid);
  const manifest = tier === "private" ? await options.files.manifest(options.cid) : undefined;
  if (manifest?.tier !== "private") {
    throw new StorageError("not_private", `${options.cid} is public: its CID is its link`);
  }
  // Opening the sealed metadata proves the owner key is this file's before anything is shared.
  await (await options.owner.file(manifest.salt)).openInfo(manifest.sealed);
  const keys = await options.owner.fileKeyBytes(manifest.salt);
  await assertChunksOpen(options.files, options.cid, manifest.salt, keys, options.onProgress);
  const record = await options.shares.create(options.cid, options);
  const secret = options.password === undefined
    ? `k=${encodeBase64Url(keys)}`
    : `p=${encodeBase64Url(await wrapKeys(keys, options.password))}`;
  const base = options.baseUrl.replace(/\/+$/, "");
  return { link: `${base}/share/${record.id}#c=${options.cid}&${secret}`, record };
}

/**
 * A private manifest whose chunks do not open with the keys of its salt: the sealed metadata is
 * bound to the salt, not to the chunk list, so anyone who read a file's public manifest can put
 * its `salt` and `sealed` over chunks of their own. Sharing that CID would hand out the real
 * file's keys (review s76); the share is refused instead.
 */
export class ShareManifestMismatchError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The file asked to be shared.
   */
  constructor(cid: string, cause: unknown) {
    super(
      "manifest_mismatch",
      `${cid}: its chunks do not open with the keys of its sealed metadata: not a file of ` +
        `yours as it stands (forged or tampered manifest); no share was made`,
      { cause },
    );
  }
}

/**
 * Decrypt every chunk of private file `cid` with `keys` (the keys a link is about to carry),
 * one chunk at a time and dropping each: bounded memory whatever the file's size.
 *
 * @throws {ShareManifestMismatchError} a chunk does not authenticate.
 */
async function assertChunksOpen(
  files: FileStore,
  cid: string,
  salt: Uint8Array,
  keys: Uint8Array,
  onProgress: ((done: number, total: number) => void) | undefined,
): Promise<void> {
  const cipher = await FileCipher.fromFileKeys(salt, keys);
  const { info, stream } = await files.getWithCipher(cid, cipher);
  const total = info.size ?? 0;
  let done = 0;
  try {
    for await (const piece of stream) {
      done += piece.length;
      onProgress?.(done, total);
    }
  } catch (error) {
    if (error instanceof AuthenticationError) throw new ShareManifestMismatchError(cid, error);
    throw error;
  }
}

/** A share link taken apart. */
export interface ParsedShareLink {
  /** Where the node's share route is (`…/share/<id>`). */
  url: string;
  /** The share id. */
  id: string;
  /** The file id. */
  cid: string;
  /** Plain keys (`k=`), if the link carries them. */
  keys?: Uint8Array;
  /** Password-wrapped keys (`p=`), if the link carries them. */
  wrapped?: Uint8Array;
}

/** Parse a share link. @throws {StorageError} `invalid_share_link`. */
export function parseShareLink(link: string): ParsedShareLink {
  const bad = (why: string) => new StorageError("invalid_share_link", `not a share link: ${why}`);
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw bad("not a URL");
  }
  const match = url.pathname.match(/\/share\/([A-Za-z0-9_-]{22})$/);
  if (!match) throw bad("no /share/<id> path");
  const params = new URLSearchParams(url.hash.slice(1));
  const cid = params.get("c") ?? "";
  if (!isCid(cid)) throw bad("no file CID in the fragment");
  const k = params.get("k");
  const p = params.get("p");
  if ((k === null) === (p === null)) throw bad("the fragment needs k= or p=");
  url.hash = "";
  return {
    url: url.toString(),
    id: match[1],
    cid,
    keys: k === null ? undefined : decodeBase64Url(k),
    wrapped: p === null ? undefined : decodeBase64Url(p),
  };
}

/**
 * Open a share link: fetch the file's manifest and chunks from the node (ciphertext), verify
 * each against the CIDs (the file id comes from the link, not the node), decrypt here.
 *
 * @param options.timeoutMs How long the node may take to answer each request, and then to send
 *   its body (default {@link SHARE_FETCH_TIMEOUT_MS}).
 * @throws {ShareUnavailableError} the node refuses: expired (410) or revoked/unknown (404).
 * @throws {AuthenticationError} wrong password, or keys that do not open the file.
 * @throws {StorageError} `node_unreachable`: nothing answers at the link's address;
 *   `node_timeout`: something accepts the connection there but does not answer in time.
 */
export async function openShareLink(
  link: string,
  options?: { password?: string; fetch?: typeof fetch; signal?: AbortSignal; timeoutMs?: number },
): Promise<{ info: FileInfo; stream: ReadableStream<Uint8Array> }> {
  const parsed = parseShareLink(link);
  let keys = parsed.keys;
  if (!keys) {
    if (options?.password === undefined) {
      throw new StorageError("password_required", "this share link needs its password");
    }
    keys = await unwrapKeys(parsed.wrapped!, options.password);
  }
  if (keys.length !== FILE_KEYS_BYTES) throw new StorageError("invalid_share_link", "bad keys");
  const blocks = new ShareBlocks(
    parsed,
    options?.fetch ?? fetch,
    options?.timeoutMs ?? SHARE_FETCH_TIMEOUT_MS,
  );
  const manifest = decodeManifest(await blocks.get(parsed.cid, options));
  if (manifest.tier !== "private") throw new StorageError("not_private", `${parsed.cid} is public`);
  const cipher = await FileCipher.fromFileKeys(manifest.salt, keys);
  // Every chunk is at most one chunk of ciphertext: the sealed chunk size (which the node cannot
  // change: the manifest is checked against the link's CID) and its tag, and never past the
  // manifest's own bound.
  const { chunkSize } = await cipher.openInfo(manifest.sealed);
  blocks.chunkLimit = Math.min(chunkSize + GCM_TAG_BYTES, MAX_SHARE_MANIFEST_BYTES);
  blocks.expectNodes(manifest.branches);
  return await new FileStore(blocks).getWithCipher(parsed.cid, cipher, { signal: options?.signal });
}

/** Largest error body a share link's node may send: the error object names its code. */
const MAX_SHARE_ERROR_BYTES = 4096;

/**
 * The `error.code` of a node's refusal (`{ error: { code, ... } }`, docs/API.md "Errors"), or
 * `undefined` when its body is not one (or does not come before `signal`); the body is consumed. A 404 is `share_not_found` unless
 * the node says `chunk_not_found`: the share opens, but not that block (missing there, or not part
 * of the shared file), which "no share" would misreport.
 */
async function refusedCode(
  response: Response,
  signal: AbortSignal,
): Promise<string | undefined> {
  try {
    const tooLong = () => new Error("not an error object");
    const body = await readBoundedBody(response, MAX_SHARE_ERROR_BYTES, tooLong, signal);
    const code = JSON.parse(new TextDecoder().decode(body))?.error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    await response.body?.cancel().catch(() => {});
    return undefined;
  }
}

/**
 * Largest manifest a share link's node may send: a private manifest lists each chunk's CID (about
 * 62 bytes), so 16 MiB lists some 270,000 chunks, a 66 GiB file at the default chunk size. Past
 * it the body is refused as it arrives, so a node cannot make the opener hold what it likes.
 */
export const MAX_SHARE_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * How long a share link's node may take to answer one request, and then to send its body: a node
 * that accepts the connection but never answers (stopped, wedged) would otherwise hold
 * `share open` forever.
 */
export const SHARE_FETCH_TIMEOUT_MS = 10_000;

/** The blocks of one share, fetched from its node and verified against their CIDs. */
class ShareBlocks implements BlockStore {
  readonly #link: ParsedShareLink;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  /** The manifest's bytes, once fetched: the file's read asks for it again. */
  #manifest: Uint8Array | undefined;
  /** Largest chunk body taken (set from the sealed chunk size once the manifest is open). */
  chunkLimit = MAX_SHARE_MANIFEST_BYTES;
  /** Storage keys of the manifest tree nodes its parents named (a 2 GiB stretch of file each). */
  readonly #nodes = new Set<string>();
  constructor(link: ParsedShareLink, fetcher: typeof fetch, timeoutMs: number) {
    this.#link = link;
    this.#fetch = fetcher;
    this.#timeoutMs = timeoutMs;
  }
  put(): Promise<string> {
    return Promise.reject(new StorageError("read_only", "a share link only reads"));
  }
  /** Take `branches`' nodes as manifest nodes, not chunks, when they are asked for. */
  expectNodes(branches: readonly ManifestBranch[] | undefined): void {
    for (const branch of branches ?? []) this.#nodes.add(storageKey(branch.cid));
  }
  async has(cid: string): Promise<boolean> {
    return await this.get(cid).then(() => true, () => false);
  }
  async get(cid: string, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    const isManifest = storageKey(cid) === storageKey(this.#link.cid);
    if (isManifest && this.#manifest !== undefined) return this.#manifest;
    // A manifest tree's node is bounded as every reader bounds one. The file reads blocks by
    // storage key, which no longer names the codec: the nodes are known from their parents.
    const isNode = this.#nodes.has(storageKey(cid));
    const limit = isManifest
      ? MAX_SHARE_MANIFEST_BYTES
      : isNode
      ? MAX_MANIFEST_NODE_BYTES
      : this.chunkLimit;
    const timeout = new AbortController();
    let timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
    const signal = options?.signal === undefined
      ? timeout.signal
      : AbortSignal.any([options.signal, timeout.signal]);
    try {
      let response: Response;
      try {
        response = await this.#fetch(`${this.#link.url}/${cid}`, { signal });
      } catch (error) {
        throw this.#failure(error, options?.signal, timeout.signal);
      }
      if (response.status === 410) {
        await response.body?.cancel();
        throw new ShareUnavailableError("share_expired", this.#link.id);
      }
      if (!response.ok) {
        if (response.status !== 404) {
          await response.body?.cancel();
          throw new ChunkNotFoundError(cid, `share ${this.#link.id} (HTTP ${response.status})`);
        }
        const code = await refusedCode(response, signal);
        // An error object that did not come in time says nothing: no "no share" in its place.
        if (signal.aborted) throw this.#failure(signal.reason, options?.signal, timeout.signal);
        if (code !== "chunk_not_found") {
          throw new ShareUnavailableError("share_not_found", this.#link.id);
        }
        throw new ChunkNotFoundError(cid, `share ${this.#link.id} (the node does not serve it)`);
      }
      // The body gets its own allowance: the answer came, now its bytes must.
      clearTimeout(timer);
      timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
      let bytes: Uint8Array;
      try {
        bytes = await readBoundedBody(
          response,
          limit,
          (size) => new BlockTooLargeError(cid, `at least ${size} bytes (limit ${limit})`),
        );
      } catch (error) {
        if (error instanceof BlockTooLargeError) throw error;
        throw this.#failure(error, options?.signal, timeout.signal);
      }
      if (!await verifyCid(cid, bytes)) throw new CorruptChunkError(cid, this.#link.url);
      if (isManifest) this.#manifest = bytes;
      if (isNode) this.expectNodes(branchesOf(bytes));
      return bytes;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A failed request as the error to report: the caller's abort as is, else what went wrong. */
  #failure(error: unknown, outer: AbortSignal | undefined, timeout: AbortSignal): unknown {
    if (outer?.aborted) return outer.reason ?? error;
    const origin = new URL(this.#link.url).origin;
    if (timeout.aborted) {
      return new StorageError(
        "node_timeout",
        `${origin} did not answer within ${Number((this.#timeoutMs / 1000).toFixed(3))} s: the ` +
          `node serving the link may be stopped, wedged or overloaded; try again later, or ask ` +
          `whoever shared it whether the node is up`,
      );
    }
    if (!(error instanceof TypeError)) return error;
    // Deno: "fetch failed", its cause "error sending request for url (…): client error
    // (Connect): tcp connect error: Connection refused (os error 111)".
    const cause = error.cause instanceof Error ? error.cause.message : error.message;
    const why = cause.replace(/^error sending request for url \([^)]*\): /, "")
      .replace(/^client error \(Connect\): /, "");
    return new StorageError(
      "node_unreachable",
      `cannot reach ${origin} (${why}): the node serving the link is down or the address is ` +
        `wrong; ask whoever shared it whether the node is up`,
    );
  }
}

/** The branches a manifest node lists; none if it is no node (its reader says why). */
function branchesOf(bytes: Uint8Array): ManifestBranch[] | undefined {
  try {
    return decodeManifestNode(bytes).branches;
  } catch {
    return undefined;
  }
}

function encodeBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function decodeBase64Url(text: string): Uint8Array {
  try {
    const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  } catch {
    throw new StorageError("invalid_share_link", "the fragment is not base64url");
  }
}

async function passwordKey(password: string, salt: Uint8Array): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(password),
    "PBKDF2",
    false,
    ["deriveKey"],
  );
  return await crypto.subtle.deriveKey(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: salt as Uint8Array<ArrayBuffer>,
      iterations: PBKDF2_ITERATIONS,
    },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** salt ‖ nonce ‖ AES-256-GCM(keys) under PBKDF2(password, salt). */
async function wrapKeys(keys: Uint8Array, password: string): Promise<Uint8Array> {
  const salt = crypto.getRandomValues(new Uint8Array(WRAP_SALT_BYTES));
  const nonce = crypto.getRandomValues(new Uint8Array(WRAP_NONCE_BYTES));
  const sealed = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce },
      await passwordKey(password, salt),
      keys as Uint8Array<ArrayBuffer>,
    ),
  );
  const out = new Uint8Array(salt.length + nonce.length + sealed.length);
  out.set(salt);
  out.set(nonce, salt.length);
  out.set(sealed, salt.length + nonce.length);
  return out;
}

async function unwrapKeys(wrapped: Uint8Array, password: string): Promise<Uint8Array> {
  const salt = wrapped.slice(0, WRAP_SALT_BYTES);
  const nonce = wrapped.slice(WRAP_SALT_BYTES, WRAP_SALT_BYTES + WRAP_NONCE_BYTES);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce },
        await passwordKey(password, salt),
        wrapped.slice(WRAP_SALT_BYTES + WRAP_NONCE_BYTES),
      ),
    );
  } catch {
    throw new StorageError("authentication_failed", "wrong password for this share link");
  }
}
