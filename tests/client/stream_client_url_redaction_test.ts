/**
 * Credentials in the URL given to the client (`ws://user:KEY@host`, which Deno sends as Basic
 * auth) never reach an error message (red-team review s71, finding 6).
 */
import { StreamClient, streamUrl } from "../../client/stream_client.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { silentPort, stallingServer } from "./_stub_servers.ts";

const KEY = "sk-SECRET-0123456789";

/** The message of what `connect(url, options)` rejects with (it must reject). */
async function connectError(url: string, options: Parameters<typeof StreamClient.connect>[1]) {
  const error = await StreamClient.connect(url, options).then(
    (client) => {
      client.close();
      throw new Error(`connect to ${url} succeeded`);
    },
    (error: Error) => error,
  );
  return `${error.message} ${JSON.stringify(error)}`;
}

Deno.test("connect errors never show the URL's username or password: refused upgrade, nothing listening, connect timeout", async () => {
  const refusing = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("no", { status: 401 }),
  );
  const silent = silentPort();
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const freePort = free.addr.port;
  free.close();
  try {
    for (
      const [url, options] of [
        [`ws://me:${KEY}@127.0.0.1:${refusing.addr.port}`, {}],
        [`ws://me:${KEY}@127.0.0.1:${freePort}`, {}],
        [`ws://me:${KEY}@127.0.0.1:${silent.port}`, { connectTimeoutMs: 200 }],
      ] as const
    ) {
      const text = await connectError(url, options);
      assert(!text.includes(KEY), text);
      assert(!text.includes("me:"), text);
      assert(text.includes("127.0.0.1"), text); // the host is still named
    }
  } finally {
    await refusing.shutdown();
    silent.close();
  }
});

Deno.test("a URL with credentials that cannot name the API (not a URL, ftp:) is refused without showing them", () => {
  for (const url of [`ws://me:${KEY}@127.0.0.1:99999`, `ftp://me:${KEY}@127.0.0.1/`]) {
    let message = "";
    try {
      streamUrl(url);
    } catch (error) {
      message = (error as Error).message;
    }
    assert(message !== "", `${url} was accepted`);
    assert(!message.includes(KEY), message);
  }
});

Deno.test("a URL whose password stops its parsing (/ ? # @) is refused without showing it, in the message or its cause", async () => {
  // Port 99999 keeps each unparsable whatever its password does: nothing is ever sent.
  for (const password of ["s3cr/Et+KEY", "s3cr?Et", "s3cr#Et", "p@ss@Et"]) {
    const error = await StreamClient.connect(`wss://me:${password}@proxy.example:99999`).catch((
      e,
    ) => e);
    assertEquals((error as VeriflowError).code, "invalid_url");
    const told = `${error.message} ${String((error as Error).cause)}`;
    assert(!told.includes("Et"), told);
    assert(told.includes("proxy.example"), told); // still says where
  }
});

Deno.test("the idle timeout's and a protocol error's messages never show the URL's credentials", async () => {
  const server = stallingServer();
  try {
    const client = await StreamClient.connect(`ws://me:${KEY}@127.0.0.1:${server.addr.port}`, {
      idleTimeoutMs: 50,
    });
    const job = client.infer({ prompt: "x" });
    const error = await job.done.catch((error: Error) => error) as Error;
    assert(error.message.includes("no message from ws://127.0.0.1:"), error.message);
    assert(!error.message.includes(KEY), error.message);
    await client.closed;
  } finally {
    await server.shutdown();
  }
  const junk = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = () => socket.send("<html>a proxy's page</html>");
    return response;
  });
  try {
    const client = await StreamClient.connect(`ws://me:${KEY}@127.0.0.1:${junk.addr.port}`);
    const error = await client.infer({ prompt: "x" }).done.catch((error: Error) => error) as Error;
    assertEquals(error.message.includes("not a Veriflow /v1/stream"), true, error.message);
    assert(!error.message.includes(KEY), error.message);
    await client.closed;
  } finally {
    await junk.shutdown();
  }
});
