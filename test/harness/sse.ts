/** Reading raw Server-Sent Events streams of the OpenAI API in tests (where the SDK is not the client). */

/** What a raw chat completion event stream carried: its content deltas joined, its finish reasons, its last data. */
export function parseChatStream(text: string): {
  content: string;
  finishReasons: string[];
  last: string | undefined;
} {
  const datas = text
    .split(/\n\n/)
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice(6));
  let content = "";
  const finishReasons: string[] = [];
  for (const data of datas) {
    if (data === "[DONE]") continue;
    const chunk = JSON.parse(data) as {
      choices: Array<{ delta?: { content?: string }; finish_reason?: string }>;
    };
    for (const choice of chunk.choices) {
      content += choice.delta?.content ?? "";
      if (choice.finish_reason) finishReasons.push(choice.finish_reason);
    }
  }
  return { content, finishReasons, last: datas.at(-1) };
}
