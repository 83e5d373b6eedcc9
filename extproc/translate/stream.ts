import type { ChatUsage } from "./chat.js";

/** What a translated answer says beyond the chat answer itself. */
export interface AnswerOptions {
  /** The client's own request (as given to toChatRequest): Responses objects echo its parameters. */
  readonly request?: unknown;
  /** The model name to echo; default: the one the chat answer names. */
  readonly model?: string;
}

/** Options of a stream converter. */
export interface StreamOptions extends AnswerOptions {
  /**
   * The prompt tokens the gateway counted: Messages' message_start must state input_tokens before the chat
   * stream's usage (which comes last) arrives. message_delta then carries the server's own count.
   */
  readonly promptTokens?: number;
  /** Clock for a chat stream without `created` (milliseconds); default Date.now. */
  readonly now?: () => number;
}

/** A per-request converter of parsed chat SSE `data:` payloads to the client API's SSE bytes. */
export interface StreamConverter {
  /** One parsed chat chunk (the JSON of a `data:` line other than [DONE]); returns the bytes to send. */
  event(chatEvent: unknown): Buffer;
  /**
   * The end of the chat stream ([DONE]): the closing events. `usage` stands in when the stream carried none
   * (a server that ignores include_usage), e.g. the gateway's own count. Nothing after an upstream error.
   */
  done(usage?: ChatUsage): Buffer;
  /** Tool-argument characters that could not be delivered (an upstream that interleaves tool calls): log them. */
  readonly droppedChars: number;
}
