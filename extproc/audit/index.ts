import { hash } from "node:crypto";
import {
  closeSync,
  createReadStream,
  fstatSync,
  fsync,
  mkdirSync,
  openSync,
  readSync,
  statSync,
} from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import pino from "pino";
import type { ErrorCode } from "../errors/index.js";
import type { Usage } from "../openai/usage.js";
import type { DetectionSummary } from "../pii/index.js";

/**
 * Where a record's `usage` comes from: `server`, the model server reported it; `counted`, the gateway
 * counted it (prompt as estimated at admission, completion from the text streamed until the exchange ended:
 * a cut stream, a server that sends no usage); `reserved`, counting failed and the reservation was charged.
 * In every case it is what the quota was charged.
 */
export type UsageSource = "server" | "counted" | "reserved";

/**
 * How an exchange ended, when not by a gateway refusal (whose reason is its error code): `ok`; the model
 * server answered with an error status (`upstream_error`) or with JSON that does not parse
 * (`upstream_invalid_json`); the ext_proc stream ended before the response headers
 * (`closed_before_response`) or before the end of the response (`closed_during_response`); extproc failed
 * (`internal_error`); an answer extproc rewrites grew past 8 MiB and was cut (`answer_too_large`); Envoy
 * answered itself before forwarding (`envoy_local_reply`).
 */
export type LifecycleReason =
  | "ok"
  | "upstream_error"
  | "upstream_invalid_json"
  | "closed_before_response"
  | "closed_during_response"
  | "internal_error"
  | "answer_too_large"
  | "envoy_local_reply";

/** An audit record's `reason`: the refusal's error code, or how the exchange ended. */
export type AuditReason = ErrorCode | LifecycleReason;

/** One audit record: who sent what to which model, when, and what the gateway decided. Never the key. */
export interface AuditRecord {
  request_id: string;
  key_id: string | null;
  team: string | null;
  /** Environment the request arrived in (policy `environments`), if any. */
  environment: string | null;
  api: string | null;
  method: string;
  path: string;
  requested_model: string | null;
  served_model: string | null;
  /** The pool that answered (a fallback pool when the model's own pool had no healthy host). */
  pool: string | null;
  /** The model's own pool, when a fallback pool answered instead. */
  fallback_from?: string;
  /** The endpoint (`ip:port`) the scheduler chose, for a pool with scheduling that had a known state. */
  endpoint?: string;
  /** The priority class, for a request to a pool with a queue. */
  class?: string;
  /** Milliseconds it waited for a slot of that pool (0: admitted at once); absent when it got none. */
  queued_ms?: number;
  status: number | null;
  decision: "allow" | "deny";
  /**
   * Error code for denials, `ok`, or what cut the exchange short (see {@link LifecycleReason};
   * docs/audit.md lists them all).
   */
  reason: AuditReason;
  stream: boolean;
  /** What the request was charged; null when nothing was (refused, upstream error, no limit applied). */
  usage: Usage | null;
  /** Present when `usage` is. */
  usage_source?: UsageSource;
  /**
   * What `usage` cost at the prices of the policy the request ran under (what a budget was charged); present
   * when `usage` is and the served model has a price. Records written before it existed lack it.
   */
  cost?: AuditCost;
  latency_ms: {
    /** First header seen → last byte of the response processed. */
    total: number;
    /** Time spent inside extproc, summed over all phases. */
    gateway: number;
    /** Request forwarded → response headers received (time to first byte for streams). */
    upstream: number | null;
  };
  policy_digest: string;
  /** Entity types found and the action taken, per direction; never the values. */
  pii?: { request: DetectionSummary; response: DetectionSummary };
  guardrails?: {
    denied: Record<string, string>;
    injection?: { score: number; rules: string[]; action: string };
  };
  /** Only when the policy sets `audit.logPrompts`. */
  request_body?: unknown;
  completion?: string;
}

/** A request's cost: whole millionths of `currency` (rounded up per request, as budgets count it). */
export interface AuditCost {
  readonly micros: number;
  /** The policy's `pricing.currency`. */
  readonly currency: string;
}

