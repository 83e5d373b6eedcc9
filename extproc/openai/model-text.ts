/**
 * What the model reads of a request: the one list PII detection and the guardrails scan. It is derived from
 * the request schemas, secure by default: every string value and every field name in a validated body is
 * model-read text, except control fields (the schemas mark them with `control()`: model, roles, ids, `type`
 * discriminators, logit_bias) and the field names the schemas declare. Undeclared fields count as text
 * because the model server may read them (`guided_json`, `chat_template_kwargs`, `documents`), and so do
 * the property names inside JSON values such as a tool's parameter schema (the model reads them as names).
 */
import type { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { formatPath } from "../errors/document.js";
import { controlFields } from "./schemas.js";

/** A step into a body: an object key or an array index. */
export type PathSegment = string | number;

/**
 * Sees one model-read text and returns its replacement (the same string leaves it untouched). `path` leads
 * to it (valid only during the call); `key` says the text is a field name at the end of `path`.
 */
export type ModelTextVisitor = (text: string, path: readonly PathSegment[], key: boolean) => string;

/** What a schema says about one position in a body. */
interface FieldNode {
  /** Nothing here or below is model-read. */
  readonly control: boolean;
  /** The declared fields of an object here (their names are not text; their values follow their node). */
  readonly fields: ReadonlyMap<string, FieldNode>;
  /** The declared element of an array here. */
  readonly items: FieldNode | undefined;
  /** Declared text here: a string, or any JSON (every string and field name in it); for the field list. */
  readonly text: "string" | "json" | undefined;
}

const CONTROL: FieldNode = { control: true, fields: new Map(), items: undefined, text: undefined };
const LEAF: FieldNode = { control: false, fields: new Map(), items: undefined, text: undefined };

/** The parts of a zod definition the tree is built from. */
interface SchemaDef {
  readonly type: string;
  readonly innerType?: z.ZodType;
  readonly shape?: Readonly<Record<string, z.ZodType>>;
  readonly element?: z.ZodType;
  readonly options?: readonly z.ZodType[];
}

function buildNode(schema: z.ZodType): FieldNode {
  if (controlFields.has(schema)) return CONTROL;
  const def = schema._zod.def as SchemaDef;
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "readonly":
      return buildNode(def.innerType!);
    case "object":
      return {
        ...LEAF,
        fields: new Map(Object.entries(def.shape!).map(([name, field]) => [name, buildNode(field)])),
      };
    case "array":
      return { ...LEAF, items: buildNode(def.element!) };
    case "union":
      return mergeNodes(def.options!.map(buildNode));
    case "string":
      return { ...LEAF, text: "string" };
    case "record":
    case "unknown":
    case "any":
      return { ...LEAF, text: "json" };
    case "number":
    case "boolean":
    case "null":
    case "enum":
    case "literal":
      return LEAF;
    default:
      // A schema kind without a rule here must not pass as "no text" unnoticed.
      throw new Error(`model-text: no rule for zod schema type '${def.type}'`);
  }
}

/** A union's node: control only if every branch is; fields and items of all branches. */
function mergeNodes(nodes: readonly FieldNode[]): FieldNode {
  if (nodes.every((n) => n.control)) return CONTROL;
  const open = nodes.filter((n) => !n.control);
  const fields = new Map<string, FieldNode[]>();
  for (const node of open)
    for (const [name, field] of node.fields) fields.set(name, [...(fields.get(name) ?? []), field]);
  const items = open.flatMap((n) => (n.items ? [n.items] : []));
  const texts = open.map((n) => n.text);
  return {
    control: false,
    fields: new Map([...fields].map(([name, branches]) => [name, mergeNodes(branches)])),
    items: items.length > 0 ? mergeNodes(items) : undefined,
    text: texts.includes("json") ? "json" : texts.includes("string") ? "string" : undefined,
  };
}

const trees = new WeakMap<z.ZodType, FieldNode>();

function treeOf(schema: z.ZodType): FieldNode {
  let tree = trees.get(schema);
  if (!tree) trees.set(schema, (tree = buildNode(schema)));
  return tree;
}

