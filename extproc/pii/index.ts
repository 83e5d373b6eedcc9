import { createHmac } from "node:crypto";
import { scopeMatches, type Scope, type ScopeSubject } from "../scope/index.js";
import type { Finding } from "./detectors.js";
import type { Scanner } from "./scanner.js";

export { Scanner, wordListRegex, type CustomDetectorSpec, type ScannerSpec } from "./scanner.js";
export { BUILTIN_ENTITIES, type Finding } from "./detectors.js";
export { injectionScore, INJECTION_RULES } from "./injection.js";

/** What happens to a found value. `off`: not looked for. */
export type PiiAction = "redact" | "mask" | "hash" | "block" | "log" | "off";

/** PII settings compiled from policy. */
export interface PiiConfig {
  readonly scanner: Scanner;
  readonly hmacKey: Buffer | undefined;
  readonly holdBackChars: number;
  readonly rules: ReadonlyArray<{
    readonly scope: Scope;
    readonly actions: Readonly<Record<string, PiiAction>>;
    readonly restore?: boolean | undefined;
    readonly responses?: boolean | undefined;
  }>;
}

/** The PII handling that applies to one request. */
export interface ResolvedPii {
  readonly actions: ReadonlyMap<string, Exclude<PiiAction, "off">>;
  readonly enabled: ReadonlySet<string>;
  readonly restore: boolean;
  readonly responses: boolean;
}

/** Merges the matching rules in order (later ones override per entity); undefined if nothing is looked for. */
export function resolvePii(
  config: PiiConfig | undefined,
  identity: ScopeSubject,
  model: string,
): ResolvedPii | undefined {
  if (!config) return undefined;
  const actions = new Map<string, Exclude<PiiAction, "off">>();
  let restore = false;
  let responses = false;
  for (const rule of config.rules) {
    if (!scopeMatches(rule.scope, identity, model)) continue;
    for (const [entity, action] of Object.entries(rule.actions)) {
      if (action === "off") actions.delete(entity);
      else actions.set(entity, action);
    }
    restore = rule.restore ?? restore;
    responses = rule.responses ?? responses;
  }
  if (actions.size === 0) return undefined;
  return { actions, enabled: new Set(actions.keys()), restore, responses };
}

/** Entity → {count, action} for one direction, as the audit record shows it. */
export type DetectionSummary = Record<string, { count: number; action: string }>;

const PLACEHOLDER = /<([A-Z][A-Z0-9_]*?)_(\d+|[0-9a-f]{16})>/g;

/**
 * One request's PII handling: consistent placeholders (the same value gets the same placeholder within the
 * request), the restore map (kept only in this object, never stored), counts for audit and metrics.
 */
export class PiiSession {
  readonly request: DetectionSummary = {};
  readonly response: DetectionSummary = {};
  /** Entity types found in the request whose action is block. */
  readonly blocked = new Set<string>();
  private readonly placeholders = new Map<string, string>();
  private readonly originals = new Map<string, string>();
  private readonly counters = new Map<string, number>();

  constructor(
    private readonly config: PiiConfig,
    readonly resolved: ResolvedPii,
  ) {}

  /** Redacts one request text; blocked entities are recorded in {@link blocked} (the caller refuses). */
  redactRequest(text: string): string {
    return this.apply(text, this.config.scanner.scan(text, this.resolved.enabled), "request");
  }

  /** Model output as the client gets it: redacted if responses are scanned, placeholders restored if asked. */
  processResponse(text: string): string {
    const redacted = this.apply(text, this.scanResponse(text), "response");
    return this.resolved.restore ? this.restore(redacted) : redacted;
  }

  /**
   * Findings in model output (none when policy does not scan responses). Placeholders this request made
   * are not findings (a hash pseudonym looks like a high-entropy token): they are restored, not redacted.
   */
  scanResponse(text: string): Finding[] {
    if (!this.resolved.responses) return [];
    const findings = this.config.scanner.scan(text, this.resolved.enabled);
    if (this.originals.size === 0 || findings.length === 0) return findings;
    const own: Array<[number, number]> = [];
    for (const m of text.matchAll(PLACEHOLDER))
      if (this.originals.has(m[0])) own.push([m.index, m.index + m[0].length]);
    return findings.filter((f) => !own.some(([start, end]) => f.start < end && f.end > start));
  }