/** Where audit records go: a JSON line per request. */
export interface AuditSink {
  /** Resolves once the destination is open (rejects if it cannot be): await it before serving. */
  ready(): Promise<void>;
  /**
   * Queues a record. A promise is a record still being completed (its usage counted on a worker): it is
   * written when it resolves, and must not reject.
   */
  write(record: AuditRecord | Promise<AuditRecord>): void;
  /** Writes out and fsyncs everything written so far, records still being completed included; awaited on shutdown. */
  flush(): Promise<void>;
  /**
   * How far the durable point trails, in seconds: 0 when every record written is fsynced; otherwise the time
   * since the last fsync that succeeded began (no record written before it is waiting, so this is at least
   * the age of the oldest record a crash would lose). It grows while the disk stalls or fsync fails.
   */
  durabilityLagSeconds(): number;
  /** Reopens the file (after log rotation moved it away); the hash chain continues in the new file. */
  reopen(): void;
  /** Stops the fsync timer and closes the file once everything queued is written (call after flush). */
  close(): void;
}

/** Options for {@link createAuditSink}. */
export interface AuditSinkOptions {
  /** A file path, or `stdout`. */
  readonly destination: string;
  /** Also write every line to stdout (for a log shipper) when the destination is a file. */
  readonly alsoStdout?: boolean;
  /** How often buffered lines are written and fsynced (ms); 0 fsyncs nothing beyond flush on shutdown. */
  readonly fsyncIntervalMs?: number;
  /**
   * Called after a flush has made newer records durable, with the newest one's `seq` and line hash: publish
   * it off the host (metrics, logs) and `audit verify --anchor` can later tell a cut or rewritten tail.
   */
  readonly onDurable?: (head: ChainHead) => void;
  /** Told when the file's last line is not a record (see {@link ChainTail.damaged}): log it. */
  readonly onDamagedTail?: (tail: ChainTail) => void;
  /** Wall clock in epoch ms for each record's `time` (the service's clock, which quota windows use too). */
  readonly now?: () => number;
}

/** The newest record of a chain: its sequence number and the SHA-256 of its line. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/** `prev` of the first record of a new chain: SHA-256 of the empty string. */
export const GENESIS = hash("sha256", "", "hex");

/** SHA-256 hex of one audit line (its exact UTF-8 bytes, without the newline); one-shot, no Hash object. */
export const lineHash = (line: string): string => hash("sha256", line, "hex");

/** Where an existing audit file's chain ends (see {@link chainTail}). */
export interface ChainTail {
  /** `seq` of the last record (0: a new chain). */
  readonly seq: number;
  /** Hash of the file's last line, which the next record chains to. */
  readonly prev: string;
  /**
   * The last line is not a chained record (a write torn by a crash or power loss, or an edit). The chain goes
   * on after it, so `audit verify` reports exactly that line; refusing to start would stop all traffic.
   */
  readonly damaged: boolean;
  /** The file does not end with a newline: the next record must start on a line of its own. */
  readonly unterminated: boolean;
}

/**
 * Where an existing audit file's chain ends: the last record's sequence number and the last line's hash.
 * Reads only the file's tail, so start-up stays fast however large the log is.
 */
export function chainTail(file: string): ChainTail {
  const fresh: ChainTail = { seq: 0, prev: GENESIS, damaged: false, unterminated: false };
  let fd: number;
  try {
    // Only a regular file has a tail to continue (opening a FIFO to read would block).
    if (!statSync(file).isFile()) return fresh;
    fd = openSync(file, "r");
  } catch {
    return fresh;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 1 << 20);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString("utf8");
    const lines = text.split("\n").filter(Boolean);
    const last = lines.at(-1);
    if (!last) return fresh;
    const unterminated = !text.endsWith("\n");
    // The newest record's seq: the last line's, or (if that one is damaged) the last readable one's.
    for (const line of lines.reverse()) {
      const record = chainedRecord(line);
      if (typeof record !== "string")
        return { seq: record.seq, prev: lineHash(last), damaged: line !== last, unterminated };
    }
    return { seq: 0, prev: lineHash(last), damaged: true, unterminated };
  } finally {
    closeSync(fd);
  }
}

/** An audit record as stored: with its place in the chain and the time it was written. */
export type StoredAuditRecord = AuditRecord & {
  readonly seq: number;
  readonly prev: string;
  /** ISO 8601, UTC. */
  readonly time: string;
  readonly kind: string;
};

