/**
 * The help of `cli.ts start`, apart from the command: this module imports nothing, so `cli.ts`
 * answers `start --help` without loading `start_command.ts`, whose imports read the environment
 * as they load (cbor-x), and help needs no permission.
 *
 * @module
 */

/** What `cli.ts start --help` prints. */
export const START_HELP = `Usage: cli.ts start [options]

Run a node until Ctrl-C (or SIGTERM, or SIGHUP: its terminal closed). Each setting comes from,
highest first: a flag, a VERIFLOW_* environment variable, the configuration file, the default
(README, "Configuration").

  --config FILE     JSON configuration file (or VERIFLOW_CONFIG=FILE); unknown keys are refused
  --print-config    print the effective configuration, each value with where it came from
                    (flag, env, file, default), and exit without starting
  --log-format F    text (default: readable lines) or json (one object per line)
  --port N          HTTP/WebSocket port (default 8080; 0 picks a free one)
  --host H          address to listen on (default 127.0.0.1)
  --api-key KEY     accept this API key (Authorization: Bearer KEY; repeatable). Without keys
                    only clients on this machine are served
  --api-keys-file F accept the API keys in F, one per line
  --allow-origin O  let browser pages from origin O (https://app.example, or *) use the API
                    (repeatable)
  --allow-host H    a name (or NAME:PORT) clients on this machine may call the node by, such as a
                    local reverse proxy's; any name but an address or localhost is refused
                    (repeatable)
  --trust-proxy A   a reverse proxy (an address or CIDR range: 127.0.0.2, 10.0.0.0/8) that
                    appends its client to X-Forwarded-For (http.trustedProxyHeader "forwarded":
                    to Forwarded), the client then; a trusted address is never this machine, so
                    bind a local proxy to 127.0.0.2, not your tools' 127.0.0.1 (repeatable)
  --metrics-access A who may read /metrics: any (default: anyone who reaches the port), local
                    (this machine, or an API key or the operator token) or key (an API key or
                    the operator token only)
  --data DIR        data directory (default .veriflow)
  --model DIR       serve an exported model directory instead of the built-in model
  --model-size S    built-in model size: brown (default, trained), tiny or small
  --device D        execution provider: cpu (default), cuda or webgpu (both fall back to CPU,
                    saying why in the log and in /v1/models)
  --cuda            the same as --device cuda
  --workers N       run the model in N worker threads (default 1; 0: on the main thread)
  --validation-workers N
                    model workers of their own for the validator's forward passes (default 1;
                    0: share the generation workers, which serve token steps first)
  --prefill-tokens-per-tick N
                    most prompt tokens a batch reads per step while its streams decode (1 to
                    65536; default 128, pieces sized to the step): higher, a joining stream's
                    first token sooner; lower, the running streams' gaps shorter
  --model-load-timeout MS
                    give up starting when the model's first load in its workers takes longer
                    (default 600000, ten minutes; 0: never); the log says every 30 s that it
                    is still loading
  --no-storage, --no-inference, --no-prover, --no-validator
                    switch a role off
  --no-dashboard    serve no dashboard at / (cli.ts status still works on this machine: the
                    state it reads is then served to this machine only)
  --p2p-port N      port peers connect to (default 7700; 0 picks a free one)
  --p2p-host H      address peers connect to (default 127.0.0.1)
  --no-listen       accept no peer connections (dial out only)
  --peer HOST:PORT  dial this peer and keep it dialled (repeatable); PORT is
                    the peer's --p2p-port, not its HTTP --port
  --swarm           find peers on Hyperswarm's public DHT (needs Node.js 20+ installed)
  --swarm-bootstrap HOST:PORT
                    find peers on Hyperswarm through these DHT bootstrap nodes (repeatable)
  --swarm-bind ADDR bind the DHT to ADDR (127.0.0.1 for a local testnet)
  --challenge-probability P
                    chance of challenging another node's receipt (0..1)
  --heartbeat MS    milliseconds between heartbeat lines (default 10000, at least 1000; 0: off)
  --train           be a trainer in the network's training rounds (docs/TRAINING.md); its
                    shard of the corpus stays on this node
  --train-shard I/N train on shard I of N (default 0/1)
  --coordinate-training
                    run training rounds for the trainers that join this node
  --training-rounds N
                    rounds to run (default 0: until stopped)
  --training-steps H
                    local steps per trainer and round (default 50, at most 1000:
                    trainers refuse longer rounds)
  --training-deadline MS
                    how long a round waits for reports (default 120000)
  --training-min-trainers N
                    trainers that must have joined before a round starts (default 1)
  --held-out FILE   evaluate rounds on this UTF-8 text file, kept on this node, instead
                    of the public Brown held-out split every trainer can read
  --training-challenge-probability P
                    chance of challenging a training receipt (0..1)

A flag the other settings leave without effect (--model with --no-inference --no-validator,
--p2p-port with --no-listen, --cuda with --device cpu, ...) is refused, naming both.

Examples:
  deno task start                                   # built-in model on 127.0.0.1:8080
  deno task start --port 0 --log-format json        # any free port, JSON log lines
  VERIFLOW_HTTP_PORT=9000 deno task start --print-config
  deno task start --config veriflow.json --peer 127.0.0.1:7701

Exit codes: 0 stopped cleanly · 1 the node did not start (the line says why) · 2 bad flags
or configuration (the key and the reason are named) · 130 interrupted.`;
