/** `npm run render:deploy`: writes every generated deployment file (see ./index.ts). */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { renderAll, ROOT } from "./index.js";

for (const [file, text] of Object.entries(await renderAll())) {
  mkdirSync(path.dirname(path.join(ROOT, file)), { recursive: true });
  writeFileSync(path.join(ROOT, file), text);
  console.log(`wrote ${file}`);
}
