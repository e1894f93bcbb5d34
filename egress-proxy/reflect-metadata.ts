/**
 * @peculiar/x509 2 resolves its algorithm providers through tsyringe, which
 * refuses to load unless a `Reflect.getMetadata` polyfill is installed first
 * (its docs suggest `reflect-metadata` or `@abraham/reflection`, neither of
 * which is a dependency here). tsyringe only needs the small metadata API
 * below, so this installs exactly that, and only when nothing else has.
 * Import this module before @peculiar/x509 (x509-provider.ts does).
 */

type Key = unknown;
type Target = object;
type MetadataMap = Map<Key, unknown>;

const store = new WeakMap<Target, Map<PropertyKey | undefined, MetadataMap>>();

function ownMap(target: Target, property: PropertyKey | undefined, create: boolean): MetadataMap | undefined {
  let byProperty = store.get(target);
  if (byProperty === undefined) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (map === undefined && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

function getOwnMetadata(key: Key, target: Target, property?: PropertyKey): unknown {
  return ownMap(target, property, false)?.get(key);
}

function hasOwnMetadata(key: Key, target: Target, property?: PropertyKey): boolean {
  return ownMap(target, property, false)?.has(key) ?? false;
}

function getMetadata(key: Key, target: Target, property?: PropertyKey): unknown {
  for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
    if (hasOwnMetadata(key, t, property)) return getOwnMetadata(key, t, property);
  }
  return undefined;
}

function hasMetadata(key: Key, target: Target, property?: PropertyKey): boolean {
  for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
    if (hasOwnMetadata(key, t, property)) return true;
  }
  return false;
}

function defineMetadata(key: Key, value: unknown, target: Target, property?: PropertyKey): void {
  ownMap(target, property, true)?.set(key, value);
}

function metadata(key: Key, value: unknown) {
  return (target: Target, property?: PropertyKey): void => defineMetadata(key, value, target, property);
}

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect['getMetadata'] !== 'function') {
  Object.assign(reflect, { getMetadata, getOwnMetadata, hasMetadata, hasOwnMetadata, defineMetadata, metadata });
}

export {};
