/**
 * Stand-ins for a node that misbehaves, for the client tests: one that accepts connections and
 * never answers, one whose stream goes silent mid-job.
 *
 * @module
 */

/**
 * A port that accepts TCP connections and never answers: a stopped (SIGSTOP), swapped-out or
 * wedged node. `close` closes the listener and every connection it accepted.
 */
export function silentPort(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) held.push(conn);
    } catch {
      // closed
    }
  })();
  return {
    port: listener.addr.port,
    close() {
      listener.close();
      for (const conn of held) conn.close();
      void accepting;
    },
  };
}

/**
 * A `/v1/stream` stand-in that starts each job and sends one token, then nothing more: a wedged
 * worker behind a live socket. `messages` has what clients sent.
 */
export function stallingServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type !== "infer") return;
      socket.send(JSON.stringify({
        type: "start",
        id: message.id,
        job_id: "ab".repeat(32),
        model: "x",
        model_name: "x",
        execution_provider: "cpu",
        prompt_tokens: 1,
      }));
      socket.send(
        JSON.stringify({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" }),
      );
    };
    return response;
  });
  return Object.assign(server, { messages });
}
