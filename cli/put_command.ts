/**
 * `cli.ts put`: store a file, stdin or a directory in the store of a node's data directory
 * (`_command_store.ts`), public or (a file) private (`_owner_key.ts`), and print its CID. Returns
 * a process exit code: 0 success, 1 a storage failure (printed as `error [code]: message`), 2 a
 * usage error.
 *
 * @module
 */
import { commandDataDir } from "../node/default_data_dir.ts";
import { MAX_FILE_LABEL_CHARS, MEDIA_TYPE } from "../protocols/media_type.ts";
import { DiskFullError } from "../storage/errors.ts";
import { FileStore } from "../storage/file_store.ts";
import { PendingPut } from "../storage/pending_put.ts";
import { ProgressBar } from "../storage/progress_bar.ts";
import {
  failedPut,
  parseCommand,
  reportErrors,
  usage,
  UsageError,
  wholeNumberFlag,
  wrongOperands,
} from "./_command_support.ts";
import { openStoreToAdd, storedIn } from "./_command_store.ts";
import { ownerKey } from "./_owner_key.ts";
import { putTree, scanDirectory, treeBytes } from "./_put_directory.ts";
import { putMinFreeBytes } from "./_put_floor.ts";
import { PUT_USAGE } from "./storage_help.ts";

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

function basename(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}
