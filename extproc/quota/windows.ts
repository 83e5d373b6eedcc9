/** Calendar windows (UTC) for per-day and per-month limits. */

/** `2026-11-22` and the epoch ms at which that UTC day ends. */
export function dayWindow(now: number): { id: string; endsAt: number } {
  const d = new Date(now);
  return {
    id: d.toISOString().slice(0, 10),
    endsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1),
  };
}

/** `2026-11` and the epoch ms at which that UTC month ends. */
export function monthWindow(now: number): { id: string; endsAt: number } {
  const d = new Date(now);
  return { id: d.toISOString().slice(0, 7), endsAt: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

/**
 * OpenAI's duration style for x-ratelimit-reset-* (Go's): `250ms`, `1.5s`, `6m0s`, `2h3m0s`. The value is
 * first rounded up to a whole millisecond (never early); from a minute on, whole seconds are shown.
 */
export function formatDuration(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1000) return `${whole}ms`;
  if (whole < 60_000) return `${whole / 1000}s`;
  const seconds = Math.floor(whole / 1000);
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return `${hours > 0 ? `${hours}h` : ""}${minutes}m${seconds % 60}s`;
}
