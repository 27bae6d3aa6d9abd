// Incremental detokenization of a token stream. Text is decoded over a small window of
// the previous tokens (the prefix) and the new ones, and only the part after the
// prefix's text is emitted. A window that decodes to text ending in U+FFFD is an
// incomplete UTF-8 sequence (a character split across byte-level tokens): it is held
// back until the next tokens complete it, so no half character is ever emitted.
// Concatenating every push() and the final flush() gives decode(all ids).

export interface Decoding {
  decode(ids: readonly number[], skipSpecialTokens: boolean): string;
}

const REPLACEMENT = '\uFFFD';

export class IncrementalDetokenizer {
  private readonly ids: number[] = [];
  // ids[prefixOffset, readOffset) were emitted last and give the context for decoding
  // what follows; ids[readOffset, ...) are not emitted yet.
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(
    private readonly tokenizer: Decoding,
    private readonly skipSpecialTokens = true,
  ) {}

  // Returns the text that the new ids complete (possibly '').
  push(newIds: readonly number[]): string {
    for (const id of newIds) this.ids.push(id);
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const fullText = this.decodeRange(this.prefixOffset, this.ids.length);
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT)) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return fullText.slice(prefixText.length);
  }

  // At the end of the stream: whatever is held back, replacement characters included.
  flush(): string {
    const prefixText = this.decodeRange(this.prefixOffset, this.readOffset);
    const fullText = this.decodeRange(this.prefixOffset, this.ids.length);
    this.prefixOffset = this.readOffset = this.ids.length;
    return fullText.length > prefixText.length ? fullText.slice(prefixText.length) : '';
  }

  private decodeRange(from: number, to: number): string {
    return from >= to ? '' : this.tokenizer.decode(this.ids.slice(from, to), this.skipSpecialTokens);
  }
}
