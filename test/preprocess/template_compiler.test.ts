// The compiled chat template against @huggingface/jinja's interpreter, differentially: for the
// shipped Qwen3 template and small templates written here (one per group of constructs), a few
// thousand random conversations per run must render to the same string, or fail with the same
// error text, through ChatTemplate; and wherever the compiled render itself answers (it may
// decline an input, leaving it to the interpreter), its answer must be the interpreter's. The
// same for every operator/filter/test/method/statement over a matrix of values, and for random
// nested expressions. SEED=n reruns one seed (CASES=n per template); a failure prints its seed
// and the input.

import { Template } from '@huggingface/jinja';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ChatTemplate } from '../../src/preprocess/chat_template.js';
import { compileTemplate } from '../../src/preprocess/template_compiler.js';
import { rng } from '../../src/bench/workloads.js';

const CASES = Number(process.env['CASES'] ?? 3000);
const SEED = Number(process.env['SEED'] ?? Math.floor(Math.random() * 2 ** 31));

const QWEN3 = (JSON.parse(readFileSync(new URL('../../assets/qwen3-tokenizer/tokenizer_config.json', import.meta.url), 'utf8')) as { chat_template: string }).chat_template;

// Loops: every loop variable, for-else, filtered loops, break/continue, slices.
const LOOPS = `
{%- for m in messages -%}
[{{ loop.index }}/{{ loop.length }} i0={{ loop.index0 }} r={{ loop.revindex }} r0={{ loop.revindex0 }} {{ 'F' if loop.first }}{{ 'L' if loop.last }}]
{%- if loop.previtem is defined %} prev={{ loop.previtem.role }}{% endif %}
{%- if loop.nextitem is defined %} next={{ loop.nextitem.role }}{% endif %}
{{ m.role | upper }}: {{ m.content | trim }}
{% else -%}
(no messages)
{% endfor %}
{%- for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role[0] }}{% else %}none{% endfor %}
{%- for m in messages %}{% if m.role == 'tool' %}{% continue %}{% endif %}{% if loop.index > 4 %}{% break %}{% endif %}<{{ m.role }}>{% else %}E{% endfor %}
{{ messages | length }} {{ (messages | first).role if messages }} {{ (messages | last).content | length if messages }}
{%- for m in messages[::-1] %}{{ m.role[:1] }}{% endfor %}|
{%- for m in messages[1:3] %}{{ m.role[-1] }}{% endfor %}|
{%- for m in messages[-2:] %}{{ loop.index0 }}{{ loop }}{% endfor %}|
{%- for m in messages[::2] %}{% for tc in m.tool_calls | default([]) if tc.function is defined %}{{ loop.revindex }}{% endfor %}{% endfor %}|
{%- for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(5, 1, -2) %}{{ i }}{% endfor %}
`;

// namespace(), set (plain, block, tuple, attribute), macros with defaults and keywords.
const STATE = `
{%- set ns = namespace(sys='', count=0, last=none) -%}
{%- macro render(m, prefix='> ', suffix=none) -%}
{{ prefix }}{{ m.role }}{% if suffix is not none %}{{ suffix }}{% endif %}: {{ m.content }}
{%- endmacro -%}
{%- for m in messages -%}
  {%- if m.role == 'system' -%}{%- set ns.sys = ns.sys ~ m.content -%}{%- continue -%}{%- endif -%}
  {%- set ns.count = ns.count + 1 -%}
  {%- set ns.last = m.role -%}
  {%- set label -%}#{{ ns.count }}{%- endset -%}
  {{ label }} {{ render(m) if loop.index is odd else render(m, prefix='< ', suffix='!') }}
{% endfor -%}
{{ ns.sys | default('no system', true) }} {{ ns.count }} {{ ns.last }} {{ ns }} {{ label }}
{%- set a, b = 1, 2 %} {{ a + b * 3 - 10 // 3 }} {{ 17 % 5 }} {{ -a }} {{ (ns.count * 7) % 3 }} {{ ns.count > 2 and ns.count < 5 }}
{%- set copy = namespace(ns) if false else namespace(k=[1, 2]) %} {{ copy.k + [3] }} {{ copy is defined }} {{ render is callable }}
`;

