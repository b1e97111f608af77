/**
 * Review s52 of `cli.ts infer` (`client/infer_command.ts`): the text it prints is what a node
 * sent, on a router a remote worker's, and it went to the terminal raw. A worker that streamed
 * escape sequences drove the user's terminal: set its title, wrote to its clipboard (OSC 52),
 * hid or rewrote what was printed before. On a terminal, control characters other than newline
 * and tab are now shown as escapes; a pipe still gets the bytes as sent.
 *
 * @module
 */
import { assertEquals } from "../server/_assert.ts";
import { runInfer } from "../../client/infer_command.ts";
import { scriptedServer } from "./_stub_servers.ts";

/** What a hostile worker streams: a clipboard write, a title change and a cleared line. */
const HOSTILE = ["Hi", "\x1b]52;c;Y3VybCBldmlsLnNo\x07", "\x1b]0;owned\x07", "\r\x1b[2K", "\n\tok"];

/** What `infer` printed on stdout, to a terminal or not. */
async function printed(stdoutIsTerminal: boolean): Promise<string> {
  const server = scriptedServer(HOSTILE.map((text, index) => ({ index, text })));
  try {
    const out: string[] = [];
    const status = await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: (text) => void out.push(text),
      stderr: () => {},
      stdoutIsTerminal,
    });
    assertEquals(status, 0);
    return out.join("");
  } finally {
    await server.shutdown();
  }
}

Deno.test("review s52: on a terminal, infer shows a worker's control characters as escapes instead of letting them drive the terminal; newline and tab stay", async () => {
  assertEquals(
    await printed(true),
    "Hi\\x1b]52;c;Y3VybCBldmlsLnNo\\x07\\x1b]0;owned\\x07\\x0d\\x1b[2K\n\tok",
  );
});

Deno.test("review s52: piped, infer writes the text as the node sent it", async () => {
  assertEquals(await printed(false), HOSTILE.join(""));
});