/**
 * The records of one audit file, read line by line (the file may be large; it is never held whole).
 * `keep` sees each raw line first and can skip it without the cost of parsing; lines that are not records
 * (a torn write) are skipped. A missing file has no records.
 */
export async function* readAuditRecords(
  file: string,
  keep: (line: string) => boolean = () => true,
): AsyncGenerator<StoredAuditRecord> {
  try {
    if (!statSync(file).isFile()) return;
  } catch {
    return;
  }
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!keep(line)) continue;
    let record: Partial<StoredAuditRecord> | null;
    try {
      record = JSON.parse(line) as Partial<StoredAuditRecord> | null;
    } catch {
      continue;
    }
    if (typeof record?.seq === "number" && typeof record.time === "string") yield record as StoredAuditRecord;
  }
}

/**
 * Audit sink writing one JSON line per record, hash-chained: each record carries `seq` and `prev`, the
 * SHA-256 of the previous line, so an edited, removed or reordered record is detected by
 * `llm-gateway audit verify`. A restarted extproc continues the chain of the file it appends to; each replica
 * writes its own file.
 *
 * Durability: lines go through pino's destination stream (SonicBoom), in order: handed over once per turn of
 * the event loop, buffered in memory (never dropped, even when the disk is slow), written in 4 KiB batches,
 * and written + fsynced every `fsyncIntervalMs` (default 1 s) and on shutdown. A crash can lose at most that interval; SIGTERM loses
 * nothing. Serialization is plain JSON.stringify: pino's logger layer cost a quarter of extproc's CPU per
 * request in profiles.
 */
export function createAuditSink(options: AuditSinkOptions): AuditSink {
  const toStdout = options.destination === "stdout";
  if (!toStdout) assertWritable(options.destination);
  // Read before the stream exists: a throw here must not leave a half-open stream behind.
  const tail = toStdout ? undefined : chainTail(options.destination);
  if (tail?.damaged) options.onDamagedTail?.(tail);
  let { seq, prev } = tail ?? { seq: 0, prev: GENESIS };
  let separator = tail?.unterminated ? "\n" : "";
  const stream = pino.destination({
    dest: toStdout ? 1 : options.destination,
    mkdir: true,
    sync: false,
    // Batching (minLength > 0) is also what makes flush(cb) wait for writes already under way.
    minLength: toStdout ? 0 : 4096,
  });
  const copy = options.alsoStdout && !toStdout ? pino.destination({ dest: 1, sync: false }) : undefined;
  const fsyncIntervalMs = options.fsyncIntervalMs ?? 1000;
  // SonicBoom keeps its file descriptor in `fd` (absent from its type declarations).
  const fd = () => (stream as unknown as { fd: number }).fd;
  let durableSeq = seq;
  // Monotonic (performance.now) start of the newest fsync that succeeded: what was written before it is on disk.
  let durableFrom = performance.now();
  // What the file already holds is published at once, so the durable seq never reads 0 after a restart.
  if (seq > 0 && !tail?.damaged) options.onDurable?.({ seq, hash: prev });
  // Lines chained in this turn of the event loop, handed to the stream as one piece at its end: the stream
  // re-measures its whole pending batch on every write, which cost more than the lines themselves.
  let pending: string[] = [];
  const writePending = (): void => {
    if (pending.length === 0) return;
    const text = `${pending.join("\n")}\n`;
    pending = [];
    stream.write(separator + text);
    separator = "";
    copy?.write(text);
  };
  const flush = (): Promise<void> =>
    new Promise((resolve) => {
      writePending();
      if (toStdout) return resolve();
      // Everything written before this call is in this flush.
      const head = { seq, hash: prev };
      const startedAt = performance.now();
      stream.flush((err) => {
        if (err || fd() < 0) return resolve();
        // On the thread pool: a slow disk must not stall requests on the event loop.
        fsync(fd(), (syncErr) => {
          if (!syncErr) durableFrom = Math.max(durableFrom, startedAt);
          if (!syncErr && head.seq > durableSeq) {
            durableSeq = head.seq;
            options.onDurable?.(head);
          }
          resolve();
        });
      });
    });
  const timer = fsyncIntervalMs > 0 ? setInterval(() => void flush(), fsyncIntervalMs) : undefined;
  timer?.unref();
  const now = options.now ?? Date.now;
  const append = (record: AuditRecord): void => {
    const line = JSON.stringify({
      seq: ++seq,
      prev,
      time: new Date(now()).toISOString(),
      kind: "llm_request",
      ...record,
    });
    prev = lineHash(line);
    if (pending.push(line) === 1) setImmediate(writePending);
  };
  // Records still being completed; a shutdown flush waits for them (the periodic one does not).
  const completing = new Set<Promise<void>>();
  return {
    ready: () =>
      new Promise((resolve, reject) => {
        if (toStdout || fd() >= 0) return resolve();
        // Both listeners go once either fires: a later write error must reach the stream's own handling.
        const opened = () => {
          stream.off("error", failed);
          resolve();
        };
        const failed = (err: Error) => {
          stream.off("ready", opened);
          reject(err);
        };
        stream.once("ready", opened);
        stream.once("error", failed);
      }),
    write: (record) => {
      if (!(record instanceof Promise)) return append(record);
      const written = record.then(append).finally(() => completing.delete(written));
      completing.add(written);
    },
    flush: async () => {
      await Promise.all(completing);
      await flush();
    },
    // stdout has no fsync: nothing is ever waiting for one.
    durabilityLagSeconds: () =>
      toStdout || seq <= durableSeq ? 0 : (performance.now() - durableFrom) / 1000,
    reopen: () => {
      writePending();
      if (!toStdout) stream.reopen(options.destination);
    },
    close: () => {
      clearInterval(timer);
      writePending();
      if (!toStdout) stream.end();
      copy?.end();
    },
  };
}

