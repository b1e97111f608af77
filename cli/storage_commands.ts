/**
 * The storage commands of the `veriflow` CLI: `put`, `get`, `ls`, `gc`. They work on a node's
 * data directory directly (`--data DIR`, default `$VERIFLOW_DATA_DIR`, else `.veriflow`; the store is `DIR/store`), so
 * they need no running node, and they are safe while one runs on the same directory: the chunk
 * store is shared across processes (a put is a GC root from its first chunk, see
 * `pending_put.ts`; GC decides under the store lock from what is on disk). Each returns a process exit code: 0 success, 1 a storage failure
 * (printed as `error [code]: message`), 2 a usage error.
 *
 * Private files are encrypted with a key derived from the owner secret: `--key-file FILE` (any
 * file of at least 32 bytes of secret material), else the node's `DIR/identity.key` (created on
 * first use, as the node does).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { DataDirNotDirectoryError } from "../node/data_dir_lock.ts";
import { printableLine } from "../node/log_format.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../node/node_identity.ts";
import { notWholeNumber, parseWholeNumber } from "../node/number_flags.ts";
import { DiskFullError, KeyRequiredError, StorageError } from "../storage/errors.ts";
import { ChunkStore, type ChunkStoreOptions } from "../storage/chunk_store.ts";
import { PendingPut } from "../storage/pending_put.ts";
import { type FileInfo, FileStore } from "../storage/file_store.ts";
import { checkReplicas } from "../storage/replica_check.ts";
import { OwnerKey } from "../storage/private_tier.ts";
import { formatBytes, ProgressBar } from "../storage/progress_bar.ts";
import {
  assertRawLeafSizes,
  type DagEntry,
  decodeUnixfs,
  type DirectoryEntry,
} from "../storage/unixfs.ts";
import { resolveUnixfsPath } from "../storage/unixfs_path.ts";
import { blocksReferencedBy, isDagNode, storedLinks } from "../storage/dag_links.ts";
import { cidCodec, DAG_PB_CODEC, identityBlock, storageKey } from "../protocols/cid.ts";
import { explainQuarantined, quarantinedKeys, wasQuarantined } from "./_quarantined.ts";
import { putMinFreeBytes } from "./_put_floor.ts";
import { chunkCountOf } from "../protocols/manifest.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import {
  type CommandIo,
  countOf,
  failedPut,
  parseCommand,
  reportErrors,
  usage,
  UsageError,
  writeOutput,
  wrongOperands,
} from "./_command_support.ts";
import { GC_USAGE, GET_USAGE, LS_USAGE, PUT_USAGE } from "./storage_help.ts";
import { MAX_FILE_LABEL_CHARS, MEDIA_TYPE } from "../protocols/media_type.ts";

/** `put [--private] FILE`: store a file, print its CID. */
export async function runPut(args: string[]): Promise<number> {
  const parsed = parseCommand(args, {
    private: { type: "boolean" },
    "key-file": { type: "string" },
    name: { type: "string" },
    mime: { type: "string" },
    data: { type: "string" },
    quota: { type: "string" },
    progress: { type: "boolean" },
    init: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, PUT_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(PUT_USAGE, 0);
  const wrong = wrongOperands(
    positionals,
    [["FILE", "the file or directory to store; - for stdin"]],
    PUT_USAGE,
  );
  if (wrong !== undefined) return wrong;
  const [path] = positionals;
  return await reportErrors(async () => {
    const dataDir = await commandDataDir(values.data);
    const quota = wholeNumberFlag("--quota", values.quota);
    const mime = values.mime as string | undefined;
    // Refused before anything is stored, as `POST /v1/files` refuses them: a longer label was
    // stored and then read as none (past the pin label's size), the type given with it lost too.
    for (const flag of ["name", "mime"] as const) {
      const label = values[flag] as string | undefined;
      if (label !== undefined && label.length > MAX_FILE_LABEL_CHARS) {
        throw new UsageError(
          `--${flag} is ${label.length} chars, over the ${MAX_FILE_LABEL_CHARS} a put records`,
        );
      }
    }
    if (mime !== undefined && !MEDIA_TYPE.test(mime)) {
      // Recorded, it is every read's `Content-Type`: one no header can carry (CR LF, NUL, a
      // character past U+00FF, nothing) made each read of the file fail.
      throw new UsageError(
        `--mime ${JSON.stringify(mime)} is no media type: give type/subtype, then any ` +
          "; parameters, in printable ASCII (like text/plain; charset=utf-8)",
      );
    }
    // The path first: one that is not there must not leave a new, empty store in --data, which
    // `ls` would then show as if the operator's files were gone.
    const isDir = path !== "-" && (await Deno.stat(path)).isDirectory;
    if (isDir && values.private) throw new UsageError("a directory is put in the public tier only");
    // A UnixFS directory has no name or type of its own (its entries are named by their files'
    // names): a label given for one was dropped without a word.
    for (const flag of ["name", "mime"] as const) {
      if (isDir && values[flag] !== undefined) {
        throw new UsageError(`--${flag} labels a file; ${path} is a directory, which has none`);
      }
    }
    // The floor the node's own uploads keep: the operator's put fills the same disk.
    const store = await openStoreToAdd(dataDir, values.init === true, {
      quotaBytes: quota,
      putMinFreeBytes: await putMinFreeBytes(),
    });
    const key = values.private ? await ownerKey(dataDir, values["key-file"] as string) : undefined;
    let source: ReadableStream<Uint8Array> | undefined;
    let total: number | null = null;
    // Walked whole before anything is stored: an entry put DIR refuses stores nothing, and the
    // bar's total is the bytes of every file under DIR.
    const tree = isDir ? await scanDirectory(path) : undefined;
    if (tree) total = treeBytes(tree);
    else if (path === "-") source = Deno.stdin.readable;
    else {
      const file = await Deno.open(path, { read: true });
      total = (await file.stat()).size;
      source = file.readable;
    }
    const bar = ProgressBar.maybe(values.progress as boolean | undefined, total, "put");
    // Source bytes stored so far: drawn once more when the put ends, since the bar redraws at
    // most every 100 ms and a put that failed was left showing an earlier count (review s79 F3).
    let done = 0;
    const progress = (n: number) => {
      done = n;
      bar?.update(n);
    };
    const pending = await PendingPut.begin(store);
    try {
      if (tree) {
        const root = await putTree(new FileStore(pending), tree, progress);
        await pending.commit(root.cid);
        bar?.finish(done);
        console.log(root.cid);
        storedIn(dataDir);
        return;
      }
      const name = (values.name as string | undefined) ??
        (path === "-" ? undefined : basename(path));
      const result = await new FileStore(pending).put(source!, {
        key,
        name,
        mime,
        onProgress: progress,
      });
      // A private file's name and type are sealed in its manifest, never written in the clear.
      await pending.commit(result.cid, key ? undefined : { name, mime });
      bar?.finish(result.size);
      console.log(result.cid);
      storedIn(dataDir);
    } catch (error) {
      bar?.finish(done); // what was stored, not the last throttled draw, above the error
      throw failedPut(floorHint(error), pending.stored);
    } finally {
      bar?.stop();
      await pending.release();
    }
  }, "put");
}

/**
 * `error`, when the store's floor of free disk refused the put (`disk_full` naming
 * `storage.putMinFreeBytes`), told where `put` reads that floor: the store's message says "lower
 * the floor" in the node's terms, and `put` takes no flag for it.
 */
function floorHint(error: unknown): unknown {
  if (error instanceof DiskFullError && error.message.includes("storage.putMinFreeBytes")) {
    error.message += " (put reads it as the node does: storage.putMinFreeBytes in the " +
      "VERIFLOW_CONFIG file, or VERIFLOW_STORAGE_PUT_MIN_FREE_BYTES)";
  }
  return error;
}

/** A directory entry whose name `put DIR` cannot store: one that is not UTF-8. */
export class InvalidNameError extends StorageError {
  /** The entry's path, as Deno reads it (U+FFFD in place of the bytes that are not UTF-8). */
  readonly path: string;

  /**
   * Build the error.
   *
   * @param path The entry's path, as read.
   */
  constructor(path: string) {
    super(
      "invalid_name",
      `${JSON.stringify(path)}: a file name that is not UTF-8 (shown with U+FFFD for its bytes); ` +
        "put DIR names entries by their text, which such a name does not have: rename it",
    );
    this.path = path;
  }
}

/**
 * Throws {@link InvalidNameError} when entry `name` of directory `dir` is a name that is not
 * UTF-8. Deno reads such a name lossily, with U+FFFD for the bytes that do not decode, and has no
 * API for the bytes themselves: the lossy name opens nothing (it failed with a raw "No such file"
 * OS error, review s74 finding 2), and storing its bytes would need a byte path Deno lacks. A real
 * name may hold U+FFFD too: that one exists under its name, so only a U+FFFD name that does not is
 * refused.
 */
async function assertUtf8Name(dir: string, name: string): Promise<void> {
  if (!name.includes(REPLACEMENT_CHARACTER)) return;
  try {
    await Deno.lstat(join(dir, name));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new InvalidNameError(join(dir, name));
    throw error;
  }
}

/** What a UTF-8 decoder puts in place of bytes that do not decode (Deno's directory names). */
const REPLACEMENT_CHARACTER = "\uFFFD";

/** An entry of a directory `put DIR` stores: a file with its size, or a directory. */
interface TreeEntry {
  /** Its name in its directory. */
  name: string;
  /** Its path on disk. */
  path: string;
  /** A file's size when walked (the bar's share of it). */
  size?: number;
  /** A directory's entries, in name order. */
  entries?: TreeEntry[];
}

/**
 * The directory at `path` and everything under it, each directory's entries in name order (what
 * the npm importer and `ipfs add -r` give the same tree). Symlinks and other special files are
 * refused, by what they are, rather than silently left out of the id.
 *
 * @throws {UsageError} an entry is a symlink, or neither a file nor a directory.
 * @throws {InvalidNameError} an entry's name is not UTF-8.
 */
async function scanDirectory(path: string, name = ""): Promise<TreeEntry> {
  const entries: TreeEntry[] = [];
  for await (const entry of Deno.readDir(path)) {
    const child = join(path, entry.name);
    if (entry.isSymlink) {
      // A link's target is outside the tree the CID names (and may be gone): neither storing
      // what it points to nor leaving it out would be the directory the operator sees.
      throw new UsageError(
        `${child}: a symlink; put DIR stores files and directories only: replace it with a copy ` +
          "of what it points to, or move it out of the directory",
      );
    }
    if (!entry.isFile && !entry.isDirectory) {
      throw new UsageError(
        `${child}: neither a file nor a directory (a socket, FIFO or device); put DIR stores ` +
          "files and directories only: move it out of the directory",
      );
    }
    await assertUtf8Name(path, entry.name);
    entries.push(
      entry.isDirectory
        ? await scanDirectory(child, entry.name)
        : { name: entry.name, path: child, size: (await Deno.stat(child)).size },
    );
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { name, path, entries };
}

/** Bytes of every file under `tree`, as walked. */
function treeBytes(tree: TreeEntry): number {
  return (tree.entries ?? []).reduce((sum, e) => sum + (e.size ?? treeBytes(e)), 0);
}

/**
 * Put `tree` ({@link scanDirectory}) as a UnixFS directory; `onProgress` is told the file bytes
 * stored so far across all its files.
 */
async function putTree(
  files: FileStore,
  tree: TreeEntry,
  onProgress: (bytes: number) => void,
  before = 0,
): Promise<DagEntry & { bytes: number }> {
  const entries: DirectoryEntry[] = [];
  let bytes = before;
  for (const entry of tree.entries!) {
    if (entry.entries) {
      const { bytes: after, ...dir } = await putTree(files, entry, onProgress, bytes);
      bytes = after;
      entries.push({ name: entry.name, ...dir });
      continue;
    }
    const file = await Deno.open(entry.path, { read: true });
    const base = bytes;
    const { cid, size, tsize } = await files.put(file.readable, {
      onProgress: (n) => onProgress(base + n),
    });
    bytes += size;
    entries.push({ name: entry.name, cid, fileSize: size, tsize });
  }
  return { ...await files.putDirectory(entries), bytes };
}

/**
 * `get CID [-o FILE]`: write a stored file out, verified. Ctrl-C while writing FILE removes the
 * partial copy and exits 130 (`io.onStopSignal`: the process's SIGINT and SIGTERM by default).
 */
export async function runGet(args: string[], io: CommandIo = {}): Promise<number> {
  const parsed = parseCommand(args, {
    output: { type: "string", short: "o" },
    range: { type: "string" },
    "key-file": { type: "string" },
    data: { type: "string" },
    progress: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, GET_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(GET_USAGE, 0);
  const wrong = wrongOperands(
    positionals,
    [["CID", "the file to read, as put printed it, or DIRCID/PATH: a file in a directory"]],
    GET_USAGE,
  );
  if (wrong !== undefined) return wrong;
  const [operand] = positionals;
  const dataDir = await commandDataDir(values.data);
  const output = values.output as string | undefined;
  return await reportErrors(async () => {
    const { root, names } = splitGetOperand(operand);
    const store = await openExistingStore(dataDir);
    const files = new FileStore(store);
    const explained = async (error: unknown): Promise<never> => {
      // A root set aside as corrupt is a damaged file, not a CID to check (review s75 F4).
      if (await explainQuarantined(error, store.dir)) throw error;
      throw notInStore(
        error,
        dataDir,
        "or, if other nodes hold it (a public file), read it through a running node: " +
          `curl -o FILE http://127.0.0.1:8080/${
            names.length === 0 ? "v1/files" : "ipfs"
          }/${operand}`,
      );
    };
    // The names followed as the gateway follows them (review s79 F4: `DIRCID/NAME` was refused
    // as an invalid CID, so what put DIR stored could not be read back here).
    const cid = names.length === 0
      ? root
      : (await resolveUnixfsPath(root, names, (c) => blockOf(store, c)).catch(explained)).cid;
    const { tier, type } = await files.stat(cid).catch(explained);
    if (type === "directory") throw await directoryRefusal(store, operand, cid);
    const key = tier === "private"
      ? await ownerKey(dataDir, values["key-file"] as string | undefined, cid)
      : undefined;
    let start: number | undefined;
    let end: number | undefined;
    if (values.range !== undefined) {
      const m = /^(\d+)-(\d+)$/.exec(String(values.range));
      if (!m) throw new UsageError("--range must be START-END (END exclusive)");
      start = Number(m[1]);
      end = Number(m[2]);
      // An inverted range is a bad flag whatever the file holds, not a range outside it.
      if (end < start) throw new UsageError(`--range ${values.range}: END is before START`);
    }
    const info = await files.stat(cid, { key });
    // An END past the file reads to its end, as an HTTP byte range does (`server/http_range.ts`,
    // the gateway's and /v1/files'): "from START to the end" needs no size looked up first
    // (review s79 F5). A START at or past the end is still refused: there is nothing to read.
    if (start !== undefined && end !== undefined && info.size !== null && start < info.size) {
      end = Math.min(end, info.size);
    }
    const stream = await files.get(cid, { key, start, end });
    const total = (end ?? info.size ?? 0) - (start ?? 0);
    const bar = ProgressBar.maybe(values.progress as boolean | undefined, total, "get");
    let done = 0;
    const counted = stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          done += chunk.length;
          bar?.update(done);
          controller.enqueue(chunk);
        },
      }),
    );
    try {
      await writeOutput(counted, output, io, { private: tier === "private" });
      bar?.finish(done);
    } catch (error) {
      await explainQuarantined(error, store.dir); // a leaf set aside as corrupt
      throw error;
    } finally {
      bar?.stop();
    }
  }, "get");
}

/**
 * `get`'s operand, `CID` or `CID/PATH`, split into the CID and the names to follow from it. Empty
 * names and `.` are dropped, as a file system reads a path; `..` is refused rather than resolved:
 * a path names entries below the CID, and one that climbed above it would name another root.
 *
 * @throws {UsageError} a `..` in the path.
 */
function splitGetOperand(operand: string): { root: string; names: string[] } {
  const [root, ...path] = operand.split("/");
  const names = path.filter((name) => name !== "" && name !== ".");
  if (names.includes("..")) {
    throw new UsageError(
      `${operand}: ".." is not followed; a path after the CID names entries below it`,
    );
  }
  return { root, names };
}

/** A verified block of `store` by CID; an identity CID (a node inlined in its link) is its own. */
function blockOf(store: ChunkStore, cid: string): Promise<Uint8Array> {
  const inline = identityBlock(cid);
  return inline ? Promise.resolve(inline.bytes) : store.get(storageKey(cid));
}

/**
 * Most entry names a refused directory lists: enough to see what it is and pick a path, one line
 * on a terminal for short names; a directory of thousands is read with `export` or the gateway.
 */
const LISTED_ENTRIES = 10;

/**
 * The `not_a_file` refusal of `get` on directory `cid` (named `operand` on the command line):
 * its entries, and the commands that read them. `get` writes one file; writing a tree to disk is
 * left to the tools that unpack a CAR, which `export` writes.
 */
async function directoryRefusal(
  store: ChunkStore,
  operand: string,
  cid: string,
): Promise<StorageError> {
  const { links } = decodeUnixfs(cid, await blockOf(store, cid));
  const names = links.slice(0, LISTED_ENTRIES).map((link) => printableName(link.name));
  if (links.length > LISTED_ENTRIES) names.push(`… ${links.length - LISTED_ENTRIES} more`);
  return new StorageError(
    "not_a_file",
    `${operand} is a directory of ${links.length} ${links.length === 1 ? "entry" : "entries"} ` +
      `(${names.join(", ")}): get writes one file, \`cli.ts get ${operand.replace(/\/+$/, "")}` +
      `/NAME\`; \`cli.ts export ${cid} -o DIR.car\` writes the whole tree as a CAR, which ` +
      "IPFS tools unpack (`ipfs-car unpack`; `ipfs dag import`, then `ipfs get`)",
  );
}

/**
 * `error`, when it says that the store in `dataDir` has no object for the CID a command was
 * given, with what to do next: check the CID and `--data` (`ls` lists what the store holds),
 * then `elsewhere` when there is another way to the file. Other errors are left as they are. Its
 * message is completed in place, as `failedPut` does; the store's error stays the store's.
 */
export function notInStore(error: unknown, dataDir: string, elsewhere?: string): unknown {
  if (!(error instanceof VeriflowError) || error.code !== "chunk_not_found") return error;
  error.message += `; check the CID, and that --data ${dataDir} is the store it was put in ` +
    `(\`cli.ts ls --data ${dataDir}\` lists the files it holds)${
      elsewhere === undefined ? "" : `, ${elsewhere}`
    }`;
  return error;
}

/** What `ls` says of one pinned file. */
type ListedFile = (FileInfo & { damage?: FileDamage }) | {
  cid: string;
  error: string;
  /** The file's name from its pin's label, which outlives its root block. */
  name?: string;
  /** Its root block was found corrupt (now, or by an earlier read: in quarantine/). */
  corrupt?: boolean;
};

/**
 * `ls`'s exit code when a listed file is damaged or unreadable: 1, a storage failure, as
 * `_command_support.ts` maps every failure, so that `ls --verify || alert` tells a damaged store
 * from a healthy one after a crash (review s75 F4: it exited 0).
 */
const EXIT_DAMAGED = 1;

/** `ls`: what the store holds and its capacity; damaged files flagged. */
export async function runLs(args: string[]): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    json: { type: "boolean" },
    verify: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, LS_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(LS_USAGE, 0);
  const wrong = wrongOperands(positionals, [], LS_USAGE);
  if (wrong !== undefined) return wrong;
  const dataDir = await commandDataDir(values.data);
  let damaged = 0;
  /** Chunks held for peers that are missing or corrupt here. */
  let lostReplicas = 0;
  const code = await reportErrors(async () => {
    const store = await openExistingStore(dataDir);
    const files = new FileStore(store);
    const listed: ListedFile[] = [];
    // Every block the pinned files reach, to count what they do not (undefined: one is damaged).
    let reached: Set<string> | undefined = new Set<string>();
    // A damaged file's chunk count, as `ls` prints it: `info.chunks` are its root's links (a
    // manifest tree's few branches, a large UnixFS file's inner nodes), not its chunks.
    const chunkTotals = new Map<string, string>();
    for (const cid of await store.pins()) {
      try {
        const info: ListedFile = { ...await files.stat(cid), ...await store.pinLabel(cid) };
        reached?.add(storageKey(cid));
        const walked = await damageOf(store, cid, info.chunks, values.verify === true, reached);
        const { damage } = walked;
        if (damage.missing + damage.corrupt + (damage.invalid ?? 0) > 0) {
          info.damage = damage;
          reached = undefined; // a lost inner node hides what is below it
          chunkTotals.set(cid, await chunkTotalOf(files, info, walked));
        }
        listed.push(info);
      } catch (error) {
        reached = undefined;
        const failure = error instanceof VeriflowError ? error.code : String(error);
        // The read that found the root corrupt moved it to quarantine/; later reads miss it.
        const corrupt = failure === "corrupt_chunk" ||
          failure === "chunk_not_found" && await wasQuarantined(store.dir, cid);
        const name = (await store.pinLabel(cid).catch(() => undefined))?.name;
        listed.push({ cid, error: failure, name, corrupt });
      }
    }
    damaged = listed.filter((f) => "error" in f || f.damage).length;
    const stats = await store.stats();
    // The chunks held for peers too: their records outlive lost packs (review s79, F2).
    const replicas = await checkReplicas(store, { verify: values.verify === true });
    lostReplicas = replicas.missing + replicas.corrupt;
    if (values.json) {
      console.log(JSON.stringify({ files: listed, capacity: stats, replicas }, null, 2));
      return;
    }
    for (const f of listed) {
      if ("error" in f) {
        // Said as a leaf's damage is: which file, and what to do (review s75 F4).
        const what = f.corrupt
          ? "root block corrupt (moved to quarantine/)"
          : f.error === "chunk_not_found"
          ? "root block missing"
          : printableLine(`root block unreadable (${f.error})`);
        const name = f.name === undefined ? "" : `  ${printableName(f.name)}`;
        console.log(`${f.cid}${name}  DAMAGED: ${what}; put the file again`);
        continue;
      }
      const size = f.size === null ? "?" : formatBytes(f.size);
      // Any client of the node's API names a file: its control, C1 and bidi characters are
      // written out, so a name cannot set the title, clear the screen or overwrite the line
      // above (a DAMAGED flag), as `status` and the node's log write them (review s75 F4).
      const name = f.tier === "private" ? "(private)" : printableName(f.name ?? "");
      const damage = f.damage ? `  DAMAGED: ${damageLine(f.damage, chunkTotals.get(f.cid))}` : "";
      console.log(`${f.cid}  ${f.tier.padEnd(7)}  ${size.padStart(10)}  ${name}${damage}`);
    }
    const quota = stats.quotaBytes === null ? "no quota" : `quota ${formatBytes(stats.quotaBytes)}`;
    const held = stats.replicaCount > 0
      ? `, ${countOf(stats.replicaCount, "chunk")} held for peers`
      : "";
    // Counted in the usage and the quota; only the operator removes it (see ChunkStoreStats).
    const quarantined = stats.quarantineBytes > 0
      ? ` (${formatBytes(stats.quarantineBytes)} of it in quarantine/: bad copies set aside, ` +
        `delete them once looked at)`
      : "";
    console.log(
      `${countOf(listed.length, "file")}, ${countOf(stats.objectCount, "object")}${held}, ${
        formatBytes(stats.usedBytes)
      } used${quarantined}, ${quota}`,
    );
    if (lostReplicas > 0) {
      // Said as a file's damage is ("1 corrupt of 3 chunks"), and what it costs this node.
      const parts = [
        ...replicas.missing > 0 ? [`${replicas.missing} missing`] : [],
        ...replicas.corrupt > 0 ? [`${replicas.corrupt} corrupt (moved to quarantine/)`] : [],
      ];
      console.log(
        `DAMAGED: ${parts.join(", ")} of ${countOf(replicas.total, "chunk")} held for peers: ` +
          "this node fails the audits of the peers that gave them until they restore them; " +
          "check the disk",
      );
    }
    const unreferenced = reached && await countUnreferenced(store, reached);
    if (unreferenced) {
      console.log(
        `${unreferenced} objects no pinned file references (a running or interrupted put's, an ` +
          `unpinned file's): \`cli.ts gc\` removes them once older than the grace period`,
      );
    }
  }, "ls");
  if (code !== 0 || damaged + lostReplicas === 0) return code;
  if (damaged > 0) {
    console.error(`error: ${countOf(damaged, "file")} damaged (DAMAGED above): put each again`);
  }
  if (lostReplicas > 0) {
    console.error(
      `error: ${countOf(lostReplicas, "chunk")} held for peers missing or corrupt (DAMAGED above)`,
    );
  }
  return EXIT_DAMAGED;
}

