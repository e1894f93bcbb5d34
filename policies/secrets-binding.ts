/**
 * The per-execution secret binding: for each secret, the placeholder the
 * sandbox sees, the real value, where it may go. Made by the service when an
 * execution is admitted, handed to the proxy (in-process, or over the
 * authenticated control channel in its wire form), and used to scrub the
 * program's output at the end.
 *
 * Values are guarded against accidental serialisation: JSON.stringify (and so
 * pino), util.inspect and String() of a binding or a bound secret show names,
 * hosts and places, never a value. Only `toWire()` carries values, on purpose.
 */
import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { z } from 'zod';
import { canonicalHost } from './host.ts';
import { DomainEntrySchema, SecretNameSchema, SecretPlaceSchema, SecretValueSchema } from './schema.ts';
import type { SecretPlace } from './schema.ts';
import { compileSecretHosts } from './secrets.ts';
import type { SecretHostMatcher } from './secrets.ts';

export const PLACEHOLDER_PREFIX = 'sbx_secret_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const PLACEHOLDER_RANDOM_LENGTH = 24;

/** `sbx_secret_<NAME>_<24 base62>`, crypto-random, unbiased. */
export function makePlaceholder(name: string, random: (size: number) => Uint8Array = randomBytes): string {
  let suffix = '';
  while (suffix.length < PLACEHOLDER_RANDOM_LENGTH) {
    for (const byte of random(32)) {
      // 248 = 4 × 62: bytes above it would favour the first characters.
      if (byte < 248 && suffix.length < PLACEHOLDER_RANDOM_LENGTH) suffix += BASE62[byte % 62];
    }
  }
  return `${PLACEHOLDER_PREFIX}${name}_${suffix}`;
}

export const PLACEHOLDER_PATTERN = /^sbx_secret_[A-Z_][A-Z0-9_]{0,63}_[0-9A-Za-z]{24}$/;

export type SecretSource = 'request' | 'policy';

/** What a binding is made from. */
export interface SecretSpec {
  name: string;
  value: string;
  hosts: readonly string[];
  in: readonly SecretPlace[];
  source: SecretSource;
  /** Given when rebuilding a binding (remote proxy); made fresh otherwise. */
  placeholder?: string;
}

/** One secret of one execution. */
export class BoundSecret {
  readonly name: string;
  readonly placeholder: string;
  readonly hosts: readonly string[];
  readonly places: ReadonlySet<SecretPlace>;
  readonly source: SecretSource;
  readonly matcher: SecretHostMatcher;
  readonly #value: string;

  constructor(spec: SecretSpec) {
    this.name = spec.name;
    this.placeholder = spec.placeholder ?? makePlaceholder(spec.name);
    this.hosts = Object.freeze([...spec.hosts]);
    this.places = new Set(spec.in);
    this.source = spec.source;
    this.matcher = compileSecretHosts(spec.hosts, `secrets.${spec.name}.hosts`);
    this.#value = spec.value;
  }

  /** The real value. Read it only to substitute or scrub. */
  get value(): string {
    return this.#value;
  }

  /** Whether the value may be sent toward `host` (raw or canonical) and port. */
  allowsHost(host: string, port: number): boolean {
    const canonical = canonicalHost(host);
    return canonical !== null && this.matcher.matches(canonical, port);
  }

  /** Same, for a host already canonical (`canonicalHost`): what the proxy holds per request. */
  allowsCanonicalHost(host: string, port: number): boolean {
    return this.matcher.matches(host, port);
  }

  allowsPlace(place: SecretPlace): boolean {
    return this.places.has(place);
  }

  toJSON(): { name: string; hosts: readonly string[]; in: SecretPlace[]; source: SecretSource } {
    return { name: this.name, hosts: this.hosts, in: [...this.places], source: this.source };
  }

  toString(): string {
    return `[secret ${this.name}]`;
  }

  [inspect.custom](): string {
    return `BoundSecret ${JSON.stringify(this.toJSON())}`;
  }
}

export const SecretWireSchema = z.strictObject({
  name: SecretNameSchema,
  placeholder: z.string().regex(PLACEHOLDER_PATTERN),
  value: SecretValueSchema,
  hosts: z.array(DomainEntrySchema).min(1),
  in: z.array(SecretPlaceSchema).min(1),
  source: z.enum(['request', 'policy']),
});
export const SecretBindingWireSchema = z.array(SecretWireSchema).describe('A secret binding with its values: for the authenticated control channel only.');
export type SecretBindingWire = z.infer<typeof SecretBindingWireSchema>;

/** Every secret of one execution. Empty for an execution without secrets. */
export class SecretBinding {
  readonly secrets: readonly BoundSecret[];
  readonly #byPlaceholder: ReadonlyMap<string, BoundSecret>;

  constructor(secrets: readonly BoundSecret[]) {
    this.secrets = Object.freeze([...secrets]);
    this.#byPlaceholder = new Map(secrets.map((secret) => [secret.placeholder, secret]));
  }

  static fromSpecs(specs: readonly SecretSpec[]): SecretBinding {
    return new SecretBinding(specs.map((spec) => new BoundSecret(spec)));
  }

  static readonly EMPTY = new SecretBinding([]);

  /** Rebuilds a binding sent over the control channel; throws a ZodError for a malformed one. */
  static fromWire(wire: unknown): SecretBinding {
    return SecretBinding.fromSpecs(SecretBindingWireSchema.parse(wire));
  }

  get size(): number {
    return this.secrets.length;
  }

  get names(): string[] {
    return this.secrets.map((secret) => secret.name);
  }

  byPlaceholder(placeholder: string): BoundSecret | undefined {
    return this.#byPlaceholder.get(placeholder);
  }

  /** The sandbox's view: NAME → placeholder, to merge into the program's environment. */
  placeholderEnv(): Record<string, string> {
    return Object.fromEntries(this.secrets.map((secret) => [secret.name, secret.placeholder]));
  }

  /** Whether any secret may be sent toward this destination (its responses are then always scrubbed). */
  boundTo(host: string, port: number): boolean {
    return this.secrets.some((secret) => secret.allowsHost(host, port));
  }

  /** With values: for the authenticated control channel to a proxy in its own process, nothing else. */
  toWire(): SecretBindingWire {
    return this.secrets.map((secret) => ({
      name: secret.name,
      placeholder: secret.placeholder,
      value: secret.value,
      hosts: [...secret.hosts],
      in: [...secret.places],
      source: secret.source,
    }));
  }

  toJSON(): ReturnType<BoundSecret['toJSON']>[] {
    return this.secrets.map((secret) => secret.toJSON());
  }

  toString(): string {
    return `[secrets ${this.names.join(', ')}]`;
  }

  [inspect.custom](): string {
    return `SecretBinding ${JSON.stringify(this.toJSON())}`;
  }
}
