/**
 * Fuzz: random and mutated frames through the decoder and through a live connection.
 * Seeded, so a failure replays; the seed is printed.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { encodeCbor } from "../../protocols/cbor.ts";
import { decodeEnvelope, type Envelope } from "../../protocols/envelope.ts";
import { createCoreRegistry } from "../../protocols/messages.ts";
import { ProtocolError } from "../../protocols/protocol_errors.ts";
import { LengthPrefixedDecoderStream } from "../../streams/length_prefixed_stream.ts";
import { prng } from "../_prng.ts";
import { connectionWithRawPeer, Echo } from "./_helpers.ts";

const FRAMES = 20_000;
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261125);
/**
 * Heap bounds. Refusals allocate short-lived garbage (errors, zod issues), so heapUsed swings
 * with the GC: the peak gets a loose bound, and a leak is caught by comparing the live heap
 * after a forced full GC before and after the run (about 1 MB live and flat, measured over
 * 40,000 bad frames).
 */
const MAX_HEAP_PEAK_GROWTH_BYTES = 128 * 1024 * 1024;
const MAX_LIVE_HEAP_GROWTH_BYTES = 4 * 1024 * 1024;
const HEAP_SAMPLE_EVERY = 500;

// Node's trick, supported by Deno: enable V8's gc() at run time, without a command-line flag.
v8.setFlagsFromString("--expose-gc");
const forceGc = vm.runInNewContext("gc") as () => void;

/** Track heapUsed: the peak over the run, and the live heap (after GC) at start and end. */
class HeapProbe {
  readonly start: number;
  peak: number;
  constructor() {
    forceGc();
    this.start = this.peak = Deno.memoryUsage().heapUsed;
  }
  sample(): void {
    this.peak = Math.max(this.peak, Deno.memoryUsage().heapUsed);
  }
  /** Assert the bounds; call once the run's objects are out of scope. */
  check(): string {
    this.sample();
    forceGc();
    const liveGrowth = Deno.memoryUsage().heapUsed - this.start;
    const peakGrowth = this.peak - this.start;
    assert.ok(peakGrowth < MAX_HEAP_PEAK_GROWTH_BYTES, `heap peak grew ${peakGrowth} bytes`);
    assert.ok(liveGrowth < MAX_LIVE_HEAP_GROWTH_BYTES, `live heap grew ${liveGrowth} bytes`);
    return `heap peak +${(peakGrowth / 1e6).toFixed(1)} MB, live +${
      (liveGrowth / 1e6).toFixed(2)
    } MB`;
  }
}