// Tools and JSON: tojson and its options, items(), map/selectattr/rejectattr/join.
const TOOLS = `
{%- if tools is defined and tools -%}
Tools:
{%- for tool in tools %}
{{ tool | tojson }}
{{ tool | tojson(indent=2) }}
{{ tool.function.name if tool.function is defined else tool.name }}
{%- endfor %}
{{ tools | tojson(ensure_ascii=true) }}
{{ tools | map(attribute='function.name') | join(', ') }}
{{ tools | selectattr('type', 'equalto', 'function') | list | length }} {{ tools | rejectattr('function') | list | length }} {{ tools | selectattr('function', 'defined') | list | length }}
{%- endif %}
{%- for m in messages %}
{%- if m.tool_calls is defined and m.tool_calls %}
{%- for tc in m.tool_calls %}
{%- set f = tc.function if tc.function is defined else tc %}
<call name="{{ f.name }}">{{ f.arguments if f.arguments is string else f.arguments | tojson(sort_keys=true, separators=(',', ':')) }}</call>
{%- if f.arguments is mapping %}{% for k, v in f.arguments.items() %} {{ k }}={{ v }}{% endfor %} {% for k in f.arguments %}[{{ k }}]{% endfor %}{{ f.arguments | items | length }}{{ f.arguments | length }}{% endif %}
{%- endfor %}
{%- endif %}
{%- endfor %}
`;

// Strings, tests, operators, raise_exception.
const STRINGS = `
{%- if messages | length == 0 %}{{ raise_exception('No messages provided.') }}{% endif %}
{%- for m in messages %}
{%- if m.role not in ['system', 'user', 'assistant', 'tool'] %}{{ raise_exception('Unknown role: ' ~ m.role) }}{% endif %}
{%- if loop.index0 > 0 and m.role == messages[loop.index0 - 1].role and m.role == 'user' %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}
{%- set c = m.content if m.content is string else '' %}
{{ m.role | capitalize }} {{ c.strip() | title }}|{{ c.lstrip() }}|{{ c.rstrip('\\n') }}|{{ c.upper() }}|{{ c.lower() }}
{{ c.startswith('<think>') }} {{ c.endswith(('</tool_response>', '!')) }} {{ '</think>' in c }} {{ 'x' not in c }} {{ m.role in ('user', 'tool') }}
{{ c.split('</think>') | length }} {{ c.split() | join('_') }} {{ c.split(' ', 2) }} {{ c.replace('<think>', '[T]') }} {{ c.replace(' ', '', 2) }} {{ c | replace('\\n', '/') }}
{{ c[0] if c else '' }}{{ c[-1] if c else '' }} {{ c[::-1] }} {{ c[2:5] }} {{ c | length }} {{ c | join('.') }}
{{ m.reasoning_content is defined }} {{ m.reasoning_content is none }} {{ m.reasoning_content is string }} {{ m is mapping }} {{ m.tool_calls is iterable }} {{ m.tool_calls is sequence }} {{ m.name is not defined }}
{{ m.content is lower }}{{ m.content is upper }} {{ loop.index is even }} {{ m.get('name', 'anon') }} {{ m.get('missing') }} {{ m.name | default('nameless') }} {{ m.content | default('empty', boolean=true) }}
{{ c | indent(2) }} {{ c | indent(2, true) }} {{ 'a' ~ 1 ~ true }} {{ 'a' + 1 | string }} {{ [1, 'a', true, none] }} {{ {'k': [1, 2], 'v': none} }}
{{ true }} {{ none }} {{ 3 > 2 }} {{ m.keys() | list | length }} {{ c | int }} {{ '42' | int + 1 }} {{ c.title() }} {{ enable_thinking }} {{ enable_thinking is false }}
{{ m.role == 'user' or m.role }} {{ not m.tool_calls }} {{ m.tool_calls | length if m.tool_calls is defined }} {{ c.split('\\n', 1)[0] }} {{ c | reverse | length if false }}
{%- endfor %}
{{ strftime_now('%Y') | length }} {{ undefined_thing }} {{ undefined_thing is defined }} {{ add_generation_prompt }}
`;

