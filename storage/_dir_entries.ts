/**
 * The entries of one of the chunk store's folders, where a folder that does not exist holds
 * nothing: a store opened read-only on a directory that never held a store (a read-only mount,
 * a folder nobody may write) cannot make its `packs/`, `pins/`, `replicas/` or `quarantine/`,
 * and opens empty instead of failing at every start. Not part of the public API.
 *
 * @module
 */

/** The entries of directory `dir`; none when it does not exist (it holds nothing). */
export async function* dirEntries(dir: string): AsyncGenerator<Deno.DirEntry> {
  let entries: AsyncIterator<Deno.DirEntry>;
  let step: IteratorResult<Deno.DirEntry>;
  try {
    entries = Deno.readDir(dir)[Symbol.asyncIterator]();
    // The directory is opened at the first step: a missing one is found there.
    step = await entries.next();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (; !step.done; step = await entries.next()) yield step.value;
}