class FrameFuzzer {
  #rnd: () => number;
  #seeds: Uint8Array[];
  constructor(seed: number) {
    this.#rnd = prng(seed);
    this.#seeds = [
      { v: 1, type: "test.echo", id: 1, body: { text: "hello", n: 3 } },
      { v: 1, type: "test.echoed", id: 2, re: 1, body: { text: "hello", n: 3 } },
      { v: 1, type: "credit", id: 3, re: 7, body: { chunks: 4 } },
      { v: 1, type: "cancel", id: 4, re: 7, body: { code: "stream_cancelled", message: "x" } },
      { v: 1, type: "error", id: 5, re: 9, body: { code: "busy", message: "later" } },
      { v: 1, type: "ping", id: 6, body: { nonce: 6 } },
      {
        v: 1,
        type: "test.echo",
        id: 7,
        from: new Uint8Array(32).fill(7),
        body: { text: "signed", n: 1 },
        sig: new Uint8Array(64).fill(9),
      },
    ].map((e) => encodeCbor(e));
  }

  int(n: number): number {
    return Math.floor(this.#rnd() * n);
  }

  #randomBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }

  #randomValue(depth: number): unknown {
    switch (this.int(depth > 3 ? 6 : 9)) {
      case 0:
        return this.int(2 ** 31) - 2 ** 30;
      case 1:
        return this.#rnd() * 1e6;
      case 2:
        return "s".repeat(this.int(20));
      case 3:
        return null;
      case 4:
        return this.int(2) === 0;
      case 5:
        return this.#randomBytes(this.int(40));
      case 6:
        return Array.from({ length: this.int(4) }, () => this.#randomValue(depth + 1));
      case 7:
        return { text: this.#randomValue(depth + 1), n: this.#randomValue(depth + 1) };
      default:
        return { [`k${this.int(5)}`]: this.#randomValue(depth + 1) };
    }
  }

  /** A structurally valid CBOR map whose envelope fields are random. */
  #randomEnvelope(): Uint8Array {
    const types = [
      "test.echo",
      "test.echoed",
      "ping",
      "pong",
      "error",
      "credit",
      "cancel",
      "end",
      "x.y",
    ];
    const env: Record<string, unknown> = {
      v: this.int(4) === 0 ? this.int(3) : 1,
      type: this.int(8) === 0 ? this.#randomValue(0) : types[this.int(types.length)],
      id: this.int(6) === 0 ? this.#randomValue(0) : 1000 + this.int(1000),
      body: this.#randomValue(0),
    };
    if (this.int(3) === 0) env.re = this.int(2) ? this.int(50) : this.#randomValue(0);
    if (this.int(5) === 0) env.sig = this.#randomBytes(this.int(2) ? 64 : this.int(70));
    if (this.int(5) === 0) env.from = this.#randomBytes(this.int(2) ? 32 : this.int(40));
    if (this.int(10) === 0) env.extra = 1;
    return encodeCbor(env);
  }

  #mutate(source: Uint8Array): Uint8Array {
    const bytes = new Uint8Array(source);
    switch (this.int(8)) {
      case 0: { // flip a few bits
        for (let i = 0, n = 1 + this.int(4); i < n; i++) {
          bytes[this.int(bytes.length)] ^= 1 << this.int(8);
        }
        return bytes;
      }
      case 1: // overwrite a byte
        bytes[this.int(bytes.length)] = this.int(256);
        return bytes;
      case 2: // truncate
        return bytes.subarray(0, this.int(bytes.length));
      case 3: { // insert random bytes
        const at = this.int(bytes.length);
        const ins = this.#randomBytes(1 + this.int(8));
        const out = new Uint8Array(bytes.length + ins.length);
        out.set(bytes.subarray(0, at));
        out.set(ins, at);
        out.set(bytes.subarray(at), at + ins.length);
        return out;
      }
      case 4: { // delete a slice
        const at = this.int(bytes.length);
        const n = 1 + this.int(6);
        const out = new Uint8Array(bytes.length - Math.min(n, bytes.length - at));
        out.set(bytes.subarray(0, at));
        out.set(bytes.subarray(at + n), at);
        return out;
      }
      case 5: { // plant a huge length / indefinite / tag header
        const planted = [0x9b, 0xbb, 0x5b, 0x7b, 0x9f, 0xbf, 0xc6, 0xd8, 0x1f, 0xfb][this.int(10)];
        bytes[this.int(bytes.length)] = planted;
        return bytes;
      }
      case 6: // deep nesting
        return new Uint8Array(64 + this.int(4000)).fill([0x81, 0xa1, 0x9f][this.int(3)]);
      default: // pure noise
        return this.#randomBytes(this.int(80));
    }
  }

  /** The next fuzz payload: 1/4 random envelopes, 3/4 mutations of valid ones. */
  next(): Uint8Array {
    if (this.int(4) === 0) return this.#randomEnvelope();
    return this.#mutate(this.#seeds[this.int(this.#seeds.length)]);
  }
}

