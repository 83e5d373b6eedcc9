/*
 * The inference APIs the gateway serves, each as the pieces its own folder supplies (schema, output cap,
 * usage, output texts, stream events): the one governing processor (inference.ts) runs them all.
 */
import type { z } from "zod";
import {
  ANTHROPIC_REQUEST_SCHEMAS,
  countTokensAnswer,
  messagesAnswer,
  messagesEvents,
} from "../anthropic/index.js";
import type { ErrorStyle } from "../errors/index.js";
import type { AnswerShape, EventStreamShape } from "../openai/events.js";
import { applyOutputCap, outputCap, singleFieldCap, type OutputCap } from "../openai/output-cap.js";
import { modelReadPrompt, promptText, type PromptText } from "../openai/prompt.js";
import { refuseStatefulResponses, responsesAnswer, responsesEvents } from "../openai/responses.js";
import { mapResponseTexts } from "../openai/response-fields.js";
import { REQUEST_SCHEMAS, type InferenceRequest } from "../openai/schemas.js";
import { generatedText, usageOf } from "../openai/usage.js";
import type { PiiSession } from "../pii/index.js";
import { processAnswer, processResponseBody } from "../pii/response.js";
import type { TranslatedApi } from "../translate/index.js";

/** One inference API: what the governing processor needs to know of it. */
export interface InferenceApi {
  /** Name in audit records and metrics: `chat.completions`, `responses`, `messages`… */
  readonly name: string;
  readonly schema: z.ZodType;
  /** How much a request may generate (the reservation), and writing it into the forwarded body. */
  readonly output?: {
    readonly cap: (request: InferenceRequest, defaultMaxTokens: number) => OutputCap;
    readonly apply: (request: InferenceRequest, cap: OutputCap) => void;
  };
  /** API-specific refusals and rewrites of a validated request, before any other control. */
  readonly prepare?: (request: InferenceRequest) => void;
  /** The request's text as the model reads it, for token counting. */
  readonly prompt: (request: InferenceRequest) => PromptText;
  /** A whole JSON answer: usage and text. */
  readonly answer: AnswerShape;
  /** PII on a whole answer, in place; true if it changed. */
  readonly protectAnswer: (session: PiiSession, answer: unknown) => boolean;
  /** How its streams look: chat-completion chunks, or typed events; absent if it never streams. */
  readonly stream?: "chat" | EventStreamShape;
  /**
   * The agent API a pool may speak natively or not (`pools.<name>.apis`): for a `translated` pool the
   * request goes out as chat completions and the answer comes back converted (extproc/translate/).
   */
  readonly translation?: TranslatedApi;
  /**
   * For a translated pool that has no such endpoint: the answer the gateway gives itself, from its own
   * prompt count (count_tokens).
   */
  readonly answerFromCount?: (promptTokens: number) => unknown;
}

const chatAnswer: AnswerShape = {
  usageOf,
  generatedText,
  mapTexts: (answer, map) => mapResponseTexts(answer, (text) => map(text)),
};

const chatCompletions: InferenceApi = {
  name: "chat.completions",
  schema: REQUEST_SCHEMAS["/v1/chat/completions"]!,
  output: {
    cap: (request, max) => outputCap("chat.completions", request, max),
    apply: (request, cap) => applyOutputCap("chat.completions", request, cap),
  },
  prompt: promptText,
  answer: chatAnswer,
  protectAnswer: processResponseBody,
  stream: "chat",
};

const completions: InferenceApi = {
  ...chatCompletions,
  name: "completions",
  schema: REQUEST_SCHEMAS["/v1/completions"]!,
  output: {
    cap: (request, max) => outputCap("completions", request, max),
    apply: (request, cap) => applyOutputCap("completions", request, cap),
  },
};

const embeddings: InferenceApi = {
  name: "embeddings",
  schema: REQUEST_SCHEMAS["/v1/embeddings"]!,
  prompt: promptText,
  answer: chatAnswer,
  protectAnswer: () => false,
};

const countItems = (value: unknown): number => (Array.isArray(value) ? value.length : 1);

const responsesSchema = REQUEST_SCHEMAS["/v1/responses"]!;
const responses: InferenceApi = {
  name: "responses",
  schema: responsesSchema,
  output: singleFieldCap("max_output_tokens"),
  prepare: refuseStatefulResponses,
  prompt: (request) =>
    modelReadPrompt(request, responsesSchema, countItems(request.input) + (request.instructions ? 1 : 0)),
  answer: responsesAnswer,
  protectAnswer: (session, answer) => processAnswer(session, answer, responsesAnswer),
  stream: responsesEvents,
  translation: "responses",
};

const messagesSchema = ANTHROPIC_REQUEST_SCHEMAS["/v1/messages"]!;
const anthropicPrompt = (schema: z.ZodType) => (request: InferenceRequest) =>
  modelReadPrompt(request, schema, countItems(request.messages) + (request.system ? 1 : 0));
const messages: InferenceApi = {
  name: "messages",
  schema: messagesSchema,
  output: singleFieldCap("max_tokens"),
  prompt: anthropicPrompt(messagesSchema),
  answer: messagesAnswer,
  protectAnswer: (session, answer) => processAnswer(session, answer, messagesAnswer),
  stream: messagesEvents,
  translation: "messages",
};

const countTokensSchema = ANTHROPIC_REQUEST_SCHEMAS["/v1/messages/count_tokens"]!;
const countTokens: InferenceApi = {
  name: "messages.count_tokens",
  schema: countTokensSchema,
  prompt: anthropicPrompt(countTokensSchema),
  answer: countTokensAnswer,
  protectAnswer: () => false,
  translation: "messages",
  answerFromCount: (promptTokens) => ({ input_tokens: promptTokens }),
};

/** The inference APIs by path (POST only). */
export const INFERENCE_APIS: Readonly<Record<string, InferenceApi>> = {
  "/v1/chat/completions": chatCompletions,
  "/v1/completions": completions,
  "/v1/embeddings": embeddings,
  "/v1/responses": responses,
  "/v1/messages": messages,
  "/v1/messages/count_tokens": countTokens,
};

/** The error shape a request to `path` is answered in: Anthropic's for the Messages API, else OpenAI's. */
export function errorStyleOf(path: string): ErrorStyle {
  return path === "/v1/messages" || path.startsWith("/v1/messages/") ? "anthropic" : "openai";
}

/** Stored responses (`GET`/`DELETE /v1/responses/{id}`): the gateway keeps none (docs/agents.md). */
export const isStoredResponsePath = (path: string): boolean => path.startsWith("/v1/responses/");
