import { InvalidArgumentError } from 'commander';

// Parsers for commander: a bad value is a usage error (exit 2) naming the option.

export function parseId(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('must be a task id (1, 2, …)');
  return Number(value);
}

export function parseInteger(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

export function parseSeconds(value: string): number {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError('must be a number of seconds');
  return Number(value);
}

/** Repeatable and comma-separated: `--status pending,review --status blocked`. */
export function listOf<T extends string>(allowed: readonly T[]) {
  return (value: string, previous: T[] = []): T[] => {
    const items = value
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
    for (const item of items) {
      if (!allowed.includes(item as T)) {
        throw new InvalidArgumentError(`"${item}" is not one of ${allowed.join(', ')}`);
      }
    }
    return [...previous, ...(items as T[])];
  };
}

/** Repeatable: `--label a --label b`. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
