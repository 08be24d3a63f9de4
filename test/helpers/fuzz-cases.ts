/**
 * Input fuzzing driven by the live OpenAPI document: every operation, its path and query parameters
 * and its request body schema are read from `GET /openapi.json`, and fast-check builds requests
 * from them. Two kinds of case:
 *
 * - bad cases: a valid-looking request with at least one element that is invalid on its own (a bad
 *   property, a missing or unknown field, a bad path or query value, malformed JSON, a wrong content
 *   type, an oversized body, a missing or bad token). Each element carries the statuses it may
 *   cause; the server must answer with one of them (always a 4xx) and change nothing.
 * - adversarial valid cases: values the schema allows but that are hard on the layers below it
 *   (unicode, control characters, SQL- and JSON-looking text, extreme dates and ids); the server may
 *   accept or reject them but never with a 5xx.
 *
 * Whether a generated value is invalid is decided by a conservative oracle over the JSON schema
 * (`mightBeValid`): a value counts as invalid only if it fails both as sent and after trimming, by
 * either way of counting string length, and after the query/path coercion of integers.
 */
import fc from 'fast-check';

export type Schema = Record<string, any>;

export interface ParamSpec {
  name: string;
  required: boolean;
  schema: Schema;
}

export interface Operation {
  /** e.g. `PATCH /api/tasks/{id}` */
  label: string;
  method: string;
  /** The path template with the server prefix (`/api/tasks/{id}`). */
  template: string;
  secured: boolean;
  pathParams: ParamSpec[];
  queryParams: ParamSpec[];
  /** The object schema of the JSON request body, if the operation takes one. */
  body: Schema | null;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** Every operation of an OpenAPI 3.1 document, with its server prefix resolved. */
export function operationsOf(doc: Schema): Operation[] {
  const base = (doc.servers?.[0]?.url ?? '').replace(/\/$/, '');
  return Object.entries(doc.paths as Record<string, Schema>).flatMap(([path, item]) => {
    const prefix = item.servers?.[0] ? String(item.servers[0].url).replace(/\/$/, '') : base;
    return METHODS.filter((method) => item[method]).map((method): Operation => {
      const op = item[method];
      const params: Schema[] = [...(item.parameters ?? []), ...(op.parameters ?? [])];
      const spec = (where: string) =>
        params
          .filter((p) => p.in === where)
          .map((p) => ({ name: p.name, required: p.required === true, schema: p.schema ?? {} }));
      const security = op.security ?? doc.security ?? [];
      return {
        label: `${method.toUpperCase()} ${prefix}${path}`,
        method: method.toUpperCase(),
        template: `${prefix}${path}`,
        secured: security.length > 0,
        pathParams: spec('path'),
        queryParams: spec('query'),
        body: op.requestBody?.content?.['application/json']?.schema ?? null,
      };
    });
  });
}

// --- the oracle --------------------------------------------------------------------------------

/** JSON text put into a body as is: numbers JSON cannot round-trip, deep nesting. */
export class RawJson {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text.length > 60
      ? `RawJson(${this.text.slice(0, 40)}… ${this.text.length} chars)`
      : this.text;
  }
}

