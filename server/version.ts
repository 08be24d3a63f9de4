import { existsSync, readFileSync } from 'node:fs';

// The sources run from server/, the build from dist/server/: package.json is one or two levels up.
const file = ['../package.json', '../../package.json']
  .map((path) => new URL(path, import.meta.url))
  .find((url) => existsSync(url));

export const VERSION: string = file
  ? (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version
  : '0.0.0';
