/**
 * Review s52: an API key may hold `#` (`--api-key` takes any visible ASCII), but the keys file
 * cut every line at its first `#`, as if a comment began there: the same key read from the file
 * became its first part, a key clients never send (or, shorter than 16 characters, refused the
 * file). A comment now starts at a line's start or after a space.
 *
 * @module
 */
import { join } from "node:path";
import { assertEquals } from "./_assert.ts";
import { ApiKeys } from "../../server/api_keys.ts";

/** Which of `asked` a node with `file` as its keys file accepts. */
async function accepted(file: string, asked: string[]): Promise<string[]> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "keys");
    await Deno.writeTextFile(path, file);
    const keys = ApiKeys.fromConfig({ apiKeys: [], apiKeysFile: path });
    return asked.filter((key) => {
      try {
        keys.identify(`Bearer ${key}`);
        return true;
      } catch {
        return false;
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s52: a key with a # in it read from the keys file is that whole key, as --api-key takes it", async () => {
  const key = "team#7-3f9a1c0de8b24f67a5";
  assertEquals(await accepted(`${key}\n`, [key, "team"]), [key]);
});

Deno.test("review s52: comments in the keys file still start a line or follow a space", async () => {
  const a = "aaaaaaaaaaaaaaaaaaaa";
  const b = "bbbbbbbbbbbbbbbbbbbb";
  const file = `# the team's keys\n${a} # alice\n\t# ${b} retired\n`;
  assertEquals(await accepted(file, [a, b]), [a]);
});
