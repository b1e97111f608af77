/**
 * The CLI commands that move files in and out of Veriflow in the IPFS world's forms, and share
 * them: `export CID > f.car`, `import f.car`, `share CID [--expires 24h] [--password]`,
 * `share revoke ID`, `share open LINK`. Like `put` and `get`, they work on the data directory
 * directly (`--data DIR`), safely beside a running node.
 *
 * @module
 */
import { join } from "node:path";
import { exportCar, importCar } from "../storage/car.ts";
import { dagBlocks, MAX_DAG_DEPTH, storedLinks } from "../storage/dag_links.ts";
import { StorageError } from "../storage/errors.ts";
import { unreachableEntryCount } from "../storage/unixfs_names.ts";
import { assertRawLeafSizes } from "../storage/unixfs.ts";
import { FileStore } from "../storage/file_store.ts";
import { PendingPut } from "../storage/pending_put.ts";
import {
  createShareLink,
  openShareLink,
  type ShareRecord,
  ShareStore,
} from "../storage/share_links.ts";
import { ProgressBar } from "../storage/progress_bar.ts";
import {
  existingStoreDir,
  notInStore,
  openExistingStore,
  openStoreToAdd,
  storedIn,
} from "./_command_store.ts";
import { ownerKey } from "./_owner_key.ts";
import { putMinFreeBytes } from "./_put_floor.ts";
import { commandDataDir } from "../node/default_data_dir.ts";
import {
  type CommandIo,
  failedPut,
  InterruptedError,
  parseCommand,
  processStopSignals,
  reportErrors,
  UsageError,
  writeOutput,
  wrongOperands,
} from "./_command_support.ts";
import { DEFAULT_NODE_URL, EXPORT_USAGE, IMPORT_USAGE, SHARE_USAGE } from "./exchange_help.ts";

/** `export CID`: the file's DAG as a CAR (Ctrl-C while writing `-o FILE` removes it: exit 130). */
export async function runExport(args: string[], io: CommandIo = {}): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    output: { type: "string", short: "o" },
  }, EXPORT_USAGE);
  if (typeof parsed === "number") return parsed;
  const wrong = wrongOperands(
    parsed.positionals,
    [["CID", "the file or directory to export"]],
    EXPORT_USAGE,
  );
  if (wrong !== undefined) return wrong;
  const [cid] = parsed.positionals;
  return await reportErrors(async () => {
    const dir = await dataDir(parsed.values);
    const store = await openExistingStore(dir);
    // An unknown root is an error before anything is written.
    await store.get(cid).catch((error) => {
      throw notInStore(error, dir);
    });
    const car = exportCar(cid, (c, signal) => store.get(c, { signal }), {
      isLegacyManifest: (c) => store.isLegacyManifest(c),
    });
    await writeOutput(car, parsed.values.output as string | undefined, io);
  }, "export");
}

/**
 * `import FILE`: store a CAR's blocks, verified, and pin its roots (an identity root: the stored
 * blocks it links). A CAR that names no root is refused before anything is stored.
 */
