// A small leveled logger for the worker agent and its transport: one line per message on
// stderr, `<iso time> <level> [<scope>] message`. The engine's own output is passed through
// with an `[engine] ` prefix (src/worker/supervisor.ts).

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  // Writes a line as is (used for the engine's output).
  raw(line: string): void;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(scope: string, level: LogLevel = 'info', write: (line: string) => void = (l) => process.stderr.write(l + '\n')): Logger {
  const at = (lvl: LogLevel) => (msg: string) => {
    if (RANK[lvl] >= RANK[level]) write(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} [${scope}] ${msg}`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), raw: write };
}

// For library use and tests that do not want output.
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {}, raw() {} };