/** Objects of `store` that are neither in `reached` nor held for a peer. */
async function countUnreferenced(store: ChunkStore, reached: Set<string>): Promise<number> {
  const replicas = new Set<string>();
  for await (const cid of store.replicas()) replicas.add(cid);
  let count = 0;
  for await (const cid of store.list()) {
    if (!reached.has(cid) && !replicas.has(cid)) count++;
  }
  return count;
}

/** Blocks of a file found damaged ({@link damageOf}), as `ls --json` prints them. */
interface FileDamage {
  /** Blocks not in the store, nor set aside. */
  missing: number;
  /** Blocks whose bytes failed their hash, now or at an earlier read (these in `quarantined`). */
  corrupt: number;
  /** Of `corrupt`, those an earlier read found and set aside in `quarantine/`; absent when none. */
  quarantined?: number;
  /**
   * File nodes (the root among them) linking a raw leaf whose length is not the one they say
   * (`invalid_manifest`: every read of the file fails on it, review s76 F1); absent when none.
   */
  invalid?: number;
}

/** What {@link damageOf} found below a file's root. */
interface WalkedFile {
  /** Blocks missing, and (with `verify`) failing their hash: inner nodes and chunks alike. */
  damage: FileDamage;
  /** Chunks (blocks that link nothing) met, present or not. */
  chunks: number;
  /** True when an inner node could not be read: the chunks below it were not met. */
  hidden: boolean;
}

