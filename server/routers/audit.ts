import { AuditListInput, AuditPage } from '../../shared/schemas/audit.js';
import * as auditService from '../services/audit-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { read } from '../trpc/transact.js';
import { pageOf, toAuditEntry } from './dto.js';
import { rest } from './openapi-meta.js';

export const auditRouter = router({
  list: protectedProcedure
    .meta(
      rest(
        'GET',
        '/audit',
        'audit',
        'Read the audit log',
        'Entries the caller may see, newest first, filtered, one keyset page at a time.',
      ),
    )
    .input(AuditListInput.prefault({}))
    .output(AuditPage)
    .query(read(auditService.list, pageOf(toAuditEntry))),
});