export async function runImport(args: string[], io: CommandIo = {}): Promise<number> {
  const parsed = parseCommand(
    args,
    { data: { type: "string" }, init: { type: "boolean" } },
    IMPORT_USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const wrong = wrongOperands(
    parsed.positionals,
    [["FILE", "the CAR file to import; - for stdin"]],
    IMPORT_USAGE,
  );
  if (wrong !== undefined) return wrong;
  const [path] = parsed.positionals;
  return await reportErrors(async () => {
    // The file first: one that is not there must not leave a new, empty store in --data.
    const source = path === "-" ? Deno.stdin.readable : await openCarFile(path);
    const dir = await dataDir(parsed.values);
    // The floor the node's own uploads keep, as `put` keeps it: a CAR (a model, a data set)
    // imported beside a running node fills the same disk as its ledger and receipts (review
    // s75 vcrash F3: an import took a disk far under the floor `put` refused at).
    const store = await putMinFreeBytes()
      .then((floor) => openStoreToAdd(dir, parsed.values.init === true, { putMinFreeBytes: floor }))
      .catch(async (error) => {
        await source.cancel(); // closes the file
        throw error;
      });
    const pending = await PendingPut.begin(store);
    // Ctrl-C (or SIGTERM, SIGHUP) stops the import between blocks and says what it left: the
    // blocks stored so far, unpinned, which GC removes (it ended with exit 130 and not a word).
    const interrupt = new AbortController();
    const stopListening = (io.onStopSignal ?? processStopSignals)(() =>
      interrupt.abort(new InterruptedError("import stopped before its roots were pinned"))
    );
    try {
      const result = await importCar(source, pending, { signal: interrupt.signal });
      interrupt.signal.throwIfAborted();
      // What keeps each root: itself, or for an identity root (`ipfs add --inline`) the stored
      // blocks its inline node links, since nothing is stored under the root's own CID. Pinned
      // in its place, they keep the file GC would otherwise remove.
      const pinned = new Set<string>();
      let unreachable = 0; // directory entries no path reaches by name (review s74)
      for (const root of result.roots) {
        for (const kept of storedLinks([root])) {
          // Pinned only when its whole DAG arrived: a pin of a partial DAG would stop GC.
          const missing = (cid: string) =>
            new StorageError("incomplete_car", `root ${root}: block ${cid} missing`);
          if (!await store.has(kept)) throw missing(kept);
          // Raw leaves whose length a parent's check looked up: present, so the walk does not look
          // them up again when it lists them (after their parent). One index lookup per leaf, not
          // two (review s76 vcar F4); the set holds only leaves not yet listed.
          const looked = new Set<string>();
          const storedLength = async (c: string) => {
            const length = await store.storedLength(c);
            if (length === undefined) throw missing(c);
            looked.add(c);
            return length;
          };
          // No deeper than a CAR export walks: a DAG no gateway read would serve is refused
          // before its pin, not kept to cost every later walk (review s78 F1).
          const walk = dagBlocks(kept, (c) => store.get(c), { maxDepth: MAX_DAG_DEPTH });
          for await (const block of walk) {
            if (!block.bytes) {
              if (!looked.delete(block.cid) && !await store.has(block.cid)) {
                throw missing(block.cid);
              }
              continue;
            }
            unreachable += unreachableEntryCount(block.cid, block.bytes);
            // A raw leaf whose length is not what its file node says makes every read of the
            // file fail: refused before the pin, not kept as "all verified" (review s76 F1).
            await assertRawLeafSizes(block.cid, block.bytes, storedLength);
          }
          pinned.add(kept);
        }
      }
      for (const root of pinned) await store.pin(root);
      if (pinned.size > 0) await pending.commit([...pinned][0]);
      for (const root of result.roots) console.log(root);
      console.error(`imported ${result.blocks} blocks (${result.bytes} bytes), all verified`);
      if (unreachable > 0) {
        console.error(
          `warning: ${unreachable} directory entries have names no path can reach (empty, . ` +
            "or .., holding / or a control character, or repeating an earlier name): the " +
            "gateway lists them by their own CID",
        );
      }
      storedIn(dir);
    } catch (error) {
      if (interrupt.signal.aborted) {
        const stopped = interrupt.signal.reason as InterruptedError;
        if (pending.stored.objects === 0) stopped.message += "; it stored nothing";
        throw failedPut(stopped, pending.stored);
      }
      throw failedPut(error, pending.stored);
    } finally {
      stopListening();
      await pending.release();
    }
  }, "import");
}

/**
 * The CAR file at `path`, opened for reading. A directory opens too, and reading it would fail
 * only later, after the store was created, with an error naming no path.
 *
 * @throws {UsageError} `path` is a directory.
 */
async function openCarFile(path: string): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  if ((await file.stat()).isDirectory) {
    file.close();
    throw new UsageError(
      `${path} is a directory: import takes a CAR file (\`cli.ts export\` writes one)`,
    );
  }
  return file.readable;
}

/**
 * `share CID` / `share revoke ID` / `share open LINK`. `share open` waits at most `io.timeoutMs`
 * (default 10 s) for each answer of the node serving the link; Ctrl-C while it writes `-o FILE`
 * removes the partial copy and exits 130.
 */
