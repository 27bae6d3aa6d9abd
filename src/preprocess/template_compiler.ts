// Compiles a chat template's parsed AST (@huggingface/jinja's `Template.parsed`) to plain JS
// closures over plain JS values, so a render allocates no interpreter RuntimeValue per node and
// throws no Error per undefined variable (the interpreter's two main costs per request).
//
// Contract (what makes it safe to use in place of the interpreter):
//  - compileTemplate returns null for a template using anything outside the compiled subset;
//    the caller then keeps the interpreter for that template.
//  - A compiled render that RETURNS a string returns exactly the interpreter's output. Wherever
//    the interpreter would throw (raise_exception, a type error, an unknown filter...), or where
//    a plain JS value cannot say what the interpreter's value would be (a float result, a
//    function printed...), the compiled render throws instead, and the caller renders the same
//    input with the interpreter: the user sees the interpreter's output or error text. Renders
//    have no side effects outside their own scope objects, so the re-run is exact.
//
// Closures rather than generated source (new Function): no escaping of template text into code,
// each construct's semantics sit in one named function, and the closures already render the
// Qwen3 template 12-20x faster than the interpreter (bench/README.md, bench:tokenizer).
//
// Value model: Jinja strings/numbers/booleans/none/undefined/lists/dicts are JS
// string/number/boolean/null/undefined/arrays/plain objects; namespace() is a Namespace, macros
// and global functions are Callables. Numbers are integers (IntegerValue) unless non-integer
// (FloatValue from the input): operations that would make an integer-valued float (`/`, `**`,
// float literals, arithmetic on a float) are refused, at compile time or by throwing.
// Variable scopes chain like the interpreter's Environments: a `for` gets one scope for all its
// iterations, a macro call one whose parent is the CALLER's scope.

// --- The parser's nodes, as far as the compiler reads them (the package exports no AST types).
interface Node {
  type: string;
}
interface ValueNode<T> extends Node {
  value: T;
}
type Ident = ValueNode<string>;
interface Operator {
  value: string;
}
interface Arg extends Node {
  key?: Ident; // KeywordArgumentExpression
  value?: Node;
}

/** What a compiled render receives: the template's variables (JSON values, or undefined). */
export type CompiledTemplate = (vars: Record<string, unknown>) => string;

type Expr = (s: Scope) => unknown;
type Block = (s: Scope) => string;
type Kwargs = Map<string, unknown> | null;

/**
 * A variable scope, like the interpreter's Environment: a name resolves in the nearest scope
 * that has it (a name set to undefined there included). Maps, not prototype-chained objects:
 * V8 makes every object used as a prototype a slow "prototype map" (costly per render).
 */
class Scope {
  readonly vars = new Map<string, unknown>();
  constructor(readonly parent: Scope | null) {}

  lookup(name: string): unknown {
    const v = this.vars.get(name);
    if (v !== undefined || this.vars.has(name)) return v;
    return this.parent === null ? undefined : this.parent.lookup(name);
  }

  set(name: string, v: unknown): void {
    this.vars.set(name, v);
  }
}

/** namespace(): attributes settable from the template (`set ns.x = ...`). */
class Namespace {
  constructor(readonly map: Map<string, unknown>) {}
}

/** A macro or a global function: called with positional arguments, keyword arguments and the caller's scope. */
class Callable {
  constructor(readonly call: (args: unknown[], kwargs: Kwargs, scope: Scope) => unknown) {}
}

/** Thrown where the compiled subset stops: the caller renders with the interpreter instead. */
class Unsupported extends Error {}
// Thrown at render time for the same reason; a constant (no stack capture: bails are cheap).
const BAIL = Object.freeze({ bail: true });
function bail(): never {
  throw BAIL;
}
// break / continue unwind to their loop as these constants.
const BREAK = Object.freeze({ control: 'break' });
const CONTINUE = Object.freeze({ control: 'continue' });

// Names the interpreter defines in its global scope before the template's variables.
const GLOBAL_NAMES = ['namespace', 'false', 'true', 'none', 'raise_exception', 'range', 'strftime_now', 'True', 'False', 'None'];
// Null-prototype tables: a template name like `constructor` must not find Object.prototype's.
const CONSTANTS: Record<string, unknown> = Object.assign(Object.create(null), { true: true, false: false, none: null, True: true, False: false, None: null });
const STRING_METHODS = new Set(['upper', 'lower', 'strip', 'title', 'capitalize', 'rstrip', 'lstrip', 'startswith', 'endswith', 'split', 'replace']);
const OBJECT_METHODS = new Set(['get', 'items', 'keys', 'values', 'dictsort']);
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

// --- Value helpers (the interpreter's rules, on plain values).

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Namespace) && !(v instanceof Callable);
}

function isPrimitive(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

function isScalar(v: unknown): boolean {
  return v === null || v === undefined || isPrimitive(v);
}

function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

// The render paths create no closures: each would cost per call (and tsx, which runs the tests
// and benchmarks, wraps every one to set its name).

// Python truthiness as the interpreter has it: empty lists and dicts are false, a namespace is true.
export function truthy(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return !!v;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Namespace || v instanceof Callable) return true;
  for (const k in v) if (hasOwn(v, k)) return true;
  return false;
}

interface JsonOptions {
  indent: number | null;
  ensureAscii: boolean;
  sortKeys: boolean;
  separators: [string, string] | null;
}
const PLAIN_JSON: JsonOptions = { indent: null, ensureAscii: false, sortKeys: false, separators: null };

// Every UTF-16 unit from DEL up as \uXXXX (tojson's ensure_ascii, as the interpreter does it).
function asciiOnly(json: string): string {
  return json.replace(/[\x7f-\uffff]/g, unicodeEscape);
}

function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