  /** Replaces placeholders this request produced with the original values. */
  restore(text: string): string {
    if (this.originals.size === 0 || !text.includes("<")) return text;
    return text.replace(PLACEHOLDER, (placeholder) => this.originals.get(placeholder) ?? placeholder);
  }

  /**
   * The inverse of {@link restore}: the original values this request's placeholders stand for become those
   * placeholders again, so output as the client got it can be kept (audited) as redacted as the request.
   */
  unrestore(text: string): string {
    if (this.originals.size === 0) return text;
    const placeholderOf = new Map<string, string>();
    for (const [placeholder, value] of this.originals)
      if (!placeholderOf.has(value)) placeholderOf.set(value, placeholder);
    // One pass, longest value first, so a value that contains another is replaced whole.
    const values = [...placeholderOf.keys()].sort((a, b) => b.length - a.length);
    const pattern = new RegExp(values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
    return text.replace(pattern, (value) => placeholderOf.get(value)!);
  }

  /** Applies the actions to already-computed findings (streaming reuses the scan it made for its cut). */
  apply(text: string, findings: readonly Finding[], direction: "request" | "response"): string {
    if (findings.length === 0) return text;
    const summary = direction === "request" ? this.request : this.response;
    let out = "";
    let last = 0;
    for (const f of findings) {
      const action = this.resolved.actions.get(f.entity)!;
      // Output cannot be refused after the fact: blocked entities in responses are redacted instead.
      const effective = action === "block" && direction === "response" ? "redact" : action;
      const entry = (summary[f.entity] ??= { count: 0, action: effective });
      entry.count++;
      if (effective === "block") this.blocked.add(f.entity);
      out += text.slice(last, f.start) + this.replacement(f, effective, direction);
      last = f.end;
    }
    return out + text.slice(last);
  }

  /**
   * Only placeholders made for the request are restorable: a value the model produced on its own and that
   * was redacted on the way out must stay redacted. Placeholders, pseudonyms and masks use the normalized
   * value: `a\u200B@b.com` and `a@b.com` are one address with one placeholder (restored to the original
   * characters first seen), and a mask keeps no invisible character of the original.
   */
  private replacement(
    f: Finding,
    action: Exclude<PiiAction, "off">,
    direction: "request" | "response",
  ): string {
    switch (action) {
      case "redact": {
        const key = `${f.entity}\u0000${f.normalized}`;
        let placeholder = this.placeholders.get(key);
        if (!placeholder) {
          const n = (this.counters.get(f.entity) ?? 0) + 1;
          this.counters.set(f.entity, n);
          placeholder = `<${f.entity}_${n}>`;
          this.placeholders.set(key, placeholder);
          if (direction === "request") this.originals.set(placeholder, f.value);
        }
        return placeholder;
      }
      case "hash": {
        const digest = createHmac("sha256", this.config.hmacKey!)
          .update(`${f.entity}:${f.normalized}`)
          .digest("hex");
        const placeholder = `<${f.entity}_${digest.slice(0, 16)}>`;
        if (direction === "request") this.originals.set(placeholder, f.value);
        return placeholder;
      }
      case "mask":
        return mask(f.normalized);
      default:
        return f.value; // log and block leave the text as is (a blocked request never leaves)
    }
  }
}

/** Keeps the last 4 letters/digits and separators; every other letter or digit becomes `*`. */
export function mask(value: string): string {
  let keep = 4;
  const chars = [...value];
  for (let i = chars.length - 1; i >= 0; i--) {
    if (!/[\p{L}\p{N}]/u.test(chars[i]!)) continue;
    if (keep > 0) keep--;
    else chars[i] = "*";
  }
  return chars.join("");
}