/**
 * How many chunks the damaged file `info` has: a private file's root says (a manifest tree's
 * branches carry their counts, so a lost node hides none); any other file's are the chunks the
 * walk met, "at least" that many when a lost inner node hid some.
 */
async function chunkTotalOf(
  files: FileStore,
  info: FileInfo,
  walked: WalkedFile,
): Promise<string> {
  if (info.tier === "private") return String(chunkCountOf(await files.manifest(info.cid)));
  return walked.hidden ? `at least ${walked.chunks}` : String(walked.chunks);
}

/**
 * Blocks of file `root` (below it, `chunks` being its links) that are missing from `store`, or
 * (with `verify`) fail their hash, and its file nodes that link a raw leaf of another length than
 * they say; a UnixFS file's inner nodes and a manifest tree's nodes are walked. Each block walked
 * goes into `reached`.
 */
async function damageOf(
  store: ChunkStore,
  root: string,
  chunks: readonly string[],
  verify: boolean,
  reached?: Set<string>,
): Promise<WalkedFile> {
  const damage: FileDamage = { missing: 0, corrupt: 0 };
  let leaves = 0;
  let hidden = false;
  const seen = new Set<string>();
  // Read once, when a block is first found gone: most files lose none.
  let quarantined: Set<string> | undefined;
  // A block gone because a read found it corrupt and set it aside is corrupt, not missing: after
  // the first `ls --verify` moved it to quarantine/, every later `ls` called it missing.
  const gone = async (cid: string) => {
    quarantined ??= await quarantinedKeys(store.dir);
    if (!quarantined.has(storageKey(cid))) return void damage.missing++;
    damage.corrupt++;
    damage.quarantined = (damage.quarantined ?? 0) + 1;
  };
  // The read of a block that is there: counted when it fails its hash or went meanwhile.
  const read = async (cid: string) => {
    try {
      return await store.get(cid);
    } catch (error) {
      if (error instanceof VeriflowError && error.code === "corrupt_chunk") damage.corrupt++;
      else if (error instanceof VeriflowError && error.code === "chunk_not_found") await gone(cid);
      else throw error;
      return undefined;
    }
  };
  // A leaf's length from the index: no leaf is read for it, with or without `verify`.
  const checkLeafSizes = async (cid: string, bytes: Uint8Array) => {
    try {
      await assertRawLeafSizes(cid, bytes, (c) => store.storedLength(c));
    } catch (error) {
      if (!(error instanceof VeriflowError) || error.code !== "invalid_manifest") throw error;
      damage.invalid = (damage.invalid ?? 0) + 1;
    }
  };
  // The root's own leaves: the caller read it to list the file, so it is there (read once more).
  if (cidCodec(root) === DAG_PB_CODEC) {
    const bytes = await read(root);
    if (bytes) await checkLeafSizes(root, bytes);
  }
  // A file's inlined (identity CID) links are stored nowhere: no key to look up, no damage.
  const stack = storedLinks(chunks);
  while (stack.length > 0) {
    const cid = stack.pop()!;
    if (seen.has(cid)) continue;
    seen.add(cid);
    reached?.add(storageKey(cid));
    const node = isDagNode(cid);
    if (!node) leaves++;
    if (!await store.has(cid)) {
      await gone(cid);
      hidden ||= node;
    } else if (node) {
      // An inner UnixFS node: read (so verified) to find the blocks below it.
      const bytes = await read(cid);
      if (bytes) {
        stack.push(...blocksReferencedBy(cid, bytes));
        await checkLeafSizes(cid, bytes);
      } else hidden = true;
    } else if (verify) {
      await read(cid);
    }
  }
  return { damage, chunks: leaves, hidden };
}

