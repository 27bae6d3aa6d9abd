// The obvious byte-level BPE, for differential tests of native/core/bpe.cc: added tokens split
// off with a regex, NFC per segment, the tokenizer.json pattern run by JavaScript's regex
// engine, and a merge loop that applies the lowest-ranked adjacent pair until none is left.
// Slow (string keys, quadratic merges) and short on purpose.

import { readFileSync } from 'node:fs';

type Json = Record<string, any>;

// GPT-2's byte-level alphabet: byte → the character that spells it in the vocabulary.
const BYTE_CHAR: string[] = (() => {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
})();

const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// HF's regex engine (Oniguruma) has its own Unicode data, older than Node's, and reads \s as
// White_Space (JavaScript's \s has U+FEFF, not U+0085): \p{L}, \p{N}, \s and \S become the
// character classes of native/core/unicode_classes.h, which test/native/unicode_classes.test.ts
// checks against HF on every code point. A leading case-insensitive group `(?i:...)` becomes a
// regex of its own tried first at each position, which is what alternation does.
// The header's [first, last, class] ranges (1 letter, 2 number, 3 space), as scripts/hf_char_classes.mjs gives them.
export function headerCharRanges(): [number, number, number][] {
  const header = readFileSync(new URL('../../native/core/unicode_classes.h', import.meta.url), 'utf8');
  const cls: Record<string, number> = { kLetter: 1, kNumber: 2, kSpace: 3 };
  return [...header.matchAll(/\{(0x[0-9A-F]+), (0x[0-9A-F]+), (k\w+)\}/g)].map((m) => [Number(m[1]), Number(m[2]), cls[m[3]!]!]);
}

const CLASSES: Record<string, string> = (() => {
  const sets = ['', '', '', ''];
  const hex = (cp: number) => `\\u{${cp.toString(16)}}`;
  for (const [first, last, cls] of headerCharRanges()) sets[cls] += `${hex(first)}-${hex(last)}`;
  return { '\\p{L}': sets[1]!, '\\p{N}': sets[2]!, '\\s': sets[3]! };
})();

// Replaces each class escape by its ranges: bare inside [...], bracketed outside; \S is [^\s].
function expandClasses(pattern: string): string {
  let out = '';
  let inSet = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const esc = pattern.startsWith('\\p{', i) ? pattern.slice(i, pattern.indexOf('}', i) + 1) : pattern.slice(i, i + 2);
      const set = CLASSES[esc];
      if (set !== undefined) out += inSet ? set : `[${set}]`;
      else if (esc === '\\S' && !inSet) out += `[^${CLASSES['\\s']}]`;
      else out += esc;
      i += esc.length - 1;
      continue;
    }
    if (c === '[') inSet = true;
    else if (c === ']') inSet = false;
    out += c;
  }
  return out;
}

function compile(pattern: string): RegExp[] {
  const m = /^\(\?i:([^()]*)\)\|(.*)$/s.exec(pattern);
  if (m === null) return [new RegExp(expandClasses(pattern), 'uy')];
  return [new RegExp(expandClasses(m[1]!), 'iuy'), new RegExp(expandClasses(m[2]!), 'uy')];
}

export class ReferenceBpe {
  private readonly vocab: Map<string, number>;
  private readonly ranks = new Map<string, number>();
  private readonly pieces: RegExp[];
  private readonly splitter: RegExp | null;
  private readonly added: Map<string, number>;
  private readonly nfc: boolean;
  private readonly ignoreMerges: boolean;

  constructor(json: Json) {
    const model = json['model'];
    this.vocab = new Map(Object.entries(model.vocab as Record<string, number>));
    (model.merges as (string | string[])[]).forEach((m, rank) => this.ranks.set(Array.isArray(m) ? m.join(' ') : m, rank));
    const pre = json['pre_tokenizer'];
    this.pieces = compile(pre.type === 'ByteLevel' ? GPT2 : pre.pretokenizers[0].pattern.Regex);
    this.nfc = json['normalizer']?.type === 'NFC';
    this.ignoreMerges = model.ignore_merges === true;
    const added = (json['added_tokens'] as { content: string; id: number }[]).map((t) => t.content);
    this.added = new Map((json['added_tokens'] as { content: string; id: number }[]).map((t) => [t.content, t.id]));
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    added.sort((a, b) => b.length - a.length);
    this.splitter = added.length ? new RegExp(`(${added.map(escape).join('|')})`) : null;
  }

  encode(text: string): number[] {
    const parts = this.splitter ? text.split(this.splitter) : [text];
    const out: number[] = [];
    parts.forEach((part, i) => {
      if (i % 2 === 1) out.push(this.added.get(part)!);
      else for (const piece of this.preTokenize(this.nfc ? part.normalize('NFC') : part)) out.push(...this.merge(piece));
    });
    return out;
  }

  private preTokenize(text: string): string[] {
    const out: string[] = [];
    for (let at = 0; at < text.length; ) {
      let end = -1;
      for (const re of this.pieces) {
        re.lastIndex = at;
        if (re.exec(text) !== null) {
          end = re.lastIndex;
          break;
        }
      }
      if (end <= at) throw new Error(`no pre-tokenizer match at ${at}`);
      out.push(text.slice(at, end));
      at = end;
    }
    return out;
  }

  private merge(piece: string): number[] {
    const bytes = Buffer.from(piece, 'utf8'); // lone surrogates read as U+FFFD, as in HF
    const whole = [...bytes].map((b) => BYTE_CHAR[b]!).join('');
    if (this.ignoreMerges && this.vocab.has(whole)) return [this.vocab.get(whole)!];
    let syms = [...bytes].map((b) => BYTE_CHAR[b]!);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < syms.length; i++) {
        const r = this.ranks.get(`${syms[i]} ${syms[i + 1]}`);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) break;
      syms = [...syms.slice(0, best), syms[best]! + syms[best + 1]!, ...syms.slice(best + 2)];
    }
    return syms.map((s) => this.vocab.get(s)!);
  }
}
