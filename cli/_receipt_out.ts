/**
 * Where `cli.ts infer --receipt-out FILE` puts a job's receipt, so that none is lost and nothing
 * else is (review s77 vclient, F4): the path is checked before the job is sent (its folder
 * exists; it is no directory, no symbolic link, dangling or not, and no existing file unless the
 * user said `--force`), so a typo does not cost a paid job its receipt nor a user a file; the
 * receipt is written to a new file beside it and renamed into place, so no reader sees half a
 * receipt and a link is replaced, never followed; and a write that fails after the job leaves the
 * receipt on stderr for the user to save.
 *
 * Permissions: the rename needs read as well as write access to the folder (Deno checks both for
 * `Deno.rename`, as for the checks before it), so a command run with `--allow-write` alone cannot
 * keep the receipt. Both are asked for before the job (a terminal's prompt, where there is one),
 * and one not granted refuses the job with the exact flag to add (stop 78: a command with
 * `--allow-read` alone ran the paid job and lost the file at the end, and one with `--allow-write`
 * alone was told to add both flags, one it had).
 *
 * @module
 */
import { dirname } from "node:path";

/** What writing the receipt into its folder needs there (see the module doc). */
const FOLDER_PERMISSIONS = ["read", "write"] as const;

/**
 * Why `path` cannot take the receipt, as words to follow the path (`is a directory: …`, `: the
 * folder … does not exist`), or undefined when it can (see the module doc).
 */
export async function receiptOutProblem(path: string, force: boolean): Promise<string | undefined> {
  const missing = await missingFlags(dirname(path));
  if (missing.length > 0) {
    return `needs ${missing.join(" ")}: the receipt is written to a new file in that folder, ` +
      `then renamed over the path, and Deno allows that only with read and write access there`;
  }
  try {
    const found = await Deno.lstat(path);
    if (found.isSymlink) {
      return "is a symbolic link: give the path of a file, which is written in its place";
    }
    if (found.isDirectory) return "is a directory: give the path of a file in it";
    if (!force) return "exists: give another path, or --force to replace it";
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return problemText(error, path);
  }
  const folder = dirname(path);
  try {
    if (!(await Deno.stat(folder)).isDirectory) return `: ${folder} is not a directory`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? `: the folder ${folder} does not exist`
      : problemText(error, folder);
  }
  return undefined;
}

/**
 * Write `text` to `path` whole: to a new file in its folder, then renamed over `path`. Without
 * `force`, a file that appeared at `path` since {@link receiptOutProblem} is kept and this
 * throws `Deno.errors.AlreadyExists`. The temp file is removed when anything fails.
 */
export async function writeReceiptFile(path: string, text: string, force: boolean): Promise<void> {
  const temp = `${dirname(path)}/.receipt-${crypto.randomUUID()}.tmp`;
  // `createNew`: never a file (or a link planted there) that someone else made.
  const file = await Deno.open(temp, { write: true, createNew: true });
  try {
    try {
      // `write` may write fewer bytes than asked: a receipt written in part is no receipt.
      const bytes = new TextEncoder().encode(text);
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    } finally {
      file.close();
    }
    if (!force && await Deno.lstat(path).then(() => true, () => false)) {
      throw new Deno.errors.AlreadyExists(`${path} appeared while the job ran`);
    }
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/**
 * A file-system failure about `path`, as words to follow it (`: …`), with the permissions to add
 * when that is why (those of its folder not granted now; both where neither query says which):
 * also how `cli.ts infer` tells a receipt it could not write.
 */
export function problemText(error: unknown, path: string): string {
  let permission = "";
  if (error instanceof Deno.errors.NotCapable) {
    const folder = dirname(path);
    const missing = FOLDER_PERMISSIONS.filter((name) =>
      Deno.permissions.querySync({ name, path: folder }).state !== "granted"
    );
    const flags = (missing.length > 0 ? missing : FOLDER_PERMISSIONS)
      .map((name) => allowFlag(name, folder));
    permission = ` (run with ${flags.join(" ")})`;
  }
  return `: ${(error as Error).message}${permission}`;
}

/**
 * The flags `folder` lacks of {@link FOLDER_PERMISSIONS}, each asked for first where Deno may ask
 * (a terminal: its prompt; no terminal, `--no-prompt`: denied without a word).
 */
async function missingFlags(folder: string): Promise<string[]> {
  const missing: string[] = [];
  for (const name of FOLDER_PERMISSIONS) {
    let status = await Deno.permissions.query({ name, path: folder });
    if (status.state === "prompt") status = await Deno.permissions.request({ name, path: folder });
    if (status.state !== "granted") missing.push(allowFlag(name, folder));
  }
  return missing;
}

/** `--allow-NAME=FOLDER`, quoted for a POSIX shell where the folder needs it. */
function allowFlag(name: "read" | "write", folder: string): string {
  const flag = `--allow-${name}=${folder}`;
  return /^[\w@%+=:,./-]+$/.test(flag) ? flag : `'${flag.replaceAll("'", `'\\''`)}'`;
}