/** What `ls` prints after DAMAGED for a file whose walk found `damage`; `chunks`: its total. */
function damageLine(damage: FileDamage, chunks: string | undefined): string {
  const parts = [];
  if (damage.missing + damage.corrupt > 0) {
    parts.push(`${describeDamage(damage)} of ${chunks} chunks`);
  }
  if (damage.invalid !== undefined) {
    parts.push(
      `${countOf(damage.invalid, "file node")} linking a leaf of another length than it says ` +
        "(invalid_manifest: no read of the file succeeds)",
    );
  }
  return `${parts.join("; ")}; put the file again`;
}

function describeDamage(damage: FileDamage): string {
  const parts = [];
  if (damage.missing > 0) parts.push(`${damage.missing} missing`);
  if (damage.corrupt > 0) {
    const aside = damage.quarantined ?? 0;
    parts.push(
      `${damage.corrupt} corrupt` +
        (aside === 0
          ? ""
          : ` (${
            aside === damage.corrupt ? "" : `${aside} `
          }set aside in quarantine/ by an earlier read)`),
    );
  }
  return parts.join(", ");
}

/** `gc`: remove unreferenced objects older than the grace period. */
export async function runGc(args: string[]): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    "grace-ms": { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, GC_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  if (values.help) return usage(GC_USAGE, 0);
  const wrong = wrongOperands(positionals, [], GC_USAGE);
  if (wrong !== undefined) return wrong;
  const dataDir = await commandDataDir(values.data);
  return await reportErrors(async () => {
    const graceMs = wholeNumberFlag("--grace-ms", values["grace-ms"]);
    const store = await openExistingStore(dataDir, { gcGraceMs: graceMs });
    const result = await store.gc();
    if (values.json) console.log(JSON.stringify(result, null, 2));
    if (result.unreadableRoots.length > 0) {
      throw new StorageError(
        "unreadable_root",
        `nothing removed: pinned ${result.unreadableRoots.join(", ")} cannot be read here ` +
          `(its root or an inner node is missing or corrupt; \`cli.ts ls\` flags it), so GC ` +
          `cannot know what it references. Put the file again to ` +
          `restore it, or unpin it (delete ${join(dataDir, "store", "pins", "<cid>")}).`,
      );
    }
    if (values.json) return;
    const abandoned = result.abandonedPuts > 0
      ? `; ${countOf(result.abandonedPuts, "interrupted put")} released`
      : "";
    console.log(
      `removed ${countOf(result.removed, "object")} (${formatBytes(result.freedBytes)}); kept ` +
        `${result.kept} referenced and ${result.young} younger than the grace period${abandoned}`,
    );
    if (result.skippedPacks.length > 0) {
      const garbage = result.skippedPacks.reduce((sum, p) => sum + p.garbageBytes, 0);
      console.error(
        `disk_full: ${countOf(result.skippedPacks.length, "pack")} left whole with ` +
          `${formatBytes(garbage)} of garbage (removing it means first writing what the pack ` +
          `keeps, and the disk has no room for that); free some space and run gc again`,
      );
    }
  }, "gc");
}