// Alternating roles with a leading system message (the Llama-2/Mistral style of template).
const ALTERNATING = `
{%- if messages and messages[0]['role'] == 'system' %}
{%- set system_message = messages[0]['content'] | trim %}
{%- set loop_messages = messages[1:] %}
{%- else %}
{%- set system_message = '' %}
{%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{%- endif %}
{%- if message['role'] == 'user' %}
{{- '[INST] ' + (system_message + '\\n\\n' if loop.first and system_message else '') + message['content'] | trim + ' [/INST]' }}
{%- elif message['role'] == 'assistant' %}
{{- ' ' + message['content'] | trim + eos_token }}
{%- else %}
{{- raise_exception('Only user and assistant roles are supported!') }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt and custom_suffix is defined %}{{ custom_suffix }}{% endif %}
`;

// Tools in the first user message, a date from strftime_now, top-level variables reassigned
// (the Llama-3.1 style of template).
const TOOLS_IN_USER = `
{{- bos_token }}
{%- if custom_tools is defined %}{%- set tools = custom_tools %}{%- endif %}
{%- if not tools_in_user_message is defined %}{%- set tools_in_user_message = true %}{%- endif %}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if tools is not defined %}{%- set tools = none %}{%- endif %}
{%- if messages and messages[0]['role'] == 'system' %}
  {%- set system_message = messages[0]['content'] | trim %}
  {%- set messages = messages[1:] %}
{%- else %}
  {%- set system_message = "" %}
{%- endif %}
{{- "<|header|>system<|/header|>\\n\\n" }}
{%- if tools is not none %}{{- "Environment: ipython\\n" }}{%- endif %}
{{- "Today: " + date_string | length | string + "\\n\\n" }}
{{- system_message }}{{- "<|eot|>" }}
{%- if tools_in_user_message and not tools is none %}
  {%- if messages | length != 0 %}
    {%- set first_user_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
  {%- else %}
    {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
  {%- endif %}
  {{- '<|header|>user<|/header|>\\n\\n' -}}
  {%- for t in tools %}{{- t | tojson(indent=4) }}{{- "\\n\\n" }}{%- endfor %}
  {{- first_user_message + "<|eot|>"}}
{%- endif %}
{%- for message in messages %}
  {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
    {{- '<|header|>' + message['role'] + '<|/header|>\\n\\n'+ message['content'] | trim + '<|eot|>' }}
  {%- elif 'tool_calls' in message %}
    {%- if not message.tool_calls | length == 1 %}{{- raise_exception("Only one tool call at a time") }}{%- endif %}
    {%- set tool_call = message.tool_calls[0].function if message.tool_calls[0].function is defined else message.tool_calls[0] %}
    {{- '<|header|>assistant<|/header|>\\n\\n' -}}
    {{- '{"name": "' + tool_call.name + '", ' }}{{- '"parameters": ' }}{{- tool_call.arguments | tojson }}{{- "}<|eot|>" }}
  {%- elif message.role == "tool" or message.role == "ipython" %}
    {{- "<|header|>ipython<|/header|>\\n\\n" }}
    {%- if message.content is mapping or message.content is iterable %}{{- message.content | tojson }}{%- else %}{{- message.content }}{%- endif %}
    {{- "<|eot|>" }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|header|>assistant<|/header|>\\n\\n' }}{%- endif %}
`;

