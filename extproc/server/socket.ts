import { lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { connect } from "node:net";

/**
 * Makes `path` free for a Unix socket listener (creating its directory if need be). A socket file left behind
 * by a process that died without closing it (SIGKILL, OOM kill: the pod's shared emptyDir outlives the
 * container) would make every restart fail with EADDRINUSE, so it is removed, but only if it is a socket and
 * nothing answers on it: a running extproc keeps its socket, and a file that is not a socket is never deleted.
 */
export async function freeUnixSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    mkdirSync(dirname(path), { recursive: true });
    return;
  }
  if (!isSocket) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  // Only "connection refused" means nobody listens: any other error (no permission, a full backlog) may
  // hide a live listener, so the socket is left alone and the error reported.
  const refused = await new Promise<boolean>((resolve, reject) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(false);
    });
    probe.once("error", (err: NodeJS.ErrnoException) =>
      err.code === "ECONNREFUSED" ? resolve(true) : reject(new Error(`cannot probe ${path}: ${err.message}`)),
    );
  });
  if (!refused) throw new Error(`another process is listening on ${path}`);
  unlinkSync(path);
}