// tojson, and the text of a list/dict in output (undefinedAsNull false: "undefined" inside).
function toJson(v: unknown, o: JsonOptions, depth: number, undefinedAsNull: boolean): string {
  if (v === null) return 'null';
  if (v === undefined) return undefinedAsNull ? 'null' : 'undefined';
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v === 'string') return o.ensureAscii ? asciiOnly(JSON.stringify(v)) : JSON.stringify(v);
  if (o === PLAIN_JSON) return plainJson(v, undefinedAsNull);
  const isArray = Array.isArray(v);
  if (!isArray && !isMapping(v) && !(v instanceof Namespace)) bail();
  const [itemSep, keySep] = o.separators ?? (o.indent ? [',', ': '] : [', ', ': ']);
  const unit = o.indent ? ' '.repeat(o.indent) : '';
  const base = '\n' + unit.repeat(depth);
  const child = base + unit;
  if (isArray) {
    const parts: string[] = [];
    for (const x of v) parts.push(toJson(x, o, depth + 1, undefinedAsNull));
    return o.indent && parts.length > 0 ? `[${child}${parts.join(itemSep + child)}${base}]` : `[${parts.join(itemSep)}]`;
  }
  let entries = v instanceof Namespace ? [...v.map.entries()] : Object.entries(v);
  if (o.sortKeys) entries = entries.sort(byKey);
  const parts: string[] = [];
  for (const [k, x] of entries) {
    const key = o.ensureAscii ? asciiOnly(JSON.stringify(k)) : JSON.stringify(k);
    const item = `${key}${keySep}${toJson(x, o, depth + 1, undefinedAsNull)}`;
    parts.push(o.indent ? child + item : item);
  }
  return o.indent && parts.length > 0 ? `{${parts.join(itemSep)}${base}}` : `{${parts.join(itemSep)}}`;
}

// toJson without options (tojson's default, and lists/dicts in output): the hot case, built
// by plain concatenation.
function plainJson(v: unknown, undefinedAsNull: boolean): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (v === null) return 'null';
  if (v === undefined) return undefinedAsNull ? 'null' : 'undefined';
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i > 0 ? ', ' : '') + plainJson(v[i], undefinedAsNull);
    return out + ']';
  }
  if (v instanceof Namespace) return toJson(v, PLAIN_JSON_SLOW, 0, undefinedAsNull);
  if (!isMapping(v)) bail();
  let out = '{';
  let first = true;
  for (const k of Object.keys(v)) {
    out += (first ? '' : ', ') + JSON.stringify(k) + ': ' + plainJson(v[k], undefinedAsNull);
    first = false;
  }
  return out + '}';
}
// The same options as PLAIN_JSON, but not it: takes toJson's general path.
const PLAIN_JSON_SLOW: JsonOptions = { ...PLAIN_JSON };

function byKey(a: [string, unknown], b: [string, unknown]): number {
  return a[0].localeCompare(b[0]);
}

// What `{{ v }}` prints: none/undefined print nothing, lists and dicts as JSON.
function toOutput(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return '';
  return toJson(v, PLAIN_JSON, 0, false);
}

// Attribute / index access (`a.b`, `a[i]`). Builtin methods read without a call bail.
function getMember(obj: unknown, prop: unknown): unknown {
  if (obj instanceof Namespace) {
    if (typeof prop !== 'string') bail();
    return obj.map.get(prop);
  }
  if (isMapping(obj)) {
    if (typeof prop !== 'string') bail();
    if (hasOwn(obj, prop)) return obj[prop];
    if (OBJECT_METHODS.has(prop)) bail();
    return undefined;
  }
  if (typeof obj === 'string' || Array.isArray(obj)) {
    if (typeof prop === 'number') {
      if (!Number.isInteger(prop)) bail();
      return obj.at(prop);
    }
    if (typeof prop !== 'string') bail();
    if (prop === 'length') return obj.length;
    if (typeof obj === 'string' && STRING_METHODS.has(prop)) bail();
    return undefined;
  }
  if (typeof prop !== 'string') bail();
  return undefined;
}

// Python slice semantics over a list (or a string's code points), step may be negative.
function sliceList<T>(items: T[], start: unknown, stop: unknown, step: unknown): T[] {
  if (!isSliceBound(start) || !isSliceBound(stop) || !isSliceBound(step)) bail();
  const n = items.length;
  const st = step ?? 1;
  const out: T[] = [];
  if (st >= 0) {
    // Negative bounds count from the end; all clamp to [0, n].
    const a = start === undefined ? 0 : start < 0 ? Math.max(n + start, 0) : Math.min(start, n);
    const b = stop === undefined ? n : stop < 0 ? Math.max(n + stop, 0) : Math.min(stop, n);
    if (st > 0) for (let i = a; i < b; i += st) out.push(items[i]);
  } else {
    // Walking backwards: bounds clamp to [-1, n - 1] (-1: before the first item).
    const a = start === undefined ? n - 1 : start < 0 ? Math.max(n + start, -1) : Math.min(start, n - 1);
    const b = stop === undefined ? -1 : stop < -1 ? Math.max(n + stop, -1) : Math.min(stop, n - 1);
    for (let i = a; i > b; i += st) out.push(items[i]);
  }
  return out;
}

function isSliceBound(x: unknown): x is number | undefined {
  return x === undefined || isInteger(x);
}

function sliceValue(obj: unknown, start: unknown, stop: unknown, step: unknown): unknown {
  if (Array.isArray(obj)) return sliceList(obj, start, stop, step);
  if (typeof obj === 'string') return sliceList(Array.from(obj), start, stop, step).join('');
  return bail();
}

// Integer arithmetic only: a float operand or a non-finite result bails (the interpreter would
// make a FloatValue, printed differently, or keep Infinity as an integer).
function arithmetic(op: string, a: number, b: number): number | boolean {
  switch (op) {
    case '<':
      return a < b;
    case '>':
      return a > b;
    case '<=':
      return a <= b;
    case '>=':
      return a >= b;
  }
  if (!Number.isInteger(a) || !Number.isInteger(b)) bail();
  let r: number;
  if (op === '+') r = a + b;
  else if (op === '-') r = a - b;
  else if (op === '*') r = a * b;
  else if (op === '//') r = Math.floor(a / b);
  else if (op === '%') r = a % b;
  else return bail();
  if (!Number.isFinite(r)) bail();
  return r;
}