/** Serializes a body; RawJson pieces are inserted verbatim. */
export function serialize(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(serialize).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${serialize(item)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const patternCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let compiled = patternCache.get(pattern);
  if (!compiled) {
    compiled = new RegExp(pattern, 'u');
    patternCache.set(pattern, compiled);
  }
  return compiled;
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

function stringMightBeValid(schema: Schema, text: string): boolean {
  return [text, text.trim()].some((s) => {
    if (schema.enum && !schema.enum.includes(s)) return false;
    if (schema.const !== undefined && schema.const !== s) return false;
    if (schema.minLength !== undefined && s.length < schema.minLength) return false;
    if (schema.maxLength !== undefined && codePoints(s) > schema.maxLength) return false;
    if (schema.pattern && !regex(schema.pattern).test(s)) return false;
    return true;
  });
}

function integerMightBeValid(schema: Schema, n: number): boolean {
  if (!Number.isInteger(n)) return false;
  if (schema.minimum !== undefined && n < schema.minimum) return false;
  if (schema.maximum !== undefined && n > schema.maximum) return false;
  return true;
}

/**
 * False only when `value` is certainly rejected by `schema`. `mode` is `json` for body values and
 * `param` for path and query strings (which coerce to integers, and where a repeated name is a list).
 */
export function mightBeValid(schema: Schema, value: unknown, mode: 'json' | 'param'): boolean {
  if (value instanceof RawJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value.text);
    } catch {
      return false;
    }
    return mightBeValid(schema, parsed, mode);
  }
  if (schema.anyOf) return (schema.anyOf as Schema[]).some((s) => mightBeValid(s, value, mode));
  if (schema.enum && schema.type === undefined) return schema.enum.includes(value);
  switch (schema.type) {
    case 'null':
      return value === null;
    case 'string':
      return typeof value === 'string' && stringMightBeValid(schema, value);
    case 'integer':
    case 'number':
      if (mode === 'param') {
        if (typeof value !== 'string') return false;
        return integerMightBeValid(schema, Number(value));
      }
      return typeof value === 'number' && integerMightBeValid(schema, value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array': {
      if (!Array.isArray(value)) {
        // One query value for a list parameter is a list of one.
        return mode === 'param' && typeof value === 'string' && mightBeValid(schema, [value], mode);
      }
      if (schema.maxItems !== undefined && value.length > schema.maxItems) return false;
      if (schema.minItems !== undefined && value.length < schema.minItems) return false;
      return value.every((item) => mightBeValid(schema.items ?? {}, item, mode));
    }
    case 'object':
      return objectMightBeValid(schema, value);
    default:
      return true;
  }
}

/** The body check: required properties present, no unknown ones, every property plausible. */
export function objectMightBeValid(schema: Schema, value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const properties: Record<string, Schema> = schema.properties ?? {};
  for (const name of schema.required ?? []) if (!(name in value)) return false;
  for (const [name, item] of Object.entries(value)) {
    const propertySchema = properties[name];
    if (!propertySchema) {
      if (schema.additionalProperties === false) return false;
      continue;
    }
    if (!mightBeValid(propertySchema, item, 'json')) return false;
  }
  return true;
}

// --- value pools -------------------------------------------------------------------------------

/** Text that has broken parsers, queries and terminals before. */
export const NASTY_STRINGS = [
  "'; drop table tasks; --",
  '1; select pg_sleep(10)',
  "' OR '1'='1",
  '" OR ""="',
  "Robert'); DELETE FROM audit_log;--",
  '$$; truncate workers; $$',
  '{"$ne":1}',
  '{"$gt":""}',
  '{"__proto__":{"admin":true}}',
  '[{"a":[]}]',
  'null',
  'undefined',
  'true',
  'NaN',
  '-Infinity',
  '__proto__',
  'constructor',
  '<script>alert(1)</script>',
  `${'$'}{jndi:ldap://x/a}`,
  '{{7*7}}',
  '%s%s%s%n',
  '../../../etc/passwd',
  '\\',
  '\\\\%_',
  '%',
  '_',
  'Ω≈ç√∫˜µ≤≥÷',
  '𝕋𝕙𝕖 𝕢𝕦𝕚𝕔𝕜',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'ﷺ',
  '\u202Eevil\u202C',
  '\u200B',
  '\uFEFFbom',
  'e\u0301\u0301\u0301',
  'a\u0000b',
  '\u0000',
  '\t\n\r',
  '\u0007\u0008\u001B[31mred',
  '\u007F\u0085',
  '\uD800',
  'x\uDFFFy',
  'Zürich 東京 القاهرة',
];

const INTEGER_STRINGS = [
  '-1',
  '0',
  '-0',
  '2147483648',
  '4294967296',
  '9007199254740993',
  '1e309',
  '-1e309',
  '1.5',
  '0.0001',
  'abc',
  '1; select 1',
  "1' or '1'='1",
  'NaN',
  'Infinity',
  '-Infinity',
  '0x',
  '１',
  '١',
  '1_000',
  '9'.repeat(400),
  '{"$ne":1}',
  '[]',
  'null',
  'true',
  ' ',
  '%00',
];

const DEEP_DEPTHS = [10, 100, 1_000, 5_000, 20_000];

