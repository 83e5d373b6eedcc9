/**
 * The documentation holds together: README.md stays a short quick start that keeps the two commands, and
 * every relative link in README.md, docs/*.md, deploy/README.md and benchmarks/README.md reaches an existing
 * file, and an existing heading when it names one (#anchor).
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { ROOT } from "../../deploy/render/files.js";

const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");

/** The Markdown files whose links are checked, repository-relative. */
const PAGES = [
  "README.md",
  ...readdirSync(path.join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
  "deploy/README.md",
  "benchmarks/README.md",
];

/** Markdown without its fenced code blocks, whose lines are neither headings nor links. */
function withoutCodeBlocks(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, "");
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as `-`, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, text] of withoutCodeBlocks(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = text!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M} _-]/gu, "")
      .replace(/ /g, "-");
    const repeats = seen.get(slug) ?? 0;
    seen.set(slug, repeats + 1);
    found.add(repeats === 0 ? slug : `${slug}-${repeats}`);
  }
  return found;
}

/** The relative link targets of a page (inline links and images), as written. */
function relativeLinks(markdown: string): string[] {
  const prose = withoutCodeBlocks(markdown).replace(/`[^`\n]*`/g, ""); // `[x](y)` in code is no link
  return [...prose.matchAll(/\]\(([^)\s]+)(?: "[^"]*")?\)/g)]
    .map(([, target]) => target!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe("README.md", () => {
  const readme = read("README.md");
  test("stays a quick start: under 15 KB (the reference lives in docs/)", () => {
    const bytes = Buffer.byteLength(readme);
    assert.ok(bytes < 15_000, `README.md is ${bytes} bytes`);
  });
  test("shows the command that starts the gateway and the one that runs every test (CI's)", () => {
    assert.match(readme, /^npm start {2,}# the whole gateway/m);
    assert.match(readme, /^npm test {2,}# every test/m);
    assert.match(read(".ci/run"), /^npm test$/m);
  });
  test("links every page under docs/", () => {
    const linked = new Set(relativeLinks(readme).map((target) => target.split("#")[0]));
    const unlinked = PAGES.filter((page) => page.startsWith("docs/") && !linked.has(page));
    assert.deepEqual(unlinked, []);
  });
});

describe("relative Markdown links", () => {
  for (const page of PAGES) {
    test(`${page}: every one reaches a file, and a heading when it names one`, () => {
      const broken = relativeLinks(read(page)).filter((target) => {
        const [file = "", anchor] = target.split("#");
        const resolved = file === "" ? path.join(ROOT, page) : path.resolve(ROOT, path.dirname(page), file);
        if (!existsSync(resolved)) return true;
        if (anchor === undefined) return false;
        return !statSync(resolved).isFile() || !anchors(readFileSync(resolved, "utf8")).has(anchor);
      });
      assert.deepEqual(broken, []);
    });
  }
  test("the check itself: a missing file and a missing heading are caught", () => {
    const markdown = "# A `b` (c)\n\n[x](nowhere.md) [y](#a-b-c) [z](#nothing) [w](https://example.com)\n";
    assert.deepEqual(relativeLinks(markdown), ["nowhere.md", "#a-b-c", "#nothing"]);
    assert.deepEqual([...anchors(markdown)], ["a-b-c"]);
  });
});