/**
 * Throws now, with the reason, if the audit file cannot be opened for appending. The stream opens it in the
 * background; one that never opens would make pino's exit hook throw over the real error. A destination
 * that is not a regular file (a FIFO opens only once it has a reader) is left to the stream.
 */
function assertWritable(file: string): void {
  try {
    if (!statSync(file).isFile()) return;
  } catch {
    mkdirSync(dirname(file), { recursive: true });
  }
  closeSync(openSync(file, "a"));
}

/** A chained audit line as parsed: its `seq` and `prev`, and the rest of the record. */
export type ChainedLine = { readonly seq: number; readonly prev: string } & Partial<StoredAuditRecord>;

/** A line's record (with `seq` and `prev`), or what is wrong with it. */
function chainedRecord(line: string): ChainedLine | string {
  let record: { seq?: unknown; prev?: unknown } | null;
  try {
    record = JSON.parse(line) as typeof record;
  } catch {
    return "not a JSON record (torn or edited line)";
  }
  if (typeof record?.seq !== "number" || typeof record.prev !== "string")
    return "record has no seq/prev (not a chained audit record)";
  return record as ChainedLine;
}

/** Outcome of {@link verifyAuditChain}. */
export type ChainVerdict =
  | {
      readonly ok: true;
      readonly records: number;
      readonly lastHash: string;
      /** How many of the anchors fell inside the records checked (older ones were rotated away). */
      readonly anchorsChecked: number;
      /** Lines a crash cut short, which extproc chained its next record to when it restarted. */
      readonly tornLines: readonly number[];
    }
  | ChainBreak;

/** Where and why a chain is broken; `line` counts every line checked, from 1. */
export type ChainBreak = {
  readonly ok: false;
  readonly records: number;
  readonly line: number;
  readonly problem: string;
};

/**
 * Checks a hash chain over the lines of one or more audit files, in order (rotated files oldest first).
 * Names the first record that was changed, removed, reordered or inserted. `anchors` are chain heads
 * published off the host when they were written ({@link AuditSinkOptions.onDurable}): a record that no longer
 * matches its anchor, or a file that ends before the newest anchor (its tail cut off), fails the check too,
 * which the chain alone cannot show. A line that is not a record is accepted only as a write torn by a crash:
 * when the next record chains to its exact bytes with the next seq (what a restarted extproc writes).
 */
export function verifyAuditChain(lines: Iterable<string>, anchors: readonly ChainHead[] = []): ChainVerdict {
  const verifier = new ChainVerifier(anchors);
  for (const line of lines) {
    verifier.check(line);
    if (verifier.failure) break;
  }
  return verifier.end();
}

