import { createConnection } from "node:net";
import { childEnv, launch, running, type Launched } from "./children.js";
import { freePort, waitFor } from "./index.js";

/** A redis-server started for a test run, on loopback, with persistence off. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** Kills the server (SIGKILL: an outage, not a shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port, empty. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const pingable = (port: number) => () =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port }, () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });

/** Starts `redis-server` (REDIS_SERVER, or the one on PATH that scripts/setup.sh installs). */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  let server: Launched | undefined;
  const start = async () => {
    // No password and no config file: the server tests get is the same on every machine.
    server = launch(
      "redis-server",
      process.env.REDIS_SERVER ?? "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { env: childEnv() },
    );
    const failed = server.exited.then(() => {
      throw new Error("redis-server exited during start-up");
    });
    await Promise.race([waitFor(`redis-server on ${port}`, pingable(port), 10_000), failed]);
  };
  const kill = async () => {
    if (!running(server)) return;
    server.child.kill("SIGKILL");
    await server.exited;
  };
  await start();
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: start, stop: kill };
}