/**
 * The store of `dataDir` for a command that reads it or removes from it (`get`, `ls`, `gc`,
 * `export`, `share`; only `put` and `import` create one). A store that is not there is refused, and nothing is created: a
 * mistyped `--data` must not look like an empty store, as if the operator's files were gone.
 *
 * @throws {StorageError} (`store_missing`) when `dataDir/store` does not exist.
 */
export async function openExistingStore(
  dataDir: string,
  options?: ChunkStoreOptions,
): Promise<ChunkStore> {
  return await ChunkStore.open(await existingStoreDir(dataDir), options);
}

/**
 * The store of `dataDir` for a command that adds to it (`put`, `import`). Created only in a
 * node's data directory (one holding a store or the node's `identity.key`: a node started there,
 * or a command stored there), or where `init` (`--init`) asks for it: a mistyped `--data`, or a
 * command that did not find the node's directory, made a store no node served, and the put said
 * it had stored the file. A flag rather than a prompt, so that scripts say it once, plainly.
 *
 * @throws {DataDirNotDirectoryError} (`data_dir_not_directory`) `dataDir` is a file.
 * @throws {StorageError} (`store_missing`) no node's data directory, and `init` not set.
 */
export async function openStoreToAdd(
  dataDir: string,
  init: boolean,
  options?: ChunkStoreOptions,
): Promise<ChunkStore> {
  const used = await isDirectory(dataDir, init) &&
    (await isDirectory(join(dataDir, "store"), init) ||
      await isPresent(join(dataDir, IDENTITY_FILE)));
  if (!used && !init) throw storeMissing(dataDir, "adding");
  return await ChunkStore.open(join(dataDir, "store"), options);
}

