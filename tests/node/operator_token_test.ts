/** The operator token file (`<data>/operator.token`): made once, and readable by its owner only. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadOrCreateOperatorToken } from "../../node/dashboard_sources.ts";

const modeOf = async (path: string) => (await Deno.stat(path)).mode! & 0o777;

Deno.test({
  name:
    "the operator token is kept across starts, and its file ends up mode 0600 even when it was there world-readable (rewritten, or kept)",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const path = join(dir, "operator.token");
    try {
      const made = await loadOrCreateOperatorToken(dir);
      assert.equal(await modeOf(path), 0o600);
      assert.equal(await loadOrCreateOperatorToken(dir), made, "kept across starts");
      // A token file left world-readable (copied in, restored from a backup): tightened.
      await Deno.chmod(path, 0o644);
      assert.equal(await loadOrCreateOperatorToken(dir), made);
      assert.equal(await modeOf(path), 0o600);
      // One too short to use is rewritten; `mode` on the write applies only to a new file.
      await Deno.writeTextFile(path, "short\n");
      await Deno.chmod(path, 0o644);
      const fresh = await loadOrCreateOperatorToken(dir);
      assert.notEqual(fresh, made);
      assert.equal(await modeOf(path), 0o600);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
