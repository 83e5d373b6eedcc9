/** Where scripts/install-peers.sh puts the optional peers, and how to tell a row that one is missing. */
import { accessSync, constants } from "node:fs";
import path from "node:path";
import { ROOT } from "../../test/harness/index.js";

/** The peers' install directory (git ignores it). */
const PEERS_DIR = path.join(ROOT, ".peers");

/** The path of an installed peer's executable, relative to .peers/; undefined when it is not there. */
export function peerExecutable(relative: string): string | undefined {
  const file = path.join(PEERS_DIR, relative);
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    return undefined;
  }
}

/** Why a peer's row is skipped, with the command that installs it. */
export const notInstalled = (what: string, relative: string): string =>
  `${what} is not installed (no .peers/${relative}); install it with \`bash scripts/install-peers.sh\``;