/**
 * What a {@link ChainVerifier} made with `midChain` found in a range of lines that starts inside a chain (a
 * byte range of an audit file checked on a worker thread). Its first record's link to the lines before it
 * cannot be checked there: the verifier of those lines {@link ChainVerifier.absorb absorbs} the range, checking
 * the head and taking on the state after it. Plain data, so a worker can post it.
 */
export interface ChainRange {
  /** Lines in the range (empty ones included). */
  readonly lines: number;
  /**
   * The lines whose check needs the chain before the range, with their line numbers in it: the non-record
   * lines before the first record (at most two: a second one breaks the chain whatever came before) and that
   * first record.
   */
  readonly head: readonly { readonly line: number; readonly text: string }[];
  /** Whether the head ends with a record, so the state below follows on from it. */
  readonly started: boolean;
  /** Records verified after the head. */
  readonly records: number;
  readonly prev: string | undefined;
  readonly seq: number | undefined;
  readonly anchorsChecked: number;
  readonly tornLines: readonly number[];
  readonly torn: { readonly line: number; readonly hash: string; readonly problem: string } | undefined;
  readonly broken: ChainBreak | undefined;
}

/** Options for {@link ChainVerifier}. */
export interface ChainVerifierOptions {
  /** The lines start inside a chain: collect its head instead of checking it (see {@link ChainRange}). */
  readonly midChain?: boolean;
}

/**
 * {@link verifyAuditChain} one line at a time, for readers that stream files and read the records too: each
 * line is parsed once, here, and its record handed back. After the first break the chain is no longer
 * checked (lines are still parsed), so a reader can go on while reporting the break. Ranges of one chain can
 * be checked apart (`midChain`) and joined in order with {@link absorb}, with the same verdict as one pass.
 */
export class ChainVerifier {
  private readonly anchorHash: Map<number, string>;
  private readonly newestAnchor: number;
  private anchorsChecked = 0;
  private prev: string | undefined;
  private seq: number | undefined;
  private records = 0;
  private lineNo = 0;
  private readonly tornLines: number[] = [];
  private torn: { line: number; hash: string; problem: string } | undefined;
  private broken: ChainBreak | undefined;
  /** midChain: the head collected so far, until it ends (undefined after). */
  private head: { line: number; text: string }[] | undefined;
  private readonly headLines: { line: number; text: string }[] = [];
  private started = false;

  constructor(anchors: readonly ChainHead[] = [], options: ChainVerifierOptions = {}) {
    this.anchorHash = new Map(anchors.map((a) => [a.seq, a.hash]));
    this.newestAnchor = Math.max(0, ...anchors.map((a) => a.seq));
    if (options.midChain) this.head = this.headLines;
  }

  /** The first break found so far (a torn line is not one until the line after it is seen). */
  get failure(): ChainBreak | undefined {
    return this.broken;
  }

  /** Lines checked so far (the `line` of a break counts the same way). */
  get lines(): number {
    return this.lineNo;
  }

  /**
   * Checks the next line; returns its record, or undefined for an empty line or one that is not a record.
   * `bytes`, when given, are the line's exact UTF-8 bytes (valid UTF-8, the same text): hashed instead of
   * encoding `line` again.
   */
  check(line: string, bytes?: Uint8Array): ChainedLine | undefined {
    this.lineNo++;
    if (line.length === 0) return undefined;
    const record = chainedRecord(line);
    if (this.head) this.collectHead(line, record, bytes);
    else if (!this.broken) this.broken = this.step(line, record, bytes);
    return typeof record === "string" ? undefined : record;
  }

  /** midChain: where the range ended up, for the verifier of the lines before it to {@link absorb}. */
  range(): ChainRange {
    const { lineNo: lines, headLines: head, started, records, prev, seq, anchorsChecked } = this;
    const { tornLines, torn, broken } = this;
    return { lines, head, started, records, prev, seq, anchorsChecked, tornLines, torn, broken };
  }

