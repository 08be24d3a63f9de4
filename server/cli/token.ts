import { parseArgs } from 'node:util';
import { devKeyFile, loadDevKey, signDevToken } from '../auth/dev-keys.js';
import { ConfigError, loadConfig } from '../config.js';

const usage =
  'usage: npm run token -- --sub <worker id> [--role admin|user] [--agent] [--ttl 1h] [--name N] [--email E]';

try {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      role: { type: 'string', default: 'user' },
      agent: { type: 'boolean', default: false },
      ttl: { type: 'string', default: '12h' },
      name: { type: 'string' },
      email: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  if (!values.sub) throw new Error('--sub is required');
  if (values.role !== 'admin' && values.role !== 'user') throw new Error('--role must be admin or user');
  if (!/^\d+[smhd]$/.test(values.ttl)) throw new Error('--ttl must look like 30m, 12h or 7d');
  const config = loadConfig(process.env);
  if (config.auth.jwksUrl) {
    throw new Error('tokens are issued by your auth server: AUTH_SERVER_URL/AUTH_JWKS_URL is set');
  }
  // Only the server makes the key: a key made here, in a DATA_DIR no server reads, would sign tokens
  // that every server refuses with a bare 401.
  const key = loadDevKey(config.dataDir);
  if (!key) {
    throw new Error(
      `no development key at ${devKeyFile(config.dataDir)}. The server makes it when it starts in ` +
        `development mode: start it first (npm start), and run this with the DATA_DIR the server uses ` +
        `(now ${config.dataDir}).`,
    );
  }
  const token = await signDevToken(key, {
    sub: values.sub,
    role: values.role,
    agent: values.agent,
    ttl: values.ttl,
    ...(values.name ? { name: values.name } : {}),
    ...(values.email ? { email: values.email } : {}),
  });
  console.log(token);
} catch (error) {
  const message = error instanceof ConfigError || error instanceof Error ? error.message : String(error);
  console.error(`token: ${message}\n${usage}`);
  process.exit(1);
}
