/**
 * docker-compose.yml as the deploy tests read it: the file parsed the way Compose parses it, and its mounts
 * resolved, so a container path can be followed back to the repository file or named volume behind it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import { ROOT } from "../../deploy/render/index.js";

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** docker-compose.yml, parsed: its services by name, and its named volumes. */
export interface Compose {
  readonly services: Record<string, Node>;
  readonly volumes: Record<string, Node>;
}

/** One entry of a service's `volumes` (short syntax): a bind mount (`./…`) or a named volume. */
export interface Mount {
  /** Repository-relative path of a bind mount's source, or the named volume's name. */
  readonly source: string;
  readonly target: string;
  readonly bind: boolean;
  readonly readOnly: boolean;
}

/** Reads docker-compose.yml (with YAML merge keys, `<<:`, which YAML 1.2's core schema lacks). */
export function readCompose(root = ROOT): Compose {
  const doc = yaml.load(readFileSync(path.join(root, "docker-compose.yml"), "utf8"), {
    schema: yaml.CORE_SCHEMA.withTags(yaml.mergeTag),
  }) as Node;
  return { services: doc.services, volumes: doc.volumes ?? {} };
}

/** A service's mounts. */
export function mountsOf(service: Node): Mount[] {
  return ((service.volumes ?? []) as string[]).map((entry) => {
    const [source, target, mode] = entry.split(":") as [string, string, string?];
    const bind = source.startsWith("./");
    return { source: bind ? path.normalize(source) : source, target, bind, readOnly: mode === "ro" };
  });
}

/** The mount a container path is under (the deepest one), or undefined. */
export function mountAt(service: Node, containerPath: string): Mount | undefined {
  return mountsOf(service)
    .filter((m) => containerPath === m.target || containerPath.startsWith(`${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

/** The repository-relative file behind a container path of a bind mount, or undefined when there is none. */
export function repositoryPath(service: Node, containerPath: string): string | undefined {
  const mount = mountAt(service, containerPath);
  if (!mount?.bind) return undefined;
  return path.join(mount.source, path.relative(mount.target, containerPath));
}
