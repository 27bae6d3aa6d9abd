// This very CLI, run the same way (node flags such as a TS loader included): how a command
// starts other kvgate roles as child processes.
export const selfCommand = (): string[] => [process.execPath, ...process.execArgv, process.argv[1]!];
