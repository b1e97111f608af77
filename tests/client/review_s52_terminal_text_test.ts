/**
 * Review s52 of `cli.ts infer` (`client/infer_command.ts`): the text it prints is what a node
 * sent, on a router a remote worker's, and it went to the terminal raw. A worker that streamed
 * escape sequences drove the user's terminal: set its title, wrote to its clipboard (OSC 52),
 * hid or rewrote what was printed before. On a terminal, control characters other than newline
 * and tab are now shown as escapes; a pipe still gets the bytes as sent. Stop 53: what the node
 * says on stderr (an error's code and message, a receipt error's) is escaped too, always.
 *
 * @module
 */
import { assertEquals } from "../server/_assert.ts";
import { runInfer } from "../../client/infer_command.ts";
import { doneFrame, scriptedServer } from "./_stub_servers.ts";

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

/** What `infer` printed on stderr when the node ended its job with `end`. */
async function toldOnStderr(end: (id: string) => Record<string, unknown>): Promise<string> {
  const server = scriptedServer([{ index: 0, text: "Hi" }], end);
  try {
    const err: string[] = [];
    await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: () => {},
      stderr: (text) => void err.push(text),
      stdoutIsTerminal: false,
    });
    return err.join("");
  } finally {
    await server.shutdown();
  }
}

/** A clipboard write (OSC 52) and a cleared line, as a node's error text. */
const HOSTILE_MESSAGE = "no\x1b]52;c;Y3VybCBldmlsLnNo\x07\r\x1b[2K";

Deno.test("review s53: a node's error message and code are shown on stderr with their control characters as escapes", async () => {
  const told = await toldOnStderr((id) => ({
    type: "error",
    id,
    code: "bad\x1b[2J",
    message: HOSTILE_MESSAGE,
  }));
  assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
  assertEquals(told.includes("no\\x1b]52;c;Y3VybCBldmlsLnNo\\x07\\x0d\\x1b[2K"), true, told);
  assertEquals(told.includes("bad\\x1b[2J"), true, told);
});

Deno.test("review s53: a receipt error's message is shown on stderr with its control characters as escapes", async () => {
  const told = await toldOnStderr((id) => ({
    ...doneFrame(id, 1),
    receipt_error: { code: "proof_store_failed", message: HOSTILE_MESSAGE },
  }));
  assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
  assertEquals(told.includes("warning: the job ended without a receipt"), true, told);
});