function deepArray(depth: number): RawJson {
  return new RawJson(`${'['.repeat(depth)}${']'.repeat(depth)}`);
}

function deepObject(depth: number): RawJson {
  return new RawJson(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`);
}

const HUGE = 'x'.repeat(100_000);

/** Values of every JSON type, many of which are wrong for any given property. */
const WRONG_TYPED: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 53 + 2,
  -(2 ** 31) - 1,
  '',
  ' ',
  '   \t\n ',
  'x',
  '12',
  {},
  { $ne: 1 },
  { $gt: '' },
  [],
  [1],
  ['a'],
  [null],
  new RawJson('1e309'),
  new RawJson('-1e309'),
  new RawJson('1e-400'),
  new RawJson('123456789012345678901234567890'),
  HUGE,
];

/** A value `schema` accepts, for padding a list past its limit. */
function simpleValid(schema: Schema): unknown {
  const candidates: unknown[] = [
    ...(schema.enum ?? []),
    ...(schema.example === undefined ? [] : [schema.example]),
    'a',
    'abc',
    'docs',
    1,
    50,
  ];
  return candidates.find((candidate) => mightBeValid(schema, candidate, 'json')) ?? 'a';
}

function variantsOf(schema: Schema): Schema[] {
  return schema.anyOf ? (schema.anyOf as Schema[]) : [schema];
}

/** Candidates aimed at one schema's limits (filtered afterwards). */
function targetedCandidates(schema: Schema): unknown[] {
  const out: unknown[] = [];
  for (const variant of variantsOf(schema)) {
    if (variant.type === 'string') {
      const max = variant.maxLength as number | undefined;
      if (max !== undefined) out.push('y'.repeat(max + 1), `é${'z'.repeat(max)}`, `${'😀'.repeat(max + 1)}`);
      if ((variant.minLength ?? 0) > 0) out.push('', '   ', '\t\n');
      for (const value of variant.enum ?? []) {
        out.push(String(value).toUpperCase(), `${value} `, ` ${value}x`, `${value}\u0000`);
      }
      if (variant.pattern)
        out.push('UPPER-Case', 'has space', 'a', `-${'a'.repeat(70)}`, 'tab\there', 'nul\u0000');
    }
    if (variant.type === 'integer') {
      const min = (variant.minimum as number | undefined) ?? 0;
      const max = (variant.maximum as number | undefined) ?? 2 ** 31;
      out.push(min - 1, max + 1, min + 0.5, String(min + 1), -(2 ** 31), 2 ** 31);
    }
    if (variant.type === 'array') {
      const item = simpleValid(variant.items ?? {});
      if (variant.maxItems !== undefined) out.push(Array(variant.maxItems + 1).fill(item));
      out.push('docs', [item, 1], [item, null], [item, HUGE], [{}], [[item]], { 0: item });
    }
  }
  return out;
}

/** An invalid JSON value for a body property. */
export function invalidJsonValue(schema: Schema): fc.Arbitrary<unknown> {
  const targeted = targetedCandidates(schema);
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.constantFrom(...WRONG_TYPED) },
      { weight: 4, arbitrary: targeted.length > 0 ? fc.constantFrom(...targeted) : fc.constant(null) },
      { weight: 2, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.constantFrom(...DEEP_DEPTHS), fc.boolean())
          .map(([depth, asArray]) => (asArray ? deepArray(depth) : deepObject(depth))),
      },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    )
    .filter((value) => !mightBeValid(schema, value, 'json'));
}

/** Lone surrogates cannot travel in a URL (there is no UTF-8 for them): U+FFFD stands in. */
export function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

/** An invalid string for a path or query parameter. */
export function invalidParamValue(schema: Schema, options: { path: boolean }): fc.Arbitrary<string> {
  const targeted = targetedCandidates(schema).filter((v): v is string | number =>
    ['string', 'number'].includes(typeof v),
  );
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.constantFrom(...INTEGER_STRINGS) },
      { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
      {
        weight: 3,
        arbitrary: targeted.length > 0 ? fc.constantFrom(...targeted.map(String)) : fc.constant(''),
      },
      { weight: 1, arbitrary: fc.constant(HUGE) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    )
    .map(wellFormed)
    .filter((value) => {
      // An empty path segment changes the route, and an empty query value counts as absent.
      if (value === '') return false;
      // Dot segments are resolved away by the REST router's URL parsing (they change the route).
      if (options.path && /^\.{1,2}$/.test(value)) return false;
      return !mightBeValid(schema, value, 'param');
    });
}

// --- valid values ------------------------------------------------------------------------------

/** Known-good identifiers and texts offered to pattern-constrained strings. */
const PATTERN_POOL = [
  'fuzz-proj',
  'other-proj',
  'no-such-proj',
  'fuzzer',
  'fuzz-other',
  '@fuzz-bot',
  'nobody',
  'a1',
  'zz-9',
  'ünïcødé',
  '𝔘𝔫𝔦',
  '😀',
  "o'brien",
  '{"$ne":1}',
  "';--",
  'a@example.com',
  'o.brien+tag@example.co.uk',
  '2026-01-02T03:04:05.000Z',
  '2026-01-02T03:04:05+23:59',
  '2026-01-02T03:04:05.123456789-23:59',
  '1970-01-01T00:00:00Z',
  '0001-01-01T00:00:00+00:01',
  '0000-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999-23:59',
  '2024-02-29T12:00:00Z',
];

const ISO_DATE = fc
  .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .map((date) => date.toISOString());

const ADVERSARIAL_TEXT = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 30 }) },
);

/** A value the schema allows (as far as the oracle can tell), preferring hard ones. */
export function validJsonValue(schema: Schema, pool: { ids: readonly number[] }): fc.Arbitrary<unknown> {
  const variants = variantsOf(schema);
  return fc.oneof(...variants.map((variant) => validForVariant(variant, pool)));
}

function validForVariant(schema: Schema, pool: { ids: readonly number[] }): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  if (schema.const !== undefined) return fc.constant(schema.const);
  switch (schema.type) {
    case 'null':
      return fc.constant(null);
    case 'integer': {
      const min = (schema.minimum as number | undefined) ?? -(2 ** 31);
      const max = (schema.maximum as number | undefined) ?? 2 ** 31 - 1;
      const edges = [min, max, ...pool.ids].filter((n) => n >= min && n <= max);
      return fc.oneof(fc.integer({ min, max }), fc.constantFrom(...edges));
    }
    case 'array': {
      const maxLength = Math.min((schema.maxItems as number | undefined) ?? 5, 5);
      return fc.array(validJsonValue(schema.items ?? {}, pool), { maxLength });
    }
    case 'string': {
      if (schema.pattern || schema.format) {
        const fixed = PATTERN_POOL.filter((s) => mightBeValid(schema, s, 'json'));
        const sources: fc.Arbitrary<string>[] = [];
        if (fixed.length > 0) sources.push(fc.constantFrom(...fixed));
        if (schema.format === 'date-time') sources.push(ISO_DATE);
        if (sources.length === 0 && typeof schema.example === 'string')
          sources.push(fc.constant(schema.example));
        return sources.length > 0 ? fc.oneof(...sources) : fc.constant('a');
      }
      const max = (schema.maxLength as number | undefined) ?? 1000;
      return fc
        .oneof(
          { weight: 6, arbitrary: ADVERSARIAL_TEXT },
          { weight: 1, arbitrary: fc.constant('w'.repeat(max)) },
        )
        .filter((s) => mightBeValid(schema, s, 'json') && stringMightBeValid(schema, s.trim()));
    }
    default:
      return fc.constant('a');
  }
}

/** A valid string for a path or query parameter. */
export function validParamValue(
  schema: Schema,
  pool: { ids: readonly number[]; names: readonly string[] },
): fc.Arbitrary<string | string[]> {
  const variant = variantsOf(schema).find((v) => v.type !== 'null') ?? schema;
  if (variant.type === 'integer') return fc.constantFrom(...pool.ids, 999_999).map(String);
  if (variant.type === 'array') {
    return fc
      .uniqueArray(validJsonValue(variant.items ?? {}, pool), {
        maxLength: Math.min(variant.maxItems ?? 3, 3),
        minLength: 1,
      })
      .map((items) => items.map(String));
  }
  const names = pool.names.filter((name) => mightBeValid(variant, name, 'param'));
  return names.length > 0 && !variant.format
    ? fc.constantFrom(...names)
    : validJsonValue(variant, pool)
        .map((value) => wellFormed(String(value)))
        .filter((value) => value !== '' && mightBeValid(variant, value, 'param'));
}

// --- whole bad requests ------------------------------------------------------------------------

/** What goes over the wire. `path` values are raw (encoded when the URL is built, unless `rawPath`). */
export interface FuzzRequest {
  method: string;
  path: Record<string, string>;
  /** Path values inserted into the URL without encoding (bad percent-escapes). */
  rawPath: Record<string, string>;
  query: [string, string][];
  body: Record<string, unknown> | RawJson | unknown[] | string | number | boolean | null | undefined;
  /** The body text as is, when it is not JSON at all. */
  bodyText?: string;
  /** undefined: application/json when there is a body; null: no content-type header. */
  contentType?: string | null;
  auth: AuthChoice;
  headers: Record<string, string>;
}

export type AuthChoice =
  | { kind: 'user' }
  | { kind: 'admin' }
  | { kind: 'none' }
  | { kind: 'header'; value: string }
  | { kind: 'token'; name: string };

/** One invalid element: how it bends the request, and the statuses it may cause. */
export interface BadElement {
  what: string;
  statuses: number[];
  apply(request: FuzzRequest): void;
}

const UNKNOWN_NAMES = [
  'x',
  'status',
  'id',
  'isAdmin',
  'createdBy',
  'version',
  'constructor',
  'toString',
  '$where',
  '$ne',
  'a'.repeat(300),
  'ünï',
  '',
  ' ',
  '\u0000',
  'title ',
  'Title',
];

const MALFORMED_BODIES = [
  '',
  '{',
  '}',
  '{"title":',
  '{"title":"a"',
  "{'title':'a'}",
  '{title:"a"}',
  '{"title":"a",}',
  '{"title":"a"}}',
  '{"title":"a"} trailing',
  '[1,2',
  'NaN',
  'Infinity',
  'undefined',
  '{"a":1 /* comment */}',
  '{"a":"\u0001 raw control"}',
  '{"a":"\\x41"}',
  '{"a":"\\u12"}',
  '{"a":01}',
  '{"a":.5}',
  '{"a":+1}',
  '\u0000',
  'null null',
  '<xml/>',
  'a=1&b=2',
  `{"title":"${'['.repeat(10)}`,
];

const POISONED_KEYS = ['__proto__', 'constructor'];

const WRONG_CONTENT_TYPES: (string | null)[] = [
  null,
  'text/plain',
  'text/plain; charset=utf-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/vnd.api+json',
  'application/json-patch+json',
  'application/jsonp',
  'text/json',
  '*/*',
  'application/octet-stream',
  'JSON',
];

const BAD_PATH_ESCAPES = ['%', '%zz', '%E0%A4%A', '%C0%AF', '%FF', 'a%2', '%%30'];

/** Garbage Authorization headers (the tokens by name come from the test, signed for real). */
const BAD_AUTH_HEADERS = [
  'Bearer',
  'Bearer ',
  'Bearer x',
  'Bearer null',
  'bearer  ',
  'Basic ZnV6emVyOnB3',
  'Token abc',
  `Bearer ${'a'.repeat(10_000)}`,
  'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJmdXp6ZXIiLCJyb2xlIjoiYWRtaW4ifQ.',
  'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmdXp6ZXIifQ.c2lnbmF0dXJl',
  'Bearer a.b.c',
  "Bearer '; drop table workers; --",
  'Bearer \u00e9\u00e8',
];

/** Names of signed-but-invalid tokens the test provides (expired, wrong audience, tampered...). */
export const BAD_TOKEN_NAMES = ['expired', 'wrongAudience', 'wrongIssuer', 'tampered', 'unknownKid', 'noSub'];

/** An invalid element for `op`, each certainly rejected on its own. */
export function badElement(op: Operation): fc.Arbitrary<BadElement> | null {
  const options: fc.Arbitrary<BadElement>[] = [];
  const body = op.body;
  const bodyMethod = ['POST', 'PUT', 'PATCH'].includes(op.method);

  for (const param of op.pathParams) {
    options.push(
      invalidParamValue(param.schema, { path: true }).map((value) => ({
        what: `path ${param.name}=${JSON.stringify(value)}`,
        statuses: [400],
        apply: (r: FuzzRequest) => {
          r.path[param.name] = value;
        },
      })),
    );
    options.push(
      fc.constantFrom(...BAD_PATH_ESCAPES).map((value) => ({
        what: `raw path ${param.name}=${value}`,
        statuses: [400],
        apply: (r: FuzzRequest) => {
          r.rawPath[param.name] = value;
        },
      })),
    );
  }

  if (!bodyMethod) {
    const known = new Set([...op.queryParams, ...op.pathParams].map((p) => p.name));
    for (const param of op.queryParams) {
      options.push(
        invalidParamValue(param.schema, { path: false }).map((value) => ({
          what: `query ${param.name}=${JSON.stringify(value)}`,
          statuses: [400],
          apply: (r: FuzzRequest) => {
            r.query = r.query.filter(([name]) => name !== param.name);
            r.query.push([param.name, value]);
          },
        })),
      );
      if (param.schema.type !== 'array') {
        options.push(
          fc.tuple(fc.constantFrom('1', 'a', 'desc'), fc.constantFrom('2', 'b', 'asc')).map(([a, b]) => ({
            what: `query ${param.name} repeated (${a}, ${b})`,
            statuses: [400],
            apply: (r: FuzzRequest) => {
              r.query = r.query.filter(([name]) => name !== param.name);
              r.query.push([param.name, a], [param.name, b]);
            },
          })),
        );
      }
    }
    const unknown = UNKNOWN_NAMES.filter((name) => name.trim() !== '' && !known.has(name));
    options.push(
      fc
        .tuple(fc.constantFrom(...unknown), fc.constantFrom('1', 'x', "'; drop table tasks; --"))
        .map(([name, value]) => ({
          what: `unknown query parameter ${JSON.stringify(name)}`,
          statuses: [400],
          apply: (r: FuzzRequest) => {
            r.query.push([name, value]);
          },
        })),
    );
  }

  if (body && bodyMethod) {
    const properties: Record<string, Schema> = body.properties ?? {};
    const required: string[] = body.required ?? [];
    const pathNames = new Set(op.pathParams.map((p) => p.name));
    for (const [name, schema] of Object.entries(properties)) {
      options.push(
        invalidJsonValue(schema).map((value) => ({
          what: `body.${name}=${describe(value)}`,
          statuses: [400],
          apply: (r: FuzzRequest) => {
            if (isPlainObject(r.body)) r.body[name] = value;
          },
        })),
      );
    }
    for (const name of required) {
      options.push(
        fc.constant({
          what: `body without required ${name}`,
          statuses: [400],
          apply: (r: FuzzRequest) => {
            if (isPlainObject(r.body)) delete r.body[name];
          },
        }),
      );
    }
    if (body.additionalProperties === false) {
      const extras = UNKNOWN_NAMES.filter((name) => !(name in properties) && !pathNames.has(name));
      options.push(
        fc
          .tuple(fc.constantFrom(...extras), fc.constantFrom<unknown>(1, 'x', null, { $ne: 1 }, []))
          .map(([name, value]) => ({
            what: `body with unknown property ${JSON.stringify(name)}`,
            statuses: [400],
            apply: (r: FuzzRequest) => {
              if (isPlainObject(r.body)) r.body[name] = value;
            },
          })),
      );
    }
    // A body that is not an object: a non-empty list or string always brings unknown keys
    // (the REST layer spreads it into the input); others only when a field is required.
    const notObjects: unknown[] = [[1], ['a', 'b'], 'str', [[]]];
    if (required.length > 0) notObjects.push([], null, 0, 123, true, false, '');
    options.push(
      fc.constantFrom(...notObjects).map((value) => ({
        what: `body is ${JSON.stringify(value)}`,
        statuses: [400],
        apply: (r: FuzzRequest) => {
          r.body = value as FuzzRequest['body'];
        },
      })),
    );
    options.push(
      fc.constantFrom(...MALFORMED_BODIES).map((text) => ({
        what: `malformed JSON ${JSON.stringify(text)}`,
        statuses: [400],
        apply: (r: FuzzRequest) => {
          r.bodyText = text;
        },
      })),
    );
    options.push(
      fc.constantFrom(...POISONED_KEYS).map((key) => ({
        what: `prototype poisoning key ${key}`,
        statuses: [400],
        apply: (r: FuzzRequest) => {
          const rest = serialize(isPlainObject(r.body) ? r.body : {}).slice(1);
          const inner = key === '__proto__' ? '{"isAdmin":true}' : '{"prototype":{"isAdmin":true}}';
          r.bodyText = `{"${key}":${inner}${rest === '}' ? '' : ','}${rest}`;
        },
      })),
    );
    options.push(
      fc.constantFrom(...WRONG_CONTENT_TYPES).map((contentType) => ({
        what: `content-type ${contentType ?? '(none)'}`,
        statuses: [415],
        apply: (r: FuzzRequest) => {
          r.contentType = contentType;
        },
      })),
    );
    options.push(
      fc.constant({
        what: 'body over 1 MB',
        statuses: [413],
        apply: (r: FuzzRequest) => {
          r.bodyText = serialize({
            ...(isPlainObject(r.body) ? r.body : {}),
            padding: 'p'.repeat(1_100_000),
          });
        },
      }),
    );
  }

  if (op.secured) {
    options.push(
      fc
        .oneof(
          fc.constant<AuthChoice>({ kind: 'none' }),
          fc.constantFrom(...BAD_AUTH_HEADERS).map((value): AuthChoice => ({ kind: 'header', value })),
          fc.constantFrom(...BAD_TOKEN_NAMES).map((name): AuthChoice => ({ kind: 'token', name })),
        )
        .map((auth) => ({
          what: `auth ${auth.kind === 'header' ? JSON.stringify(auth.value.slice(0, 60)) : auth.kind === 'token' ? auth.name : 'none'}`,
          statuses: [401],
          apply: (r: FuzzRequest) => {
            r.auth = auth;
          },
        })),
    );
  }

  if (options.length === 0) return null;
  return fc.oneof(...options);
}

/** Headers that must not matter: odd request ids, accept values, a valid JSON content type. */
export const NOISE_HEADERS: fc.Arbitrary<Record<string, string>> = fc.record(
  {
    'x-request-id': fc.constantFrom(
      'fuzz-1',
      '../../etc/passwd',
      'a'.repeat(500),
      "'; drop table audit_log; --",
      'ü',
    ),
    accept: fc.constantFrom('*/*', 'application/xml', 'text/html', '', 'application/json;q=0'),
    'accept-language': fc.constantFrom('de-CH', '*', 'x'.repeat(200)),
  },
  { requiredKeys: [] },
);

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof RawJson);
}