// The interpreter's binary operators other than and/or, in its order of type checks.
function binaryValue(op: string, a: unknown, b: unknown): unknown {
  if (op === '==' || op === '!=') {
    if (!isScalar(a) || !isScalar(b)) bail(); // the interpreter compares containers by identity
    return op === '==' ? a == b : a != b;
  }
  const membership = op === 'in' || op === 'not in';
  if (a === undefined || b === undefined) {
    if (b === undefined && membership) return op === 'not in';
    return bail();
  }
  if (a === null || b === null) return bail();
  if (op === '~') {
    if (!isPrimitive(a) || !isPrimitive(b)) bail();
    return String(a) + String(b);
  }
  if (typeof a === 'number' && typeof b === 'number') return arithmetic(op, a, b);
  if (Array.isArray(a) && Array.isArray(b)) return op === '+' ? a.concat(b) : bail();
  if (Array.isArray(b)) {
    if (!membership || !isPrimitive(a)) bail();
    const found = b.includes(a) && !(typeof a === 'number' && Number.isNaN(a));
    return op === 'in' ? found : !found;
  }
  if (op === '+' && (typeof a === 'string' || typeof b === 'string')) {
    if (!isPrimitive(a) || !isPrimitive(b)) bail();
    return String(a) + String(b);
  }
  if (membership && typeof a === 'string' && (typeof b === 'string' || isMapping(b))) {
    const found = typeof b === 'string' ? b.includes(a) : hasOwn(b, a);
    return op === 'in' ? found : !found;
  }
  return bail();
}

// The interpreter's `is` tests, by name (equalto/eq take a second value: selectattr only).
type TestFn = (v: unknown, arg?: unknown) => boolean;
const TESTS: Record<string, TestFn> = Object.assign(Object.create(null), {
  boolean: (v) => typeof v === 'boolean',
  callable: (v) => v instanceof Callable,
  odd: (v) => (typeof v === 'number' && Number.isInteger(v) ? v % 2 !== 0 : bail()),
  even: (v) => (typeof v === 'number' && Number.isInteger(v) ? v % 2 === 0 : bail()),
  false: (v) => v === false,
  true: (v) => v === true,
  none: (v) => v === null,
  string: (v) => typeof v === 'string',
  number: (v) => typeof v === 'number',
  integer: (v) => typeof v === 'number' && Number.isInteger(v),
  iterable: (v) => Array.isArray(v) || typeof v === 'string',
  mapping: (v) => isMapping(v),
  sequence: (v) => Array.isArray(v) || isMapping(v) || typeof v === 'string',
  lower: (v) => typeof v === 'string' && v === v.toLowerCase(),
  upper: (v) => typeof v === 'string' && v === v.toUpperCase(),
  defined: (v) => v !== undefined,
  undefined: (v) => v === undefined,
  equalto: (v: unknown, arg: unknown) => v === arg,
  eq: (v: unknown, arg: unknown) => v === arg,
} satisfies Record<string, TestFn>);

// --- String methods and filters.

function startsOrEnds(s: string, args: unknown[], kwargs: Kwargs, ends: boolean): boolean {
  if (kwargs || args.length === 0) bail();
  const p = args[0];
  if (typeof p === 'string') return ends ? s.endsWith(p) : s.startsWith(p);
  if (!Array.isArray(p)) bail();
  for (const x of p) {
    if (typeof x !== 'string') bail();
    if (ends ? s.endsWith(x) : s.startsWith(x)) return true;
  }
  return false;
}

// str.split(sep=None, maxsplit=-1) as the interpreter implements it.
function splitString(s: string, args: unknown[], kwargs: Kwargs): string[] {
  if (kwargs) bail();
  const sep = args.length > 0 ? args[0] : null;
  const max = args.length > 1 ? args[1] : -1;
  if (!(typeof sep === 'string' || sep === null) || !(typeof max === 'number' && Number.isInteger(max))) bail();
  if (sep === null) {
    const text = s.trimStart();
    const out: string[] = [];
    for (const m of text.matchAll(/\S+/g)) {
      if (max !== -1 && out.length >= max) {
        out.push(m[0] + text.slice(m.index! + m[0].length));
        break;
      }
      out.push(m[0]);
    }
    return out;
  }
  if (sep === '') bail();
  const parts = s.split(sep);
  if (max !== -1 && parts.length > max) parts.push(parts.splice(max).join(sep));
  return parts;
}

// str.replace(old, new[, count]); count may also come as a keyword.
function replaceString(s: string, args: unknown[], kwargs: Kwargs): string {
  const [from, to] = args;
  if (args.length < 2 || typeof from !== 'string' || typeof to !== 'string') bail();
  const count = args.length > 2 ? args[2] : kwargs?.has('count') ? kwargs.get('count') : null;
  if (count !== null && !(typeof count === 'number' && Number.isInteger(count))) bail();
  // The interpreter matches with a /u regex: empty and surrogate patterns match differently from indexOf.
  if (from === '' || /[\ud800-\udfff]/.test(from)) bail();
  if (count === 0) return s;
  let left = count === null || count < 0 ? Infinity : count;
  let out = '';
  let at = 0;
  for (let i = s.indexOf(from); i !== -1 && left > 0; i = s.indexOf(from, at), left--) {
    out += s.slice(at, i) + to;
    at = i + from.length;
  }
  return out + s.slice(at);
}

function callStringMethod(s: string, name: string, args: unknown[], kwargs: Kwargs): unknown {
  // The interpreter's strip family takes no characters argument: any argument is ignored.
  switch (name) {
    case 'upper':
      return s.toUpperCase();
    case 'lower':
      return s.toLowerCase();
    case 'strip':
      return s.trim();
    case 'lstrip':
      return s.trimStart();
    case 'rstrip':
      return s.trimEnd();
    case 'title':
      return s.replace(/\b\w/g, upper);
    case 'capitalize':
      return s.charAt(0).toUpperCase() + s.slice(1);
    case 'startswith':
      return startsOrEnds(s, args, kwargs, false);
    case 'endswith':
      return startsOrEnds(s, args, kwargs, true);
    case 'split':
      return splitString(s, args, kwargs);
    case 'replace':
      return replaceString(s, args, kwargs);
  }
  return bail();
}

function upper(c: string): string {
  return c.toUpperCase();
}

function callObjectMethod(o: Record<string, unknown>, name: string, args: unknown[], kwargs: Kwargs): unknown {
  if (hasOwn(o, name)) bail(); // a key shadows the method
  switch (name) {
    case 'items':
      return Object.entries(o);
    case 'keys':
      return Object.keys(o);
    case 'values':
      return Object.values(o);
    case 'get':
      if (kwargs || args.length === 0 || typeof args[0] !== 'string') bail();
      return hasOwn(o, args[0] as string) ? o[args[0] as string] : args.length > 1 ? args[1] : null;
  }
  return bail();
}

