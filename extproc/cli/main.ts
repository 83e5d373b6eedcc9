#!/usr/bin/env node
/**
 * `llm-gateway`: operator CLI.
 *
 *   llm-gateway key create --id ID --team TEAM   new random key; prints it once, plus the policy entry
 *   llm-gateway key hash < key.txt               SHA-256 of a key read from stdin (never from argv)
 *   llm-gateway policy validate FILE [--envoy-config envoy/envoy.yaml]
 *                                                validates with exactly the rules extproc uses at start-up
 *   llm-gateway policy diff OLD NEW               what changes: keys added/revoked, models, aliases, limits…
 *   llm-gateway audit verify FILE [FILE…] [--anchor SEQ:HASH …]
 *                                                checks the audit hash chain (rotated files oldest first)
 *                                                against checkpoints extproc published off the host
 *   llm-gateway key revoke|reinstate --id ID --redis URL [--prefix P]
 *                                                revokes an identity on every replica at once (Redis quota store)
 *   llm-gateway report FILE [FILE…] [--from DATE] [--to DATE] [--by team,key,model,environment,api]
 *                      [--format table|csv|json|html] [--jobs N]
 *                                                chargeback: requests, tokens, cost, refusals per group
 *                                                (docs/reports.md); exit 1 when the hash chain is broken
 */
import { randomBytes } from "node:crypto";
import { accessSync, constants, realpathSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ChainVerifier, forEachLine, type ChainHead } from "../audit/index.js";
import { revocationKeys } from "../auth/revocations.js";
import { diffPolicies } from "../policy/diff.js";
import { loadPolicy, PolicyError, sha256Hex } from "../policy/index.js";
import {
  buildReport,
  FORMATS,
  integrityLine,
  MixedCurrencyError,
  parseDimensions,
  parseInstant,
  ReportUsageError,
  type Format,
} from "../report/index.js";

const USAGE = `usage:
  llm-gateway key create --id ID --team TEAM
  llm-gateway key hash  (reads the key from stdin)
  llm-gateway policy validate FILE [--envoy-config FILE]
  llm-gateway policy diff OLD NEW
  llm-gateway audit verify FILE [FILE...] [--anchor SEQ:HASH ...]
  llm-gateway key revoke|reinstate --id ID --redis URL [--prefix llm-gateway]
  llm-gateway report FILE [FILE...] [--from DATE] [--to DATE] [--by team,key,model,environment,api]
                     [--format table|csv|json|html] [--jobs N]`;

const OPTIONS = {
  id: { type: "string" },
  team: { type: "string" },
  "envoy-config": { type: "string" },
  redis: { type: "string" },
  prefix: { type: "string", default: "llm-gateway" },
  anchor: { type: "string", multiple: true, default: [] },
  from: { type: "string" },
  to: { type: "string" },
  by: { type: "string", default: "team,model" },
  format: { type: "string", default: "table" },
  jobs: { type: "string" },
} satisfies NonNullable<ParseArgsConfig["options"]>;

/** A failure the operator can act on: printed as one line, exit code 1 (no stack trace). */
class CliFailure extends Error {}

/** Runs the CLI with `argv` (without node and script); returns the exit code: 0 ok, 1 failed, 2 misused. */
export async function runCli(
  argv: string[],
  io = { out: process.stdout, err: process.stderr, stdin: process.stdin },
): Promise<number> {
  if (argv[0] === "help" || argv.includes("--help") || argv.includes("-h")) {
    io.out.write(`${USAGE}\n`);
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    // parseArgs explains a bad option in its first sentence; the rest is advice about `--`.
    io.err.write(`${(err as Error).message.split(". ")[0]}\n`);
    return usage(io.err);
  }
  try {
    return await runCommand(parsed.values, parsed.positionals, io);
  } catch (err) {
    if (!(err instanceof CliFailure)) throw err;
    io.err.write(`${err.message}\n`);
    return 1;
  }
}