/**
 * `name` with its control, C1, bidi and zero-width characters written out (`\x1b`), as the
 * node's log writes a line ({@link printableLine}); the name is wrapped while escaped because a
 * line keeps the newlines that lead or end it, and a name's must not.
 */
export function printableName(name: string): string {
  return printableLine(`|${name}|`).slice(1, -1);
}

/** Said on stderr after a put or an import, so that the store written is never a guess. */
export function storedIn(dataDir: string): void {
  console.error(`stored in ${resolve(dataDir, "store")}`);
}

/**
 * Whether `path` is a directory; false when it is not there.
 * @param created Whether the command creates it when missing (`put --init`): said only then
 *   (`ls --data FILE` was told the directory "is created if missing", which `ls` never does).
 * @throws {DataDirNotDirectoryError} `path` is a file or runs through one, as `start` says it.
 */
async function isDirectory(path: string, created = false): Promise<boolean> {
  try {
    if ((await Deno.stat(path)).isDirectory) return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (!(error instanceof Deno.errors.NotADirectory)) throw error;
  }
  throw new DataDirNotDirectoryError(path, { created });
}

/** Whether `path` exists. */
async function isPresent(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, (error) => {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  });
}

/**
 * The store directory of `dataDir` (`dataDir/store`) for a command that only reads or removes
 * files in it without opening the store (`share revoke`); refused, and nothing created, when it
 * is not there, as {@link openExistingStore} refuses it.
 *
 * @throws {StorageError} (`store_missing`) when `dataDir/store` does not exist.
 */