// Joins a list the interpreter's way (raw values: none/undefined as ''); containers bail.
function joinList(items: unknown[], sep: string): string {
  for (const x of items) if (!(x === null || x === undefined || isPrimitive(x))) bail();
  return items.join(sep);
}

// A filter without arguments (`x | name`).
function filterPlain(name: string, v: unknown): unknown {
  if (name === 'safe') return v;
  if (name === 'tojson') return toJson(v, PLAIN_JSON, 0, true);
  if (Array.isArray(v)) {
    switch (name) {
      case 'list':
        return v;
      case 'first':
        return v.length > 0 ? v[0] : bail();
      case 'last':
        return v.length > 0 ? v[v.length - 1] : bail();
      case 'length':
        return v.length;
      case 'reverse':
        return v.slice().reverse();
      case 'join':
        return joinList(v, '');
      case 'string':
        return toJson(v, PLAIN_JSON, 0, false);
    }
  } else if (typeof v === 'string') {
    switch (name) {
      case 'length':
        return v.length;
      case 'upper':
      case 'lower':
      case 'title':
      case 'capitalize':
        return callStringMethod(v, name, [], null);
      case 'trim':
        return v.trim();
      case 'indent':
        return indentString(v, 4, false, false);
      case 'join':
      case 'string':
        return v;
      case 'int': {
        const n = parseInt(v, 10);
        return Number.isNaN(n) ? 0 : n;
      }
    }
  } else if (typeof v === 'number') {
    switch (name) {
      case 'abs':
        return Math.abs(v);
      case 'int':
        return Math.floor(v);
      case 'string':
        return String(v);
    }
  } else if (isMapping(v)) {
    switch (name) {
      case 'items':
        return Object.entries(v);
      case 'length':
        return Object.keys(v).length;
      case 'keys':
        return Object.keys(v);
      case 'values':
        return Object.values(v);
    }
  } else if (typeof v === 'boolean') {
    switch (name) {
      case 'bool':
        return v;
      case 'int':
        return v ? 1 : 0;
      case 'string':
        return v ? 'true' : 'false';
    }
  }
  return bail();
}

function indentString(s: string, width: number, first: boolean, blank: boolean): string {
  const pad = ' '.repeat(width);
  const lines = s.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if ((first || i > 0) && (blank || lines[i].length > 0)) lines[i] = pad + lines[i];
  }
  return lines.join('\n');
}

// The argument a filter takes positionally or by keyword, else its default.
function argOr(args: unknown[], i: number, kwargs: Kwargs, key: string, fallback: unknown): unknown {
  if (i < args.length) return args[i];
  if (kwargs?.has(key)) return kwargs.get(key);
  return fallback;
}

function tojsonWith(v: unknown, kwargs: Kwargs): string {
  const indent = kwargs?.has('indent') ? kwargs.get('indent') : null;
  const ensureAscii = kwargs?.has('ensure_ascii') ? kwargs.get('ensure_ascii') : false;
  const sortKeys = kwargs?.has('sort_keys') ? kwargs.get('sort_keys') : false;
  const separators = kwargs?.has('separators') ? kwargs.get('separators') : null;
  if (!(indent === null || (typeof indent === 'number' && Number.isInteger(indent) && indent >= 0))) bail();
  if (typeof ensureAscii !== 'boolean' || typeof sortKeys !== 'boolean') bail();
  if (separators !== null && !(Array.isArray(separators) && separators.length === 2 && typeof separators[0] === 'string' && typeof separators[1] === 'string')) bail();
  return toJson(v, { indent, ensureAscii, sortKeys, separators: separators as [string, string] | null }, 0, true);
}

// Resolves `item.a.b` for map(attribute=...): dicts by key, lists by index.
function attributePath(item: unknown, path: string): unknown {
  let v = item;
  for (const part of path.split('.')) {
    if (v instanceof Namespace) v = v.map.get(part);
    else if (isMapping(v)) v = hasOwn(v, part) ? v[part] : undefined;
    else if (Array.isArray(v)) {
      const i = parseInt(part, 10);
      if (Number.isNaN(i) || i < 0 || i >= v.length) return undefined;
      v = v[i];
    } else return undefined;
  }
  return v;
}

function isContainer(v: unknown): boolean {
  return v instanceof Namespace || isMapping(v);
}

// selectattr / rejectattr: `test` (a name from TESTS, or truthiness) on each item's attribute.
function selectByAttr(v: unknown, select: boolean, attr: string, test: string | undefined, arg: unknown): unknown[] {
  if (!Array.isArray(v) || !v.every(isContainer)) bail();
  const out: unknown[] = [];
  for (const item of v) {
    const map = item instanceof Namespace ? item.map : null;
    const present = map ? map.has(attr) : hasOwn(item as object, attr);
    const a = map ? map.get(attr) : (item as Record<string, unknown>)[attr];
    const result = present ? (test === undefined ? truthy(a) : TESTS[test](a, arg)) : false;
    if (result === select) out.push(item);
  }
  return out;
}

