/**
 * A dishonest worker for the multi-process test: a real node that serves jobs for the honest
 * model's CID with another model's weights (a cheaper substitute), while everything else —
 * its model list, its own fraud checks — uses the honest model. Its receipts name the honest
 * CID; its tokens come from the substitute. Usage: `_tampered_worker.ts HONEST_DIR
 * TAMPERED_DIR [cli.ts start flags]`. Lives in tests/: no production code path can be told to
 * lie.
 */
import { type LoadedModel, ModelRegistry } from "../../inference/model_registry.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { configFromArgs } from "../../cli/start_command.ts";
import { startNode } from "../../node/node.ts";

class SubstitutingRegistry extends ModelRegistry {
  #honest = "";
  #substitute = "";

  async pose(honestDir: string, substituteDir: string): Promise<void> {
    this.#honest = (await this.register(honestDir)).cid;
    this.#substitute = (await this.register(substituteDir)).cid;
    await this.get(this.#honest);
  }

  override list() {
    return super.list().filter((m) => m.cid !== this.#substitute);
  }

  override async get(cid: string): Promise<LoadedModel> {
    const model = await super.get(cid);
    if (cid !== this.#honest) return model;
    const substitute = await super.get(this.#substitute) as TextModel;
    return new Proxy(model, {
      get(target, key) {
        // Generation — the paid work — runs the substitute; all else is the honest model.
        if (key === "generate") return substitute.generate.bind(substitute);
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

const [honestDir, tamperedDir, ...args] = Deno.args;
const config = await configFromArgs(args);
const models = new SubstitutingRegistry({ executionProvider: "cpu" });
await models.pose(honestDir, tamperedDir);
const node = await startNode(config, { log: (line) => console.log(line), models });
Deno.addSignalListener("SIGTERM", () => node.shutdown());
await node.finished;
