import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export type TestAlg = 'EdDSA' | 'ES256' | 'RS256' | 'PS256';

interface TestKey {
  kid: string;
  alg: TestAlg;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  publicJwk: JWK;
}

export const TEST_ISSUER = 'http://auth.test';
export const TEST_AUDIENCE = 'http://auth.test';

/** How the endpoint answers: normally, never (a hung auth server), with a 500, or with a non-JWKS body. */
export type JwksMode = 'ok' | 'hang' | 'error' | 'garbage';

/**
 * A real JWKS endpoint on a loopback port, with keys made here. It counts fetches, can publish new
 * keys (rotation) and can be stopped and started again on the same port (an auth server outage).
 */
export class JwksServer {
  private readonly keys: TestKey[] = [];
  private readonly published = new Set<string>();
  private server: Server | null = null;
  private port = 0;
  fetches = 0;
  mode: JwksMode = 'ok';

  get url(): string {
    return `http://127.0.0.1:${this.port}/api/auth/jwks`;
  }

  /** Makes a key; published in the JWKS unless `publish` is false. */
  async addKey(alg: TestAlg = 'EdDSA', publish = true): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = `${alg.toLowerCase()}-${this.keys.length + 1}`;
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
    this.keys.push({ kid, alg, privateKey, publicJwk });
    if (publish) this.published.add(kid);
    return kid;
  }

  publish(kid: string): void {
    this.published.add(kid);
  }

  /** Withdraws a key from the JWKS (the private key can still sign: a retired or leaked key). */
  unpublish(kid: string): void {
    this.published.delete(kid);
  }

  key(kid?: string): TestKey {
    const key = kid ? this.keys.find((k) => k.kid === kid) : this.keys[0];
    if (!key) throw new Error(`no test key ${kid ?? '(first)'}`);
    return key;
  }

  /**
   * Signs with key `kid` (default: the first). `iss`/`aud` default to the test issuer and audience and
   * `exp` to 15 minutes unless the claims carry their own; `headerKid` puts another `kid` in the header.
   */
  async sign(
    claims: JWTPayload & { sub?: string },
    options: { kid?: string; headerKid?: string; expiresIn?: string | number } = {},
  ) {
    const key = this.key(options.kid);
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: options.headerKid ?? key.kid, typ: 'JWT' })
      .setIssuedAt();
    if (claims.iss === undefined) jwt.setIssuer(TEST_ISSUER);
    if (claims.aud === undefined) jwt.setAudience(TEST_AUDIENCE);
    if (claims.exp === undefined) jwt.setExpirationTime(options.expiresIn ?? '15m');
    return jwt.sign(key.privateKey);
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      if (req.url !== '/api/auth/jwks') {
        res.writeHead(404).end();
        return;
      }
      this.fetches += 1;
      if (this.mode === 'hang') return; // answered by nobody; `stop` cuts the connection
      if (this.mode === 'error') {
        res.writeHead(500, { 'content-type': 'application/json' }).end('{"message":"boom"}');
        return;
      }
      if (this.mode === 'garbage') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>maintenance</html>');
        return;
      }
      const keys = this.keys.filter((k) => this.published.has(k.kid)).map((k) => k.publicJwk);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