/** Sets an own property, even one named `__proto__` (plain assignment would change the prototype). */
function setOwn(object: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(object, name, { value, writable: true, enumerable: true, configurable: true });
}

/** `node` undefined: an undeclared position, where every string and field name is text. */
function walk(
  value: unknown,
  node: FieldNode | undefined,
  path: PathSegment[],
  visit: ModelTextVisitor,
): unknown {
  if (node?.control) return value;
  if (typeof value === "string") return visit(value, path, false);
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      value[i] = walk(value[i], node?.items, path, visit);
      path.pop();
    }
    return value;
  }
  const object = value as Record<string, unknown>;
  const names = Object.keys(object);
  let renamed: string[] | undefined;
  names.forEach((name, i) => {
    const field = node?.fields.get(name);
    path.push(name);
    if (!field) {
      const newName = visit(name, path, true);
      if (newName !== name) (renamed ??= [...names])[i] = newName;
    }
    const before = object[name];
    const after = walk(before, field, path, visit);
    if (after !== before) setOwn(object, name, after);
    path.pop();
  });
  if (renamed) renameFields(object, names, renamed, path);
  return object;
}

/** Renames the fields of `object` in place, keeping their order; refuses names that became equal. */
function renameFields(
  object: Record<string, unknown>,
  names: readonly string[],
  renamed: readonly string[],
  path: readonly PathSegment[],
): void {
  if (new Set(renamed).size !== renamed.length) {
    throw new GatewayError(
      "invalid_request",
      `Two field names in '${formatPath(path) || "the request body"}' are the same once redacted.`,
      formatPath(path) || null,
    );
  }
  const values = names.map((name) => object[name]);
  for (const name of names) delete object[name];
  renamed.forEach((name, i) => setOwn(object, name, values[i]));
}

/**
 * Visits every model-read text of a body validated by `schema`, in place and in a stable order (each field
 * name before its value, fields in body order), so texts collected by {@link modelTexts} line up with a
 * later mapping of the same body. Linear in the body's size.
 */
export function mapModelText(
  body: Record<string, unknown>,
  schema: z.ZodType,
  visit: ModelTextVisitor,
): void {
  walk(body, treeOf(schema), [], visit);
}

/** Every model-read text of a body validated by `schema`, in {@link mapModelText} order. */
export function modelTexts(body: Record<string, unknown>, schema: z.ZodType): string[] {
  const texts: string[] = [];
  mapModelText(body, schema, (text) => {
    texts.push(text);
    return text;
  });
  return texts;
}

/** A declared model-read field: its path (`messages[].content`, `[]` for array elements). */
export interface ModelReadField {
  readonly path: string;
  /** Any JSON (a JSON schema): every string and property name in it is read. */
  readonly whole: boolean;
}

/** The model-read fields `schema` declares; any other string and undeclared field name is read too. */
export function modelReadFields(schema: z.ZodType): ModelReadField[] {
  const out: ModelReadField[] = [];
  const visit = (node: FieldNode, path: string): void => {
    if (node.control) return;
    if (node.text) out.push({ path, whole: node.text === "json" });
    if (node.items) visit(node.items, `${path}[]`);
    for (const [name, field] of node.fields) visit(field, path === "" ? name : `${path}.${name}`);
  };
  visit(treeOf(schema), "");
  return out;
}

/** {@link modelReadFields} of each endpoint, as the Markdown list docs/pii.md carries. */
export function modelReadFieldsMarkdown(endpoints: Readonly<Record<string, z.ZodType>>): string {
  return Object.entries(endpoints)
    .map(([endpoint, schema]) => {
      const fields = modelReadFields(schema).map(
        (f) => `  - \`${f.path}\`${f.whole ? ": every string and property name in it" : ""}`,
      );
      const other = "  - any other string value, and the name of any field the schema does not declare";
      return [`- \`${endpoint}\``, ...fields, other].join("\n");
    })
    .join("\n");
}
