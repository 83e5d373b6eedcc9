import { ChatStreamAssembler, type BlockOp } from "./blocks.js";
import type { ChatOutcome, ChatUsage } from "./chat.js";
import { objectOf } from "./json.js";

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

/**
 * What both APIs' converters share: the chat stream cut into blocks, each chat event's block operations
 * rendered after the stream's opening events, nothing after an upstream error, and the closing events once.
 * A converter says how its API opens, renders a block operation, fails and closes.
 */
export abstract class ChatStreamTranslator implements StreamConverter {
  protected readonly chat: ChatStreamAssembler;
  private ended = false;

  constructor(protected readonly options: StreamOptions = {}) {
    this.chat = new ChatStreamAssembler(options.now);
  }

  event(chatEvent: unknown): Buffer {
    if (this.ended) return Buffer.alloc(0);
    const error = objectOf(objectOf(chatEvent)?.error);
    if (error !== undefined) {
      this.ended = true;
      return Buffer.from(this.failed(error));
    }
    // The event first: the opening events name what the stream's first chunk says (id, model, created).
    const ops = this.chat.push(chatEvent);
    return Buffer.from(this.start() + this.rendered(ops));
  }

  get droppedChars(): number {
    return this.chat.droppedChars;
  }

  done(usage?: ChatUsage): Buffer {
    if (this.ended) return Buffer.alloc(0);
    this.ended = true;
    const events = this.start() + this.rendered(this.chat.finish());
    const outcome: ChatOutcome = {
      finishReason: this.chat.finishReason,
      stopSequence: this.chat.stopSequence,
      usage: this.chat.usage ?? usage,
    };
    return Buffer.from(events + this.closing(outcome));
  }

  private rendered(ops: readonly BlockOp[]): string {
    return ops.map((op) => this.render(op)).join("");
  }

  /** The API's opening events, once (empty after the first call). */
  protected abstract start(): string;
  /** One block operation as the API's events. */
  protected abstract render(op: BlockOp): string;
  /** The events ending a stream the chat server broke off with this error object. */
  protected abstract failed(error: Readonly<Record<string, unknown>>): string;
  /** The events after the last block, stating how the answer ended. */
  protected abstract closing(outcome: ChatOutcome): string;
}
