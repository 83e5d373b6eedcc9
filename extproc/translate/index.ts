/**
 * Translation between the OpenAI Responses API / the Anthropic Messages API and chat completions, for
 * model-server pools that speak only chat completions (TGI, Ollama, Triton's OpenAI frontend). Pure
 * functions of already-validated JSON: the processor validates and governs the client's own request, then
 * forwards {@link ChatTranslation.toChatRequest}'s body and translates the answer back. What chat cannot
 * express is refused with a GatewayError (`invalid_request`, naming the field). Mapping: docs/translation.md.
 */
import { readAnswer, type ChatUsage } from "./chat.js";
import { anthropicErrorFromChat, openAiErrorFromChat } from "./errors.js";
import { messageFromChat } from "./messages-answer.js";
import { messagesToChat, type MessagesRequest } from "./messages-request.js";
import { MessagesStreamConverter } from "./messages-stream.js";
import { responseFromChat } from "./responses-answer.js";
import { responsesToChat, type ResponsesRequest } from "./responses-request.js";
import { ResponsesStreamConverter } from "./responses-stream.js";
import type { AnswerOptions, StreamConverter, StreamOptions } from "./stream.js";

export type { AnswerOptions, ChatUsage, MessagesRequest, ResponsesRequest, StreamConverter, StreamOptions };

/** The client APIs translated to chat completions. */
export type TranslatedApi = "responses" | "messages";

/** Both directions of one API's translation. */
export interface ChatTranslation {
  /**
   * The chat-completions body to forward instead of the client's (called after governance on the client's
   * own body). Throws GatewayError `invalid_request` for a feature a chat pool cannot express.
   */
  toChatRequest(request: unknown): Record<string, unknown>;
  /** A whole chat-completion JSON answer as the client's API answers. */
  fromChatAnswer(chat: unknown, options?: AnswerOptions): unknown;
  /** A new per-request converter of parsed chat SSE `data:` payloads (and the final [DONE]) to the API's SSE bytes. */
  streamConverter(options?: StreamOptions): StreamConverter;
  /** A chat-shaped upstream error body re-shaped as the API's error. */
  fromChatError(status: number, body: unknown): unknown;
}

const TRANSLATIONS: Record<TranslatedApi, ChatTranslation> = {
  responses: {
    toChatRequest: (request) => responsesToChat(request as ResponsesRequest),
    fromChatAnswer: (chat, options = {}) =>
      responseFromChat(readAnswer(chat), (options.request ?? {}) as Partial<ResponsesRequest>, options.model),
    streamConverter: (options) => new ResponsesStreamConverter(options),
    fromChatError: openAiErrorFromChat,
  },
  messages: {
    toChatRequest: (request) => messagesToChat(request as MessagesRequest),
    fromChatAnswer: (chat, options = {}) => messageFromChat(readAnswer(chat), options.model),
    streamConverter: (options) => new MessagesStreamConverter(options),
    fromChatError: anthropicErrorFromChat,
  },
};

/** The translation of one client API to and from chat completions. */
export function chatTranslation(api: TranslatedApi): ChatTranslation {
  return TRANSLATIONS[api];
}
