/**
 * Actor runtime throughput, against a bare async queue measured in the same run.
 *
 *   deno run -A bench/actors_bench.ts [--messages 2000000] [--runs 5]
 *
 * - tell→handle: N messages told (each `await`ed, as real senders do for backpressure) to one
 *   actor with a synchronous handler; time until the handler has seen all N.
 * - baseline: the same N values pushed through a minimal ring-buffer queue (capacity as the
 *   default mailbox, producer awaits space) drained by an async consumer loop: the least any
 *   async mailbox can cost here.
 * - ask round trips: sequential-in-windows asks (64 in flight) for information.
 *
 * Goals: tell→handle ≥ 1,000,000 msg/s, and at most 2x slower than the baseline.
 *
 * @module
 */

import { ActorSystem } from "../actors/actor_system.ts";
import { DEFAULT_MAILBOX_CAPACITY } from "../actors/mailbox.ts";
import { median } from "./_stats.ts";

function argValue(name: string, fallback: number): number {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}

const MESSAGES = argValue("--messages", 2_000_000);
const RUNS = argValue("--runs", 5);
const ASKS = Math.max(1, Math.floor(MESSAGES / 10));
const ASK_WINDOW = 64;
const GOAL_RATE = 1_000_000;
const GOAL_RATIO = 2;

/** Minimal bounded async queue: ring buffer, producer waits for space, consumer waits for data. */
class BareQueue<T> {
  #ring: (T | undefined)[];
  #mask: number;
  #head = 0;
  #size = 0;
  #capacity: number;
  #spaceWaiter: (() => void) | undefined;
  #dataWaiter: (() => void) | undefined;

  constructor(capacity: number) {
    let size = 1;
    while (size < capacity) size <<= 1;
    this.#ring = new Array(size);
    this.#mask = size - 1;
    this.#capacity = capacity;
  }

  async push(value: T): Promise<void> {
    while (this.#size >= this.#capacity) {
      await new Promise<void>((resolve) => (this.#spaceWaiter = resolve));
    }
    this.#ring[(this.#head + this.#size) & this.#mask] = value;
    this.#size++;
    const waiter = this.#dataWaiter;
    if (waiter !== undefined) {
      this.#dataWaiter = undefined;
      waiter();
    }
  }

  async shift(): Promise<T> {
    while (this.#size === 0) {
      await new Promise<void>((resolve) => (this.#dataWaiter = resolve));
    }
    const value = this.#ring[this.#head] as T;
    this.#ring[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#size--;
    const waiter = this.#spaceWaiter;
    if (waiter !== undefined) {
      this.#spaceWaiter = undefined;
      waiter();
    }
    return value;
  }
}

async function baselineRun(n: number): Promise<number> {
  const queue = new BareQueue<number>(DEFAULT_MAILBOX_CAPACITY);
  let sum = 0;
  const start = performance.now();
  const consumer = (async () => {
    for (let i = 0; i < n; i++) sum += await queue.shift();
  })();
  for (let i = 0; i < n; i++) await queue.push(i);
  await consumer;
  const ms = performance.now() - start;
  if (sum !== (n * (n - 1)) / 2) throw new Error("baseline lost messages");
  return n / (ms / 1000);
}

async function actorTellRun(n: number): Promise<number> {
  const system = new ActorSystem({ name: "bench" });
  let sum = 0;
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const ref = await system.spawn<number>({
    name: "bench/sink",
    factory: () => ({
      receive(m: number) {
        sum += m;
        if (++seen === n) done();
      },
    }),
  });
  const start = performance.now();
  for (let i = 0; i < n; i++) await ref.tell(i);
  await finished;
  const ms = performance.now() - start;
  await system.shutdown();
  if (sum !== (n * (n - 1)) / 2) throw new Error("actor lost messages");
  return n / (ms / 1000);
}

async function actorAskRun(n: number): Promise<number> {
  const system = new ActorSystem({ name: "bench" });
  const ref = await system.spawn<number>({
    name: "bench/echo",
    factory: () => ({ receive: (m: number) => m + 1 }),
  });
  const start = performance.now();
  for (let i = 0; i < n; i += ASK_WINDOW) {
    const batch: Promise<number>[] = [];
    for (let j = i; j < Math.min(n, i + ASK_WINDOW); j++) batch.push(ref.ask<number>(j));
    const replies = await Promise.all(batch);
    if (replies[0] !== i + 1) throw new Error("wrong ask reply");
  }
  const ms = performance.now() - start;
  await system.shutdown();
  return n / (ms / 1000);
}

const fmt = (rate: number) => Math.round(rate).toLocaleString("en-US").padStart(12);

// Warm up the JIT on both paths so the first measured run is not a compile run.
await baselineRun(Math.min(MESSAGES, 200_000));
await actorTellRun(Math.min(MESSAGES, 200_000));

const baseline: number[] = [];
const tells: number[] = [];
for (let run = 0; run < RUNS; run++) {
  // Interleave so machine noise hits both sides alike.
  baseline.push(await baselineRun(MESSAGES));
  tells.push(await actorTellRun(MESSAGES));
}
const asks: number[] = [];
for (let run = 0; run < RUNS; run++) asks.push(await actorAskRun(ASKS));

const baseRate = median(baseline);
const tellRate = median(tells);
const askRate = median(asks);
const slowdown = baseRate / tellRate;

console.log(`actors bench: ${MESSAGES.toLocaleString("en-US")} messages, median of ${RUNS} runs`);
console.log("case                         msg/s        vs baseline   goal");
console.log(`bare async queue (baseline) ${fmt(baseRate)}   1.00x`);
console.log(
  `actor tell→handle           ${fmt(tellRate)}   ${(tellRate / baseRate).toFixed(2)}x` +
    `         ≥ ${GOAL_RATE.toLocaleString("en-US")} msg/s: ${
      tellRate >= GOAL_RATE ? "met" : "NOT met"
    }` +
    `; slowdown ${slowdown.toFixed(2)}x ≤ ${GOAL_RATIO}x: ${
      slowdown <= GOAL_RATIO ? "met" : "NOT met"
    }`,
);
console.log(
  `actor ask round trip        ${fmt(askRate)}   ${(askRate / baseRate).toFixed(2)}x` +
    `         (information; ${ASK_WINDOW} in flight)`,
);