export function describe(value: unknown): string {
  if (value instanceof RawJson) return value.toString();
  if (typeof value === 'string' && value.length > 60)
    return `"${value.slice(0, 20)}…" (${value.length} chars)`;
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 60)}… (${text.length} chars)` : text;
}

/** The URL of a request: path values percent-encoded (or raw), query pairs encoded. */
export function urlOf(op: Operation, request: FuzzRequest): string {
  const path = op.template.replace(/\{([^}]+)\}/g, (_, name: string) =>
    name in request.rawPath
      ? (request.rawPath[name] as string)
      : encodeURIComponent(request.path[name] ?? ''),
  );
  const query = request.query.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return query ? `${path}?${query}` : path;
}

/** A short, replayable description of a request. */
export function describeRequest(op: Operation, request: FuzzRequest): string {
  const url = urlOf(op, request);
  const body =
    request.bodyText !== undefined
      ? describe(request.bodyText)
      : request.body === undefined
        ? '(none)'
        : describe(serialize(request.body));
  const hasBody = request.bodyText !== undefined || request.body !== undefined;
  const contentType =
    !hasBody || request.contentType === null ? '(none)' : (request.contentType ?? 'application/json');
  const shownUrl = url.length > 300 ? `${url.slice(0, 300)}… (${url.length} chars)` : url;
  return `${op.method} ${shownUrl} body=${body} content-type=${contentType} auth=${JSON.stringify(request.auth).slice(0, 100)}`;
}
