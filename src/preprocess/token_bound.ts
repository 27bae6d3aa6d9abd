// A lower bound on a text's token count, known without tokenizing it. Every token covers at
// most `maxTokenBytes` bytes of the normalized text (the longest vocabulary entry), and the
// normalizer shrinks the text's UTF-8 by at most a factor `shrink`, so
//   tokens >= bytes / (maxTokenBytes * shrink).
// Unicode normalization and lowercasing keep every ASCII char as one char of at least one
// byte, so for them the normalized text also has at least as many bytes as the text has ASCII
// chars: ASCII text (what a flood of filler usually is) is bounded 3x tighter.
// That holds only when every input byte ends up in some token. It does for byte-level BPE
// (GPT-2, Llama 3, Qwen) and BPE with byte fallback (Llama 2, Mistral); it does not when a
// model fuses unknown text into one token (WordPiece's [UNK] per word), a pre-tokenizer
// drops whitespace (BERT), a normalizer deletes text (Strip, StripAccents, Precompiled), or an
// added token swallows the whitespace around it (lstrip/rstrip). Then the bound is unknown.

type Json = Record<string, unknown>;

export interface TokenBound {
  // Longest vocabulary entry in bytes of the text it stands for.
  maxTokenBytes: number;
  // Most bytes of input one token can stand for (maxTokenBytes * shrink), or null when the
  // tokenizer can drop or fuse text and no such bound exists.
  maxBytesPerToken: number | null;
  // The normalizer keeps ASCII chars (see above).
  keepsAscii: boolean;
}

// The fewest tokens `text` can have under `bound` (0 when there is no bound).
export function minTokens(bound: TokenBound, text: string): number {
  if (bound.maxBytesPerToken === null) return 0;
  const bytes = Buffer.byteLength(text);
  let tokens = bytes / bound.maxBytesPerToken;
  if (bound.keepsAscii) {
    // A UTF-16 unit that is not ASCII encodes to at most 3 bytes, so at least this many are ASCII.
    const ascii = (3 * text.length - bytes) / 2;
    tokens = Math.max(tokens, ascii / bound.maxTokenBytes);
  }
  return Math.ceil(tokens);
}

// GPT-2's byte-level alphabet: every byte is one printable char (bytes that are printable in
// Latin-1 as themselves, the others shifted to U+0100..U+0143).
function isByteLevelChar(c: number): boolean {
  return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 323);
}

function bytesOf(token: string, byteLevel: boolean): number {
  if (!byteLevel) return Buffer.byteLength(token);
  let n = 0;
  for (const ch of token) {
    const c = ch.codePointAt(0)!;
    n += isByteLevelChar(c) ? 1 : Buffer.byteLength(ch);
  }
  return n;
}

const obj = (v: unknown): Json | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null);

// How much a normalizer can shrink UTF-8 (null: without bound). NFC/NFD map e.g. the Kelvin
// sign (3 bytes) to 'K' and compose Hangul jamo (9 bytes) into one syllable (3); NFKC/NFKD
// map mathematical letters (4 bytes) to ASCII; lowercasing maps the Kelvin sign to 'k'.
function shrinkOf(normalizer: unknown): number | null {
  const n = obj(normalizer);
  if (n === null) return 1;
  switch (n['type']) {
    case 'NFC':
    case 'NFD':
    case 'Lowercase':
      return 3;
    case 'NFKC':
    case 'NFKD':
      return 4;
    case 'Prepend':
    case 'ByteLevel':
      return 1;
    case 'Replace': {
      const pattern = obj(n['pattern'])?.['String'];
      const content = n['content'];
      return typeof pattern === 'string' && typeof content === 'string' && Buffer.byteLength(content) >= Buffer.byteLength(pattern) ? 1 : null;
    }
    case 'Sequence': {
      let f = 1;
      for (const m of (n['normalizers'] as unknown[]) ?? []) {
        const g = shrinkOf(m);
        if (g === null) return null;
        f *= g;
      }
      return f;
    }
    default:
      return null;
  }
}

// Does the pre-tokenizer keep every byte? (null = no pre-tokenizer.)
function keepsText(pre: unknown): boolean {
  const p = obj(pre);
  if (p === null) return true;
  switch (p['type']) {
    case 'ByteLevel':
    case 'Metaspace':
    case 'Digits':
    case 'UnicodeScripts':
      return true;
    case 'Split':
    case 'Punctuation':
      return p['behavior'] !== 'Removed';
    case 'Sequence':
      return ((p['pretokenizers'] as unknown[]) ?? []).every(keepsText);
    default:
      return false;
  }
}

function keepsAscii(normalizer: unknown): boolean {
  const n = obj(normalizer);
  if (n === null) return true;
  if (n['type'] === 'Sequence') return ((n['normalizers'] as unknown[]) ?? []).every(keepsAscii);
  return ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase'].includes(n['type'] as string);
}

function hasByteLevel(pre: unknown): boolean {
  const p = obj(pre);
  if (p === null) return false;
  if (p['type'] === 'ByteLevel') return true;
  return p['type'] === 'Sequence' && ((p['pretokenizers'] as unknown[]) ?? []).some(hasByteLevel);
}

// `json` is the parsed tokenizer.json.
export function tokenBound(json: Json): TokenBound {
  const model = obj(json['model']) ?? {};
  const byteLevel = hasByteLevel(json['pre_tokenizer']);
  let maxTokenBytes = 1;
  const vocab = model['vocab'];
  // BPE/WordPiece/WordLevel: {token: id}; Unigram: [[token, score], ...].
  const entries: unknown[] = Array.isArray(vocab) ? vocab.map((e) => (Array.isArray(e) ? e[0] : null)) : Object.keys(obj(vocab) ?? {});
  for (const t of entries) if (typeof t === 'string') maxTokenBytes = Math.max(maxTokenBytes, bytesOf(t, byteLevel));
  const added = (json['added_tokens'] as { content?: unknown; lstrip?: boolean; rstrip?: boolean }[] | undefined) ?? [];
  for (const t of added) if (typeof t.content === 'string') maxTokenBytes = Math.max(maxTokenBytes, Buffer.byteLength(t.content));

  const everyByteTokenized =
    (model['type'] === 'BPE' && (byteLevel || model['byte_fallback'] === true || (model['unk_token'] != null && model['fuse_unk'] !== true))) ||
    (model['type'] === 'Unigram' && model['byte_fallback'] === true);
  const shrink = shrinkOf(json['normalizer']);
  const holds =
    everyByteTokenized &&
    shrink !== null &&
    keepsText(json['pre_tokenizer']) &&
    json['truncation'] == null &&
    !added.some((t) => t.lstrip === true || t.rstrip === true);
  return { maxTokenBytes, maxBytesPerToken: holds ? maxTokenBytes * shrink! : null, keepsAscii: keepsAscii(json['normalizer']) };
}
