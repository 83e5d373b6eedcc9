/**
 * Shapes of the ext_proc messages as protobufjs decodes them, and builders for the replies extproc sends.
 * Processors never touch protobuf shapes directly: they return a {@link PhaseReply} or {@link LocalReply}.
 */

/** Namespace of the dynamic metadata extproc emits (must be listed in the filter's `metadata_options`). */
export const METADATA_NAMESPACE = "llm_gateway";

interface WireHeaderMap {
  headers?: Array<{ key?: string; value?: string; rawValue?: Uint8Array }>;
}

/** `HttpHeaders` as decoded. */
export interface HttpHeadersMessage {
  headers?: WireHeaderMap;
  endOfStream?: boolean;
}

/** `HttpBody` as decoded. */
export interface HttpBodyMessage {
  body?: Uint8Array;
  endOfStream?: boolean;
}

/** `google.protobuf.Struct` as protobufjs decodes it. */
export interface StructMessage {
  fields?: Record<string, ValueMessage>;
}

/** `google.protobuf.Value` as protobufjs decodes it: `kind` names the field that is set. */
export interface ValueMessage {
  kind?: "nullValue" | "numberValue" | "stringValue" | "boolValue" | "structValue" | "listValue";
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructMessage;
  listValue?: { values?: ValueMessage[] };
}

/** Converts a decoded Struct to plain JSON values. */
export function structToJson(struct: StructMessage | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = valueToJson(value);
  return out;
}

function valueToJson(value: ValueMessage): unknown {
  switch (value.kind) {
    case "structValue":
      return structToJson(value.structValue);
    case "listValue":
      return (value.listValue?.values ?? []).map(valueToJson);
    case "stringValue":
      return value.stringValue;
    case "numberValue":
      return value.numberValue;
    case "boolValue":
      return value.boolValue;
    default:
      return null;
  }
}

/** `ProcessingRequest` as decoded: exactly one of the phase fields is set. */
export interface ProcessingRequestMessage {
  /** Dynamic metadata Envoy forwards (namespaces listed in the filter's metadata_options). */
  metadataContext?: { filterMetadata?: Record<string, StructMessage> };
  requestHeaders?: HttpHeadersMessage;
  responseHeaders?: HttpHeadersMessage;
  requestBody?: HttpBodyMessage;
  responseBody?: HttpBodyMessage;
  requestTrailers?: unknown;
  responseTrailers?: unknown;
  observabilityMode?: boolean;
}

/** The phase a ProcessingRequest belongs to; the reply must use the same field. */
export type Phase =
  | "requestHeaders"
  | "responseHeaders"
  | "requestBody"
  | "responseBody"
  | "requestTrailers"
  | "responseTrailers";

/**
 * How an endpoint wants an answer's body (Envoy streams every body to extproc; the exchange holds one read
 * whole): NONE, not at all; STREAMED, chunk by chunk; BUFFERED, whole.
 */
export const BodySendMode = { NONE: 0, STREAMED: 1, BUFFERED: 2 } as const;

/** Scalar dynamic-metadata values (strings, numbers, booleans; null leaves a field out). */
export type MetadataValues = Record<string, string | number | boolean | null | undefined>;

/** What a processor asks Envoy to do with the message it was shown. Everything is optional: {} continues. */
export interface PhaseReply {
  /** Headers to add or overwrite (headers phases, or body phases in BUFFERED mode). */
  readonly setHeaders?: ReadonlyArray<readonly [string, string]>;
  readonly removeHeaders?: readonly string[];
  /** Replacement for the body (BUFFERED) or for this chunk (STREAMED); an empty buffer clears it. */
  readonly body?: Buffer;
  /** Recompute the route after our header changes (request path only). */
  readonly clearRouteCache?: boolean;
  /** How the endpoint wants the answer's body (response headers phase only). */
  readonly responseBodyMode?: (typeof BodySendMode)[keyof typeof BodySendMode];
  /** Dynamic metadata for Envoy's access log, under {@link METADATA_NAMESPACE}. */
  readonly metadata?: MetadataValues;
}

/** A response extproc generates itself instead of forwarding (rejections, /v1/models). */
export interface LocalReply {
  readonly status: number;
  readonly body: string;
  readonly contentType: string;
  /** Short reason for Envoy's %RESPONSE_CODE_DETAILS% (no spaces). */
  readonly details: string;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly metadata?: MetadataValues;
}

const OVERWRITE_IF_EXISTS_OR_ADD = 2;

function headerMutation(set: ReadonlyArray<readonly [string, string]> = [], remove: readonly string[] = []) {
  return {
    setHeaders: set.map(([key, value]) => ({
      header: { key, rawValue: Buffer.from(value, "latin1") },
      appendAction: OVERWRITE_IF_EXISTS_OR_ADD,
    })),
    removeHeaders: remove,
  };
}

function toStruct(values: MetadataValues) {
  const fields: Record<string, object> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value == null) continue;
    if (typeof value === "string") fields[key] = { stringValue: value };
    else if (typeof value === "number") fields[key] = { numberValue: value };
    else fields[key] = { boolValue: value };
  }
  return { fields: { [METADATA_NAMESPACE]: { structValue: { fields } } } };
}

/** Builds the ProcessingResponse answering `phase` with `reply`. */
export function encodePhaseReply(phase: Phase, reply: PhaseReply): object {
  if (phase === "requestTrailers" || phase === "responseTrailers") return { [phase]: {} };
  const common: Record<string, unknown> = {};
  if (reply.setHeaders || reply.removeHeaders)
    common.headerMutation = headerMutation(reply.setHeaders, reply.removeHeaders);
  if (reply.body) common.bodyMutation = reply.body.length > 0 ? { body: reply.body } : { clearBody: true };
  if (reply.clearRouteCache) common.clearRouteCache = true;
  const out: Record<string, unknown> = { [phase]: { response: common } };
  if (reply.metadata) out.dynamicMetadata = toStruct(reply.metadata);
  return out;
}

/** Builds the ProcessingResponse that makes Envoy answer the client with `reply`. */
export function encodeLocalReply(reply: LocalReply): object {
  const out: Record<string, unknown> = {
    immediateResponse: {
      status: { code: reply.status },
      headers: headerMutation([["content-type", reply.contentType], ...(reply.headers ?? [])]),
      body: Buffer.from(reply.body, "utf8"),
      details: reply.details,
    },
  };
  if (reply.metadata) out.dynamicMetadata = toStruct(reply.metadata);
  return out;
}
