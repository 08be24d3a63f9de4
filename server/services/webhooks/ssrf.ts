import type { LookupAddress, LookupAllOptions } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

// A webhook URL is chosen by a user and fetched by the server: without a check it would let anyone
// who may create one reach the server's own network (databases, the cloud metadata service). Hosts
// are checked by every address they resolve to, at create and again at every connect (DNS can
// change in between: "rebinding").

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the local host
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT (and some clouds' metadata, 100.100.100.200)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, with the metadata service 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96], // NAT64: an IPv4 address in disguise
  ['fc00::', 7], // unique local (fd00:ec2::254 is a metadata address)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // the former site-local
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;
const MAPPED_V4_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/** The IPv4 address an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, `::ffff:7f00:1`) stands for. */
function unmapped(address: string): string {
  const dotted = MAPPED_V4.exec(address);
  if (dotted?.[1]) return dotted[1];
  const hex = MAPPED_V4_HEX.exec(address);
  if (hex?.[1] && hex[2]) {
    const high = Number.parseInt(hex[1], 16);
    const low = Number.parseInt(hex[2], 16);
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
  }
  return address;
}

/** Loopback, private, link-local, metadata, multicast or otherwise not a public unicast address. */
export function isPrivateAddress(address: string): boolean {
  const plain = unmapped(address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''));
  const family = isIP(plain);
  if (family === 0) return true;
  return blocked.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

/** Resolves a host name to every address it has (what `dns.lookup` with `all: true` answers). */
export type Resolve = (hostname: string) => Promise<LookupAddress[]>;

export const systemResolve: Resolve = (hostname) =>
  dnsLookup(hostname, { all: true, verbatim: true } satisfies LookupAllOptions);

export interface UrlPolicy {
  /** NODE_ENV=production: only https. */
  requireHttps: boolean;
  /** WEBHOOK_ALLOW_PRIVATE: private addresses are allowed (tests, an intranet). */
  allowPrivate: boolean;
  resolve: Resolve;
}

// A name server that does not answer must not hold a request (or a sender) for long.
const RESOLVE_TIMEOUT_MS = 3_000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

export class UnsafeAddressError extends Error {
  override name = 'UnsafeAddressError';
}

/** Throws UnsafeAddressError unless every address `hostname` stands for may be reached. */
export async function assertPublicHost(hostname: string, policy: UrlPolicy): Promise<LookupAddress[]> {
  const bare = hostname.replace(/^\[|\]$/g, '');
  const family = isIP(bare);
  let addresses: LookupAddress[];
  if (family !== 0) addresses = [{ address: bare, family }];
  else {
    try {
      addresses = await withTimeout(policy.resolve(bare), RESOLVE_TIMEOUT_MS);
    } catch {
      throw new UnsafeAddressError(`${hostname} does not resolve`);
    }
    if (addresses.length === 0) throw new UnsafeAddressError(`${hostname} does not resolve`);
  }
  if (!policy.allowPrivate && addresses.some(({ address }) => isPrivateAddress(address))) {
    throw new UnsafeAddressError(
      `${hostname} is a loopback, private, link-local or metadata address; webhooks go to public hosts only`,
    );
  }
  return addresses;
}

/** Why `raw` may not be a webhook URL, or null when it may. Resolves the host. */
export async function urlProblem(raw: string, policy: UrlPolicy): Promise<string | null> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'url must be an absolute http(s) URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'url must be an http(s) URL';
  if (policy.requireHttps && url.protocol !== 'https:') return 'url must be https:// in production';
  if (url.username || url.password) {
    return 'url must not carry credentials: receivers authenticate TaskFlow by its signature';
  }
  try {
    await assertPublicHost(url.hostname, policy);
  } catch (error) {
    if (error instanceof UnsafeAddressError) return error.message;
    throw error;
  }
  return null;
}