// Flags in a namespace across turns, tool outputs grouped, reasoning cut at </think> (the
// DeepSeek-R1 style of template).
const GROUPED_TOOLS = `
{%- set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='') %}
{%- for message in messages %}{%- if message['role'] == 'system' %}{%- set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}
{{- bos_token }}{{- ns.system_prompt }}
{%- for message in messages %}
  {%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{- '<|User|>' + message['content'] }}
  {%- elif message['role'] == 'assistant' and message['content'] is none %}
    {%- set ns.is_tool = false -%}
    {%- for tool in message['tool_calls'] %}
      {%- set args = tool['function']['arguments'] if tool['function']['arguments'] is string else tool['function']['arguments'] | tojson %}
      {%- if not ns.is_first %}{{- '<|Assistant|><|calls_begin|><|call_begin|>' + tool['type'] + '<|sep|>' + tool['function']['name'] + '\\n' + args + '<|call_end|>' }}{%- set ns.is_first = true -%}
      {%- else %}{{- '\\n<|call_begin|>' + tool['type'] + '<|sep|>' + tool['function']['name'] + '\\n' + args + '<|call_end|>' }}{%- endif %}
    {%- endfor %}{{- '<|calls_end|><|eos|>' }}
  {%- elif message['role'] == 'assistant' %}
    {%- if ns.is_tool %}{{- '<|outputs_end|>' + message['content'] + '<|eos|>' }}{%- set ns.is_tool = false -%}
    {%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{- '<|Assistant|>' + content + '<|eos|>' }}{%- endif %}
  {%- elif message['role'] == 'tool' %}
    {%- set ns.is_tool = true -%}
    {%- if ns.is_output_first %}{{- '<|outputs_begin|><|output_begin|>' + message['content'] + '<|output_end|>' }}{%- set ns.is_output_first = false %}
    {%- else %}{{- '\\n<|output_begin|>' + message['content'] + '<|output_end|>' }}{%- endif %}
  {%- endif %}
{%- endfor -%}
{% if ns.is_tool %}{{- '<|outputs_end|>' }}{% endif %}
{% if add_generation_prompt and not ns.is_tool %}{{- '<|Assistant|><think>\\n' }}{% endif %}
`;

const TEMPLATES: [string, string][] = [
  ['qwen3', QWEN3],
  ['loops', LOOPS],
  ['state', STATE],
  ['tools', TOOLS],
  ['strings', STRINGS],
  ['alternating', ALTERNATING],
  ['tools-in-user', TOOLS_IN_USER],
  ['grouped-tools', GROUPED_TOOLS],
];

// --- Random inputs.

const PIECES = ['hello', 'World', 'x', 'ABC', 'é', '你好', '😀', '\u0085', '\u2028', ' ', '  ', '\n', '\n\n', '\t', '<think>', '</think>', '<tool_response>', '</tool_response>', '<|im_start|>', '{"a": 1}', '"quoted"', '\\', '!', '42', '-7', 'True', 'none'];
const ROLES = ['system', 'user', 'assistant', 'tool'];

function gen(r: () => number) {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const text = (max: number) => Array.from({ length: Math.floor(r() * max) }, () => pick(PIECES)).join(r() < 0.5 ? '' : ' ');
  const json = (depth: number): unknown => {
    const k = r();
    if (depth > 2 || k < 0.3) return pick<unknown>([text(3), 7, -1, 0, 1.5, true, false, null]);
    if (k < 0.6) return Array.from({ length: Math.floor(r() * 3) }, () => json(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(['a', 'b', 'name', 'é', 'type', 'x y']), json(depth + 1)]));
  };
  const toolCall = () => {
    const args = r() < 0.4 ? JSON.stringify(json(1)) : json(1);
    const fn = { name: pick(['get_weather', 'search', 'f', 'é']), arguments: args };
    return r() < 0.85 ? { type: 'function', id: `call_${Math.floor(r() * 100)}`, function: fn } : fn;
  };
  // Half the conversations take turns (optional system, then user/assistant), as templates
  // that check the order require; the rest mix roles freely (and some templates raise).
  const turns = r() < 0.5;
  const system = r() < 0.5;
  const message = (i: number) => {
    const role = turns ? (system && i === 0 ? 'system' : (i - (system ? 1 : 0)) % 2 === 0 ? 'user' : 'assistant') : r() < 0.03 ? 'developer' : pick(ROLES);
    const m: Record<string, unknown> = { role, content: r() < 0.01 ? null : text(12) };
    if (r() < 0.01) delete m['content'];
    if (role === 'assistant' && r() < 0.4) {
      m['tool_calls'] = Array.from({ length: Math.floor(r() * 3) }, toolCall);
      if (r() < 0.2) m['content'] = null;
    }
    if (role === 'assistant' && r() < 0.3) m['reasoning_content'] = r() < 0.2 ? null : text(6);
    if (r() < 0.1) m['name'] = text(2);
    if (role === 'tool' && r() < 0.5) m['tool_call_id'] = 'call_1';
    return m;
  };
  const n = r() < 0.1 ? 0 : Math.floor(r() * 9);
  const vars: Record<string, unknown> = {};
  const thinking = r();
  if (thinking < 0.3) vars['enable_thinking'] = true;
  else if (thinking < 0.6) vars['enable_thinking'] = false;
  if (r() < 0.1) vars['custom_suffix'] = text(3);
  if (r() < 0.2) vars['tools_in_user_message'] = r() < 0.5;
  if (r() < 0.01) vars['range'] = 1; // a variable the interpreter refuses to redeclare
  vars['messages'] = Array.from({ length: n }, (_, i) => message(i));
  vars['add_generation_prompt'] = r() < 0.5;
  vars['bos_token'] = r() < 0.5 ? '<s>' : '';
  vars['eos_token'] = '</s>';
  const tools = r();
  if (tools < 0.4) {
    vars['tools'] = Array.from({ length: Math.floor(r() * 4) }, () =>
      r() < 0.8 ? { type: 'function', function: { name: pick(['get_weather', 'search', 'é']), description: text(4), parameters: json(0) } } : { name: 'bare', type: 'other' },
    );
  }
  return vars;
}

