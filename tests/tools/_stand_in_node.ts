// A stand-in for a node process: stops gracefully on SIGTERM, as `cli.ts start` does, and says
// so in the file named by its first argument. Prints READY, then runs until stopped.
Deno.addSignalListener("SIGTERM", () => {
  Deno.writeTextFileSync(Deno.args[0], "stopped on SIGTERM\n");
  Deno.exit(0);
});
setInterval(() => {}, 60_000);
console.log("READY");
