// The prebuilt text-delta events are byte for byte the events built from the chunk objects.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chatChunk, completionChunk, sseEvent, textEventFormat } from '../../src/openai/responses.js';

describe('textEventFormat', () => {
  it('writes what serializing the whole chunk writes, for any text and model name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), fc.boolean(), (text, model, includeUsage) => {
        // A model name holding the placeholder must not confuse the split.
        const meta = { id: 'chatcmpl-1', created: 1700000000, model: `${model}\u0000kvgate-text\u0000` };
        expect(textEventFormat('chat', meta, includeUsage)(text)).toBe(sseEvent(chatChunk(meta, { content: text }, null, includeUsage)));
        expect(textEventFormat('completion', meta, includeUsage)(text)).toBe(sseEvent(completionChunk(meta, text, null, includeUsage)));
      }),
    );
  });
});
