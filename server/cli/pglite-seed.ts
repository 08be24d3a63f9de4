import { writeFile } from 'node:fs/promises';
import { migratedPgliteDump } from '../../db/pglite-seed.js';
import { PGLITE_SEED } from '../config.js';

// Run by `npm run build`: a first `npm start` on the embedded database loads this migrated data
// directory (about 2 s here) instead of running initdb and every migration (about 7 s).
await writeFile(PGLITE_SEED, await migratedPgliteDump('gzip'));
console.log(`pglite seed written: ${PGLITE_SEED}`);