Deno.test(`fuzz: ${FRAMES} random and mutated payloads through the envelope decoder (seed ${SEED})`, () => {
  const fuzzer = new FrameFuzzer(SEED);
  const registry = createCoreRegistry().register(Echo);
  const heap = new HeapProbe();
  const codes = new Map<string, number>();
  let accepted = 0;
  for (let i = 0; i < FRAMES; i++) {
    const payload = fuzzer.next();
    try {
      const envelope: Envelope = decodeEnvelope(payload);
      registry.parseBody(envelope.type, envelope.body);
      accepted++;
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `frame ${i}: untyped ${error}`);
      assert.ok(typeof error.code === "string" && error.code.length > 0);
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    }
    if (i % HEAP_SAMPLE_EVERY === 0) heap.sample();
  }
  console.log(`decoder: ${accepted} accepted, refusals`, Object.fromEntries(codes), heap.check());
  for (
    const code of [
      "malformed_cbor",
      "nesting_too_deep",
      "invalid_envelope",
      "unknown_version",
      "invalid_body",
    ]
  ) {
    assert.ok((codes.get(code) ?? 0) > 0, `the fuzzer never produced ${code}`);
  }
});

Deno.test(`fuzz: random byte streams through the framing decoder fail only with typed errors (seed ${SEED})`, async () => {
  const rnd = prng(SEED + 1);
  for (let run = 0; run < 300; run++) {
    const chunks = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => {
      const c = new Uint8Array(Math.floor(rnd() * 64));
      for (let i = 0; i < c.length; i++) c[i] = rnd() < 0.6 ? 0 : Math.floor(rnd() * 256);
      return c;
    });
    try {
      await Array.fromAsync(
        ReadableStream.from(chunks).pipeThrough(
          new LengthPrefixedDecoderStream({ maxFrameBytes: 256 }),
        ),
      );
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `run ${run}: untyped ${error}`);
      assert.ok(["frame_too_large", "truncated_frame"].includes(error.code), error.code);
    }
  }
});

Deno.test(`fuzz: ${FRAMES} bad frames into a live connection, then a valid request still works (seed ${SEED})`, async () => {
  const fuzzer = new FrameFuzzer(SEED + 2);
  const refusals = new Map<string, number>();
  let refusedErrors = 0;
  const { connection, peer } = connectionWithRawPeer({
    maxRefusals: Infinity, // this test is about surviving garbage, not cutting its sender off
    onProtocolError: (e) => {
      refusals.set(e.code, (refusals.get(e.code) ?? 0) + 1);
      if (e.envelopeType === "error") refusedErrors++;
    },
  });
  connection.handle(Echo, (b) => ({ text: b.text, n: b.n }));
  // Drain everything the connection answers, counting typed error replies.
  let errorReplies = 0;
  let otherReplies = 0;
  const finalReply = Promise.withResolvers<Envelope>();
  const drain = (async () => {
    for (;;) {
      const envelope = await peer.next().catch(() => null);
      if (!envelope) return;
      if (envelope.re === 9_999_999_999) finalReply.resolve(envelope);
      else if (envelope.type === "error") errorReplies++;
      else otherReplies++;
    }
  })();

  const heap = new HeapProbe();
  for (let i = 0; i < FRAMES; i++) {
    await peer.send(fuzzer.next());
    if (i % HEAP_SAMPLE_EVERY === 0) heap.sample();
  }
  // Then a valid request, with an id no fuzz frame uses.
  await peer.send({ v: 1, type: "test.echo", id: 9_999_999_999, body: { text: "after", n: 1 } });
  const reply = await finalReply.promise;
  assert.deepEqual([reply.type, reply.body], ["test.echoed", { text: "after", n: 1 }]);
  heap.sample();

  const stats = connection.stats();
  const refused = [...refusals.values()].reduce((a, b) => a + b, 0);
  console.log(
    `connection: ${stats.framesReceived} frames, ${refused} refused`,
    Object.fromEntries(refusals),
    `${errorReplies} error replies, ${otherReplies} other replies,`,
    heap.check(),
  );
  assert.equal(connection.isClosed, false, "framing was intact: the connection must stay open");
  assert.equal(stats.framesReceived, FRAMES + 1);
  assert.ok(refused > FRAMES * 0.8, `only ${refused} refusals`);
  // Every refusal got a typed error back, except refusals of `error` envelopes (never
  // answered) and any dropped because the write queue was full.
  assert.equal(errorReplies, refused - refusedErrors - stats.droppedErrorReplies);
  assert.equal(stats.pendingRequests, 0);
  await peer.close();
  await connection.close();
  await drain;
});