type Outcome = { out: string } | { err: string };

function interpret(t: Template, vars: Record<string, unknown>): Outcome {
  try {
    return { out: t.render(vars) };
  } catch (err) {
    return { err: (err as Error).message };
  }
}

describe('template compiler (differential against @huggingface/jinja)', () => {
  for (const [name, source] of TEMPLATES) {
    it(`${name}: ${CASES} random conversations render identically (seed ${SEED})`, () => {
      const t = new Template(source);
      const compiled = compileTemplate(t.parsed);
      expect(compiled, `${name} should compile`).not.toBeNull();
      const chat = new ChatTemplate(source, { bos_token: '<s>', eos_token: '</s>' });
      expect(chat.compiled).not.toBeNull();
      const chatNoBos = new ChatTemplate(source, { bos_token: null, eos_token: '</s>' });
      const r = rng(SEED + name.length);
      let answered = 0;
      for (let i = 0; i < CASES; i++) {
        const vars = gen(r);
        const want = interpret(t, vars);
        const where = `seed ${SEED}, template ${name}, case ${i}, input ${JSON.stringify(vars)}`;
        let got: Outcome | null = null;
        try {
          got = { out: compiled!(vars) };
        } catch {
          // declined: ChatTemplate renders it with the interpreter
        }
        if (got) {
          answered++;
          expect(got, where).toEqual(want);
        }
        // The same through ChatTemplate (its variables are built from RenderInput).
        const { messages, tools, add_generation_prompt, bos_token, eos_token, ...kwargs } = vars;
        const input = { messages: messages as never[], tools: tools as unknown[] | undefined, addGenerationPrompt: add_generation_prompt as boolean, kwargs };
        const viaChat = bos_token ? chat : chatNoBos;
        let chatGot: Outcome;
        try {
          chatGot = { out: viaChat.render(input) };
        } catch (err) {
          chatGot = { err: (err as Error).message };
        }
        const chatVars = { ...kwargs, messages, add_generation_prompt, bos_token, eos_token, ...(tools && (tools as unknown[]).length > 0 ? { tools } : {}) };
        const chatWant = interpret(t, chatVars);
        expect(chatGot, where).toEqual('out' in chatWant ? chatWant : { err: `chat template error: ${chatWant.err}` });
      }
      // Most inputs must be answered by the compiled render itself, or this tests only the fallback.
      if (process.env['VERBOSE']) console.log(`${name}: the compiled render answered ${answered} of ${CASES}`);
      expect(answered / CASES, `share of inputs the compiled render answered (${name})`).toBeGreaterThan(0.5);
    });
  }

  // Every operator, filter, test, method and statement of the compiled subset, over a matrix
  // of values of every type (x and y): same output or same error.
  const VALUES: unknown[] = ['', 'abc', ' A b\n', 'a', 'é😀<think>', '3', 0, 1, -3, 2, 1.5, true, false, null, undefined, [], [1, 'a', null], [['k', 1], ['j', [2]]], {}, { a: 1, b: [1, { c: 'x' }] }, { a: 'b' }, [{ a: 1 }, { b: 2 }, { a: null }]];
  const EXPRESSIONS = [
    ...['==', '!=', '+', '-', '*', '//', '%', '<', '>=', '~', 'in', 'not in', 'and', 'or'].map((op) => `{{ x ${op} y }}`),
    '{{ not x }}', '{{ -x }}', '{{ x if x else y }}', '{{ x if y }}', '{{ x }}', '{{ [x, y] }}', "{{ {'k': x, 'j': y} }}", "{{ x in ('a', 1) }}",
    ...['safe', 'tojson', 'list', 'first', 'last', 'length', 'reverse', 'join', 'string', 'upper', 'lower', 'title', 'capitalize', 'trim', 'indent', 'int', 'abs', 'items', 'keys', 'values', 'bool'].map((f) => `{{ x | ${f} }}`),
    '{{ x | tojson(indent=2) }}', '{{ x | tojson(indent=y) }}', '{{ x | tojson(ensure_ascii=true, sort_keys=true) }}', "{{ x | tojson(separators=(',', ':')) }}", '{{ x | tojson(separators=y) }}',
    '{{ x | default(y) }}', '{{ x | default(y, true) }}', '{{ x | default(y, boolean=y) }}', '{{ x | join(y) }}', "{{ x | join(', ') }}", '{{ x | int(y) }}', '{{ x | int(default=7) }}',
    "{{ x | map(attribute='a') | list }}", "{{ x | map(attribute='b.1.c', default=y) | list }}", '{{ x | indent(2, true) }}', '{{ x | indent(y) }}', '{{ x | indent(width=1, blank=true) }}',
    "{{ x | replace('a', 'b') }}", "{{ x | replace('a', y) }}", "{{ x | replace('a', 'Q', count=1) }}", "{{ x | selectattr('a') | list }}", "{{ x | rejectattr('a', 'defined') | list }}", "{{ x | selectattr('a', 'equalto', 'b') | list }}", "{{ x | rejectattr('a', 'none') | list }}",
    ...['boolean', 'callable', 'odd', 'even', 'false', 'true', 'none', 'string', 'number', 'integer', 'iterable', 'mapping', 'sequence', 'lower', 'upper', 'defined', 'undefined'].map((t) => `{{ x is ${t} }}{{ y is not ${t} }}`),
    '{{ x.upper() }}{{ x.lower() }}', '{{ x.strip() }}|{{ x.lstrip(y) }}|{{ x.rstrip() }}', '{{ x.startswith(y) }}', "{{ x.endswith(('c', y)) }}", '{{ x.split(y) }}', '{{ x.split() }}', '{{ x.split(y, 1) }}', '{{ x.split(none, y) }}',
    "{{ x.replace(y, 'Z') }}", "{{ x.replace(y, 'Z', 1) }}", "{{ x.replace('a', 'Z', count=y) }}", "{{ x.get('a') }}", "{{ x.get(y, 'd') }}", '{{ x.items() }}', '{{ x.keys() }}{{ x.values() }}', '{{ x.title() }}{{ x.capitalize() }}', '{{ x.nope() }}',
    '{{ x[y] }}', '{{ x.a }}', '{{ x.length }}', '{{ x.upper }}', '{{ x.items }}', '{{ x[1:] }}', '{{ x[::-1] }}', '{{ x[y:] }}', '{{ x[:y:2] }}', '{{ x[0] }}', '{{ x[-1] }}', '{{ x.b[1].c }}', '{{ x[::y] }}',
    '{% for a in x %}{{ a }}{{ loop.index }}{{ loop.previtem }}{% else %}E{% endfor %}', '{% for a, b in x %}{{ a }}{{ b }}{% endfor %}', '{% for a in x if a %}{{ a }}{{ loop.last }}{% endfor %}', '{% for a in x %}{% if a == y %}{% break %}{% endif %}{{ a }}{% else %}E{% endfor %}',
    '{% set ns = namespace(v=x) %}{% set ns.v = y %}{{ ns.v }}{{ ns }}', '{% set a, b = x %}{{ a }}{{ b }}', '{% set s %}{{ x }}{{ y }}{% endset %}{{ s }}{{ s | length }}', '{% set x = y %}{{ x }}',
    '{% macro m(a, b=y) %}{{ a }}|{{ b }}{% endmacro %}{{ m(x) }}{{ m(x, b=x) }}{{ m(a=y) }}{{ m() }}', '{% macro m(a) %}{{ a }}{% endmacro %}{{ m(x, y) }}', '{% macro m() %}{{ x }}{% endmacro %}{% for x in [1, 2] %}{{ m() }}{% endfor %}',
    '{{ range(x) }}', '{{ range(x, 3) }}', '{{ strftime_now(x) | length }}', '{{ raise_exception(x) }}', '{{ namespace(x) }}', '{{ x() }}', '{{ true + x }}', '{{ none }}{{ True }}{{ False }}',
  ];

  it(`${EXPRESSIONS.length} expressions over ${VALUES.length}x${VALUES.length} values of every type render identically`, () => {
    let answered = 0;
    let total = 0;
    const neverAnswered: string[] = [];
    for (const source of EXPRESSIONS) {
      const before = answered;
      const t = new Template(source);
      const compiled = compileTemplate(t.parsed);
      expect(compiled, source).not.toBeNull();
      for (const x of VALUES) {
        for (const y of VALUES) {
          const vars = { x, y };
          const want = interpret(t, vars);
          total++;
          try {
            const out = compiled!(vars);
            answered++;
            expect({ out }, `${source} with x=${JSON.stringify(x)} y=${JSON.stringify(y)}`).toEqual(want);
          } catch (err) {
            if (err instanceof Error && err.name === 'AssertionError') throw err;
          }
        }
      }
      if (answered === before) neverAnswered.push(source);
    }
    // Only what always raises in the interpreter is left to it entirely.
    expect(neverAnswered).toEqual(['{{ x.nope() }}', '{% macro m(a) %}{{ a }}{% endmacro %}{{ m(x, y) }}', '{{ raise_exception(x) }}', '{{ x() }}']);
    if (process.env['VERBOSE']) console.log(`expressions: the compiled render answered ${answered} of ${total}`);
  });

  // Random nestings of the same constructs (depth 3), each rendered with random x, y, z.
  const LITERALS = ["''", "'a'", "'ab c'", "' x '", '0', '1', '-2', '3', 'true', 'false', 'none', '[]', "[1, 'a']", "{'a': 1}", '{}', "'</think>'", "'\\n'"];
  const NAMES = ['x', 'y', 'z', 'x.a', 'y[0]', 'z.b', 'nothing'];
  const FILTERS = ['length', 'tojson', 'string', 'trim', 'upper', 'first', 'last', 'list', 'reverse', 'join', 'items', 'int', 'abs', 'capitalize', 'title', "default('d')", "default('d', true)", "join(',')", 'tojson(indent=2)', "map(attribute='a')", "selectattr('a')", "replace('a', 'b')", 'indent(2)', 'keys', 'values', 'bool'];
  const TEST_NAMES = ['defined', 'undefined', 'none', 'string', 'mapping', 'iterable', 'sequence', 'number', 'integer', 'boolean', 'true', 'false', 'odd', 'even', 'lower', 'upper', 'callable'];
  const METHODS = ['strip()', "split('a')", 'split()', "startswith('a')", "endswith(('b', 'c'))", "replace('a', 'Q')", 'upper()', 'title()', "get('a')", "get('a', 0)", 'items()', 'keys()', 'lstrip()', "split(' ', 1)"];
  const OPERATORS = ['==', '!=', '+', '-', '*', '//', '%', '<', '>', '<=', '>=', '~', 'in', 'not in', 'and', 'or'];
  const SUBSCRIPTS = ['0', '-1', '1:', '::-1', ':2', 'x', "'a'"];

  it(`${CASES} random nested expressions render identically (seed ${SEED})`, () => {
    const r = rng(SEED);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    const expr = (depth: number): string => {
      const k = r();
      if (depth === 0 || k < 0.2) return r() < 0.5 ? pick(LITERALS) : pick(NAMES);
      if (k < 0.4) return `(${expr(depth - 1)} ${pick(OPERATORS)} ${expr(depth - 1)})`;
      if (k < 0.55) return `(${expr(depth - 1)} | ${pick(FILTERS)})`;
      if (k < 0.65) return `(${expr(depth - 1)} is ${r() < 0.3 ? 'not ' : ''}${pick(TEST_NAMES)})`;
      if (k < 0.75) return `${pick(NAMES)}.${pick(METHODS)}`;
      if (k < 0.8) return `(not ${expr(depth - 1)})`;
      if (k < 0.85) return `(${expr(depth - 1)} if ${expr(depth - 1)} else ${expr(depth - 1)})`;
      if (k < 0.9) return `${pick(NAMES)}[${pick(SUBSCRIPTS)}]`;
      if (k < 0.95) return `[${expr(depth - 1)}, ${expr(depth - 1)}]`;
      return `{'k': ${expr(depth - 1)}}`;
    };
    let answered = 0;
    for (let i = 0; i < CASES; i++) {
      const e = expr(3);
      const source = r() < 0.8 ? `{{ ${e} }}` : `{% for q in ${pick(NAMES)} %}{{ ${e} }}{{ loop.index }}{% else %}E{% endfor %}`;
      let t: Template;
      try {
        t = new Template(source);
      } catch {
        continue; // the parser's limits (e.g. `- -2`), not the compiler's
      }
      const compiled = compileTemplate(t.parsed);
      expect(compiled, source).not.toBeNull();
      for (let j = 0; j < 3; j++) {
        const vars = { x: pick(VALUES), y: pick(VALUES), z: pick(VALUES) };
        let out: string;
        try {
          out = compiled!(vars);
        } catch {
          continue;
        }
        answered++;
        expect({ out }, `seed ${SEED}: ${source} with ${JSON.stringify(vars)}`).toEqual(interpret(t, vars));
      }
    }
    if (process.env['VERBOSE']) console.log(`nested expressions: the compiled render answered ${answered} of ${CASES * 3}`);
  });

  it('compiles constructs whose results it cannot represent to null, and ChatTemplate falls back', () => {
    // `/` makes a float, a {% filter %} block and a {% call %} are outside the compiled subset.
    for (const source of [
      '{{ messages | length / 2 }}',
      '{% filter upper %}{{ messages[0].content }}{% endfilter %}',
      '{% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}{{ messages | length }}{% endcall %}',
      '{% set namespace = 1 %}{{ namespace }}',
      '{{ (messages | length) ** 2 }}',
      '{{ messages | sort }}',
    ]) {
      const t = new Template(source);
      expect(compileTemplate(t.parsed), source).toBeNull();
      const chat = new ChatTemplate(source, { bos_token: null, eos_token: null });
      expect(chat.compiled).toBeNull();
      const input = { messages: [{ role: 'user', content: 'hi' }], addGenerationPrompt: false };
      const want = interpret(t, { messages: input.messages, add_generation_prompt: false, bos_token: '', eos_token: '' });
      let got: Outcome;
      try {
        got = { out: chat.render(input) };
      } catch (err) {
        got = { err: (err as Error).message.replace(/^chat template error: /, '') };
      }
      expect(got, source).toEqual(want);
    }
  });

  it('declines at render time where a plain value cannot stand for the interpreter\'s, and the interpreter answers', () => {
    // A float operand (1.5 + 1.5 prints "3.0" in the interpreter) and a template error.
    const source = '{{ messages[0].score + messages[0].score }}{% if messages[0].role == "bad" %}{{ raise_exception("role " ~ messages[0].role) }}{% endif %}';
    const chat = new ChatTemplate(source, { bos_token: null, eos_token: null });
    expect(chat.compiled).not.toBeNull();
    const msg = (role: string, score: number) => ({ role, content: '', score }) as never;
    expect(() => chat.compiled!({ messages: [msg('user', 1.5)] })).toThrow();
    expect(chat.render({ messages: [msg('user', 1.5)], addGenerationPrompt: false })).toBe('3.0');
    expect(chat.render({ messages: [msg('user', 2)], addGenerationPrompt: false })).toBe('4');
    expect(() => chat.render({ messages: [msg('bad', 2)], addGenerationPrompt: false })).toThrow('chat template error: role bad');
  });
});