export async function runShare(
  args: string[],
  io: CommandIo & { timeoutMs?: number } = {},
): Promise<number> {
  const parsed = parseCommand(args, {
    data: { type: "string" },
    expires: { type: "string" },
    password: { type: "boolean" },
    url: { type: "string" },
    "key-file": { type: "string" },
    output: { type: "string", short: "o" },
  }, SHARE_USAGE);
  if (typeof parsed === "number") return parsed;
  const { values, positionals } = parsed;
  // `share revoke` without its ID is told so, not taken for the file with the CID "revoke".
  const operands = positionals[0] === "list"
    ? SHARE_LIST_OPERANDS.slice(0, positionals.length > 1 ? 2 : 1)
    : SHARE_OPERANDS[positionals[0]] ?? SHARE_CID;
  const wrong = wrongOperands(positionals, operands, SHARE_USAGE);
  if (wrong !== undefined) return wrong;
  const dir = await dataDir(values);
  return await reportErrors(async () => {
    if (positionals[0] === "revoke") {
      // A mistyped --data is named as such, not taken for a share that is not there.
      // Opened as the node opens it: a crashed create's temporaries are swept here too.
      const shares = await ShareStore.open(await existingStoreDir(dir));
      const revoked = await shares.revoke(positionals[1]);
      if (!revoked) throw new StorageError("share_not_found", `no share ${positionals[1]}`);
      console.log(`revoked ${positionals[1]}`);
      console.error(keysOutliveRevoke(dir));
      return;
    }
    if (positionals[0] === "list") {
      const shares = await ShareStore.open(await existingStoreDir(dir));
      const now = Date.now();
      for (const record of await shares.list(positionals[1])) {
        console.log(shareListLine(record, now));
      }
      return;
    }
    if (positionals[0] === "open") {
      // `-`: the link from stdin (first line; the password, with --password, the second), so
      // its keys are not in `ps` or the shell history as an argument is.
      const { link, password } = positionals[1] === "-"
        ? await readLinkAndPassword(values.password === true)
        : {
          link: positionals[1],
          password: values.password ? await readPassword() : undefined,
        };
      const { stream } = await openShareLink(link, {
        password,
        timeoutMs: io.timeoutMs,
      });
      await writeOutput(stream, values.output as string | undefined, io, { private: true });
      return;
    }
    const [cid] = positionals;
    // Checked before anything is stored: each run with a wrong --url left one more live share.
    const baseUrl = shareBaseUrl(values.url === undefined ? undefined : String(values.url));
    const now = Date.now();
    const expiresAt = values.expires === undefined
      ? null
      : now + parseDuration(String(values.expires));
    // A duration so long that no date shows when it ends (past year 275760) is refused before
    // the share is stored: the link would work although the command failed.
    if (expiresAt !== null && Number.isNaN(new Date(expiresAt).getTime())) {
      throw new UsageError(`--expires ${values.expires} ends past any date: give a shorter one`);
    }
    const store = await openExistingStore(dir);
    const password = values.password ? await readPassword() : undefined;
    const files = new FileStore(store);
    // Every chunk is decrypted before the keys are handed out (a forged manifest is refused):
    // a large file takes a while, so it shows a bar as `get` does.
    // Made on the first report, which carries the size (a private file's is sealed).
    let bar: ProgressBar | null | undefined;
    const { link, record } = await createShareLink({
      cid,
      owner: await ownerKey(dir, values["key-file"] as string | undefined, cid),
      files,
      shares: await ShareStore.open(join(dir, "store")),
      baseUrl,
      expiresAt,
      now,
      password,
      onProgress: (done, total) => {
        bar ??= ProgressBar.maybe(undefined, total, "check");
        bar?.update(done);
      },
    }).finally(() => bar?.stop());
    console.log(link);
    const until = expiresAt === null
      ? "until revoked"
      : `until ${new Date(expiresAt).toISOString()}`;
    console.error(
      `share ${record.id} serves ${cid} from this node ${until}; stop serving it: share revoke ` +
        `${record.id}. ${keysOutliveRevoke(dir, record.cid)}`,
    );
  }, "share");
}

/**
 * The node address a share link starts with: `--url` (default {@link DEFAULT_NODE_URL}) when it
 * is an http(s) origin — no path, query, fragment or user — else a {@link UsageError} (exit 2),
 * as `status --url` refuses a non-http one. `notaurl` and `ftp://…` gave a link nobody could
 * open, and a path (`…/v1`) one the node does not serve.
 */
export function shareBaseUrl(text: string | undefined): string {
  const given = text ?? DEFAULT_NODE_URL;
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {
    url = undefined;
  }
  const problem = url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")
    ? "not an http:// or https:// address"
    : url.username !== "" || url.password !== ""
    ? "a user or password has no place in a link given to others"
    : (url.pathname !== "/" && url.pathname !== "") || url.search !== "" || url.hash !== ""
    ? `the node's base address has no path, query or fragment: give ${url.origin}`
    : undefined;
  if (problem !== undefined) {
    throw new UsageError(
      `--url ${JSON.stringify(given)}: ${problem} (the node serving the link, like ` +
        `https://node.example:8080); no share was made`,
    );
  }
  return url!.origin;
}

/**
 * What revoking does not do, said wherever a share is made or revoked: every share of a file
 * carries the same keys (a function of its salt), and `/ipfs` and every peer holding a replica
 * serve its ciphertext to whoever names the CID (docs/STORAGE.md "Share links"). Unended:
 * {@link keysOutliveRevoke} adds how to unpin.
 */
const KEYS_OUTLIVE_REVOKE =
  "Revoking only stops this node serving the link: its keys stay valid for anyone who has " +
  "them and the file's ciphertext. To take access back, put the file again and unpin the old copy";

/**
 * {@link KEYS_OUTLIVE_REVOKE} with how to unpin, which no command does: delete the pin's file
 * (`store/pins/<cid>` in data directory `dir`), then `cli.ts gc` removes the old copy's blocks
 * (README "A full disk"). It said "unpin" and `cli.ts unpin` was an unknown command (review s78 F5).
 *
 * @param cid The old copy's CID, where known (a revoke knows only the share's id).
 */
