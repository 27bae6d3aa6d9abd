// The model's chat template (Jinja, from tokenizer_config.json or chat_template.jinja),
// parsed once at start-up with @huggingface/jinja and, where the template compiler supports
// it, compiled to closures (template_compiler.ts: 12-20x cheaper per request for Qwen3's); else, and for any
// input the compiled render declines (errors included), rendered by @huggingface/jinja.

import { Template } from '@huggingface/jinja';
import { KvgateError } from '../errors.js';
import { compileTemplate, type CompiledTemplate } from './template_compiler.js';

// A message as the template sees it (OpenAI's shape, content already flattened to text).
export interface TemplateMessage {
  role: string;
  content: string;
  name?: string;
  tool_calls?: unknown[];
  tool_call_id?: string;
  reasoning_content?: string;
}

export interface RenderInput {
  messages: TemplateMessage[];
  tools?: unknown[];
  addGenerationPrompt: boolean;
  // Extra variables (OpenAI-compatible servers' `chat_template_kwargs`, e.g. enable_thinking).
  kwargs?: Record<string, unknown>;
}

export class ChatTemplate {
  private readonly template: Template;
  // Null where the template uses something the compiler does not support (decided once, here).
  readonly compiled: CompiledTemplate | null;

  constructor(
    source: string,
    private readonly specialTokens: { bos_token: string | null; eos_token: string | null },
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new KvgateError('invalid_config', `cannot parse the chat template: ${(err as Error).message}`);
    }
    this.compiled = compileTemplate(this.template.parsed);
  }

  // Template errors (including the template's own raise_exception, e.g. for a role order
  // it does not accept) are the request's fault: invalid_request.
  render(input: RenderInput): string {
    const vars: Record<string, unknown> = {
      ...input.kwargs,
      messages: input.messages,
      add_generation_prompt: input.addGenerationPrompt,
      bos_token: this.specialTokens.bos_token ?? '',
      eos_token: this.specialTokens.eos_token ?? '',
    };
    if (input.tools && input.tools.length > 0) vars['tools'] = input.tools;
    if (this.compiled) {
      try {
        return this.compiled(vars);
      } catch {
        // Declined (an error, or a value the compiled subset cannot represent): the interpreter
        // renders the same input, so the output or error text is exactly the interpreter's.
      }
    }
    try {
      return this.template.render(vars);
    } catch (err) {
      throw new KvgateError('invalid_request', `chat template error: ${(err as Error).message}`, 'messages');
    }
  }
}
