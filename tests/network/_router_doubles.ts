/**
 * Stand-ins for a router's NetworkActor ({@link Workers}) and ValidatorActor
 * ({@link Recorder}), and a router's inference port over them ({@link spawnRouter}): what the
 * router tests over in-memory worker connections share.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import type { BusyRefusals } from "../../network/busy_refusals.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import {
  type ForwardingOptions,
  NetworkInferencePort,
} from "../../network/network_inference_port.ts";
import type { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { INFO } from "./_router_fixture.ts";

/**
 * Stands in for the NetworkActor: hands out the first open worker, in the order given, that the
 * router did not exclude and that has not refused the model (`worker_refused_model`), as the
 * network does; lists `models`; keeps every other message it was told.
 */
export class Workers implements Actor<NetworkMessage> {
  /** Keys of workers that refused the model: never handed out again. */
  readonly avoided = new Set<string>();
  /** What the router told the network besides `worker` and `worker_models`. */
  readonly told: NetworkMessage[] = [];
  /**
   * @param connections The router's connections to its workers, best first.
   * @param models What `worker_models` answers (default the router fixture's one model).
   */
  constructor(readonly connections: Connection[], readonly models: unknown[] = [INFO]) {}
  /** Answers `worker` and `worker_models`; keeps the rest. */
  receive(message: NetworkMessage): unknown {
    if (message.type === "worker") {
      const exclude = message.exclude ?? [];
      return this.connections.find((c) => {
        const key = toHex(c.peerKey!);
        return !c.isClosed && !exclude.includes(key) && !this.avoided.has(key);
      });
    }
    if (message.type === "worker_models") return this.models;
    if (message.type === "worker_refused_model") this.avoided.add(message.key);
    this.told.push(message);
    return undefined;
  }
}

/** Stands in for the ValidatorActor: keeps what it is told (receipts, claims), answers nothing. */
export class Recorder implements Actor<ValidatorMessage> {
  /** @param told Where it keeps what it is told, `stats` asks aside. */
  constructor(readonly told: ValidatorMessage[] = []) {}
  /** Keeps `message` unless it is a `stats` ask. */
  receive(message: ValidatorMessage): undefined {
    if (message.type !== "stats") this.told.push(message);
    return undefined;
  }
}

/**
 * A router in `system`: `workers` as its NetworkActor (`router/network`), a {@link Recorder} as
 * its ValidatorActor (`router/validator`), and its inference port over them with `options`,
 * `busy` and `unresumable` (default the port's own). `settled` returns once both actors have
 * handled everything told them before it (mailboxes are FIFO: once an ask is answered, every
 * earlier tell has been handled).
 */
export async function spawnRouter(
  system: ActorSystem,
  workers: Workers,
  options: ForwardingOptions = {},
  busy?: BusyRefusals,
  unresumable?: BusyRefusals,
) {
  const network = await system.spawn<NetworkMessage>({
    name: "router/network",
    factory: () => workers,
  });
  const recorder = new Recorder();
  const validator = await system.spawn<ValidatorMessage>({
    name: "router/validator",
    factory: () => recorder,
  });
  const port = new NetworkInferencePort(
    network,
    validator,
    Identity.generate(),
    options,
    busy,
    unresumable,
  );
  const settled = async () => {
    await validator.ask({ type: "stats" });
    await network.ask({ type: "worker_models" });
  };
  return { port, network, validator, recorder, settled };
}