export function keysOutliveRevoke(dir: string, cid = "<cid>"): string {
  return `${KEYS_OUTLIVE_REVOKE}: delete ${join(dir, "store", "pins", cid)}, ` +
    `then run \`cli.ts gc --data ${dir}\` (both work beside a running node).`;
}

/**
 * `share open -`: the link from stdin, and with `wantPassword` the password (a terminal prompts
 * for each without echo; piped stdin gives the link on its first line, the password on its second).
 */
async function readLinkAndPassword(
  wantPassword: boolean,
): Promise<{ link: string; password: string | undefined }> {
  if (Deno.stdin.isTerminal()) {
    const link = (await readHiddenLine("link: ")).trim();
    if (!link) throw new UsageError("share open -: no link was given");
    return { link, password: wantPassword ? await readPassword() : undefined };
  }
  const lines = (await new Response(Deno.stdin.readable).text()).split("\n");
  const link = lines[0].trim();
  if (!link) throw new UsageError("share open -: no link on stdin");
  if (!wantPassword) return { link, password: undefined };
  const password = lines[1]?.replace(/\r$/, "");
  if (!password) throw new UsageError("share open - --password: no password on stdin's 2nd line");
  return { link, password };
}

/** `share list [CID]`'s operands (the CID is optional). */
const SHARE_LIST_OPERANDS = [
  ["list", "the action"],
  ["CID", "list only the shares of this file"],
] as const;

/** One line of `share list`: id, file, expiry (and whether it is past), when it was made. */
export function shareListLine(record: ShareRecord, now: number): string {
  const expires = record.expiresAt === null
    ? "never"
    : new Date(record.expiresAt).toISOString() + (now >= record.expiresAt ? " (expired)" : "");
  return `${record.id}  ${record.cid}  expires ${expires}  created ${
    new Date(record.createdAt).toISOString()
  }`;
}

/** `share CID`'s operand. */
const SHARE_CID = [["CID", "the private file to share, as put --private printed it"]] as const;

/** The operands of `share revoke` and `share open`, by their first word. */
const SHARE_OPERANDS: Record<string, readonly (readonly [string, string])[]> = {
  revoke: [["revoke", "the action"], ["ID", "the share to revoke, as share printed it"]],
  open: [["open", "the action"], ["LINK", "the link share printed, or - to read it from stdin"]],
};

/**
 * `30s`, `15m`, `24h`, `7d` → milliseconds. A duration of none (`0s`) is refused: the link it
 * gave would be expired when printed.
 */
export function parseDuration(text: string): number {
  const match = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!match) throw new UsageError(`--expires wants a duration like 30m, 24h or 7d, not ${text}`);
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
  const ms = Number(match[1]) * unit;
  if (ms <= 0) {
    throw new UsageError(`--expires ${text} would give a link expired already: give one like 30m`);
  }
  return ms;
}

/**
 * The password: prompted on a terminal without echo, else the first line of stdin. (`prompt()`
 * echoed it: the password showed on the screen, in its scrollback and in any recording of it.)
 */
async function readPassword(): Promise<string> {
  if (Deno.stdin.isTerminal()) {
    const answer = await readHiddenLine("password: ");
    if (!answer) throw new UsageError("a password is needed");
    return answer;
  }
  const text = await new Response(Deno.stdin.readable).text();
  const line = text.split("\n")[0];
  if (!line) throw new UsageError("--password: no password on stdin");
  return line;
}

/**
 * One line typed on the terminal, not echoed: the terminal is put in raw mode before the prompt
 * shows (so nothing typed after it is echoed), and restored after. Backspace deletes a character;
 * Ctrl-C stops the command (raw mode sends no SIGINT); Enter or Ctrl-D ends the line.
 */
async function readHiddenLine(label: string): Promise<string> {
  const encoder = new TextEncoder();
  const typed: number[] = [];
  Deno.stdin.setRaw(true);
  try {
    await Deno.stderr.write(encoder.encode(label));
    const buffer = new Uint8Array(256);
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      let ended = false;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 0x0d || byte === 0x0a || byte === 0x04) {
          ended = true;
          break;
        }
        if (byte === 0x03) throw new InterruptedError("no password was given");
        if (byte === 0x7f || byte === 0x08) {
          // One character: its UTF-8 continuation bytes, then its first byte.
          while (typed.length > 0 && (typed[typed.length - 1] & 0xc0) === 0x80) typed.pop();
          typed.pop();
          continue;
        }
        typed.push(byte);
      }
      if (ended) break;
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(typed));
}

function dataDir(values: Record<string, unknown>): Promise<string> {
  return commandDataDir(values.data);
}
