import path from "node:path";
import protobuf from "protobufjs";
import { protoDirectory } from "../config/index.js";

/**
 * Loads the ext_proc messages from proto/ with protobufjs. Encoding with protobufjs directly (instead of
 * @grpc/proto-loader) avoids converting every message to a plain object and back on the hot path.
 */
const protoDir = protoDirectory();

const root = new protobuf.Root();
root.resolvePath = (_origin, target) =>
  target.startsWith("google/protobuf/") ? target : path.join(protoDir, target);
root.loadSync("envoy/service/ext_proc/v3/external_processor.proto", { keepCase: false });

/** `envoy.service.ext_proc.v3.ProcessingRequest` */
export const ProcessingRequest = root.lookupType("envoy.service.ext_proc.v3.ProcessingRequest");
/** `envoy.service.ext_proc.v3.ProcessingResponse` */
export const ProcessingResponse = root.lookupType("envoy.service.ext_proc.v3.ProcessingResponse");

/** The gRPC method Envoy calls: one bidirectional stream per HTTP request. */
export const PROCESS_METHOD_PATH = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A ProcessingRequest on the wire. */
export const encodeRequest = (message: object): Buffer =>
  toBuffer(ProcessingRequest.encode(message).finish());

/**
 * A ProcessingResponse on the wire. A Buffer is one already encoded (a constant answer, encoded once at
 * start-up instead of once per message).
 */
export const encodeResponse = (message: object): Buffer =>
  Buffer.isBuffer(message) ? message : toBuffer(ProcessingResponse.encode(message).finish());
