/**
 * No import cycles between extproc's folders: each folder is a feature, and a cycle means two features
 * cannot be understood (or changed) one without the other. Reads the static imports of the .ts sources
 * (tests excluded: a test may use any folder it needs to drive its own).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

const SOURCES = path.resolve(import.meta.dirname, "../../extproc");

/** The top-level folder of a path relative to extproc/ ("." for files directly in it). */
const folderOf = (relative: string): string => (relative.includes("/") ? relative.split("/")[0]! : ".");

/** Every relative module specifier in `text`: `import … from "…"`, `export … from "…"`, `import "…"`, `import("…")`. */
export function relativeImports(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)].map((m) => m[1]!);
}

/** Folder → folders it imports, with one importing file per edge (for the message). */
function folderGraph(): Map<string, Map<string, string>> {
  const graph = new Map<string, Map<string, string>>();
  for (const file of readdirSync(SOURCES, { recursive: true, encoding: "utf8" })) {
    if (!file.endsWith(".ts") || file.endsWith(".test.ts")) continue;
    const from = folderOf(file);
    for (const specifier of relativeImports(readFileSync(path.join(SOURCES, file), "utf8"))) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
      const to = folderOf(target);
      if (to === from) continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      if (!edges.has(to)) edges.set(to, file);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** Cycles found depth-first, each as a path `a -> b -> a`: at least one in every cyclic set of folders, none when there is no cycle. */
export function findCycles(graph: ReadonlyMap<string, ReadonlyMap<string, string>>): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const visit = (node: string, stack: string[]): void => {
    const at = stack.indexOf(node);
    if (at !== -1) {
      cycles.push([...stack.slice(at), node]);
      return;
    }
    if (done.has(node)) return;
    stack.push(node);
    for (const next of graph.get(node)?.keys() ?? []) visit(next, stack);
    stack.pop();
    done.add(node);
  };
  for (const node of [...graph.keys()].sort()) visit(node, []);
  return cycles;
}

describe("folder imports", () => {
  it("finds import specifiers in every static and dynamic form", () => {
    const text = [
      'import { a } from "../auth/index.js";',
      "import type {\n  B,\n} from '../policy/types.js';",
      'export { c } from "./c.js";',
      'import "../side-effect/index.js";',
      'const d = await import("../dynamic/index.js");',
      'import fs from "node:fs";',
    ].join("\n");
    assert.deepEqual(relativeImports(text), [
      "../auth/index.js",
      "../policy/types.js",
      "./c.js",
      "../side-effect/index.js",
      "../dynamic/index.js",
    ]);
  });

  it("reports a cycle between folders, and none in an acyclic graph", () => {
    const graph = (edges: Array<[string, string]>) => {
      const g = new Map<string, Map<string, string>>();
      for (const [from, to] of edges) g.set(from, (g.get(from) ?? new Map()).set(to, `${from}/x.ts`));
      return g;
    };
    assert.deepEqual(
      findCycles(
        graph([
          ["a", "b"],
          ["b", "c"],
          ["c", "a"],
          ["c", "d"],
        ]),
      ),
      [["a", "b", "c", "a"]],
    );
    assert.deepEqual(
      findCycles(
        graph([
          ["a", "b"],
          ["a", "c"],
          ["b", "c"],
        ]),
      ),
      [],
    );
  });

  it("extproc has no import cycle between folders", () => {
    const graph = folderGraph();
    assert.ok(graph.size > 5, `read the import graph of ${SOURCES}`);
    const described = findCycles(graph).map((cycle) =>
      cycle
        .slice(1)
        .map((to, i) => `${cycle[i]} -> ${to} (${graph.get(cycle[i]!)!.get(to)})`)
        .join(", "),
    );
    assert.deepEqual(described, [], `import cycles between folders:\n${described.join("\n")}`);
  });
});
