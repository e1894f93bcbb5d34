import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON logs. Authorization headers and anything that looks like a secret are
 * redacted at the logger, so no call site can leak a whole JWT by accident.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'sandbox-egress' },
      redact: {
        paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'token', 'jwt', '*.token', '*.jwt'],
        censor: '[redacted]',
      },
    },
    destination ?? process.stdout,
  );
}

declare module 'express-serve-static-core' {
  interface Request {
    log?: Logger;
    id?: string;
  }
}