export async function existingStoreDir(dataDir: string): Promise<string> {
  const dir = join(dataDir, "store");
  try {
    // A file given as --data: said as `start` says it, not as the OS error under it.
    await isDirectory(dataDir);
    await Deno.stat(dir);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw storeMissing(dataDir, "reading");
  }
  return dir;
}

/**
 * Where a command's data directory comes from, first to last (`commandDataDir`): the first one
 * set names it. Said whole, since a store_missing line cannot tell a mistyped flag from a
 * variable or a file left over from another node.
 */
const DATA_DIR_SOURCES = "--data, then VERIFLOW_DATA_DIR, then VERIFLOW_CONFIG's dataDir " +
  "(the first one set is used)";

/**
 * The `store_missing` refusal of every storage command, built here only, so that `put` and `ls`
 * say the same thing of the same directory: its absolute path (a relative one, or the default
 * `.veriflow`, said nothing of the directory the command ran in) and {@link DATA_DIR_SOURCES}.
 * A command `reading` needs `dataDir/store`; one `adding` needs a node's data directory (a store
 * or the node's key), and is offered `--init`.
 */
function storeMissing(dataDir: string, use: "reading" | "adding"): StorageError {
  const dir = resolve(dataDir);
  const missing = use === "reading"
    ? `no store in ${dir} (no ${join(dir, "store")})`
    : `no node's data directory at ${dir} (no store, no ${IDENTITY_FILE})`;
  const init = use === "adding" ? ", or pass --init to make a new store there" : "";
  return new StorageError("store_missing", `${missing}: check ${DATA_DIR_SOURCES}${init}`);
}

