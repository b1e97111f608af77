/**
 * Review s78 F5: a configuration file that wrote a key twice (an operator appending a section at
 * the end) silently lost the first copy, since `JSON.parse` keeps the last: its API keys and ports
 * fell back to defaults. `repeatedJsonKey` (`server/repeated_json_key.ts`) finds such a key at any
 * depth, and `readConfigFile` refuses the file naming the key path and the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { repeatedJsonKey } from "../../server/repeated_json_key.ts";
import { ConfigError, readConfigFile } from "../../node/config.ts";

Deno.test("repeatedJsonKey names a key written twice at the top, in a nested object and in an object inside an array", () => {
  assert.deepEqual(repeatedJsonKey('{"http": {"port": 1}, "http": {}}'), ["http"]);
  assert.deepEqual(
    repeatedJsonKey('{"network": {"listen": {"port": 1, "hostname": "h", "port": 2}}}'),
    ["network", "listen", "port"],
  );
  assert.deepEqual(
    repeatedJsonKey('{"a": [1, {"x": 1}, {"y": [], "y": 2}]}'),
    ["a", 2, "y"],
  );
});

Deno.test("repeatedJsonKey takes a key as JSON decodes it: an escaped spelling is the same key", () => {
  assert.deepEqual(repeatedJsonKey('{"http": 1, "h\\u0074tp": 2}'), ["h\u0074tp"]);
});

Deno.test("repeatedJsonKey finds none where no object repeats a key: one key in sibling objects, keys in strings and arrays", () => {
  for (
    const text of [
      "{}",
      "[]",
      '"http"',
      '{"a": {"k": 1}, "b": {"k": 1}}',
      '{"a": ["k", "k"], "b": "{\\"a\\": 1, \\"a\\": 2}"}',
      '{"a": "x\\\\", "b": "a", "c": {"a": 1}}',
      '[{"k": 1}, {"k": 2}]',
      '{"k": [{"k": {"k": 1}}]}',
    ]
  ) {
    JSON.parse(text); // each is valid JSON, as the scan requires
    assert.equal(repeatedJsonKey(text), undefined, text);
  }
});

Deno.test("a configuration file that writes a section twice is refused naming the key path and the file; one written once is read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "node.json");
    await Deno.writeTextFile(
      file,
      `{
  "http": { "port": 9001, "apiKeys": ["operator-key-0123456789abcdef"] },
  "network": { "listen": { "hostname": "127.0.0.1", "port": 7801 } },
  "http": { "hostname": "127.0.0.1" }
}`,
    );
    await assert.rejects(
      readConfigFile(file),
      (error: Error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.equal(
          error.message,
          `http: written twice in ${file} (JSON keeps only the last); merge the two into one`,
        );
        return true;
      },
    );
    await Deno.writeTextFile(file, '{"network": {"listen": {"port": 1, "port": 2}}}');
    await assert.rejects(
      readConfigFile(file),
      /^ConfigError: network\.listen\.port: written twice/,
    );
    await Deno.writeTextFile(file, '\uFEFF{"http": {"port": 9001}, "network": {"peers": []}}');
    assert.deepEqual(await readConfigFile(file), { http: { port: 9001 }, network: { peers: [] } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
