import protobuf from "protobufjs";

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

/*
 * Wire tags ((field number << 3) | wire type; 2 = length-delimited, 0 = varint, 1 = 64-bit) of the reply
 * fields encodePhaseReply writes, from proto/envoy/service/ext_proc/v3/external_processor.proto,
 * config/core/v3/base.proto and google/protobuf/struct.proto.
 */
const PHASE_TAG: Record<Phase, number> = {
  requestHeaders: (1 << 3) | 2,
  responseHeaders: (2 << 3) | 2,
  requestBody: (3 << 3) | 2,
  responseBody: (4 << 3) | 2,
  requestTrailers: (5 << 3) | 2,
  responseTrailers: (6 << 3) | 2,
};
const TAG = {
  /** ProcessingResponse.dynamic_metadata; HeadersResponse/BodyResponse.response (1). */
  dynamicMetadata: (8 << 3) | 2,
  response: (1 << 3) | 2,
  /** CommonResponse */
  headerMutation: (2 << 3) | 2,
  bodyMutation: (3 << 3) | 2,
  clearRouteCache: (5 << 3) | 0,
  /** HeaderMutation */
  setHeader: (1 << 3) | 2,
  removeHeader: (2 << 3) | 2,
  /** HeaderValueOption.header, .append_action; HeaderValue.key, .raw_value */
  header: (1 << 3) | 2,
  appendAction: (3 << 3) | 0,
  key: (1 << 3) | 2,
  rawValue: (3 << 3) | 2,
  /** BodyMutation.body, .clear_body */
  body: (1 << 3) | 2,
  clearBody: (2 << 3) | 0,
  /** Struct.fields map entry (key 1, value 2); Value.number_value, .string_value, .bool_value, .struct_value */
  structField: (1 << 3) | 2,
  entryKey: (1 << 3) | 2,
  entryValue: (2 << 3) | 2,
  numberValue: (2 << 3) | 1,
  stringValue: (3 << 3) | 2,
  boolValue: (4 << 3) | 0,
  structValue: (5 << 3) | 2,
} as const;

/** The trailers replies, which carry nothing: encoded once. */
const TRAILERS_REPLY = {
  requestTrailers: encodeBytes((w) => w.uint32(PHASE_TAG.requestTrailers).uint32(0)),
  responseTrailers: encodeBytes((w) => w.uint32(PHASE_TAG.responseTrailers).uint32(0)),
};

function encodeBytes(write: (writer: protobuf.Writer) => void): Buffer {
  const writer = protobuf.Writer.create();
  write(writer);
  const bytes = writer.finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function writeHeaderMutation(
  w: protobuf.Writer,
  set: ReadonlyArray<readonly [string, string]> = [],
  remove: readonly string[] = [],
): void {
  w.uint32(TAG.headerMutation).fork();
  for (const [key, value] of set) {
    w.uint32(TAG.setHeader).fork().uint32(TAG.header).fork();
    w.uint32(TAG.key).string(key);
    // protobufjs leaves an empty raw_value out (proto3's default); so does this, byte for byte.
    if (value.length > 0) w.uint32(TAG.rawValue).bytes(Buffer.from(value, "latin1"));
    w.ldelim().uint32(TAG.appendAction).int32(OVERWRITE_IF_EXISTS_OR_ADD).ldelim();
  }
  for (const name of remove) w.uint32(TAG.removeHeader).string(name);
  w.ldelim();
}

/** `dynamic_metadata`: a Struct holding {@link METADATA_NAMESPACE} → Struct of `values`. */
function writeMetadata(w: protobuf.Writer, values: MetadataValues): void {
  w.uint32(TAG.dynamicMetadata).fork();
  w.uint32(TAG.structField).fork().uint32(TAG.entryKey).string(METADATA_NAMESPACE);
  w.uint32(TAG.entryValue).fork().uint32(TAG.structValue).fork();
  for (const key in values) {
    const value = values[key];
    if (value == null) continue;
    w.uint32(TAG.structField).fork().uint32(TAG.entryKey).string(key).uint32(TAG.entryValue).fork();
    if (typeof value === "string") w.uint32(TAG.stringValue).string(value);
    else if (typeof value === "number") w.uint32(TAG.numberValue).double(value);
    else w.uint32(TAG.boolValue).bool(value);
    w.ldelim().ldelim();
  }
  w.ldelim().ldelim().ldelim().ldelim();
}

/**
 * The ProcessingResponse answering `phase` with `reply`, on the wire. Written field by field for the few
 * shapes a reply has (the bytes protobufjs would write for the equivalent message object: a property test
 * holds them equal), without building that object and walking it by reflection once per message.
 */
export function encodePhaseReply(phase: Phase, reply: PhaseReply): Buffer {
  if (phase === "requestTrailers" || phase === "responseTrailers") return TRAILERS_REPLY[phase];
  return encodeBytes((w) => {
    w.uint32(PHASE_TAG[phase]).fork().uint32(TAG.response).fork();
    if (reply.setHeaders || reply.removeHeaders)
      writeHeaderMutation(w, reply.setHeaders, reply.removeHeaders);
    if (reply.body) {
      w.uint32(TAG.bodyMutation).fork();
      if (reply.body.length > 0) w.uint32(TAG.body).bytes(reply.body);
      else w.uint32(TAG.clearBody).bool(true);
      w.ldelim();
    }
    if (reply.clearRouteCache) w.uint32(TAG.clearRouteCache).bool(true);
    w.ldelim().ldelim();
    if (reply.metadata) writeMetadata(w, reply.metadata);
  });
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
