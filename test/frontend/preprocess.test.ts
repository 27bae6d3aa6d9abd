// Pre-processing with the real Qwen3 files: tokenizer facts, the chat template with every
// role, tools and add_generation_prompt, a model directory given by path, and bad input.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvgateError } from '../../src/errors.js';
import { defaultModelDir } from '../../src/preprocess/model_files.js';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';

let pre: Preprocessor;
beforeAll(() => {
  pre = new Preprocessor();
});

describe('Qwen3 tokenizer', () => {
  it('knows its end tokens and special tokens', async () => {
    const t = pre.tokenizer;
    expect([...t.eosTokenIds].sort()).toEqual([151643, 151645]);
    expect(t.tokenToId('<|im_end|>')).toBe(151645);
    expect(t.specialIds.has(151644)).toBe(true);
    expect(pre.maxModelLength).toBe(131072);
    // Same ids as deps.md §8 measured for this chat prefix.
    const ids = await pre.encodeChat('<|im_start|>system\nYou are helpful.<|im_end|>');
    expect(ids.slice(0, 8)).toEqual([151644, 8948, 198, 2610, 525, 10950, 13, 151645]);
  });
});

describe('chat template', () => {
  it('renders system, user, assistant (with tool calls) and tool messages, tools and the generation prompt', () => {
    const prompt = pre.renderChat({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', content: '{"temp":21}', tool_call_id: 'c1' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      addGenerationPrompt: true,
    });
    expect(prompt.startsWith('<|im_start|>system\nBe brief.\n\n# Tools')).toBe(true);
    expect(prompt).toContain('"name": "get_weather"');
    expect(prompt).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call>');
    expect(prompt).toContain('<|im_start|>user\n<tool_response>\n{"temp":21}\n</tool_response><|im_end|>');
    expect(prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
  });

  it('omits the generation prompt when asked, and passes template kwargs (enable_thinking)', () => {
    const messages = [{ role: 'user', content: 'Hi' }];
    expect(pre.renderChat({ messages, addGenerationPrompt: false })).toBe('<|im_start|>user\nHi<|im_end|>\n');
    expect(pre.renderChat({ messages, addGenerationPrompt: true, kwargs: { enable_thinking: false } })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
  });
});

describe('model directories', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'kvgate-model-'));
    copyFileSync(join(defaultModelDir(), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const cfg = JSON.parse(readFileSync(join(defaultModelDir(), 'tokenizer_config.json'), 'utf8'));
    delete cfg.chat_template;
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}');
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [151643] }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads tokenizer.json, chat_template.jinja and generation_config.json from a directory', () => {
    const p = new Preprocessor({ tokenizerPath: dir });
    expect(p.renderChat({ messages: [{ role: 'user', content: 'x' }], addGenerationPrompt: true })).toBe('[user] x\n[assistant] ');
    expect([...p.tokenizer.eosTokenIds].sort()).toEqual([151643, 151645]);
  });

  it('takes a chat template file that replaces the model one', () => {
    const file = join(dir, 'other.jinja');
    writeFileSync(file, '{{ messages[0].content | upper }}');
    expect(new Preprocessor({ tokenizerPath: dir, chatTemplatePath: file }).renderChat({ messages: [{ role: 'user', content: 'abc' }], addGenerationPrompt: true })).toBe('ABC');
  });

  it('refuses a directory without tokenizer.json, and a template that does not parse', () => {
    const empty = mkdtempSync(join(tmpdir(), 'kvgate-empty-'));
    try {
      expect(() => new Preprocessor({ tokenizerPath: empty })).toThrow(/no tokenizer.json/);
      const bad = join(dir, 'bad.jinja');
      writeFileSync(bad, '{% for %}');
      expect(() => new Preprocessor({ tokenizerPath: dir, chatTemplatePath: bad })).toThrow(/cannot parse the chat template/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("turns the template's own errors into invalid_request", () => {
    const file = join(dir, 'strict.jinja');
    writeFileSync(file, "{% if messages[0].role != 'system' %}{{ raise_exception('system message first') }}{% endif %}ok");
    const p = new Preprocessor({ tokenizerPath: dir, chatTemplatePath: file });
    let err: unknown;
    try {
      p.renderChat({ messages: [{ role: 'user', content: 'x' }], addGenerationPrompt: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KvgateError);
    expect((err as KvgateError).code).toBe('invalid_request');
    expect((err as KvgateError).message).toContain('system message first');
  });
});
