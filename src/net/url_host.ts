// How to reach a server from the address it binds: wildcard binds are reached on loopback,
// IPv6 literals need brackets in a URL.
export function urlHost(bindHost: string): string {
  if (bindHost === '0.0.0.0' || bindHost === '*' || bindHost === '') return '127.0.0.1';
  if (bindHost === '::') return '[::1]';
  return bindHost.includes(':') && !bindHost.startsWith('[') ? `[${bindHost}]` : bindHost;
}
