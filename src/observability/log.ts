// A small structured logger: one record per line on stderr, filtered by level. Records are
// JSON objects (`--log-format json`, the default, for machines) or one readable line each
// (`--log-format text`, for people). A process that runs kvgate children (serve its workers,
// a worker its engine) forwards their lines as records of its own: a child's JSON line is
// parsed and re-emitted as one object with the parent's tag added (worker index, source), so
// the combined output stays one JSON object per line.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(fields: Fields): Logger;
  // One output line of a child process: its own record when it is one of ours (a JSON
  // object with level and msg), else the text as an info message; `tag` is added to it.
  forward(line: string, tag: Fields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  write?: (line: string) => void;
}

// A child's output line as a record, or null when it is not one (plain text, a stack trace).
export function parseLogRecord(line: string): Fields | null {
  if (!line.startsWith('{')) return null;
  try {
    const r: unknown = JSON.parse(line);
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return null;
    const rec = r as Fields;
    return typeof rec['msg'] === 'string' && typeof rec['level'] === 'string' && rec['level'] in RANK ? rec : null;
  } catch {
    return null;
  }
}

const textValue = (v: unknown) => (typeof v === 'string' && !/[\s"=]/.test(v) && v !== '' ? v : JSON.stringify(v));

// `ts LEVEL [role worker=0 source=engine] msg key=value ...`
function textLine(r: Fields): string {
  const { ts, level, msg, role, worker, source, ...rest } = r;
  const who = [role, worker !== undefined ? `worker=${String(worker)}` : '', source !== undefined ? `source=${String(source)}` : ''].filter(Boolean).join(' ');
  const kv = Object.entries(rest).map(([k, v]) => `${k}=${textValue(v)}`);
  return [String(ts), String(level).toUpperCase().padEnd(5), who ? `[${who}]` : '', String(msg), ...kv].filter(Boolean).join(' ');
}

export function createLogger(opts: LoggerOptions = {}, base: Fields = {}): Logger {
  const min = RANK[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const format = opts.format === 'text' ? textLine : (r: Fields) => JSON.stringify(r);
  const out = (r: Fields) => {
    if (RANK[r['level'] as LogLevel] >= min) write(format(r));
  };
  const emit = (level: LogLevel, msg: string, fields?: Fields) => out({ ts: new Date().toISOString(), level, msg, ...base, ...fields });
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(opts, { ...base, ...fields }),
    forward: (line, tag) => {
      const r = parseLogRecord(line);
      out(r ? { ...r, ...tag } : { ts: new Date().toISOString(), level: 'info', msg: line, ...base, ...tag });
    },
  };
}

// For tests and embedding: drops everything.
export const silentLogger: Logger = createLogger({ level: 'error', write: () => undefined });