async function runCommand(
  values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"],
  positionals: string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream; stdin: NodeJS.ReadableStream },
): Promise<number> {
  const [group, command, file, ...moreFiles] = positionals;
  if (group === "key" && command === "create") {
    if (!values.id || !values.team) return usage(io.err);
    // 32 random bytes: 256 bits, far beyond guessing; the prefix makes leaked keys easy to scan for.
    const key = `sk-gw-${randomBytes(32).toString("base64url")}`;
    io.out.write(
      `API key (shown once, store it now): ${key}\n\nPolicy entry (paste under keys:):\n` +
        `  - id: ${values.id}\n    team: ${values.team}\n    sha256: ${sha256Hex(key)}\n`,
    );
    return 0;
  }
  if (group === "key" && (command === "revoke" || command === "reinstate")) {
    if (!values.id || !values.redis) return usage(io.err);
    const { Redis } = await import("ioredis");
    // One attempt, no reconnect loop: an operator wants an answer, not a retry storm.
    const client = new Redis(values.redis, {
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    let connectError: Error | undefined;
    client.on("error", (err: Error) => (connectError ??= err));
    try {
      await client.connect().catch((err: Error) => {
        throw new CliFailure(
          `key ${command}: cannot reach ${values.redis}: ${(connectError ?? err).message}`,
        );
      });
      const { set, channel } = revocationKeys(values.prefix!);
      if (command === "revoke") await client.sadd(set, values.id);
      else await client.srem(set, values.id);
      const replicas = await client.publish(channel, `${command === "revoke" ? "+" : "-"}${values.id}`);
      io.out.write(
        `${values.id} ${command === "revoke" ? "revoked" : "reinstated"}; ${replicas} replica(s) notified\n`,
      );
      return 0;
    } finally {
      client.disconnect();
    }
  }
  if (group === "key" && command === "hash") {
    const chunks: Buffer[] = [];
    for await (const chunk of io.stdin) chunks.push(chunk as Buffer);
    const key = Buffer.concat(chunks).toString("utf8").trim();
    if (!key) {
      io.err.write("no key on stdin\n");
      return 2;
    }
    io.out.write(`${sha256Hex(key)}\n`);
    return 0;
  }
  if (group === "policy" && command === "validate" && file) {
    try {
      const policy = loadPolicy(file, { envoyConfigFile: values["envoy-config"] });
      io.out.write(
        `${file}: OK (${policy.pools.size} pools, ${policy.models.size} models, ${policy.aliases.size} aliases, ` +
          `${policy.keysBySha256.size} keys)\n`,
      );
      return 0;
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      io.err.write(`${err.message}\n`);
      return 1;
    }
  }
  if (group === "policy" && command === "diff" && file && moreFiles[0]) {
    try {
      const lines = diffPolicies(loadPolicy(file), loadPolicy(moreFiles[0]));
      io.out.write(lines.length ? `${lines.join("\n")}\n` : "no changes\n");
      return 0;
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      io.err.write(`${err.message}\n`);
      return 1;
    }
  }
  if (group === "audit" && command === "verify" && file) {
    for (const f of [file, ...moreFiles]) assertReadable("audit verify", f);
    const anchors: ChainHead[] = [];
    for (const anchor of values.anchor!) {
      const match = /^(\d+):([0-9a-f]{64})$/.exec(anchor);
      if (!match) {
        io.err.write(`--anchor ${anchor}: expected SEQ:HASH (from an "audit checkpoint" log line)\n`);
        return 2;
      }
      anchors.push({ seq: Number(match[1]), hash: match[2]! });
    }
    // Streamed: a month of records is more than one string can hold.
    const verifier = new ChainVerifier(anchors);
    for (const f of [file, ...moreFiles]) await forEachLine(f, (line) => void verifier.check(line));
    const verdict = verifier.end();
    if (verdict.ok) {
      const anchored =
        anchors.length > 0 ? `, ${verdict.anchorsChecked} of ${anchors.length} anchors matched` : "";
      const torn =
        verdict.tornLines.length > 0
          ? `; line(s) ${verdict.tornLines.join(", ")} cut short by a crash, the chain resumes after them`
          : "";
      io.out.write(
        `OK: ${verdict.records} records, hash chain intact${anchored}${torn} (last hash ${verdict.lastHash})\n`,
      );
      return 0;
    }
    io.err.write(
      `BROKEN at line ${verdict.line} (after ${verdict.records} good records): ${verdict.problem}\n`,
    );
    return 1;
  }
  if (group === "report" && command) {
    return report(values, [command, ...(file ? [file] : []), ...moreFiles], io);
  }
  return usage(io.err);
}

/**
 * `report`: the report on stdout, and for csv, json and html the chain check's verdict on stderr too (where
 * a terminal shows it). Exit 1 when the chain is broken: the report is still printed.
 */
async function report(
  values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"],
  files: string[],
  io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream },
): Promise<number> {
  let options;
  try {
    const from = values.from === undefined ? undefined : parseInstant(values.from, "--from");
    const to = values.to === undefined ? undefined : parseInstant(values.to, "--to");
    if (from !== undefined && to !== undefined && from >= to)
      throw new ReportUsageError(`--from ${values.from} is not before --to ${values.to}`);
    if (!Object.hasOwn(FORMATS, values.format!))
      throw new ReportUsageError(`--format ${values.format}: expected ${Object.keys(FORMATS).join(", ")}`);
    const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
    if (jobs !== undefined && !(Number.isInteger(jobs) && jobs >= 1 && jobs <= 256))
      throw new ReportUsageError(`--jobs ${values.jobs}: expected a whole number from 1 to 256`);
    options = { from, to, by: parseDimensions(values.by!), format: values.format as Format, jobs };
  } catch (err) {
    if (!(err instanceof ReportUsageError)) throw err;
    io.err.write(`report: ${err.message}\n`);
    return 2;
  }
  for (const f of files) assertReadable("report", f);
  let built;
  try {
    built = await buildReport(files, {
      from: options.from,
      to: options.to,
      by: options.by,
      jobs: options.jobs,
    });
  } catch (err) {
    if (err instanceof MixedCurrencyError) throw new CliFailure(`report: ${err.message}`);
    throw err;
  }
  io.out.write(FORMATS[options.format](built));
  // The table starts with this line already.
  if (options.format !== "table") io.err.write(`${integrityLine(built)}\n`);
  return built.integrity.broken ? 1 : 0;
}

/** Throws a one-line {@link CliFailure} unless `file` is a readable regular file. */
function assertReadable(command: string, file: string): void {
  try {
    accessSync(file, constants.R_OK);
    if (statSync(file).isDirectory()) throw Object.assign(new Error(), { code: "EISDIR" });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES"
          ? "permission denied"
          : code === "EISDIR"
            ? "is a directory"
            : (err as Error).message;
    throw new CliFailure(`${command}: cannot read ${file}: ${why}`);
  }
}

function usage(err: NodeJS.WritableStream): number {
  err.write(`${USAGE}\n`);
  return 2;
}

// Run when executed directly (also through an npm bin symlink), not when imported by tests.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await runCli(process.argv.slice(2)).catch((err: unknown) => {
    // Anything unforeseen (e.g. Redis unreachable for key revoke) is still one line, not a stack trace.
    process.stderr.write(`llm-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  });
}
