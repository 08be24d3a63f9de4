/** REST success statuses other than 200 (SPEC §5), by procedure path. */
export const SUCCESS_STATUS: Readonly<Record<string, 201 | 204>> = {
  'tasks.create': 201,
  'tasks.delete': 204,
  'projects.create': 201,
  'projects.removeMember': 204,
  'workers.register': 201,
};