/**
 * The fewest bytes a `--key-file` may hold: the minimum `OwnerKey.fromSecret` takes (an HKDF
 * secret of 256 bits, as strong as the keys derived from it), checked here so that the error
 * names the file and the flag instead of an anonymous "owner secret".
 */
const KEY_FILE_MIN_BYTES = 32;

/**
 * The owner key from `--key-file`, else from the node identity. A put creates the identity if
 * the data directory has none; a get or a share (`readingCid` set) never does, since a fresh
 * key could not open anything.
 *
 * @throws {UsageError} the key file holds fewer than 32 bytes (the message names the file, its
 * size and the minimum).
 * @throws {KeyRequiredError} `readingCid` is set, no key file is given and the data directory
 * has no identity.
 */
export async function ownerKey(
  dataDir: string,
  keyFile: string | undefined,
  readingCid?: string,
): Promise<OwnerKey> {
  if (keyFile !== undefined) {
    const secret = await Deno.readFile(keyFile);
    if (secret.length < KEY_FILE_MIN_BYTES) {
      throw new UsageError(
        `--key-file ${keyFile} holds ${secret.length} bytes; a key file must hold at least ` +
          `${KEY_FILE_MIN_BYTES} bytes of secret material`,
      );
    }
    return await OwnerKey.fromSecret(secret);
  }
  if (readingCid !== undefined) {
    try {
      await Deno.stat(join(dataDir, IDENTITY_FILE));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new KeyRequiredError(readingCid);
      throw error;
    }
  }
  const identity = await loadOrCreateIdentity(dataDir);
  return await OwnerKey.fromSecret(identity.exportSecretKey());
}

/**
 * The value of number flag `name` (`--quota`, `--grace-ms`), read as `start` reads its numbers:
 * decimal digits only. `Number()` would take `""` (an unset shell variable) as 0, a grace period
 * that collects what a put is still recording, and `0x10` or `1e3` as numbers nobody wrote.
 *
 * @throws {UsageError} naming the flag, when `text` is not a whole number.
 */
function wholeNumberFlag(name: string, text: unknown): number | undefined {
  if (text === undefined) return undefined;
  const value = parseWholeNumber(String(text));
  if (value === undefined) throw new UsageError(notWholeNumber(name, String(text)));
  return value;
}

function basename(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}
