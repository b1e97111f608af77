/**
 * The setup of the client's idle-timeout tests: a stand-in node that starts each job and then
 * sends only what the test tells it to, and a client on a fake clock the test moves
 * (`StreamClientOptions.timers`), so no test waits on a real deadline.
 *
 * @module
 */
import { StreamClient } from "../../client/stream_client.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import { startFrame } from "./_stub_servers.ts";

/** A stand-in node that answers an `infer` with its `start`, then only with what `send` sends. */
export type QuietServer = Deno.HttpServer<Deno.NetAddr> & {
  /** The messages clients sent, parsed. */
  messages: { type: string; id: string }[];
  /** Send `frame` to the last client connected. */
  send(frame: Record<string, unknown>): void;
};

/** Start a {@link QuietServer} on a free local port. */
export function quietServer(): QuietServer {
  const messages: { type: string; id: string }[] = [];
  let socket: WebSocket | undefined;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const upgraded = Deno.upgradeWebSocket(request);
    socket = upgraded.socket;
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type === "infer") socket!.send(JSON.stringify(startFrame(message.id)));
    };
    return upgraded.response;
  });
  return Object.assign(server, {
    messages,
    send: (frame: Record<string, unknown>) => socket!.send(JSON.stringify(frame)),
  });
}

/** A client connected to a {@link QuietServer}; disposing it closes the client, then the server. */
export interface QuietClient extends AsyncDisposable {
  server: QuietServer;
  /** The client's clock: nothing times out until the test advances it. */
  timers: ManualTimers;
  client: StreamClient;
}

/** A {@link QuietServer} and a client connected to it with `idleTimeoutMs` on a fake clock. */
export async function quietClient(idleTimeoutMs: number): Promise<QuietClient> {
  const server = quietServer();
  const timers = new ManualTimers();
  let client: StreamClient;
  try {
    client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
      idleTimeoutMs,
      timers,
    });
  } catch (error) {
    await server.shutdown();
    throw error;
  }
  return {
    server,
    timers,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await client.closed;
      await server[Symbol.asyncDispose]();
    },
  };
}