  /**
   * Continues this chain with a range checked apart ({@link range}), which starts right after the lines
   * checked here: its head is checked here, line by line, then its state taken on.
   */
  absorb(range: ChainRange): void {
    const offset = this.lineNo;
    for (const { line, text } of range.head) {
      this.lineNo = offset + line - 1;
      this.check(text);
    }
    this.lineNo = offset + range.lines;
    // Unless the head broke the chain, this verifier's prev and seq are now the range's starting point.
    if (this.broken || !range.started) return;
    if (range.broken) {
      this.broken = {
        ...range.broken,
        records: this.records + range.broken.records,
        line: offset + range.broken.line,
      };
      return;
    }
    this.records += range.records;
    this.prev = range.prev;
    this.seq = range.seq;
    this.anchorsChecked += range.anchorsChecked;
    for (const line of range.tornLines) this.tornLines.push(offset + line);
    this.torn = range.torn && { ...range.torn, line: offset + range.torn.line };
  }

  private collectHead(line: string, record: ChainedLine | string, bytes: Uint8Array | undefined): void {
    const head = this.head!;
    head.push({ line: this.lineNo, text: line });
    if (typeof record !== "string") {
      // The first record: checked where the range is absorbed; the chain goes on from it here.
      this.prev = bytes ? hash("sha256", bytes, "hex") : lineHash(line);
      this.seq = record.seq;
      this.started = true;
      this.head = undefined;
    } else if (head.length === 2) {
      // Two lines that are not records in a row: absorbing breaks the chain at or before them, so the
      // rest of the range decides nothing.
      this.head = undefined;
    }
  }

  /** The verdict once every line has been checked. */
  end(): ChainVerdict {
    const { records, seq } = this;
    if (this.broken) return this.broken;
    if (this.torn) return { ok: false, records, line: this.torn.line, problem: this.torn.problem };
    if (this.newestAnchor > (seq ?? 0)) {
      return {
        ok: false,
        records,
        line: this.lineNo,
        problem: `the chain ends at seq ${seq ?? 0} but seq ${this.newestAnchor} was anchored: records ${(seq ?? 0) + 1}–${this.newestAnchor} were cut off`,
      };
    }
    return {
      ok: true,
      records,
      lastHash: this.prev ?? GENESIS,
      anchorsChecked: this.anchorsChecked,
      tornLines: this.tornLines,
    };
  }

  private step(line: string, record: ChainedLine | string, bytes?: Uint8Array): ChainBreak | undefined {
    const { records, seq, torn } = this;
    if (torn) {
      // Only the record extproc writes after restarting on a torn tail makes a bad line acceptable.
      if (
        typeof record === "string" ||
        record.prev !== torn.hash ||
        (seq !== undefined && record.seq !== seq + 1)
      )
        return { ok: false, records, line: torn.line, problem: torn.problem };
      this.tornLines.push(torn.line);
      this.prev = torn.hash;
      this.torn = undefined;
    }
    if (typeof record === "string") {
      this.torn = { line: this.lineNo, hash: lineHash(line), problem: record };
      return undefined;
    }
    if (seq !== undefined && record.seq !== seq + 1) {
      return {
        ok: false,
        records,
        line: this.lineNo,
        problem: `record seq ${record.seq} follows seq ${seq}: ${record.seq > seq + 1 ? `records ${seq + 1}–${record.seq - 1} are missing` : "out of order"}`,
      };
    }
    if (this.prev !== undefined && record.prev !== this.prev) {
      return {
        ok: false,
        records,
        line: this.lineNo,
        problem: `record seq ${record.seq}: prev hash does not match the previous line (it was changed or removed)`,
      };
    }
    this.prev = bytes ? hash("sha256", bytes, "hex") : lineHash(line);
    this.seq = record.seq;
    this.records++;
    const anchored = this.anchorHash.get(record.seq);
    if (anchored !== undefined) {
      if (anchored !== this.prev)
        return {
          ok: false,
          records: this.records - 1,
          line: this.lineNo,
          problem: `record seq ${record.seq} is not the record anchored when it was written (its hash was ${anchored})`,
        };
      this.anchorsChecked++;
    }
    return undefined;
  }
}

/**
 * Calls `each` with every line of `file` (split at "\n" only, as the chain's lines are split; a last line without
 * one included), in 1 MiB reads. Synchronous per line: an async iterator costs a promise per line.
 */
export async function forEachLine(file: string, each: (line: string) => void): Promise<void> {
  let rest = "";
  // The stream's UTF-8 decoder keeps a character split across reads whole.
  for await (const chunk of createReadStream(file, { encoding: "utf8", highWaterMark: 1 << 20 })) {
    const text = rest + (chunk as string);
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      each(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
  }
  if (rest.length > 0) each(rest);
}
