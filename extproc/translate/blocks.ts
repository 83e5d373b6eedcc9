/**
 * Turns a chat-completions stream (parsed `data:` payloads) into block operations: open a block, add text to
 * it, close it with its whole text. Blocks are sequential, as in both client APIs' streams: a block closes
 * when the next one opens (a reasoning → text switch, a new tool call) or at the end. Both stream converters
 * render these operations, so reasoning, text and tool calls are cut into blocks the same way for both.
 */
import {
  firstChoice,
  readFinish,
  readHead,
  readUsage,
  reasoningOf,
  textOf,
  type Block,
  type ChatHead,
  type ChatUsage,
  type FinishedBlock,
} from "./chat.js";
import { arrayOf, numberOf, objectOf, stringOf } from "./json.js";

/** One step of the translated stream's block structure; `index` counts blocks from 0. */
export type BlockOp =
  | { readonly op: "open"; readonly index: number; readonly block: Block }
  | { readonly op: "delta"; readonly index: number; readonly text: string }
  | { readonly op: "close"; readonly index: number; readonly block: Block; readonly text: string };

/** A tool call being streamed, by the chat stream's tool-call index. */
interface ToolCallState {
  callId: string | undefined;
  name: string | undefined;
  /** Its block, once opened (a tool block opens when its name is known: both APIs announce it first). */
  blockIndex: number | undefined;
  /** Argument fragments that came before the name. */
  pending: string;
}

/** Block assembly for one chat stream. */
export class ChatStreamAssembler {
  /** The first chunk's head; undefined until a chunk arrived. */
  head: ChatHead | undefined;
  finishReason: string | null = null;
  stopSequence: string | null = null;
  /** The last usage the stream carried (the include_usage chunk, or continuous usage on every chunk). */
  usage: ChatUsage | undefined;
  /**
   * Argument characters of a tool call that arrived after a later tool call had begun. No chat server
   * interleaves tool calls (they stream them one after another), and neither client API can reopen a
   * finished block, so such fragments cannot be delivered; they are counted (StreamConverter.droppedChars) for the caller to log.
   */
  droppedChars = 0;

  private readonly blocks: Array<{ block: Block; text: string }> = [];
  private open: number | undefined;
  private readonly tools = new Map<number, ToolCallState>();
  private lastTool: number | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** The index of the block still open, if any. */
  get openIndex(): number | undefined {
    return this.open;
  }

  /** The block at `index` (one an op named). */
  block(index: number): Block {
    return this.blocks[index]!.block;
  }

  /** The blocks so far with their text (closed ones complete). */
  get finished(): FinishedBlock[] {
    return this.blocks.map(({ block, text }) => ({ block, text }));
  }

  /** Reads one parsed chunk and returns the block operations it causes. */
  push(value: unknown): BlockOp[] {
    const chunk = objectOf(value);
    this.head ??= readHead(chunk, this.now);
    this.usage = readUsage(chunk?.usage) ?? this.usage;
    const choice = firstChoice(chunk);
    if (choice === undefined) return [];
    const ops: BlockOp[] = [];
    const delta = objectOf(choice.delta) ?? {};
    const reasoning = reasoningOf(delta);
    if (reasoning) this.append("reasoning", reasoning, ops);
    const text = textOf(delta);
    if (text) this.append("text", text, ops);
    for (const call of arrayOf(delta.tool_calls).map(objectOf)) if (call) this.toolCall(call, ops);
    const finish = readFinish(choice);
    if (finish.finishReason !== null) this.finishReason = finish.finishReason;
    if (finish.stopSequence !== null) this.stopSequence = finish.stopSequence;
    return ops;
  }

  /** Ends the stream: closes the open block, and delivers tool calls whose name never came (as nameless). */
  finish(): BlockOp[] {
    const ops: BlockOp[] = [];
    for (const state of this.tools.values()) {
      if (state.blockIndex !== undefined) continue;
      this.openBlock({ kind: "tool", callId: state.callId, name: state.name ?? "" }, ops);
      state.blockIndex = this.open;
      this.addText(state.pending, ops);
    }
    this.closeOpen(ops);
    return ops;
  }

  private append(kind: "reasoning" | "text", text: string, ops: BlockOp[]): void {
    const current = this.open === undefined ? undefined : this.blocks[this.open]!.block;
    if (current?.kind !== kind) this.openBlock({ kind }, ops);
    this.addText(text, ops);
  }

  private toolCall(call: Record<string, unknown>, ops: BlockOp[]): void {
    const fn = objectOf(call.function) ?? {};
    const id = stringOf(call.id) || undefined;
    // Servers that omit `index` (some Ollama versions) send each call whole, or continue the last one.
    const last = this.lastTool === undefined ? undefined : this.tools.get(this.lastTool);
    const index =
      numberOf(call.index) ??
      (last !== undefined && (id === undefined || id === last.callId) ? this.lastTool! : this.tools.size);
    let state = this.tools.get(index);
    if (state === undefined) {
      state = { callId: undefined, name: undefined, blockIndex: undefined, pending: "" };
      this.tools.set(index, state);
    }
    this.lastTool = index;
    state.callId ??= id;
    const name = stringOf(fn.name);
    if (name && state.blockIndex === undefined) state.name = name;
    const fragment = stringOf(fn.arguments) ?? "";
    if (state.blockIndex === undefined) {
      state.pending += fragment;
      if (state.name === undefined) return;
      this.openBlock({ kind: "tool", callId: state.callId, name: state.name }, ops);
      state.blockIndex = this.open;
      this.addText(state.pending, ops);
      state.pending = "";
    } else if (state.blockIndex === this.open) {
      this.addText(fragment, ops);
    } else {
      this.droppedChars += fragment.length;
    }
  }

  private openBlock(block: Block, ops: BlockOp[]): void {
    this.closeOpen(ops);
    this.open = this.blocks.length;
    this.blocks.push({ block, text: "" });
    ops.push({ op: "open", index: this.open, block });
  }

  private addText(text: string, ops: BlockOp[]): void {
    if (text === "" || this.open === undefined) return;
    this.blocks[this.open]!.text += text;
    ops.push({ op: "delta", index: this.open, text });
  }

  private closeOpen(ops: BlockOp[]): void {
    if (this.open === undefined) return;
    const { block, text } = this.blocks[this.open]!;
    ops.push({ op: "close", index: this.open, block, text });
    this.open = undefined;
  }
}