// A filter with arguments (`x | name(...)`); selectattr/rejectattr are compiled separately.
function filterCall(name: string, v: unknown, args: unknown[], kwargs: Kwargs): unknown {
  switch (name) {
    case 'tojson':
      return tojsonWith(v, kwargs);
    case 'default': {
      const fallback = args.length > 0 ? args[0] : '';
      const boolean = argOr(args, 1, kwargs, 'boolean', false);
      if (typeof boolean !== 'boolean') bail();
      return v === undefined || (boolean && !truthy(v)) ? fallback : v;
    }
    case 'join': {
      const sep = argOr(args, 0, kwargs, 'separator', '');
      if (typeof sep !== 'string') bail();
      if (typeof v === 'string') return Array.from(v).join(sep);
      return Array.isArray(v) ? joinList(v, sep) : bail();
    }
    case 'int': {
      const fallback = argOr(args, 0, kwargs, 'default', 0);
      if (typeof v === 'string') {
        const n = parseInt(v, 10);
        return Number.isNaN(n) ? fallback : n;
      }
      if (typeof v === 'number') return v;
      return typeof v === 'boolean' ? (v ? 1 : 0) : bail();
    }
    case 'map': {
      if (!Array.isArray(v) || !kwargs?.has('attribute')) bail();
      const attr = kwargs.get('attribute');
      if (typeof attr !== 'string' || !v.every(isContainer)) bail();
      const hasDefault = kwargs.has('default');
      const out: unknown[] = [];
      for (const item of v) {
        const x = attributePath(item, attr);
        out.push(x === undefined && hasDefault ? kwargs.get('default') : x);
      }
      return out;
    }
    case 'indent': {
      if (typeof v !== 'string') bail();
      const width = argOr(args, 0, kwargs, 'width', 4);
      const first = argOr(args, 1, kwargs, 'first', false);
      const blank = argOr(args, 2, kwargs, 'blank', false);
      if (!(typeof width === 'number' && Number.isInteger(width) && width >= 0)) bail();
      if (typeof first !== 'boolean' || typeof blank !== 'boolean') bail();
      return indentString(v, width, first, blank);
    }
    case 'replace':
      if (typeof v !== 'string') bail();
      // The filter form always passes its keywords along (count= among them).
      return replaceString(v, args, kwargs ?? new Map());
  }
  return bail();
}

// --- Globals.

function makeNamespace(args: unknown[], kwargs: Kwargs): Namespace {
  if (args.length > 1) bail();
  const map = new Map<string, unknown>();
  if (args.length === 1) {
    if (!isMapping(args[0])) bail();
    for (const [k, v] of Object.entries(args[0])) map.set(k, v);
  }
  if (kwargs) for (const [k, v] of kwargs) map.set(k, v);
  return new Namespace(map);
}

