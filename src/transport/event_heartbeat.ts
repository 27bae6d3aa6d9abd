// How often a worker on an event plane (NATS) re-sends its load when nothing changed, so that a
// frontend can tell a quiet worker from one whose link to the event plane is down (serve's
// --event-plane-stale-after should span several of these).
export const EVENT_HEARTBEAT_MS = 1000;
