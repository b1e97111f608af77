/**
 * `cli.ts get`: write a stored file out, verified, from the store of a node's data directory
 * (`_command_store.ts`); a private file is opened with the owner key (`_owner_key.ts`). Returns a
 * process exit code: 0 success, 1 a storage failure (printed as `error [code]: message`), 2 a
 * usage error, 130 interrupted.
 *
 * @module
 */
import { commandDataDir } from "../node/default_data_dir.ts";
import { identityBlock, storageKey } from "../protocols/cid.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import { StorageError } from "../storage/errors.ts";
import { FileStore } from "../storage/file_store.ts";
import { ProgressBar } from "../storage/progress_bar.ts";
import { decodeUnixfs } from "../storage/unixfs.ts";
import { resolveUnixfsPath } from "../storage/unixfs_path.ts";
import {
  type CommandIo,
  parseCommand,
  reportErrors,
  usage,
  UsageError,
  writeOutput,
  wrongOperands,
} from "./_command_support.ts";
import { notInStore, openExistingStore } from "./_command_store.ts";
import { ownerKey } from "./_owner_key.ts";
import { printableName } from "./_printable_name.ts";
import { explainQuarantined } from "./_quarantined.ts";
import { GET_USAGE } from "./storage_help.ts";

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
