/**
 * A process that takes a data directory's lock, says so on stdout, and holds it until its
 * stdin closes or it is killed (the data-directory lock tests kill it with SIGKILL).
 *
 * @module
 */
import { DataDirLock } from "../../node/data_dir_lock.ts";

const lock = await DataDirLock.acquire(Deno.args[0], "lock holder (test)");
console.log("locked");
for await (const _ of Deno.stdin.readable) {
  // hold the lock until stdin closes
}
await lock.release();