function rangeList(args: unknown[], kwargs: Kwargs): number[] {
  if (kwargs || args.length === 0 || args.length > 3) bail();
  if (!args.every(isInteger)) bail();
  const [a, b, step = 1] = args as number[];
  const [start, stop] = args.length === 1 ? [0, a] : [a, b];
  if (step === 0) bail();
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

const MONTH_LONG = new Intl.DateTimeFormat(undefined, { month: 'long' });
const MONTH_SHORT = new Intl.DateTimeFormat(undefined, { month: 'short' });
// strftime_now with the directives the interpreter knows (others stay as written).
function strftimeNow(format: string): string {
  const d = new Date();
  return format.replace(/%[YmdbBHM%]/g, (t) => strftimeDirective(d, t));
}

function two(n: number): string {
  return String(n).padStart(2, '0');
}

function strftimeDirective(d: Date, t: string): string {
  switch (t) {
    case '%Y':
      return String(d.getFullYear());
    case '%m':
      return two(d.getMonth() + 1);
    case '%d':
      return two(d.getDate());
    case '%b':
      return MONTH_SHORT.format(d);
    case '%B':
      return MONTH_LONG.format(d);
    case '%H':
      return two(d.getHours());
    case '%M':
      return two(d.getMinutes());
  }
  return '%';
}

const GLOBAL_FUNCTIONS: Record<string, Callable> = {
  namespace: new Callable(makeNamespace),
  // Always an error: the interpreter's re-run throws it with the template's own message.
  raise_exception: new Callable(() => bail()),
  range: new Callable(rangeList),
  strftime_now: new Callable((args, kwargs) => (args.length === 1 && !kwargs && typeof args[0] === 'string' ? strftimeNow(args[0]) : bail())),
};

// The interpreter's globals, shared by all renders (never written: a top-level `set` of one
// of these names goes to the render's own scope below and shadows it, as it would replace it).
const GLOBALS = new Scope(null);
for (const name of GLOBAL_NAMES) GLOBALS.set(name, hasOwn(CONSTANTS, name) ? CONSTANTS[name] : GLOBAL_FUNCTIONS[name]);

// The global scope of one render: the template's variables.
function rootScope(vars: Record<string, unknown>): Scope {
  const root = new Scope(GLOBALS);
  for (const name of Object.keys(vars)) {
    if (GLOBALS.vars.has(name)) bail(); // the interpreter refuses to redeclare a global
    const v = vars[name];
    // Values are JSON (and undefined); a function would be callable in the interpreter.
    if (typeof v === 'function' || typeof v === 'bigint' || typeof v === 'symbol') bail();
    root.set(name, v);
  }
  return root;
}

// --- The compiler.

interface Context {
  inLoop: boolean; // break/continue allowed here
  assigned: Set<string>; // every name the template binds (globals not among them are constants)
  usesLoop: boolean; // the template reads `loop` somewhere: build it per iteration
}

// Names bound anywhere (set, for, macro, macro parameters), and whether `loop` is read.
function scanNames(node: unknown, assigned: Set<string>, idents: Set<string>): void {
  if (Array.isArray(node)) {
    for (const x of node) scanNames(x, assigned, idents);
    return;
  }
  if (node instanceof Map) {
    for (const [k, v] of node) {
      scanNames(k, assigned, idents);
      scanNames(v, assigned, idents);
    }
    return;
  }
  if (typeof node !== 'object' || node === null || typeof (node as Node).type !== 'string') return;
  const n = node as Node & Record<string, unknown>;
  const bind = (target: unknown) => {
    const t = target as Node;
    if (t.type === 'Identifier') assigned.add((t as Ident).value);
    else if (t.type === 'TupleLiteral') for (const x of (t as ValueNode<Node[]>).value) if (x.type === 'Identifier') assigned.add((x as Ident).value);
  };
  if (n.type === 'Set') bind(n['assignee']);
  if (n.type === 'For') bind(n['loopvar']);
  if (n.type === 'Macro') {
    bind(n['name']);
    for (const a of n['args'] as Arg[]) bind(a.type === 'KeywordArgumentExpression' ? a.key : a);
  }
  if (n.type === 'Identifier') idents.add((n as unknown as Ident).value);
  for (const k of Object.keys(n)) if (k !== 'type') scanNames(n[k], assigned, idents);
}

/** The compiled render of a parsed template, or null if it uses something outside the compiled subset. */
export function compileTemplate(program: { body: Node[] }): CompiledTemplate | null {
  const assigned = new Set<string>();
  const idents = new Set<string>();
  scanNames(program.body, assigned, idents);
  // Every interpreter scope defines its own `namespace`; rebinding it would need that too.
  // `kwargs` / `varargs` are a macro's special arguments.
  if (assigned.has('namespace') || idents.has('kwargs') || idents.has('varargs')) return null;
  let body: Block;
  try {
    body = compileBlock(program.body, { inLoop: false, assigned, usesLoop: idents.has('loop') });
  } catch {
    // Unsupported, or a node shape this compiler does not know (another parser version): the
    // interpreter keeps the template.
    return null;
  }
  return (vars) => body(rootScope(vars));
}

function unsupported(what: string): never {
  throw new Unsupported(what);
}

function compileBlock(nodes: Node[], cx: Context): Block {
  const parts = nodes.map((n) => compileStatement(n, cx));
  if (parts.length === 0) return () => '';
  if (parts.length === 1) return parts[0];
  return (s) => {
    let out = '';
    for (let i = 0; i < parts.length; i++) out += parts[i](s);
    return out;
  };
}

function compileStatement(node: Node, cx: Context): Block {
  const n = node as Node & Record<string, unknown>;
  switch (node.type) {
    case 'StringLiteral': {
      const text = (node as ValueNode<string>).value;
      return () => text;
    }
    case 'Comment':
      return () => '';
    case 'If':
      return compileIf(n, cx);
    case 'For':
      return compileFor(n, cx);
    case 'Set':
      return compileSet(n, cx);
    case 'Macro':
      return compileMacro(n, cx);
    case 'Break':
    case 'Continue': {
      if (!cx.inLoop) unsupported('break/continue outside a loop');
      const signal = node.type === 'Break' ? BREAK : CONTINUE;
      return () => {
        throw signal;
      };
    }
    case 'CallStatement':
    case 'FilterStatement':
      return unsupported(node.type);
  }
  const e = compileExpr(node, cx);
  return (s) => toOutput(e(s));
}

function compileIf(n: Record<string, unknown>, cx: Context): Block {
  const test = compileExpr(n['test'] as Node, cx);
  const body = compileBlock(n['body'] as Node[], cx);
  const alternate = compileBlock(n['alternate'] as Node[], cx);
  return (s) => (truthy(test(s)) ? body(s) : alternate(s));
}

// The names of a tuple target (`for k, v in ...`, `set a, b = ...`).
function targetNames(target: Node): string[] {
  return (target as ValueNode<Node[]>).value.map((x) => (x.type === 'Identifier' ? (x as Ident).value : unsupported('unpacking target')));
}

// Unpacking needs a list of exactly as many items.
function checkUnpack(v: unknown, n: number): void {
  if (!Array.isArray(v) || v.length !== n) bail();
}

function bindNames(s: Scope, names: string[], values: unknown[]): void {
  for (let i = 0; i < names.length; i++) s.set(names[i], values[i]);
}

// Binds a loop item to the loop variable(s).
function loopBinder(target: Node): (s: Scope, item: unknown) => void {
  if (target.type === 'Identifier') {
    const name = (target as Ident).value;
    return (s, item) => {
      s.set(name, item);
    };
  }
  const names = targetNames(target);
  return (s, item) => bindNames(s, names, item as unknown[]);
}

// `for`: one scope for all iterations (sets persist across them); a filter condition is
// evaluated for every item first, as the interpreter does; an iteration cut short by
// break/continue contributes no output, and `else` runs when no iteration completed.
function compileFor(n: Record<string, unknown>, cx: Context): Block {
  let iterableNode = n['iterable'] as Node & Record<string, unknown>;
  let condition: Expr | null = null;
  if (iterableNode.type === 'SelectExpression') {
    condition = compileExpr(iterableNode['test'] as Node, cx);
    iterableNode = iterableNode['lhs'] as Node & Record<string, unknown>;
  }
  const iterable = compileExpr(iterableNode, cx);
  const loopvar = n['loopvar'] as Node;
  const bind = loopBinder(loopvar);
  const arity = loopvar.type === 'TupleLiteral' ? targetNames(loopvar).length : 0;
  const body = compileBlock(n['body'] as Node[], { ...cx, inLoop: true });
  const otherwise = compileBlock(n['defaultBlock'] as Node[], cx);
  const usesLoop = cx.usesLoop;
  return (outer) => {
    const s = new Scope(outer);
    let items = iterable(s);
    if (isMapping(items)) items = Object.keys(items);
    else if (!Array.isArray(items)) bail();
    const all = items as unknown[];
    // The interpreter checks every item's unpacking before the first iteration.
    if (arity) for (const item of all) checkUnpack(item, arity);
    let list = all;
    if (condition) {
      list = [];
      const probe = new Scope(s);
      for (const item of all) {
        bind(probe, item);
        if (truthy(condition(probe))) list.push(item);
      }
    }
    let out = '';
    let completed = false;
    const len = list.length;
    for (let i = 0; i < len; i++) {
      if (usesLoop) {
        s.set('loop', {
          index: i + 1,
          index0: i,
          revindex: len - i,
          revindex0: len - i - 1,
          first: i === 0,
          last: i === len - 1,
          length: len,
          previtem: i > 0 ? list[i - 1] : undefined,
          nextitem: i < len - 1 ? list[i + 1] : undefined,
        });
      }
      bind(s, list[i]);
      try {
        out += body(s);
      } catch (err) {
        if (err === CONTINUE) continue;
        if (err === BREAK) break;
        throw err;
      }
      completed = true;
    }
    return completed ? out : out + otherwise(s);
  };
}

function compileSet(n: Record<string, unknown>, cx: Context): Block {
  const assignee = n['assignee'] as Node & Record<string, unknown>;
  const unpack = assignee.type === 'TupleLiteral';
  const value: Expr = n['value'] ? compileExpr(n['value'] as Node, cx, unpack) : compileBlock(n['body'] as Node[], cx);
  if (assignee.type === 'Identifier') {
    const name = (assignee as unknown as Ident).value;
    return (s) => {
      s.set(name, value(s));
      return '';
    };
  }
  if (unpack) {
    const names = targetNames(assignee);
    return (s) => {
      const v = value(s);
      checkUnpack(v, names.length);
      bindNames(s, names, v as unknown[]);
      return '';
    };
  }
  if (assignee.type === 'MemberExpression' && !assignee['computed'] && (assignee['property'] as Node).type === 'Identifier') {
    const object = compileExpr(assignee['object'] as Node, cx);
    const key = (assignee['property'] as Ident).value;
    return (s) => {
      const v = value(s);
      const ns = object(s);
      if (!(ns instanceof Namespace)) bail();
      ns.map.set(key, v);
      return '';
    };
  }
  return unsupported('set target');
}

// A macro: its scope's parent is the caller's scope (the interpreter's dynamic scoping).
// Arguments bind by position, then keyword; defaults are evaluated in the macro's scope.
function compileMacro(n: Record<string, unknown>, cx: Context): Block {
  const name = (n['name'] as Ident).value;
  const params = (n['args'] as Arg[]).map((a) =>
    a.type === 'Identifier'
      ? { name: (a as unknown as Ident).value, fallback: null }
      : { name: a.key!.value, fallback: compileExpr(a.value!, cx) },
  );
  const body = compileBlock(n['body'] as Node[], { ...cx, inLoop: false });
  const macro = new Callable((args, kwargs, caller) => {
    if (args.length > params.length) bail();
    if (kwargs) for (const k of kwargs.keys()) if (!(params.findIndex(nameIs, k) >= args.length)) bail();
    const s = new Scope(caller);
    const pending: number[] = [];
    for (let i = 0; i < params.length; i++) {
      const p = params[i];
      if (i < args.length) s.set(p.name, args[i]);
      else if (kwargs?.has(p.name)) s.set(p.name, kwargs.get(p.name));
      else {
        s.set(p.name, undefined);
        if (p.fallback) pending.push(i);
      }
    }
    for (const i of pending) s.set(params[i].name, params[i].fallback!(s));
    return body(s);
  });
  return (s) => {
    s.set(name, macro);
    return '';
  };
}

function nameIs(this: string, p: { name: string }): boolean {
  return p.name === this;
}

interface CompiledArgs {
  args: Expr[];
  kwargs: [string, Expr][];
}

function compileArgs(nodes: Arg[], cx: Context, tuples = false): CompiledArgs {
  const out: CompiledArgs = { args: [], kwargs: [] };
  for (const a of nodes) {
    if (a.type === 'SpreadExpression' || a.type === 'KeywordSpreadExpression') unsupported('argument unpacking');
    if (a.type === 'KeywordArgumentExpression') {
      if (out.kwargs.some(([k]) => k === a.key!.value)) unsupported('repeated keyword');
      out.kwargs.push([a.key!.value, compileExpr(a.value!, cx, tuples)]);
    } else out.args.push(compileExpr(a, cx, tuples));
  }
  return out;
}

function evalArgs(c: CompiledArgs, s: Scope): [unknown[], Kwargs] {
  const args: unknown[] = [];
  for (const e of c.args) args.push(e(s));
  if (c.kwargs.length === 0) return [args, null];
  const kwargs = new Map<string, unknown>();
  for (const [k, e] of c.kwargs) kwargs.set(k, e(s));
  return [args, kwargs];
}

// `tuples`: a tuple literal is allowed here and evaluates to a list (where the interpreter's
// TupleValue behaves as a list: `in`, startswith/endswith, tojson separators, unpacking).
function compileExpr(node: Node, cx: Context, tuples = false): Expr {
  const n = node as Node & Record<string, unknown>;
  switch (node.type) {
    case 'StringLiteral':
    case 'IntegerLiteral': {
      const v = (node as ValueNode<unknown>).value;
      return () => v;
    }
    case 'Identifier':
      return compileIdentifier((node as Ident).value, cx);
    case 'ArrayLiteral':
    case 'TupleLiteral': {
      if (node.type === 'TupleLiteral' && !tuples) unsupported('tuple');
      const items = (node as ValueNode<Node[]>).value.map((x) => compileExpr(x, cx));
      return (s) => {
        const out: unknown[] = [];
        for (const e of items) out.push(e(s));
        return out;
      };
    }
    case 'ObjectLiteral':
      return compileObjectLiteral(node as ValueNode<Map<Node, Node>>, cx);
    case 'MemberExpression':
      return compileMember(n, cx);
    case 'CallExpression':
      return compileCall(n, cx);
    case 'UnaryExpression':
      return compileUnary(n, cx);
    case 'BinaryExpression':
      return compileBinary(n, cx);
    case 'FilterExpression':
      return compileFilter(n, cx);
    case 'TestExpression':
      return compileTest(n, cx);
    case 'SelectExpression': {
      const test = compileExpr(n['test'] as Node, cx);
      const lhs = compileExpr(n['lhs'] as Node, cx);
      return (s) => (truthy(test(s)) ? lhs(s) : undefined);
    }
    case 'Ternary': {
      const cond = compileExpr(n['condition'] as Node, cx);
      const a = compileExpr(n['trueExpr'] as Node, cx);
      const b = compileExpr(n['falseExpr'] as Node, cx);
      return (s) => (truthy(cond(s)) ? a(s) : b(s));
    }
  }
  return unsupported(node.type);
}

function compileIdentifier(name: string, cx: Context): Expr {
  if (hasOwn(CONSTANTS, name) && !cx.assigned.has(name)) {
    const v = CONSTANTS[name];
    return () => v;
  }
  return (s) => s.lookup(name);
}

// Keys must be strings; an integer-like key would reorder a plain object (a Map keeps order).
function compileObjectLiteral(node: ValueNode<Map<Node, Node>>, cx: Context): Expr {
  const entries = [...node.value].map(([k, v]) => [compileExpr(k, cx), compileExpr(v, cx)] as const);
  return (s) => {
    const o: Record<string, unknown> = {};
    for (const [k, v] of entries) {
      const key = k(s);
      if (typeof key !== 'string' || /^(0|[1-9]\d*)$/.test(key)) bail();
      Object.defineProperty(o, key, { value: v(s), enumerable: true, writable: true, configurable: true });
    }
    return o;
  };
}

function compileMember(n: Record<string, unknown>, cx: Context): Expr {
  const object = compileExpr(n['object'] as Node, cx);
  const prop = n['property'] as Node & Record<string, unknown>;
  if (n['computed'] && prop.type === 'SliceExpression') {
    const part = (k: string) => (prop[k] ? compileExpr(prop[k] as Node, cx) : () => undefined);
    const [start, stop, step] = [part('start'), part('stop'), part('step')];
    return (s) => {
      const o = object(s);
      if (!(Array.isArray(o) || typeof o === 'string')) bail();
      return sliceValue(o, start(s), stop(s), step(s));
    };
  }
  if (!n['computed']) {
    const key = (prop as unknown as ValueNode<string | number>).value;
    return (s) => getMember(object(s), key);
  }
  const key = compileExpr(prop, cx);
  return (s) => getMember(object(s), key(s));
}

function compileCall(n: Record<string, unknown>, cx: Context): Expr {
  const callee = n['callee'] as Node & Record<string, unknown>;
  const calleeName = callee.type === 'MemberExpression' && !callee['computed'] ? (callee['property'] as Ident).value : null;
  const startsEnds = calleeName === 'startswith' || calleeName === 'endswith';
  const c = compileArgs(n['args'] as Arg[], cx, startsEnds);
  if (calleeName !== null && typeof calleeName === 'string') {
    // A method call: the interpreter evaluates the arguments, then the object.
    const object = compileExpr(callee['object'] as Node, cx);
    return (s) => {
      const [args, kwargs] = evalArgs(c, s);
      const o = object(s);
      if (typeof o === 'string') return callStringMethod(o, calleeName, args, kwargs);
      if (isMapping(o)) return callObjectMethod(o, calleeName, args, kwargs);
      return bail();
    };
  }
  const fn = compileExpr(callee, cx);
  return (s) => {
    const [args, kwargs] = evalArgs(c, s);
    const f = fn(s);
    if (!(f instanceof Callable)) bail();
    return f.call(args, kwargs, s);
  };
}

function compileUnary(n: Record<string, unknown>, cx: Context): Expr {
  const arg = compileExpr(n['argument'] as Node, cx);
  const op = (n['operator'] as Operator).value;
  if (op === 'not') return (s) => !truthy(arg(s));
  if (op !== '-' && op !== '+') unsupported(`unary ${op}`);
  const sign = op === '-' ? -1 : 1;
  return (s) => {
    const v = arg(s);
    if (typeof v === 'number') return sign * v;
    if (typeof v === 'boolean') return sign * (v ? 1 : 0);
    return bail();
  };
}

const BINARY_OPERATORS = new Set(['==', '!=', 'in', 'not in', '~', '+', '-', '*', '//', '%', '<', '>', '<=', '>=']);

function compileBinary(n: Record<string, unknown>, cx: Context): Expr {
  const op = (n['operator'] as Operator).value;
  const membership = op === 'in' || op === 'not in';
  const left = compileExpr(n['left'] as Node, cx);
  const right = compileExpr(n['right'] as Node, cx, membership);
  if (op === 'and') return (s) => {
    const a = left(s);
    return truthy(a) ? right(s) : a;
  };
  if (op === 'or') return (s) => {
    const a = left(s);
    return truthy(a) ? a : right(s);
  };
  // `/` and `**` make floats, which plain numbers cannot tell from integers.
  if (!BINARY_OPERATORS.has(op)) unsupported(`operator ${op}`);
  if (op === '+') {
    // The common case first: string + string.
    return (s) => {
      const a = left(s);
      const b = right(s);
      return typeof a === 'string' && typeof b === 'string' ? a + b : binaryValue(op, a, b);
    };
  }
  return (s) => binaryValue(op, left(s), right(s));
}

const PLAIN_FILTERS = new Set(['safe', 'tojson', 'list', 'first', 'last', 'length', 'reverse', 'join', 'string', 'upper', 'lower', 'title', 'capitalize', 'trim', 'indent', 'int', 'abs', 'items', 'keys', 'values', 'bool']);
const CALL_FILTERS = new Set(['tojson', 'default', 'join', 'int', 'map', 'indent', 'replace']);

function compileFilter(n: Record<string, unknown>, cx: Context): Expr {
  const operand = compileExpr(n['operand'] as Node, cx);
  const filter = n['filter'] as Node & Record<string, unknown>;
  if (filter.type === 'Identifier') {
    const name = (filter as unknown as Ident).value;
    if (!PLAIN_FILTERS.has(name)) unsupported(`filter ${name}`);
    return (s) => filterPlain(name, operand(s));
  }
  const callee = filter['callee'] as Node;
  if (callee.type !== 'Identifier') unsupported('filter');
  const name = (callee as Ident).value;
  const argNodes = filter['args'] as Arg[];
  if (name === 'selectattr' || name === 'rejectattr') return compileSelectAttr(operand, name === 'selectattr', argNodes);
  if (!CALL_FILTERS.has(name)) unsupported(`filter ${name}`);
  const c = compileArgs(argNodes, cx, name === 'tojson');
  return (s) => {
    const v = operand(s);
    const [args, kwargs] = evalArgs(c, s);
    return filterCall(name, v, args, kwargs);
  };
}

// selectattr/rejectattr take string literals only: attribute, test name, the test's value.
function compileSelectAttr(operand: Expr, select: boolean, argNodes: Arg[]): Expr {
  if (argNodes.length === 0 || argNodes.length > 3 || argNodes.some((a) => a.type !== 'StringLiteral')) unsupported('selectattr');
  const [attr, test, arg] = argNodes.map((a) => (a as unknown as ValueNode<string>).value);
  if (test !== undefined && !hasOwn(TESTS, test)) unsupported(`test ${test}`);
  if ((test === 'equalto' || test === 'eq') !== (arg !== undefined)) unsupported('selectattr arguments');
  return (s) => selectByAttr(operand(s), select, attr, test, arg);
}

function compileTest(n: Record<string, unknown>, cx: Context): Expr {
  const operand = compileExpr(n['operand'] as Node, cx);
  const name = (n['test'] as unknown as Ident).value;
  if (!hasOwn(TESTS, name) || name === 'equalto' || name === 'eq') unsupported(`test ${name}`);
  const test = TESTS[name];
  const negate = n['negate'] === true;
  return (s) => test(operand(s)) !== negate;
}
