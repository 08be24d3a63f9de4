import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

/** Development tokens are issued and checked with these; production never uses them. */
export const DEV_ISSUER = 'taskflow-dev';
export const DEV_AUDIENCE = 'taskflow';

export interface DevKey {
  privateJwk: JWK;
  publicJwk: JWK;
}

const KEY_FILE = 'dev-signing-key.json';

/** Where the development key of a data directory is kept. */
export function devKeyFile(dataDir: string): string {
  return join(dataDir, KEY_FILE);
}

/** The development key the server made in `dataDir`, or null when it has none (yet). */
export function loadDevKey(dataDir: string): DevKey | null {
  const file = devKeyFile(dataDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as DevKey) : null;
}

/** The development Ed25519 key, made once and kept in the data directory. */
export async function loadOrCreateDevKey(dataDir: string): Promise<DevKey> {
  const file = devKeyFile(dataDir);
  const existing = loadDevKey(dataDir);
  if (existing) return existing;
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = `dev-${Date.now().toString(36)}`;
  const key: DevKey = {
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA', use: 'sig' },
    publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' },
  };
  mkdirSync(dataDir, { recursive: true });
  // `wx`: two processes starting at once must not overwrite each other's key.
  try {
    writeFileSync(file, JSON.stringify(key), { mode: 0o600, flag: 'wx' });
  } catch {
    return JSON.parse(readFileSync(file, 'utf8')) as DevKey;
  }
  return key;
}

export interface DevTokenOptions {
  sub: string;
  role?: 'admin' | 'user';
  agent?: boolean;
  name?: string;
  email?: string;
  ttl?: string;
}

export async function signDevToken(key: DevKey, options: DevTokenOptions): Promise<string> {
  const privateKey = await importJWK(key.privateJwk, 'EdDSA');
  return new SignJWT({
    role: options.role ?? 'user',
    name: options.name ?? options.sub,
    ...(options.email ? { email: options.email } : {}),
    ...(options.agent ? { worker_type: 'agent' } : {}),
  })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.publicJwk.kid ?? 'dev', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.ttl ?? '12h')
    .sign(privateKey);
}
