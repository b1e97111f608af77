/**
 * Reading a node's answer off a raw TCP connection, for tests that write a request by hand (a
 * body that stalls or trickles, which `fetch` cannot send).
 *
 * @module
 */

/**
 * What `conn` sends until it has sent `text` or the connection ends, decoded: the test asserts on
 * it (a status line, an error code), whichever way the reading stopped.
 */
export async function readUntil(conn: Deno.Conn, text: string): Promise<string> {
  const buffer = new Uint8Array(4096);
  let received = "";
  while (!received.includes(text)) {
    const n = await conn.read(buffer);
    if (n === null) break;
    received += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return received;
}
