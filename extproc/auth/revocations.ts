import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";

/** Redis names for key revocations, under the quota store's hash tag. */
export const revocationKeys = (prefix: string) => ({
  /** Set of revoked identity ids (survives restarts; new replicas read it). */
  set: `{${prefix}}:revoked-ids`,
  /** Channel carrying `+id` (revoke) and `-id` (reinstate) to every replica at once. */
  channel: `{${prefix}}:revocations`,
});

/**
 * Identities revoked through Redis: every replica subscribes, so a revocation published once takes effect
 * everywhere within milliseconds, without waiting for each replica's policy file to change. The policy's own
 * `revoked: true` works independently of this.
 */
export class RevocationList {
  private readonly revoked = new Set<string>();

  /** Whether `id` (an API key id, or `jwt:<subject>`) is revoked. */
  has(id: string): boolean {
    return this.revoked.has(id);
  }

  /** Follows the set and channel in Redis with a dedicated subscriber connection; reloads the set on reconnect. */
  follow(client: Redis | Cluster, prefix: string, logger: Logger): () => void {
    const { set, channel } = revocationKeys(prefix);
    // A subscribed connection can do nothing else: use a dedicated one.
    const subscriber = (client as Redis).duplicate();
    const load = () =>
      client
        .smembers(set)
        .then((ids) => {
          this.revoked.clear();
          ids.forEach((id) => this.revoked.add(id));
        })
        .catch((err: Error) => logger.warn({ err: err.message }, "could not read revoked ids from redis"));
    subscriber.on("error", () => {});
    subscriber.on("ready", () => {
      void subscriber.subscribe(channel).then(load);
    });
    subscriber.on("message", (_channel: string, message: string) => {
      const id = message.slice(1);
      if (message.startsWith("+")) this.revoked.add(id);
      else if (message.startsWith("-")) this.revoked.delete(id);
      logger.info({ id, revoked: message.startsWith("+") }, "revocation received");
    });
    return () => subscriber.disconnect();
  }
}
