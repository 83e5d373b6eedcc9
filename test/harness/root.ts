import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is dist/test/harness/root.js once built). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
