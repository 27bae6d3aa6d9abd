// Exit with the parent: a process kvgate spawns (a `kvgate worker` under `kvgate serve`, a
// `kvgate mocker` under a worker) gets its spawner's PID in KVGATE_PARENT_PID and shuts down
// gracefully when that process is gone, so a parent killed hard (SIGKILL, OOM) leaves no
// orphans. Opt-in through the variable rather than for every process: a worker a user started
// by hand with nohup must outlive the shell that started it.
//
// A real SGLang engine gets the variable too but ignores it: a SIGKILLed worker leaves its
// SGLang engine running (a documented limit; `kvgate serve`'s own stop still kills the group).

export const PARENT_PID_ENV = 'KVGATE_PARENT_PID';

export function parentPidFromEnv(env: NodeJS.ProcessEnv = process.env): number | null {
  const v = env[PARENT_PID_ENV];
  if (!v || !/^\d+$/.test(v)) return null;
  const pid = Number(v);
  return pid > 1 ? pid : null;
}

// Polls every `intervalMs`; calls `onGone` once. Returns a function that stops the watch.
export function watchParent(pid: number, onGone: () => void, intervalMs = 500): () => void {
  // Our own parent: its death shows as a changed ppid (reparenting), which a reused PID cannot
  // fake. Otherwise (an exec'ing wrapper in between, or the parent died before we looked) ask
  // the kernel whether the PID still exists.
  const direct = process.ppid === pid;
  const gone = () => (direct ? process.ppid !== pid : !exists(pid));
  const timer = setInterval(() => {
    if (!gone()) return;
    clearInterval(timer);
    // Our stdout/stderr may be pipes the dead parent read: writing to them now fails with
    // EPIPE, which must not crash the shutdown.
    for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
    onGone();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
