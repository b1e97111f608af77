/**
 * Where `cli.ts infer --receipt-out FILE` puts a job's receipt, so that none is lost and nothing
 * else is (review s77 vclient, F4): the path is checked before the job is sent (its folder
 * exists; it is no directory, no symbolic link, dangling or not, and no existing file unless the
 * user said `--force`), so a typo does not cost a paid job its receipt nor a user a file; the
 * receipt is written to a new file beside it and renamed into place, so no reader sees half a
 * receipt and a link is replaced, never followed; and a write that fails after the job leaves the
 * receipt on stderr for the user to save.
 *
 * @module
 */
import { dirname } from "node:path";

/**
 * Why `path` cannot take the receipt, as words to follow the path (`is a directory: …`, `: the
 * folder … does not exist`), or undefined when it can (see the module doc).
 */
export async function receiptOutProblem(path: string, force: boolean): Promise<string | undefined> {
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
 * A file-system failure about `path`, as words to follow it (`: …`), with the permission to ask
 * for when that is why: also how `cli.ts infer` tells a receipt it could not write.
 */
export function problemText(error: unknown, path: string): string {
  const permission = error instanceof Deno.errors.NotCapable
    ? ` (run with --allow-read=${dirname(path)} --allow-write=${dirname(path)})`
    : "";
  return `: ${(error as Error).message}${permission}`;
}
