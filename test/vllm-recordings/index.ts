/** Reads the vLLM recordings in this folder (see README.md): the SSE body of each, headers dropped. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** This folder in the repository (the code runs from dist/test/vllm-recordings/). */
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../test/vllm-recordings");

/** The response body of recording `name` (e.g. `chat_stream`), exactly as vLLM sent it. */
export function recordedBody(name: string): string {
  const text = readFileSync(path.join(DIR, `${name}.txt`), "utf8");
  if (!text.startsWith("HTTP/")) return text;
  return text.slice(text.indexOf("\r\n\r\n") + 4);
}

/** Events of an SSE body, terminators included. */
export const sseEvents = (body: string): string[] => body.split(/(?<=\n\n)/).filter(Boolean);

/** The same stream with one id: recordings of two requests differ in their `chatcmpl-…`/`cmpl-…` ids. */
export const withId = (body: string, id: string): string => body.replace(/"id":"[^"]*"/g, `"id":"${id}"`);
