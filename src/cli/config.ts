// The one config schema: every flag of every subcommand, with its type, default and help.
// parseCommandLine() validates argv against it and returns a frozen options object.
// Flags are kebab-case on the command line (`--max-total-tokens`) and camelCase in code.

import { KvgateError } from '../errors.js';

type Kind = 'string' | 'int' | 'float' | 'bool' | 'json' | 'list';

interface OptionSpec {
  readonly kind: Kind;
  readonly help: string;
  readonly default?: unknown;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
}

interface CommandSpec {
  readonly summary: string;
  readonly usage: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
}

// Options shared by the roles that log.
const common = {
  logLevel: { kind: 'string', default: 'info', choices: ['debug', 'info', 'warn', 'error'], help: 'log verbosity' },
} as const satisfies Record<string, OptionSpec>;

export const COMMANDS = {
  // ---- serve (frontend; issue 4 / 5) ----
  serve: {
    summary: 'OpenAI-compatible frontend with KV-aware routing (what `npm start` runs)',
    usage: 'kvgate serve [options] [-- engine args]',
    options: {
      ...common,
      host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on' },
      port: { kind: 'int', default: 8000, min: 0, max: 65535, help: 'HTTP port' },
      engineUrls: { kind: 'list', help: 'SGLang HTTP servers to route to (comma-separated URLs, e.g. mocker instances)' },
      modelPath: { kind: 'string', help: 'model directory with tokenizer.json and tokenizer_config.json (default: the engine\'s tokenizer_path if local, else the packaged Qwen3 tokenizer)' },
      tokenizerPath: { kind: 'string', help: 'tokenizer directory or tokenizer.json, when not in --model-path' },
      chatTemplate: { kind: 'string', help: 'Jinja file that replaces the model\'s chat template' },
      servedModelName: { kind: 'string', help: 'model name clients ask for (default: what the engines report)' },
      contextLength: { kind: 'int', min: 1, help: 'context length in tokens (default: the engines\', else the tokenizer config\'s)' },
      apiKey: { kind: 'list', help: 'API keys clients must send as Authorization: Bearer <key> (comma-separated; none: open)' },
      maxBodyBytes: { kind: 'int', default: 33554432, min: 1, help: 'largest request body accepted (413 above)' },
      shutdownTimeout: { kind: 'float', default: 30, min: 0, help: 'seconds a shutdown lets in-flight streams finish before cutting them' },
      healthCheckInterval: { kind: 'float', default: 5, min: 0, help: 'seconds between engine health probes (0: never)' },
      engineWait: { kind: 'float', default: 60, min: 0, help: 'seconds to wait at start-up for an engine to answer /server_info' },
    },
  },
  // ---- mocker (simulated SGLang engine; issue 3) ----
  mocker: {
    summary: 'a simulated SGLang engine: its HTTP API, KV events and bootstrap server, no GPU',
    usage: 'kvgate mocker [options]',
    options: {
      ...common,
      host: { kind: 'string', default: '127.0.0.1', help: 'address to listen on' },
      port: { kind: 'int', default: 30000, min: 0, max: 65535, help: 'HTTP port' },
    },
  },
  // ---- worker (agent beside one engine; issue 5) ----
  worker: {
    summary: 'start and supervise one engine process and serve it to frontends',
    usage: 'kvgate worker --engine sglang|mocker [options] -- <engine args>',
    options: {
      ...common,
    },
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

type ValueOf<S extends OptionSpec> = S['kind'] extends 'int' | 'float'
  ? number
  : S['kind'] extends 'bool'
    ? boolean
    : S['kind'] extends 'list'
      ? string[]
      : S['kind'] extends 'json'
        ? unknown
        : string;

type Opts<O extends Record<string, OptionSpec>> = {
  readonly [K in keyof O]: O[K] extends { default: unknown } ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

export type OptionsOf<C extends CommandName> = Opts<(typeof COMMANDS)[C]['options']>;

export interface ParsedCommandLine<C extends CommandName> {
  options: OptionsOf<C>;
  // Everything after `--`, untouched (engine arguments).
  passthrough: string[];
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function bad(message: string): never {
  throw new KvgateError('invalid_config', message);
}

function convert(flag: string, spec: OptionSpec, raw: string): unknown {
  switch (spec.kind) {
    case 'int':
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) bad(`--${flag} expects a number, got '${raw}'`);
      if (spec.kind === 'int' && !Number.isInteger(n)) bad(`--${flag} expects an integer, got '${raw}'`);
      if (spec.min !== undefined && n < spec.min) bad(`--${flag} must be >= ${spec.min}, got ${n}`);
      if (spec.max !== undefined && n > spec.max) bad(`--${flag} must be <= ${spec.max}, got ${n}`);
      return n;
    }
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad(`--${flag} expects true or false, got '${raw}'`);
    case 'json':
      try {
        return JSON.parse(raw);
      } catch {
        return bad(`--${flag} expects JSON, got '${raw}'`);
      }
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) bad(`--${flag} must be one of ${spec.choices.join(', ')}, got '${raw}'`);
      return raw;
  }
}

export function parseCommandLine<C extends CommandName>(command: C, argv: readonly string[]): ParsedCommandLine<C> {
  const specs: Record<string, OptionSpec> = COMMANDS[command].options;
  const values: Record<string, unknown> = {};
  let passthrough: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      passthrough = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--')) bad(`unexpected argument '${arg}' (engine arguments go after --)`);
    const eq = arg.indexOf('=');
    let flag = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let key = camel(flag);
    let spec = specs[key];
    let raw: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (!spec && flag.startsWith('no-') && specs[camel(flag.slice(3))]?.kind === 'bool' && raw === undefined) {
      flag = flag.slice(3);
      key = camel(flag);
      spec = specs[key];
      raw = 'false';
    }
    if (!spec) bad(`unknown option --${flag} for 'kvgate ${command}' (see kvgate ${command} --help)`);
    if (raw === undefined) {
      if (spec.kind === 'bool') raw = 'true';
      else if (i + 1 < argv.length && argv[i + 1] !== '--') raw = argv[++i]!;
      else bad(`--${flag} needs a value`);
    }
    values[key] = convert(flag, spec, raw);
  }
  for (const [key, spec] of Object.entries(specs)) {
    if (!(key in values) && spec.default !== undefined) values[key] = spec.default;
  }
  return { options: Object.freeze(values) as OptionsOf<C>, passthrough };
}

export function helpText(command: CommandName): string {
  const cmd: CommandSpec = COMMANDS[command];
  const lines = [`${cmd.summary}`, '', `usage: ${cmd.usage}`, '', 'options:'];
  for (const [key, spec] of Object.entries(cmd.options)) {
    const def = spec.default === undefined ? '' : ` (default: ${JSON.stringify(spec.default)})`;
    const choices = spec.choices ? ` [${spec.choices.join('|')}]` : '';
    const value = spec.kind === 'bool' ? '' : ` <${spec.kind}>`;
    lines.push(`  --${kebab(key)}${value}`.padEnd(34) + ` ${spec.help}${choices}${def}`);
  }
  return lines.join('\n');
}
